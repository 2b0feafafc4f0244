"""recipes/knn.py end to end: digits and a small CSV table, metrics JSON, clear errors."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

from recipes import knn


def test_digits_run_writes_accuracy_and_sklearn_agreement(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "metrics.json"
    knn.main(["--k", "3", "--test-fraction", "0.2", "--metrics-out", str(out)])
    metrics = json.loads(out.read_text())
    assert metrics["dataset"] == "digits" and metrics["k"] == 3 and metrics["k_chosen_by"] == "--k"
    assert metrics["n_train"] + metrics["n_test"] == 1797
    assert metrics["accuracy"] > 0.95  # k-NN on raw pixels scores about 0.98
    # Predictions can differ only where scikit-learn orders tied neighbours differently.
    assert metrics["sklearn_agreement"] >= 0.99
    assert abs(metrics["sklearn_accuracy"] - metrics["accuracy"]) <= 0.01


def blobs_table(path, rows_per_class=40, seed=0):
    """Three well separated classes in two numeric columns, plus a text column."""
    rng = np.random.default_rng(seed)
    centers = {"setosa": (0, 0), "versicolor": (6, 0), "virginica": (0, 6)}
    frames = [pd.DataFrame({"width": cx + rng.normal(size=rows_per_class),
                            "height": cy + rng.normal(size=rows_per_class),
                            "site": rng.choice(["north", "south"], size=rows_per_class),
                            "species": name})
              for name, (cx, cy) in centers.items()]
    table = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)
    table.to_csv(path, index=False)
    return table


def test_csv_run_chooses_k_by_cross_validation(tmp_path):
    blobs_table(tmp_path / "blobs.csv")
    out = tmp_path / "metrics.json"
    knn.main(["--csv", str(tmp_path / "blobs.csv"), "--label", "species", "--k", "auto", "--folds", "3",
              "--metric", "manhattan", "--weights", "distance", "--metrics-out", str(out)])
    metrics = json.loads(out.read_text())
    assert metrics["k_chosen_by"] == "cross-validation" and metrics["scale"] == "standard"
    assert metrics["n_features"] == 4  # width, height, and 'site' one-hot encoded
    scores = {int(k): s for k, s in metrics["cv_accuracy"].items()}
    assert metrics["k"] in scores and scores[metrics["k"]] == max(scores.values())
    assert metrics["accuracy"] >= 0.9
    assert metrics["n_test"] == 30  # a quarter of each class


@pytest.mark.parametrize("edit, args, message", [
    (None, ["--label", "kind"], "--label 'kind': no such column in .*; its columns are width, height, site, species"),
    (lambda t: t.assign(width=t.width.where(t.index != 5)), ["--label", "species"],
     "column 'width' has 1 missing values"),
])
def test_csv_errors_name_the_column(tmp_path, edit, args, message):
    table = blobs_table(tmp_path / "blobs.csv")
    if edit is not None:
        edit(table).to_csv(tmp_path / "blobs.csv", index=False)
    with pytest.raises(SystemExit, match=message):
        knn.main(["--csv", str(tmp_path / "blobs.csv"), *args])


def test_bad_arguments_stop_with_usage_errors(capsys):
    for argv in (["--csv", "x.csv"], ["--k", "zero"]):
        with pytest.raises(SystemExit) as stopped:
            knn.main(argv)
        assert stopped.value.code == 2
    assert "--k must be a positive integer or 'auto'" in capsys.readouterr().err


def test_digits_without_sklearn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if not installed
    with pytest.raises(SystemExit, match=r"pip install 'fnnet\[recipes\]'"):
        knn.main([])

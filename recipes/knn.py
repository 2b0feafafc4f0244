"""k-nearest-neighbour classification of a table: held-out accuracy, k by cross-validation.

Run from the repo root::

    python -m recipes.knn                                   # scikit-learn's digits (8x8 images)
    python -m recipes.knn --k auto --metrics-out knn.json   # k chosen by 5-fold CV
    python -m recipes.knn --csv table.csv --label species --metric manhattan

The steps:
- data: ``--dataset digits`` (1,797 handwritten digits, 64 pixel features, bundled with the
  optional scikit-learn) or ``--csv PATH --label COLUMN`` (any table: the label column is
  the class, every other column a feature; text columns are one-hot encoded, a missing
  value in a numeric column is an error naming the column);
- a stratified split (``--test-fraction`` of every class held out, ``--seed``);
- scaling, fit on the training rows only: ``--scale standard`` (zero mean, unit variance
  per column; the default for CSV tables, whose columns have unrelated units) or ``none``
  (the default for digits, whose pixels share one scale: standardising them measured
  slightly worse);
- ``--k auto``: stratified ``--folds``-fold cross-validation on the training rows over
  k = 1, 3, 5, ..., 15, 21 (one neighbour search per fold scores every k); the most
  accurate k wins, the smaller k on a tie;
- :func:`fnnet.neighbors.classify` on the held-out rows (``--metric``, ``--weights``).

Printed and written to ``--metrics-out``: ``accuracy`` on the held-out rows, the ``k``
used, the cross-validation scores, and with scikit-learn installed ``sklearn_agreement``
(the share of held-out rows where ``KNeighborsClassifier(algorithm='brute')`` predicts the
same label; it can differ only where tied neighbours are ordered differently).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import fnnet
from fnnet.neighbors import classify, kneighbors, vote

K_CANDIDATES = (1, 3, 5, 7, 9, 11, 13, 15, 21)
SKLEARN_MISSING = ("the digits data set comes with scikit-learn, an optional extra: "
                   "pip install 'fnnet[recipes]' (or pass --csv PATH --label COLUMN)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits", choices=["digits"],
                        help="a bundled data set (ignored with --csv)")
    parser.add_argument("--csv", type=Path, help="a table to classify instead of --dataset")
    parser.add_argument("--label", help="the CSV column holding the class (required with --csv)")
    parser.add_argument("--k", default="5", help="neighbours: a positive integer, or 'auto' for cross-validation")
    parser.add_argument("--metric", default="euclidean", choices=["euclidean", "manhattan", "cosine"])
    parser.add_argument("--weights", default="uniform", choices=["uniform", "distance"])
    parser.add_argument("--scale", choices=["standard", "none"],
                        help="feature scaling fit on the training rows (default: none for digits, "
                             "standard for CSV)")
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds for --k auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metrics-out", type=Path, help="write the metrics here as JSON")
    args = parser.parse_args(argv)
    if args.csv is not None and not args.label:
        parser.error("--csv needs --label COLUMN (the column holding the class)")
    if args.k != "auto" and not (args.k.isdigit() and int(args.k) > 0):
        parser.error(f"--k must be a positive integer or 'auto', got {args.k!r}")
    if not 0 < args.test_fraction < 1:
        parser.error(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    if args.folds < 2:
        parser.error(f"--folds must be at least 2, got {args.folds}")
    args.scale = args.scale or ("standard" if args.csv is not None else "none")
    return args


# ------------------------------------------------------------------------------ data

def load_digits():
    """``(features, labels, name)`` of scikit-learn's bundled digits."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise SystemExit(SKLEARN_MISSING) from None
    x, y = sklearn_digits(return_X_y=True)
    return x.astype(np.float32), y, "digits"


def load_csv(path: Path, label: str):
    """``(features, labels, name)`` of a CSV table; text feature columns are one-hot encoded."""
    if not path.is_file():
        raise SystemExit(f"--csv {path}: no such file")
    table = pd.read_csv(path)
    if label not in table.columns:
        raise SystemExit(f"--label {label!r}: no such column in {path}; its columns are "
                         f"{', '.join(map(str, table.columns))}")
    labels = table.pop(label)
    if labels.isna().any():
        raise SystemExit(f"{path}: the label column {label!r} has {int(labels.isna().sum())} missing values "
                         f"(first at row {int(np.flatnonzero(labels.isna())[0])}); drop those rows first")
    numeric = [c for c in table.columns if table[c].dtype.kind in "biuf"]
    for column in numeric:
        missing = table[column].isna()
        if missing.any():
            raise SystemExit(f"{path}: column {column!r} has {int(missing.sum())} missing values (first at row "
                             f"{int(np.flatnonzero(missing)[0])}); k-NN needs every feature: fill or drop them")
    text = [c for c in table.columns if c not in numeric]
    if text:
        print(f"one-hot encoding the text columns {', '.join(map(repr, text))}")
        table = pd.get_dummies(table, columns=text, dtype=np.float32)
    if table.shape[1] == 0:
        raise SystemExit(f"{path}: no feature columns besides the label {label!r}")
    return table.to_numpy(np.float32), labels.to_numpy(), path.stem


def stratified_split(labels, test_fraction, seed):
    """``(train_rows, test_rows)``: ``test_fraction`` of every class (at least one row of a
    class with two or more) goes to the test rows."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_test = min(len(rows) - 1, max(1, round(test_fraction * len(rows)))) if len(rows) > 1 else 0
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def scaled(scale, x_train, *others):
    """Features scaled with statistics of ``x_train`` alone."""
    if scale == "none":
        return (x_train, *others)
    scaler = fnnet.StandardScaler().fit(x_train)
    return tuple(scaler.transform(x) for x in (x_train, *others))


# --------------------------------------------------------------------------- choose k

def cross_validate_k(x, y, args):
    """``{k: mean accuracy}`` over stratified folds of the training rows."""
    folds = list(fnnet.data.stratified_kfold(y, args.folds, seed=args.seed))
    largest_fold = min(len(train) for train, _ in folds)
    candidates = [k for k in K_CANDIDATES if k <= largest_fold]
    scores = {k: [] for k in candidates}
    for train, val in folds:
        x_fit, x_val = scaled(args.scale, x[train], x[val])
        distances, indices = kneighbors(x_fit, x_val, max(candidates), args.metric)
        distances, indices = np.asarray(distances), np.asarray(indices)
        neighbour_labels = y[train][indices]
        for k in candidates:  # the first k columns are the k nearest
            predicted = vote(neighbour_labels[:, :k], distances[:, :k], args.weights)
            scores[k].append(float(np.mean(predicted == y[val])))
    return {k: float(np.mean(s)) for k, s in scores.items()}


def sklearn_predictions(x_train, y_train, x_test, k, args):
    """scikit-learn's brute-force predictions, or None when it is not installed."""
    try:
        from sklearn.neighbors import KNeighborsClassifier
    except ImportError:
        return None
    model = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric=args.metric, weights=args.weights)
    return model.fit(x_train, y_train).predict(x_test)


# ------------------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    x, y, name = load_csv(args.csv, args.label) if args.csv is not None else load_digits()
    train, test = stratified_split(y, args.test_fraction, args.seed)
    if len(test) == 0:
        raise SystemExit(f"{name}: too few rows per class to hold any out (--test-fraction {args.test_fraction})")
    print(f"{name}: {len(y)} rows, {x.shape[1]} features, {len(np.unique(y))} classes; "
          f"{len(train)} for training, {len(test)} held out")

    cv_scores = None
    if args.k == "auto":
        cv_scores = cross_validate_k(x[train], y[train], args)
        k = max(cv_scores, key=lambda c: (cv_scores[c], -c))  # best score, then the smaller k
        print(f"{args.folds}-fold CV accuracy by k: "
              + ", ".join(f"{c}: {s:.4f}" for c, s in cv_scores.items()) + f" -> k = {k}")
    else:
        k = int(args.k)
    if k > len(train):
        raise SystemExit(f"--k {k} is larger than the training rows ({len(train)})")

    x_train, x_test = scaled(args.scale, x[train], x[test])
    predicted = classify(x_train, y[train], x_test, k, args.metric, args.weights)
    metrics = {
        "dataset": name, "n_train": int(len(train)), "n_test": int(len(test)), "n_features": int(x.shape[1]),
        "k": k, "k_chosen_by": "cross-validation" if cv_scores else "--k",
        "cv_accuracy": None if cv_scores is None else {str(c): s for c, s in cv_scores.items()},
        "metric": args.metric, "weights": args.weights, "scale": args.scale, "seed": args.seed,
        "accuracy": float(np.mean(predicted == y[test])),
        "majority_class_accuracy": float(np.mean(y[test] == pd.Series(y[train]).mode().iloc[0])),
    }
    print(f"held-out accuracy {metrics['accuracy']:.4f} with k = {k}, {args.metric}, {args.weights} weights "
          f"(majority class: {metrics['majority_class_accuracy']:.4f})")
    reference = sklearn_predictions(x_train, y[train], x_test, k, args)
    if reference is not None:
        metrics["sklearn_agreement"] = float(np.mean(predicted == reference))
        metrics["sklearn_accuracy"] = float(np.mean(reference == y[test]))
        print(f"scikit-learn brute force: accuracy {metrics['sklearn_accuracy']:.4f}, "
              f"same prediction on {100 * metrics['sklearn_agreement']:.2f}% of held-out rows")
    metrics["seconds"] = time.perf_counter() - started
    if args.metrics_out:
        args.metrics_out.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_out.write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"metrics written to {args.metrics_out}")
    return metrics


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

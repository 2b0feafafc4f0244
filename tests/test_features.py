"""fnnet.data.add_weighted_sums: totals built from a table's own columns."""

import numpy as np
import pandas as pd
import pytest

from fnnet.data import add_weighted_sums


def houses():
    return pd.DataFrame({"FullBath": [2, 1, 3], "HalfBath": [1.0, np.nan, 0.0], "Street": ["Pave", "Grvl", "Pave"]})


def test_weighted_sums_count_missing_values_as_zero():
    table = houses()
    out = add_weighted_sums(table, {"Baths": {"FullBath": 1.0, "HalfBath": 0.5},
                                    "Doubled": {"FullBath": 2.0}})
    assert out["Baths"].tolist() == [2.5, 1.0, 3.0]
    assert out["Doubled"].tolist() == [4.0, 2.0, 6.0]
    assert list(out.columns) == ["FullBath", "HalfBath", "Street", "Baths", "Doubled"]


def test_the_input_table_is_left_alone():
    table = houses()
    add_weighted_sums(table, {"Baths": {"FullBath": 1.0, "HalfBath": 0.5}})
    assert list(table.columns) == ["FullBath", "HalfBath", "Street"]
    assert np.isnan(table.loc[1, "HalfBath"])


def test_negative_weights_give_differences():
    table = pd.DataFrame({"YrSold": [2008, 2010], "YearBuilt": [1990, 2010]})
    assert add_weighted_sums(table, {"Age": {"YrSold": 1, "YearBuilt": -1}})["Age"].tolist() == [18.0, 0.0]


def test_numbers_written_as_text_are_read_as_numbers():
    table = pd.DataFrame({"a": ["1", "2.5"], "b": [1, 1]})
    assert add_weighted_sums(table, {"s": {"a": 1, "b": 1}})["s"].tolist() == [2.0, 3.5]


def test_an_absent_source_column_is_named_with_its_sum():
    with pytest.raises(ValueError, match=r"\['BsmtFullBath'\].*'Baths'"):
        add_weighted_sums(houses(), {"Baths": {"FullBath": 1.0, "BsmtFullBath": 1.0}})


def test_text_in_a_source_column_is_named_with_its_row():
    with pytest.raises(ValueError, match=r"column 'Street' \(part of 'Nonsense'\).*'Pave' \(row 0\)"):
        add_weighted_sums(houses(), {"Nonsense": {"Street": 1.0}})


def test_a_sum_may_not_overwrite_a_column():
    with pytest.raises(ValueError, match="'FullBath' already exists"):
        add_weighted_sums(houses(), {"FullBath": {"HalfBath": 1.0}})


def test_a_sum_needs_source_columns():
    with pytest.raises(ValueError, match="'Empty' has no source columns"):
        add_weighted_sums(houses(), {"Empty": {}})


def test_only_data_frames_are_accepted():
    with pytest.raises(TypeError, match="pandas DataFrame, got dict"):
        add_weighted_sums({"a": [1]}, {"s": {"a": 1}})

"""TabularPreprocessor: fit on training rows only, the same steps at prediction time, clear errors."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnnet import TabularPreprocessor


def column(prep, matrix, name):
    return matrix[:, prep.feature_names.index(name)]


@pytest.fixture
def train():
    return pd.DataFrame({
        "Id": [1, 2, 3, 4, 5, 6],
        "LotArea": [8000.0, 9000.0, 10000.0, None, 11000.0, 250000.0],   # skewed, one unknown
        "Rooms": [5, 6, 7, 6, 5, 8],
        "PoolQC": [None, None, "Gd", None, None, "Ex"],                     # NA = no pool
        "KitchenQual": ["TA", "Gd", "Ex", "TA", "Fa", "Gd"],
        "Neighborhood": ["A", "B", "A", "C", "B", "A"],
        "MSSubClass": [20, 60, 20, 60, 20, 20],
        "SalePrice": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })


def make(**options):
    defaults = dict(categorical=["MSSubClass"], none_when_missing=["PoolQC"], ignore=["Id", "SalePrice"],
                    ordinal={"PoolQC": ["Fa", "TA", "Gd", "Ex"], "KitchenQual": ["Po", "Fa", "TA", "Gd", "Ex"]})
    return TabularPreprocessor(**{**defaults, **options})


def test_column_kinds_are_declared_or_inferred(train):
    prep = make().fit(train)
    names = prep.feature_names
    assert names[:4] == ["LotArea", "Rooms", "PoolQC", "KitchenQual"]
    assert "LotArea_missing" in names and "Rooms_missing" not in names
    assert [n for n in names if n.startswith("MSSubClass=")] == ["MSSubClass=20", "MSSubClass=60"]
    assert [n for n in names if n.startswith("Neighborhood=")] == [f"Neighborhood={c}" for c in "ABC"]
    assert not any(n.startswith(("Id", "SalePrice")) for n in names)


def test_statistics_come_from_training_rows_only(train):
    prep = make(skew_threshold=None).fit(train)
    test = train.assign(Rooms=[100, 100, 100, 100, 100, 100], LotArea=[None] * 6)
    x = prep.transform(test)
    rooms = train["Rooms"].to_numpy(float)
    expected = (100 - rooms.mean()) / rooms.std()
    np.testing.assert_allclose(column(prep, x, "Rooms"), expected, rtol=1e-5)
    median = train["LotArea"].median()
    filled = train["LotArea"].fillna(median).to_numpy(float)
    np.testing.assert_allclose(column(prep, x, "LotArea"), (median - filled.mean()) / filled.std(), rtol=1e-5)
    np.testing.assert_array_equal(column(prep, x, "LotArea_missing"), 1.0)


def test_training_columns_are_standardised(train):
    prep = make().fit(train)
    x = prep.transform(train)
    for name in ["LotArea", "Rooms", "PoolQC", "KitchenQual"]:
        assert abs(column(prep, x, name).mean()) < 1e-5
        assert abs(column(prep, x, name).std() - 1.0) < 1e-4


def test_only_skewed_nonnegative_columns_get_log1p(train):
    prep = make().fit(train)
    assert prep.to_config()["fitted"]["log1p"] == ["LotArea"]
    x = prep.transform(train)
    logged = np.log1p(train["LotArea"].fillna(train["LotArea"].median()).to_numpy(float))
    np.testing.assert_allclose(column(prep, x, "LotArea"), (logged - logged.mean()) / logged.std(), rtol=1e-4)
    assert make(skew_threshold=None).fit(train).to_config()["fitted"]["log1p"] == []


def test_missing_means_none_is_a_value_not_an_unknown(train):
    prep = make(ordinal={}).fit(train)
    assert "PoolQC=None" in prep.feature_names
    assert "PoolQC_missing" not in prep.feature_names
    x = prep.transform(pd.DataFrame({**{c: train[c][:1] for c in train}, "PoolQC": [None]}))
    assert column(prep, x, "PoolQC=None")[0] == 1.0


def test_ordinal_scales_are_ranks_with_none_below_the_lowest(train):
    prep = make(skew_threshold=None).fit(train)
    x = prep.transform(train)
    ranks = column(prep, x, "PoolQC")
    none, good, excellent = ranks[0], ranks[2], ranks[5]
    assert none < good < excellent
    assert ranks[1] == none


def test_unseen_categories_become_all_zeros(train):
    prep = make().fit(train)
    test = train.assign(Neighborhood=["Z"] * 6, MSSubClass=[150] * 6)
    x = prep.transform(test)
    one_hot = [i for i, n in enumerate(prep.feature_names) if n.startswith(("Neighborhood=", "MSSubClass="))]
    assert np.all(x[:, one_hot] == 0.0)
    assert np.all(np.isfinite(x))


def test_rare_and_unseen_categories_share_the_other_bucket(train):
    prep = make(min_category_count=2).fit(train)
    assert [n for n in prep.feature_names if n.startswith("Neighborhood=")] == [
        "Neighborhood=A", "Neighborhood=B", "Neighborhood=<other>"]
    x = prep.transform(train.assign(Neighborhood=["C", "Z", "A", "B", "C", "A"]))
    np.testing.assert_array_equal(column(prep, x, "Neighborhood=<other>"), [1, 1, 0, 0, 1, 0])


def test_number_codes_read_as_floats_match_their_integer_categories(train):
    prep = make().fit(train)
    as_floats = train.assign(MSSubClass=train["MSSubClass"].astype(float))
    np.testing.assert_array_equal(prep.transform(as_floats), prep.transform(train))


def test_a_missing_column_is_named(train):
    prep = make().fit(train)
    with pytest.raises(ValueError, match="'Rooms'"):
        prep.transform(train.drop(columns=["Rooms"]))


def test_text_in_a_numeric_column_is_named_with_its_value(train):
    prep = make().fit(train)
    bad = train.assign(Rooms=train["Rooms"].astype(object))
    bad.loc[3, "Rooms"] = "six"
    with pytest.raises(ValueError, match=r"column 'Rooms'.*'six'.*row 3"):
        prep.transform(bad)
    with pytest.raises(ValueError, match="column 'Rooms'"):
        make(numeric=["Rooms"]).fit(bad)


def test_a_value_off_the_ordinal_scale_is_named(train):
    prep = make().fit(train)
    with pytest.raises(ValueError, match=r"column 'KitchenQual'.*'Superb'"):
        prep.transform(train.assign(KitchenQual=["Superb"] * 6))


def test_declaration_mistakes_are_reported(train):
    with pytest.raises(ValueError, match="Rooms"):
        TabularPreprocessor(numeric=["Rooms"], categorical=["Rooms"])
    with pytest.raises(ValueError, match="Garage"):
        TabularPreprocessor(numeric=["Garage"]).fit(train)
    with pytest.raises(RuntimeError, match="fit"):
        TabularPreprocessor().transform(train)
    with pytest.raises(ValueError, match="no rows"):
        TabularPreprocessor().fit(train.iloc[:0])


def test_config_round_trips_through_json(train):
    prep = make(min_category_count=2).fit(train)
    again = TabularPreprocessor.from_config(json.loads(json.dumps(prep.to_config())))
    test = train.assign(Neighborhood=["Z", "A", "B", "C", "A", "A"], LotArea=[None] * 6)
    np.testing.assert_array_equal(again.transform(test), prep.transform(test))
    with pytest.raises(ValueError, match="version"):
        TabularPreprocessor.from_config({**prep.to_config(), "version": 99})


@given(st.lists(st.tuples(st.one_of(st.none(), st.floats(0, 1e6)), st.sampled_from("abc")),
                min_size=2, max_size=12),
       st.lists(st.integers(0, 11), min_size=1, max_size=5))
def test_rows_are_transformed_independently(rows, picks):
    frame = pd.DataFrame(rows, columns=["size", "kind"])
    prep = TabularPreprocessor().fit(frame)
    picks = [i % len(frame) for i in picks]
    whole = prep.transform(frame)
    np.testing.assert_array_equal(prep.transform(frame.iloc[picks]), whole[picks])
    assert whole.dtype == np.float32 and np.all(np.isfinite(whole))


# ------------------------------------------------------------------ issue 20: one bad cell

def _house_table(house_prices_dir, row, value):
    table = pd.read_csv(house_prices_dir / "train.csv")
    table["LotArea"] = table["LotArea"].astype(object)
    table.loc[row, "LotArea"] = value
    return table.drop(columns=["SalePrice"])


def test_issue20_one_text_cell_in_a_numeric_column_is_refused_naming_it(house_prices_dir, tmp_path):
    # Issue 20, defect 4: '8450sqft' in one LotArea cell made LotArea a 1,073-way categorical.
    table = _house_table(house_prices_dir, 0, "8450sqft")
    path = tmp_path / "train.csv"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column 'LotArea': looks numeric \(1459 of 1460 cells are numbers\) "
                                         r"but 1 cell\(s\) are not: '8450sqft' \(row 0\)"):
        TabularPreprocessor().fit(pd.read_csv(path))


def test_issue20_an_infinite_cell_is_refused_naming_it(house_prices_dir):
    # Issue 20, defect 4: one 'inf' cell made LotArea non-finite in every row after scaling.
    table = _house_table(house_prices_dir, 7, "inf")
    table["LotArea"] = pd.to_numeric(table["LotArea"])
    with pytest.raises(ValueError, match=r"column 'LotArea': inf \(row 7\) is not a finite number"):
        TabularPreprocessor().fit(table)


def test_a_declared_categorical_column_of_codes_with_a_label_is_kept():
    codes = pd.DataFrame({"zone": [str(i % 7) for i in range(40)] + ["RL"]})
    assert "zone=RL" in TabularPreprocessor(categorical=["zone"]).fit(codes).feature_names
    with pytest.raises(ValueError, match=r"'RL' \(row 40\)"):
        TabularPreprocessor().fit(codes)


def test_a_mostly_text_column_stays_categorical():
    words = pd.DataFrame({"street": ["Pave", "Grvl"] * 10 + ["1"]})
    assert TabularPreprocessor().fit(words).feature_names == ["street=1", "street=Grvl", "street=Pave"]

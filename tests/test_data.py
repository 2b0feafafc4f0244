"""Data utilities: splits, batches, folds, StandardScaler, one_hot, Tokenizer, pad_sequences."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnnet
from fnnet import data

# ---------------------------------------------------------------------------- train_val_split


def test_split_keeps_rows_aligned_and_covers_every_sample_once():
    x, y = np.arange(30).reshape(10, 3), np.arange(10) * 10
    x_train, x_val, y_train, y_val = fnnet.train_val_split(x, y, val_fraction=0.3, seed=4)
    assert len(x_train) == 7 and len(x_val) == 3
    np.testing.assert_array_equal(x_train[:, 0] // 3 * 10, y_train)
    np.testing.assert_array_equal(x_val[:, 0] // 3 * 10, y_val)
    assert sorted(np.concatenate([y_train, y_val]).tolist()) == y.tolist()


def test_split_is_seeded_and_unshuffled_takes_the_last_samples():
    y = np.arange(50)
    assert np.array_equal(fnnet.train_val_split(y, seed=1)[1], fnnet.train_val_split(y, seed=1)[1])
    assert not np.array_equal(fnnet.train_val_split(y, seed=1)[1], fnnet.train_val_split(y, seed=2)[1])
    train, val = fnnet.train_val_split(y, val_fraction=0.2, shuffle=False)
    np.testing.assert_array_equal(val, np.arange(40, 50))
    np.testing.assert_array_equal(train, np.arange(40))


def test_split_handles_pandas_text_lists_and_pytrees():
    frame = pd.DataFrame({"a": range(10)}, index=[f"r{i}" for i in range(10)])
    texts = [f"text {i}" for i in range(10)]
    tree = {"ids": np.arange(10), "pair": (np.arange(10) * 2, np.arange(10) * 3)}
    f_train, f_val, t_train, t_val, p_train, p_val = fnnet.train_val_split(frame, texts, tree, seed=0)
    assert isinstance(f_val, pd.DataFrame) and isinstance(t_val, list)
    assert list(f_val.index) == [f"r{i}" for i in f_val["a"]]
    assert t_val == [f"text {i}" for i in f_val["a"]]
    np.testing.assert_array_equal(p_val["pair"][1], f_val["a"].to_numpy() * 3)


def test_split_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"arrays\[0\] has 5.*arrays\[1\] has 4"):
        fnnet.train_val_split(np.ones(5), np.ones(4))
    with pytest.raises(ValueError, match="val_fraction"):
        fnnet.train_val_split(np.ones(5), val_fraction=1.0)
    with pytest.raises(ValueError, match="leaves 0 for training"):
        fnnet.train_val_split(np.ones(3), val_fraction=0.9)


# ---------------------------------------------------------------------------- batches


def test_batches_cover_the_data_once_with_aligned_pairs():
    x, y = {"a": np.arange(10), "b": np.arange(10) * 2.0}, np.arange(10) * 3
    loader = fnnet.batches(x, y, batch_size=4, shuffle=True, seed=3)
    got = list(loader)
    assert len(loader) == 3 and [len(yb) for _, yb in got] == [4, 4, 2]
    for xb, yb in got:
        np.testing.assert_array_equal(xb["a"] * 3, yb)
        np.testing.assert_array_equal(xb["b"], xb["a"] * 2.0)
    seen = np.concatenate([yb for _, yb in got])
    assert sorted(seen.tolist()) == y.tolist() and seen.tolist() != y.tolist()
    assert [yb.tolist() for _, yb in loader] == [yb.tolist() for _, yb in got]  # same order every pass


def test_batches_unshuffled_in_order_drop_last_and_bad_size():
    assert [b.tolist() for b in fnnet.batches(np.arange(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    loader = fnnet.batches(np.arange(7), batch_size=3, drop_last=True)
    assert len(loader) == 2 and [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5]]
    orders = {tuple(np.concatenate(list(fnnet.batches(np.arange(20), shuffle=True, seed=s)))) for s in range(3)}
    assert len(orders) == 3
    with pytest.raises(ValueError, match="batch_size"):
        fnnet.batches(np.arange(7), batch_size=0)
    with pytest.raises(ValueError, match="x has 7.*y has 6"):
        fnnet.batches(np.arange(7), np.arange(6))


# ---------------------------------------------------------------------------- folds


def _check_partition(folds, n, k):
    assert len(folds) == k
    tests = [test for _, test in folds]
    assert sorted(np.concatenate(tests).tolist()) == list(range(n))
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == n
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1


@given(n=st.integers(2, 60), k=st.integers(2, 10), seed=st.integers(0, 2**31))
def test_kfold_partitions_the_samples(n, k, seed):
    k = min(k, n)
    _check_partition(list(data.kfold_indices(n, k, seed=seed)), n, k)


@given(labels=st.lists(st.sampled_from(["neg", "pos", "neutral"]), min_size=6, max_size=80),
       k=st.integers(2, 6), seed=st.integers(0, 2**31))
def test_stratified_kfold_keeps_class_balance(labels, k, seed):
    labels = np.array(labels)
    folds = list(data.stratified_kfold(labels, k, seed=seed))
    _check_partition(folds, len(labels), k)
    for cls in np.unique(labels):
        per_fold = [int((labels[test] == cls).sum()) for _, test in folds]
        assert max(per_fold) - min(per_fold) <= 1


def test_folds_depend_on_seed_and_accept_one_hot_labels():
    a = [t.tolist() for _, t in data.kfold_indices(20, 4, seed=0)]
    b = [t.tolist() for _, t in data.kfold_indices(20, 4, seed=1)]
    assert a != b
    labels = np.array([0, 1] * 10)
    from_onehot = [t.tolist() for _, t in data.stratified_kfold(fnnet.one_hot(labels), 5, seed=2)]
    assert from_onehot == [t.tolist() for _, t in data.stratified_kfold(labels, 5, seed=2)]
    with pytest.raises(ValueError, match="k must be"):
        list(data.kfold_indices(3, 4))


# ---------------------------------------------------------------------------- StandardScaler


def test_scaler_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train, test = rng.normal(5.0, 3.0, (100, 3)), rng.normal(0.0, 1.0, (20, 3))
    scaler = fnnet.StandardScaler().fit(train)
    scaled = scaler.transform(train)
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(scaler.transform(test), (test - train.mean(0)) / train.std(0))
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(test)), test)
    np.testing.assert_allclose(fnnet.StandardScaler().fit_transform(train), scaled)


def test_scaler_matches_scikit_learn():
    sklearn_preprocessing = pytest.importorskip("sklearn.preprocessing")
    x = np.random.default_rng(1).normal(size=(40, 4)) * [1, 10, 100, 0]
    np.testing.assert_allclose(fnnet.StandardScaler().fit_transform(x),
                               sklearn_preprocessing.StandardScaler().fit_transform(x))


def test_scaler_constant_column_dtypes_and_shapes():
    x = np.array([[1.0, 7.0], [3.0, 7.0]], np.float32)
    out = fnnet.StandardScaler().fit_transform(x)
    assert out.dtype == np.float32 and np.all(np.isfinite(out)) and np.all(out[:, 1] == 0)
    y = np.array([2, 4, 6])  # 1-D targets, e.g. prices
    scaler = fnnet.StandardScaler().fit(y)
    assert scaler.transform(y).shape == (3,) and scaler.transform(y).dtype == np.float64
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(y)), y)


def test_scaler_pandas_in_pandas_out_matched_by_column_name():
    train = pd.DataFrame({"LotArea": [1.0, 2.0, 3.0], "YearBuilt": [1990, 2000, 2010]}, index=[5, 6, 7])
    scaler = fnnet.StandardScaler().fit(train)
    out = scaler.transform(train[["YearBuilt", "LotArea"]])  # columns in another order
    assert isinstance(out, pd.DataFrame) and list(out.index) == [5, 6, 7]
    np.testing.assert_allclose(out["YearBuilt"], (train["YearBuilt"] - 2000) / train["YearBuilt"].std(ddof=0))
    with pytest.raises(ValueError, match="missing \\['YearBuilt'\\]"):
        scaler.transform(train[["LotArea"]])
    series = fnnet.StandardScaler().fit_transform(pd.Series([1.0, 3.0], name="SalePrice"))
    assert isinstance(series, pd.Series) and series.tolist() == [-1.0, 1.0]


def test_scaler_errors_name_the_column():
    x = np.ones((4, 3))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"column 1 has 1 NaN.*row 2"):
        fnnet.StandardScaler().fit(x)
    frame = pd.DataFrame({"a": [1.0, 2.0], "LotFrontage": [np.nan, 3.0]})
    with pytest.raises(ValueError, match="'LotFrontage' \\(index 1\\)"):
        fnnet.StandardScaler().fit(frame)
    scaler = fnnet.StandardScaler().fit(frame.fillna(0))
    with pytest.raises(ValueError, match="LotFrontage"):
        scaler.transform(frame)
    with pytest.raises(TypeError, match="'zone' is not numeric"):
        fnnet.StandardScaler().fit(pd.DataFrame({"zone": ["RL", "RM"]}))
    with pytest.raises(ValueError, match="fitted on 3 columns, got 2"):
        fnnet.StandardScaler().fit(np.ones((2, 3))).transform(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="not fitted"):
        fnnet.StandardScaler().transform(x)


def test_scaler_config_round_trips_through_json():
    frame = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [0.0, 0.0, 0.0]})
    scaler = fnnet.StandardScaler().fit(frame)
    again = fnnet.StandardScaler.from_config(json.loads(json.dumps(scaler.to_config())))
    pd.testing.assert_frame_equal(again.transform(frame), scaler.transform(frame))


# ---------------------------------------------------------------------------- one_hot


def test_one_hot_rows_shapes_and_errors():
    labels = np.array([[0, 3], [2, 1]])
    out = fnnet.one_hot(labels)
    assert out.shape == (2, 2, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(4, dtype=np.float32)[labels])
    assert fnnet.one_hot([1], num_classes=5).shape == (1, 5)
    with pytest.raises(ValueError, match=r"label 5 at position \(1,\) is outside \[0, 3\)"):
        fnnet.one_hot([0, 5], num_classes=3)
    with pytest.raises(ValueError, match="label -1"):
        fnnet.one_hot([-1, 1])


# ---------------------------------------------------------------------------- Tokenizer


def test_tokenizer_ranks_by_frequency_reserves_padding_and_oov():
    tok = fnnet.Tokenizer().fit_on_texts(["Good film", "good plot , good acting", "bad film"])
    assert tok.word_index["<unk>"] == 1 and 0 not in tok.index_word
    assert tok.word_index["good"] == 2 and tok.word_index["film"] == 3  # 3 and 2 occurrences
    assert tok.texts_to_sequences(["GOOD unseen film"]) == [[2, 1, 3]]
    assert tok.vocab_size == len(tok.word_index) + 1
    assert tok.sequences_to_texts([[0, 2, 3]]) == ["good film"]


def test_tokenizer_num_words_and_no_oov_token():
    texts = ["a a a b b c"]
    capped = fnnet.Tokenizer(num_words=3).fit_on_texts(texts)  # ids 1 (oov), 2 ('a') kept
    assert capped.texts_to_sequences(["a b c"]) == [[2, 1, 1]] and capped.vocab_size == 3
    plain = fnnet.Tokenizer(num_words=3, oov_token=None).fit_on_texts(texts)  # ids 1 ('a'), 2 ('b')
    assert plain.texts_to_sequences(["a b c z"]) == [[1, 2]]


def test_tokenizer_keeps_apostrophes_and_punctuation_and_adds_bigrams():
    tok = fnnet.Tokenizer(lower=False)
    assert tok.tokenize("It doesn't work -- at all ?!") == ["It", "doesn't", "work", "--", "at", "all", "?!"]
    bigrams = fnnet.Tokenizer(ngrams=2).fit_on_texts(["not good", "good"])
    assert "not good" in bigrams.word_index
    assert bigrams.texts_to_sequences(["not good"]) == [[bigrams.word_index[t] for t in ("not", "good", "not good")]]


def test_tokenizer_config_round_trip_and_misuse():
    tok = fnnet.Tokenizer(num_words=50, ngrams=2).fit_on_texts(["the film is good", "the film is bad !"])
    again = fnnet.Tokenizer.from_config(json.loads(json.dumps(tok.to_config())))
    texts = ["is the film good ?", "unknown words"]
    assert again.word_index == tok.word_index and again.texts_to_sequences(texts) == tok.texts_to_sequences(texts)
    np.testing.assert_array_equal(again.texts_to_matrix(texts, "tfidf"), tok.texts_to_matrix(texts, "tfidf"))
    with pytest.raises(TypeError, match="list of texts"):
        tok.fit_on_texts("one string")
    with pytest.raises(RuntimeError, match="fit_on_texts"):
        fnnet.Tokenizer().texts_to_sequences(["x"])


def test_texts_to_matrix_modes():
    tok = fnnet.Tokenizer(oov_token=None).fit_on_texts(["good good film", "bad film"])
    good, film = tok.word_index["good"], tok.word_index["film"]
    counts = tok.texts_to_matrix(["good film good"], mode="count")
    assert counts.shape == (1, tok.vocab_size) and counts[0, good] == 2 and counts[0, film] == 1
    assert tok.texts_to_matrix(["good film good"], mode="binary")[0, good] == 1
    np.testing.assert_allclose(tok.texts_to_matrix(["good film good"], mode="freq")[0, good], 2 / 3)
    tfidf = tok.texts_to_matrix(["good film"], mode="tfidf")[0]
    assert tfidf[good] > tfidf[film] > 0  # 'film' is in both training texts, 'good' in one


def test_tokenizer_on_real_reviews(rt_polarity_dir):
    lines = (rt_polarity_dir / "rt-polarity.pos").read_text(encoding="utf-8", errors="replace").splitlines()[:300]
    tok = fnnet.Tokenizer(num_words=1000).fit_on_texts(lines)
    assert {"doesn't", "film", ",", "."} <= set(tok.word_index)
    sequences = tok.texts_to_sequences(lines)
    assert all(0 < i < 1000 for seq in sequences for i in seq)
    assert len(sequences) == len(lines) and all(sequences)


# ---------------------------------------------------------------------------- pad_sequences


def test_pad_sequences_keras_semantics():
    seqs = [[1, 2, 3, 4], [5], []]
    np.testing.assert_array_equal(fnnet.pad_sequences(seqs), [[1, 2, 3, 4], [0, 0, 0, 5], [0, 0, 0, 0]])
    np.testing.assert_array_equal(fnnet.pad_sequences(seqs, maxlen=2), [[3, 4], [0, 5], [0, 0]])
    np.testing.assert_array_equal(fnnet.pad_sequences(seqs, maxlen=3, padding="post", truncating="post", value=-1),
                                  [[1, 2, 3], [5, -1, -1], [-1, -1, -1]])
    assert fnnet.pad_sequences(seqs, maxlen=0).shape == (3, 0)
    floats = fnnet.pad_sequences([[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]], dtype="float32")
    assert floats.shape == (2, 2, 2) and floats.dtype == np.float32 and floats[0, 0].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="padding"):
        fnnet.pad_sequences(seqs, padding="middle")


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 1, 3, 6])
def test_pad_sequences_matches_keras(padding, truncating, maxlen):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras_utils = pytest.importorskip("keras.utils")
    seqs = [[1, 2, 3, 4, 5], [6, 7], [8], [9, 10, 11]]
    expected = keras_utils.pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=-3)
    got = fnnet.pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=-3)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == expected.dtype


def _saved_tokenizer_config(**changes):
    return {**fnnet.Tokenizer().fit_on_texts(["aaa bb", "aaa c"]).to_config(), **changes}


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a*)*b", r"(a|a)*c", r"(?:\w+\s?)+$", r"((ab)*c)+",
                                     r"(x+x+)+y", r"(\d{1,3}){2,}", r"(?P<w>a+)*"])
def test_tokenizer_from_config_refuses_a_catastrophic_saved_pattern_quickly(pattern):
    import time
    config = json.loads(json.dumps(_saved_tokenizer_config(token_pattern=pattern)))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"^Tokenizer\.from_config: token_pattern .* repeats a group"):
        fnnet.Tokenizer.from_config(config)
    assert time.perf_counter() - start < 1.0  # refused from its text, never run on input


@pytest.mark.parametrize("pattern,problem", [("x" * 201, "at most 200"), ("(unclosed", "not a valid regex"),
                                             (["\\w+"], "must be a str")])
def test_tokenizer_from_config_refuses_long_invalid_or_non_string_patterns(pattern, problem):
    with pytest.raises(ValueError, match=f"^Tokenizer\\.from_config: token_pattern .*{problem}"):
        fnnet.Tokenizer.from_config(_saved_tokenizer_config(token_pattern=pattern))


@pytest.mark.parametrize("pattern", [r"\w+", r"[a-z]+(?:-[a-z]+)?", r"[(]a+[)]+", r"\(a+\)+", r"(?:ab)+|\d+"])
def test_tokenizer_from_config_accepts_safe_saved_patterns(pattern):
    tok = fnnet.Tokenizer(token_pattern=pattern).fit_on_texts(["ab-cd (aa) 12"])
    again = fnnet.Tokenizer.from_config(json.loads(json.dumps(tok.to_config())))
    assert again.token_pattern == pattern
    assert again.texts_to_sequences(["ab-cd (aa) 12"]) == tok.texts_to_sequences(["ab-cd (aa) 12"])


def test_tokenizer_default_pattern_round_trips_through_saved_config():
    tok = fnnet.Tokenizer(ngrams=2).fit_on_texts(["the plot isn't good !", "good film"])
    again = fnnet.Tokenizer.from_config(json.loads(json.dumps(tok.to_config())))
    assert again.token_pattern == fnnet.data.DEFAULT_TOKEN_PATTERN
    assert again.texts_to_sequences(["isn't the film good ?!"]) == tok.texts_to_sequences(["isn't the film good ?!"])


def test_tokenizer_built_in_code_may_use_any_pattern():
    tok = fnnet.Tokenizer(token_pattern=r"(?:\w+\s?)+", oov_token=None).fit_on_texts(["a b", "c"])
    assert tok.tokenize("a b") == ["a b"]  # only loading from saved data is restricted

"""Tests for fnnet.data.text: decoding, the three data layouts, layout detection and label reading."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from fnnet.data.text import (TextDataError, decode_text, label_ids, load_imdb, load_rt_polarity, load_text_csv,
                        load_text_dataset, read_lines)

# 0xE9 is 'é' in Windows-1252/Latin-1 and never valid alone in UTF-8; 0x92 is a curly apostrophe.
BAD_LINE = b"a caf\xe9 scene that doesn\x92t work\n"


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------- decoding

def test_decode_keeps_valid_utf8_lines_and_reads_the_others_as_cp1252():
    data = "naïve\n".encode("utf-8") + BAD_LINE
    assert decode_text(data) == "naïve\na café scene that doesn’t work\n"


def test_decode_drops_a_byte_order_mark():
    assert decode_text(b"\xef\xbb\xbftext,label\n") == "text,label\n"


@given(st.binary(max_size=200))
def test_decode_never_raises_and_is_utf8_exact_when_valid(data):
    text = decode_text(data)
    assert isinstance(text, str)
    try:
        expected = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    assert text == expected.removeprefix("\ufeff")


def test_read_lines_skips_blank_lines_and_strips_ends(tmp_path):
    path = write(tmp_path / "t.txt", b"  one \r\n\n\t\ntwo\n")
    assert read_lines(path) == ["one", "two"]


# ------------------------------------------------------------------------- labels

def test_label_ids_reads_sentiment_spellings_as_0_and_1():
    ids, names = label_ids(["NEG", "positive", "0", "1.0", " pos "])
    assert ids.tolist() == [0, 1, 0, 1, 1]
    assert names == ("negative", "positive")


def test_label_ids_numbers_in_numeric_order_and_strings_sorted():
    ids, names = label_ids(["10", "2", "2"])
    assert names == ("2", "10") and ids.tolist() == [1, 0, 0]
    ids, names = label_ids(["sad", "happy", "angry"])
    assert names == ("angry", "happy", "sad") and ids.tolist() == [2, 1, 0]


def test_label_ids_names_the_first_missing_label():
    with pytest.raises(TextDataError, match=r"reviews\.csv.*row 1"):
        label_ids(["pos", "", "neg"], where="reviews.csv")


# ------------------------------------------------------------------------- rt-polarity

def make_rt_polarity(folder, pos=b"a gem\nsuperb acting\n", neg=b"a mess\n" + BAD_LINE):
    write(folder / "rt-polarity.pos", pos)
    write(folder / "rt-polarity.neg", neg)
    return folder


def test_load_rt_polarity_reads_both_files_with_a_bad_byte(tmp_path):
    data = load_rt_polarity(make_rt_polarity(tmp_path), shuffle_seed=None)
    assert data.texts == ["a mess", "a café scene that doesn’t work", "a gem", "superb acting"]
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert data.labels.dtype == np.int64
    assert data.class_names == ("negative", "positive")
    assert data.is_test is None and len(data) == 4


def test_load_rt_polarity_names_the_missing_file(tmp_path):
    write(tmp_path / "rt-polarity.pos", b"good\n")
    with pytest.raises(TextDataError, match="rt-polarity.neg"):
        load_rt_polarity(tmp_path)


def test_load_rt_polarity_rejects_empty_files(tmp_path):
    make_rt_polarity(tmp_path, pos=b"\n", neg=b"")
    with pytest.raises(TextDataError, match="empty"):
        load_rt_polarity(tmp_path)


# ------------------------------------------------------------------------- CSV / TSV

def test_load_csv_with_quoted_commas_custom_columns_and_a_bad_byte(tmp_path):
    path = write(tmp_path / "r.csv", b'id,review,sentiment\n1,"fun, clever",positive\n2,' + BAD_LINE.strip()
                 + b",negative\n")
    data = load_text_csv(path, text_column="review", label_column="sentiment")
    assert data.texts == ["fun, clever", "a café scene that doesn’t work"]
    assert data.labels.tolist() == [1, 0]


def test_load_tsv_by_extension(tmp_path):
    path = write(tmp_path / "r.tsv", b"text\tlabel\nwarm, funny\t1\ncold\t0\n")
    data = load_text_csv(path)
    assert data.texts == ["warm, funny", "cold"] and data.labels.tolist() == [1, 0]


def test_load_csv_names_missing_column_and_lists_the_present_ones(tmp_path):
    path = write(tmp_path / "r.csv", b"review,label\ngood,1\n")
    with pytest.raises(TextDataError, match=r"r\.csv: no column 'text'.*\['review', 'label'\]"):
        load_text_csv(path)


def test_load_csv_with_only_a_header_is_empty(tmp_path):
    path = write(tmp_path / "r.csv", b"text,label\n")
    with pytest.raises(TextDataError, match="empty"):
        load_text_csv(path)


def test_load_csv_names_the_row_with_a_missing_label(tmp_path):
    path = write(tmp_path / "r.csv", b"text,label\ngood,pos\nbad,\n")
    with pytest.raises(TextDataError, match=r"column 'label'.*row 1"):
        load_text_csv(path)


# ------------------------------------------------------------------------- IMDB

def make_imdb(root):
    write(root / "aclImdb" / "train" / "pos" / "0_10.txt", b"loved it<br /><br />truly")
    write(root / "aclImdb" / "train" / "neg" / "1_1.txt", BAD_LINE)
    write(root / "aclImdb" / "test" / "pos" / "2_9.txt", b"great")
    write(root / "aclImdb" / "train" / "unsup" / "3_0.txt", b"no label")
    return root


def test_load_imdb_reads_splits_labels_and_a_bad_byte(tmp_path):
    data = load_imdb(make_imdb(tmp_path), shuffle_seed=None)
    assert data.texts == ["a café scene that doesn’t work", "loved it  truly", "great"]
    assert data.labels.tolist() == [0, 1, 1]
    assert data.is_test.tolist() == [False, False, True]


def test_load_imdb_accepts_the_aclimdb_folder_itself_and_one_split(tmp_path):
    data = load_imdb(make_imdb(tmp_path) / "aclImdb", splits=("test",))
    assert data.texts == ["great"] and data.is_test.tolist() == [True]


def test_load_imdb_without_reviews_is_empty(tmp_path):
    (tmp_path / "train" / "pos").mkdir(parents=True)
    with pytest.raises(TextDataError, match="empty"):
        load_imdb(tmp_path)


# ------------------------------------------------------------------------- layout detection

def test_load_text_dataset_recognises_each_layout(tmp_path):
    assert sorted(load_text_dataset(make_rt_polarity(tmp_path / "mr")).labels.tolist()) == [0, 0, 1, 1]
    assert len(load_text_dataset(make_imdb(tmp_path / "imdb"))) == 3
    csv = write(tmp_path / "d.csv", b"body,y\nok,1\n")
    assert load_text_dataset(csv, text_column="body", label_column="y").texts == ["ok"]


def test_load_text_dataset_rejects_an_unknown_layout_listing_the_known_ones(tmp_path):
    write(tmp_path / "notes.md", b"hello")
    with pytest.raises(TextDataError, match="rt-polarity.pos.*csv.*aclImdb"):
        load_text_dataset(tmp_path)
    with pytest.raises(TextDataError, match="no such file"):
        load_text_dataset(tmp_path / "absent")


def test_issue20_sorted_files_load_in_a_reproducible_shuffled_order(tmp_path):
    # Issue 20, defect 7: rt-polarity came back all negatives, then all positives, so
    # fit(validation_split=0.2) validated on positives only.
    folder = tmp_path / "mr"
    folder.mkdir()
    (folder / "rt-polarity.neg").write_text("".join(f"bad {i}\n" for i in range(50)))
    (folder / "rt-polarity.pos").write_text("".join(f"good {i}\n" for i in range(50)))
    first, again = load_rt_polarity(folder), load_rt_polarity(folder)
    assert first.texts == again.texts and first.labels.tolist() == again.labels.tolist()
    assert sorted(first.texts) == sorted(load_rt_polarity(folder, shuffle_seed=None).texts)
    assert all(("good" in t) == bool(label) for t, label in zip(first.texts, first.labels))
    last_fifth = first.labels[-20:]
    assert 0 < last_fifth.sum() < 20  # both classes among the rows a validation_split takes
    assert load_rt_polarity(folder, shuffle_seed=1).texts != first.texts


def test_imdb_shuffle_keeps_each_review_with_its_label_and_split(tmp_path):
    data = load_imdb(make_imdb(tmp_path), shuffle_seed=3)
    plain = load_imdb(make_imdb(tmp_path / "again"), shuffle_seed=None)
    triples = sorted(zip(data.texts, data.labels.tolist(), data.is_test.tolist()))
    assert triples == sorted(zip(plain.texts, plain.labels.tolist(), plain.is_test.tolist()))

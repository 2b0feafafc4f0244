"""Labelled text data sets from disk: the layouts of common sentiment benchmarks, read robustly.

Three layouts, each loaded into a :class:`TextDataset` (texts, integer labels, class names):

- :func:`load_rt_polarity`: Pang & Lee's sentence polarity data (MR), a folder with
  ``rt-polarity.pos`` and ``rt-polarity.neg``, one text a line;
- :func:`load_text_csv`: a CSV or TSV file with a text column and a label column;
- :func:`load_imdb`: the Large Movie Review Dataset's ``aclImdb/{train,test}/{pos,neg}/*.txt``.

:func:`load_text_dataset` recognises the layout of a path and calls the right loader.
Copies of these files are not all valid UTF-8 (the original MR files are Windows-1252),
so every file is decoded by :func:`decode_text`: UTF-8 where it is valid, Windows-1252
line by line where it is not, never an exception for a stray byte.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

# Label spellings read as the negative (0) and positive (1) class, compared lower-cased.
NEGATIVE_NAMES = frozenset({"0", "neg", "negative", "false", "bad"})
POSITIVE_NAMES = frozenset({"1", "pos", "positive", "true", "good"})
SENTIMENT_CLASSES = ("negative", "positive")
RT_POLARITY_FILES = ("rt-polarity.neg", "rt-polarity.pos")


@dataclasses.dataclass(frozen=True, eq=False)
class TextDataset:
    """Texts with integer labels; ``len()`` is the number of texts.

    ``texts``: list of str; ``labels``: int64 array, ``labels[i]`` indexes
    ``class_names`` (for sentiment data 0 is ``'negative'``, 1 ``'positive'``);
    ``is_test``: a bool array marking the data set's own test examples where it comes
    split (IMDB), else None; ``source``: where it was read from, for messages.
    ``dataclasses.replace(data, texts=...)`` makes a changed copy.

    >>> import numpy as np
    >>> from fnnet.data.text import TextDataset
    >>> data = TextDataset(['fine', 'awful'], np.array([1, 0]), ('negative', 'positive'))
    >>> len(data), data.class_names[data.labels[0]]
    (2, 'positive')
    """

    texts: list
    labels: np.ndarray
    class_names: tuple
    is_test: Optional[np.ndarray] = None
    source: str = ""

    def __len__(self):
        return len(self.texts)


class TextDataError(ValueError):
    """A path holds no data set in a known layout, or an empty or malformed one.

    >>> import fnnet
    >>> try:
    ...     fnnet.load_text_dataset('/no/such/reviews.csv')
    ... except fnnet.TextDataError as e:
    ...     print(e)
    /no/such/reviews.csv: no such file or folder
    """


# ---------------------------------------------------------------------------- decoding


def decode_text(data: bytes) -> str:
    """Decode file contents: UTF-8 (a BOM is dropped), or Windows-1252 for lines that are not UTF-8.

    Decoding line by line keeps the valid UTF-8 lines of a file that has a few stray
    bytes; bytes that Windows-1252 leaves undefined become U+FFFD. It never raises.

    >>> from fnnet.data.text import decode_text
    >>> decode_text('café\\n'.encode('utf-8') + b'caf\\xe9 \\x93ok\\x94\\n')
    'café\\ncafé “ok”\\n'
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = []
    for line in data.splitlines(keepends=True):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line.decode("cp1252", errors="replace"))
    return "".join(lines)


def read_lines(path) -> list:
    """The non-blank lines of a text file, decoded with :func:`decode_text`, line ends stripped.

    >>> import os, tempfile
    >>> from fnnet.data.text import read_lines
    >>> path = os.path.join(tempfile.mkdtemp(), 'a.txt')
    >>> _ = open(path, 'wb').write(b'good film\\n\\nna\\xefve plot \\n')
    >>> read_lines(path)
    ['good film', 'naïve plot']
    """
    text = decode_text(Path(path).read_bytes())
    return [line.strip() for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------- labels


def label_ids(values, where: str = "labels"):
    """Integer ids and class names for a column of labels: ``(ids, class_names)``.

    Sentiment spellings (``pos``/``neg``, ``positive``/``negative``, ``1``/``0``, any
    case) map to 1/0 with class names ``('negative', 'positive')``; any other labels get
    ids in sorted order and are their own names. Missing labels raise
    :class:`TextDataError` naming ``where`` and the first row.

    >>> from fnnet.data.text import label_ids
    >>> label_ids(['Pos', 'neg', 'positive'])
    (array([1, 0, 1]), ('negative', 'positive'))
    >>> label_ids(['b', 'a', 'c', 'a'])
    (array([1, 0, 2, 0]), ('a', 'b', 'c'))
    """
    series = pd.Series(list(values), dtype=object)
    missing = series.isna() | (series.astype(str).str.strip() == "")
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise TextDataError(f"{where}: label missing in row {row} (counting data rows from 0)")
    keys = series.map(_label_key)
    lowered = keys.str.lower()
    if set(lowered) <= (NEGATIVE_NAMES | POSITIVE_NAMES):
        return lowered.isin(POSITIVE_NAMES).to_numpy().astype(np.int64), SENTIMENT_CLASSES
    numeric = all(_as_number(k) is not None for k in set(keys))
    order = sorted(set(keys), key=_as_number if numeric else None)
    index = {name: i for i, name in enumerate(order)}
    return keys.map(index).to_numpy().astype(np.int64), tuple(order)


def _as_number(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def _label_key(value) -> str:
    """The label as text; whole numbers lose their decimals, so 1, 1.0 and '1' are one class."""
    text = str(value).strip()
    number = _as_number(text)
    if number is not None and number.is_integer():
        return str(int(number))
    return text


def _dataset(texts, labels, class_names, source, is_test=None, shuffle_seed=None) -> TextDataset:
    if not texts:
        raise TextDataError(f"{source}: the data set is empty (no texts found)")
    labels = np.asarray(labels, np.int64)
    if shuffle_seed is not None:
        # Files sorted by class would give fit(validation_split=...) one class only (it takes the last rows).
        order = np.random.default_rng(shuffle_seed).permutation(len(texts))
        texts, labels = [texts[i] for i in order], labels[order]
        is_test = None if is_test is None else np.asarray(is_test)[order]
    return TextDataset(list(texts), labels, tuple(class_names), is_test, source)


# ---------------------------------------------------------------------------- loaders


def load_rt_polarity(directory, *, shuffle_seed=0) -> TextDataset:
    """Pang & Lee's sentence polarity data: ``rt-polarity.neg`` (label 0) and ``.pos`` (label 1).

    The examples come in a shuffled order, the same for the same ``shuffle_seed`` (the
    files hold all negatives, then all positives, so file order would make the last rows,
    which ``fit(validation_split=...)`` takes, one class); ``shuffle_seed=None`` keeps file
    order (negatives first). Raises :class:`TextDataError` when a file is missing or the
    two hold no texts.

    >>> import os, tempfile
    >>> from fnnet.data.text import load_rt_polarity
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, 'rt-polarity.pos'), 'wb').write(b'a gem\\nsuperb\\n')
    >>> _ = open(os.path.join(folder, 'rt-polarity.neg'), 'wb').write(b'a mess\\n')
    >>> data = load_rt_polarity(folder, shuffle_seed=None)
    >>> data.texts, data.labels.tolist(), data.class_names
    (['a mess', 'a gem', 'superb'], [0, 1, 1], ('negative', 'positive'))
    >>> sorted(zip(load_rt_polarity(folder).texts, load_rt_polarity(folder).labels.tolist()))
    [('a gem', 1), ('a mess', 0), ('superb', 1)]
    """
    directory = Path(directory)
    missing = [name for name in RT_POLARITY_FILES if not (directory / name).is_file()]
    if missing:
        raise TextDataError(f"{directory}: no {' or '.join(missing)} (the rt-polarity layout needs both files)")
    texts, labels = [], []
    for label, name in enumerate(RT_POLARITY_FILES):
        lines = read_lines(directory / name)
        texts += lines
        labels += [label] * len(lines)
    return _dataset(texts, labels, SENTIMENT_CLASSES, str(directory), shuffle_seed=shuffle_seed)


def _separator(path: Path, sep):
    if sep is not None:
        return sep
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def load_text_csv(path, text_column="text", label_column="label", sep=None) -> TextDataset:
    """A CSV (or TSV: ``.tsv`` files, or ``sep='\\t'``) with a text column and a label column.

    Labels are read by :func:`label_ids` (sentiment spellings become 0/1). Errors name
    the file and the missing column (listing those present) or the first bad row.

    >>> import os, tempfile
    >>> from fnnet.data.text import load_text_csv
    >>> path = os.path.join(tempfile.mkdtemp(), 'reviews.csv')
    >>> _ = open(path, 'w').write('review,stars\\n"loved it, truly",pos\\nboring,neg\\n')
    >>> data = load_text_csv(path, text_column='review', label_column='stars')
    >>> data.texts, data.labels.tolist()
    (['loved it, truly', 'boring'], [1, 0])
    """
    path = Path(path)
    if not path.is_file():
        raise TextDataError(f"{path}: no such file")
    text = decode_text(path.read_bytes())
    try:
        frame = pd.read_csv(io.StringIO(text), sep=_separator(path, sep), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise TextDataError(f"{path}: cannot be read as a {'TSV' if _separator(path, sep) == chr(9) else 'CSV'} "
                            f"file with a header row: {e}") from e
    absent = [c for c in (text_column, label_column) if c not in frame.columns]
    if absent:
        raise TextDataError(f"{path}: no column {' or '.join(map(repr, absent))}; its columns are "
                            f"{list(frame.columns)} (choose them with text_column= and label_column=)")
    if frame.empty:
        raise TextDataError(f"{path}: the data set is empty (a header but no rows)")
    labels, names = label_ids(frame[label_column], where=f"{path}, column {label_column!r}")
    texts = frame[text_column].astype(str).tolist()
    return _dataset(texts, labels, names, str(path))


_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _imdb_root(directory: Path) -> Path:
    """``directory`` itself or its ``aclImdb`` child, whichever holds ``train``/``test``."""
    for candidate in (directory, directory / "aclImdb"):
        if any((candidate / split / "pos").is_dir() for split in ("train", "test")):
            return candidate
    raise TextDataError(f"{directory}: no aclImdb layout ({{train,test}}/{{pos,neg}}/*.txt)")


def load_imdb(directory, splits=("train", "test"), *, shuffle_seed=0) -> TextDataset:
    """The Large Movie Review Dataset: ``{train,test}/{pos,neg}/*.txt``, one review a file.

    ``directory`` is the ``aclImdb`` folder or the folder containing it. ``splits``
    selects which of ``train`` and ``test`` to read; ``is_test`` marks the test reviews.
    The reviews come shuffled, the same for the same ``shuffle_seed`` (``None``: sorted
    file order, ``neg`` before ``pos``, which would make a ``validation_split`` one class). HTML line breaks (``<br />``)
    become spaces. The unlabelled ``train/unsup`` reviews are not read.

    >>> import os, tempfile
    >>> from fnnet.data.text import load_imdb
    >>> root = tempfile.mkdtemp()
    >>> for split, label, text in [('train', 'pos', 'great<br />fun'), ('test', 'neg', 'dull')]:
    ...     os.makedirs(os.path.join(root, 'aclImdb', split, label))
    ...     _ = open(os.path.join(root, 'aclImdb', split, label, '0_9.txt'), 'w').write(text)
    >>> data = load_imdb(root, shuffle_seed=None)
    >>> data.texts, data.labels.tolist(), data.is_test.tolist()
    (['great fun', 'dull'], [1, 0], [False, True])
    """
    root = _imdb_root(Path(directory))
    unknown = [s for s in splits if s not in ("train", "test")]
    if unknown:
        raise ValueError(f"splits must be 'train' and/or 'test', got {unknown}")
    texts, labels, is_test = [], [], []
    for split in splits:
        for label, name in enumerate(("neg", "pos")):
            folder = root / split / name
            files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
            for file in files:
                texts.append(_HTML_BREAK.sub(" ", decode_text(file.read_bytes())).strip())
            labels += [label] * len(files)
            is_test += [split == "test"] * len(files)
    return _dataset(texts, labels, SENTIMENT_CLASSES, str(root), np.asarray(is_test, bool), shuffle_seed)


def describe_layouts() -> str:
    """The accepted data layouts in one sentence (for error messages and ``--help``).

    >>> from fnnet.data.text import describe_layouts
    >>> describe_layouts().startswith('a folder with rt-polarity.pos')
    True
    """
    return ("a folder with rt-polarity.pos and rt-polarity.neg; "
            "a .csv/.tsv file with a text column and a label column; "
            "an aclImdb folder ({train,test}/{pos,neg}/*.txt) or a folder containing one")


def load_text_dataset(path, text_column="text", label_column="label") -> TextDataset:
    """Load ``path`` with the loader its layout calls for (see the module doc).

    A file is read as CSV/TSV; a folder with ``rt-polarity.pos``/``.neg`` as MR; a folder
    with ``train``/``test`` review folders (or an ``aclImdb`` child) as IMDB. Anything
    else raises :class:`TextDataError` listing the layouts understood.

    >>> import os, tempfile
    >>> from fnnet.data.text import load_text_dataset
    >>> path = os.path.join(tempfile.mkdtemp(), 'd.tsv')
    >>> _ = open(path, 'w').write('text\\tlabel\\nfine\\t1\\nawful\\t0\\n')
    >>> load_text_dataset(path).labels.tolist()
    [1, 0]
    """
    path = Path(os.fspath(path))
    if path.is_file():
        return load_text_csv(path, text_column, label_column)
    if not path.exists():
        raise TextDataError(f"{path}: no such file or folder")
    if any((path / name).exists() for name in RT_POLARITY_FILES):
        return load_rt_polarity(path)
    try:
        return load_imdb(path)
    except TextDataError:
        pass
    raise TextDataError(f"{path}: not a data layout this loader knows; expected {describe_layouts()}")

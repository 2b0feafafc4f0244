"""Preprocessing: scaling, one-hot labels, tokenising and padding.

Everything here runs on the host with numpy, takes numpy/JAX arrays or pandas objects,
and keeps Keras's names and semantics where Keras has the same tool (``Tokenizer``,
``pad_sequences``).
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

# ---------------------------------------------------------------------------- scaling


class StandardScaler:
    """Scales each column to zero mean and unit variance, with statistics from ``fit`` only.

    Fit on the training data, then ``transform`` training, validation and test data
    alike. Takes numpy/JAX arrays (1-D: one column; N-D: the last axis holds the
    columns), pandas DataFrames (numeric columns, matched by name in ``transform``) or
    Series, and returns the same kind. Constant columns are only centred (scale 1).
    NaN or infinite values raise ``ValueError`` naming the column. Statistics are
    computed in float64; floating inputs keep their dtype, others become float64.
    ``to_config``/``from_config`` save and restore the fitted scaler as JSON data.

    >>> import fnnet, numpy as np
    >>> x_train = np.array([[1.0, 10.0], [3.0, 10.0]])
    >>> scaler = fnnet.StandardScaler().fit(x_train)
    >>> scaler.transform(np.array([[2.0, 12.0]]))
    array([[0., 2.]])
    >>> scaler.inverse_transform(scaler.transform(x_train)).tolist()
    [[1.0, 10.0], [3.0, 10.0]]
    """

    def __init__(self, with_mean=True, with_std=True):
        self.with_mean, self.with_std = with_mean, with_std
        self.mean_ = self.var_ = self.scale_ = None
        self.n_features_in_ = None
        self.feature_names_in_ = None

    # -- input/output in the caller's own kind (array, DataFrame, Series)

    def _matrix(self, x, action):
        """``(values as float64 (rows, columns), column names, rebuild(values) -> caller's kind)``."""
        if hasattr(x, "columns"):  # DataFrame
            for name, dtype in x.dtypes.items():
                if dtype.kind not in "biuf":
                    raise TypeError(f"StandardScaler.{action}: column {name!r} is not numeric (dtype {dtype})")
            names = [str(c) for c in x.columns]
            if self.feature_names_in_ is not None and action != "fit":
                missing = [c for c in self.feature_names_in_ if c not in names]
                unseen = [c for c in names if c not in self.feature_names_in_]
                if missing or unseen:
                    raise ValueError(f"StandardScaler.{action}: columns differ from fit: missing {missing}, "
                                     f"not seen in fit {unseen}")
                x = x[[x.columns[names.index(c)] for c in self.feature_names_in_]]
                names = list(self.feature_names_in_)
            out_dtype = _float_dtype(*x.dtypes)
            frame = type(x)
            return (x.to_numpy(np.float64), names,
                    lambda v: frame(v.astype(out_dtype), index=x.index, columns=x.columns))
        if hasattr(x, "iloc"):  # Series
            if x.dtype.kind not in "biuf":
                raise TypeError(f"StandardScaler.{action}: column {x.name!r} is not numeric (dtype {x.dtype})")
            out_dtype = _float_dtype(x.dtype)
            series = type(x)
            names = None if x.name is None else [str(x.name)]
            return (x.to_numpy(np.float64)[:, None], names,
                    lambda v: series(v[:, 0].astype(out_dtype), index=x.index, name=x.name))
        array = np.asarray(x)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"StandardScaler.{action}: expected numbers, got dtype {array.dtype}")
        shape, out_dtype = array.shape, _float_dtype(array.dtype)
        matrix = array.reshape(-1, 1) if array.ndim <= 1 else array.reshape(-1, shape[-1])
        return matrix.astype(np.float64), None, lambda v: v.astype(out_dtype).reshape(shape)

    def _check(self, values, names, action, index=None):
        if self.n_features_in_ is not None and action != "fit" and values.shape[1] != self.n_features_in_:
            raise ValueError(f"StandardScaler.{action}: fitted on {self.n_features_in_} columns, "
                             f"got {values.shape[1]}")
        bad = ~np.isfinite(values)
        if bad.any():
            column = int(bad.any(axis=0).argmax())
            rows = np.flatnonzero(bad[:, column])
            label = f"column {names[column]!r} (index {column})" if names else f"column {column}"
            first = rows[0] if index is None else index[rows[0]]
            first = first.item() if isinstance(first, np.generic) else first
            raise ValueError(f"StandardScaler.{action}: {label} has {len(rows)} NaN or infinite values "
                             f"(first at row {first!r}); fill or drop them first")

    def _fitted(self, action):
        if self.mean_ is None:
            raise RuntimeError(f"StandardScaler.{action}: not fitted yet; call fit(x_train) first")

    # -- public API

    def fit(self, x):
        """Learns each column's mean and standard deviation from ``x``; returns ``self``."""
        values, names, _ = self._matrix(x, "fit")
        self._check(values, names, "fit", getattr(x, "index", None))
        if len(values) == 0:
            raise ValueError("StandardScaler.fit: no rows to fit on")
        self.mean_, self.var_ = values.mean(axis=0), values.var(axis=0)
        std = np.sqrt(self.var_)
        # A column whose spread is rounding noise is constant: scale 1 instead of dividing by ~0.
        constant = std <= 10 * np.finfo(np.float64).eps * np.maximum(np.abs(self.mean_), 1.0)
        self.scale_ = np.where(constant, 1.0, std)
        self.n_features_in_ = values.shape[1]
        self.feature_names_in_ = names if hasattr(x, "columns") else None
        return self

    def _offset_scale(self):
        offset = self.mean_ if self.with_mean else np.zeros_like(self.mean_)
        scale = self.scale_ if self.with_std else np.ones_like(self.scale_)
        return offset, scale

    def transform(self, x):
        """``(x - mean) / std`` with the fitted statistics, in ``x``'s own kind."""
        self._fitted("transform")
        values, names, rebuild = self._matrix(x, "transform")
        self._check(values, names, "transform", getattr(x, "index", None))
        offset, scale = self._offset_scale()
        return rebuild((values - offset) / scale)

    def inverse_transform(self, x):
        """Undoes :meth:`transform`: ``x * std + mean``."""
        self._fitted("inverse_transform")
        values, names, rebuild = self._matrix(x, "inverse_transform")
        self._check(values, names, "inverse_transform", getattr(x, "index", None))
        offset, scale = self._offset_scale()
        return rebuild(values * scale + offset)

    def fit_transform(self, x):
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)

    def to_config(self) -> dict:
        """The fitted scaler as JSON-serialisable data (see :meth:`from_config`)."""
        self._fitted("to_config")
        return {"with_mean": self.with_mean, "with_std": self.with_std, "mean": self.mean_.tolist(),
                "var": self.var_.tolist(), "scale": self.scale_.tolist(), "feature_names": self.feature_names_in_}

    @classmethod
    def from_config(cls, config: dict) -> "StandardScaler":
        """A fitted scaler from :meth:`to_config`'s data.

        >>> import fnnet, json, numpy as np
        >>> scaler = fnnet.StandardScaler().fit(np.array([[0.0], [4.0]]))
        >>> again = fnnet.StandardScaler.from_config(json.loads(json.dumps(scaler.to_config())))
        >>> again.transform(np.array([[4.0]]))
        array([[1.]])
        """
        scaler = cls(config["with_mean"], config["with_std"])
        scaler.mean_, scaler.var_, scaler.scale_ = (np.asarray(config[k], np.float64) for k in ("mean", "var", "scale"))
        scaler.n_features_in_ = len(scaler.mean_)
        scaler.feature_names_in_ = config.get("feature_names")
        return scaler


def _float_dtype(*dtypes):
    """The common floating dtype of the inputs, float64 when any is not floating."""
    if all(np.dtype(d).kind == "f" for d in dtypes):
        return np.result_type(*dtypes)
    return np.dtype(np.float64)


# ---------------------------------------------------------------------------- labels


def one_hot(labels, num_classes=None, dtype="float32"):
    """One-hot rows for integer class labels (Keras's ``to_categorical``).

    The result has shape ``labels.shape + (num_classes,)``; ``num_classes`` defaults
    to ``max(labels) + 1``. Labels outside ``[0, num_classes)`` raise ``ValueError``
    naming the first one and its position.

    >>> import fnnet
    >>> fnnet.one_hot([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    labels = np.asarray(labels)
    if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iub":
        raise TypeError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    outside = (labels < 0) | (labels >= num_classes)
    if outside.any():
        position = np.unravel_index(int(np.argmax(outside)), labels.shape)
        raise ValueError(f"one_hot: label {labels[position]} at position {tuple(int(i) for i in position)} "
                         f"is outside [0, {num_classes})")
    return (labels[..., None] == np.arange(num_classes)).astype(dtype)


# ---------------------------------------------------------------------------- text

# Words keep inner apostrophes ("doesn't", "century's"); every other run of punctuation
# ("!", "?!", "...", "--") is a token of its own, so sentiment cues survive.
DEFAULT_TOKEN_PATTERN = r"\w+(?:['’]\w+)*|[^\w\s]+"

# A saved tokenizer's file is untrusted data: a crafted ``token_pattern`` such as ``(a+)+$``
# backtracks exponentially (ReDoS) and would hang every later ``tokenize``. Loading accepts
# only the default or patterns that pass this deliberately conservative check.
_MAX_SAVED_PATTERN_LENGTH = 200


def _has_nested_quantifier(pattern: str) -> bool:
    """Whether a group holding a quantifier or an alternation is itself repeated (``*``, ``+``, ``{``).

    A scan of the pattern's text, skipping escapes and character classes: ``(a+)+``,
    ``(a*)*`` and ``(a|a)*`` are caught, ``(?:-\\w+)?`` and ``[(]a+[)]+`` are not.
    """
    risky = [False]  # per open group (the outermost entry is the whole pattern): holds a quantifier or "|"
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":  # a class: its "+", "*" and "(" are literals; "]" first is a literal too
            i += 1
            i += pattern.startswith("^", i)
            i += pattern.startswith("]", i)
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif char == "(":
            risky.append(False)
            i += pattern.startswith("?", i + 1)  # "(?:", "(?P<", "(?=": not a quantifier
        elif char == ")" and len(risky) > 1:
            inner = risky.pop()
            repeated = i + 1 < n and pattern[i + 1] in "*+{"
            if inner and repeated:
                return True
            risky[-1] = risky[-1] or inner or repeated
        elif char in "*+?{|":
            risky[-1] = True
        i += 1
    return False


def _check_saved_token_pattern(pattern) -> None:
    if pattern == DEFAULT_TOKEN_PATTERN:
        return
    where = "Tokenizer.from_config: token_pattern"
    if not isinstance(pattern, str):
        raise ValueError(f"{where} must be a str, got {type(pattern).__name__}")
    if len(pattern) > _MAX_SAVED_PATTERN_LENGTH:
        raise ValueError(f"{where} is {len(pattern)} characters long; a saved pattern may have at most "
                         f"{_MAX_SAVED_PATTERN_LENGTH}")
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{where} {pattern!r} is not a valid regex: {error}") from None
    if _has_nested_quantifier(pattern):
        raise ValueError(f"{where} {pattern!r} repeats a group that holds a quantifier or '|' (like '(a+)+'), "
                         "which can backtrack for ever; saved configurations are untrusted, so it is refused. "
                         "Build Tokenizer(token_pattern=...) in code to use it deliberately")


class Tokenizer:
    """Turns texts into sequences of word ids, with a vocabulary learnt from training texts.

    Keras's ``Tokenizer`` semantics: ``fit_on_texts`` counts tokens and ranks them by
    frequency (ties: first seen first) in ``word_index``; id 0 is reserved for padding;
    ``oov_token`` (``None`` for none) gets id 1 and stands for every unknown word;
    ``num_words`` keeps only ids below it (``vocab_size`` is then ``num_words``), others
    become the OOV id or are dropped without ``oov_token``. Tokens are matches of
    ``token_pattern`` (a regex) in the text, lower-cased if ``lower``. ``ngrams=2``
    appends the text's bigrams (``"not good"``) after its words, fastText style, for
    bag-of-n-grams features.

    ``vocab_size`` is the ``input_dim`` for an ``Embedding`` layer. ``to_config`` /
    ``from_config`` save and restore the vocabulary as JSON data.

    >>> import fnnet
    >>> tok = fnnet.Tokenizer().fit_on_texts(["the film is good", "the plot isn't good !"])
    >>> tok.word_index['<unk>'], tok.word_index['the'], tok.word_index['good']
    (1, 2, 3)
    >>> tok.texts_to_sequences(["the acting is good !"])
    [[2, 1, 5, 3, 8]]
    >>> tok.vocab_size
    9
    """

    def __init__(self, num_words=None, oov_token="<unk>", lower=True, token_pattern=DEFAULT_TOKEN_PATTERN,
                 ngrams=1):
        if num_words is not None and not (isinstance(num_words, int) and num_words >= 1):
            raise ValueError(f"num_words must be None or a positive int, got {num_words!r}")
        if not (isinstance(ngrams, int) and ngrams >= 1):
            raise ValueError(f"ngrams must be a positive int, got {ngrams!r}")
        self.num_words, self.oov_token, self.lower = num_words, oov_token, lower
        self.token_pattern, self.ngrams = token_pattern, ngrams
        self._regex = re.compile(token_pattern)
        self.word_counts: dict = {}
        self.word_docs: dict = {}
        self.document_count = 0
        self.word_index: dict = {}
        self.index_word: dict = {}

    def tokenize(self, text: str) -> list:
        """The tokens of one text: words and punctuation, then its n-grams up to ``ngrams``.

        >>> import fnnet
        >>> fnnet.Tokenizer(ngrams=2).tokenize("Doesn't work!")
        ["doesn't", 'work', '!', "doesn't work", 'work !']
        """
        words = self._regex.findall(text.lower() if self.lower else text)
        grams = [" ".join(words[i:i + n]) for n in range(2, self.ngrams + 1) for i in range(len(words) - n + 1)]
        return words + grams

    @staticmethod
    def _texts(texts, method):
        if isinstance(texts, str):
            raise TypeError(f"Tokenizer.{method} takes a list of texts, got one str; wrap it in a list")
        return texts

    def fit_on_texts(self, texts):
        """Counts the tokens of ``texts`` (adding to earlier calls) and rebuilds ``word_index``; returns ``self``."""
        for text in self._texts(texts, "fit_on_texts"):
            tokens = self.tokenize(text)
            self.document_count += 1
            for token in tokens:
                self.word_counts[token] = self.word_counts.get(token, 0) + 1
            for token in dict.fromkeys(tokens):
                self.word_docs[token] = self.word_docs.get(token, 0) + 1
        self._build_index()
        return self

    def _build_index(self):
        ranked = sorted(self.word_counts, key=lambda w: -self.word_counts[w])  # stable: ties keep first-seen order
        words = ([self.oov_token] if self.oov_token is not None else []) + [w for w in ranked if w != self.oov_token]
        self.word_index = {word: i for i, word in enumerate(words, start=1)}
        self.index_word = {i: word for word, i in self.word_index.items()}

    @property
    def vocab_size(self) -> int:
        """The number of ids in use, padding id 0 included: an ``Embedding``'s ``input_dim``."""
        size = len(self.word_index) + 1
        return min(size, self.num_words) if self.num_words else size

    def _fitted(self, method):
        if self.document_count == 0:
            raise RuntimeError(f"Tokenizer.{method}: no vocabulary yet; call fit_on_texts(train_texts) first")

    def texts_to_sequences(self, texts) -> list:
        """Each text as a list of ids; unknown (or beyond ``num_words``) tokens become the OOV id."""
        self._fitted("texts_to_sequences")
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        limit = self.num_words or math.inf
        sequences = []
        for text in self._texts(texts, "texts_to_sequences"):
            sequence = []
            for token in self.tokenize(text):
                i = self.word_index.get(token)
                if i is None or i >= limit:
                    i = oov
                if i is not None:
                    sequence.append(i)
            sequences.append(sequence)
        return sequences

    def sequences_to_texts(self, sequences) -> list:
        """Ids back to space-joined tokens (padding 0 and unknown ids are skipped)."""
        return [" ".join(self.index_word[i] for i in map(int, seq) if i in self.index_word) for seq in sequences]

    def texts_to_matrix(self, texts, mode="binary") -> np.ndarray:
        """A ``(len(texts), vocab_size)`` float32 bag-of-tokens matrix, Keras's modes.

        ``mode`` is ``'binary'`` (token present), ``'count'``, ``'freq'`` (count / tokens
        in the text) or ``'tfidf'`` (``(1 + log count) * log(1 + docs / (1 + docs with token))``).
        Column 0 (padding) stays zero. Memory is ``len(texts) * vocab_size * 4`` bytes:
        cap it with ``num_words``.

        >>> import fnnet
        >>> tok = fnnet.Tokenizer(oov_token=None).fit_on_texts(["good good film", "bad film"])
        >>> tok.texts_to_matrix(["good film film"], mode="count")
        array([[0., 1., 2., 0.]], dtype=float32)
        """
        if mode not in ("binary", "count", "freq", "tfidf"):
            raise ValueError(f"mode must be 'binary', 'count', 'freq' or 'tfidf', got {mode!r}")
        sequences = self.texts_to_sequences(texts)
        matrix = np.zeros((len(sequences), self.vocab_size), np.float32)
        for row, seq in enumerate(sequences):
            counts = Counter(seq)
            for i, count in counts.items():
                if mode == "binary":
                    matrix[row, i] = 1.0
                elif mode == "count":
                    matrix[row, i] = count
                elif mode == "freq":
                    matrix[row, i] = count / len(seq)
                else:
                    docs = self.word_docs.get(self.index_word[i], 0)
                    matrix[row, i] = (1 + np.log(count)) * np.log(1 + self.document_count / (1 + docs))
        return matrix

    def to_config(self) -> dict:
        """Settings and vocabulary as JSON-serialisable data, for :meth:`from_config`."""
        counts = [[w, self.word_counts[w], self.word_docs.get(w, 0)]
                  for w in self.word_index if w in self.word_counts]
        return {"num_words": self.num_words, "oov_token": self.oov_token, "lower": self.lower,
                "token_pattern": self.token_pattern, "ngrams": self.ngrams,
                "document_count": self.document_count, "word_counts": counts}

    @classmethod
    def from_config(cls, config: dict) -> "Tokenizer":
        """A tokenizer with the vocabulary of :meth:`to_config`'s data, ids unchanged.

        The data is untrusted: its ``token_pattern`` must be the default or a short regex that
        repeats no group holding a quantifier (``(a+)+`` is refused with a :class:`ValueError`).

        >>> import fnnet, json
        >>> tok = fnnet.Tokenizer(num_words=100).fit_on_texts(["a b b", "c"])
        >>> again = fnnet.Tokenizer.from_config(json.loads(json.dumps(tok.to_config())))
        >>> again.word_index == tok.word_index, again.texts_to_sequences(["b c d"])
        (True, [[2, 4, 1]])
        >>> fnnet.Tokenizer.from_config({**tok.to_config(), 'token_pattern': '(a+)+$'})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: Tokenizer.from_config: token_pattern '(a+)+$' repeats a group that holds a quantifier ...
        """
        _check_saved_token_pattern(config["token_pattern"])  # the file is untrusted; code may pass any pattern
        tokenizer = cls(config["num_words"], config["oov_token"], config["lower"], config["token_pattern"],
                        config["ngrams"])
        tokenizer.document_count = config["document_count"]
        # Stored in id order, so re-ranking by count (stable) gives the same ids.
        tokenizer.word_counts = {w: c for w, c, _ in config["word_counts"]}
        tokenizer.word_docs = {w: d for w, _, d in config["word_counts"]}
        tokenizer._build_index()
        return tokenizer


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0):
    """Pads (or truncates) sequences to one length, as Keras's ``pad_sequences``.

    Returns an array of shape ``(len(sequences), maxlen) + sample_shape``; ``maxlen``
    defaults to the longest sequence. ``padding='pre'`` puts ``value`` before each
    sequence, ``'post'`` after; ``truncating='pre'`` drops the start of longer sequences,
    ``'post'`` their end.

    >>> import fnnet
    >>> fnnet.pad_sequences([[1, 2, 3], [4]], maxlen=2)
    array([[2, 3],
           [0, 4]], dtype=int32)
    >>> fnnet.pad_sequences([[1, 2, 3], [4]], maxlen=2, padding='post', truncating='post')
    array([[1, 2],
           [4, 0]], dtype=int32)
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"padding must be 'pre' or 'post', got {padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"truncating must be 'pre' or 'post', got {truncating!r}")
    sequences = [np.asarray(s) for s in sequences]
    if maxlen is None:
        maxlen = max((len(s) for s in sequences), default=0)
    if not (isinstance(maxlen, (int, np.integer)) and maxlen >= 0):
        raise ValueError(f"maxlen must be None or a non-negative int, got {maxlen!r}")
    sample_shape = next((s.shape[1:] for s in sequences if len(s)), ())
    result = np.full((len(sequences), int(maxlen)) + sample_shape, value, dtype=dtype)
    for i, seq in enumerate(sequences):
        if not len(seq) or not maxlen:
            continue
        if seq.shape[1:] != sample_shape:
            raise ValueError(f"pad_sequences: sequence {i} has elements of shape {seq.shape[1:]}, "
                             f"the first non-empty one {sample_shape}")
        kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        if padding == "post":
            result[i, :len(kept)] = kept
        else:
            result[i, -len(kept):] = kept
    return result

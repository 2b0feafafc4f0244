"""Batching: train/validation splits, mini-batches and cross-validation folds.

Everything here runs on the host with numpy (seeded ``numpy.random.Generator``\\s) and
takes numpy/JAX arrays, pandas objects or pytrees of them.

In the functions that index samples (:func:`train_val_split`, :func:`batches`), dicts
and tuples are containers, a list of arrays is a container (Keras's multi-input
``[x1, x2]``), and any other list (texts, ragged token lists) is a list of samples.
"""

from __future__ import annotations

import jax
import numpy as np

# ---------------------------------------------------------------------------- indexing samples


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "__getitem__") and getattr(x, "ndim", 0) >= 1


def _is_sample_list(x) -> bool:
    return isinstance(x, list) and not (x and all(_is_array(item) for item in x))


def _leaves(tree):
    return jax.tree_util.tree_leaves(tree, is_leaf=_is_sample_list)


def _take(tree, index):
    """Rows ``index`` (a slice or an integer array) of every leaf of ``tree``."""

    def take(leaf):
        if isinstance(leaf, list):
            return leaf[index] if isinstance(index, slice) else [leaf[i] for i in index]
        if hasattr(leaf, "iloc"):
            return leaf.iloc[index]
        return leaf[index]

    return jax.tree_util.tree_map(take, tree, is_leaf=_is_sample_list)


def _num_samples(trees, names) -> int:
    """The common number of samples (leading dimension) of all leaves of all ``trees``."""
    lengths = {}
    for tree, name in zip(trees, names):
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_sample_list)[0]:
            where = name + "".join(str(k) for k in path)
            if not (isinstance(leaf, list) or _is_array(leaf)):
                raise TypeError(f"{where} is a {type(leaf).__name__}, not an array or list of samples")
            lengths[where] = len(leaf)
    if not lengths:
        raise ValueError("no arrays given")
    if len(set(lengths.values())) > 1:
        raise ValueError("arrays differ in their number of samples: "
                         + ", ".join(f"{where} has {n}" for where, n in lengths.items()))
    return next(iter(lengths.values()))


def train_val_split(*arrays, val_fraction=0.2, seed=0, shuffle=True):
    """Splits arrays (or pytrees of them) into training and validation parts.

    Returns ``[a_train, a_val, b_train, b_val, ...]`` as scikit-learn's
    ``train_test_split`` does. ``n_train = int(n * (1 - val_fraction))``; without
    ``shuffle`` the validation part is the last samples, as Keras's ``validation_split``.
    pandas objects are split by position and keep their index.

    >>> import fnnet, numpy as np
    >>> x, y = np.arange(20).reshape(10, 2), np.arange(10)
    >>> x_train, x_val, y_train, y_val = fnnet.train_val_split(x, y, val_fraction=0.3, seed=1)
    >>> x_train.shape, x_val.shape, sorted(y_train.tolist() + y_val.tolist()) == list(range(10))
    ((7, 2), (3, 2), True)
    >>> fnnet.train_val_split(y, val_fraction=0.2, shuffle=False)[1]
    array([8, 9])
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = _num_samples(arrays, [f"arrays[{i}]" for i in range(len(arrays))])
    n_train = int(n * (1 - val_fraction))
    if val_fraction > 0 and not 0 < n_train < n:
        raise ValueError(f"val_fraction={val_fraction} of {n} samples leaves {n_train} for training and "
                         f"{n - n_train} for validation; both need at least one")
    if shuffle:
        order = np.random.default_rng(seed).permutation(n)
        train_index, val_index = order[:n_train], order[n_train:]
    else:
        train_index, val_index = slice(0, n_train), slice(n_train, n)
    return [part for a in arrays for part in (_take(a, train_index), _take(a, val_index))]


class _Batches:
    """The re-iterable result of :func:`batches`; ``len()`` is the number of batches."""

    def __init__(self, x, y, batch_size, shuffle, seed, drop_last):
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self._data = x if y is None else (x, y)
        self._n = _num_samples([x] if y is None else [x, y], ["x"] if y is None else ["x", "y"])
        self._batch_size, self._shuffle, self._seed, self._drop_last = batch_size, shuffle, seed, drop_last

    def __len__(self):
        full, rest = divmod(self._n, self._batch_size)
        return full + (1 if rest and not self._drop_last else 0)

    def __iter__(self):
        order = np.random.default_rng(self._seed).permutation(self._n) if self._shuffle else None
        for i in range(len(self)):
            start, stop = i * self._batch_size, min((i + 1) * self._batch_size, self._n)
            yield _take(self._data, slice(start, stop) if order is None else order[start:stop])


def batches(x, y=None, batch_size=32, shuffle=False, seed=0, drop_last=False):
    """Iterates over mini-batches of ``x`` (and ``y``): arrays, pandas objects or pytrees.

    Yields ``x_batch``, or ``(x_batch, y_batch)`` when ``y`` is given. With ``shuffle``
    the order is one permutation drawn from ``seed``, the same every time the result is
    iterated (pass a different seed per epoch). The last batch is smaller unless
    ``drop_last``. ``len()`` of the result is the number of batches.

    >>> import fnnet, numpy as np
    >>> loader = fnnet.batches({'a': np.arange(5)}, np.arange(5) * 10, batch_size=2)
    >>> len(loader), [(xb['a'].tolist(), yb.tolist()) for xb, yb in loader]
    (3, [([0, 1], [0, 10]), ([2, 3], [20, 30]), ([4], [40])])
    """
    return _Batches(x, y, batch_size, shuffle, seed, drop_last)


# ---------------------------------------------------------------------------- cross-validation folds


def _check_folds(n, k):
    if not (isinstance(k, int) and 2 <= k <= n):
        raise ValueError(f"k must be an int with 2 <= k <= number of samples ({n}), got {k!r}")


def _folds_from_assignment(fold_of_sample, k):
    for fold in range(k):
        in_test = fold_of_sample == fold
        yield np.flatnonzero(~in_test), np.flatnonzero(in_test)


def kfold_indices(n, k, seed=0):
    """Yields ``(train_idx, test_idx)`` for ``k`` shuffled folds of ``n`` samples.

    Every sample is in exactly one test fold; fold sizes differ by at most one; the
    index arrays are sorted.

    >>> import fnnet
    >>> folds = list(fnnet.data.kfold_indices(10, 3, seed=0))
    >>> [len(test) for _, test in folds], sorted(i for _, test in folds for i in test) == list(range(10))
    ([4, 3, 3], True)
    """
    _check_folds(n, k)
    fold_of_sample = np.empty(n, np.int64)
    fold_of_sample[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return _folds_from_assignment(fold_of_sample, k)


def stratified_kfold(labels, k, seed=0):
    """Yields ``(train_idx, test_idx)`` for ``k`` folds that keep each class's share.

    ``labels`` is a 1-D array of class labels (any sortable values) or 2-D one-hot rows.
    Within every class, the per-fold counts differ by at most one, and so do the
    fold sizes; every sample is in exactly one test fold.

    >>> import fnnet, numpy as np
    >>> labels = np.array([0] * 6 + [1] * 3)
    >>> [np.bincount(labels[test]).tolist() for _, test in fnnet.data.stratified_kfold(labels, 3)]
    [[2, 1], [2, 1], [2, 1]]
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D class labels or 2-D one-hot rows, got shape {labels.shape}")
    _check_folds(len(labels), k)
    _, class_of_sample = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    # Shuffled members of each class, one class after another, are dealt round-robin:
    # each class then spreads evenly over the folds, and so does the whole set.
    order = np.concatenate([rng.permutation(np.flatnonzero(class_of_sample == c))
                            for c in range(class_of_sample.max() + 1)])
    fold_of_sample = np.empty(len(labels), np.int64)
    fold_of_sample[order] = np.arange(len(labels)) % k
    return _folds_from_assignment(fold_of_sample, k)

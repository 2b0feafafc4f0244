"""k-nearest neighbours: exact, jitted, memory-bounded search, voting and averaging.

- :func:`kneighbors` returns the ``k`` nearest training rows of every query, as
  ``(distances, indices)`` sorted by distance; ``metric`` is ``'euclidean'``,
  ``'manhattan'`` or ``'cosine'``.
- :func:`classify` takes the majority label among them (``weights='distance'`` weighs
  each neighbour by ``1 / distance``); :func:`regress` averages their targets;
  :func:`vote` takes the majority of given neighbour labels (to score several k at once).
- :func:`KNNClassifier` / :func:`KNNRegressor` are the same models as fnnet layers, so
  they compose with :func:`fnnet.serial`, e.g. KNN on the features of a trained network.

Ties: among equally distant training rows the lower index is taken, and among classes
with equal votes the smallest label wins (as in scikit-learn's ``predict``). Distances are
computed in the inputs' float precision (float32 unless JAX's x64 mode is on).

Note: scikit-learn's brute force keeps tied neighbours in the order its heaps leave them,
not always the lower index; where the k-th and (k+1)-th neighbours are equally far, its
neighbour set (and so its prediction) may differ from ours, with identical distances.

:func:`kneighbors` also runs inside ``jax.jit``; :func:`classify`, :func:`regress` and
:func:`vote` handle labels on the host (any label type) and run eagerly; inside jitted
code use the layers.

Memory stays bounded: queries and training rows are processed in blocks so that no
buffer of one query block exceeds ``max_block_bytes`` (see :mod:`fnnet.neighbors.search`);
only the inputs themselves and O(N) copies of the training set scale with the data.
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np

from ..core import expect_last_dim, layer
from .search import DEFAULT_BLOCK_BYTES, METRICS, plan_search, search

WEIGHTS = ("uniform", "distance")


# ------------------------------------------------------------------------------ checks

def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _as_matrix(name: str, x):
    """``x`` as a checked 2-D numeric array: JAX arrays (and tracers) stay on their device."""
    if not isinstance(x, jax.Array):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            try:
                x = x.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be numeric, got dtype {x.dtype}") from None
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no rows (shape {tuple(x.shape)})")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {tuple(x.shape)})")
    if not _is_traced(x) and jnp.issubdtype(x.dtype, jnp.floating):
        _check_finite(name, x)
    return x


def _check_finite(name: str, x):
    """Raise naming the first NaN/infinite entry; JAX arrays are checked on their device."""
    if isinstance(x, jax.Array) and bool(jnp.isfinite(x).all()):
        return
    x = np.asarray(x)
    finite = np.isfinite(x)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        what = "NaN" if np.isnan(x[where]) else "an infinite value"
        place = {1: f"row {where[0]}", 2: f"row {where[0]}, column {where[-1]}"}.get(len(where), f"index {where}")
        raise ValueError(f"{name} contains {what} at {place}")


def _check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")


def _check_weights(weights):
    if weights not in WEIGHTS and not callable(weights):
        raise ValueError(f"unknown weights {weights!r}; expected 'uniform', 'distance' or a "
                         "function of the distances")


def _check_k(k, n_train: int) -> int:
    if isinstance(k, bool):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    try:
        k = operator.index(k)
    except TypeError:
        raise ValueError(f"k must be a positive integer, got {k!r}") from None
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    if k > n_train:
        raise ValueError(f"k={k} is larger than the training set (train_x has {n_train} rows)")
    return k


def _check_same_features(train_x, query_x, query_name="query_x"):
    if query_x.shape[1] != train_x.shape[1]:
        raise ValueError(f"{query_name} has {query_x.shape[1]} features but train_x has "
                         f"{train_x.shape[1]}")


def _check_targets(train_y, n_train: int):
    y = np.asarray(train_y)
    if y.ndim not in (1, 2):
        raise ValueError(f"train_y must be 1-D (one value per training row) or 2-D (rows, "
                         f"outputs), got shape {tuple(y.shape)}")
    if y.shape[0] != n_train:
        raise ValueError(f"train_y has {y.shape[0]} rows but train_x has {n_train}")
    return y


def _checked(train_x, query_x, k, metric):
    _check_metric(metric)
    train_x = _as_matrix("train_x", train_x)
    query_x = _as_matrix("query_x", query_x)
    _check_same_features(train_x, query_x)
    return train_x, query_x, _check_k(k, train_x.shape[0])


def _float_dtype(*dtypes):
    """The float dtype computations run in: float32, or float64 in JAX's x64 mode."""
    return jax.dtypes.canonicalize_dtype(np.result_type(*dtypes, np.float32))


def _plan(train_x, query_x, k, metric, max_block_bytes):
    if isinstance(max_block_bytes, bool) or not isinstance(max_block_bytes, int) or max_block_bytes <= 0:
        raise ValueError(f"max_block_bytes must be a positive integer, got {max_block_bytes!r}")
    itemsize = _float_dtype(train_x.dtype, query_x.dtype).itemsize
    return plan_search(train_x.shape[0], query_x.shape[0], train_x.shape[1], k, metric,
                       max_block_bytes, itemsize)


# ---------------------------------------------------- search, votes and averages

def _search_k(k: int, n_train: int) -> int:
    """The k the search runs with: k rounded up to a power of two, at least 8, at most n_train.

    The first k of the nearest k' > k, sorted by (distance, index), are the k nearest, so
    one compiled search serves every k up to 8 (and 9..16, ...): cross-validating k and
    tests compile once. The extra neighbours cost next to nothing.
    """
    return min(max(8, 1 << (k - 1).bit_length()), n_train)


def _nearest(train_x, query_x, k, metric, max_block_bytes):
    """The jitted search for checked inputs: ``(distances, indices)`` of at least the k
    nearest (:func:`_search_k` of them); callers keep the first k columns."""
    search_k = _search_k(k, train_x.shape[0])
    plan = _plan(train_x, query_x, search_k, metric, max_block_bytes)
    return search(train_x, query_x, k=search_k, metric=metric, plan=plan)


def _on_host(neighbours, k):
    """The first k columns of ``(distances, indices)`` as numpy arrays (sliced without compiling)."""
    return tuple(np.asarray(a)[:, :k] for a in neighbours)


# Voting and averaging are written once for numpy and jax.numpy (``xp``): the eager
# functions run them on the host (no compilation per query count, k and weights), the
# layers inside their jitted forward pass.

def _neighbor_weights(xp, distances, weights):
    """Per-neighbour weights; 'distance' follows scikit-learn, zero distances included."""
    if weights == "uniform":
        return xp.ones_like(distances)
    if weights == "distance":
        # A row with exact matches gives them weight 1 and every other neighbour 0.
        zero = distances == 0
        inverse = 1.0 / xp.where(zero, 1.0, distances)
        return xp.where(xp.any(zero, axis=1, keepdims=True), zero.astype(distances.dtype), inverse)
    return xp.asarray(weights(distances), dtype=distances.dtype)


def _vote_codes(xp, neighbor_codes, distances, weights, n_classes):
    """The winning class code per row of ``neighbor_codes`` (queries, k)."""
    w = _neighbor_weights(xp, distances, weights)
    rows = xp.arange(neighbor_codes.shape[0])[:, None]
    if xp is np:
        votes = np.zeros((len(w), n_classes), w.dtype)
        np.add.at(votes, (rows, neighbor_codes), w)
    else:
        votes = jnp.zeros((w.shape[0], n_classes), w.dtype).at[rows, neighbor_codes].add(w)
    return xp.argmax(votes, axis=1)  # the first maximum: ties go to the smallest label


def _average(xp, neighbor_targets, distances, weights):
    """The (weighted) mean over axis 1 of ``neighbor_targets`` (queries, k[, outputs])."""
    w = _neighbor_weights(xp, distances, weights)
    w = w.reshape(w.shape + (1,) * (neighbor_targets.ndim - 2))
    return xp.sum(neighbor_targets * w, axis=1) / xp.sum(w, axis=1)


def _float_targets(y):
    """Targets as floats of the computation's precision, checked for NaN."""
    if y.dtype.kind not in "biuf":
        raise ValueError(f"train_y must be numeric for regression, got dtype {y.dtype}")
    y = np.asarray(y, dtype=_float_dtype(y.dtype))
    _check_finite("train_y", y)
    return y


def _class_labels(name, labels):
    """``(classes, codes)`` of 1-D labels: sorted distinct labels and each row's position."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        _check_finite(name, labels)
    classes, codes = np.unique(labels, return_inverse=True)
    return classes, codes.reshape(labels.shape).astype(np.int32)


# --------------------------------------------------------------------------- public API

def kneighbors(train_x, query_x, k, metric="euclidean", *, max_block_bytes=DEFAULT_BLOCK_BYTES):
    """The ``k`` nearest training rows of each query: ``(distances, indices)``, each (queries, k).

    Rows are sorted by distance, equal distances by training index. ``metric`` is
    ``'euclidean'``, ``'manhattan'`` or ``'cosine'`` (``1 - cosine similarity``; an
    all-zero row is at distance 1 from everything). ``max_block_bytes`` bounds every
    intermediate buffer of one block of queries.

    Raises ``ValueError`` naming the argument for an unknown metric, ``k`` larger than
    the training set, mismatched feature counts, NaN or infinite values and empty inputs.

    >>> import numpy as np
    >>> from fnnet.neighbors import kneighbors
    >>> train = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 1.0]])
    >>> distances, indices = kneighbors(train, np.array([[0.0, 0.0], [3.0, 3.0]]), k=2)
    >>> indices.tolist(), distances.tolist()
    ([[0, 2], [1, 2]], [[0.0, 1.0], [1.0, 3.605551242828369]])
    """
    train_x, query_x, k = _checked(train_x, query_x, k, metric)
    distances, indices = _nearest(train_x, query_x, k, metric, max_block_bytes)
    return (distances, indices) if indices.shape[1] == k else (distances[:, :k], indices[:, :k])


def vote(neighbor_labels, distances=None, weights="uniform"):
    """The majority label in each row of ``neighbor_labels`` (queries, k), as a numpy array.

    Ties go to the smallest label. ``weights='distance'`` counts each vote ``1 / distance``
    (``distances``: (queries, k)); a row with zero distances counts only those votes. A
    callable ``weights(distances)`` gives the weights itself. With :func:`kneighbors`,
    this scores several k from one search (the first k columns are the k nearest).

    >>> import numpy as np
    >>> from fnnet.neighbors import vote
    >>> vote(np.array([['b', 'a', 'b'], ['b', 'a', 'c']])).tolist()
    ['b', 'a']
    >>> vote(np.array([[1, 2, 2]]), np.array([[0.5, 2.0, 2.0]]), weights='distance').tolist()
    [1]
    """
    _check_weights(weights)
    labels = np.asarray(neighbor_labels)
    if labels.ndim != 2 or 0 in labels.shape:
        raise ValueError(f"neighbor_labels must be 2-D (queries, k) and not empty, got shape {labels.shape}")
    if distances is None:
        if weights != "uniform":
            raise ValueError(f"weights={weights!r} needs the distances")
        distances = np.ones(labels.shape, np.float32)
    distances = np.asarray(distances)
    if distances.shape != labels.shape:
        raise ValueError(f"distances has shape {distances.shape} but neighbor_labels has {labels.shape}")
    classes, codes = _class_labels("neighbor_labels", labels)
    distances = distances.astype(_float_dtype(distances.dtype))
    return classes[_vote_codes(np, codes, distances, weights, len(classes))]


def classify(train_x, train_y, query_x, k=5, metric="euclidean", weights="uniform", *,
             max_block_bytes=DEFAULT_BLOCK_BYTES):
    """The majority label among each query's ``k`` nearest training rows (a numpy array).

    Labels may be any sortable values (ints, strings, ...); the result has their dtype.
    ``weights`` is as in :func:`vote`; ties between classes go to the smallest label.

    >>> import numpy as np
    >>> from fnnet.neighbors import classify
    >>> train = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    >>> classify(train, np.array(['a', 'a', 'b', 'b', 'b']), np.array([[0.5], [9.0]]), k=3).tolist()
    ['a', 'b']
    """
    train_x, query_x, k = _checked(train_x, query_x, k, metric)
    _check_weights(weights)
    labels = _check_targets(train_y, train_x.shape[0])
    if labels.ndim != 1:
        raise ValueError(f"train_y must be 1-D (one label per training row), got shape {labels.shape}")
    classes, codes = _class_labels("train_y", labels)
    distances, indices = _on_host(_nearest(train_x, query_x, k, metric, max_block_bytes), k)
    return classes[_vote_codes(np, codes[indices], distances, weights, len(classes))]


def regress(train_x, train_y, query_x, k=5, metric="euclidean", weights="uniform", *,
            max_block_bytes=DEFAULT_BLOCK_BYTES):
    """The mean target of each query's ``k`` nearest training rows (``weights`` as in :func:`vote`).

    ``train_y`` is (rows,) or (rows, outputs); the result, a numpy array, is (queries,) or
    (queries, outputs).

    >>> import numpy as np
    >>> from fnnet.neighbors import regress
    >>> train = np.array([[0.0], [1.0], [2.0], [10.0]])
    >>> regress(train, np.array([1.0, 2.0, 3.0, 50.0]), np.array([[1.0], [9.0]]), k=2).tolist()
    [1.5, 26.5]
    """
    train_x, query_x, k = _checked(train_x, query_x, k, metric)
    _check_weights(weights)
    targets = _float_targets(_check_targets(train_y, train_x.shape[0]))
    distances, indices = _on_host(_nearest(train_x, query_x, k, metric, max_block_bytes), k)
    return _average(np, targets[indices], distances, weights)


# ----------------------------------------------------------------------- layer style

def _knn_layer(kind, train_x, k, metric, weights, params, predict):
    """A leaf layer holding the (already checked) training set in its params.

    ``predict(params, distances, indices, k)`` turns the neighbours found into outputs.
    """
    _check_metric(metric)
    _check_weights(weights)
    k = _check_k(k, train_x.shape[0])
    n_features = train_x.shape[1]
    params = {"train_x": jnp.asarray(train_x), **params}

    def init_params(rng, input_shape):
        if len(input_shape) < 1 or input_shape[-1] not in (-1, n_features):
            raise ValueError(f"expected inputs with {n_features} features (as train_x), got "
                             f"input shape {tuple(input_shape)}")
        return params

    def apply(p, x):
        expect_last_dim(x, n_features)
        if not _is_traced(x):
            _check_finite("inputs", x)
        rows = jnp.reshape(x, (-1, n_features))  # inputs (..., features)
        distances, indices = _nearest(p["train_x"], rows, k, metric, DEFAULT_BLOCK_BYTES)
        out = predict(p, distances, indices, k)
        return out.reshape(jnp.shape(x)[:-1] + out.shape[1:])

    # The type as errors and summaries show it; the key stays the snake_case of the kind.
    return layer(f"{kind}(k={k})", apply, init_params)


# The layers' last steps as module-level jitted functions of arrays: an eager apply is one
# compiled call per input shape (inlined under an outer jit); the layers themselves hold no
# compiled programs.
@functools.partial(jax.jit, static_argnames=("k", "weights", "n_classes"))
def _vote_neighbors(classes, train_codes, distances, indices, *, k, weights, n_classes):
    codes = _vote_codes(jnp, train_codes[indices[:, :k]], distances[:, :k], weights, n_classes)
    return classes[codes]


@functools.partial(jax.jit, static_argnames=("k", "weights"))
def _average_neighbors(train_y, distances, indices, *, k, weights):
    return _average(jnp, train_y[indices[:, :k]], distances[:, :k], weights)


def KNNClassifier(train_x, train_y, k=5, metric="euclidean", weights="uniform"):
    """k-NN classification as an fnnet layer: ``apply(params, x)`` returns the predicted labels.

    ``init`` stores the training set in the params (``{'train_x', 'train_codes', 'classes'}``),
    so it is saved with checkpoints, counted by ``summary`` and can be swapped for another
    training set of the same shape; it is data, not something to train (when training the
    rest of a model, leave it out with ``fnnet.freeze(optimizer, params, ['knn_classifier'])``,
    the layer's params key, or one given with ``.with_name(...)``). Labels must be
    numeric (encode strings first, or use :func:`classify`). Inputs are (..., features).
    The layer is not registered for ``to_spec``: its arguments are arrays.

    Composes like any layer, e.g. KNN on the features of a (trained) network:

    >>> import fnnet, jax, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(40, 3)), np.repeat([0, 1], 20)
    >>> net = fnnet.Dense(2)
    >>> _, net_params = net.init(jax.random.PRNGKey(0), (-1, 3))
    >>> features = net.apply(net_params, x)
    >>> model = fnnet.serial(net, fnnet.KNNClassifier(features, y, k=3))
    >>> _, params = model.init(jax.random.PRNGKey(1), (-1, 3))
    >>> params['dense'] = net_params
    >>> predicted = jax.jit(model.apply)(params, x[:4])
    >>> predicted.tolist() == fnnet.neighbors.classify(features, y, features[:4], k=3).tolist()
    True
    """
    train_x = _as_matrix("train_x", train_x)
    labels = _check_targets(train_y, train_x.shape[0])
    if labels.ndim != 1:
        raise ValueError(f"train_y must be 1-D (one label per training row), got shape {labels.shape}")
    classes, codes = _class_labels("train_y", labels)
    if classes.dtype.kind not in "biuf":
        raise ValueError(f"KNNClassifier needs numeric labels, got dtype {classes.dtype}; encode "
                         "them first (np.unique(y, return_inverse=True)) or use neighbors.classify")

    def predict(p, distances, indices, k):
        return _vote_neighbors(p["classes"], p["train_codes"], distances, indices, k=k, weights=weights,
                               n_classes=len(classes))

    return _knn_layer("KNNClassifier", train_x, k, metric, weights,
                      {"train_codes": jnp.asarray(codes), "classes": jnp.asarray(classes)}, predict)


def KNNRegressor(train_x, train_y, k=5, metric="euclidean", weights="uniform"):
    """k-NN regression as an fnnet layer: ``apply(params, x)`` returns the neighbours' mean target.

    Params are ``{'train_x', 'train_y'}`` (the training set; see :func:`KNNClassifier`).
    ``train_y`` is (rows,) or (rows, outputs); outputs are (...,) or (..., outputs).

    >>> import fnnet, jax, numpy as np
    >>> layer = fnnet.KNNRegressor(np.array([[0.0], [1.0], [5.0]]), np.array([0.0, 2.0, 9.0]), k=2)
    >>> _, params = layer.init(jax.random.PRNGKey(0), (-1, 1))
    >>> layer.apply(params, np.array([[0.2], [4.0]])).tolist()
    [1.0, 5.5]
    """
    train_x = _as_matrix("train_x", train_x)
    targets = _float_targets(_check_targets(train_y, train_x.shape[0]))

    def predict(p, distances, indices, k):
        return _average_neighbors(p["train_y"], distances, indices, k=k, weights=weights)

    return _knn_layer("KNNRegressor", train_x, k, metric, weights, {"train_y": jnp.asarray(targets)}, predict)

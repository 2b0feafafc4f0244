"""Check training data before a step runs: bad values are named where they are.

Inside a jitted step an out-of-range id silently wraps or becomes NaN, a NaN input
becomes a NaN loss, and the only message left is "try a lower learning rate". So
:func:`check_data`, which :func:`fnnet.fit`, :func:`fnnet.evaluate` and
:func:`fnnet.predict` call once before the first step, looks at the arrays on the host
(device arrays are reduced on the device first, so only a flag travels) and raises a
:class:`DataError` naming the leaf, the row and the value:

- a NaN or infinite value in ``x`` or ``y`` (``x/price: inf at row 17, column 3``);
- an id outside ``[0, input_dim)`` for an ``Embedding`` that reads the model's input;
- a label outside ``[0, classes)`` for a sparse cross-entropy loss.

It warns when a ``validation_split`` holds a single class of a classification target,
or a label mix far from the training rows' (the split takes the last rows, so sorted
data gives a one-class validation set).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..core import walk
from ..io.checkpoint import keypath_str

_CLASSIFICATION_WORDS = ("crossentropy", "hinge")
# Total variation distance between the label mixes of training and validation rows that warns.
_FAR = 0.5


class DataError(ValueError):
    """Training data holds a value that would silently corrupt training; the message says where.

    >>> import fnnet, numpy as np
    >>> from fnnet.training.validation import DataError, check_data
    >>> try:
    ...     check_data(fnnet.Dense(1), np.array([[1.0, np.nan]]), np.zeros((1, 1)))
    ... except DataError as e:
    ...     print(e)
    x: nan at row 0, column 1 (1 non-finite value in all); clean or impute the data first
    """


def _leaf_name(name: str, keypath) -> str:
    path = keypath_str(keypath)
    return f"{name}/{path}" if path else name


def _where(index) -> str:
    index = [int(i) for i in index]
    if not index:
        return ""
    text = f" at row {index[0]}"
    if len(index) == 2:
        text += f", column {index[1]}"
    elif len(index) > 2:
        text += f", position {tuple(index[1:])}"
    return text


def _first(array, bad_host_mask):
    index = np.argwhere(bad_host_mask)[0]
    return np.asarray(array)[tuple(index)], index


def _bad_mask(array, predicate):
    """``predicate(array)`` as a host bool array, or None when nothing is bad (one flag read for device arrays)."""
    if isinstance(array, jax.Array):
        bad = predicate(array, jnp)
        if not bool(jnp.any(bad)):
            return None
        return np.asarray(bad)
    bad = predicate(np.asarray(array), np)
    return bad if bad.any() else None


def _check_finite(name: str, tree) -> None:
    for keypath, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype))
        if dtype.kind not in "fc" and dtype.name != "bfloat16":
            continue
        bad = _bad_mask(leaf, lambda a, xp: ~xp.isfinite(a))
        if bad is not None:
            value, index = _first(leaf, bad)
            count = int(bad.sum())
            raise DataError(f"{_leaf_name(name, keypath)}: {value}{_where(index)} ({count} non-finite "
                            f"value{'s' if count > 1 else ''} in all); clean or impute the data first")


def _check_range(what: str, leaf, low: int, high: int, hint: str) -> None:
    """Integer values of ``leaf`` must lie in ``[low, high)``."""
    bad = _bad_mask(leaf, lambda a, xp: (a < low) | (a >= high))
    if bad is not None:
        value, index = _first(leaf, bad)
        count = int(bad.sum())
        raise DataError(f"{what}: {value}{_where(index)} is outside [{low}, {high}) ({count} value"
                        f"{'s' if count > 1 else ''} out of range); {hint}")


def _is_integral(leaf) -> bool:
    return np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype)).kind in "biu"


def _abstract_shape(tree):
    return jax.tree_util.tree_map(lambda a: (-1,) + tuple(np.shape(a))[1:], tree)


def _first_leaf_layer(root):
    return next((n for n in root.nodes() if not n.children), None)


def _check_embedding_ids(model, x, name="x") -> None:
    leaves = jax.tree_util.tree_leaves(x)
    if len(leaves) != 1:
        return
    # The walk without shapes is the structure alone: no tracing, cheap on every call.
    first = _first_leaf_layer(walk(model))
    spec = first.layer.spec if first is not None else None
    if spec is None or spec[0] != "Embedding":
        return
    input_dim = spec[1][0] if spec[1] else spec[2].get("input_dim")
    where = "/".join(str(p) for p in first.path) or first.layer.name
    _check_range(f"{name}: id for Embedding {where!r} (input_dim={input_dim})", leaves[0], 0, input_dim,
                 "ids must lie in [0, input_dim): raise input_dim or map unknown tokens to a reserved id")


def _loss_name(loss) -> str:
    if isinstance(loss, str):
        return loss
    return str(getattr(loss, "name", None) or getattr(loss, "__name__", "") or "")


def _losses(loss, y) -> list:
    """``(name, y leaf, key)`` per loss: one loss, or losses keyed by output name."""
    if isinstance(loss, dict) and isinstance(y, dict):
        return [(_loss_name(l), y[k], k) for k, l in loss.items() if k in y]
    return [(_loss_name(loss), y, None)]


def _output_classes(model, x, key):
    try:
        out = walk(model, _abstract_shape(x)).output_shape
    except Exception:  # noqa: BLE001 - fit reports a model that does not build
        return None
    if key is not None:
        out = out.get(key) if isinstance(out, dict) else None
    if not isinstance(out, tuple) or not out or not isinstance(out[-1], int) or out[-1] <= 0:
        return None
    return out[-1]


def _check_labels(model, x, y, loss, name="y") -> None:
    for loss_name, labels, key in _losses(loss, y):
        if "sparse" not in loss_name or isinstance(labels, (dict, list, tuple)) or not _is_integral(labels):
            continue
        classes = _output_classes(model, x, key)
        if classes is None:
            continue
        _check_range(f"{name}{'/' + key if key else ''}: label for {loss_name} (the model gives {classes} classes)",
                     labels, 0, classes, "labels must be class indices 0 .. classes - 1")


def _class_ids(labels):
    labels = np.asarray(labels)
    if labels.ndim >= 2 and labels.shape[-1] > 1:  # one-hot (or probabilities) per row
        return labels.reshape(-1, labels.shape[-1]).argmax(-1)
    return labels.reshape(len(labels), -1)[:, 0] if labels.ndim else labels


def _check_split(loss, y, validation, validation_split) -> None:
    if not validation_split or validation is None:
        return
    for name, labels, key in _losses(loss, y):
        if not any(word in name for word in _CLASSIFICATION_WORDS):
            continue
        val = validation[1] if key is None else validation[1].get(key)
        if val is None or isinstance(labels, (dict, list, tuple)):
            continue
        train_ids, val_ids = _class_ids(labels), _class_ids(val)
        if len(val_ids) == 0:
            continue
        classes = np.union1d(train_ids, val_ids)
        where = f"y/{key}" if key else "y"
        if len(np.unique(val_ids)) == 1 and len(classes) > 1:
            warnings.warn(f"validation_split={validation_split} takes the last {len(val_ids)} rows, and all of "
                          f"them are class {val_ids[0]} of {where} (the training rows hold {len(classes)} "
                          "classes): shuffle the data first (fnnet.shuffled), or pass validation_data",
                          stacklevel=3)
            continue
        share = lambda ids: np.array([np.mean(ids == c) for c in classes])  # noqa: E731
        distance = 0.5 * np.abs(share(train_ids) - share(val_ids)).sum()
        if distance > _FAR:
            warnings.warn(f"validation_split={validation_split}: the label mix of {where} in the last "
                          f"{len(val_ids)} rows is far from the training rows' (total variation {distance:.2f}); "
                          "the data may be sorted: shuffle it first, or pass validation_data", stacklevel=3)


def check_data(model, x, y=None, *, loss=None, validation=None, validation_split=0.0) -> None:
    """Raise :class:`DataError` naming the first bad value in ``x``, ``y`` or ``validation``.

    Checks NaN/inf in every float leaf, ids for an ``Embedding`` that reads the model's
    input, and labels for sparse cross-entropy losses (against the model's output width);
    warns when a ``validation_split`` holds one class, or a label mix far from training's.
    :func:`fnnet.fit`, :func:`fnnet.evaluate` and :func:`fnnet.predict` call it first.

    >>> import fnnet, numpy as np
    >>> from fnnet.training.validation import DataError, check_data
    >>> model = fnnet.serial(fnnet.Embedding(10, 4), fnnet.Flatten, fnnet.Dense(3))
    >>> try:
    ...     check_data(model, np.array([[1, 2], [3, -1]]))
    ... except DataError as e:
    ...     print(e)  # doctest: +ELLIPSIS
    x: id for Embedding 'embedding' (input_dim=10): -1 at row 1, column 1 is outside [0, 10) ...
    """
    _check_finite("x", x)
    if y is not None:
        _check_finite("y", y)
    if validation is not None:
        _check_finite("validation x", validation[0])
        _check_finite("validation y", validation[1])
    _check_embedding_ids(model, x)
    if validation is not None:
        _check_embedding_ids(model, validation[0], "validation x")
    if y is not None and loss is not None:
        _check_labels(model, x, y, loss)
        if validation is not None:
            _check_labels(model, validation[0], validation[1], loss, "validation y")
        _check_split(loss, y, validation, validation_split)


def epoch_data_error(epoch: int, x, y) -> DataError:
    """The :class:`DataError` for an epoch whose on-device flag saw a non-finite ``x`` or ``y``.

    The jitted epoch only knows that some batch held NaN or inf; the training data is
    checked again here, on the host, to name the array, row and value.

    >>> import numpy as np
    >>> print(epoch_data_error(3, np.zeros((2, 2)), np.array([[0.0], [np.inf]])))
    epoch 3: a training batch held non-finite values: y: inf at row 1, column 0 (1 non-finite value in all); \
clean or impute the data first
    """
    where = f"epoch {epoch}: a training batch held non-finite values"
    try:
        _check_finite("x", x)
        _check_finite("y", y)
    except DataError as error:
        return DataError(f"{where}: {error}")
    return DataError(f"{where} in x or y, though the data as given is finite now (was it changed during fit?)")

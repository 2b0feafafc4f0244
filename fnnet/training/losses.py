"""Losses by Keras name or callable, as per-example functions.

Every built-in loss maps ``(y_true, y_pred)`` with a leading batch axis to one value per
example (shape ``(batch,)``); a batch's loss is their mean. Keeping the per-example form
is what lets fit and evaluate weight the last, partial batch exactly and mask padded rows.

Names (Keras's): ``'mse'``/``'mean_squared_error'``, ``'mae'``/``'mean_absolute_error'``,
``'huber'``, ``'binary_crossentropy'``, ``'categorical_crossentropy'``,
``'sparse_categorical_crossentropy'``, and fnnet's ``'..._from_logits'`` variants of the
three cross-entropies (Keras spells these ``BinaryCrossentropy(from_logits=True)``).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

# Keras's backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON] before the log.
EPSILON = 1e-7


def per_example_mean(values):
    """Average ``values`` over every axis but the first: one value per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.per_example_mean(jnp.ones((4, 3, 2))).shape
    (4,)
    """
    values = jnp.asarray(values)
    if values.ndim <= 1:
        return values
    return jnp.mean(values.reshape(values.shape[0], -1), axis=1)


def _aligned(y_true, y_pred, loss_name):
    """``(y_true, y_pred)`` as jax arrays, ``y_true`` shaped and typed like ``y_pred``.

    (batch,) targets against (batch, 1) outputs, and the reverse, are aligned.

    Without this, ``(batch,) - (batch, 1)`` silently broadcasts to ``(batch, batch)``.
    """
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    elif y_pred.ndim == y_true.ndim - 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{loss_name}: y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
                         "they must match (a trailing axis of size 1 may be missing on either side)")
    return y_true.astype(y_pred.dtype), y_pred


def mean_squared_error(y_true, y_pred):
    """Squared error, averaged per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.mean_squared_error(jnp.array([[1.0], [2.0]]), jnp.array([[1.0], [4.0]])).tolist()
    [0.0, 4.0]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "mean_squared_error")
    return per_example_mean(jnp.square(y_pred - y_true))


def mean_absolute_error(y_true, y_pred):
    """Absolute error, averaged per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.mean_absolute_error(jnp.array([1.0, 2.0]), jnp.array([[1.5], [1.0]])).tolist()
    [0.5, 1.0]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "mean_absolute_error")
    return per_example_mean(jnp.abs(y_pred - y_true))


def huber(y_true, y_pred, delta=1.0):
    """Huber loss (quadratic within ``delta``, linear beyond), averaged per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.huber(jnp.zeros(2), jnp.array([0.5, 3.0])).tolist()
    [0.125, 2.5]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "huber")
    return per_example_mean(optax.losses.huber_loss(y_pred, y_true, delta=delta))


def binary_crossentropy(y_true, y_pred, from_logits=False):
    """Binary cross-entropy of probabilities (clipped as Keras does) or of logits.

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.binary_crossentropy(jnp.array([1.0, 0.0]), jnp.array([0.9, 0.2])).tolist()]
    [0.1054, 0.2231]
    >>> [round(v, 4) for v in fnnet.losses.binary_crossentropy(jnp.array([1.0]), jnp.array([0.0]), from_logits=True).tolist()]
    [0.6931]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "binary_crossentropy")
    if from_logits:
        return per_example_mean(optax.sigmoid_binary_cross_entropy(y_pred, y_true))
    p = jnp.clip(y_pred, EPSILON, 1.0 - EPSILON)
    return per_example_mean(-(y_true * jnp.log(p) + (1.0 - y_true) * jnp.log1p(-p)))


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Cross-entropy against one-hot (or soft) targets over the last axis.

    Probabilities are renormalised and clipped as Keras does; logits go through a
    stable log-softmax.

    >>> import fnnet, jax.numpy as jnp
    >>> y = jnp.array([[0.0, 1.0]])
    >>> [round(v, 4) for v in fnnet.losses.categorical_crossentropy(y, jnp.array([[0.25, 0.75]])).tolist()]
    [0.2877]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "categorical_crossentropy")
    if from_logits:
        return per_example_mean(optax.softmax_cross_entropy(y_pred, y_true))
    p = y_pred / jnp.sum(y_pred, axis=-1, keepdims=True)
    p = jnp.clip(p, EPSILON, 1.0 - EPSILON)
    return per_example_mean(-jnp.sum(y_true * jnp.log(p), axis=-1))


def integer_labels(y_true, y_pred, name):
    """``y_true`` as int32 class labels fitting ``y_pred`` (a trailing axis of 1 dropped), or a
    ``ValueError`` naming ``name`` (shared with :mod:`fnnet.metrics`).

    >>> import jax.numpy as jnp
    >>> integer_labels(jnp.array([[1], [0]]), jnp.ones((2, 3)), 'accuracy').tolist()
    [1, 0]
    """
    y_true = jnp.asarray(y_true)
    y_pred = jnp.asarray(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(f"{name}: integer labels of shape {y_true.shape} do not fit predictions of shape "
                         f"{y_pred.shape} (labels need the predictions' shape without the class axis)")
    return y_true.astype(jnp.int32)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Cross-entropy against integer class labels (``y_true`` without the class axis).

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.sparse_categorical_crossentropy(jnp.array([1]), jnp.array([[0.25, 0.75]])).tolist()]
    [0.2877]
    """
    y_pred = jnp.asarray(y_pred)
    labels = integer_labels(y_true, y_pred, "sparse_categorical_crossentropy")
    if from_logits:
        return per_example_mean(optax.softmax_cross_entropy_with_integer_labels(y_pred, labels))
    p = y_pred / jnp.sum(y_pred, axis=-1, keepdims=True)
    p = jnp.clip(p, EPSILON, 1.0 - EPSILON)
    picked = jnp.take_along_axis(jnp.log(p), labels[..., None], axis=-1)[..., 0]
    return per_example_mean(-picked)


LOSSES: dict[str, Callable] = {
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "huber": huber,
    "huber_loss": huber,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "binary_crossentropy_from_logits": functools.partial(binary_crossentropy, from_logits=True),
    "categorical_crossentropy_from_logits": functools.partial(categorical_crossentropy, from_logits=True),
    "sparse_categorical_crossentropy_from_logits": functools.partial(sparse_categorical_crossentropy,
                                                                     from_logits=True),
}

_BUILT_IN = {mean_squared_error, mean_absolute_error, huber, binary_crossentropy, categorical_crossentropy,
             sparse_categorical_crossentropy}


class Loss(NamedTuple):
    """A resolved loss: its ``name`` and ``per_example(y_true, y_pred) -> (batch,)``.

    ``from_logits`` is True for the logits variants (accuracy then thresholds at 0).
    """

    name: str
    per_example: Callable
    from_logits: bool = False

    def __call__(self, y_true, y_pred):
        """The batch loss: the mean of the per-example values."""
        return jnp.mean(self.per_example(y_true, y_pred))


def _is_built_in(fn) -> bool:
    return fn in _BUILT_IN or (isinstance(fn, functools.partial) and fn.func in _BUILT_IN)


def _with_batch_axis(tree):
    return jax.tree_util.tree_map(lambda a: a[None], tree)


def per_example(fn: Callable) -> Callable:
    """Turn a batch function ``fn(y_true, y_pred) -> scalar`` into one value per example.

    ``fn`` is applied to each example as a batch of one (``jax.vmap``), so a loss or
    metric written as a mean over its batch, as every Keras loss is, gives exactly its
    batch value back as the mean of the per-example values; that is what lets a partial
    or padded batch be weighted exactly. Built-in losses are already per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fn = fnnet.losses.per_example(lambda t, p: jnp.mean(jnp.abs(t - p)))
    >>> fn(jnp.array([[1.0], [2.0]]), jnp.array([[0.0], [0.0]])).tolist()
    [1.0, 2.0]
    """
    if _is_built_in(fn):
        return fn

    def one(t, p):
        return jnp.mean(jnp.asarray(fn(_with_batch_axis(t), _with_batch_axis(p))))

    return jax.vmap(one)


def over_outputs(fn, average=False):
    """Apply a per-example function to each (y_true, y_pred) leaf pair and sum (losses, as Keras
    sums multi-output losses) or ``average`` (metrics) the results (shared with :mod:`fnnet.metrics`)."""

    def total(y_true, y_pred):
        trues, preds = jax.tree_util.tree_leaves(y_true), jax.tree_util.tree_leaves(y_pred)
        if len(preds) == 1 and len(trues) == 1:
            return fn(trues[0], preds[0])
        if len(trues) != len(preds):
            raise ValueError(f"the model has {len(preds)} outputs but y holds {len(trues)} arrays")
        total_value = sum(fn(t, p) for t, p in zip(trues, preds))
        return total_value / len(preds) if average else total_value

    return total


def name_of(fn) -> str:
    """The history key of a loss or metric function (its ``__name__``; a partial's function's).

    >>> import functools
    >>> name_of(functools.partial(mean_squared_error))
    'mean_squared_error'
    """
    return getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", None) or "loss"


def get_loss(loss) -> Loss:
    """Resolve a loss given by Keras name, :class:`Loss` or callable ``(y_true, y_pred) -> scalar``.

    Named losses applied to a model with several outputs (pytrees ``y``) are summed over
    the outputs, as in Keras. A callable receives the whole ``y`` pytrees.

    >>> import fnnet, jax.numpy as jnp
    >>> mse = fnnet.get_loss('mse')
    >>> mse.name, float(mse(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0])))
    ('mean_squared_error', 2.0)
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        key = loss.lower()
        if key not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; known names: {', '.join(sorted(LOSSES))}")
        fn = LOSSES[key]
        return Loss(name_of(fn) + ("_from_logits" if key.endswith("_from_logits") else ""),
                    over_outputs(fn), key.endswith("_from_logits"))
    if callable(loss):
        from_logits = isinstance(loss, functools.partial) and bool(loss.keywords.get("from_logits"))
        fn = over_outputs(loss) if _is_built_in(loss) else per_example(loss)
        return Loss(name_of(loss), fn, from_logits)
    raise TypeError(f"loss must be a Keras loss name or a callable (y_true, y_pred) -> scalar, got {loss!r}")

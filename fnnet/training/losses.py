"""Losses with Keras's names, formulas, defaults, ``sample_weight`` and ``reduction``.

Two spellings, as in Keras:

- **functions** (``binary_crossentropy(y_true, y_pred, from_logits=False, ...)``) return
  Keras's unreduced values: one per example for ``(batch, features)`` inputs, one per
  example and step for ``(batch, steps, features)``; 1-D inputs are one value per example;
- **classes** (``BinaryCrossentropy(from_logits=True, label_smoothing=0.1)``) return a
  :class:`Loss`, called as ``loss(y_true, y_pred, sample_weight=None)`` and reduced by its
  ``reduction`` (see :func:`reduce_loss`): ``'sum_over_batch_size'`` (the default,
  Σ w·l / N), ``'sum'`` (Σ w·l), ``'mean_with_sample_weight'`` (Σ w·l / Σ w) or ``None``
  (the weighted unreduced values).

:func:`get_loss` resolves a Keras name (``'mse'``, ``'binary_crossentropy'``, ...; see
``LOSSES``), a class name (``'BinaryCrossentropy'``), a :class:`Loss` or a callable.
fnnet also keeps its ``'..._from_logits'`` names for the three cross-entropies.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

# Keras's backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON] before the log.
EPSILON = 1e-7
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None, "none")


# --------------------------------------------------------------------------- shapes


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


def same_rank(a, b):
    """``(a, b)`` with a trailing axis of size 1 added or dropped when their ranks differ by one
    (Keras's rule for targets, predictions and weights), otherwise unchanged.

    >>> import jax.numpy as jnp
    >>> [x.shape for x in same_rank(jnp.ones(3), jnp.ones((3, 1)))]
    [(3, 1), (3, 1)]
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        a = a[..., 0] if b.ndim != 1 else a
        b = b[..., None] if b.ndim == 1 else b
    elif b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        b = b[..., 0] if a.ndim != 1 else b
        a = a[..., None] if a.ndim == 1 else a
    return a, b


def _aligned(y_true, y_pred, loss_name):
    """``(y_true, y_pred)`` as jax arrays, ``y_true`` shaped and typed like ``y_pred``.

    (batch,) targets against (batch, 1) outputs, and the reverse, are aligned.

    Without this, ``(batch,) - (batch, 1)`` silently broadcasts to ``(batch, batch)``.
    """
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if not jnp.issubdtype(y_pred.dtype, jnp.floating):
        y_pred = y_pred.astype(jnp.float32)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    elif y_pred.ndim == y_true.ndim - 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{loss_name}: y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
                         "they must match (a trailing axis of size 1 may be missing on either side)")
    return y_true.astype(y_pred.dtype), y_pred


def _mean_over(values, axis=-1):
    # Keras averages over the feature axis; fnnet reads 1-D inputs as one value per example.
    return values if values.ndim <= 1 else jnp.mean(values, axis=axis)


def _check_axis(axis, name):
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"{name}: axis must be an int, got {axis!r}")


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


def _divide_no_nan(a, b):
    return jnp.where(b == 0, jnp.zeros_like(a), a / jnp.where(b == 0, 1, b))


# --------------------------------------------------------------------------- reduction


def reduce_loss(values, sample_weight=None, reduction="sum_over_batch_size", mask=None):
    """Weight and reduce unreduced loss values as Keras does.

    ``sample_weight`` (per example, or shaped like ``values``) multiplies the values; a
    weight with fewer axes than ``values`` applies to every value of its example. Then
    ``'sum_over_batch_size'`` (or ``'mean'``) is Σ w·l / (number of values),
    ``'sum'`` Σ w·l, ``'mean_with_sample_weight'`` Σ w·l / Σ w (Σ l / N without weights),
    and ``None`` returns the weighted values. ``mask`` (True where a value counts, e.g.
    ``ignore_class``) divides ``'sum_over_batch_size'`` by the number of values kept.
    A zero divisor gives 0, as in Keras.

    >>> import fnnet, jax.numpy as jnp
    >>> values, w = jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([1.0, 0.0, 1.0, 0.0])
    >>> [float(fnnet.losses.reduce_loss(values, w, r)) for r in ('sum_over_batch_size', 'sum', 'mean_with_sample_weight')]
    [1.0, 4.0, 2.0]
    """
    _check_reduction(reduction)
    values = jnp.asarray(values)
    if not jnp.issubdtype(values.dtype, jnp.floating):
        values = values.astype(jnp.float32)
    weight = None if sample_weight is None else jnp.asarray(sample_weight, values.dtype)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if reduction in ("sum_over_batch_size", "mean"):
            # Kept values weigh total/kept, so the sum over all N values is divided by the kept count.
            mask_weight = jnp.where(mask, _divide_no_nan(jnp.float32(mask.size), jnp.sum(mask)), 0.0)
        else:
            mask_weight = mask
        mask_weight = mask_weight.astype(values.dtype)
        if weight is None:
            weight = mask_weight
        else:
            mask_weight, weight = same_rank(mask_weight, weight)
            weight = weight * mask_weight
    if weight is not None:
        values, weight = same_rank(values, weight)
        if weight.ndim < values.ndim:  # per-example weights on per-step values
            weight = weight.reshape(weight.shape + (1,) * (values.ndim - weight.ndim))
        values = values * weight
    if reduction in (None, "none") or values.shape in ((), (0,)):
        return values
    total = jnp.sum(values)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and weight is not None:
        # Σ of the weights as applied: a per-example weight counts once per value of its example.
        return _divide_no_nan(total, jnp.sum(jnp.broadcast_to(weight, values.shape)))
    return _divide_no_nan(total, jnp.asarray(values.size, values.dtype))


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


# --------------------------------------------------------------------------- regression


def mean_squared_error(y_true, y_pred):
    """Squared error, averaged over the last axis.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.mean_squared_error(jnp.array([[1.0], [2.0]]), jnp.array([[1.0], [4.0]])).tolist()
    [0.0, 4.0]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "mean_squared_error")
    return _mean_over(jnp.square(y_pred - y_true))


def mean_absolute_error(y_true, y_pred):
    """Absolute error, averaged over the last axis.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.mean_absolute_error(jnp.array([1.0, 2.0]), jnp.array([[1.5], [1.0]])).tolist()
    [0.5, 1.0]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "mean_absolute_error")
    return _mean_over(jnp.abs(y_pred - y_true))


def mean_absolute_percentage_error(y_true, y_pred):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, EPSILON))`` over the last axis.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.mean_absolute_percentage_error(jnp.array([[2.0, 4.0]]), jnp.array([[1.0, 5.0]])).tolist()
    [37.5]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "mean_absolute_percentage_error")
    return 100.0 * _mean_over(jnp.abs((y_true - y_pred) / jnp.maximum(jnp.abs(y_true), EPSILON)))


def mean_squared_logarithmic_error(y_true, y_pred):
    """``mean((log(1 + y_pred) - log(1 + y_true))^2)`` over the last axis, inputs floored at EPSILON.

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.mean_squared_logarithmic_error(jnp.array([[0.0]]), jnp.array([[1.0]])).tolist()]
    [0.4805]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "mean_squared_logarithmic_error")
    first, second = jnp.log(jnp.maximum(y_pred, EPSILON) + 1.0), jnp.log(jnp.maximum(y_true, EPSILON) + 1.0)
    return _mean_over(jnp.square(first - second))


def huber(y_true, y_pred, delta=1.0):
    """Huber loss (quadratic within ``delta``, linear beyond), averaged over the last axis.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.huber(jnp.zeros(2), jnp.array([0.5, 3.0])).tolist()
    [0.125, 2.5]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "huber")
    return _mean_over(optax.losses.huber_loss(y_pred, y_true, delta=delta))


def log_cosh(y_true, y_pred):
    """``log(cosh(y_pred - y_true))`` (computed stably), averaged over the last axis.

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.log_cosh(jnp.zeros((1, 2)), jnp.array([[1.0, -1.0]])).tolist()]
    [0.4338]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "log_cosh")
    x = y_pred - y_true
    return _mean_over(x + jax.nn.softplus(-2.0 * x) - jnp.log(2.0).astype(x.dtype))


def l2_normalize(x, axis=-1):
    """``x / ||x||`` along ``axis`` as Keras computes it (the inverse norm capped at ``1 / EPSILON``).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.l2_normalize(jnp.array([[3.0, 4.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    x = jnp.asarray(x)
    inverse_norm = jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
    return x * jnp.minimum(inverse_norm, 1.0 / EPSILON)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Minus the cosine similarity along ``axis`` (a loss: -1 is best), as Keras's loss.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.cosine_similarity(jnp.array([[1.0, 0.0], [1.0, 0.0]]), jnp.array([[2.0, 0.0], [0.0, 3.0]])).tolist()
    [-1.0, -0.0]
    """
    _check_axis(axis, "cosine_similarity")
    y_true, y_pred = _aligned(y_true, y_pred, "cosine_similarity")
    return -jnp.sum(l2_normalize(y_true, axis) * l2_normalize(y_pred, axis), axis=axis)


def poisson(y_true, y_pred):
    """``mean(y_pred - y_true * log(y_pred + EPSILON))`` over the last axis.

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.poisson(jnp.array([[1.0]]), jnp.array([[2.0]])).tolist()]
    [1.3069]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "poisson")
    return _mean_over(y_pred - y_true * jnp.log(y_pred + EPSILON))


def kl_divergence(y_true, y_pred):
    """``sum(y_true * log(y_true / y_pred))`` over the last axis, both clipped to [EPSILON, 1].

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.kl_divergence(jnp.array([[0.5, 0.5]]), jnp.array([[0.25, 0.75]])).tolist()]
    [0.1438]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "kl_divergence")
    y_true, y_pred = jnp.clip(y_true, EPSILON, 1.0), jnp.clip(y_pred, EPSILON, 1.0)
    return jnp.sum(y_true * jnp.log(y_true / y_pred), axis=-1)


# --------------------------------------------------------------------------- hinge


def _hinge_labels(y_true):
    # Keras: targets that are all 0 or 1 are read as -1 / 1 (decided over the whole batch).
    binary = jnp.all((y_true == 0) | (y_true == 1))
    return jnp.where(binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true, y_pred):
    """``mean(max(1 - y_true * y_pred, 0))`` over the last axis; 0/1 targets are read as -1/1.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.hinge(jnp.array([[1.0], [0.0]]), jnp.array([[0.5], [0.5]])).tolist()
    [0.5, 1.5]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "hinge")
    return _mean_over(jnp.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0))


def squared_hinge(y_true, y_pred):
    """``mean(max(1 - y_true * y_pred, 0)^2)`` over the last axis; 0/1 targets are read as -1/1.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.squared_hinge(jnp.array([[1.0], [0.0]]), jnp.array([[0.5], [0.5]])).tolist()
    [0.25, 2.25]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "squared_hinge")
    return _mean_over(jnp.square(jnp.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0)))


def categorical_hinge(y_true, y_pred):
    """``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`` over the last axis.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.categorical_hinge(jnp.array([[0.0, 1.0]]), jnp.array([[0.25, 0.75]])).tolist()
    [0.5]
    """
    y_true, y_pred = _aligned(y_true, y_pred, "categorical_hinge")
    positive = jnp.sum(y_true * y_pred, axis=-1)
    negative = jnp.max((1.0 - y_true) * y_pred, axis=-1)
    return jnp.maximum(negative - positive + 1.0, 0.0)


# --------------------------------------------------------------------------- cross-entropies


def _binary_elementwise(y_true, y_pred, from_logits):
    if from_logits:
        return optax.sigmoid_binary_cross_entropy(y_pred, y_true)
    # Keras's formula exactly: clip, then log(p) and log(1 - p) (not log1p).
    p = jnp.clip(y_pred, EPSILON, 1.0 - EPSILON)
    return -(y_true * jnp.log(p) + (1.0 - y_true) * jnp.log(1.0 - p))


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary cross-entropy of probabilities (clipped as Keras does) or of logits, averaged over ``axis``.

    ``label_smoothing`` moves targets towards 0.5: ``y * (1 - s) + s / 2``.

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.binary_crossentropy(jnp.array([1.0, 0.0]), jnp.array([0.9, 0.2])).tolist()]
    [0.1054, 0.2231]
    >>> [round(v, 4) for v in fnnet.losses.binary_crossentropy(jnp.array([1.0]), jnp.array([0.0]), from_logits=True).tolist()]
    [0.6931]
    """
    _check_axis(axis, "binary_crossentropy")
    y_true, y_pred = _aligned(y_true, y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return _mean_over(_binary_elementwise(y_true, y_pred, from_logits), axis)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary cross-entropy scaled by ``(1 - p_t)^gamma`` (and by ``alpha``/``1 - alpha`` per class when
    ``apply_class_balancing``), averaged over ``axis``; Keras's focal loss.

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.binary_focal_crossentropy(jnp.array([[1.0]]), jnp.array([[0.5]])).tolist()]
    [0.1733]
    """
    _check_axis(axis, "binary_focal_crossentropy")
    y_true, y_pred = _aligned(y_true, y_pred, "binary_focal_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = jax.nn.sigmoid(y_pred)
    bce = _binary_elementwise(y_true, y_pred, from_logits=False)
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = jnp.power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return _mean_over(focal, axis)


def _smooth_one_hot(y_true, label_smoothing, axis):
    if not label_smoothing:
        return y_true
    return y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[axis]


def _log_probabilities(y_pred, from_logits, axis):
    if from_logits:
        return jax.nn.log_softmax(y_pred, axis=axis)
    p = y_pred / jnp.sum(y_pred, axis=axis, keepdims=True)
    return jnp.log(jnp.clip(p, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Cross-entropy against one-hot (or soft) targets over ``axis``.

    Probabilities are renormalised and clipped as Keras does; logits go through a stable
    log-softmax. ``label_smoothing`` mixes the targets with the uniform distribution.

    >>> import fnnet, jax.numpy as jnp
    >>> y = jnp.array([[0.0, 1.0]])
    >>> [round(v, 4) for v in fnnet.losses.categorical_crossentropy(y, jnp.array([[0.25, 0.75]])).tolist()]
    [0.2877]
    """
    _check_axis(axis, "categorical_crossentropy")
    y_true, y_pred = _aligned(y_true, y_pred, "categorical_crossentropy")
    y_true = _smooth_one_hot(y_true, label_smoothing, axis)
    if from_logits:
        return optax.softmax_cross_entropy(y_pred, y_true, axis=axis)
    return -jnp.sum(y_true * _log_probabilities(y_pred, False, axis), axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                                   axis=-1):
    """Categorical cross-entropy with each class's term scaled by ``alpha * (1 - p)^gamma``; Keras's focal loss.

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.categorical_focal_crossentropy(jnp.array([[0.0, 1.0]]), jnp.array([[0.5, 0.5]])).tolist()]
    [0.0433]
    """
    _check_axis(axis, "categorical_focal_crossentropy")
    y_true, y_pred = _aligned(y_true, y_pred, "categorical_focal_crossentropy")
    y_true = _smooth_one_hot(y_true, label_smoothing, axis)
    if from_logits:
        y_pred = jax.nn.softmax(y_pred, axis=axis)
    p = jnp.clip(y_pred / jnp.sum(y_pred, axis=axis, keepdims=True), EPSILON, 1.0 - EPSILON)
    return jnp.sum(alpha * jnp.power(1.0 - p, gamma) * (-y_true * jnp.log(p)), axis=axis)


def _sparse_values_and_mask(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    _check_axis(axis, "sparse_categorical_crossentropy")
    y_pred = jnp.asarray(y_pred)
    if not jnp.issubdtype(y_pred.dtype, jnp.floating):
        y_pred = y_pred.astype(jnp.float32)
    y_pred = jnp.moveaxis(y_pred, axis, -1)
    labels = integer_labels(y_true, y_pred, "sparse_categorical_crossentropy")
    valid = None if ignore_class is None else labels != ignore_class
    if valid is not None:
        labels = jnp.where(valid, labels, 0)  # any class: the value is masked out below
    if from_logits:
        values = optax.softmax_cross_entropy_with_integer_labels(y_pred, labels)
    else:
        log_p = _log_probabilities(y_pred, False, -1)
        values = -jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
    if valid is not None:
        values = jnp.where(valid, values, 0.0)
    return values, valid


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Cross-entropy against integer class labels (``y_true`` without the class axis ``axis``).

    Labels equal to ``ignore_class`` give 0 here; a :class:`SparseCategoricalCrossentropy`
    loss also leaves them out of the mean, as Keras does.

    >>> import fnnet, jax.numpy as jnp
    >>> [round(v, 4) for v in fnnet.losses.sparse_categorical_crossentropy(jnp.array([1]), jnp.array([[0.25, 0.75]])).tolist()]
    [0.2877]
    """
    return _sparse_values_and_mask(y_true, y_pred, from_logits, ignore_class, axis)[0]


# --------------------------------------------------------------------------- segmentation, metric learning, sequences


def dice(y_true, y_pred, axis=None):
    """``1 - 2 Σ(y_true·y_pred) / (Σ y_true + Σ y_pred + EPSILON)`` over ``axis`` (None: all axes, one
    value for the whole batch, as Keras).

    >>> import fnnet, jax.numpy as jnp
    >>> round(float(fnnet.losses.dice(jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 1.0]]))), 4)
    0.3333
    """
    y_true, y_pred = _aligned(y_true, y_pred, "dice")
    intersection = jnp.sum(y_true * y_pred, axis=axis)
    return 1.0 - 2.0 * intersection / (jnp.sum(y_true, axis=axis) + jnp.sum(y_pred, axis=axis) + EPSILON)


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """``1 - TP / (TP + alpha·FP + beta·FN + EPSILON)`` over ``axis`` with Keras's soft counts
    (``FP = Σ y_true·(1 - y_pred)``, ``FN = Σ y_pred·(1 - y_true)``); None: all axes.

    >>> import fnnet, jax.numpy as jnp
    >>> round(float(fnnet.losses.tversky(jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 1.0]]))), 4)
    0.3333
    """
    y_true, y_pred = _aligned(y_true, y_pred, "tversky")
    intersection = jnp.sum(y_true * y_pred, axis=axis)
    fp = jnp.sum((1.0 - y_pred) * y_true, axis=axis)
    fn = jnp.sum(y_pred * (1.0 - y_true), axis=axis)
    return 1.0 - intersection / (intersection + alpha * fp + beta * fn + EPSILON)


def _circle_values_and_mask(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True, gamma=80.0,
                            margin=0.4):
    y_pred = jnp.asarray(y_pred)
    if not jnp.issubdtype(y_pred.dtype, jnp.floating):
        y_pred = y_pred.astype(jnp.float32)
    labels = jnp.asarray(y_true).astype(jnp.int32).reshape(-1)
    refs = y_pred if ref_embeddings is None else jnp.asarray(ref_embeddings, y_pred.dtype)
    ref_labels = labels if ref_labels is None else jnp.asarray(ref_labels).astype(jnp.int32).reshape(-1)
    if y_pred.ndim != 2 or labels.shape[0] != y_pred.shape[0]:
        raise ValueError(f"circle: expects integer labels (batch,) and embeddings (batch, dim), got y_true of "
                         f"shape {jnp.shape(y_true)} and y_pred of shape {y_pred.shape}")
    distances = jnp.maximum(1.0 - y_pred @ refs.T, 0.0)  # cosine distances of L2-normalised embeddings
    positive = labels[:, None] == ref_labels[None, :]
    negative = ~positive
    if remove_diagonal:
        positive = positive & ~jnp.eye(labels.shape[0], ref_labels.shape[0], dtype=bool)
    pos_weights = jnp.maximum((margin + distances) * positive, 0.0)
    neg_weights = jnp.maximum((1.0 + margin - distances) * negative, 0.0)
    pos_logits = -gamma * pos_weights * (margin - distances)
    neg_logits = gamma * neg_weights * ((1.0 - margin) - distances)
    p_loss = jax.scipy.special.logsumexp(jnp.where(positive, pos_logits, -jnp.inf), axis=1)
    n_loss = jax.scipy.special.logsumexp(jnp.where(negative, neg_logits, -jnp.inf), axis=1)
    values = jax.nn.softplus(p_loss + n_loss)
    return values, values > 0


def circle(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True, gamma=80, margin=0.4):
    """Circle loss (Sun et al. 2020) of L2-normalised embeddings ``y_pred`` with integer labels ``y_true``,
    one value per example; pairs come from the batch (or ``ref_labels``/``ref_embeddings``).

    A :class:`Circle` loss averages over the examples with a positive loss, as Keras does.

    >>> import fnnet, jax.numpy as jnp
    >>> emb = fnnet.losses.l2_normalize(jnp.array([[1.0, 0.1], [1.0, 0.0], [0.0, 1.0]]))
    >>> fnnet.losses.circle(jnp.array([0, 0, 1]), emb).shape
    (3,)
    """
    return _circle_values_and_mask(y_true, y_pred, ref_labels, ref_embeddings, remove_diagonal, gamma, margin)[0]


def ctc(y_true, y_pred):
    """Connectionist temporal classification loss per sequence (``optax.ctc_loss``), as Keras's ``ctc``.

    ``y_true``: integer labels ``(batch, max_label_length)``, padded with 0 after each
    sequence's labels (0 is the blank class); ``y_pred``: logits ``(batch, steps, classes)``.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.losses.ctc(jnp.array([[1, 2, 0]]), jnp.zeros((1, 5, 3))).shape
    (1,)
    """
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if y_true.ndim != 2:
        raise ValueError(f"ctc: y_true must be integer labels of shape (batch, max_length), got shape {y_true.shape}")
    if y_pred.ndim != 3:
        raise ValueError(f"ctc: y_pred must be logits of shape (batch, steps, classes), got shape {y_pred.shape}")
    labels = y_true.astype(jnp.int32)
    lengths = jnp.sum(labels != 0, axis=-1)
    label_paddings = (jnp.arange(labels.shape[1])[None, :] >= lengths[:, None]).astype(y_pred.dtype)
    logit_paddings = jnp.zeros(y_pred.shape[:2], y_pred.dtype)
    return optax.ctc_loss(y_pred, logit_paddings, labels, label_paddings, blank_id=0)


# --------------------------------------------------------------------------- Loss


class Loss(NamedTuple):
    """A resolved loss: its ``name``, ``per_example(y_true, y_pred) -> (batch,)``, ``from_logits``
    (accuracy then thresholds at 0), its ``reduction``, and ``unreduced(y_true, y_pred) ->
    (values, mask or None)`` (Keras's unreduced values of one output; None: use ``per_example``).

    ``loss(y_true, y_pred, sample_weight=None)`` is the batch loss, Keras's value
    (:func:`reduce_loss`); for a model with several outputs (pytrees ``y``) the outputs'
    losses are summed. ``per_example`` is the unweighted mean of each example's values
    (where Keras masks values out, ``ignore_class`` labels and circle's zero losses, they
    count as 0 there; only ``loss(...)`` divides by the number of values kept).

    >>> import fnnet, jax.numpy as jnp
    >>> loss = fnnet.losses.MeanAbsoluteError()
    >>> float(loss(jnp.array([0.0, 0.0]), jnp.array([1.0, 3.0]), sample_weight=jnp.array([1.0, 0.0])))
    0.5
    """

    name: str
    per_example: Callable
    from_logits: bool = False
    reduction: str | None = "sum_over_batch_size"
    unreduced: Callable | None = None

    def __call__(self, y_true, y_pred, sample_weight=None, *, rows=None):
        """The batch loss: the values weighted by ``sample_weight`` and reduced by ``reduction``.

        ``rows`` (a boolean per example) keeps only those rows, as if the batch held just them
        (padded evaluation rows); None keeps every row.
        """
        if self.unreduced is None:
            return reduce_loss(self.per_example(y_true, y_pred), sample_weight, self.reduction, rows)
        trues, preds = output_leaves(y_true), output_leaves(y_pred)
        if len(trues) != len(preds):
            raise ValueError(f"the model has {len(preds)} outputs but y holds {len(trues)} arrays")
        total = 0.0
        for t, p in zip(trues, preds):
            values, mask = self.unreduced(t, p)
            values = jnp.asarray(values)
            if rows is not None and values.ndim > 0:  # a whole-batch value (dice, axis=None) has no rows
                kept = jnp.broadcast_to(rows.reshape(rows.shape + (1,) * (values.ndim - 1)), values.shape)
                mask = kept if mask is None else kept & jnp.broadcast_to(jnp.asarray(mask, bool), values.shape)
            total = total + reduce_loss(values, sample_weight, self.reduction, mask)
        return total


def _plain(fn):
    def values_and_mask(y_true, y_pred):
        return fn(y_true, y_pred), None

    return values_and_mask


_MASKED = {}  # public function -> its (values, mask) form, for the losses Keras masks


def _unreduced_of(fn, options):
    masked = _MASKED.get(fn)
    if masked is not None:
        return functools.partial(masked, **options)
    return _plain(functools.partial(fn, **options))


def _per_example_of(unreduced):
    def one_output(y_true, y_pred):
        values = jnp.asarray(unreduced(y_true, y_pred)[0])
        if values.ndim == 0:  # a whole-batch value (dice, tversky with axis=None): each example's share
            values = jnp.broadcast_to(values, jnp.shape(y_pred)[:1])
        return per_example_mean(values)

    return over_outputs(one_output)


def make_loss(fn, name=None, *, reduction="sum_over_batch_size", **options) -> Loss:
    """A :class:`Loss` from a built-in loss function and its keyword ``options`` (what the Keras-style
    classes below are made of).

    >>> import fnnet, jax.numpy as jnp
    >>> loss = fnnet.losses.make_loss(fnnet.losses.huber, delta=2.0, reduction='sum')
    >>> loss.name, float(loss(jnp.zeros(2), jnp.array([1.0, 3.0])))
    ('huber', 4.5)
    """
    _check_reduction(reduction)
    unreduced = _unreduced_of(fn, options)
    return Loss(name or name_of(fn), _per_example_of(unreduced), bool(options.get("from_logits", False)),
                reduction, unreduced)


def MeanSquaredError(reduction="sum_over_batch_size", name="mean_squared_error") -> Loss:
    """Keras's ``MeanSquaredError`` loss. ``fnnet.losses.MeanSquaredError()(y_true, y_pred)``.

    >>> import fnnet
    >>> float(fnnet.losses.MeanSquaredError()([[0.0], [0.0]], [[1.0], [3.0]]))
    5.0
    """
    return make_loss(mean_squared_error, name, reduction=reduction)


def MeanAbsoluteError(reduction="sum_over_batch_size", name="mean_absolute_error") -> Loss:
    """Keras's ``MeanAbsoluteError`` loss.

    >>> import fnnet
    >>> float(fnnet.losses.MeanAbsoluteError(reduction='sum')([[0.0], [0.0]], [[1.0], [3.0]]))
    4.0
    """
    return make_loss(mean_absolute_error, name, reduction=reduction)


def MeanAbsolutePercentageError(reduction="sum_over_batch_size", name="mean_absolute_percentage_error") -> Loss:
    """Keras's ``MeanAbsolutePercentageError`` loss.

    >>> import fnnet
    >>> float(fnnet.losses.MeanAbsolutePercentageError()([[2.0], [4.0]], [[1.0], [4.0]]))
    25.0
    """
    return make_loss(mean_absolute_percentage_error, name, reduction=reduction)


def MeanSquaredLogarithmicError(reduction="sum_over_batch_size", name="mean_squared_logarithmic_error") -> Loss:
    """Keras's ``MeanSquaredLogarithmicError`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.MeanSquaredLogarithmicError()([[0.0]], [[1.0]])), 4)
    0.4805
    """
    return make_loss(mean_squared_logarithmic_error, name, reduction=reduction)


def CosineSimilarity(axis=-1, reduction="sum_over_batch_size", name="cosine_similarity") -> Loss:
    """Keras's ``CosineSimilarity`` loss (minus the cosine similarity along ``axis``).

    >>> import fnnet
    >>> float(fnnet.losses.CosineSimilarity()([[1.0, 0.0]], [[3.0, 0.0]]))
    -1.0
    """
    return make_loss(cosine_similarity, name, reduction=reduction, axis=axis)


def Huber(delta=1.0, reduction="sum_over_batch_size", name="huber_loss") -> Loss:
    """Keras's ``Huber`` loss.

    >>> import fnnet
    >>> float(fnnet.losses.Huber(delta=1.0)([[0.0]], [[3.0]]))
    2.5
    """
    return make_loss(huber, name, reduction=reduction, delta=delta)


def LogCosh(reduction="sum_over_batch_size", name="log_cosh") -> Loss:
    """Keras's ``LogCosh`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.LogCosh()([[0.0]], [[1.0]])), 4)
    0.4338
    """
    return make_loss(log_cosh, name, reduction=reduction)


def Hinge(reduction="sum_over_batch_size", name="hinge") -> Loss:
    """Keras's ``Hinge`` loss.

    >>> import fnnet
    >>> float(fnnet.losses.Hinge()([[1.0], [0.0]], [[0.5], [0.5]]))
    1.0
    """
    return make_loss(hinge, name, reduction=reduction)


def SquaredHinge(reduction="sum_over_batch_size", name="squared_hinge") -> Loss:
    """Keras's ``SquaredHinge`` loss.

    >>> import fnnet
    >>> float(fnnet.losses.SquaredHinge()([[1.0], [0.0]], [[0.5], [0.5]]))
    1.25
    """
    return make_loss(squared_hinge, name, reduction=reduction)


def CategoricalHinge(reduction="sum_over_batch_size", name="categorical_hinge") -> Loss:
    """Keras's ``CategoricalHinge`` loss.

    >>> import fnnet
    >>> float(fnnet.losses.CategoricalHinge()([[0.0, 1.0]], [[0.25, 0.75]]))
    0.5
    """
    return make_loss(categorical_hinge, name, reduction=reduction)


def KLDivergence(reduction="sum_over_batch_size", name="kl_divergence") -> Loss:
    """Keras's ``KLDivergence`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.KLDivergence()([[0.5, 0.5]], [[0.25, 0.75]])), 4)
    0.1438
    """
    return make_loss(kl_divergence, name, reduction=reduction)


def Poisson(reduction="sum_over_batch_size", name="poisson") -> Loss:
    """Keras's ``Poisson`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.Poisson()([[1.0]], [[2.0]])), 4)
    1.3069
    """
    return make_loss(poisson, name, reduction=reduction)


def BinaryCrossentropy(from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                       name="binary_crossentropy") -> Loss:
    """Keras's ``BinaryCrossentropy`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1)([[1.0]], [[0.0]])), 4)
    0.6931
    """
    return make_loss(binary_crossentropy, name, reduction=reduction, from_logits=from_logits,
                     label_smoothing=label_smoothing, axis=axis)


def BinaryFocalCrossentropy(apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                            label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                            name="binary_focal_crossentropy") -> Loss:
    """Keras's ``BinaryFocalCrossentropy`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.BinaryFocalCrossentropy()([[1.0]], [[0.5]])), 4)
    0.1733
    """
    return make_loss(binary_focal_crossentropy, name, reduction=reduction,
                     apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma, from_logits=from_logits,
                     label_smoothing=label_smoothing, axis=axis)


def CategoricalCrossentropy(from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                            name="categorical_crossentropy") -> Loss:
    """Keras's ``CategoricalCrossentropy`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.CategoricalCrossentropy()([[0.0, 1.0]], [[0.25, 0.75]])), 4)
    0.2877
    """
    return make_loss(categorical_crossentropy, name, reduction=reduction, from_logits=from_logits,
                     label_smoothing=label_smoothing, axis=axis)


def CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy") -> Loss:
    """Keras's ``CategoricalFocalCrossentropy`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.CategoricalFocalCrossentropy()([[0.0, 1.0]], [[0.5, 0.5]])), 4)
    0.0433
    """
    return make_loss(categorical_focal_crossentropy, name, reduction=reduction, alpha=alpha, gamma=gamma,
                     from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)


def SparseCategoricalCrossentropy(from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                                  name="sparse_categorical_crossentropy") -> Loss:
    """Keras's ``SparseCategoricalCrossentropy`` loss; labels equal to ``ignore_class`` are left out
    (of the sum and of the count).

    >>> import fnnet
    >>> round(float(fnnet.losses.SparseCategoricalCrossentropy(ignore_class=0)([1, 0], [[0.25, 0.75], [0.9, 0.1]])), 4)
    0.2877
    """
    return make_loss(sparse_categorical_crossentropy, name, reduction=reduction, from_logits=from_logits,
                     ignore_class=ignore_class, axis=axis)


def Dice(reduction="sum_over_batch_size", name="dice", axis=None) -> Loss:
    """Keras's ``Dice`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.Dice()([[1.0, 0.0]], [[1.0, 1.0]])), 4)
    0.3333
    """
    return make_loss(dice, name, reduction=reduction, axis=axis)


def Tversky(alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky", axis=None) -> Loss:
    """Keras's ``Tversky`` loss.

    >>> import fnnet
    >>> round(float(fnnet.losses.Tversky(alpha=0.7, beta=0.3)([[1.0, 0.0]], [[1.0, 1.0]])), 4)
    0.2308
    """
    return make_loss(tversky, name, reduction=reduction, alpha=alpha, beta=beta, axis=axis)


def Circle(gamma=80.0, margin=0.4, remove_diagonal=True, reduction="sum_over_batch_size", name="circle") -> Loss:
    """Keras's ``Circle`` loss (averaged over the examples whose loss is positive).

    >>> import fnnet, jax.numpy as jnp
    >>> emb = fnnet.losses.l2_normalize(jnp.array([[1.0, 0.1], [1.0, 0.0], [0.0, 1.0]]))
    >>> float(fnnet.losses.Circle()(jnp.array([0, 0, 1]), emb)) > 0
    True
    """
    return make_loss(circle, name, reduction=reduction, gamma=gamma, margin=margin, remove_diagonal=remove_diagonal)


def CTC(reduction="sum_over_batch_size", name="ctc") -> Loss:
    """Keras's ``CTC`` loss.

    >>> import fnnet, jax.numpy as jnp
    >>> round(float(fnnet.losses.CTC()(jnp.array([[1, 0]]), jnp.zeros((1, 2, 2)))), 4)   # 3 paths of 1/4
    0.2877
    """
    return make_loss(ctc, name, reduction=reduction)


_MASKED.update({sparse_categorical_crossentropy: _sparse_values_and_mask, circle: _circle_values_and_mask})

LOSSES: dict[str, Callable] = {
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "mape": mean_absolute_percentage_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "msle": mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "huber": huber,
    "huber_loss": huber,
    "log_cosh": log_cosh,
    "logcosh": log_cosh,
    "cosine_similarity": cosine_similarity,
    "hinge": hinge,
    "squared_hinge": squared_hinge,
    "categorical_hinge": categorical_hinge,
    "kl_divergence": kl_divergence,
    "kld": kl_divergence,
    "kullback_leibler_divergence": kl_divergence,
    "poisson": poisson,
    "binary_crossentropy": binary_crossentropy,
    "binary_focal_crossentropy": binary_focal_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "categorical_focal_crossentropy": categorical_focal_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "dice": dice,
    "tversky": tversky,
    "circle": circle,
    "ctc": ctc,
    "binary_crossentropy_from_logits": functools.partial(binary_crossentropy, from_logits=True),
    "categorical_crossentropy_from_logits": functools.partial(categorical_crossentropy, from_logits=True),
    "sparse_categorical_crossentropy_from_logits": functools.partial(sparse_categorical_crossentropy,
                                                                     from_logits=True),
}

# Keras's class names, accepted as strings too (``get_loss('BinaryCrossentropy')``).
LOSS_CLASSES: dict[str, Callable] = {
    f.__name__: f for f in (MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
                            MeanSquaredLogarithmicError, CosineSimilarity, Huber, LogCosh, Hinge, SquaredHinge,
                            CategoricalHinge, KLDivergence, Poisson, BinaryCrossentropy, BinaryFocalCrossentropy,
                            CategoricalCrossentropy, CategoricalFocalCrossentropy, SparseCategoricalCrossentropy,
                            Dice, Tversky, Circle, CTC)
}

_BUILT_IN = {fn for fn in LOSSES.values() if not isinstance(fn, functools.partial)}


def _is_built_in(fn) -> bool:
    return fn in _BUILT_IN or (isinstance(fn, functools.partial) and fn.func in _BUILT_IN and not fn.args)


def _with_batch_axis(tree):
    return jax.tree_util.tree_map(lambda a: a[None], tree)


def per_example(fn: Callable) -> Callable:
    """Turn a batch function ``fn(y_true, y_pred) -> scalar`` into one value per example.

    ``fn`` is applied to each example as a batch of one (``jax.vmap``), so a loss or
    metric written as a mean over its batch, as every Keras loss is, gives exactly its
    batch value back as the mean of the per-example values; that is what lets a partial
    or padded batch be weighted exactly. Built-in losses give their per-example means.

    >>> import fnnet, jax.numpy as jnp
    >>> fn = fnnet.losses.per_example(lambda t, p: jnp.mean(jnp.abs(t - p)))
    >>> fn(jnp.array([[1.0], [2.0]]), jnp.array([[0.0], [0.0]])).tolist()
    [1.0, 2.0]
    """
    if _is_built_in(fn):
        if isinstance(fn, functools.partial):
            return _per_example_of(_unreduced_of(fn.func, fn.keywords))
        return _per_example_of(_unreduced_of(fn, {}))

    def one(t, p):
        return jnp.mean(jnp.asarray(fn(_with_batch_axis(t), _with_batch_axis(p))))

    return jax.vmap(one)


def output_leaves(y) -> list:
    """The outputs in ``y``: its pytree leaves, except that nested lists of numbers (as in Keras's
    examples) are one array, not one output per number (shared with :mod:`fnnet.metrics`).

    >>> import jax.numpy as jnp
    >>> [a.shape for a in output_leaves([[1.0], [2.0]])], len(output_leaves((jnp.ones(2), jnp.ones(2))))
    ([(2, 1)], 2)
    """
    leaves = jax.tree_util.tree_leaves(y)
    if isinstance(y, (list, tuple)) and leaves and all(isinstance(v, (int, float, bool)) for v in leaves):
        return [jnp.asarray(y)]
    return leaves


def over_outputs(fn, average=False):
    """Apply a per-example function to each (y_true, y_pred) leaf pair and sum (losses, as Keras
    sums multi-output losses) or ``average`` (metrics) the results (shared with :mod:`fnnet.metrics`).

    >>> import fnnet, jax.numpy as jnp
    >>> both = fnnet.losses.over_outputs(fnnet.losses.mean_absolute_error)
    >>> both((jnp.zeros(2), jnp.zeros(2)), (jnp.ones(2), 2 * jnp.ones(2))).tolist()
    [3.0, 3.0]
    """

    def total(y_true, y_pred):
        trues, preds = output_leaves(y_true), output_leaves(y_pred)
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
    """Resolve a loss given by Keras name, Keras class name, :class:`Loss` or callable
    ``(y_true, y_pred) -> scalar``.

    Named losses applied to a model with several outputs (pytrees ``y``) are summed over
    the outputs, as in Keras. A callable receives the whole ``y`` pytrees.

    >>> import fnnet, jax.numpy as jnp
    >>> mse = fnnet.get_loss('mse')
    >>> mse.name, float(mse(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0])))
    ('mean_squared_error', 2.0)
    >>> fnnet.get_loss('BinaryCrossentropy').name
    'binary_crossentropy'
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss in LOSS_CLASSES:
            return LOSS_CLASSES[loss]()
        key = loss.lower()
        if key not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; known names: {', '.join(sorted(LOSSES))} "
                             f"(or a class name: {', '.join(sorted(LOSS_CLASSES))})")
        fn = LOSSES[key]
        logits = key.endswith("_from_logits")
        if isinstance(fn, functools.partial):
            loss_value = make_loss(fn.func, **fn.keywords)
        else:
            loss_value = make_loss(fn)
        return loss_value._replace(name=name_of(fn) + ("_from_logits" if logits else ""), from_logits=logits)
    if callable(loss):
        if _is_built_in(loss):
            if isinstance(loss, functools.partial):
                return make_loss(loss.func, **loss.keywords)
            return make_loss(loss)
        from_logits = isinstance(loss, functools.partial) and bool(loss.keywords.get("from_logits"))
        return Loss(name_of(loss), per_example(loss), from_logits)
    raise TypeError(f"loss must be a Keras loss name or a callable (y_true, y_pred) -> scalar, got {loss!r}")

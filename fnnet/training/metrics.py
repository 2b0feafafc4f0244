"""Metrics by Keras name or callable, computed exactly over a whole data set.

A :class:`Metric` is a per-example function plus a ``finalize`` applied to the mean of
the per-example values over the data set: the mean itself for accuracy, MSE and MAE, its
square root for RMSE. So a metric over a data set seen in batches (the last one partial
or padded) is the metric of the whole data set, never an average of batch averages.

Names: ``'accuracy'``/``'acc'`` (binary, categorical or sparse, chosen from the shapes
and the loss as Keras does), ``'binary_accuracy'``, ``'categorical_accuracy'``,
``'sparse_categorical_accuracy'``, ``'mse'``, ``'rmse'``, ``'mae'`` and their long names.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax.numpy as jnp

from . import losses as _losses


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Fraction of outputs on the right side of ``threshold``, per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.binary_accuracy(jnp.array([1, 0, 1]), jnp.array([[0.8], [0.6], [0.3]])).tolist()
    [1.0, 0.0, 0.0]
    """
    y_true = jnp.asarray(y_true)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    hit = (y_pred > threshold) == (y_true > 0.5)
    return _losses.per_example_mean(hit.astype(jnp.float32))


def categorical_accuracy(y_true, y_pred):
    """1.0 where the arg-max of ``y_pred`` matches that of one-hot ``y_true``, per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.categorical_accuracy(jnp.eye(2), jnp.array([[0.9, 0.1], [0.8, 0.2]])).tolist()
    [1.0, 0.0]
    """
    hit = jnp.argmax(y_pred, axis=-1) == jnp.argmax(y_true, axis=-1)
    return _losses.per_example_mean(hit.astype(jnp.float32))


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the arg-max of ``y_pred`` equals the integer label, per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.sparse_categorical_accuracy(jnp.array([0, 0]), jnp.array([[0.9, 0.1], [0.2, 0.8]])).tolist()
    [1.0, 0.0]
    """
    labels = _losses.integer_labels(y_true, y_pred, "sparse_categorical_accuracy")
    hit = jnp.argmax(y_pred, axis=-1) == labels
    return _losses.per_example_mean(hit.astype(jnp.float32))


def accuracy(y_true, y_pred, from_logits=False):
    """Keras's ``'accuracy'``: binary, categorical or sparse, chosen from the shapes.

    One output column (or none) means binary accuracy, thresholded at 0.5, or at 0 for
    logits; targets shaped like the outputs mean one-hot targets; targets without the
    class axis mean integer labels.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.accuracy(jnp.array([2, 0]), jnp.array([[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]])).tolist()
    [1.0, 0.0]
    """
    y_true = jnp.asarray(y_true)
    if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
        return binary_accuracy(y_true, y_pred, threshold=0.0 if from_logits else 0.5)
    if y_true.shape == y_pred.shape:
        return categorical_accuracy(y_true, y_pred)
    return sparse_categorical_accuracy(y_true, y_pred)


def _identity(mean):
    return mean


class Metric(NamedTuple):
    """A resolved metric: ``name`` (its history key), ``per_example(y_true, y_pred) -> (batch,)``
    and ``finalize(mean of per-example values) -> value``.

    >>> import fnnet, jax.numpy as jnp
    >>> rmse = fnnet.get_metric('rmse')
    >>> round(float(rmse(jnp.array([0.0, 0.0]), jnp.array([3.0, 4.0]))), 4)  # sqrt((9 + 16) / 2)
    3.5355
    """

    name: str
    per_example: Callable
    finalize: Callable = _identity

    def __call__(self, y_true, y_pred):
        """The metric over one batch (or a whole data set given at once)."""
        return self.finalize(jnp.mean(self.per_example(y_true, y_pred)))


_BY_NAME: dict[str, tuple[Callable, Callable]] = {
    "binary_accuracy": (binary_accuracy, _identity),
    "categorical_accuracy": (categorical_accuracy, _identity),
    "sparse_categorical_accuracy": (sparse_categorical_accuracy, _identity),
    "mse": (_losses.mean_squared_error, _identity),
    "mean_squared_error": (_losses.mean_squared_error, _identity),
    "mae": (_losses.mean_absolute_error, _identity),
    "mean_absolute_error": (_losses.mean_absolute_error, _identity),
    "rmse": (_losses.mean_squared_error, jnp.sqrt),
    "root_mean_squared_error": (_losses.mean_squared_error, jnp.sqrt),
}
METRIC_NAMES = tuple(sorted(list(_BY_NAME) + ["accuracy", "acc"]))


def get_metric(metric, loss=None) -> Metric:
    """Resolve a metric given by Keras name, :class:`Metric` or callable ``(y_true, y_pred) -> scalar``.

    The history key is the name as given (``'mae'``, ``'accuracy'``) or the callable's
    ``__name__``. ``loss`` (name or :class:`fnnet.losses.Loss`) tells ``'accuracy'``
    whether binary outputs are logits. A callable must be a mean over its batch; it is
    applied one example at a time (see :func:`fnnet.losses.per_example`). For a model
    with several outputs, a named metric is averaged over them (Keras reports one per
    output; pass one callable per output for that).

    >>> import fnnet, jax.numpy as jnp
    >>> acc = fnnet.get_metric('accuracy', loss='binary_crossentropy_from_logits')
    >>> acc.name, float(acc(jnp.array([1.0, 0.0]), jnp.array([[0.3], [-0.2]])))
    ('accuracy', 1.0)
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        key = metric.lower()
        if key in ("accuracy", "acc"):
            from_logits = loss is not None and _losses.get_loss(loss).from_logits
            return Metric(metric, _losses.over_outputs(functools.partial(accuracy, from_logits=from_logits),
                                                        average=True))
        if key not in _BY_NAME:
            raise ValueError(f"unknown metric {metric!r}; known names: {', '.join(METRIC_NAMES)}")
        fn, finalize = _BY_NAME[key]
        return Metric(metric, _losses.over_outputs(fn, average=True), finalize)
    if callable(metric):
        return Metric(_losses.name_of(metric), _losses.per_example(metric))
    raise TypeError(f"metric must be a Keras metric name or a callable (y_true, y_pred) -> scalar, got {metric!r}")


def get_metrics(metrics, loss=None) -> tuple:
    """Resolve a sequence of metrics; history keys must be unique.

    >>> import fnnet
    >>> [m.name for m in fnnet.metrics.get_metrics(['mae', 'rmse'])]
    ['mae', 'rmse']
    """
    if isinstance(metrics, (str, Metric)) or callable(metrics):
        metrics = [metrics]
    resolved = tuple(get_metric(m, loss) for m in metrics)
    names = [m.name for m in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"metric names must be unique (they are history keys), got {duplicates} more than once")
    reserved = [n for n in names if n == "loss" or n.startswith("val_")]
    if reserved:
        raise ValueError(f"metric names {reserved} clash with history keys ('loss', 'val_*'); rename them")
    return resolved

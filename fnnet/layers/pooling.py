"""Pooling: stax's ``MaxPool``/``AvgPool``/``SumPool`` (with ``spec=`` layouts) and Keras's
``MaxPooling1D/2D``, ``AveragePooling1D/2D``, ``GlobalAveragePooling1D/2D``, ``GlobalMaxPooling1D/2D``."""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax

from ..core import expect_positive_int, layer, registered


def _full_window(window_shape, strides, spec):
    window_shape = tuple(window_shape)
    strides = tuple(strides) if strides else (1,) * len(window_shape)
    non_spatial = (0, len(window_shape) + 1) if spec is None else (spec.index("N"), spec.index("C"))
    for i in sorted(non_spatial):
        window_shape = window_shape[:i] + (1,) + window_shape[i:]
        strides = strides[:i] + (1,) + strides[i:]
    return window_shape, strides


def _expect_window(what, values):
    """Every size in a window or stride tuple must be a whole number >= 1, checked at construction
    (a zero or fractional size would otherwise fail deep inside ``lax.reduce_window``)."""
    if not isinstance(values, (tuple, list)):
        raise ValueError(f"{what} must be a tuple of positive integers, got {values!r}")
    for value in values:
        expect_positive_int(value, what)


def _pool(name, reducer, init_val, window_shape, strides, padding, spec, average):
    _expect_window(f"{name}: window_shape", window_shape)
    if strides:
        _expect_window(f"{name}: strides", strides)
    dims, steps = _full_window(window_shape, strides, spec)

    def apply(params, x):
        if x.ndim != len(dims):
            raise ValueError(f"expected inputs of rank {len(dims)}, got shape {tuple(x.shape)}")
        out = lax.reduce_window(x, x.dtype.type(init_val), reducer, dims, steps, padding)  # concrete: differentiable
        if not average:
            return out
        if padding == "SAME":  # average over the window's real (unpadded) elements
            counts = lax.reduce_window(jnp.ones_like(x), jnp.asarray(0, x.dtype), lax.add, dims, steps, padding)
            return out / counts
        return out / float(math.prod(window_shape))

    return layer(name, apply)


@registered("MaxPool")
def MaxPool(window_shape, strides=None, padding="VALID", spec=None):
    """Max pooling over the spatial axes (stax's ``MaxPool``; ``spec`` like ``'NHWC'``).

    >>> import fnnet, jax
    >>> fnnet.MaxPool((2, 2), strides=(2, 2)).init(jax.random.PRNGKey(0), (-1, 28, 28, 3))[0]
    (-1, 14, 14, 3)
    """
    return _pool("MaxPool", lax.max, -jnp.inf, window_shape, strides, padding, spec, average=False)


@registered("SumPool")
def SumPool(window_shape, strides=None, padding="VALID", spec=None):
    """Sum pooling over the spatial axes (stax's ``SumPool``).

    >>> import fnnet, jax
    >>> fnnet.SumPool((2,)).init(jax.random.PRNGKey(0), (-1, 10, 3))[0]
    (-1, 9, 3)
    """
    return _pool("SumPool", lax.add, 0.0, window_shape, strides, padding, spec, average=False)


@registered("AvgPool")
def AvgPool(window_shape, strides=None, padding="VALID", spec=None):
    """Average pooling (stax's ``AvgPool``); with ``'SAME'`` padding, padded cells are not counted.

    >>> import fnnet, jax
    >>> fnnet.AvgPool((3, 3), padding='SAME').init(jax.random.PRNGKey(0), (-1, 8, 8, 2))[0]
    (-1, 8, 8, 2)
    """
    return _pool("AvgPool", lax.add, 0.0, window_shape, strides, padding, spec, average=True)


def _keras_pool(name, constructor, ndim, pool_size, strides, padding):
    size = pool_size if isinstance(pool_size, (tuple, list)) else (pool_size,) * ndim
    _expect_window(f"{name}: pool_size", size)  # named as the Keras layer the user wrote
    steps = strides if strides is not None else size
    steps = steps if isinstance(steps, (tuple, list)) else (steps,) * ndim
    _expect_window(f"{name}: strides", steps)
    return constructor(tuple(size), tuple(steps), padding.upper())


@registered("MaxPooling1D")
def MaxPooling1D(pool_size=2, strides=None, padding="valid"):
    """Keras's ``MaxPooling1D`` on (batch, steps, channels); strides default to the pool size.

    >>> import fnnet, jax
    >>> fnnet.MaxPooling1D(2).init(jax.random.PRNGKey(0), (-1, 10, 3))[0]
    (-1, 5, 3)
    """
    return _keras_pool("MaxPooling1D", MaxPool, 1, pool_size, strides, padding)


@registered("MaxPooling2D")
def MaxPooling2D(pool_size=(2, 2), strides=None, padding="valid"):
    """Keras's ``MaxPooling2D`` on NHWC images; strides default to the pool size.

    >>> import fnnet, jax
    >>> fnnet.MaxPooling2D().init(jax.random.PRNGKey(0), (-1, 8, 8, 3))[0]
    (-1, 4, 4, 3)
    >>> fnnet.MaxPooling2D(pool_size=0)
    Traceback (most recent call last):
    ValueError: MaxPooling2D: pool_size must be a positive integer, got 0
    """
    return _keras_pool("MaxPooling2D", MaxPool, 2, pool_size, strides, padding)


@registered("AveragePooling1D")
def AveragePooling1D(pool_size=2, strides=None, padding="valid"):
    """Keras's ``AveragePooling1D``.

    >>> import fnnet, jax
    >>> fnnet.AveragePooling1D(2).init(jax.random.PRNGKey(0), (-1, 10, 3))[0]
    (-1, 5, 3)
    """
    return _keras_pool("AveragePooling1D", AvgPool, 1, pool_size, strides, padding)


@registered("AveragePooling2D")
def AveragePooling2D(pool_size=(2, 2), strides=None, padding="valid"):
    """Keras's ``AveragePooling2D``.

    >>> import fnnet, jax
    >>> fnnet.AveragePooling2D().init(jax.random.PRNGKey(0), (-1, 8, 8, 3))[0]
    (-1, 4, 4, 3)
    """
    return _keras_pool("AveragePooling2D", AvgPool, 2, pool_size, strides, padding)


def _global(name, reduce, ndim):
    def apply(params, x, *, mask):
        if x.ndim != ndim + 2:
            raise ValueError(f"expected inputs of rank {ndim + 2}, got shape {tuple(x.shape)}")
        axes = tuple(range(1, ndim + 1))
        if ndim == 1 and mask is not None and reduce == "mean":  # Keras: average real steps only
            weights = mask.astype(x.dtype)[..., None]
            return jnp.sum(x * weights, 1) / jnp.maximum(jnp.sum(weights, 1), 1.0)
        return jnp.mean(x, axes) if reduce == "mean" else jnp.max(x, axes)

    return layer(name, apply, compute_mask=lambda x, mask: None)


@registered("GlobalAveragePooling1D")
def GlobalAveragePooling1D():
    """Average over the steps of (batch, steps, channels), ignoring masked steps.

    >>> import fnnet, jax
    >>> fnnet.GlobalAveragePooling1D().init(jax.random.PRNGKey(0), (-1, 10, 3))[0]
    (-1, 3)
    """
    return _global("GlobalAveragePooling1D", "mean", 1)


@registered("GlobalAveragePooling2D")
def GlobalAveragePooling2D():
    """Average over the spatial axes of NHWC images.

    >>> import fnnet, jax
    >>> fnnet.GlobalAveragePooling2D().init(jax.random.PRNGKey(0), (-1, 8, 8, 3))[0]
    (-1, 3)
    """
    return _global("GlobalAveragePooling2D", "mean", 2)


@registered("GlobalMaxPooling1D")
def GlobalMaxPooling1D():
    """Maximum over the steps of (batch, steps, channels).

    >>> import fnnet, jax
    >>> fnnet.GlobalMaxPooling1D().init(jax.random.PRNGKey(0), (-1, 10, 3))[0]
    (-1, 3)
    """
    return _global("GlobalMaxPooling1D", "max", 1)


@registered("GlobalMaxPooling2D")
def GlobalMaxPooling2D():
    """Maximum over the spatial axes of NHWC images.

    >>> import fnnet, jax
    >>> fnnet.GlobalMaxPooling2D().init(jax.random.PRNGKey(0), (-1, 8, 8, 3))[0]
    (-1, 3)
    """
    return _global("GlobalMaxPooling2D", "max", 2)

"""``BatchNorm`` (with running statistics as model state) and ``LayerNorm``."""

from __future__ import annotations

import jax.numpy as jnp

from ..core import layer, registered
from ..initializers import get_initializer


def _reduction_axes(axis, ndim):
    if axis is None:  # every axis but the features (last): Keras's default, stax's for NHWC
        return tuple(range(ndim - 1))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


@registered("BatchNorm")
def BatchNorm(axis=None, epsilon=1e-5, center=True, scale=True, beta_init="zeros",
              gamma_init="ones", momentum=0.99):
    """Batch normalisation; ``axis`` lists the axes reduced over, as in stax.

    ``axis=None`` reduces over every axis but the last (stax's ``(0, 1, 2)`` for NHWC
    images, Keras's behaviour for any rank). Params are ``{'gamma', 'beta'}`` shaped
    like the kept axes; the state ``{'mean', 'var'}`` holds running statistics.

    - ``apply(params, x)`` (no state): normalises with the batch's statistics,
      exactly as stax's BatchNorm.
    - ``apply_with_state(params, state, x, train=True)`` -> ``(y, new_state)``: batch
      statistics, and the running ones updated with ``momentum`` (Keras's convention).
    - ``apply_with_state(params, state, x)`` (``train=False``) -> ``(y, state)``: running
      statistics.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> bn = fnnet.BatchNorm()
    >>> shape, params, state = bn.init_with_state(jax.random.PRNGKey(0), (None, 3))
    >>> x = jnp.arange(12.0).reshape(4, 3)
    >>> y, state = bn.apply_with_state(params, state, x, train=True)
    >>> [round(float(v), 2) for v in y.mean(0)], [round(float(m), 3) for m in state['mean']]
    ([0.0, 0.0, 0.0], [0.045, 0.055, 0.065])
    """
    beta_init, gamma_init = get_initializer(beta_init), get_initializer(gamma_init)

    def kept_shape(input_shape):
        axes = _reduction_axes(axis, len(input_shape))
        shape = tuple(d for i, d in enumerate(input_shape) if i not in axes)
        if -1 in shape:
            raise ValueError(f"the normalised axes must be known, got input shape {tuple(input_shape)}")
        return shape

    def init_params(rng, input_shape):
        shape = kept_shape(input_shape)
        params = {}
        if scale:
            params["gamma"] = gamma_init(rng, shape, jnp.float32)
        if center:
            params["beta"] = beta_init(rng, shape, jnp.float32)
        return params

    def init_state(input_shape):
        shape = kept_shape(input_shape)
        return {"mean": jnp.zeros(shape, jnp.float32), "var": jnp.ones(shape, jnp.float32)}

    def apply(params, state, x, *, train):
        axes = _reduction_axes(axis, x.ndim)
        expand = tuple(None if i in axes else slice(None) for i in range(x.ndim))
        if state is None or train:
            mean = jnp.mean(x, axes)
            var = jnp.mean(jnp.square(x - jnp.expand_dims(mean, axes)), axes)
        else:
            mean, var = state["mean"], state["var"]
        if state is not None and train:
            state = {"mean": momentum * state["mean"] + (1 - momentum) * mean,
                     "var": momentum * state["var"] + (1 - momentum) * var}
        y = (x - mean[expand]) * jnp.reciprocal(jnp.sqrt(var[expand] + epsilon))
        if scale:
            y = y * params["gamma"][expand]
        if center:
            y = y + params["beta"][expand]
        return y, state

    return layer("BatchNorm", apply, init_params, init_state=init_state, state_optional=True)


@registered("LayerNorm")
def LayerNorm(axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False):
    """Layer normalisation over ``axis`` (Keras's ``LayerNormalization``; per example).

    ``rms_scaling=True`` is Keras's option of that name: ``x * gamma / sqrt(var(x) + epsilon)``,
    scaled but not centred, with ``gamma`` and no ``beta`` whatever ``center`` and ``scale``
    say. (Keras 3 deprecates it because it divides by the variance about the mean, not by
    the root mean square; fnnet keeps that meaning so that Keras's models compute the same.)

    >>> import fnnet, jax, jax.numpy as jnp
    >>> _, params = fnnet.LayerNorm().init(jax.random.PRNGKey(0), (-1, 4))
    >>> y = fnnet.LayerNorm().apply(params, jnp.array([[1.0, 2.0, 3.0, 4.0]]))
    >>> round(float(y.mean()), 6), round(float(y.std()), 2)
    (0.0, 1.0)
    >>> rms = fnnet.LayerNorm(rms_scaling=True)
    >>> _, params = rms.init(jax.random.PRNGKey(0), (-1, 2))
    >>> y = rms.apply(params, jnp.array([[1.0, 3.0]]))  # variance 1: scaled by ~1, not centred
    >>> sorted(params), [round(float(v), 2) for v in y[0]]
    (['gamma'], [1.0, 3.0])
    """
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if rms_scaling:  # Keras builds gamma alone
        center, scale = False, True

    def init_params(rng, input_shape):
        shape = tuple(input_shape[a] for a in axes)
        if -1 in shape:
            raise ValueError(f"the normalised axes must be known, got input shape {tuple(input_shape)}")
        params = {}
        if scale:
            params["gamma"] = jnp.ones(shape, jnp.float32)
        if center:
            params["beta"] = jnp.zeros(shape, jnp.float32)
        return params

    def apply(params, x):
        norm_axes = tuple(sorted(a % x.ndim for a in axes))
        mean = jnp.mean(x, norm_axes, keepdims=True)
        var = jnp.var(x, norm_axes, keepdims=True)
        y = (x if rms_scaling else x - mean) * jnp.reciprocal(jnp.sqrt(var + epsilon))
        shape = [1] * x.ndim
        for a in norm_axes:
            shape[a] = x.shape[a]
        if scale:
            y = y * params["gamma"].reshape(shape)
        if center:
            y = y + params["beta"].reshape(shape)
        return y

    return layer("LayerNorm", apply, init_params)

"""``Dense``: a fully connected layer with Keras's names and defaults."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import expect_last_dim, expect_positive_int, layer, registered
from ..initializers import get_initializer
from .activations import get_activation


@registered("Dense")
def Dense(units, W_init="glorot_uniform", b_init="zeros", *, activation=None, use_bias=True):
    """A fully connected layer: ``activation(x @ kernel + bias)``.

    Params are ``{'kernel': (in, units), 'bias': (units,)}``. ``W_init``/``b_init``
    keep stax's names and take initializers or their names; the defaults are Keras's
    (glorot-uniform kernel, zero bias). ``activation`` is a Keras name or callable.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> shape, params = fnnet.Dense(400).init(jax.random.PRNGKey(0), (-1, 78))
    >>> shape, params['kernel'].shape, params['bias'].shape
    ((-1, 400), (78, 400), (400,))
    """
    expect_positive_int(units, "Dense: units")  # not a raw ZeroDivisionError in the initializer
    W_init, b_init = get_initializer(W_init), get_initializer(b_init)
    act = get_activation(activation)

    def init_params(rng, input_shape):
        if not input_shape or input_shape[-1] == -1:
            raise ValueError(f"needs a known last input dimension, got input shape {tuple(input_shape)}")
        k1, k2 = jax.random.split(rng)
        params = {"kernel": W_init(k1, (input_shape[-1], units), jnp.float32)}
        if use_bias:
            params["bias"] = b_init(k2, (units,), jnp.float32)
        return params

    def apply(params, x):
        expect_last_dim(x, params["kernel"].shape[0])
        y = jnp.dot(x, params["kernel"])
        if use_bias:
            y = y + params["bias"]
        return act(y)

    return layer("Dense", apply, init_params)

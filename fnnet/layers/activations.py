"""Element-wise layers: stax's singletons (``Relu``, ``Softmax``, ...), ``elementwise``,
Keras's ``Activation(name)`` and ``Lambda``."""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from ..core import layer, registered, singleton


def _exact_gelu(x):
    return jax.nn.gelu(x, approximate=False)


def _keras_leaky_relu(x):
    return jax.nn.leaky_relu(x, negative_slope=0.2)  # Keras 3's default slope; jax's is 0.01


# Keras's activation names with Keras 3's meanings: 'gelu' is exact and 'leaky_relu' has
# slope 0.2; stax's ``Gelu`` and ``LeakyRelu`` singletons keep stax's (tanh approximation, 0.01).
ACTIVATIONS: dict[str, Callable] = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "tanh": jnp.tanh,
    "softmax": jax.nn.softmax,
    "log_softmax": jax.nn.log_softmax,
    "gelu": _exact_gelu,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "swish": jax.nn.swish,
    "silu": jax.nn.silu,
    "leaky_relu": _keras_leaky_relu,
    "exponential": jnp.exp,
}


# Library functions that ``elementwise``/``Lambda`` may be given and a spec can name
# (``"jax.nn.leaky_relu"``): model files refer to them, never to arbitrary code.
FUNCTIONS: dict[str, Callable] = {
    **{f"jax.nn.{name}": getattr(jax.nn, name) for name in (
        "relu", "relu6", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "gelu", "elu", "selu", "celu",
        "softplus", "soft_sign", "swish", "silu", "leaky_relu", "hard_tanh", "log_sigmoid", "glu", "mish")
       if hasattr(jax.nn, name)},
    **{f"jnp.{name}": getattr(jnp, name) for name in (
        "tanh", "exp", "log", "log1p", "abs", "square", "sqrt", "sin", "cos", "negative", "sign")},
}


def get_activation(activation) -> Callable:
    """Resolve an activation given by Keras name, ``None`` (linear) or callable.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.get_activation('relu')(jnp.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    if activation is None:
        return ACTIVATIONS["linear"]
    if callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {activation!r}; known names: {', '.join(sorted(ACTIVATIONS))}") from None


@registered("elementwise")
def elementwise(fun, **fun_kwargs):
    """A layer applying ``fun(x, **fun_kwargs)`` (stax's ``elementwise``).

    >>> import fnnet, jax.numpy as jnp
    >>> square = fnnet.elementwise(jnp.square)
    >>> square.apply((), jnp.array([3.0])).tolist()
    [9.0]
    """
    fn = functools.partial(fun, **fun_kwargs) if fun_kwargs else fun
    return layer("elementwise", lambda params, x: fn(x))


@registered("Lambda")
def Lambda(fun):
    """Keras's ``Lambda``: a parameterless layer computing ``fun(x)``; its output shape is inferred.

    >>> import fnnet, jax
    >>> first = fnnet.Lambda(lambda x: x[:, 0], name='first')
    >>> first.init(jax.random.PRNGKey(0), (-1, 5))[0]
    (-1,)
    """
    return layer("Lambda", lambda params, x: fun(x))


@registered("Activation")
def Activation(activation):
    """Keras's ``Activation('relu' | 'sigmoid' | 'tanh' | 'softmax' | 'gelu' | ...)``.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.Activation('softmax').apply({}, jnp.zeros((1, 4))).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    """
    fn = get_activation(activation)
    return layer("Activation", lambda params, x: fn(x))


def _stax_singleton(name, fun, **kwargs):
    fn = functools.partial(fun, **kwargs) if kwargs else fun
    return singleton(layer(name, lambda params, x: fn(x)), name)


Tanh = _stax_singleton("Tanh", jnp.tanh)
Relu = _stax_singleton("Relu", jax.nn.relu)
Exp = _stax_singleton("Exp", jnp.exp)
LogSoftmax = _stax_singleton("LogSoftmax", jax.nn.log_softmax, axis=-1)
Softmax = _stax_singleton("Softmax", jax.nn.softmax, axis=-1)
Softplus = _stax_singleton("Softplus", jax.nn.softplus)
Sigmoid = _stax_singleton("Sigmoid", jax.nn.sigmoid)
Elu = _stax_singleton("Elu", jax.nn.elu)
LeakyRelu = _stax_singleton("LeakyRelu", jax.nn.leaky_relu)
Selu = _stax_singleton("Selu", jax.nn.selu)
Gelu = _stax_singleton("Gelu", jax.nn.gelu)

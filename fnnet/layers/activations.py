"""Element-wise layers: stax's singletons (``Relu``, ``Softmax``, ...), ``elementwise``,
Keras's ``Activation(name, **options)``, its ``ReLU`` layer, and ``Lambda``.

One name means one function. Keras's activation names (``ACTIVATIONS``, ``Activation``,
``Dense(activation=...)``) compute what Keras 3's functions of those names compute, with
Keras's options and defaults; stax's capitalised singletons keep stax's meanings. The two
differ on two names: ``'leaky_relu'`` has Keras's slope 0.2 where ``LeakyRelu`` has jax's
0.01, and ``'gelu'`` is exact where ``Gelu`` is the tanh approximation.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from ..core import layer, registered, singleton


# ------------------------------------------------------- Keras's activation functions
# Each has Keras 3's signature (its options and defaults), so Activation(name, **options)
# can check the options by name; the maths is jax.nn's wherever jax.nn has the function.

def _linear(x):
    return x


def _relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's ``relu``: ``x`` above ``threshold`` (capped at ``max_value``), else
    ``negative_slope * (x - threshold)``."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return jax.nn.relu(x)
    y = jnp.where(x > threshold, x, 0.0) if threshold != 0.0 else jax.nn.relu(x)
    if max_value is not None:
        y = jnp.clip(y, 0.0, max_value)
    if negative_slope != 0.0:
        y = y - negative_slope * jax.nn.relu(threshold - x)
    return y


def _leaky_relu(x, negative_slope=0.2):
    return jax.nn.leaky_relu(x, negative_slope=negative_slope)  # Keras 3's default slope; jax's is 0.01


def _gelu(x, approximate=False):
    return jax.nn.gelu(x, approximate=approximate)  # Keras's default is exact; jax's (and stax's) the tanh form


def _elu(x, alpha=1.0):
    return jax.nn.elu(x, alpha=alpha)


def _celu(x, alpha=1.0):
    return jax.nn.celu(x, alpha=alpha)


def _softmax(x, axis=-1):
    return jax.nn.softmax(x, axis=axis)


def _log_softmax(x, axis=-1):
    return jax.nn.log_softmax(x, axis=axis)


def _glu(x, axis=-1):
    return jax.nn.glu(x, axis=axis)


def _squareplus(x, b=4):
    return jax.nn.squareplus(x, b=b)


def _hard_shrink(x, threshold=0.5):
    return jnp.where(jnp.abs(x) > threshold, x, 0.0)


def _soft_shrink(x, threshold=0.5):
    return jnp.where(x > threshold, x - threshold, jnp.where(x < -threshold, x + threshold, 0.0))


def _tanh_shrink(x):
    return x - jnp.tanh(x)


def _threshold(x, threshold, default_value):
    return jnp.where(x > threshold, x, default_value)


def _sparsemax(x, axis=-1):
    """The Euclidean projection of ``x`` onto the probability simplex along ``axis`` (optax's)."""
    x = jnp.asarray(x)
    moved = jnp.moveaxis(x, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    projected = jax.vmap(optax.projections.projection_simplex)(rows)
    return jnp.moveaxis(projected.reshape(moved.shape), -1, axis)


ACTIVATIONS: dict[str, Callable] = {
    "linear": _linear,
    "relu": _relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "selu": jax.nn.selu,
    "celu": _celu,
    "gelu": _gelu,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "log_sigmoid": jax.nn.log_sigmoid,
    "sparse_sigmoid": jax.nn.sparse_sigmoid,
    "tanh": jnp.tanh,
    "hard_tanh": jax.nn.hard_tanh,
    "tanh_shrink": _tanh_shrink,
    "hard_shrink": _hard_shrink,
    "soft_shrink": _soft_shrink,
    "threshold": _threshold,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "sparsemax": _sparsemax,
    "softplus": jax.nn.softplus,
    "sparse_plus": jax.nn.sparse_plus,
    "squareplus": _squareplus,
    "softsign": jax.nn.soft_sign,
    "swish": jax.nn.silu,
    "silu": jax.nn.silu,
    "hard_silu": jax.nn.hard_silu,
    "hard_swish": jax.nn.hard_silu,
    "mish": jax.nn.mish,
    "glu": _glu,
    "exponential": jnp.exp,
}


# Library functions that ``elementwise``/``Lambda`` may be given and a spec can name
# (``"jax.nn.leaky_relu"``): model files refer to them, never to arbitrary code.
FUNCTIONS: dict[str, Callable] = {
    **{f"jax.nn.{name}": getattr(jax.nn, name) for name in (
        "relu", "relu6", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "gelu", "elu", "selu", "celu",
        "softplus", "soft_sign", "swish", "silu", "leaky_relu", "hard_tanh", "log_sigmoid", "glu", "mish",
        "squareplus", "sparse_plus", "sparse_sigmoid", "hard_silu", "hard_swish")
       if hasattr(jax.nn, name)},
    **{f"jnp.{name}": getattr(jnp, name) for name in (
        "tanh", "exp", "log", "log1p", "abs", "square", "sqrt", "sin", "cos", "negative", "sign")},
}


def _options_error(name, fn, options, detail):
    takes = [p for p in list(inspect.signature(fn).parameters)[1:]]
    known = ", ".join(takes) if takes else "no options"
    return TypeError(f"activation {name!r} {detail}; it takes {known} (Keras's signature), got "
                     f"{', '.join(f'{k}={v!r}' for k, v in options.items()) or 'none'}")


def get_activation(activation, **options) -> Callable:
    """Resolve an activation given by Keras name (with Keras's ``options``), ``None`` (linear) or callable.

    ``options`` are the Keras function's keyword arguments (``axis`` for ``'softmax'``,
    ``negative_slope`` for ``'leaky_relu'``, ...); a wrong one is a ``TypeError`` naming
    those the function takes.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.get_activation('relu')(jnp.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    >>> fnnet.get_activation('leaky_relu', negative_slope=0.5)(jnp.array([-1.0, 2.0])).tolist()
    [-0.5, 2.0]
    """
    if activation is None:
        activation = "linear"
    if callable(activation):
        return functools.partial(activation, **options) if options else activation
    try:
        fn = ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {activation!r}; known names: {', '.join(sorted(ACTIVATIONS))}") from None
    signature = inspect.signature(fn)
    try:
        signature.bind_partial(0.0, **options)
    except TypeError as e:
        raise _options_error(activation, fn, options, f"cannot take these options ({e})") from None
    free = [p.name for p in list(signature.parameters.values())[1:]
            if p.default is inspect.Parameter.empty and p.name not in options]
    if free:  # Keras's 'threshold' has options without defaults
        raise _options_error(activation, fn, options, f"needs {', '.join(free)}")
    return functools.partial(fn, **options) if options else fn


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
def Activation(activation, **options):
    """Keras's ``Activation(name)``, with the options of Keras's function of that name.

    Every name of ``fnnet.ACTIVATIONS`` (Keras 3's ``keras.activations``) with Keras's
    defaults: ``Activation('softmax', axis=1)`` normalises over axis 1 (Keras's
    ``Softmax(axis=1)`` layer), ``Activation('leaky_relu', negative_slope=0.1)``,
    ``Activation('squareplus', b=2)``, ``Activation('threshold', threshold=0.5,
    default_value=0.0)``. ``'leaky_relu'`` and ``'gelu'`` mean Keras's (slope 0.2, exact),
    not stax's ``LeakyRelu``/``Gelu``.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.Activation('softmax').apply({}, jnp.zeros((1, 4))).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    >>> fnnet.Activation('softmax', axis=0).apply({}, jnp.zeros((2, 1))).tolist()
    [[0.5], [0.5]]
    """
    fn = get_activation(activation, **options)
    return layer("Activation", lambda params, x: fn(x))


@registered("ReLU")
def ReLU(max_value=None, negative_slope=0.0, threshold=0.0):
    """Keras's ``ReLU`` layer: ``x`` for ``x > threshold`` (capped at ``max_value``), else
    ``negative_slope * (x - threshold)``.

    With the defaults it is ``relu``; ``ReLU(max_value=6)`` is ``relu6`` and
    ``ReLU(negative_slope=a)`` a leaky relu of slope ``a`` (Keras's ``LeakyReLU(a)``; note
    that layer's default slope is 0.3). Like Keras, it refuses a negative ``max_value``,
    ``negative_slope`` or ``threshold``.

    >>> import fnnet, jax.numpy as jnp
    >>> x = jnp.array([-10.0, -5.0, 0.0, 5.0, 10.0])
    >>> fnnet.ReLU(max_value=5.0).apply({}, x).tolist(), fnnet.ReLU(negative_slope=0.5).apply({}, x).tolist()
    ([0.0, 0.0, 0.0, 5.0, 5.0], [-5.0, -2.5, 0.0, 5.0, 10.0])
    >>> fnnet.ReLU(threshold=5.0).apply({}, x).tolist()
    [0.0, 0.0, 0.0, 0.0, 10.0]
    """
    for option, value in (("max_value", max_value), ("negative_slope", negative_slope), ("threshold", threshold)):
        if value is None and option == "max_value":
            continue
        if value is None or value < 0:
            raise ValueError(f"ReLU: {option} must be a number >= 0{' or None' if option == 'max_value' else ''}, "
                             f"got {value!r}")
    return layer("ReLU", lambda params, x: _relu(x, negative_slope, max_value, threshold))


def _stax_singleton(name, fun, **kwargs):
    fn = functools.partial(fun, **kwargs) if kwargs else fun
    return singleton(layer(name, lambda params, x: fn(x)), name)


# stax's meanings: LeakyRelu is jax's slope 0.01 and Gelu the tanh approximation (see the
# module docstring for Keras's 'leaky_relu' and 'gelu').
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

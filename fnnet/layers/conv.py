"""Convolutions: stax's ``GeneralConv`` family and Keras's ``Conv1D``/``Conv2D``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ..core import expect_positive_int, layer, registered
from ..initializers import get_initializer
from .activations import get_activation


def _kernel_shape(dimension_numbers, out_chan, filter_shape, input_shape):
    lhs_spec, rhs_spec, _ = dimension_numbers
    in_chan = input_shape[lhs_spec.index("C")]
    if in_chan == -1:
        raise ValueError(f"needs a known channel dimension, got input shape {tuple(input_shape)}")
    sizes = iter(filter_shape)
    return tuple(out_chan if c == "O" else in_chan if c == "I" else next(sizes) for c in rhs_spec)


def _conv_layer(name, dimension_numbers, out_chan, filter_shape, strides, padding, W_init, b_init,
                activation, use_bias, transpose):
    filter_shape = tuple(filter_shape)
    one = (1,) * len(filter_shape)
    strides = tuple(strides) if strides else one
    _, rhs_spec, out_spec = dimension_numbers
    if W_init is None:
        W_init = jax.nn.initializers.glorot_uniform(rhs_spec.index("I"), rhs_spec.index("O"))
    W_init, b_init = get_initializer(W_init), get_initializer(b_init)
    act = get_activation(activation)

    def init_params(rng, input_shape):
        k1, k2 = jax.random.split(rng)
        params = {"kernel": W_init(k1, _kernel_shape(dimension_numbers, out_chan, filter_shape, input_shape),
                                   jnp.float32)}
        if use_bias:
            params["bias"] = b_init(k2, (out_chan,), jnp.float32)
        return params

    def apply(params, x):
        kernel = params["kernel"]
        if transpose:
            y = lax.conv_transpose(x, kernel, strides, padding, dimension_numbers=dimension_numbers)
        else:
            y = lax.conv_general_dilated(x, kernel, strides, padding, one, one,
                                         dimension_numbers=dimension_numbers)
        if use_bias:
            y = y + params["bias"].reshape([out_chan if c == "C" else 1 for c in out_spec])
        return act(y)

    return layer(name, apply, init_params)


@registered("GeneralConv")
def GeneralConv(dimension_numbers, out_chan, filter_shape, strides=None, padding="VALID",
                W_init=None, b_init="zeros", *, activation=None, use_bias=True):
    """stax's ``GeneralConv``: a convolution with explicit layouts, e.g. ``('NHWC', 'HWIO', 'NHWC')``.

    >>> import fnnet, jax
    >>> conv = fnnet.GeneralConv(('NCHW', 'OIHW', 'NCHW'), 8, (3, 3), padding='SAME')
    >>> conv.init(jax.random.PRNGKey(0), (-1, 3, 16, 16))[0]
    (-1, 8, 16, 16)
    """
    return _conv_layer("Conv", tuple(dimension_numbers), out_chan, filter_shape, strides, padding,
                       W_init, b_init, activation, use_bias, transpose=False)


@registered("GeneralConvTranspose")
def GeneralConvTranspose(dimension_numbers, out_chan, filter_shape, strides=None, padding="VALID",
                         W_init=None, b_init="zeros", *, activation=None, use_bias=True):
    """stax's ``GeneralConvTranspose``: a transposed convolution with explicit layouts.

    >>> import fnnet, jax
    >>> up = fnnet.GeneralConvTranspose(('NHWC', 'HWIO', 'NHWC'), 4, (2, 2), strides=(2, 2))
    >>> up.init(jax.random.PRNGKey(0), (-1, 8, 8, 3))[0]
    (-1, 16, 16, 4)
    """
    return _conv_layer("ConvTranspose", tuple(dimension_numbers), out_chan, filter_shape, strides,
                       padding, W_init, b_init, activation, use_bias, transpose=True)


def _with_layout(constructor, name, dimension_numbers, doc):
    @registered(name)
    @functools.wraps(constructor)
    def build(*args, **kwargs):
        return constructor.__wrapped__(dimension_numbers, *args, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    return build


Conv = _with_layout(GeneralConv, "Conv", ("NHWC", "HWIO", "NHWC"), """\
A 2-D convolution on NHWC images (stax's ``Conv``): ``Conv(out_chan, filter_shape, strides, padding)``.

>>> import fnnet, jax
>>> fnnet.Conv(16, (3, 3)).init(jax.random.PRNGKey(0), (-1, 28, 28, 1))[0]
(-1, 26, 26, 16)
""")
ConvTranspose = _with_layout(GeneralConvTranspose, "ConvTranspose", ("NHWC", "HWIO", "NHWC"), """\
A 2-D transposed convolution on NHWC images (stax's ``ConvTranspose``).

>>> import fnnet, jax
>>> fnnet.ConvTranspose(4, (3, 3)).init(jax.random.PRNGKey(0), (-1, 8, 8, 2))[0]
(-1, 10, 10, 4)
""")
Conv1DTranspose = _with_layout(GeneralConvTranspose, "Conv1DTranspose", ("NHC", "HIO", "NHC"), """\
A 1-D transposed convolution on (batch, length, channels) inputs (stax's ``Conv1DTranspose``).

>>> import fnnet, jax
>>> fnnet.Conv1DTranspose(4, (3,)).init(jax.random.PRNGKey(0), (-1, 10, 2))[0]
(-1, 12, 4)
""")


def _tuple(value, n):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


@registered("Conv1D")
def Conv1D(filters, kernel_size, strides=1, padding="valid", activation=None, use_bias=True):
    """Keras's ``Conv1D`` on (batch, steps, channels); kernel shaped (width, in, filters).

    >>> import fnnet, jax
    >>> fnnet.Conv1D(8, 3, activation='relu').init(jax.random.PRNGKey(0), (-1, 20, 4))[0]
    (-1, 18, 8)
    """
    expect_positive_int(filters, "Conv1D: filters")
    return _conv_layer("Conv1D", ("NHC", "HIO", "NHC"), filters, _tuple(kernel_size, 1), _tuple(strides, 1),
                       padding.upper(), "glorot_uniform", "zeros", activation, use_bias, transpose=False)


@registered("Conv2D")
def Conv2D(filters, kernel_size, strides=1, padding="valid", activation=None, use_bias=True):
    """Keras's ``Conv2D`` on NHWC images; kernel shaped (h, w, in, filters).

    >>> import fnnet, jax
    >>> fnnet.Conv2D(8, 3, padding='same').init(jax.random.PRNGKey(0), (-1, 28, 28, 1))[0]
    (-1, 28, 28, 8)
    """
    expect_positive_int(filters, "Conv2D: filters")
    return _conv_layer("Conv2D", ("NHWC", "HWIO", "NHWC"), filters, _tuple(kernel_size, 2), _tuple(strides, 2),
                       padding.upper(), "glorot_uniform", "zeros", activation, use_bias, transpose=False)

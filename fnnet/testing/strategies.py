"""Hypothesis strategies for testing layers: shapes, arrays, rng keys, params and layer stacks.

Array values come from a drawn seed rather than element by element: continuous random
values have no ties and almost never sit on a kink (``relu`` at 0, a max-pool tie), so
gradient checks stay meaningful, and big inputs cost hypothesis nothing to generate.
Shrinking still reaches the smallest batch size and seed 0.
"""

from __future__ import annotations

import jax
import numpy as np
from hypothesis import strategies as st

from ..combinators import serial
from ..layers import Activation, BatchNorm, Dense, Dropout, Gelu, LayerNorm, Relu, Sigmoid, Tanh

# Few sizes, so that few programs compile: 1 for the edge case, 3 to mix examples or steps.
BATCH_SIZES = (1, 3)
DIM_SIZES = (1, 3)
SEEDS = st.integers(0, 2**32 - 1)


def is_shape(shape) -> bool:
    """True for one shape (a tuple of ints), False for a nested tuple of shapes.

    >>> is_shape((-1, 3)), is_shape(((-1, 3), (-1, 4)))
    (True, False)
    """
    return isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer)) for d in shape)


def as_shape_tree(shape):
    """Normalise a shape, or nested shapes, to tuples of Python ints (lists, numpy ints and ``None`` accepted).

    >>> as_shape_tree([[None, 3], [-1, 4]])
    ((-1, 3), (-1, 4))
    """
    if is_shape(shape):
        return tuple(-1 if d is None else int(d) for d in shape)
    return tuple(as_shape_tree(s) for s in shape)


def fill_shape(input_shape, batch_size: int, dim_size: int):
    """A concrete shape: a leading ``-1`` becomes ``batch_size``, any other ``-1`` ``dim_size``.

    Nested input shapes (several inputs) share the batch size and the other sizes, since
    a layer's inputs usually agree on them (batch, sequence length).

    >>> fill_shape(((-1, -1, 3), (-1, 5)), batch_size=2, dim_size=4)
    ((2, 4, 3), (2, 5))
    """
    if is_shape(input_shape):
        return tuple(d if d != -1 else batch_size if i == 0 else dim_size
                     for i, d in enumerate(input_shape))
    return tuple(fill_shape(s, batch_size, dim_size) for s in input_shape)


def _has_inner_unknown(shape) -> bool:
    if is_shape(shape):
        return -1 in shape[1:]
    return any(_has_inner_unknown(s) for s in shape)


def input_shapes(input_shape, batch_sizes=BATCH_SIZES, dim_sizes=DIM_SIZES):
    """Concrete shapes for ``input_shape``: ``-1`` filled with batch sizes (1 included).

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20)
    ... @given(input_shapes((-1, 3)))
    ... def test(shape):
    ...     assert shape[0] in BATCH_SIZES and shape[1] == 3
    >>> test()
    """
    input_shape = as_shape_tree(input_shape)
    sizes = st.sampled_from(dim_sizes) if _has_inner_unknown(input_shape) else st.just(dim_sizes[0])
    return st.builds(fill_shape, st.just(input_shape), st.sampled_from(batch_sizes), sizes)


def dtype_tree(shape, dtype):
    """A dtype for each shape in ``shape`` (nested like it): ``dtype`` alone, or a matching tuple.

    >>> dtype_tree(((2,), (3,)), 'float32')
    ('float32', 'float32')
    """
    if is_shape(shape):
        return dtype
    dtypes = dtype if isinstance(dtype, (tuple, list)) else [dtype] * len(shape)
    return tuple(dtype_tree(s, d) for s, d in zip(shape, dtypes))


def random_arrays(seed: int, shape, dtype=np.float32, low=-2.0, high=2.0):
    """Arrays (nested like ``shape``) drawn from ``seed``: uniform floats or integers in ``[low, high)``.

    >>> x = random_arrays(0, (2, 3))
    >>> x.shape, x.dtype.name, bool((x >= -2).all() and (x < 2).all())
    ((2, 3), 'float32', True)
    >>> random_arrays(0, ((2,), (1,)), np.int32, 0, 5)[1].dtype.name
    'int32'
    """
    gen = np.random.default_rng(seed)
    shape = as_shape_tree(shape)

    def draw(s, d):
        if is_shape(s):
            d = np.dtype(d)
            if np.issubdtype(d, np.integer):
                return gen.integers(int(low), int(high), size=s, dtype=d)
            return gen.uniform(low, high, size=s).astype(d)
        return tuple(draw(si, di) for si, di in zip(s, d))

    return draw(shape, dtype_tree(shape, dtype))


def arrays(shape, dtype=np.float32, *, low=-2.0, high=2.0):
    """Numpy arrays of ``shape`` (or nested shapes) with values in ``[low, high)``.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5)
    ... @given(arrays((2, 3), low=0.0, high=1.0))
    ... def test(x):
    ...     assert x.shape == (2, 3) and 0 <= x.min() and x.max() < 1
    >>> test()
    """
    return SEEDS.map(lambda seed: random_arrays(seed, shape, dtype, low, high))


def rng_keys():
    """JAX PRNG keys (``jax.random.PRNGKey(seed)`` for a drawn seed).

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=3)
    ... @given(rng_keys())
    ... def test(key):
    ...     assert key.shape == (2,)
    >>> test()
    """
    return SEEDS.map(jax.random.PRNGKey)


def layer_params(layer, input_shape):
    """Params of ``layer`` for ``input_shape``, from ``layer.init_with_state`` with a drawn rng key.

    >>> import fnnet
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=3)
    ... @given(layer_params(fnnet.Dense(2), (-1, 3)))
    ... def test(params):
    ...     assert params['kernel'].shape == (3, 2)
    >>> test()
    """
    input_shape = as_shape_tree(input_shape)
    return rng_keys().map(lambda key: layer.init_with_state(key, input_shape)[1])


_PARAM_NAMES = ("kernel", "bias", "gamma", "beta", "embeddings", "recurrent_kernel", "dense", "lstm_1")


def param_trees(max_leaves: int = 5, max_rank: int = 2, max_dim: int = 3):
    """Nested dicts of float32 arrays shaped like model params (for tree utilities, checkpoints).

    >>> import jax
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(param_trees())
    ... def test(tree):
    ...     assert isinstance(tree, dict)
    ...     assert all(leaf.dtype.name == 'float32' for leaf in jax.tree_util.tree_leaves(tree))
    >>> test()
    """
    shapes = st.lists(st.integers(1, max_dim), max_size=max_rank).map(tuple)
    leaves = st.tuples(shapes, SEEDS).map(lambda s: random_arrays(s[1], s[0]))
    names = st.sampled_from(_PARAM_NAMES)
    trees = st.recursive(leaves, lambda inner: st.dictionaries(names, inner, min_size=1, max_size=3),
                         max_leaves=max_leaves)
    return st.dictionaries(names, trees, min_size=1, max_size=3)


def _stack_choices(units, dropout, batch_norm):
    choices = [
        st.sampled_from(units).map(Dense),
        st.sampled_from([Relu, Tanh, Sigmoid, Gelu]),
        st.sampled_from(["relu", "tanh", "softplus", "gelu", "swish"]).map(Activation),
        st.just(LayerNorm()),
    ]
    if dropout:
        choices.append(st.sampled_from([0.1, 0.5]).map(Dropout))
    if batch_norm:
        choices.append(st.just(BatchNorm()))
    return st.one_of(choices)


def _named_serial(layers):
    # A readable name, so a failing example says which stack it was (layers are immutable:
    # the name is given with with_name, as a key made of the children's names).
    return serial(*layers).with_name("serial-" + "-".join(layer.name for layer in layers))


def layer_stacks(max_layers: int = 4, units=(1, 3, 4), *, dropout: bool = True, batch_norm: bool = True):
    """``serial`` stacks of random Dense / activation / LayerNorm / Dropout / BatchNorm layers.

    Every stack takes any ``(-1, features)`` input. Its ``name`` lists its layers
    (``'serial-dense-relu'``).

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5)
    ... @given(layer_stacks(max_layers=2))
    ... def test(stack):
    ...     assert stack.name.startswith('serial-')
    >>> test()
    """
    return st.lists(_stack_choices(units, dropout, batch_norm), min_size=1, max_size=max_layers).map(_named_serial)

"""What a model's ``init`` would produce, without computing any weights."""

from __future__ import annotations

import jax
import numpy as np

from ..core import as_layer
from ..io.checkpoint import keypath_str


def eval_init(model, input_shape, rng=None):
    """``(output_shape, params, state)`` of ``init``, with ``jax.ShapeDtypeStruct`` leaves.

    Runs ``init`` under ``jax.eval_shape``, so a 20000x128 embedding costs nothing;
    used to check loaded params and to draw and edit models.

    >>> import fnnet
    >>> shape, params, state = fnnet.eval_init(fnnet.Dense(3), (-1, 2))
    >>> shape, params['kernel'].shape, params['kernel'].dtype, state
    ((-1, 3), (2, 3), dtype('float32'), None)
    """
    layer = as_layer(model)
    rng = jax.random.PRNGKey(0) if rng is None else rng
    shapes = []

    def init(key):
        # The output shape is plain Python ints, which eval_shape cannot return: keep it aside.
        out_shape, params, state = layer._init(key, tuple(input_shape))
        shapes.append(out_shape)
        return params, state

    params, state = jax.eval_shape(init, rng)
    return shapes[0], params, state


def _signature(leaf):
    shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
    if shape is None or dtype is None:  # Python numbers
        array = np.asarray(leaf)
        shape, dtype = array.shape, array.dtype
    return tuple(shape), np.dtype(dtype).name


def _leaf_paths(tree) -> dict:
    return {keypath_str(path): _signature(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def tree_differences(expected, actual):
    """Where two pytrees of arrays differ: ``(missing, extra, shape_mismatch, dtype_mismatch)``.

    Paths are spelled ``'dense_0/kernel'``; mismatches are ``(path, actual, expected)``.
    Use it to check params against :func:`eval_init`.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> _, expected, _ = fnnet.eval_init(fnnet.Dense(3), (-1, 2))
    >>> fnnet.tree_differences(expected, {'kernel': jnp.zeros((4, 3)), 'bias': jnp.zeros(3)})
    ([], [], [('kernel', (4, 3), (2, 3))], [])
    """
    want, have = _leaf_paths(expected), _leaf_paths(actual)
    missing = [p for p in want if p not in have]
    extra = [p for p in have if p not in want]
    common = [p for p in want if p in have]
    shapes = [(p, have[p][0], want[p][0]) for p in common if have[p][0] != want[p][0]]
    dtypes = [(p, have[p][1], want[p][1]) for p in common if have[p][1] != want[p][1]]
    return missing, extra, shapes, dtypes

"""What a model's ``init`` would produce, without computing any weights."""

from __future__ import annotations

import jax
import numpy as np

from ..core import walk
from ..io.checkpoint import keypath_str


def eval_init(model, input_shape, rng=None):
    """``(output_shape, params, state)`` of ``init``, with ``jax.ShapeDtypeStruct`` leaves.

    Reads the root of :func:`fnnet.walk`, which runs ``init`` under ``jax.eval_shape``,
    so a 2,000,000 x 256 embedding costs nothing; used to check loaded params and to
    draw and edit models.

    >>> import fnnet
    >>> shape, params, state = fnnet.eval_init(fnnet.Dense(3), (None, 2))
    >>> shape, params['kernel'].shape, params['kernel'].dtype, state
    ((-1, 3), (2, 3), dtype('float32'), None)
    """
    if input_shape is None:  # walk would give the structure alone, with no shapes to return
        raise TypeError("eval_init needs an input_shape, e.g. (None, 78)")
    root = walk(model, input_shape, rng)
    return root.output_shape, root.params, root.state


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

    Paths are spelled ``'dense_1/kernel'``; mismatches are ``(path, actual, expected)``.
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

"""Merge layers with Keras's names and semantics: one output from a list of inputs.

``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum`` and ``Minimum`` combine their
inputs element by element (with NumPy broadcasting of equal-rank shapes); ``Concatenate``
joins them along an axis and ``Dot`` takes per-example dot products. They take a list
(or tuple) of inputs, so they work in graphs (``fnnet.Add()([a, b])``) and after
``parallel`` in combinators. Masks merge as in Keras: the element-wise layers keep a mask
only when every input has one (their OR), ``Concatenate`` joins the masks along its axis
(an input without a mask counts as all true) and reduces them per step, ``Dot`` drops them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ..core import layer, registered, shape_str


def _check_inputs(type_name, input_shapes, exactly=None):
    """At init: a list of at least two (or ``exactly``) input shapes of one rank."""
    shapes = input_shapes
    is_list = isinstance(shapes, (tuple, list)) and shapes and all(isinstance(s, (tuple, list)) for s in shapes)
    if not is_list:
        raise ValueError(f"{type_name} merges a list of inputs, got a single input of shape "
                         f"{shape_str(tuple(shapes))}; call it on a list, e.g. {type_name}()([a, b])")
    wanted = "exactly 2" if exactly == 2 else "at least 2"
    if len(shapes) < 2 or (exactly is not None and len(shapes) != exactly):
        raise ValueError(f"{type_name} takes {wanted} inputs, got {len(shapes)}: {shape_str(tuple(shapes))}")
    return [tuple(s) for s in shapes]


def _broadcastable(type_name, shapes):
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise ValueError(f"{type_name} needs inputs of one rank, got {shape_str(tuple(shapes))}")
    for axis in range(1, len(shapes[0])):  # the batch axis is every input's own
        sizes = {s[axis] for s in shapes} - {1, -1}
        if len(sizes) > 1:
            raise ValueError(f"{type_name} needs inputs whose shapes broadcast, but axis {axis} differs: "
                             f"{shape_str(tuple(shapes))}")


def _or_of_masks(xs, mask):
    """Keras's element-wise merge mask: None unless every input has one, then their OR."""
    if not isinstance(mask, (tuple, list)) or any(m is None for m in mask):
        return None
    return functools.reduce(jnp.logical_or, mask)


def _elementwise(type_name, combine, exactly=None):
    def check(rng, input_shapes):
        _broadcastable(type_name, _check_inputs(type_name, input_shapes, exactly))
        return {}

    def apply(params, xs):
        return combine(list(xs))

    return layer(type_name, apply, check, compute_mask=_or_of_masks)


@registered("Add")
def Add():
    """The sum of a list of inputs (Keras ``Add``).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.Add().apply({}, [jnp.array([[1., 2.]]), jnp.array([[10., 20.]])]).tolist()
    [[11.0, 22.0]]
    """
    return _elementwise("Add", lambda xs: functools.reduce(jnp.add, xs))


@registered("Subtract")
def Subtract():
    """The first of two inputs minus the second (Keras ``Subtract``).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.Subtract().apply({}, [jnp.array([[5., 5.]]), jnp.array([[1., 2.]])]).tolist()
    [[4.0, 3.0]]
    """
    return _elementwise("Subtract", lambda xs: xs[0] - xs[1], exactly=2)


@registered("Multiply")
def Multiply():
    """The element-wise product of a list of inputs (Keras ``Multiply``).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.Multiply().apply({}, [jnp.array([[2., 3.]]), jnp.array([[4., 5.]])]).tolist()
    [[8.0, 15.0]]
    """
    return _elementwise("Multiply", lambda xs: functools.reduce(jnp.multiply, xs))


@registered("Average")
def Average():
    """The element-wise mean of a list of inputs (Keras ``Average``).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.Average().apply({}, [jnp.array([[2., 3.]]), jnp.array([[4., 7.]])]).tolist()
    [[3.0, 5.0]]
    """
    return _elementwise("Average", lambda xs: functools.reduce(jnp.add, xs) / len(xs))


@registered("Maximum")
def Maximum():
    """The element-wise maximum of a list of inputs (Keras ``Maximum``).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.Maximum().apply({}, [jnp.array([[2., 9.]]), jnp.array([[4., 7.]])]).tolist()
    [[4.0, 9.0]]
    """
    return _elementwise("Maximum", lambda xs: functools.reduce(jnp.maximum, xs))


@registered("Minimum")
def Minimum():
    """The element-wise minimum of a list of inputs (Keras ``Minimum``).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.Minimum().apply({}, [jnp.array([[2., 9.]]), jnp.array([[4., 7.]])]).tolist()
    [[2.0, 7.0]]
    """
    return _elementwise("Minimum", lambda xs: functools.reduce(jnp.minimum, xs))


@registered("Concatenate")
def Concatenate(axis=-1):
    """Join a list of inputs along ``axis`` (Keras ``Concatenate``; every other axis must agree).

    With masks, each input's mask (all true where it has none) is spread over that input's
    elements, the masks are joined along ``axis`` and reduced with ``any`` over the last
    axis, as Keras does: a step stays visible if any joined feature is.

    >>> import fnnet, jax
    >>> fnnet.Concatenate().init(jax.random.PRNGKey(0), [(None, 3), (None, 4)])[0]
    (-1, 7)
    """

    def check(rng, input_shapes):
        shapes = _check_inputs("Concatenate", input_shapes)
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= axis < rank or axis % rank == 0:
            raise ValueError(f"Concatenate(axis={axis}) needs inputs of one rank with a non-batch axis {axis}, "
                             f"got {shape_str(tuple(shapes))}")
        ax = axis % rank
        for s in shapes[1:]:
            if any(a != b and -1 not in (a, b) for i, (a, b) in enumerate(zip(s, shapes[0])) if i != ax):
                raise ValueError(f"Concatenate(axis={axis}) needs inputs that agree on every other axis, got "
                                 f"{shape_str(tuple(shapes))}")
        return {}

    def apply(params, xs):
        return jnp.concatenate(list(xs), axis=axis)

    def joined_mask(xs, mask):
        if not isinstance(mask, (tuple, list)) or all(m is None for m in mask):
            return None
        spread = [jnp.ones(jnp.shape(x), bool) if m is None
                  else jnp.broadcast_to(m[..., None] if m.ndim < x.ndim else m, jnp.shape(x))
                  for x, m in zip(xs, mask)]
        return jnp.any(jnp.concatenate(spread, axis=axis), axis=-1)

    return layer("Concatenate", apply, check, compute_mask=joined_mask)


def _l2_normalize(x, axis):
    # Keras's normalize: x / max(||x||, epsilon), so an all-zero row stays zero.
    return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


@registered("Dot")
def Dot(axes, normalize=False):
    """Per-example dot products of two inputs along ``axes`` (Keras ``Dot``).

    ``axes`` is one axis for both inputs or a pair ``(axis_of_a, axis_of_b)`` (never the
    batch axis 0). The result keeps the batch axis, then the other axes of ``a``, then
    those of ``b``; two vectors give shape ``(batch, 1)``. ``normalize=True`` L2-normalises
    both along their axes first, so the result is the cosine similarity.

    >>> import fnnet, jax.numpy as jnp
    >>> a, b = jnp.array([[1., 2.], [3., 4.]]), jnp.array([[5., 6.], [7., 8.]])
    >>> fnnet.Dot(axes=1).apply({}, [a, b]).tolist()
    [[17.0], [53.0]]
    """
    pair = tuple(axes) if isinstance(axes, (tuple, list)) else (axes, axes)
    if len(pair) != 2 or not all(isinstance(a, int) for a in pair):
        raise ValueError(f"Dot(axes=...) takes an int or a pair of ints, got {axes!r}")

    def resolve(shapes):
        resolved = tuple(a % len(s) for a, s in zip(pair, shapes))
        if 0 in resolved:
            raise ValueError(f"Dot(axes={axes!r}) cannot contract the batch axis 0 of {shape_str(tuple(shapes))}")
        return resolved

    def check(rng, input_shapes):
        shapes = _check_inputs("Dot", input_shapes, exactly=2)
        if any(len(s) < 2 for s in shapes):
            raise ValueError(f"Dot needs inputs with a batch axis and at least one more, got {shape_str(tuple(shapes))}")
        a, b = resolve(shapes)
        if -1 not in (shapes[0][a], shapes[1][b]) and shapes[0][a] != shapes[1][b]:
            raise ValueError(f"Dot(axes={axes!r}) contracts axis {a} of size {shapes[0][a]} with axis {b} of "
                             f"size {shapes[1][b]}; they must be equal, got {shape_str(tuple(shapes))}")
        return {}

    def apply(params, xs):
        x, y = xs
        a, b = resolve([jnp.shape(x), jnp.shape(y)])
        if normalize:
            x, y = _l2_normalize(x, a), _l2_normalize(y, b)
        out = jax.lax.dot_general(x, y, (((a,), (b,)), ((0,), (0,))))
        return out[:, None] if out.ndim == 1 else out

    return layer("Dot", apply, check, compute_mask=lambda xs, mask: None)

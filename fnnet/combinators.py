"""Combinators: layers made of layers, written only with the public protocol of :mod:`fnnet.core`.

``serial`` chains layers, ``parallel`` runs one layer per input, ``FanOut``/``FanInSum``/
``FanInConcat`` split and join, and ``Residual`` is built from those four. A combinator
keys its children's params and state by name (:func:`fnnet.child_keys`), splits the rng
among them, threads masks through them and names its position in their errors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .core import Layer, as_layer, child_keys, error_path, is_empty, layer, registered, shape_str, singleton, split_rng


def _entry(tree, key, missing):
    """A child's entry in its parent's params (``missing={}``) or state (``missing=None``)."""
    if tree is None:
        return missing
    if not isinstance(tree, dict):
        raise TypeError(f"expected params and state as dicts keyed by the children's names, got "
                        f"{type(tree).__name__}; use what this model's init returned")
    return tree.get(key, missing)


def _store(tree: dict, key, value):
    if not is_empty(value):
        tree[key] = value


@registered("serial")
def serial(*layers):
    """Compose layers in sequence; params (and state) are dicts keyed by the children's names.

    Keys follow Keras: a layer's ``name=``, else its type's key (``dense``), then
    ``dense_1``, ``dense_2``, ... for repeats; layers without params or state take no
    entry, so inserting a ``Dropout`` renames nothing. Raw stax layers mix in unchanged
    (their params stay stax's tuples). ``rng`` is split across the children; ``train``,
    state and masks reach every one of them. A layer object given twice holds two sets of
    params, one per position (stax's rule); to share weights, call the layer twice in a
    graph (:class:`fnnet.Model`).

    >>> import fnnet, jax
    >>> mlp = fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))
    >>> shape, params = mlp.init(jax.random.PRNGKey(0), (None, 78))
    >>> shape, sorted(params), fnnet.count_params(params)
    ((-1, 1), ['dense', 'dense_1', 'dense_2'], 112001)
    """
    layers = [as_layer(child) for child in layers]
    keys = child_keys(layers, "serial")
    n = len(layers)

    def init_with_state(rng, input_shape):
        params, state, shape = {}, {}, input_shape
        for i, (key, child, r) in enumerate(zip(keys, layers, split_rng(rng, n))):
            with error_path(f"serial[{i}]"):
                shape, child_params, child_state = child.init_with_state(r, shape)
            _store(params, key, child_params)
            _store(state, key, child_state)
        return shape, params, state or None

    def call(params, state, x, *, mask, rng, **kwargs):
        new_state = {}
        for i, (key, child, r) in enumerate(zip(keys, layers, split_rng(rng, n))):
            with error_path(f"serial[{i}]"):
                x, child_state, mask = child.call(_entry(params, key, {}), _entry(state, key, None), x,
                                                  mask=mask, rng=r, **kwargs)
            _store(new_state, key, child_state)
        return x, new_state or None, mask

    return Layer(init_with_state, call, name="serial", children=tuple(zip(keys, layers)))


def _per_input(value, n):
    return list(value) if isinstance(value, (tuple, list)) else [value] * n


@registered("parallel")
def parallel(*layers):
    """Apply one layer to each element of a tuple of inputs; returns the tuple of outputs.

    >>> import fnnet, jax
    >>> both = fnnet.serial(fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(4), fnnet.Dense(5)),
    ...                     fnnet.FanInConcat())
    >>> both.init(jax.random.PRNGKey(0), (None, 3))[0]
    (-1, 9)
    """
    layers = [as_layer(child) for child in layers]
    keys = child_keys(layers, "parallel")
    n = len(layers)

    def check(inputs, where):
        # At init a single shape such as (-1, 3) is a tuple too: its elements are ints.
        if (not isinstance(inputs, (tuple, list)) or len(inputs) != n
                or (where == "init" and not all(isinstance(s, (tuple, list)) for s in inputs))):
            got = (shape_str(tuple(inputs)) if where == "init"
                   else f"{len(inputs)}" if isinstance(inputs, (tuple, list)) else "1 (not a tuple)")
            raise ValueError(f"expected a tuple of {n} inputs at {where}, got {got}")

    def init_with_state(rng, input_shapes):
        check(input_shapes, "init")
        params, state, shapes = {}, {}, []
        for i, (key, child, r, shape) in enumerate(zip(keys, layers, split_rng(rng, n), input_shapes)):
            with error_path(f"parallel[{i}]"):
                out, child_params, child_state = child.init_with_state(r, shape)
            shapes.append(out)
            _store(params, key, child_params)
            _store(state, key, child_state)
        return tuple(shapes), params, state or None

    def call(params, state, inputs, *, mask, rng, **kwargs):
        check(inputs, "apply")
        outs, new_state, masks = [], {}, []
        for i, (key, child, r, x, m) in enumerate(zip(keys, layers, split_rng(rng, n), inputs, _per_input(mask, n))):
            with error_path(f"parallel[{i}]"):
                y, child_state, out_mask = child.call(_entry(params, key, {}), _entry(state, key, None), x,
                                                      mask=m, rng=r, **kwargs)
            outs.append(y)
            masks.append(out_mask)
            _store(new_state, key, child_state)
        out_mask = None if all(m is None for m in masks) else tuple(masks)
        return tuple(outs), new_state or None, out_mask

    return Layer(init_with_state, call, name="parallel", children=tuple(zip(keys, layers)))


@registered("FanOut")
def FanOut(num):
    """Copy the input ``num`` times into a tuple (for ``parallel`` branches).

    >>> import fnnet, jax
    >>> fnnet.FanOut(2).init(jax.random.PRNGKey(0), (None, 3))[0]
    ((-1, 3), (-1, 3))
    """
    return layer("FanOut", lambda params, x: tuple([x] * num),
                 compute_mask=lambda x, mask: None if mask is None else tuple([mask] * num))


def _first_mask(x, mask):
    if isinstance(mask, (tuple, list)):
        return next((m for m in mask if m is not None), None)
    return mask


def _equal_shapes(shapes):
    for s in shapes[1:]:
        if tuple(s) != tuple(shapes[0]):
            raise ValueError("inputs must all have the same shape, got " + " and ".join(shape_str(tuple(x)) for x in shapes))


def _check_sum(rng, input_shapes):
    _equal_shapes(list(input_shapes))  # at init, with the unknown sizes still unknown
    return {}


def _concat_check(axis):
    def check(rng, input_shapes):
        shapes = [tuple(s) for s in input_shapes]
        ax = axis % len(shapes[0])
        for s in shapes[1:]:
            if len(s) != len(shapes[0]) or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != ax):
                raise ValueError(f"inputs must agree on every axis but {axis}, got "
                                 + " and ".join(shape_str(x) for x in shapes))
        return {}

    return check


def _sum(params, xs):
    _equal_shapes([jnp.shape(x) for x in xs])
    return sum(xs[1:], xs[0])


@registered("FanInConcat")
def FanInConcat(axis=-1):
    """Concatenate a tuple of inputs along ``axis``.

    >>> import fnnet, jax
    >>> fnnet.FanInConcat().init(jax.random.PRNGKey(0), ((None, 3), (None, 4)))[0]
    (-1, 7)
    """
    return layer("FanInConcat", lambda params, xs: jnp.concatenate(xs, axis=axis), _concat_check(axis),
                 compute_mask=_first_mask)


@registered("shape_dependent")
def shape_dependent(make_layer):
    """A layer chosen from the input shape at ``init`` time (stax's ``shape_dependent``).

    The params remember nothing of the choice, so ``apply`` rebuilds the layer from
    the input's shape.

    >>> import fnnet, jax
    >>> chosen = fnnet.shape_dependent(lambda shape: fnnet.Dense(shape[-1] * 2))
    >>> chosen.init(jax.random.PRNGKey(0), (None, 3))[0]
    (-1, 6)
    """

    def init_with_state(rng, input_shape):
        return as_layer(make_layer(input_shape)).init_with_state(rng, input_shape)

    def call(params, state, x, **kwargs):
        shape = jax.tree_util.tree_map(lambda a: tuple(a.shape), x, is_leaf=lambda a: hasattr(a, "shape"))
        return as_layer(make_layer(shape)).call(params, state, x, **kwargs)

    return Layer(init_with_state, call, name="shape_dependent")


# Built here (not in layers/) because Residual needs them; re-exported from fnnet.
FanInSum = singleton(layer("FanInSum", _sum, _check_sum, compute_mask=_first_mask), "FanInSum")
Identity = singleton(layer("Identity", lambda params, x: x), "Identity")


@registered("Residual")
def Residual(*layers):
    """``x + body(x)``: a skip connection, built from ``FanOut``, ``parallel`` and ``FanInSum``.

    ``body`` is the one layer given, or ``serial(*layers)``. Params nest as the combinators
    do: ``Residual(serial(Dense(3), Relu))`` has ``{'parallel': {'serial': {'dense': ...}}}``.

    >>> import fnnet, jax
    >>> block = fnnet.Residual(fnnet.serial(fnnet.Dense(3), fnnet.Relu))
    >>> shape, params = block.init(jax.random.PRNGKey(0), (None, 3))
    >>> shape, sorted(params['parallel']['serial'])
    ((-1, 3), ['dense'])
    """
    body = as_layer(layers[0]) if len(layers) == 1 else serial(*layers)
    return serial(FanOut(2), parallel(body, Identity), FanInSum)

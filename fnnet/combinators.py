"""Combinators: layers made of layers, built only from the layer contract.

``serial`` chains layers, ``parallel`` runs one layer per input, ``FanOut``/``FanInSum``/
``FanInConcat`` split and join, ``Residual`` adds a branch to its input. Each threads
params, state and masks to its children and prefixes their errors with its path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .core import (LayerError, _prefixed, as_layer, leaf, make_layer, registered, shape_str,
                   singleton)


def _split(rng, n):
    return [None] * n if rng is None else list(jax.random.split(rng, n))


def _keys(layers):
    return [f"{layer.key}_{i}" for i, layer in enumerate(layers)]


def _named(part, layer, fn):
    try:
        return fn()
    except LayerError as e:
        raise _prefixed(e, part)
    except (ValueError, TypeError) as e:  # a raw stax layer or a user's function
        raise LayerError([part, layer.name], str(e)) from e


def _child_params(params, key, part, layer):
    try:
        return params[key]
    except (KeyError, TypeError, IndexError):
        have = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise LayerError([part, layer.name], f"params have no entry {key!r} (got {have}); "
                         "use the params returned by this model's init") from None


def _collect_state(keys, states):
    state = {k: s for k, s in zip(keys, states) if s is not None}
    return state or None


@registered("serial")
def serial(*layers):
    """Compose layers in sequence; params (and state) are dicts keyed ``dense_0``, ``relu_1``, ...

    Raw stax layers mix in unchanged. ``rng`` is split across the children, ``train``,
    ``state`` and masks reach every one of them.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> mlp = fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))
    >>> shape, params = mlp.init(jax.random.PRNGKey(0), (-1, 78))
    >>> shape, sorted(params)[:2], fnnet.count_params(params)
    ((-1, 1), ['dense_0', 'dense_2'], 112001)
    """
    layers = [as_layer(layer) for layer in layers]
    keys = _keys(layers)

    def init_full(rng, input_shape):
        params, states, shape = {}, [], input_shape
        for i, (key, layer, r) in enumerate(zip(keys, layers, _split(rng, len(layers)))):
            shape, params[key], s = _named(f"serial[{i}]", layer, lambda: layer._init(r, shape))
            states.append(s)
        return shape, params, _collect_state(keys, states)

    def call(params, state, x, ctx):
        state = state or {}
        new_states, mask = [], ctx.mask
        for i, (key, layer, r) in enumerate(zip(keys, layers, _split(ctx.rng, len(layers)))):
            child_ctx = ctx._replace(rng=r, mask=mask)
            x, s, mask = _named(f"serial[{i}]", layer,
                                lambda: layer._call(_child_params(params, key, f"serial[{i}]", layer), state.get(key), x,
                                                    child_ctx))
            new_states.append(s)
        return x, (_collect_state(keys, new_states) if state else None), mask

    name = "serial"
    return make_layer(name, init_full, call, children=tuple(zip(keys, layers)))


def _per_input(value, n):
    if isinstance(value, (tuple, list)):
        return list(value)
    return [value] * n


@registered("parallel")
def parallel(*layers):
    """Apply one layer to each element of a tuple of inputs; returns the tuple of outputs.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> both = fnnet.serial(fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(4), fnnet.Dense(5)),
    ...                     fnnet.FanInConcat())
    >>> both.init(jax.random.PRNGKey(0), (-1, 3))[0]
    (-1, 9)
    """
    layers = [as_layer(layer) for layer in layers]
    keys = _keys(layers)
    n = len(layers)

    def check(inputs, where):
        # At init a single shape such as (-1, 3) is a tuple too: its elements are ints.
        if (not isinstance(inputs, (tuple, list)) or len(inputs) != n
                or (where == "init" and not all(isinstance(s, (tuple, list)) for s in inputs))):
            got = (f"{len(inputs)}" if isinstance(inputs, (tuple, list)) and where != "init"
                   else shape_str(tuple(inputs)) if where == "init" else "1 (not a tuple)")
            raise LayerError(["parallel"], f"expected a tuple of {n} inputs at {where}, got {got}")

    def init_full(rng, input_shapes):
        check(input_shapes, "init")
        params, shapes, states = {}, [], []
        for i, (key, layer, r, shape) in enumerate(zip(keys, layers, _split(rng, n), input_shapes)):
            out, params[key], s = _named(f"parallel[{i}]", layer, lambda: layer._init(r, shape))
            shapes.append(out)
            states.append(s)
        return tuple(shapes), params, _collect_state(keys, states)

    def call(params, state, inputs, ctx):
        check(inputs, "apply")
        state = state or {}
        outs, new_states, masks = [], [], []
        for i, (key, layer, r, x, m) in enumerate(zip(keys, layers, _split(ctx.rng, n), inputs,
                                                    _per_input(ctx.mask, n))):
            child_ctx = ctx._replace(rng=r, mask=m)
            y, s, mask = _named(f"parallel[{i}]", layer,
                                lambda: layer._call(_child_params(params, key, f"parallel[{i}]", layer), state.get(key),
                                                    x, child_ctx))
            outs.append(y)
            new_states.append(s)
            masks.append(mask)
        out_mask = None if all(m is None for m in masks) else tuple(masks)
        return tuple(outs), (_collect_state(keys, new_states) if state else None), out_mask

    return make_layer("parallel", init_full, call, children=tuple(zip(keys, layers)))


def _no_param_layer(name, init_shape, forward, mask_fn, spec=None):
    def init_full(rng, input_shape):
        try:
            return init_shape(input_shape), {}, None
        except LayerError:
            raise
        except (ValueError, TypeError) as e:
            raise LayerError([name], str(e)) from e

    def call(params, state, x, ctx):
        try:
            return forward(x), state, mask_fn(ctx.mask)
        except (ValueError, TypeError) as e:
            raise LayerError([name], str(e)) from e

    return make_layer(name, init_full, call, spec=spec)


@registered("FanOut")
def FanOut(num):
    """Copy the input ``num`` times into a tuple (for ``parallel`` branches).

    >>> import fnnet, jax
    >>> fnnet.FanOut(2).init(jax.random.PRNGKey(0), (-1, 3))[0]
    ((-1, 3), (-1, 3))
    """
    return _no_param_layer(f"FanOut({num})", lambda shape: tuple([shape] * num),
                           lambda x: tuple([x] * num), lambda m: None if m is None else tuple([m] * num))


def _first_mask(mask):
    if isinstance(mask, (tuple, list)):
        return next((m for m in mask if m is not None), None)
    return mask


def _check_equal_shapes(shapes):
    first = shapes[0]
    for s in shapes[1:]:
        if tuple(s) != tuple(first):
            raise ValueError("inputs must all have the same shape, got "
                             + " and ".join(shape_str(tuple(x)) for x in shapes))
    return tuple(first)


def _fan_in_sum():
    def forward(xs):
        _check_equal_shapes([jnp.shape(x) for x in xs])
        return sum(xs[1:], xs[0])

    return _no_param_layer("FanInSum", _check_equal_shapes, forward, _first_mask)


def _concat_shape(shapes, axis):
    ndim = len(shapes[0])
    ax = axis % ndim
    for s in shapes[1:]:
        if len(s) != ndim or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != ax):
            raise ValueError(f"inputs must agree on every axis but {axis}, got "
                             + " and ".join(shape_str(tuple(x)) for x in shapes))
    sizes = [s[ax] for s in shapes]
    total = -1 if -1 in sizes else sum(sizes)
    return tuple(total if i == ax else d for i, d in enumerate(shapes[0]))


@registered("FanInConcat")
def FanInConcat(axis=-1):
    """Concatenate a tuple of inputs along ``axis``.

    >>> import fnnet, jax
    >>> fnnet.FanInConcat().init(jax.random.PRNGKey(0), ((-1, 3), (-1, 4)))[0]
    (-1, 7)
    """

    def forward(xs):
        _concat_shape([tuple(jnp.shape(x)) for x in xs], axis)
        return jnp.concatenate(xs, axis=axis)

    return _no_param_layer("FanInConcat", lambda shapes: _concat_shape(list(shapes), axis),
                           forward, _first_mask)


@registered("shape_dependent")
def shape_dependent(make_layer_fn):
    """A layer chosen from the input shape at ``init`` time (stax's ``shape_dependent``).

    The params remember nothing of the choice, so ``apply`` rebuilds the layer from
    the input's shape.

    >>> import fnnet, jax
    >>> layer = fnnet.shape_dependent(lambda shape: fnnet.Dense(shape[-1] * 2))
    >>> layer.init(jax.random.PRNGKey(0), (-1, 3))[0]
    (-1, 6)
    """

    def init_full(rng, input_shape):
        return as_layer(make_layer_fn(input_shape))._init(rng, input_shape)

    def call(params, state, x, ctx):
        shape = jax.tree_util.tree_map(lambda a: tuple(a.shape), x, is_leaf=lambda a: hasattr(a, "shape"))
        return as_layer(make_layer_fn(shape))._call(params, state, x, ctx)

    return make_layer("shape_dependent", init_full, call)


@registered("Residual")
def Residual(*layers):
    """``x + serial(*layers)(x)``: a residual (skip) connection, made from fan-out/fan-in.

    >>> import fnnet, jax
    >>> block = fnnet.Residual(fnnet.Dense(3), fnnet.Relu)
    >>> block.init(jax.random.PRNGKey(0), (-1, 3))[0]
    (-1, 3)
    """
    body = serial(FanOut(2), parallel(serial(*layers), Identity), FanInSum)
    body.name = "Residual"
    body.key = "residual"
    return body


# Built here (not in layers/) because Residual needs them; re-exported from fnnet.
FanInSum = singleton(_fan_in_sum(), "FanInSum")
Identity = singleton(leaf("Identity", lambda params, x, ctx: x), "Identity")

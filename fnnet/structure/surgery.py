"""Layer surgery on ``serial`` models: insert, remove or replace a layer, keeping trained params.

``serial`` keys its params by position (``dense_0``, ``relu_1``), so an edit renumbers
the layers after it; these functions move every unchanged layer's params (and state) to
its new key untouched (the very same arrays), initialise only the new layer at the
input shape it will see, and check that every kept layer's params still fit.

A layer is addressed by its index (negative counts from the end), by its path
``'serial[3]'``, or by its params key ``'dense_3'``; ``'serial[1]/serial[0]'`` or
``'serial_1/dense_0'`` reaches into a nested ``serial``.

As with ``apply``, passing ``state=`` (even ``None``) makes the result
``(model, params, state)``; without it the result is ``(model, params)``.
"""

from __future__ import annotations

import re

from ..combinators import serial
from ..core import as_layer, shape_str
from .eval_init import eval_init, tree_differences

_NO_STATE = object()


class SurgeryError(ValueError):
    """An edit cannot be made: a bad address, a model that is not ``serial``, or kept params that no longer fit."""


def _is_serial(layer) -> bool:
    spec = getattr(layer, "spec", None)
    return (spec[0] if spec else layer.name) == "serial"


def _parse(where) -> list:
    """An address as a list of steps, each an index or a ``(params_key, index)`` pair."""
    if isinstance(where, int):
        return [where]
    if not isinstance(where, str) or not where.strip("/"):
        raise SurgeryError(f"a layer address is an index, 'serial[3]' or 'dense_3', got {where!r}")
    steps = []
    for part in where.strip("/").split("/"):
        by_path = re.fullmatch(r"serial\[(-?\d+)\]", part)
        by_key = re.fullmatch(r"\w+_(\d+)", part)
        if by_path:
            steps.append(int(by_path.group(1)))
        elif by_key:
            steps.append((part, int(by_key.group(1))))
        else:
            raise SurgeryError(f"cannot read {part!r} in {where!r}: use 'serial[3]', 'dense_3' or an index")
    return steps


def _position(step, children, path, inserting: bool) -> int:
    n = len(children)
    if isinstance(step, tuple):  # a params key: it must name the layer at that index
        key, index = step
        if not (0 <= index < n and children[index][0] == key) and not (inserting and index == n):
            keys = ", ".join(k for k, _ in children)
            raise SurgeryError(f"{path or 'model'}: no layer keyed {key!r} here; the keys are {keys}")
        return index
    # Inserting at -1 appends: the new layer then sits last, as the index says.
    size = n + 1 if inserting else n
    index = step + size if step < 0 else step
    if not 0 <= index < size:
        raise SurgeryError(f"{path or 'model'}: index {step} is out of range for a serial of {n} layers")
    return index


def _shape_before(children, index, input_shape):
    shape = input_shape
    for _, child in children[:index]:
        shape = eval_init(child, shape)[0]
    return shape


def _edit(model, params, state, steps, input_shape, path, inserting, make_entries):
    """Apply ``make_entries`` at the address ``steps``.

    Returns ``(model, params, state, renamed)``; ``renamed`` maps each kept layer's new
    params path to its old one (``'dense_3'`` -> ``'dense_4'``), for error messages.
    """
    if not _is_serial(model):
        raise SurgeryError(f"{path or 'model'}: surgery edits serial models, this is {model.name}")
    children = list(model.children)
    state = state or {}
    last = len(steps) == 1
    index = _position(steps[0], children, path, inserting and last)
    child_path = f"{path}/serial[{index}]" if path else f"serial[{index}]"
    shape = _shape_before(children, index, input_shape)
    # (layer, params, state, old key) per position; kept layers carry their own arrays, untouched.
    entries = [(child, params[key], state.get(key), key) for key, child in children]
    inner_renamed = {}
    if last:
        entries[index:index + 1] = [entry[:3] + (entry[3] if len(entry) > 3 else None,)
                                    for entry in make_entries(entries[index:index + 1], shape, child_path)]
    else:
        key, child = children[index]
        *edited, inner_renamed = _edit(child, params[key], state.get(key), steps[1:], shape, child_path,
                                       inserting, make_entries)
        entries[index] = (*edited, key)
    new_model = serial(*[entry[0] for entry in entries])
    keys = [key for key, _ in new_model.children]
    new_params = {key: entry[1] for key, entry in zip(keys, entries)}
    new_state = {key: entry[2] for key, entry in zip(keys, entries) if entry[2] is not None}
    renamed = {key: entry[3] for key, entry in zip(keys, entries) if entry[3] is not None}
    if not last:
        new_key, old_key = keys[index], entries[index][3]
        renamed.update({f"{new_key}/{a}": f"{old_key}/{b}" for a, b in inner_renamed.items()})
    return new_model, new_params, new_state or None, renamed


def _old_name(path: str, renamed: dict) -> str:
    """`` (was dense_4)`` when the layer holding ``params/dense_3/kernel`` was renumbered."""
    inner = path.split("/", 1)[1] if "/" in path else path
    prefixes = [p for p in renamed if inner == p or inner.startswith(p + "/")]
    if not prefixes:
        return ""
    new = max(prefixes, key=len)
    return f" (was {renamed[new]})" if renamed[new] != new else ""


def _check_fit(model, params, state, input_shape, with_state, renamed):
    _, want_params, want_state = eval_init(model, input_shape)
    expected, actual = {"params": want_params}, {"params": params}
    if with_state:
        expected["state"], actual["state"] = want_state, state
    missing, extra, shapes, dtypes = tree_differences(expected, actual)
    problems = [f"{p}{_old_name(p, renamed)} has shape {tuple(a)}, the edited model needs {tuple(b)}"
                for p, a, b in shapes]
    problems += [f"{p}{_old_name(p, renamed)} has dtype {a}, the edited model needs {b}" for p, a, b in dtypes]
    problems += [f"{p} is missing" for p in missing] + [f"{p} is not used by the edited model" for p in extra]
    if problems:
        raise SurgeryError(f"kept params no longer fit the edited model (input shape {shape_str(input_shape)}): "
                           + "; ".join(problems) + "; replace those layers too")


def _surgery(model, params, where, input_shape, state, inserting, make_entries):
    input_shape = tuple(input_shape)
    want_state = state is not _NO_STATE
    start_state = state if want_state else None
    new_model, new_params, new_state, renamed = _edit(as_layer(model), params, start_state, _parse(where),
                                                      input_shape, "", inserting, make_entries)
    if not want_state and new_state is not None:
        raise SurgeryError("the new layer has state (e.g. BatchNorm statistics); pass state= to get it back")
    _check_fit(new_model, new_params, new_state, input_shape, want_state and start_state is not None, renamed)
    return (new_model, new_params, new_state) if want_state else (new_model, new_params)


def _initialised(layer, shape, rng):
    layer = as_layer(layer)
    _, params, state = layer._init(rng, shape)
    return [(layer, params, state)]


def insert_layer(model, params, where, layer, input_shape, rng, *, state=_NO_STATE):
    """Insert ``layer`` so that it sits at ``where`` (an index up to ``len``, ``'serial[3]'``).

    The new layer is initialised with ``rng`` at the shape flowing into that position;
    every other layer keeps its params (the same arrays) under its renumbered key.

    >>> import fnnet, jax
    >>> model = fnnet.serial(fnnet.Dense(4), fnnet.Dense(1))
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    >>> new_model, new_params = fnnet.insert_layer(model, params, 1, fnnet.Relu, (-1, 3), jax.random.PRNGKey(1))
    >>> sorted(new_params), new_params['dense_2'] is params['dense_1']
    (['dense_0', 'dense_2', 'relu_1'], True)
    """
    return _surgery(model, params, where, input_shape, state, True,
                    lambda old, shape, path: _initialised(layer, shape, rng) + old)


def remove_layer(model, params, where, input_shape, *, state=_NO_STATE):
    """Remove the layer at ``where``; the layers after it keep their params under renumbered keys.

    Raises :class:`SurgeryError` when a kept layer's params no longer fit (removing
    ``Dense(200)`` between ``Dense(400)`` and ``Dense(1)`` changes ``Dense(1)``'s input).

    >>> import fnnet, jax
    >>> model = fnnet.serial(fnnet.Dense(4), fnnet.Dropout(0.5), fnnet.Dense(1))
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    >>> new_model, new_params = fnnet.remove_layer(model, params, 'serial[1]', (-1, 3))
    >>> [k for k, _ in new_model.children], new_params['dense_1'] is params['dense_2']
    (['dense_0', 'dense_1'], True)
    """
    def drop(old, shape, path):
        if not old:
            raise SurgeryError(f"{path}: there is no layer to remove")
        return []

    return _surgery(model, params, where, input_shape, state, False, drop)


def replace_layer(model, params, where, layer, input_shape, rng, *, state=_NO_STATE):
    """Replace the layer at ``where`` by ``layer``, initialised with ``rng``; the others keep their params.

    Replacing a trained classifier's head (``where=-1``) keeps its embedding and LSTM.

    >>> import fnnet, jax
    >>> model = fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(2))
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    >>> head, new_params = fnnet.replace_layer(model, params, -1, fnnet.Dense(5), (-1, 3), jax.random.PRNGKey(1))
    >>> head.init(jax.random.PRNGKey(0), (-1, 3))[0], new_params['dense_0'] is params['dense_0']
    ((-1, 5), True)
    """
    def swap(old, shape, path):
        if not old:
            raise SurgeryError(f"{path}: there is no layer to replace")
        return _initialised(layer, shape, rng)

    return _surgery(model, params, where, input_shape, state, False, swap)

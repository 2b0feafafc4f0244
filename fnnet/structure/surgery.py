"""Layer surgery on ``serial`` models: insert, remove or replace a layer, keeping trained params.

``serial`` keys its params by name (``dense``, ``dense_1``), and these edits keep every
key that was there: an unchanged layer keeps its params (and state), the very same
arrays, under its own key, whatever is inserted or removed around it (a kept layer whose
default key would move is given that key as its explicit name). Only the new layer is
initialised, at the input shape it will see (read from :func:`fnnet.walk`, so nothing
else is computed), and the edited model is checked to still fit every kept layer's
params.

A layer is addressed by its index (negative counts from the end), by its path
``'serial[3]'``, or by its key ``'dense_1'``; ``'serial[1]/serial[0]'`` or
``'encoder/dense'`` reaches into a nested ``serial``.

Every edit returns ``(model, params, state)``; ``state`` is None for a stateless model.
Pass a stateful model's ``state=`` so that the edit keeps it.
"""

from __future__ import annotations

import re

from ..combinators import serial
from ..core import LAYER_REGISTRY, LayerError, as_layer, child_keys, shape_str, walk
from .eval_init import tree_differences


class SurgeryError(ValueError):
    """An edit cannot be made: a bad address, a model that is not ``serial``, or kept params that no longer fit."""


def _has_entry(tree) -> bool:
    """A parent stores a child's params (or state) only when there are some."""
    return tree is not None and not (isinstance(tree, (dict, tuple, list)) and len(tree) == 0)


def _built_by_serial(layer) -> bool:
    # Surgery rebuilds the edited level with serial(), so it edits only what serial() built.
    spec = layer.spec
    return spec is not None and LAYER_REGISTRY.get(spec[0]) is serial


def _parse(where) -> list:
    """An address as a list of steps, each an index or a key."""
    if isinstance(where, int) and not isinstance(where, bool):
        return [where]
    if not isinstance(where, str) or not where.strip("/"):
        raise SurgeryError(f"a layer address is an index, 'serial[3]' or a key such as 'dense_1', got {where!r}")
    steps = []
    for part in where.strip("/").split("/"):
        by_path = re.fullmatch(r"serial\[(-?\d+)\]", part)
        if by_path:
            steps.append(int(by_path.group(1)))
        elif re.fullmatch(r"[A-Za-z_][\w.-]*", part):
            steps.append(part)
        else:
            raise SurgeryError(f"cannot read {part!r} in {where!r}: use 'serial[3]', a key such as 'dense_1', "
                               "or an index")
    return steps


def _position(step, children, path, inserting: bool) -> int:
    n = len(children)
    if isinstance(step, str):  # a key: inserting there puts the new layer before it
        for index, child in enumerate(children):
            if child.key == step:
                return index
        keys = ", ".join(child.key for child in children)
        raise SurgeryError(f"{path or 'model'}: no layer keyed {step!r} here; the keys are {keys}")
    # Inserting at -1 appends: the new layer then sits last, as the index says.
    size = n + 1 if inserting else n
    index = step + size if step < 0 else step
    if not 0 <= index < size:
        raise SurgeryError(f"{path or 'model'}: index {step} is out of range for a serial of {n} layers")
    return index


def _keeping_keys(entries, path):
    """The layers of ``entries``, every kept one under its old key; new ones get fresh default keys.

    ``serial`` gives explicit names first, then numbers the defaults in order, so a new
    ``Dense`` before ``dense`` would take ``dense`` and push the old one to ``dense_1``:
    a kept layer whose key would move is given its old key as its explicit name.
    """
    layers = [entry[0] for entry in entries]
    while True:
        try:
            keys = child_keys(layers, path or "serial")
        except LayerError as e:
            raise SurgeryError(f"{e}; give the new layer another name=") from e
        moved = [i for i, (entry, key) in enumerate(zip(entries, keys)) if entry[1] is not None and key != entry[1]]
        if not moved:
            return layers, keys
        # A renamed layer's key is fixed from now on, so this ends within len(layers) rounds.
        for i in moved:
            layers[i] = layers[i].with_name(entries[i][1])


def _edit(node, params, state, steps, path, inserting, make_entries):
    """Apply ``make_entries`` at the address ``steps`` below the walked ``node``: ``(model, params, state)``."""
    layer = node.layer
    if not _built_by_serial(layer):
        raise SurgeryError(f"{path or 'model'}: surgery edits serial models, this is {layer.description}")
    for what, tree in (("params", params), ("state", state)):
        if tree is not None and not isinstance(tree, dict):
            raise SurgeryError(f"{path or 'model'}: expected {what} as a dict keyed by the layers' names, "
                               f"got {type(tree).__name__}; use the {what} this model's init returned")
    params, state = params or {}, state or {}
    children = node.children
    last = len(steps) == 1
    index = _position(steps[0], children, path, inserting and last)
    child_path = f"{path}/serial[{index}]" if path else f"serial[{index}]"
    # (layer, old key or None for a new layer, params, state); kept layers carry their own arrays.
    entries = [(child.layer, child.key, params.get(child.key), state.get(child.key)) for child in children]
    if last:
        shape = children[index].input_shape if index < len(children) else node.output_shape
        entries[index:index + 1] = make_entries(entries[index:index + 1], shape, child_path)
    else:
        child = children[index]
        edited = _edit(child, params.get(child.key), state.get(child.key), steps[1:], child_path, inserting,
                       make_entries)
        entries[index] = (edited[0], child.key, *edited[1:])
    layers, keys = _keeping_keys(entries, path)
    new_model = serial(*layers, **layer.spec[2])  # spec[2] holds an explicit name=, if any
    new_params = {key: entry[2] for key, entry in zip(keys, entries) if _has_entry(entry[2])}
    new_state = {key: entry[3] for key, entry in zip(keys, entries) if _has_entry(entry[3])}
    return new_model, new_params, new_state or None


def _check_fit(model, params, state, input_shape):
    edited = walk(model, input_shape)
    missing, extra, shapes, dtypes = tree_differences({"params": edited.params, "state": edited.state},
                                                      {"params": params, "state": state})
    problems = [f"{p} has shape {tuple(a)}, the edited model needs {tuple(b)}" for p, a, b in shapes]
    problems += [f"{p} has dtype {a}, the edited model needs {b}" for p, a, b in dtypes]
    problems += [f"{p} is missing" for p in missing] + [f"{p} is not used by the edited model" for p in extra]
    if problems:
        raise SurgeryError(f"kept params no longer fit the edited model (input shape {shape_str(input_shape)}): "
                           + "; ".join(problems) + "; replace those layers too")


def _surgery(model, params, where, input_shape, state, inserting, make_entries):
    input_shape = tuple(input_shape)
    root = walk(as_layer(model), input_shape)
    if state is None and _has_entry(root.state):
        raise SurgeryError("this model keeps state (e.g. BatchNorm statistics): pass state= (from "
                           "init_with_state or training) so that the edit keeps it")
    new_model, new_params, new_state = _edit(root, params, state, _parse(where), "", inserting, make_entries)
    _check_fit(new_model, new_params, new_state, input_shape)
    return new_model, new_params, new_state


def _initialised(layer, shape, rng):
    """The new layer's entry, initialised for the shape it will see: the only real init of an edit."""
    layer = as_layer(layer)
    _, params, state = layer.init_with_state(rng, shape)
    return [(layer, None, params, state)]


def insert_layer(model, params, where, layer, input_shape, rng, *, state=None):
    """Insert ``layer`` so that it sits at ``where`` (an index up to ``len``, ``'serial[3]'``, or a key).

    The new layer is initialised with ``rng`` at the shape flowing into that position;
    every other layer keeps its key and its params (the same arrays). Returns
    ``(model, params, state)``.

    >>> import fnnet, jax
    >>> model = fnnet.serial(fnnet.Dense(4), fnnet.Dense(1))
    >>> _, params = model.init(jax.random.PRNGKey(0), (None, 3))
    >>> new_model, new_params, _ = fnnet.insert_layer(model, params, 1, fnnet.Dense(4), (None, 3),
    ...                                               jax.random.PRNGKey(1))
    >>> [k for k, _ in new_model.children], new_params['dense_1'] is params['dense_1']
    (['dense', 'dense_2', 'dense_1'], True)
    """
    return _surgery(model, params, where, input_shape, state, True,
                    lambda old, shape, path: _initialised(layer, shape, rng) + old)


def remove_layer(model, params, where, input_shape, *, state=None):
    """Remove the layer at ``where``; the others keep their keys and params. Returns ``(model, params, state)``.

    Raises :class:`SurgeryError` when a kept layer's params no longer fit (removing
    ``Dense(200)`` between ``Dense(400)`` and ``Dense(1)`` changes ``Dense(1)``'s input).

    >>> import fnnet, jax
    >>> model = fnnet.serial(fnnet.Dense(4), fnnet.Dropout(0.5), fnnet.Dense(1))
    >>> _, params = model.init(jax.random.PRNGKey(0), (None, 3))
    >>> new_model, new_params, _ = fnnet.remove_layer(model, params, 'serial[1]', (None, 3))
    >>> [k for k, _ in new_model.children], new_params['dense_1'] is params['dense_1']
    (['dense', 'dense_1'], True)
    """
    def drop(old, shape, path):
        if not old:
            raise SurgeryError(f"{path}: there is no layer to remove")
        return []

    return _surgery(model, params, where, input_shape, state, False, drop)


def replace_layer(model, params, where, layer, input_shape, rng, *, state=None):
    """Replace the layer at ``where`` by ``layer``, initialised with ``rng``; the others keep their params.

    Replacing a trained classifier's head (``where=-1``) keeps its embedding and LSTM.
    Returns ``(model, params, state)``.

    >>> import fnnet, jax
    >>> model = fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(2))
    >>> _, params = model.init(jax.random.PRNGKey(0), (None, 3))
    >>> head, new_params, _ = fnnet.replace_layer(model, params, -1, fnnet.Dense(5), (None, 3),
    ...                                           jax.random.PRNGKey(1))
    >>> head.init(jax.random.PRNGKey(0), (None, 3))[0], new_params['dense'] is params['dense']
    ((-1, 5), True)
    """
    def swap(old, shape, path):
        if not old:
            raise SurgeryError(f"{path}: there is no layer to replace")
        return _initialised(layer, shape, rng)

    return _surgery(model, params, where, input_shape, state, False, swap)

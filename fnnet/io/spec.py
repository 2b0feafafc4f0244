"""A model's architecture as data: ``to_spec`` / ``from_spec``.

Every layer built by a registered constructor (``@fnnet.registered("Name")``) records
``layer.spec = (name, args, kwargs)``; ready-made layers (``fnnet.Relu``) record
``(name, (), {})``. ``to_spec`` turns that record into plain JSON values, recursively
for combinators whose arguments are layers, and ``from_spec`` calls the registered
constructors again.

The JSON form of a layer is ``{"class": name, "args": [...], "kwargs": {...}}``. Numbers,
strings, booleans, ``None`` and lists are themselves; every other value is a one-key
object that says what it is, so nothing is guessed when decoding:

- ``{"tuple": [...]}`` and ``{"dict": {...}}`` (tuples stay tuples),
- ``{"layer": {...}}`` for a layer argument (``serial``'s children), written from the
  node that :func:`fnnet.walk` gives for that child,
- ``{"activation": "relu"}`` / ``{"initializer": "zeros"}`` for a callable found by
  identity in ``fnnet.ACTIVATIONS`` / ``fnnet.INITIALIZERS``; ``{"function": "jax.nn.leaky_relu"}``
  for a library function in ``fnnet.layers.activations.FUNCTIONS``.

Anything else (a lambda, an array, a raw stax pair) cannot be written down, and
``to_spec`` says which layer and which argument hold it.
"""

from __future__ import annotations

import json
import numbers

import numpy as np

from ..core import LAYER_REGISTRY, SINGLETONS, Layer, registered, walk
from ..graph import Input, Model, SymbolicTensor
from ..initializers import INITIALIZERS
from ..layers.activations import ACTIVATIONS, FUNCTIONS

_NAMED_CALLABLES = (("activation", ACTIVATIONS), ("initializer", INITIALIZERS), ("function", FUNCTIONS))

# Re-exported as fnnet.register_layer: the name users look for when registering their layers.
register_layer = registered


class SpecError(ValueError):
    """A model cannot be written as a spec, or a spec cannot be built back into a model.

    ``path`` is where in the model the problem is (``'serial[2]'``; ``'model'`` for the root).
    """

    def __init__(self, path, detail):
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {detail}")

    def __reduce__(self):
        return (SpecError, (self.path, self.detail))


def _child_path(parent_path: str, ctor_name: str, position: int | str) -> str:
    part = f"{ctor_name}[{position}]"
    return part if parent_path == "model" else f"{parent_path}/{part}"


def _arg_label(ctor_name: str, position: int | str) -> str:
    kind = f"positional argument {position}" if isinstance(position, int) else f"argument {position!r}"
    return f"{kind} of {ctor_name}"


def _callable_name(fn, table) -> str | None:
    return next((name for name, known in table.items() if known is fn), None)


def _is_named(fn) -> bool:
    return any(_callable_name(fn, table) is not None for _, table in _NAMED_CALLABLES)


def _describe(value) -> str:
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    return f"the callable {name}" if name else f"a {type(value).__name__}"


# ------------------------------------------------------------------------------ encode

def _encode(value, node, path: str, ctor_name: str, argument: int | str):
    """One constructor argument of ``node``'s layer as JSON values; ``argument`` names it in errors."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, SymbolicTensor) and value.layer is None:  # Sequential's leading Input
        return {"input": {"shape": [None if d == -1 else d for d in value.shape[1:]], "dtype": value.dtype,
                          "name": value.source.name}}
    if isinstance(value, Layer):
        # The argument as the walk met it (a combinator may keep it deeper down, as Residual
        # does inside its parallel); one it keeps no node for (a template it copies) gets a
        # structure-only walk of its own.
        found = _find_node(node, value)
        return {"layer": _layer_node(found if found is not None else walk(value),
                                     _child_path(path, ctor_name, argument))}
    if isinstance(value, tuple) and len(value) == 2 and all(callable(f) and not _is_named(f) for f in value):
        raise SpecError(_child_path(path, ctor_name, argument),
                        "a raw stax (init, apply) pair has no spec; rebuild it from fnnet layers or "
                        "wrap it in a constructor decorated with fnnet.registered('Name')")
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, node, path, ctor_name, argument) for v in value]}
    if isinstance(value, list):
        return [_encode(v, node, path, ctor_name, argument) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise SpecError(path, f"{_arg_label(ctor_name, argument)} is a dict with non-string keys")
        return {"dict": {k: _encode(v, node, path, ctor_name, argument) for k, v in value.items()}}
    if callable(value):
        for tag, table in _NAMED_CALLABLES:
            name = _callable_name(value, table)
            if name is not None:
                return {tag: name}
        raise SpecError(path, f"{_arg_label(ctor_name, argument)} is {_describe(value)}, which is not a "
                              "registered activation, initializer or function and cannot be serialised; pass a "
                              "name (e.g. 'relu', 'glorot_uniform') or add the function to fnnet.ACTIVATIONS")
    raise SpecError(path, f"{_arg_label(ctor_name, argument)} is {_describe(value)}, which cannot be serialised "
                          "(specs hold numbers, strings, tuples, lists, dicts, layers and named functions)")


def _find_node(node, layer):
    """The nearest node below ``node`` (breadth first) whose layer is ``layer``, or None."""
    level = list(node.children)
    while level:
        match = next((n for n in level if n.layer is layer), None)
        if match is not None:
            return match
        level = [c for n in level for c in n.children]
    return None


def _layer_node(node, path: str) -> dict:
    """The JSON form of the layer at ``node`` (a :class:`fnnet.Node` of the walk), at ``path``.

    Only the layer's own spec is written: children that are arguments of its constructor
    are written where they appear in it; the others are its constructor's business.
    """
    layer = node.layer
    if isinstance(layer, Model):  # a graph: its layers, and the calls that connect them
        def encode_layer(key, child):
            found = _find_node(node, child)
            return _layer_node(found if found is not None else walk(child), _child_path(path, "Model", key))

        return {"class": "Model", "graph": layer.graph_config(encode_layer)}
    if layer.spec is None:
        raise SpecError(path, f"layer {layer.description} has no spec: it was built by fnnet.layer, a Layer(...) "
                              "call or a raw stax pair, not by a registered constructor; decorate its "
                              "constructor with fnnet.registered('Name') to make it serialisable")
    ctor_name, args, kwargs = layer.spec
    if ctor_name not in LAYER_REGISTRY and ctor_name not in SINGLETONS:
        raise SpecError(path, f"layer {layer.description} records constructor {ctor_name!r}, which is not "
                              "registered; decorate it with fnnet.registered(...)")
    return {"class": ctor_name,
            "args": [_encode(a, node, path, ctor_name, i) for i, a in enumerate(args)],
            "kwargs": {k: _encode(v, node, path, ctor_name, k) for k, v in kwargs.items()}}


def to_spec(model) -> dict:
    """The architecture of ``model`` as a JSON-serialisable dict; :func:`from_spec` rebuilds it.

    The model is read through :func:`fnnet.walk` (its structure only: no input shape is
    needed). Each layer is written as its constructor call (``layer.spec``), nested for
    combinators; ready-made layers (``fnnet.Relu``) by their name; explicit names are
    kept (``{'name': 'encoder'}`` among the keyword arguments). Raises
    :class:`SpecError` naming the layer's path (``serial[2]``) when a layer was not built
    by a registered constructor or holds an unnamed function.

    >>> import fnnet, json
    >>> spec = fnnet.to_spec(fnnet.serial(fnnet.Dense(4, activation='relu'), fnnet.Dropout(0.1)))
    >>> print(json.dumps(spec['args'][0]))
    {"layer": {"class": "Dense", "args": [4], "kwargs": {"activation": "relu"}}}
    >>> fnnet.to_spec(fnnet.Relu)
    {'class': 'Relu', 'args': [], 'kwargs': {}}
    >>> fnnet.to_spec(fnnet.Dense(2, name='encoder'))['kwargs']
    {'name': 'encoder'}
    """
    return _layer_node(walk(model), "model")


# ------------------------------------------------------------------------------ decode

def _decode(value, path: str, ctor_name: str, argument: int | str):
    if isinstance(value, list):
        return [_decode(v, path, ctor_name, argument) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise SpecError(path, f"{_arg_label(ctor_name, argument)}: expected a one-key object such as "
                              f"{{'tuple': [...]}}, got keys {sorted(value)}")
    (tag, body), = value.items()
    expected = {"tuple": list, "dict": dict, "layer": dict, "input": dict}.get(tag, str)
    if not isinstance(body, expected):  # the file is data from anywhere: check before using it
        raise SpecError(path, f"{_arg_label(ctor_name, argument)}: {tag!r} holds {type(body).__name__}, "
                              f"expected {expected.__name__}")
    if tag == "tuple":
        return tuple(_decode(v, path, ctor_name, argument) for v in body)
    if tag == "dict":
        return {k: _decode(v, path, ctor_name, argument) for k, v in body.items()}
    if tag == "layer":
        return _build(body, _child_path(path, ctor_name, argument))
    if tag == "input":
        if not isinstance(body.get("shape"), list) or "dtype" not in body:
            raise SpecError(path, f"{_arg_label(ctor_name, argument)}: an input needs 'shape' (a list) and 'dtype'")
        return Input(tuple(body["shape"]), body["dtype"], body.get("name"))
    for known_tag, table in _NAMED_CALLABLES:
        if tag == known_tag:
            if body not in table:
                raise SpecError(path, f"{_arg_label(ctor_name, argument)}: unknown {tag} {body!r}; "
                                      f"known: {', '.join(sorted(table))}")
            return table[body]
    raise SpecError(path, f"{_arg_label(ctor_name, argument)}: unknown value tag {tag!r}")


def _build(node, path: str):
    if not isinstance(node, dict) or "class" not in node:
        raise SpecError(path, f"expected a layer object with a 'class' key, got {node!r}")
    name = node["class"]
    if not isinstance(name, str):
        raise SpecError(path, f"'class' is {name!r}, not a layer name")
    if not isinstance(node.get("args", []), list):
        raise SpecError(path, f"{name}: 'args' is {type(node['args']).__name__}, expected a list")
    if not isinstance(node.get("kwargs", {}), dict):
        raise SpecError(path, f"{name}: 'kwargs' is {type(node['kwargs']).__name__}, expected an object")
    if name == "Model" and "graph" in node:
        try:
            return Model.from_graph_config(node["graph"], lambda key, body: _build(body, _child_path(path, name, key)))
        except SpecError:
            raise
        except (ValueError, TypeError, KeyError) as e:
            raise SpecError(path, f"the graph of Model could not be rebuilt: {e}") from e
    args = [_decode(a, path, name, i) for i, a in enumerate(node.get("args", []))]
    kwargs = {k: _decode(v, path, name, k) for k, v in node.get("kwargs", {}).items()}
    if name in LAYER_REGISTRY:
        try:
            return LAYER_REGISTRY[name](*args, **kwargs)
        except SpecError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, ArithmeticError) as e:
            detail = e if isinstance(e, (ValueError, TypeError)) else f"{type(e).__name__}: {e}"
            raise SpecError(path, f"{name}(...) failed: {detail}") from e
    if name in SINGLETONS:
        if args or set(kwargs) - {"name"}:
            raise SpecError(path, f"{name} is a ready-made layer and takes no arguments (but name=)")
        return SINGLETONS[name] if "name" not in kwargs else SINGLETONS[name].with_name(kwargs["name"])
    raise SpecError(path, f"unknown layer {name!r}; register its constructor with fnnet.registered({name!r}) "
                          "before calling from_spec")


def from_spec(spec):
    """Build the model that :func:`to_spec` described; ``spec`` is a dict or its JSON text.

    User layers must be registered (``@fnnet.registered("Name")``) before this is called.
    Explicit names come back, so the rebuilt model's params have the same keys.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> model = fnnet.serial(fnnet.Dense(3, W_init='he_normal'), fnnet.Relu, fnnet.Reshape((3, 1)))
    >>> rebuilt = fnnet.from_spec(fnnet.to_spec(model))
    >>> fnnet.to_spec(rebuilt) == fnnet.to_spec(model)
    True
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    >>> bool(jnp.array_equal(model.apply(params, jnp.ones((1, 2))), rebuilt.apply(params, jnp.ones((1, 2)))))
    True
    """
    try:
        if isinstance(spec, (str, bytes)):
            spec = json.loads(spec)
        return _build(spec, "model")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpecError("model", f"the spec is not valid JSON: {e}") from e
    except RecursionError:
        raise SpecError("model", "the spec nests layers or values too deeply to be a model") from None

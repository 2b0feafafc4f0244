"""Import Keras 3 models: :func:`from_keras` gives an fnnet model, its params and its state.

Both ways in read the same two things, so one code path converts them:

- the model's config as JSON (Keras's ``serialize_keras_object`` form, which is also
  the ``config.json`` inside a ``.keras`` zip);
- its weights in Keras's HDF5 layout (``model.weights.h5`` inside the zip; for a live
  model, what ``model.save_weights`` writes).

A ``.keras`` file is read with ``h5py`` alone, so Keras need not be installed for it.

In the weights file a model's layers sit under ``layers/`` named by their class in snake
case plus a counter in the model's layer order (``dense``, ``dense_1``), which is how
Keras itself finds them when loading; sub-layers sit under their attribute name
(``cell``, ``forward_layer``, ``layer``) and each object's variables under ``vars/0``,
``vars/1``, ... in creation order.

Functional models become combinators: a chain is ``serial``; tensors that fork and join
again at a ``Concatenate``/``Add`` become ``FanOut``, ``parallel`` and ``FanInConcat``/
``FanInSum``. The fork for a join is found as the join's immediate dominator in the
layer graph (the nearest tensor every path from the input to the join goes through).
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .combinators import FanInConcat, FanInSum, FanOut, Identity, parallel, serial
from .eval_init import eval_init, tree_differences
from .layers import (Activation, AveragePooling1D, AveragePooling2D, BatchNorm, Bidirectional, Conv1D, Conv2D,
                     Dense, Dropout, Embedding, Flatten, GlobalAveragePooling1D, GlobalAveragePooling2D,
                     GlobalMaxPooling1D, GlobalMaxPooling2D, GRU, LayerNorm, LSTM, MaxPooling1D, MaxPooling2D,
                     Reshape, SimpleRNN, TimeDistributed)
from .layers.activations import ACTIVATIONS

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
_MODEL_CLASSES = ("Sequential", "Functional", "Model")
_RECURRENT_CLASSES = ("LSTM", "GRU", "SimpleRNN")
_MERGE_CLASSES = ("Concatenate", "Add")
# Keras names whose meaning fnnet's table might not share: (input, Keras 3's output).
_ACTIVATION_PROBES = {"leaky_relu": (-1.0, -0.2)}


class KerasImportError(ValueError):
    """A Keras model cannot be imported as an fnnet model.

    ``layer_class`` and ``layer_name`` name the Keras layer at fault (``'Conv3D'``,
    ``'conv3d_1'``); both are None when the problem is the model or file as a whole.

    >>> err = KerasImportError("is not supported", "Conv3D", "conv3d_1")
    >>> str(err), err.layer_name
    ("Keras layer 'conv3d_1' (Conv3D): is not supported", 'conv3d_1')
    """

    def __init__(self, detail, layer_class=None, layer_name=None):
        self.detail, self.layer_class, self.layer_name = detail, layer_class, layer_name
        where = f"Keras layer {layer_name!r} ({layer_class}): " if layer_class else ""
        super().__init__(where + detail)

    def __reduce__(self):
        return (KerasImportError, (self.detail, self.layer_class, self.layer_name))


# ------------------------------------------------------------------------ weights file

def _import_h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError("reading Keras weights needs h5py: pip install 'fnnet[keras]'") from e
    return h5py


class _Weights:
    """One Keras object's group in the weights file: its own variables and its sub-objects."""

    def __init__(self, group, path: str):
        self.group, self.path = group, path

    def child(self, name: str) -> "_Weights":
        group = self.group.get(name) if self.group is not None else None
        return _Weights(group, f"{self.path}/{name}")

    def variables(self) -> list:
        store = self.group.get("vars") if self.group is not None else None
        if store is None:
            return []
        return [np.asarray(store[str(i)]) for i in range(len(store))]

    def layer_name(self):
        """The Keras layer name that newer Keras versions record beside the variables."""
        store = self.group.get("vars") if self.group is not None else None
        name = store.attrs.get("name") if store is not None else None
        return name.decode() if isinstance(name, bytes) else name


def _snake_case(name: str) -> str:
    """Keras's ``to_snake_case``, which names layer groups in the weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _layer_groups(model_weights: _Weights, entries) -> list:
    """The weights group of each layer entry, found the way Keras's loader finds it."""
    container, used, groups = model_weights.child("layers"), {}, []
    for entry in entries:
        key = _snake_case(entry["class_name"])
        used[key] = used.get(key, -1) + 1
        node = container.child(key if used[key] == 0 else f"{key}_{used[key]}")
        recorded, name = node.layer_name(), _entry_name(entry)
        if recorded is not None and recorded != name:
            raise KerasImportError(f"the weights file holds layer {recorded!r} at {node.path}, where this layer's "
                                   "weights belong; the config and weights do not come from the same model",
                                   entry["class_name"], name)
        groups.append(node)
    return groups


# --------------------------------------------------------------------- layer records

class _KerasLayer(NamedTuple):
    """A Keras layer as read from the config, with its weights group."""

    class_name: str
    name: str
    config: dict
    weights: _Weights
    input_shape: tuple | None  # from its build_config; None when not recorded

    def error(self, detail) -> KerasImportError:
        return KerasImportError(detail, self.class_name, self.name)


class _Converted(NamedTuple):
    layer: object
    params: object
    state: object = None


def _entry_name(entry) -> str:
    return entry.get("name") or entry.get("config", {}).get("name", "?")


def _keras_layer(entry, weights: _Weights) -> _KerasLayer:
    build = entry.get("build_config") or {}
    shape = build.get("input_shape")
    return _KerasLayer(entry["class_name"], _entry_name(entry), entry.get("config", {}), weights,
                       _shape(shape) if isinstance(shape, list) and all(not isinstance(d, list) for d in shape)
                       else None)


def _shape(shape) -> tuple:
    return tuple(-1 if d is None else int(d) for d in shape)


def _variables(k: _KerasLayer, names, node: _Weights | None = None) -> dict:
    node = node or k.weights
    values = node.variables()
    if len(values) != len(names):
        raise k.error(f"expected {len(names)} weight arrays ({', '.join(names) or 'none'}) at {node.path} "
                      f"in the weights file, found {len(values)}")
    return dict(zip(names, values))


def _ints(value, n) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


def _refuse_unless(k: _KerasLayer, ok: bool, setting: str):
    if not ok:
        raise k.error(f"{setting} has no fnnet equivalent, so this layer cannot be imported")


def _check_common(k: _KerasLayer):
    c = k.config
    _refuse_unless(k, c.get("data_format", "channels_last") == "channels_last",
                   f"data_format={c.get('data_format')!r} (fnnet is channels-last)")
    _refuse_unless(k, not c.get("quantization_config") and not c.get("lora_rank"),
                   "quantization or LoRA")


def _activation(k: _KerasLayer, value, key="activation") -> str:
    if value is None:
        return "linear"
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise k.error(f"{key}={value!r} has no fnnet equivalent; fnnet knows {', '.join(sorted(ACTIVATIONS))}")
    if value in _ACTIVATION_PROBES:
        x, keras_y = _ACTIVATION_PROBES[value]
        if abs(float(ACTIVATIONS[value](jnp.float32(x))) - keras_y) > 1e-6:
            raise k.error(f"{key}={value!r}: fnnet's {value!r} differs from Keras 3's (at {x} Keras gives "
                          f"{keras_y}), so the imported model would compute something else")
    return value


# ------------------------------------------------------------------------ converters

def _dense(k):
    c = k.config
    _check_common(k)
    names = ["kernel", "bias"] if c.get("use_bias", True) else ["kernel"]
    return _Converted(Dense(c["units"], activation=_activation(k, c.get("activation")), use_bias=len(names) == 2),
                      _variables(k, names))


def _conv(k):
    c = k.config
    _check_common(k)
    ndim = 1 if k.class_name == "Conv1D" else 2
    _refuse_unless(k, c.get("padding", "valid") in ("valid", "same"), f"padding={c.get('padding')!r}")
    _refuse_unless(k, set(_ints(c.get("dilation_rate", 1), ndim)) == {1}, f"dilation_rate={c.get('dilation_rate')}")
    _refuse_unless(k, c.get("groups", 1) == 1, f"groups={c.get('groups')}")
    use_bias = c.get("use_bias", True)
    constructor = Conv1D if ndim == 1 else Conv2D
    layer = constructor(c["filters"], _ints(c["kernel_size"], ndim), _ints(c.get("strides", 1), ndim),
                        c.get("padding", "valid"), activation=_activation(k, c.get("activation")), use_bias=use_bias)
    return _Converted(layer, _variables(k, ["kernel", "bias"] if use_bias else ["kernel"]))


_POOLS = {"MaxPooling1D": (MaxPooling1D, 1), "MaxPooling2D": (MaxPooling2D, 2),
          "AveragePooling1D": (AveragePooling1D, 1), "AveragePooling2D": (AveragePooling2D, 2)}
_GLOBAL_POOLS = {"GlobalAveragePooling1D": GlobalAveragePooling1D, "GlobalAveragePooling2D": GlobalAveragePooling2D,
                 "GlobalMaxPooling1D": GlobalMaxPooling1D, "GlobalMaxPooling2D": GlobalMaxPooling2D}


def _pool(k):
    c = k.config
    _check_common(k)
    constructor, ndim = _POOLS[k.class_name]
    strides = c.get("strides")
    return _Converted(constructor(_ints(c["pool_size"], ndim), None if strides is None else _ints(strides, ndim),
                                  c.get("padding", "valid")), {})


def _global_pool(k):
    _check_common(k)
    _refuse_unless(k, not k.config.get("keepdims", False), "keepdims=True")
    return _Converted(_GLOBAL_POOLS[k.class_name](), {})


def _batch_norm(k):
    c = k.config
    _refuse_unless(k, not c.get("renorm", False), "renorm=True")
    axis = c.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if not isinstance(axis, int):
        raise k.error(f"axis={axis!r}: fnnet imports batch normalisation over one feature axis")
    rank = len(k.input_shape) if k.input_shape is not None else None
    if rank is None and axis != -1:
        raise k.error(f"axis={axis} needs the layer's input rank, which the config does not record")
    # fnnet's axis lists the reduced axes; None reduces all but the last, as Keras's axis=-1 does.
    reduced = None if rank is None or axis % rank == rank - 1 else tuple(i for i in range(rank) if i != axis % rank)
    center, scale = c.get("center", True), c.get("scale", True)
    names = (["gamma"] if scale else []) + (["beta"] if center else []) + ["moving_mean", "moving_variance"]
    values = _variables(k, names)
    state = {"mean": values.pop("moving_mean"), "var": values.pop("moving_variance")}
    layer = BatchNorm(reduced, epsilon=c.get("epsilon", 1e-3), center=center, scale=scale,
                      momentum=c.get("momentum", 0.99))
    return _Converted(layer, values, state)


def _layer_norm(k):
    c = k.config
    _refuse_unless(k, not c.get("rms_scaling", False), "rms_scaling=True")
    axis = c.get("axis", -1)
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    axis = axis[0] if isinstance(axis, tuple) and len(axis) == 1 else axis
    center, scale = c.get("center", True), c.get("scale", True)
    names = (["gamma"] if scale else []) + (["beta"] if center else [])
    return _Converted(LayerNorm(axis, epsilon=c.get("epsilon", 1e-3), center=center, scale=scale),
                      _variables(k, names))


def _embedding(k):
    c = k.config
    _check_common(k)
    return _Converted(Embedding(c["input_dim"], c["output_dim"], mask_zero=bool(c.get("mask_zero", False))),
                      _variables(k, ["embeddings"]))


def _recurrent(k, zero_output_for_mask=None):
    c = k.config
    _refuse_unless(k, not c.get("return_state", False), "return_state=True (several outputs)")
    _refuse_unless(k, not c.get("stateful", False), "stateful=True")
    if c.get("dropout") or c.get("recurrent_dropout"):
        warnings.warn(f"Keras layer {k.name!r} ({k.class_name}): dropout={c.get('dropout')}, recurrent_dropout="
                      f"{c.get('recurrent_dropout')} are not imported (fnnet's {k.class_name} has none); predictions "
                      "are the same, but further training runs without them", stacklevel=4)
    if zero_output_for_mask is None:
        zero_output_for_mask = bool(c.get("zero_output_for_mask", False))
    use_bias = c.get("use_bias", True)
    kwargs = {"return_sequences": bool(c.get("return_sequences", False)),
              "go_backwards": bool(c.get("go_backwards", False)),
              "activation": _activation(k, c.get("activation", "tanh")),
              "unroll": True if c.get("unroll") else 1, "use_bias": use_bias,
              "zero_output_for_mask": zero_output_for_mask}
    if k.class_name in ("LSTM", "GRU"):
        kwargs["recurrent_activation"] = _activation(k, c.get("recurrent_activation", "sigmoid"),
                                                     "recurrent_activation")
    if k.class_name == "LSTM":
        kwargs["unit_forget_bias"] = bool(c.get("unit_forget_bias", True))
    if k.class_name == "GRU":
        kwargs["reset_after"] = bool(c.get("reset_after", True))
    constructor = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}[k.class_name]
    names = ["kernel", "recurrent_kernel"] + (["bias"] if use_bias else [])
    return _Converted(constructor(c["units"], **kwargs), _variables(k, names, k.weights.child("cell")))


def _nested(k: _KerasLayer, entry, weights: _Weights) -> _KerasLayer:
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise k.error(f"cannot read the wrapped layer's config {entry!r}")
    return _keras_layer(entry, weights)


def _bidirectional(k):
    c = k.config
    forward = _nested(k, c["layer"], k.weights.child("forward_layer"))
    if "backward_layer" in c and c["backward_layer"] is not None:
        backward = _nested(k, c["backward_layer"], k.weights.child("backward_layer"))
    else:  # Keras builds the backward copy from the forward config, reading the other way
        flipped = {**forward.config, "go_backwards": not forward.config.get("go_backwards", False)}
        backward = forward._replace(config=flipped, weights=k.weights.child("backward_layer"))
    for inner in (forward, backward):
        if inner.class_name not in _RECURRENT_CLASSES:
            raise inner.error(f"inside Bidirectional {k.name!r}: fnnet's Bidirectional wraps "
                              f"{', '.join(_RECURRENT_CLASSES)}")
    # Keras's Bidirectional zeroes masked outputs exactly when it returns sequences.
    zero_masked = bool(forward.config.get("return_sequences", False))
    fwd, bwd = (_recurrent(inner, zero_masked) for inner in (forward, backward))
    ctor, args, kwargs = fwd.layer.spec
    derived = bwd.layer.spec == (ctor, args, {**kwargs, "go_backwards": not kwargs["go_backwards"]})
    merge_mode = c.get("merge_mode", "concat")
    layer = (Bidirectional(fwd.layer, merge_mode) if derived
             else Bidirectional(fwd.layer, merge_mode, backward_layer=bwd.layer))
    return _Converted(layer, {"forward": fwd.params, "backward": bwd.params})


def _time_distributed(k):
    inner = _convert_layer(_nested(k, k.config["layer"], k.weights.child("layer")))
    if inner.state is not None:
        raise k.error("the wrapped layer keeps state (BatchNormalization), which fnnet's TimeDistributed refuses")
    return _Converted(TimeDistributed(inner.layer), inner.params)


def _no_weights(make):
    def convert(k):
        _check_common(k)
        _variables(k, [])
        return _Converted(make(k), {})

    return convert


def _relu_layer(k):
    c = k.config
    _refuse_unless(k, c.get("max_value") is None and not c.get("negative_slope") and not c.get("threshold"),
                   "max_value, negative_slope or threshold")
    return Activation("relu")


def _softmax_layer(k):
    _refuse_unless(k, k.config.get("axis", -1) in (-1, [-1]), f"axis={k.config.get('axis')}")
    return Activation("softmax")


def _dropout(k):
    if k.config.get("noise_shape") is not None:
        warnings.warn(f"Keras layer {k.name!r} (Dropout): noise_shape is not imported; fnnet drops "
                      "elements independently", stacklevel=4)
    return Dropout(k.config["rate"])


_CONVERTERS = {
    "Dense": _dense,
    "Activation": _no_weights(lambda k: Activation(_activation(k, k.config.get("activation")))),
    "ReLU": _no_weights(_relu_layer),
    "Softmax": _no_weights(_softmax_layer),
    "Dropout": _no_weights(_dropout),
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Embedding": _embedding,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "SimpleRNN": _recurrent,
    "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
    "Conv1D": _conv,
    "Conv2D": _conv,
    **{name: _pool for name in _POOLS},
    **{name: _global_pool for name in _GLOBAL_POOLS},
    "Flatten": _no_weights(lambda k: Flatten),
    "Reshape": _no_weights(lambda k: Reshape(tuple(k.config["target_shape"]))),
    "Concatenate": _no_weights(lambda k: FanInConcat(k.config.get("axis", -1))),
    "Add": _no_weights(lambda k: FanInSum),
}

SUPPORTED_LAYERS = tuple(sorted(["InputLayer", *_CONVERTERS, *_MODEL_CLASSES]))


def _convert_layer(k: _KerasLayer) -> _Converted:
    converter = _CONVERTERS.get(k.class_name)
    if converter is None:
        raise k.error(f"layer class {k.class_name} is not supported by fnnet.from_keras; supported: "
                      f"{', '.join(SUPPORTED_LAYERS)}")
    return converter(k)


# ------------------------------------------------------------------ chains and graphs

def _combine(combinator, items) -> _Converted:
    """``combinator(*layers)`` with the params and state dicts that combinators key ``dense_0``, ..."""
    keys = [f"{item.layer.key}_{i}" for i, item in enumerate(items)]
    state = {key: item.state for key, item in zip(keys, items) if item.state is not None}
    return _Converted(combinator(*[item.layer for item in items]),
                      {key: item.params for key, item in zip(keys, items)}, state or None)


def _one_layer(items) -> _Converted:
    if not items:
        return _Converted(Identity, {})
    return items[0] if len(items) == 1 else _combine(serial, items)


def _entry_chain(entry, weights: _Weights) -> list:
    """The converted layers for one config entry: one layer, or a nested model's chain."""
    if entry["class_name"] in _MODEL_CLASSES:
        return _model_chain(entry, weights)[0]
    return [_convert_layer(_keras_layer(entry, weights))]


def _sequential_chain(model_entry, weights: _Weights):
    config = model_entry["config"]
    entries = [e for e in config.get("layers", []) if e["class_name"] != "InputLayer"]
    inputs = [e for e in config.get("layers", []) if e["class_name"] == "InputLayer"]
    if inputs:
        shape = inputs[0]["config"].get("batch_shape") or inputs[0]["config"].get("batch_input_shape")
    else:
        shape = config.get("build_input_shape") or (model_entry.get("build_config") or {}).get("input_shape")
    chain = [item for entry, node in zip(entries, _layer_groups(weights, entries))
             for item in _entry_chain(entry, node)]
    return chain, None if shape is None else _shape(shape)


def _tensor_refs(refs) -> list:
    """``["input_layer", 0, 0]`` or a list of such triples -> a list of triples."""
    return [refs] if refs and isinstance(refs[0], str) else list(refs)


def _keras_tensors(value):
    """Every Keras tensor reference inside a call argument (nested lists and dicts)."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"]]
        return [t for v in value.values() for t in _keras_tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _keras_tensors(v)]
    return []


def _is_operation(entry) -> bool:
    """A ``keras.ops`` call recorded in a functional graph (Keras records mask arithmetic so)."""
    return re.match(r"keras(\.src)?\.ops\b", entry.get("module") or "") is not None


class _Graph(NamedTuple):
    inputs: dict  # layer name -> the names of the layers feeding its data input
    joins: set  # layers called on a list of tensors (Concatenate, Add)
    entries: dict  # layer name -> config entry
    problems: dict  # layer name -> why it cannot be imported (raised if the output depends on it)


def _call_problem(entry, nodes, model_name):
    """Why one layer's call in a functional graph cannot be imported, or None."""
    if _is_operation(entry):
        return f"is a Keras operation ({entry.get('module')}) used in the functional graph, not a layer"
    if len(nodes) > 1:
        return f"is called {len(nodes)} times in model {model_name!r} (a shared layer); fnnet gives every " \
               "layer its own params"
    if not isinstance(nodes[0], dict) or "args" not in nodes[0]:
        return f"model {model_name!r} has a config that is not Keras 3's; re-save the model with Keras 3"
    args, kwargs = nodes[0]["args"], nodes[0].get("kwargs", {})
    # Keras records the masks it propagates as `mask=` tensors; fnnet propagates its own (checked by _mask_after).
    if len(args) != 1 or _keras_tensors({k: v for k, v in kwargs.items() if k != "mask"}):
        return "is called with extra tensors (initial states or several arguments), which fnnet.from_keras " \
               "does not import"
    if any(ref[2] != 0 for ref in _keras_tensors(args[0])):
        return "takes a second output of a layer, which fnnet.from_keras does not import"
    if isinstance(args[0], (list, tuple)) != (entry["class_name"] in _MERGE_CLASSES):
        return "is called on " + ("a list of tensors" if isinstance(args[0], (list, tuple)) else "one tensor") \
               + ", which fnnet.from_keras does not import"
    return None


def _read_graph(config, model_name) -> _Graph:
    graph = _Graph({}, set(), {}, {})
    for entry in config["layers"]:
        name, nodes = entry["name"], entry.get("inbound_nodes", [])
        graph.entries[name] = entry
        if entry["class_name"] == "InputLayer" or not nodes:
            continue
        problem = _call_problem(entry, nodes, model_name)
        if problem:
            graph.problems[name] = KerasImportError(problem, entry["class_name"], name)
            continue
        arg = nodes[0]["args"][0]
        graph.inputs[name] = [ref[0] for ref in _keras_tensors(arg)]
        if isinstance(arg, (list, tuple)):
            graph.joins.add(name)
    return graph


def _topological(graph: _Graph, output: str) -> list:
    """The layers the output depends on, inputs first; raises for the first that cannot be imported."""
    order, done, stack = [], set(), [(output, False)]
    while stack:
        name, expanded = stack.pop()
        if name in done:
            continue
        if expanded:
            done.add(name)
            order.append(name)
            continue
        stack.append((name, True))
        stack.extend((p, False) for p in graph.inputs.get(name, []) if p not in done)
    problem = next((graph.problems[name] for name in order if name in graph.problems), None)
    if problem is not None:
        raise problem
    return order


def _dominators(graph: _Graph, order) -> dict:
    """Each layer's immediate dominator: the nearest layer every path from the input passes."""
    idom, depth = {order[0]: None}, {order[0]: 0}

    def common(a, b):
        while a != b:
            if depth[a] < depth[b]:
                a, b = b, a
            a = idom[a]
        return a

    for name in order[1:]:
        preds = graph.inputs[name]
        dom = preds[0]
        for p in preds[1:]:
            dom = common(dom, p)
        idom[name], depth[name] = dom, depth[dom] + 1
    return idom


def _functional_chain(model_entry, weights: _Weights):
    config = model_entry["config"]
    model_name = config.get("name", "model")
    ins, outs = _tensor_refs(config["input_layers"]), _tensor_refs(config["output_layers"])
    if len(ins) != 1 or len(outs) != 1:
        raise KerasImportError(f"model {model_name!r} has {len(ins)} inputs and {len(outs)} outputs; "
                               "fnnet.from_keras imports models with one input and one output")
    graph = _read_graph(config, model_name)
    (source, _, _), (sink, _, _) = ins[0], outs[0]
    order = _topological(graph, sink)
    if order[0] != source or any(name not in graph.inputs for name in order[1:]):
        stray = next(name for name in order if name not in graph.inputs and name != source)
        raise KerasImportError(f"model {model_name!r}: layer {stray!r} is not computed from the input {source!r}")
    idom = _dominators(graph, order)
    layer_entries = [e for e in config["layers"] if not _is_operation(e)]
    groups = dict(zip([e["name"] for e in layer_entries], _layer_groups(weights, layer_entries)))
    claimed = set()

    def convert(name):
        if name in claimed:
            raise KerasImportError(f"model {model_name!r}: its output feeds branches that join at different "
                                   "layers; fnnet.from_keras imports chains and branches that fork at one tensor "
                                   "and join at one Concatenate or Add", graph.entries[name]["class_name"], name)
        claimed.add(name)
        return _entry_chain(graph.entries[name], groups[name])

    def chain(start, end) -> list:
        reversed_chain = []
        while end != start:
            parts = convert(end)
            if end in graph.joins:
                fork = idom[end]
                branches = [_one_layer(chain(fork, p)) for p in graph.inputs[end]]
                parts = [_Converted(FanOut(len(branches)), {}), _combine(parallel, branches), *parts]
                end_next = fork
            else:
                end_next = graph.inputs[end][0]
            reversed_chain.extend(reversed(parts))
            end = end_next
        return reversed_chain[::-1]

    input_config = graph.entries[source]["config"]
    shape = input_config.get("batch_shape") or input_config.get("batch_input_shape")
    return chain(source, sink), None if shape is None else _shape(shape)


def _model_chain(model_entry, weights: _Weights):
    """``(converted layers in order, input shape or None)`` for a Sequential or functional model."""
    cls = model_entry.get("class_name")
    if cls == "Sequential":
        return _sequential_chain(model_entry, weights)
    if cls in _MODEL_CLASSES:
        return _functional_chain(model_entry, weights)
    raise KerasImportError(f"cannot import a {cls}: only Sequential and functional models have a config that "
                           "describes their computation (a subclassed model does not)")


# ---------------------------------------------------------------------------- masks

class _MaskFlow(NamedTuple):
    """Whether a padding mask reaches a tensor in Keras and in the imported fnnet model."""

    keras: bool
    fnnet: bool
    dropped_by: str | None = None  # the layer where Keras dropped a mask that fnnet still carries


_NO_MASK = _MaskFlow(False, False)
# Keras layers that pass a mask on unchanged; the others Keras gives no mask support
# (it drops the mask there), while fnnet's layers pass masks on unless they consume them.
_MASK_KEEPERS = {"Dense", "Activation", "ReLU", "Softmax", "Dropout", "BatchNormalization", "LayerNormalization",
                 "TimeDistributed", *_MERGE_CLASSES}
_MASK_USERS = {*_RECURRENT_CLASSES, "Bidirectional", "GlobalAveragePooling1D"}


def _mask_after(entry, flows) -> _MaskFlow:
    cls, name, config = entry["class_name"], _entry_name(entry), entry.get("config", {})
    flow = _MaskFlow(any(f.keras for f in flows), any(f.fnnet for f in flows),
                     next((f.dropped_by for f in flows if f.dropped_by), None))
    if cls in _MODEL_CLASSES:
        return _model_mask(entry, flow)
    if cls == "Embedding":
        return _MaskFlow(True, True) if config.get("mask_zero") else flow
    if cls in _MASK_USERS:
        if flow.fnnet and not flow.keras:
            raise KerasImportError(f"Keras drops the padding mask at layer {flow.dropped_by}, which has no mask "
                                   "support, but fnnet carries masks through it, so this layer would skip padded "
                                   "steps that Keras does not skip", cls, name)
        inner = config.get("layer", {}).get("config", {}) if cls == "Bidirectional" else config
        return flow if cls != "GlobalAveragePooling1D" and inner.get("return_sequences") else _NO_MASK
    if cls in _MASK_KEEPERS:
        return flow
    if cls in _GLOBAL_POOLS:
        return _NO_MASK
    return _MaskFlow(False, flow.fnnet, f"{name!r} ({cls})" if flow.keras else flow.dropped_by)


def _model_mask(model_entry, flow: _MaskFlow) -> _MaskFlow:
    """The mask flow out of a model: checks that every layer using masks sees what Keras gives it."""
    config = model_entry["config"]
    if model_entry["class_name"] == "Sequential":
        for entry in config.get("layers", []):
            if entry["class_name"] != "InputLayer":
                flow = _mask_after(entry, [flow])
        return flow
    graph = _read_graph(config, config.get("name", "model"))
    (source, _, _), (sink, _, _) = _tensor_refs(config["input_layers"])[0], _tensor_refs(config["output_layers"])[0]
    flows = {source: flow}
    for name in _topological(graph, sink)[1:]:
        flows[name] = _mask_after(graph.entries[name], [flows[p] for p in graph.inputs[name]])
    return flows[sink]


# ------------------------------------------------------------------------ entry point

def _convert(model_entry, weights: _Weights):
    chain, input_shape = _model_chain(model_entry, weights)
    _model_mask(model_entry, _NO_MASK)
    if input_shape is None:
        raise KerasImportError("the model records no input shape; build it first (give it a keras.Input, or "
                               "call it on data) and save it again")
    converted = _combine(serial, chain)
    params, state = jax.tree_util.tree_map(jnp.asarray, (converted.params, converted.state))
    _, want_params, want_state = eval_init(converted.layer, input_shape)
    for what, want, have in (("params", want_params, params), ("state", want_state, state)):
        missing, extra, shapes, dtypes = tree_differences(want, have)
        if missing or extra or shapes or dtypes:
            raise KerasImportError(f"the imported {what} do not fit the fnnet model (missing {missing}, extra "
                                   f"{extra}, shape (Keras vs fnnet) {shapes}, dtype {dtypes}); please report this")
    model = converted.layer
    model.input_shape = input_shape
    return model, params, state


def _from_file(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise KerasImportError(f"{path} is not a .keras (zip) file; legacy .h5 files and SavedModel folders "
                               "are not read: load the model in Keras and save it with model.save('name.keras')")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE) if n not in names]
        if missing:
            raise KerasImportError(f"{path} has no {' and no '.join(missing)} (it holds {', '.join(sorted(names))}); "
                                   "it is not a Keras 3 model file with HDF5 weights")
        config = json.loads(archive.read(CONFIG_FILE))
        weights = archive.read(WEIGHTS_FILE)
    h5py = _import_h5py()
    with h5py.File(io.BytesIO(weights), "r") as store:
        return _convert(config, _Weights(store, f"{path.name}:{WEIGHTS_FILE}"))


def _plain(value):
    """JSON stand-ins for the NumPy values a live model's config may hold."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"cannot read a {type(value).__name__} in the Keras config: {value!r}")


def _from_object(model):
    try:
        import keras
    except ImportError as e:
        raise TypeError(f"from_keras takes a Keras model or a path to a .keras file, got "
                        f"{type(model).__name__} (and Keras is not installed)") from e
    if not isinstance(model, keras.Model):
        raise TypeError(f"from_keras takes a Keras model or a path to a .keras file, got {type(model).__name__}")
    if not model.built:
        raise KerasImportError(f"Keras model {model.name!r} is not built yet; give it a keras.Input or call it "
                               "on data first")
    # Through JSON, so the config is exactly what a .keras file holds (lists, not tuples).
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model), default=_plain))
    h5py = _import_h5py()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.weights.h5")
        model.save_weights(path)
        with h5py.File(path, "r") as store:
            return _convert(config, _Weights(store, f"weights of {model.name!r}"))


def from_keras(model_or_path):
    """Import a Keras 3 model: ``(model, params, state)`` computing what the Keras model computes.

    ``model_or_path`` is a Keras ``Sequential`` or functional ``Model`` (built), or the
    path to a ``.keras`` file saved by Keras 3. The file is read with ``h5py`` only, so
    Keras need not be installed for it (``pip install 'fnnet[keras]'`` brings h5py).

    The params are fnnet's dicts (``params['dense_0']['kernel']``); BatchNormalization's
    moving statistics are the ``state`` (None without BatchNormalization). Run the model
    as Keras's ``predict`` does with ``model.apply(params, x, state=state)`` (returns
    ``(y, state)``); the input shape Keras recorded, ``-1`` for unknown sizes, is
    ``model.input_shape``, as :func:`fnnet.save_model` wants it.

    A functional model must have one input and one output; branches that fork at one
    tensor and join at a ``Concatenate`` or ``Add`` become ``FanOut``/``parallel``/
    ``FanInConcat``/``FanInSum``. Layers fnnet has no equivalent for, and settings of
    supported layers that would change what they compute, raise
    :class:`KerasImportError` naming the layer's class and its name in the Keras model.

    >>> import os; _ = os.environ.setdefault('KERAS_BACKEND', 'jax')
    >>> import pytest; keras = pytest.importorskip('keras')
    >>> import fnnet, numpy as np
    >>> km = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation='relu'),
    ...                        keras.layers.Dense(1)])
    >>> model, params, state = fnnet.from_keras(km)
    >>> sorted(params), model.input_shape, state
    (['dense_0', 'dense_1'], (-1, 3), None)
    >>> x = np.random.default_rng(0).normal(size=(5, 3)).astype('float32')
    >>> bool(np.allclose(model.apply(params, x), km(x), atol=1e-5))
    True
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        return _from_file(Path(os.fspath(model_or_path)))
    return _from_object(model_or_path)

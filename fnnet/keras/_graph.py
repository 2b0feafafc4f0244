"""Keras models as fnnet combinators: Sequential chains, functional graphs, and masks.

A chain of layers is ``serial``. In a functional model, tensors that fork and join again
at a ``Concatenate``/``Add`` become ``FanOut``, ``parallel`` and ``FanInConcat``/
``FanInSum``; the fork for a join is the join's immediate dominator in the layer graph
(the nearest layer that every path from the input to the join goes through).

Masks: Keras and fnnet both carry Embedding(mask_zero=True)'s padding mask to later
layers, but Keras drops it at layers without mask support, where fnnet passes it on; the
mask flow check refuses a model where a layer would use a mask that differs.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..combinators import FanOut, Identity, parallel, serial
from ..core import is_empty
from ._layers import GLOBAL_POOLS, convert_layer, fnnet_name
from ._reading import (MERGE_CLASSES, MODEL_CLASSES, RECURRENT_CLASSES, Converted, KerasImportError, WeightsGroup,
                       entry_name, keras_layer, layer_groups, shape_tuple)


def combine(combinator, items, name: str | None = None) -> Converted:
    """``combinator(*layers)`` with its params and state dicts, keyed as the combinator keys them.

    The layers carry Keras's names (``dense``, ``dense_1``), so the keys are those names;
    layers without params (or state) get no entry, as in the combinator's own ``init``.
    """
    layers = [item.layer for item in items]
    built = combinator(*layers) if name is None else combinator(*layers, name=name)
    keys = [key for key, _ in built.children]
    params = {key: item.params for key, item in zip(keys, items) if not is_empty(item.params)}
    state = {key: item.state for key, item in zip(keys, items) if not is_empty(item.state)}
    return Converted(built, params, state or None)


def _one_layer(items) -> Converted:
    if not items:
        return Converted(Identity, {})
    return items[0] if len(items) == 1 else combine(serial, items)


def _entry_chain(entry, weights: WeightsGroup) -> list:
    """The converted layers for one config entry: one layer, or a nested model's chain."""
    if entry["class_name"] in MODEL_CLASSES:
        # A nested model keeps its own namespace, as in Keras: serial(..., name='head').
        return [combine(serial, model_chain(entry, weights)[0], name=fnnet_name(entry_name(entry)))]
    return [convert_layer(keras_layer(entry, weights))]


def _sequential_chain(model_entry, weights: WeightsGroup):
    config = model_entry["config"]
    entries = [e for e in config.get("layers", []) if e["class_name"] != "InputLayer"]
    inputs = [e for e in config.get("layers", []) if e["class_name"] == "InputLayer"]
    if inputs:
        shape = inputs[0]["config"].get("batch_shape") or inputs[0]["config"].get("batch_input_shape")
    else:
        shape = config.get("build_input_shape") or (model_entry.get("build_config") or {}).get("input_shape")
    chain = [item for entry, node in zip(entries, layer_groups(weights, entries))
             for item in _entry_chain(entry, node)]
    return chain, None if shape is None else shape_tuple(shape)


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
    if isinstance(args[0], (list, tuple)) != (entry["class_name"] in MERGE_CLASSES):
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


def _functional_chain(model_entry, weights: WeightsGroup):
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
    groups = dict(zip([e["name"] for e in layer_entries], layer_groups(weights, layer_entries)))
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
                parts = [Converted(FanOut(len(branches)), {}), combine(parallel, branches), *parts]
                end_next = fork
            else:
                end_next = graph.inputs[end][0]
            reversed_chain.extend(reversed(parts))
            end = end_next
        return reversed_chain[::-1]

    input_config = graph.entries[source]["config"]
    shape = input_config.get("batch_shape") or input_config.get("batch_input_shape")
    return chain(source, sink), None if shape is None else shape_tuple(shape)


def model_chain(model_entry, weights: WeightsGroup):
    """``(converted layers in order, input shape or None)`` for a Sequential or functional model."""
    cls = model_entry.get("class_name")
    if cls == "Sequential":
        return _sequential_chain(model_entry, weights)
    if cls in MODEL_CLASSES:
        return _functional_chain(model_entry, weights)
    raise KerasImportError(f"cannot import a {cls}: only Sequential and functional models have a config that "
                           "describes their computation (a subclassed model does not)")


# ---------------------------------------------------------------------------- masks

class _MaskFlow(NamedTuple):
    """Whether a padding mask reaches a tensor in Keras and in the imported fnnet model."""

    keras: bool
    fnnet: bool
    differs_at: str | None = None  # where the two masks stopped agreeing, and why


NO_MASK = _MaskFlow(False, False)
# Keras layers that pass a mask on unchanged; the others Keras gives no mask support
# (it drops the mask there), while fnnet's layers pass masks on unless they consume them.
_MASK_KEEPERS = {"Dense", "Activation", "ReLU", "Softmax", "Dropout", "BatchNormalization", "LayerNormalization",
                 "TimeDistributed", *MERGE_CLASSES}
_MASK_USERS = {*RECURRENT_CLASSES, "Bidirectional", "GlobalAveragePooling1D"}


def _mask_after(entry, flows) -> _MaskFlow:
    """The mask flow out of one layer; raises where a layer would use a mask that differs from Keras's."""
    cls, name, config = entry["class_name"], entry_name(entry), entry.get("config", {})
    flow = _MaskFlow(any(f.keras for f in flows), any(f.fnnet for f in flows),
                     next((f.differs_at for f in flows if f.differs_at), None))
    here = f"{name!r} ({cls})"
    if cls in MODEL_CLASSES:
        return model_mask(entry, flow)
    if cls == "Embedding":
        return _MaskFlow(True, True) if config.get("mask_zero") else flow
    if cls in _MASK_USERS:
        if flow.fnnet and flow.differs_at:
            raise KerasImportError(f"uses the padding mask, which differs between Keras and fnnet from layer "
                                   f"{flow.differs_at} on", cls, name)
        inner = config.get("layer", {}).get("config", {}) if cls == "Bidirectional" else config
        if cls in RECURRENT_CLASSES and flow.keras and inner.get("zero_output_for_mask") \
                and not inner.get("return_sequences"):
            raise KerasImportError("zero_output_for_mask=True makes Keras output zeros for sequences that end "
                                   "in padding, where fnnet outputs the state after the last real step", cls, name)
        if cls == "GlobalAveragePooling1D" or not inner.get("return_sequences"):
            return NO_MASK
        if cls != "Bidirectional" and inner.get("go_backwards") and flow.keras:
            return flow._replace(differs_at=f"{here}: it returns its outputs in reversed time order, which fnnet's "
                                            "mask follows and Keras's does not")
        return flow
    if cls in _MASK_KEEPERS:
        return flow
    if cls in GLOBAL_POOLS:
        return NO_MASK
    if flow.keras:
        return _MaskFlow(False, flow.fnnet, f"{here}: it has no mask support in Keras, which drops the mask "
                                            "there, while fnnet passes it on")
    return flow


def model_mask(model_entry, flow: _MaskFlow) -> _MaskFlow:
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

"""Functional graphs: ``Input`` tensors, layers called on them, and ``Model``/``Sequential``.

``fnnet.Input(shape)`` gives a symbolic tensor; calling any layer on symbolic tensors
(``fnnet.Dense(64)(x)``) records a call and gives back the call's symbolic outputs;
``fnnet.Model(inputs, outputs)`` turns the calls between them into one layer of the core
protocol, written with its layers' public ``init_with_state``/``call`` only.

Rules, as Keras's functional API has them:

- a layer object called several times is one layer with one set of params (sharing is
  by identity, ``is``); ``serial`` keeps stax's rule instead (params per position);
- the model's children are its distinct layers, keyed with :func:`fnnet.child_keys` in the
  order they were first called, so params are ``{key: layer params}`` and a shared layer
  appears (and is initialised) once;
- ``apply`` takes the inputs as one array (one ``Input``), a list in ``inputs``' order or a
  dict by the ``Input`` names, and returns the outputs in the structure given to ``Model``;
- a call with one positional argument passes it to the layer as is (a tensor, or a list
  for ``Concatenate()([a, b])``); several positional arguments arrive as a tuple; tensors
  given as keywords (``mha(q, v, attention_mask=m)``) arrive as those keywords of ``call``.
"""

from __future__ import annotations

import itertools
import numbers

import jax
import jax.numpy as jnp

from .core import LAYER_REGISTRY, Layer, as_layer, child_keys, error_path, is_empty, layer as leaf_layer
from .core import output_shape, shape_str, split_rng

# Creation order of calls: a call only consumes tensors made before it, so sorting the
# calls a model needs by this number is a topological order.
_ORDER = itertools.count()


def _is_shape(shape) -> bool:
    return isinstance(shape, tuple) and all(isinstance(d, int) for d in shape)


def _known(shape):
    """A shape with Keras's ``None`` as ``-1``, or nested shapes the same way."""
    if isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, numbers.Integral) for d in shape):
        return tuple(-1 if d is None else int(d) for d in shape)
    if isinstance(shape, dict):
        return {k: _known(v) for k, v in shape.items()}
    return tuple(_known(s) for s in shape)


class SymbolicTensor:
    """An edge of a graph being built: the shape (batch axis ``-1`` first) and dtype of a value.

    Made by :func:`Input` and by calling a layer on symbolic tensors; it holds no data.

    >>> import fnnet
    >>> x = fnnet.Input((3,), name='features')
    >>> y = fnnet.Dense(4)(x)
    >>> x.shape, y.shape, y.layer.name
    ((-1, 3), (-1, 4), 'dense')
    """

    __slots__ = ("shape", "dtype", "source", "index", "_order")

    def __init__(self, shape, dtype, source, index):
        self.shape, self.dtype, self.source, self.index = shape, dtype, source, index
        self._order = next(_ORDER)

    @property
    def layer(self):
        """The layer that made this tensor (None for an ``Input``)."""
        return self.source.layer if isinstance(self.source, _Call) else None

    @property
    def name(self) -> str:
        """The ``Input``'s name, or the making layer's name and output position (``dense:0``)."""
        if isinstance(self.source, _Source):
            return self.source.key_layer.name
        return f"{self.source.layer.name}:{self.index[0] if self.index else 0}"

    def __repr__(self):
        return f"<fnnet.SymbolicTensor {self.name} shape={shape_str(self.shape)} dtype={self.dtype}>"

    def __bool__(self):
        raise TypeError("a symbolic tensor has no value: fnnet graphs have no eager mode; build a "
                        "fnnet.Model(inputs, outputs) and run it with apply(params, inputs)")

    # The hook fnnet.Layer.__call__ looks for: a layer called on these tensors records a node.
    @staticmethod
    def __fnnet_symbolic_call__(layer, *args, **kwargs):
        return call_layer_symbolically(layer, *args, **kwargs)


class _Source:
    """An ``Input`` of a graph."""

    def __init__(self, shape, dtype, name):
        self.shape, self.dtype, self.name = shape, dtype, name
        # Each Input is a layer too (without params), so its key is unique among the model's layers.
        self.key_layer = leaf_layer("InputLayer", lambda params, x: x)
        if name is not None:
            self.key_layer = self.key_layer.with_name(name)


class _Call:
    """One call of a layer in a graph: its arguments (with symbolic tensors) and outputs."""

    def __init__(self, layer, args, kwargs):
        self.layer, self.args, self.kwargs = layer, args, kwargs
        self.outputs = None
        self.order = next(_ORDER)


def Input(shape, dtype="float32", name=None) -> SymbolicTensor:
    """A symbolic input of a graph: ``shape`` without the batch axis, as in Keras.

    ``None`` in ``shape`` is an unknown size (a sequence length); ``dtype`` is what the
    model's inputs will be (``'int32'`` for token ids); ``name`` keys the input when a
    model is run on a dict of inputs.

    >>> import fnnet
    >>> ids = fnnet.Input((20,), dtype='int32', name='ids')
    >>> ids.shape, ids.dtype, ids.name
    ((-1, 20), 'int32', 'ids')
    """
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(d is None or isinstance(d, numbers.Integral) for d in shape):
        raise TypeError(f"Input(shape=...) takes a tuple of sizes without the batch axis, e.g. (78,), got {shape!r}")
    full = (-1,) + _known(tuple(shape))
    dtype = jnp.dtype(dtype).name
    source = _Source(full, dtype, name)
    return SymbolicTensor(full, dtype, source, ())


# ------------------------------------------------------------------ recording calls

def _tensors(tree) -> list:
    return [leaf for leaf in jax.tree_util.tree_leaves(tree) if isinstance(leaf, SymbolicTensor)]


def _swap(tree, value_of):
    """``tree`` with each symbolic tensor replaced by ``value_of(tensor)``; lists stay lists."""
    return jax.tree_util.tree_map(lambda leaf: value_of(leaf) if isinstance(leaf, SymbolicTensor) else leaf, tree)


def _layer_inputs(args):
    """What a call hands the layer: its one positional argument as is, several as a tuple."""
    return args[0] if len(args) == 1 else tuple(args)


def _mask_structure(inputs, mask_of):
    """The mask a layer receives: one tensor's mask, or the tuple of the tensors' (None if none)."""
    if isinstance(inputs, SymbolicTensor):
        return mask_of(inputs)
    masks = tuple(mask_of(t) if isinstance(t, SymbolicTensor) else None for t in inputs) \
        if isinstance(inputs, (tuple, list)) else None
    return None if masks is None or all(m is None for m in masks) else masks


def _outputs_like(call, out_shape, dtypes, path=()):
    """Symbolic outputs in the structure of ``out_shape`` (one shape or nested shapes)."""
    if _is_shape(out_shape):
        dtype = dtypes if isinstance(dtypes, str) else "float32"
        return SymbolicTensor(out_shape, dtype, call, path)
    matching = isinstance(dtypes, (tuple, list)) and len(dtypes) == len(out_shape)
    subtypes = dtypes if matching else [None] * len(out_shape)
    return tuple(_outputs_like(call, s, d, path + (i,)) for i, (s, d) in enumerate(zip(out_shape, subtypes)))


def _describe_inputs(tensors) -> str:
    return ", ".join(t.name for t in tensors) or "no tensors"


def call_layer_symbolically(layer, *args, **kwargs):
    """Record ``layer`` called on symbolic tensors; return its symbolic outputs.

    This is what ``layer(x)`` does when ``x`` comes from :func:`Input`: the shapes are
    checked at once (the layer's ``init`` runs under ``jax.eval_shape``, so nothing is
    allocated), and a layer that cannot take them fails here, naming the call.

    >>> import fnnet
    >>> a, b = fnnet.Input((3,)), fnnet.Input((4,))
    >>> fnnet.call_layer_symbolically(fnnet.Concatenate(), [a, b]).shape
    (-1, 7)
    """
    layer = as_layer(layer)
    for key in ("train", "rng", "mask"):
        if key in kwargs and not isinstance(kwargs[key], SymbolicTensor):
            raise TypeError(f"{layer.description}: {key}= is given when the model runs "
                            f"(model.apply(params, inputs, {key}=...)), not when it is built")
    if not args:
        raise TypeError(f"{layer.description} was called with keyword tensors only; pass its inputs positionally")
    call = _Call(layer, args, kwargs)
    inputs = _layer_inputs(args)
    in_shape = _swap(inputs, lambda t: t.shape)
    in_dtypes = _swap(inputs, lambda t: t.dtype)
    with error_path(f"{layer.name} called on {_describe_inputs(_tensors(args))}"):
        out_shape = _abstract_init(layer, _tuple_shapes(in_shape))
    # Outputs are float unless the layer passes its input on unchanged in shape (ids through Identity).
    call.outputs = _outputs_like(call, out_shape, in_dtypes if out_shape == in_shape else "float32")
    return call.outputs


def _tuple_shapes(shapes):
    """Several shapes as a tuple of shapes (the core's form for layers taking several inputs)."""
    if _is_shape(shapes):
        return shapes
    return tuple(_tuple_shapes(s) for s in shapes)


def _abstract_init(layer, input_shape):
    """The output shape ``layer``'s init declares, under ``jax.eval_shape`` (nothing allocated)."""
    out = {}

    def init(rng):
        shape, params, state = layer.init_with_state(rng, input_shape)
        out["shape"] = shape
        return params, state

    jax.eval_shape(init, jax.random.PRNGKey(0))
    return out["shape"]


# ------------------------------------------------------------------ the model

def _structure(value, what):
    """``(kind, tensors)`` of a tensor, a list/tuple of tensors or a dict of tensors."""
    if isinstance(value, SymbolicTensor):
        return "one", [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(t, SymbolicTensor) for t in value):
        return ("tuple" if isinstance(value, tuple) else "list"), list(value)
    if isinstance(value, dict) and value and all(isinstance(t, SymbolicTensor) for t in value.values()):
        return "dict", list(value.values())
    raise TypeError(f"Model({what}=...) takes a symbolic tensor, a list or a dict of them (from fnnet.Input "
                    f"and layers called on it), got {type(value).__name__}: {value!r}")


def _needed_calls(outputs, inputs, model_name):
    """The calls between ``inputs`` and ``outputs``, in creation (topological) order."""
    input_sources = {id(t.source) for t in inputs}
    calls, seen, todo = [], set(), list(outputs)
    while todo:
        tensor = todo.pop()
        source = tensor.source
        if isinstance(source, _Source):
            if id(source) not in input_sources:
                raise ValueError(f"Model {model_name!r}: output depends on the Input {tensor.name!r} "
                                 f"(shape {shape_str(tensor.shape)}), which is not among inputs")
            continue
        if id(source) in seen:
            continue
        seen.add(id(source))
        calls.append(source)
        todo.extend(_tensors((source.args, source.kwargs)))
    return sorted(calls, key=lambda c: c.order)


class Model(Layer):
    """A functional graph from ``inputs`` to ``outputs`` as one layer (Keras's ``Model``).

    ``inputs``/``outputs``: a symbolic tensor, a list or a dict of them. The model is a
    :class:`fnnet.Layer`: it works in ``serial``, ``fit``, ``Ensemble``, ``save_model``,
    ``plot_model``, ``to_spec``/``from_spec`` and ``check_layer``. Params are keyed by its
    distinct layers' keys (``layers``, in first-call order); a layer called twice shares
    its params. ``input_shape`` is the shape ``init`` takes (one shape, or a tuple of
    shapes in ``inputs``' order); ``output_names`` name the outputs as Keras does (the
    producing layer's key, or the dict's keys), which ``fit`` uses for per-output losses.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> x = fnnet.Input((3,), name='x')
    >>> shared = fnnet.Dense(4)
    >>> a, b = shared(x), shared(fnnet.Relu(x))
    >>> model = fnnet.Model(x, fnnet.Add()([a, b]), name='tied')
    >>> shape, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    >>> shape, sorted(params), model.apply(params, jnp.ones((2, 3))).shape
    ((-1, 4), ['dense'], (2, 4))
    """

    __slots__ = ("inputs", "outputs", "layers", "input_names", "output_names", "input_shape", "_graph")

    def __init__(self, inputs, outputs, name=None):
        label = name or "model"
        in_kind, in_tensors = _structure(inputs, "inputs")
        out_kind, out_tensors = _structure(outputs, "outputs")
        for t in in_tensors:
            if not isinstance(t.source, _Source):
                raise TypeError(f"Model {label!r}: inputs must come from fnnet.Input, got {t!r}")
        if len({id(t) for t in in_tensors}) != len(in_tensors):
            raise ValueError(f"Model {label!r}: an Input appears twice among inputs")
        calls = _needed_calls(out_tensors, in_tensors, label)
        layers = []
        for c in calls:
            if not any(c.layer is l for l in layers):
                layers.append(c.layer)
        keys = child_keys([t.source.key_layer for t in in_tensors] + layers, f"Model {label!r}")
        input_names, layer_keys = keys[:len(in_tensors)], keys[len(in_tensors):]
        key_of = {id(l): k for l, k in zip(layers, layer_keys)}
        labels = _call_labels(calls, key_of, dict(zip((id(t) for t in in_tensors), input_names)))
        if out_kind == "dict":
            output_names = list(outputs)
        else:
            output_names = _unique([key_of[id(t.source.layer)] if isinstance(t.source, _Call)
                                    else labels[id(t)] for t in out_tensors])
        input_shape = in_tensors[0].shape if in_kind == "one" else tuple(t.shape for t in in_tensors)
        graph = _Graph(label, in_kind, in_tensors, input_names, out_kind, out_tensors, output_names, calls,
                       layers, key_of, labels)
        graph.given_name = name
        super().__init__(graph.init_with_state, graph.call, name="Model", children=tuple(zip(layer_keys, layers)),
                         key=name)
        setter = object.__setattr__
        for field, value in (("inputs", inputs), ("outputs", outputs), ("layers", list(layers)),
                             ("input_names", input_names), ("output_names", output_names),
                             ("input_shape", input_shape), ("_graph", graph)):
            setter(self, field, value)

    def with_name(self, name: str) -> "Model":
        """The same graph (the same layer objects, so the same params) under the key ``name``.

        >>> import fnnet
        >>> x = fnnet.Input((2,))
        >>> fnnet.Model(x, fnnet.Dense(1)(x)).with_name('head').name
        'head'
        """
        return Model(self.inputs, self.outputs, name=name)

    def node_rows(self):
        """One ``(label, layer key, input labels)`` per call, in run order: the graph's edges.

        Labels name tensors as errors and summaries do: an ``Input`` by its name, a call's
        output by its layer's key (``dense``), with the call's number for a layer called
        again (``dense[1]``) and the output's position for a layer with several
        (``lstm:1``).

        >>> import fnnet
        >>> x = fnnet.Input((2,), name='x')
        >>> d = fnnet.Dense(2)
        >>> fnnet.Model(x, d(d(x))).node_rows()
        [('dense', 'dense', ['x']), ('dense[1]', 'dense', ['dense'])]
        """
        return self._graph.node_rows()

    def graph_config(self, encode_layer) -> dict:
        """The graph as JSON values; ``encode_layer(key, layer)`` writes each layer (for ``to_spec``).

        >>> import fnnet
        >>> x = fnnet.Input((2,), name='x')
        >>> config = fnnet.Model(x, fnnet.Dense(1)(x)).graph_config(lambda key, layer: layer.description)
        >>> config['layers'], config['calls']
        ({'dense': 'Dense(1)'}, [{'layer': 'dense', 'args': [['input', 'x']], 'kwargs': {}}])
        """
        return self._graph.config(encode_layer, self._graph.given_name)

    @classmethod
    def from_graph_config(cls, config, decode_layer) -> "Model":
        """The model :meth:`graph_config` wrote; ``decode_layer(key, value)`` builds each layer.

        >>> import fnnet
        >>> x = fnnet.Input((2,), name='x')
        >>> model = fnnet.Model(x, fnnet.Dense(1)(x), name='m')
        >>> config = model.graph_config(lambda key, layer: fnnet.to_spec(layer))
        >>> fnnet.Model.from_graph_config(config, lambda key, spec: fnnet.from_spec(spec)).name
        'm'
        """
        return _model_from_config(config, decode_layer)


def _unique(names):
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        out.append(n if k == 0 else f"{n}_{k}")
        seen[n] = k + 1
    return out


def _call_labels(calls, key_of, input_names):
    """Labels for every tensor: input names, ``key``/``key[n]`` per call, ``:i`` per output."""
    labels, counts = dict(input_names), {}
    for c in calls:
        key = key_of[id(c.layer)]
        n = counts.get(key, 0)
        counts[key] = n + 1
        base = key if n == 0 else f"{key}[{n}]"
        outs = _tensors(c.outputs)
        for t in outs:
            labels[id(t)] = base if len(outs) == 1 else f"{base}:{t.index[-1] if t.index else 0}"
        labels[id(c)] = base
    return labels


class _Graph:
    """The runnable graph behind a Model: init and call over its calls, in order."""

    def __init__(self, label, in_kind, in_tensors, input_names, out_kind, out_tensors, output_names, calls,
                 layers, key_of, labels):
        self.label, self.in_kind, self.in_tensors, self.input_names = label, in_kind, in_tensors, input_names
        self.out_kind, self.out_tensors, self.output_names = out_kind, out_tensors, output_names
        self.calls, self.layers, self.key_of, self.labels = calls, layers, key_of, labels

    def where(self, call):
        inputs = ", ".join(self.labels[id(t)] for t in _tensors((call.args, call.kwargs)))
        return f"{self.labels[id(call)]} called on {inputs}"

    def node_rows(self):
        return [(self.labels[id(c)], self.key_of[id(c.layer)],
                 [self.labels[id(t)] for t in _tensors((c.args, c.kwargs))]) for c in self.calls]

    # ---------------------------------------------------------------- inputs
    def given_shapes(self, input_shape):
        """The init shape per Input, checked against the Inputs' shapes."""
        n = len(self.in_tensors)
        if isinstance(input_shape, dict):
            missing = [k for k in self.input_names if k not in input_shape]
            extra = [k for k in input_shape if k not in self.input_names]
            if missing or extra:
                raise ValueError(f"input shapes by name need exactly {self.input_names}; missing {missing}, "
                                 f"unknown {extra}")
            shapes = [_known(tuple(input_shape[k])) for k in self.input_names]
        elif self.in_kind == "one":
            shapes = [_known(tuple(input_shape))]
        else:
            if not (isinstance(input_shape, (tuple, list)) and len(input_shape) == n
                    and all(isinstance(s, (tuple, list)) for s in input_shape)):
                raise ValueError(f"expected {n} input shapes (for {', '.join(self.input_names)}), got "
                                 f"{shape_str(input_shape) if isinstance(input_shape, (tuple, list)) else input_shape!r}")
            shapes = [_known(tuple(s)) for s in input_shape]
        checked = []
        for name, tensor, shape in zip(self.input_names, self.in_tensors, shapes):
            expected = tensor.shape
            if len(shape) != len(expected) or any(a != b and -1 not in (a, b) for a, b in zip(shape, expected)):
                raise ValueError(f"input {name!r} was declared with shape {shape_str(expected)}, "
                                 f"but init got {shape_str(shape)}")
            checked.append(tuple(b if a == -1 else a for a, b in zip(shape, expected)))
        return checked

    def given_values(self, inputs):
        n = len(self.in_tensors)
        if isinstance(inputs, dict):
            missing = [k for k in self.input_names if k not in inputs]
            extra = [k for k in inputs if k not in self.input_names]
            if missing or extra:
                raise ValueError(f"inputs by name need exactly {self.input_names}; missing {missing}, unknown {extra}")
            values = [inputs[k] for k in self.input_names]
        elif self.in_kind == "one":
            values = [inputs]
        elif not isinstance(inputs, (tuple, list)) or len(inputs) != n:
            got = f"{len(inputs)} inputs" if isinstance(inputs, (tuple, list)) else "one array"
            raise ValueError(f"expected {n} inputs (a list in the order {self.input_names} or a dict by those "
                             f"names), got {got}")
        else:
            values = list(inputs)
        for name, tensor, value in zip(self.input_names, self.in_tensors, values):
            shape = tuple(jnp.shape(value))
            if len(shape) != len(tensor.shape) or any(d != e for d, e in zip(shape[1:], tensor.shape[1:]) if e != -1):
                raise ValueError(f"input {name!r} was declared with shape {shape_str(tensor.shape)}, got {shape}")
        return values

    def shaped_outputs(self, values):
        if self.out_kind == "one":
            return values[0]
        if self.out_kind == "dict":
            return dict(zip(self.output_names, values))
        return tuple(values) if self.out_kind == "tuple" else list(values)

    # ---------------------------------------------------------------- init / call
    def init_with_state(self, rng, input_shape):
        shapes = {id(t): s for t, s in zip(self.in_tensors, self.given_shapes(input_shape))}
        dtypes = {id(t): t.dtype for t in self.in_tensors}
        params, state, initialised = {}, {}, set()
        for call, r in zip(self.calls, split_rng(rng, len(self.calls))):
            key = self.key_of[id(call.layer)]
            in_shape = _tuple_shapes(_swap(_layer_inputs(call.args), lambda t: shapes[id(t)]))
            with error_path(f"Model[{self.label!r}]", self.where(call)):
                if key not in initialised:
                    out_shape, p, s = call.layer.init_with_state(r, in_shape)
                    initialised.add(key)
                    if not is_empty(p):
                        params[key] = p
                    if not is_empty(s):
                        state[key] = s
                else:  # a shared layer's later call: its params exist; only the shape is new
                    out_shape = self.later_call_shape(call, params.get(key, {}), state.get(key), in_shape,
                                                      _swap(_layer_inputs(call.args), lambda t: dtypes[id(t)]))
            self.assign(call, out_shape, shapes)
            for t in _tensors(call.outputs):
                dtypes[id(t)] = t.dtype
        out = [shapes[id(t)] for t in self.out_tensors]
        if self.out_kind == "one":
            out_shape = out[0]
        elif self.out_kind == "dict":
            out_shape = dict(zip(self.output_names, out))
        else:
            out_shape = tuple(out)
        return out_shape, params, state or None

    @staticmethod
    def assign(call, value, table):
        """Store ``value`` (one, or nested like the call's outputs) per output tensor of ``call``."""
        outs = call.outputs
        if isinstance(outs, SymbolicTensor):
            table[id(outs)] = value
            return
        for t in _tensors(outs):
            v = value
            for i in t.index:
                v = v[i]
            table[id(t)] = v

    @staticmethod
    def later_call_shape(call, params, state, in_shape, in_dtypes):
        keyword_tensors = [k for k, v in call.kwargs.items() if isinstance(v, SymbolicTensor)]
        if keyword_tensors:
            raise ValueError(f"a shared layer called again with keyword tensors ({', '.join(keyword_tensors)}) "
                             "is not supported; call a separate layer")
        plain = {k: v for k, v in call.kwargs.items()}
        if _is_shape(in_shape):
            dtype = in_dtypes
        elif _flat_structure(in_shape):
            dtype = tuple(jax.tree_util.tree_leaves(in_dtypes))
        else:
            dtype = "float32"
        return output_shape(lambda x: call.layer.call(params, state, x, **plain)[0], in_shape, dtype)

    def call(self, params, state, inputs, *, mask, train, rng, **kwargs):
        values = self.given_values(inputs)
        if self.in_kind == "one":
            masks = [mask]
        elif isinstance(mask, (tuple, list)) and len(mask) == len(values):
            masks = list(mask)
        else:  # no masks (or one that cannot be matched to the inputs)
            masks = [None] * len(values)
        table = {id(t): v for t, v in zip(self.in_tensors, values)}
        mask_table = {id(t): m for t, m in zip(self.in_tensors, masks)}
        state = dict(state) if isinstance(state, dict) else {}
        params = params if isinstance(params, dict) else {}
        for call, r in zip(self.calls, split_rng(rng, len(self.calls))):
            key = self.key_of[id(call.layer)]
            x = _swap(_layer_inputs(call.args), lambda t: table[id(t)])
            m = _mask_structure(_layer_inputs(call.args), lambda t: mask_table[id(t)])
            call_kwargs = _swap(call.kwargs, lambda t: table[id(t)])
            if "mask" in call_kwargs:
                m = call_kwargs.pop("mask")
            with error_path(f"Model[{self.label!r}]", self.where(call)):
                y, new_state, out_mask = call.layer.call(params.get(key, {}), state.get(key), x, mask=m, train=train,
                                                         rng=r, **kwargs, **call_kwargs)
            if not is_empty(new_state):
                state[key] = new_state
            self.assign(call, y, table)
            self.assign_masks(call, out_mask, mask_table)
        outs = [table[id(t)] for t in self.out_tensors]
        out_masks = [mask_table[id(t)] for t in self.out_tensors]
        out_mask = out_masks[0] if self.out_kind == "one" else (
            None if all(m is None for m in out_masks) else self.shaped_outputs(out_masks))
        return self.shaped_outputs(outs), state or None, out_mask

    @staticmethod
    def assign_masks(call, out_mask, table):
        outs = call.outputs
        if isinstance(outs, SymbolicTensor):
            table[id(outs)] = out_mask
            return
        tensors = _tensors(outs)
        # One mask per output when the layer gives a matching tuple; else the first output's.
        per_output = isinstance(out_mask, (tuple, list)) and len(out_mask) == len(tensors)
        for i, t in enumerate(tensors):
            table[id(t)] = out_mask[i] if per_output else (out_mask if i == 0 else None)

    # ---------------------------------------------------------------- config (specs)
    def config(self, encode_layer, name):
        def ref(t):
            if isinstance(t.source, _Source):
                return ["input", self.input_names[self.in_tensors.index(t)]]
            return ["call", self.calls.index(t.source), list(t.index)]

        def encode(tree):
            if isinstance(tree, SymbolicTensor):
                return ref(tree)
            if isinstance(tree, dict):
                return {"dict": {k: encode(v) for k, v in tree.items()}}
            if isinstance(tree, (tuple, list)):
                return {"list" if isinstance(tree, list) else "tuple": [encode(v) for v in tree]}
            if tree is None or isinstance(tree, (bool, int, float, str)):
                return {"value": tree}
            raise ValueError(f"a call's argument {tree!r} cannot be written in a spec")

        inputs = [{"name": n, "shape": list(t.shape[1:]), "dtype": t.dtype}
                  for n, t in zip(self.input_names, self.in_tensors)]
        outputs = {"kind": self.out_kind, "names": self.output_names,
                   "tensors": [ref(t) for t in self.out_tensors]}
        return {"name": name, "inputs": inputs, "input_kind": self.in_kind,
                "layers": {self.key_of[id(l)]: encode_layer(self.key_of[id(l)], l) for l in self.layers},
                "calls": [{"layer": self.key_of[id(c.layer)], "args": [encode(a) for a in c.args],
                           "kwargs": {k: encode(v) for k, v in c.kwargs.items()}} for c in self.calls],
                "outputs": outputs}


def _flat_structure(shapes) -> bool:
    return isinstance(shapes, tuple) and all(_is_shape(s) for s in shapes)


def _model_from_config(config, decode_layer):
    layers = {key: decode_layer(key, value) for key, value in config["layers"].items()}
    tensors = {}
    inputs = []
    for spec in config["inputs"]:
        t = Input(tuple(None if d == -1 else d for d in spec["shape"]), spec["dtype"], spec["name"])
        tensors[("input", spec["name"])] = t
        inputs.append(t)
    made = []

    def resolve(ref):
        if ref[0] == "input":
            return tensors[("input", ref[1])]
        out = made[ref[1]]
        for i in ref[2]:
            out = out[i]
        return out

    def decode(tree):
        if isinstance(tree, list):
            return resolve(tree)
        (tag, body), = tree.items()
        if tag == "value":
            return body
        if tag == "dict":
            return {k: decode(v) for k, v in body.items()}
        items = [decode(v) for v in body]
        return items if tag == "list" else tuple(items)

    for c in config["calls"]:
        args = [decode(a) for a in c["args"]]
        kwargs = {k: decode(v) for k, v in c["kwargs"].items()}
        made.append(call_layer_symbolically(layers[c["layer"]], *args, **kwargs))
    outs = [resolve(r) for r in config["outputs"]["tensors"]]
    kind = config["outputs"]["kind"]
    if kind == "one":
        outputs = outs[0]
    elif kind == "dict":
        outputs = dict(zip(config["outputs"]["names"], outs))
    else:
        outputs = tuple(outs) if kind == "tuple" else outs
    kind = config["input_kind"]
    ins = inputs[0] if kind == "one" else dict(zip((s["name"] for s in config["inputs"]), inputs)) \
        if kind == "dict" else inputs
    return Model(ins, outputs, name=config.get("name"))


# ------------------------------------------------------------------ Sequential

class Sequential(Layer):
    """The tutorial's first model: layers in a list, run one after another (a ``serial``).

    Params are keyed as ``serial`` keys them (``dense``, ``dense_1``, ...), one entry per
    position (stax's rule: the same layer object twice holds two sets of params; share
    weights with :class:`Model`). An ``Input`` as the first element fixes the input shape
    (``input_shape``; ``init`` then checks the shape it is given). ``layers`` lists the
    layers, so ``Sequential([*base.layers, Dense(1)])`` builds a longer one.

    >>> import fnnet, jax
    >>> model = fnnet.Sequential([fnnet.Input((78,)), fnnet.Dense(400, activation='relu'),
    ...                           fnnet.Dense(200, activation='relu'), fnnet.Dense(1)])
    >>> shape, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    >>> shape, fnnet.count_params(params), len(model.layers)
    ((-1, 1), 112001, 3)
    """

    __slots__ = ("layers", "input_shape", "input_dtype")

    def __init__(self, layers=(), name=None):
        items = list(layers)
        head = None
        if items and isinstance(items[0], SymbolicTensor):
            head = items.pop(0)
            if not isinstance(head.source, _Source):
                raise TypeError("Sequential takes an fnnet.Input (not a layer's output) as its first element")
        if any(isinstance(item, SymbolicTensor) for item in items):
            raise TypeError("Sequential takes an fnnet.Input only as its first element")
        children = [as_layer(item) for item in items]
        keys = child_keys(children, "Sequential")
        n = len(children)
        declared = None if head is None else head.shape

        def init_with_state(rng, input_shape):
            shape = tuple(input_shape)
            if declared is not None:
                if len(shape) != len(declared) or any(a != b and -1 not in (a, b) for a, b in zip(shape, declared)):
                    raise ValueError(f"the Input was declared with shape {shape_str(declared)}, "
                                     f"but init got {shape_str(shape)}")
                shape = tuple(b if a == -1 else a for a, b in zip(shape, declared))
            params, state = {}, {}
            for i, (key, child, r) in enumerate(zip(keys, children, split_rng(rng, n))):
                with error_path(f"Sequential[{i}]"):
                    shape, p, s = child.init_with_state(r, shape)
                if not is_empty(p):
                    params[key] = p
                if not is_empty(s):
                    state[key] = s
            return shape, params, state or None

        def call(params, state, x, *, mask, rng, **kwargs):
            params = params if isinstance(params, dict) else {}
            state = state if isinstance(state, dict) else {}
            new_state = {}
            for i, (key, child, r) in enumerate(zip(keys, children, split_rng(rng, n))):
                with error_path(f"Sequential[{i}]"):
                    x, s, mask = child.call(params.get(key, {}), state.get(key), x, mask=mask, rng=r, **kwargs)
                if not is_empty(s):
                    new_state[key] = s
            return x, new_state or None, mask

        spec_items = ([head] if head is not None else []) + children
        super().__init__(init_with_state, call, name="Sequential", children=tuple(zip(keys, children)),
                         spec=("Sequential", (spec_items,), {} if name is None else {"name": name}), key=name)
        setter = object.__setattr__
        setter(self, "layers", children)
        setter(self, "input_shape", declared)
        setter(self, "input_dtype", None if head is None else head.dtype)

    def with_name(self, name: str) -> "Sequential":
        """The same layers under the key ``name``.

        >>> import fnnet
        >>> fnnet.Sequential([fnnet.Dense(1)]).with_name('head').name
        'head'
        """
        head = [Input(self.input_shape[1:], self.input_dtype)] if self.input_shape is not None else []
        return Sequential(head + self.layers, name=name)


LAYER_REGISTRY["Sequential"] = Sequential

"""Export fnnet models to Keras 3: :func:`to_keras`, the inverse of :func:`fnnet.from_keras`.

The model is read through :func:`fnnet.walk` (each node: the layer, its key, its input
shape, where its params sit). A layer's constructor name (``layer.spec[0]``) says which
Keras layer to build, with the constructor's arguments; the Keras functional API then
wires them: ``serial`` is a chain, ``FanOut``/``parallel`` are branches, and
``FanInConcat``/``FanInSum`` join them with ``Concatenate``/``Add``. Each Keras layer is
named by its fnnet key (``dense_1``) and gets its weights as soon as the call has built it.
"""

from __future__ import annotations

import inspect
import json

import numpy as np

from ..core import LAYER_REGISTRY, walk
from ..layers.activations import ACTIVATIONS
from ._graph import NO_MASK, model_mask
from ._layers import activation_matches_keras
from ._reading import KerasImportError

# fnnet's parameterless ready-made layers and the Keras activation each one is.
_SINGLETON_ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softmax": "softmax",
                          "LogSoftmax": "log_softmax", "Elu": "elu", "Selu": "selu", "Softplus": "softplus",
                          "Exp": "exponential"}
_RECURRENT = ("LSTM", "GRU", "SimpleRNN")


class KerasExportError(ValueError):
    """An fnnet model cannot be written as a Keras model; ``path`` is the layer's place (``'serial[2]'``).

    >>> str(KerasExportError('serial[1]', 'GeneralConv has no Keras equivalent'))
    'serial[1]: GeneralConv has no Keras equivalent'
    """

    def __init__(self, path, detail):
        self.path, self.detail = path, detail
        super().__init__(f"{path}: {detail}")

    def __reduce__(self):
        return (KerasExportError, (self.path, self.detail))


def _arguments(layer, path):
    spec = getattr(layer, "spec", None)
    if spec is None:
        raise KerasExportError(path, f"{layer.name} has no spec (it was not built by a registered constructor)")
    name, args, kwargs = spec
    constructor = LAYER_REGISTRY.get(name)
    if constructor is None:  # a ready-made layer: fnnet.Relu, fnnet.Flatten, fnnet.FanInSum, ...
        return name, {}
    bound = inspect.signature(constructor).bind(*args, **kwargs)
    bound.apply_defaults()
    return name, dict(bound.arguments)


def _activation(value, path) -> str:
    if value is None:
        return "linear"
    name = value if isinstance(value, str) else next((n for n, fn in ACTIVATIONS.items() if fn is value), None)
    if name not in ACTIVATIONS or not activation_matches_keras(name):
        raise KerasExportError(path, f"activation {value!r} has no Keras equivalent")
    return name


def _activation_layer(L, a, path, name):
    """``Activation(name, **options)`` as Keras writes it: options live on Keras's own layers."""
    activation, options = _activation(a["activation"], path), dict(a.get("options") or {})
    if not options:
        return L.Activation(activation, name=name)
    if activation == "softmax" and set(options) == {"axis"}:
        return L.Softmax(axis=options["axis"], name=name)
    if activation == "leaky_relu" and set(options) == {"negative_slope"}:
        return L.LeakyReLU(negative_slope=options["negative_slope"], name=name)
    if activation == "relu" and set(options) <= {"negative_slope", "max_value", "threshold"}:
        return L.ReLU(**options, name=name)
    raise KerasExportError(path, f"Activation({activation!r}, {options}) has no Keras layer with those options")


def _require(ok, path, detail):
    if not ok:
        raise KerasExportError(path, detail)


def _with_bias(params, *names):
    """The arrays for ``names`` that ``params`` has (no bias without use_bias), in Keras's order."""
    return [np.asarray(params[n]) for n in names if n in params]


def _no_weights(params, state):
    return []


def _dense(keras, a, path, name):
    return (keras.layers.Dense(a["units"], activation=_activation(a["activation"], path), use_bias=a["use_bias"],
                               name=name),
            lambda params, state: _with_bias(params, "kernel", "bias"))


def _recurrent(keras, name, a, path, keras_name):
    _require(not a["return_state"], path, "return_state=True has no single-output Keras equivalent")
    kwargs = {"return_sequences": a["return_sequences"], "go_backwards": a["go_backwards"],
              "activation": _activation(a["activation"], path), "unroll": a["unroll"] is True,
              "use_bias": a["use_bias"],
              # Keras's last output is the last step's (zeroed if masked); fnnet's is the last unmasked one.
              "zero_output_for_mask": a["zero_output_for_mask"] and a["return_sequences"]}
    if name in ("LSTM", "GRU"):
        kwargs["recurrent_activation"] = _activation(a["recurrent_activation"], path)
    if name == "LSTM":
        kwargs["unit_forget_bias"] = a["unit_forget_bias"]
    if name == "GRU":
        kwargs["reset_after"] = a["reset_after"]
    layer = getattr(keras.layers, name)(a["units"], name=keras_name, **kwargs)
    return layer, lambda params, state: _with_bias(params, "kernel", "recurrent_kernel", "bias")


def _wrapped(keras, node, path):
    """The Keras layer for the layer at ``node`` inside Bidirectional or TimeDistributed, and its weights."""
    name, a = _arguments(node.layer, path)
    if name in _RECURRENT:
        layer, weights = _recurrent(keras, name, a, path, node.layer.name)
    elif name == "Dense":
        layer, weights = _dense(keras, a, path, node.layer.name)
    else:
        raise KerasExportError(path, f"{name} inside a wrapper has no Keras export (LSTM, GRU, SimpleRNN, Dense do)")
    return layer, weights


def _batch_norm(keras, a, rank, path, name):
    reduced = {r % rank for r in (range(rank - 1) if a["axis"] is None else a["axis"])}
    kept = [i for i in range(rank) if i not in reduced]
    _require(len(kept) == 1, path, f"BatchNorm(axis={a['axis']}) keeps {len(kept)} axes; Keras's keeps one")

    def weights(params, state):
        _require(state is not None, path, "BatchNorm needs its state (the moving statistics): pass state=")
        return _with_bias(params, "gamma", "beta") + [np.asarray(state["mean"]), np.asarray(state["var"])]

    return (keras.layers.BatchNormalization(axis=kept[0], epsilon=a["epsilon"], center=a["center"],
                                            scale=a["scale"], momentum=a["momentum"], name=name), weights)


def _bidirectional(keras, node, a, path, name):
    # The walk's children are the two directions as the model runs them; keys 'forward', 'backward'.
    directions = {child.key: child for child in node.children}
    for inner in (directions["forward"], directions["backward"]):
        _, b = _arguments(inner.layer, path)
        _require(b.get("zero_output_for_mask", True) or not b.get("return_sequences"), path,
                 "Keras's Bidirectional zeroes masked outputs when it returns sequences; "
                 "zero_output_for_mask=False has no Keras equivalent there")
    forward, forward_weights = _wrapped(keras, directions["forward"], f"{path}/forward")
    backward, backward_weights = forward, forward_weights
    if a["backward_layer"] is not None:  # otherwise Keras derives it from the forward layer, as fnnet does
        backward, backward_weights = _wrapped(keras, directions["backward"], f"{path}/backward")
    layer = keras.layers.Bidirectional(forward, merge_mode=a["merge_mode"], name=name,
                                       backward_layer=None if a["backward_layer"] is None else backward)
    return layer, lambda params, state: (forward_weights(params["forward"], None)
                                         + backward_weights(params["backward"], None))


def _leaf(keras, node, ctor, a, path, name):
    """The Keras layer (named ``name``) for one fnnet leaf layer, and the function giving its weights."""
    L = keras.layers
    if ctor in _SINGLETON_ACTIVATIONS:
        return L.Activation(_SINGLETON_ACTIVATIONS[ctor], name=name), _no_weights
    without_weights = {
        "Flatten": lambda: L.Flatten(name=name),
        "Activation": lambda: _activation_layer(L, a, path, name),
        "ReLU": lambda: L.ReLU(max_value=a["max_value"], negative_slope=a["negative_slope"],
                               threshold=a["threshold"], name=name),
        "Dropout": lambda: L.Dropout(a["rate"], name=name),
        "Reshape": lambda: L.Reshape(tuple(a["target_shape"]), name=name),
        **{pool: (lambda pool=pool: getattr(L, pool)(a["pool_size"], a["strides"], a["padding"], name=name))
           for pool in ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D")},
        **{pool: (lambda pool=pool: getattr(L, pool)(name=name))
           for pool in ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
                        "GlobalMaxPooling2D")},
    }
    if ctor in without_weights:
        return without_weights[ctor](), _no_weights
    if ctor == "Dense":
        return _dense(keras, a, path, name)
    if ctor in ("Conv1D", "Conv2D"):
        layer = getattr(L, ctor)(a["filters"], a["kernel_size"], a["strides"], a["padding"],
                                 activation=_activation(a["activation"], path), use_bias=a["use_bias"], name=name)
        return layer, lambda params, state: _with_bias(params, "kernel", "bias")
    if ctor == "Embedding":
        return (L.Embedding(a["input_dim"], a["output_dim"], mask_zero=a["mask_zero"], name=name),
                lambda params, state: [np.asarray(params["embeddings"])])
    if ctor == "LayerNorm":
        axis = list(a["axis"]) if isinstance(a["axis"], (tuple, list)) else a["axis"]
        rms = a.get("rms_scaling", False)
        return (L.LayerNormalization(axis=axis, epsilon=a["epsilon"], center=a["center"] and not rms,
                                     scale=a["scale"], rms_scaling=rms, name=name),
                lambda params, state: _with_bias(params, "gamma", "beta"))
    if ctor == "BatchNorm":
        return _batch_norm(keras, a, len(node.input_shape), path, name)
    if ctor in _RECURRENT:
        return _recurrent(keras, ctor, a, path, name)
    if ctor == "Bidirectional":
        return _bidirectional(keras, node, a, path, name)
    if ctor == "TimeDistributed":
        (inner,) = node.children  # key None: the wrapped layer's params are the wrapper's own
        inner_layer, inner_weights = _wrapped(keras, inner, f"{path}/layer")
        return L.TimeDistributed(inner_layer, name=name), inner_weights
    raise KerasExportError(path, f"{ctor} has no Keras export; to_keras writes the layers from_keras reads")


def _child_path(path, name, i):
    return f"{path}/{name}[{i}]" if path else f"{name}[{i}]"


def _at(tree, path, empty):
    """The entry of ``tree`` at the node path ``path``; ``empty`` where the combinator stored none."""
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return empty
        tree = tree[key]
    return tree


class _Names:
    """Keras names for the exported layers: each layer's fnnet key, made unique in the Keras model.

    Keys are unique within one combinator; where two nested ones repeat a key, the later
    layer is named by its path (``serial_1.dense``), as Keras wants one name per layer.
    """

    def __init__(self, *reserved):
        self.used = set(reserved)

    def take(self, node) -> str:
        key = node.key or node.layer.name
        candidates = [key, ".".join(node.path) or key]
        name = next((c for c in candidates if c not in self.used), None)
        n = 1
        while name is None or name in self.used:
            name, n = f"{candidates[-1]}_{n}", n + 1
        self.used.add(name)
        return name


def _call(keras, node, params, state, x, path, names):
    """Apply the layer at ``node`` to the Keras tensor(s) ``x`` with Keras layers carrying its weights."""
    ctor, a = _arguments(node.layer, path or "model")
    if ctor in ("serial", "Sequential", "Residual"):  # Residual runs as serial(FanOut, parallel(...), FanInSum)
        for i, child in enumerate(node.children):
            x = _call(keras, child, params, state, x, _child_path(path, ctor, i), names)
        return x
    if ctor == "parallel":
        return [_call(keras, child, params, state, x_i, _child_path(path, ctor, i), names)
                for i, (child, x_i) in enumerate(zip(node.children, x))]
    if ctor == "FanOut":
        return [x] * a["num"]
    if ctor == "FanInConcat":
        return keras.layers.Concatenate(axis=a["axis"], name=names.take(node))(list(x))
    if ctor == "FanInSum":
        return keras.layers.Add(name=names.take(node))(list(x))
    if ctor == "Identity":
        return x
    keras_layer, weights = _leaf(keras, node, ctor, a, path or ctor, names.take(node))
    y = keras_layer(x)  # builds the layer, so its weights can be set
    keras_layer.set_weights(weights(_at(params, node.path, {}), _at(state, node.path, None)))
    return y


INPUT_NAME = "input"


def to_keras(model, params, state=None, *, input_shape=None):
    """Build the Keras 3 model that computes what ``model`` computes with ``params`` (and ``state``).

    ``input_shape`` is the shape ``init`` was called with (``(-1, 78)``; for an import,
    :func:`fnnet.from_keras`'s ``input_shape``). ``state`` holds BatchNorm's moving
    statistics. Each Keras layer is named by its fnnet key (``dense_1``), so exporting
    an import gives back Keras's names. The layers are those :func:`fnnet.from_keras`
    reads; any other raises :class:`KerasExportError` naming its place in the model.
    Keras is imported here, so it is needed only to export.

    >>> import os; _ = os.environ.setdefault('KERAS_BACKEND', 'jax')
    >>> import pytest; keras = pytest.importorskip('keras')
    >>> import fnnet, jax, numpy as np
    >>> model = fnnet.serial(fnnet.Dense(4, activation='relu'), fnnet.Dense(1, name='price'))
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    >>> km = fnnet.to_keras(model, params, input_shape=(-1, 3))
    >>> [layer.name for layer in km.layers]
    ['input', 'dense', 'price']
    >>> x = np.ones((2, 3), np.float32)
    >>> bool(np.allclose(km(x), model.apply(params, x), atol=1e-6))
    True
    """
    try:
        import keras
    except ImportError as e:
        raise ImportError("to_keras needs Keras 3: pip install 'fnnet[keras]'") from e
    if input_shape is None:
        raise TypeError("to_keras needs input_shape=(-1, ...) (the shape init was called with; "
                        "from_keras(...).input_shape for an imported model)")
    root = walk(model, input_shape)  # shapes and the params' places, nothing computed
    first = next((n for n in root.nodes() if not n.children), root)
    dtype = "int32" if first.layer.spec and first.layer.spec[0] == "Embedding" else "float32"
    inputs = keras.Input(tuple(None if d == -1 else d for d in root.input_shape[1:]), dtype=dtype, name=INPUT_NAME)
    outputs = _call(keras, root, params, state, inputs, "", _Names(INPUT_NAME))
    keras_model = keras.Model(inputs, outputs)
    try:  # fnnet passes masks where Keras drops them: refuse what would then compute something else
        model_mask(json.loads(json.dumps(keras.saving.serialize_keras_object(keras_model))), NO_MASK)
    except KerasImportError as e:
        raise KerasExportError("model", f"the Keras model would differ: {e}") from None
    return keras_model

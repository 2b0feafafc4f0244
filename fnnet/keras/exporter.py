"""Export fnnet models to Keras 3: :func:`to_keras`, the inverse of :func:`fnnet.from_keras`.

The model's spec (each layer's registered constructor and arguments, see
:func:`fnnet.to_spec`) says which Keras layer to build; the Keras functional API then
wires them: ``serial`` is a chain, ``FanOut``/``parallel`` are branches, and
``FanInConcat``/``FanInSum`` join them with ``Concatenate``/``Add``. Each Keras layer
gets its weights as soon as the call has built it.
"""

from __future__ import annotations

import inspect
import json

import numpy as np

from ..core import LAYER_REGISTRY
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


def _require(ok, path, detail):
    if not ok:
        raise KerasExportError(path, detail)


def _with_bias(params, *names):
    """The arrays for ``names`` that ``params`` has (no bias without use_bias), in Keras's order."""
    return [np.asarray(params[n]) for n in names if n in params]


def _no_weights(params, state):
    return []


def _dense(keras, a, path):
    return (keras.layers.Dense(a["units"], activation=_activation(a["activation"], path), use_bias=a["use_bias"]),
            lambda params, state: _with_bias(params, "kernel", "bias"))


def _recurrent(keras, name, a, path):
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
    layer = getattr(keras.layers, name)(a["units"], **kwargs)
    return layer, lambda params, state: _with_bias(params, "kernel", "recurrent_kernel", "bias")


def _wrapped(keras, layer, path):
    """The Keras layer for a layer inside Bidirectional or TimeDistributed, and its weights function."""
    name, a = _arguments(layer, path)
    if name in _RECURRENT:
        return _recurrent(keras, name, a, path)
    if name == "Dense":
        return _dense(keras, a, path)
    raise KerasExportError(path, f"{name} inside a wrapper has no Keras export (LSTM, GRU, SimpleRNN, Dense do)")


def _batch_norm(keras, a, rank, path):
    reduced = {r % rank for r in (range(rank - 1) if a["axis"] is None else a["axis"])}
    kept = [i for i in range(rank) if i not in reduced]
    _require(len(kept) == 1, path, f"BatchNorm(axis={a['axis']}) keeps {len(kept)} axes; Keras's keeps one")

    def weights(params, state):
        _require(state is not None, path, "BatchNorm needs its state (the moving statistics): pass state=")
        return _with_bias(params, "gamma", "beta") + [np.asarray(state["mean"]), np.asarray(state["var"])]

    return (keras.layers.BatchNormalization(axis=kept[0], epsilon=a["epsilon"], center=a["center"],
                                            scale=a["scale"], momentum=a["momentum"]), weights)


def _bidirectional(keras, a, path):
    for inner in (a["layer"], a["backward_layer"] or a["layer"]):
        _, b = _arguments(inner, path)
        _require(b.get("zero_output_for_mask", True) or not b.get("return_sequences"), path,
                 "Keras's Bidirectional zeroes masked outputs when it returns sequences; "
                 "zero_output_for_mask=False has no Keras equivalent there")
    forward, forward_weights = _wrapped(keras, a["layer"], f"{path}/forward")
    backward, backward_weights = forward, forward_weights
    if a["backward_layer"] is not None:
        backward, backward_weights = _wrapped(keras, a["backward_layer"], f"{path}/backward")
    layer = keras.layers.Bidirectional(forward, merge_mode=a["merge_mode"],
                                       backward_layer=None if a["backward_layer"] is None else backward)
    return layer, lambda params, state: (forward_weights(params["forward"], None)
                                         + backward_weights(params["backward"], None))


def _leaf(keras, name, a, x, path):
    """The Keras layer for one fnnet leaf layer, and the function giving its weights."""
    L = keras.layers
    if name in _SINGLETON_ACTIVATIONS:
        return L.Activation(_SINGLETON_ACTIVATIONS[name]), _no_weights
    without_weights = {
        "Flatten": lambda: L.Flatten(),
        "Activation": lambda: L.Activation(_activation(a["activation"], path)),
        "Dropout": lambda: L.Dropout(a["rate"]),
        "Reshape": lambda: L.Reshape(tuple(a["target_shape"])),
        **{pool: (lambda pool=pool: getattr(L, pool)(a["pool_size"], a["strides"], a["padding"]))
           for pool in ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D")},
        **{pool: (lambda pool=pool: getattr(L, pool)())
           for pool in ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
                        "GlobalMaxPooling2D")},
    }
    if name in without_weights:
        return without_weights[name](), _no_weights
    if name == "Dense":
        return _dense(keras, a, path)
    if name in ("Conv1D", "Conv2D"):
        layer = getattr(L, name)(a["filters"], a["kernel_size"], a["strides"], a["padding"],
                                 activation=_activation(a["activation"], path), use_bias=a["use_bias"])
        return layer, lambda params, state: _with_bias(params, "kernel", "bias")
    if name == "Embedding":
        return (L.Embedding(a["input_dim"], a["output_dim"], mask_zero=a["mask_zero"]),
                lambda params, state: [np.asarray(params["embeddings"])])
    if name == "LayerNorm":
        axis = list(a["axis"]) if isinstance(a["axis"], (tuple, list)) else a["axis"]
        return (L.LayerNormalization(axis=axis, epsilon=a["epsilon"], center=a["center"], scale=a["scale"]),
                lambda params, state: _with_bias(params, "gamma", "beta"))
    if name == "BatchNorm":
        return _batch_norm(keras, a, len(x.shape), path)
    if name in _RECURRENT:
        return _recurrent(keras, name, a, path)
    if name == "Bidirectional":
        return _bidirectional(keras, a, path)
    if name == "TimeDistributed":
        inner, inner_weights = _wrapped(keras, a["layer"], f"{path}/layer")
        return L.TimeDistributed(inner), inner_weights
    raise KerasExportError(path, f"{name} has no Keras export; to_keras writes the layers from_keras reads")


def _child_path(path, name, i):
    return f"{path}/{name}[{i}]" if path else f"{name}[{i}]"


def _call(keras, layer, params, state, x, path):
    """Apply the fnnet ``layer`` to the Keras tensor(s) ``x`` with Keras layers carrying its weights."""
    name, a = _arguments(layer, path or "model")
    state = state or {}
    if name in ("serial", "Residual"):  # Residual is built as serial(FanOut, parallel(...), FanInSum)
        for i, (key, child) in enumerate(layer.children):
            x = _call(keras, child, params[key], state.get(key), x, _child_path(path, name, i))
        return x
    if name == "parallel":
        return [_call(keras, child, params[key], state.get(key), x_i, _child_path(path, name, i))
                for i, ((key, child), x_i) in enumerate(zip(layer.children, x))]
    if name == "FanOut":
        return [x] * a["num"]
    if name == "FanInConcat":
        return keras.layers.Concatenate(axis=a["axis"])(list(x))
    if name == "FanInSum":
        return keras.layers.Add()(list(x))
    if name == "Identity":
        return x
    keras_layer, weights = _leaf(keras, name, a, x, path or name)
    y = keras_layer(x)  # builds the layer, so its weights can be set
    keras_layer.set_weights(weights(params, state or None))
    return y


def _first_layer_name(layer):
    while getattr(layer, "spec", None) and layer.spec[0] == "serial" and layer.spec[1]:
        layer = layer.spec[1][0]
    return getattr(layer, "spec", (None,))[0]


def to_keras(model, params, state=None, *, input_shape=None):
    """Build the Keras 3 model that computes what ``model`` computes with ``params`` (and ``state``).

    ``input_shape`` is the shape ``init`` was called with (``(-1, 78)``); it defaults to
    ``model.input_shape``, which :func:`fnnet.from_keras` sets. ``state`` holds
    BatchNorm's moving statistics. The layers are those :func:`fnnet.from_keras` reads;
    any other raises :class:`KerasExportError` naming its place in the model. Keras is
    imported here, so it is needed only to export.

    >>> import os; _ = os.environ.setdefault('KERAS_BACKEND', 'jax')
    >>> import pytest; keras = pytest.importorskip('keras')
    >>> import fnnet, jax, numpy as np
    >>> model = fnnet.serial(fnnet.Dense(4, activation='relu'), fnnet.Dense(1))
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    >>> km = fnnet.to_keras(model, params, input_shape=(-1, 3))
    >>> x = np.ones((2, 3), np.float32)
    >>> bool(np.allclose(km(x), model.apply(params, x), atol=1e-6))
    True
    """
    try:
        import keras
    except ImportError as e:
        raise ImportError("to_keras needs Keras 3: pip install 'fnnet[keras]'") from e
    input_shape = input_shape or getattr(model, "input_shape", None)
    if input_shape is None:
        raise TypeError("to_keras needs input_shape=(-1, ...) (the shape init was called with)")
    dtype = "int32" if _first_layer_name(model) == "Embedding" else "float32"
    inputs = keras.Input(tuple(None if d == -1 else d for d in input_shape[1:]), dtype=dtype)
    keras_model = keras.Model(inputs, _call(keras, model, params, state, inputs, ""))
    try:  # fnnet passes masks where Keras drops them: refuse what would then compute something else
        model_mask(json.loads(json.dumps(keras.saving.serialize_keras_object(keras_model))), NO_MASK)
    except KerasImportError as e:
        raise KerasExportError("model", f"the Keras model would differ: {e}") from None
    return keras_model

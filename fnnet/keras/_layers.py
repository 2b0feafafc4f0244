"""One converter per Keras layer class: its config and weights -> an fnnet layer, params, state.

Settings that change what a layer computes and that fnnet has no equivalent for are
refused with a :class:`KerasImportError` naming the setting; settings that only matter
for training from scratch (initializers, regularizers, constraints) are ignored.
"""

from __future__ import annotations

import re
import warnings

import jax.numpy as jnp

from ..combinators import FanInConcat, FanInSum
from ..layers import (Activation, AveragePooling1D, AveragePooling2D, BatchNorm, Bidirectional, Conv1D, Conv2D,
                      Dense, Dropout, Embedding, Flatten, GlobalAveragePooling1D, GlobalAveragePooling2D,
                      GlobalMaxPooling1D, GlobalMaxPooling2D, GRU, LayerNorm, LSTM, MaxPooling1D, MaxPooling2D,
                      ReLU, Reshape, SimpleRNN, TimeDistributed)
from ..layers.activations import ACTIVATIONS, get_activation
from ._reading import MODEL_CLASSES, RECURRENT_CLASSES, Converted, KerasLayer, WeightsGroup, keras_layer

# Keras names whose meaning fnnet's table might not share: (input, Keras 3's output).
_ACTIVATION_PROBES = {"leaky_relu": (-1.0, -0.2)}
# Keras functions that depart from their own documented definition, which fnnet follows:
# importing or exporting them would silently change what the model computes.
_KERAS_DEPARTS = {"sparsemax": "Keras 3's sparsemax rows do not sum to 1 once two or more entries are kept "
                               "(fnnet's follows the definition Keras documents)"}


def _variables(k: KerasLayer, names, node: WeightsGroup | None = None) -> dict:
    node = node or k.weights
    values = node.variables()
    if len(values) != len(names):
        raise k.error(f"expected {len(names)} weight arrays ({', '.join(names) or 'none'}) at {node.path} "
                      f"in the weights file, found {len(values)}")
    return dict(zip(names, values))


def _ints(value, n) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


def _refuse_unless(k: KerasLayer, ok: bool, setting: str):
    if not ok:
        raise k.error(f"{setting} has no fnnet equivalent, so this layer cannot be imported")


def _check_common(k: KerasLayer):
    c = k.config
    _refuse_unless(k, c.get("data_format", "channels_last") == "channels_last",
                   f"data_format={c.get('data_format')!r} (fnnet is channels-last)")
    _refuse_unless(k, not c.get("quantization_config") and not c.get("lora_rank"),
                   "quantization or LoRA")


def activation_matches_keras(name: str) -> bool:
    """Whether fnnet's activation ``name`` computes what Keras 3's of that name does."""
    if name in _KERAS_DEPARTS:
        return False
    if name not in _ACTIVATION_PROBES:
        return True
    x, keras_y = _ACTIVATION_PROBES[name]
    return abs(float(ACTIVATIONS[name](jnp.float32(x))) - keras_y) <= 1e-6


def _activation(k: KerasLayer, value, key="activation") -> str:
    if value is None:
        return "linear"
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise k.error(f"{key}={value!r} has no fnnet equivalent; fnnet knows {', '.join(sorted(ACTIVATIONS))}")
    if value in _KERAS_DEPARTS:
        raise k.error(f"{key}={value!r}: {_KERAS_DEPARTS[value]}, so the imported model would compute something else")
    try:
        get_activation(value)
    except TypeError as e:  # e.g. 'threshold', whose function needs arguments a name cannot carry
        raise k.error(f"{key}={value!r} cannot be used by name: {e}") from None
    if not activation_matches_keras(value):
        x, keras_y = _ACTIVATION_PROBES[value]
        raise k.error(f"{key}={value!r}: fnnet's {value!r} differs from Keras 3's (at {x} Keras gives "
                      f"{keras_y}), so the imported model would compute something else")
    return value


# ------------------------------------------------------------------------ converters

def _dense(k):
    c = k.config
    _check_common(k)
    names = ["kernel", "bias"] if c.get("use_bias", True) else ["kernel"]
    return Converted(Dense(c["units"], activation=_activation(k, c.get("activation")), use_bias=len(names) == 2),
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
    return Converted(layer, _variables(k, ["kernel", "bias"] if use_bias else ["kernel"]))


_POOLS = {"MaxPooling1D": (MaxPooling1D, 1), "MaxPooling2D": (MaxPooling2D, 2),
          "AveragePooling1D": (AveragePooling1D, 1), "AveragePooling2D": (AveragePooling2D, 2)}
GLOBAL_POOLS = {"GlobalAveragePooling1D": GlobalAveragePooling1D, "GlobalAveragePooling2D": GlobalAveragePooling2D,
                 "GlobalMaxPooling1D": GlobalMaxPooling1D, "GlobalMaxPooling2D": GlobalMaxPooling2D}


def _pool(k):
    c = k.config
    _check_common(k)
    constructor, ndim = _POOLS[k.class_name]
    strides = c.get("strides")
    return Converted(constructor(_ints(c["pool_size"], ndim), None if strides is None else _ints(strides, ndim),
                                 c.get("padding", "valid")), {})


def _global_pool(k):
    _check_common(k)
    _refuse_unless(k, not k.config.get("keepdims", False), "keepdims=True")
    return Converted(GLOBAL_POOLS[k.class_name](), {})


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
    return Converted(layer, values, state)


def _layer_norm(k):
    c = k.config
    rms_scaling = bool(c.get("rms_scaling", False))
    axis = c.get("axis", -1)
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    axis = axis[0] if isinstance(axis, tuple) and len(axis) == 1 else axis
    center, scale = c.get("center", True), c.get("scale", True)
    names = ["gamma"] if rms_scaling else (["gamma"] if scale else []) + (["beta"] if center else [])
    return Converted(LayerNorm(axis, epsilon=c.get("epsilon", 1e-3), center=center, scale=scale,
                               rms_scaling=rms_scaling), _variables(k, names))


def _embedding(k):
    c = k.config
    _check_common(k)
    return Converted(Embedding(c["input_dim"], c["output_dim"], mask_zero=bool(c.get("mask_zero", False))),
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
    return Converted(constructor(c["units"], **kwargs), _variables(k, names, k.weights.child("cell")))


def _nested(k: KerasLayer, entry, weights: WeightsGroup) -> KerasLayer:
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise k.error(f"cannot read the wrapped layer's config {entry!r}")
    return keras_layer(entry, weights)


def _bidirectional(k):
    c = k.config
    forward = _nested(k, c["layer"], k.weights.child("forward_layer"))
    if "backward_layer" in c and c["backward_layer"] is not None:
        backward = _nested(k, c["backward_layer"], k.weights.child("backward_layer"))
    else:  # Keras builds the backward copy from the forward config, reading the other way
        flipped = {**forward.config, "go_backwards": not forward.config.get("go_backwards", False)}
        backward = forward._replace(config=flipped, weights=k.weights.child("backward_layer"))
    for inner in (forward, backward):
        if inner.class_name not in RECURRENT_CLASSES:
            raise inner.error(f"inside Bidirectional {k.name!r}: fnnet's Bidirectional wraps "
                              f"{', '.join(RECURRENT_CLASSES)}")
    # Keras's Bidirectional zeroes masked outputs exactly when it returns sequences.
    zero_masked = bool(forward.config.get("return_sequences", False))
    fwd, bwd = (_recurrent(inner, zero_masked) for inner in (forward, backward))
    ctor, args, kwargs = fwd.layer.spec
    derived = bwd.layer.spec == (ctor, args, {**kwargs, "go_backwards": not kwargs["go_backwards"]})
    merge_mode = c.get("merge_mode", "concat")
    layer = (Bidirectional(fwd.layer, merge_mode) if derived
             else Bidirectional(fwd.layer, merge_mode, backward_layer=bwd.layer))
    return Converted(layer, {"forward": fwd.params, "backward": bwd.params})


def _time_distributed(k):
    inner = convert_layer(_nested(k, k.config["layer"], k.weights.child("layer")))
    if inner.state is not None:
        raise k.error("the wrapped layer keeps state (BatchNormalization), which fnnet's TimeDistributed refuses")
    return Converted(TimeDistributed(inner.layer), inner.params)


def _no_weights(make):
    def convert(k):
        _check_common(k)
        _variables(k, [])
        return Converted(make(k), {})

    return convert


def _relu_layer(k):
    c = k.config
    if c.get("max_value") is None and not c.get("negative_slope") and not c.get("threshold"):
        return Activation("relu")
    return ReLU(c.get("max_value"), c.get("negative_slope", 0.0), c.get("threshold", 0.0))


def _softmax_layer(k):
    axis = k.config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    _refuse_unless(k, isinstance(axis, int), f"axis={axis} (several axes)")
    return Activation("softmax") if axis == -1 else Activation("softmax", axis=axis)


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
    **{name: _global_pool for name in GLOBAL_POOLS},
    "Flatten": _no_weights(lambda k: Flatten),
    "Reshape": _no_weights(lambda k: Reshape(tuple(k.config["target_shape"]))),
    "Concatenate": _no_weights(lambda k: FanInConcat(k.config.get("axis", -1))),
    "Add": _no_weights(lambda k: FanInSum),
}

SUPPORTED_LAYERS = tuple(sorted(["InputLayer", *_CONVERTERS, *MODEL_CLASSES]))


def fnnet_name(keras_name: str) -> str:
    """Keras's layer name as an fnnet name: the same where fnnet allows it (``dense_1``, ``lstm``).

    Keras allows a few more characters (spaces, a leading digit); those become ``_``.
    """
    name = re.sub(r"[^\w.-]", "_", keras_name or "layer")
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def convert_layer(k: KerasLayer) -> Converted:
    """The fnnet layer, params and state for one Keras layer record.

    The layer takes the Keras layer's name, so its params key in the model is that name.
    """
    converter = _CONVERTERS.get(k.class_name)
    if converter is None:
        raise k.error(f"layer class {k.class_name} is not supported by fnnet.from_keras; supported: "
                      f"{', '.join(SUPPORTED_LAYERS)}")
    converted = converter(k)
    return converted._replace(layer=converted.layer.with_name(fnnet_name(k.name)))

"""The layer contract (fnnet.testing.check_layer) for every built-in layer and combinator.

Each case declares how the layer departs from the defaults: batch-coupled layers
(BatchNorm training, Dropout training) say ``batch_independent=False``; integer inputs
say their value range; layers with state get it from ``layer.init_with_state``.
Layers with the same input shape and no params are grouped with ``FanOut``/``parallel``
so that one check (one set of compilations) covers several; a failure names its output.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from jax.example_libraries import stax

import fnnet
from fnnet.testing import check_layer, strategies


def side_by_side(*layers):
    """One layer running ``layers`` on copies of its input; outputs as a tuple."""
    return fnnet.serial(fnnet.FanOut(len(layers)), fnnet.parallel(*layers))


STAX_SINGLETONS = [fnnet.Tanh, fnnet.Relu, fnnet.Exp, fnnet.LogSoftmax, fnnet.Softmax, fnnet.Softplus,
                   fnnet.Sigmoid, fnnet.Elu, fnnet.LeakyRelu, fnnet.Selu, fnnet.Gelu]
SEQUENCE = (-1, 3, 3)  # (batch, time, features); "LSTM" and "Embedding" draw the time length too
TRAIN = {"train": True, "batch_independent": False}
# Keras activations whose function has arguments without defaults.
NEEDED_OPTIONS = {"threshold": {"threshold": 0.5, "default_value": 0.0}}

# (id, layer factory, input shape, check_layer flags)
CASES = [
    # dense and element-wise
    ("Dense", lambda: fnnet.Dense(3), (-1, 4), {}),
    ("Dense relu no bias rank 3", lambda: fnnet.Dense(4, activation="relu", use_bias=False), (-1, 2, 3), {}),
    ("stax activation singletons", lambda: side_by_side(*STAX_SINGLETONS), (-1, 4), {}),
    ("Activation by Keras name", lambda: side_by_side(*[fnnet.Activation(name, **NEEDED_OPTIONS.get(name, {}))
                                                        for name in fnnet.ACTIVATIONS]), (-1, 4), {}),
    ("elementwise and Lambda", lambda: side_by_side(fnnet.elementwise(jnp.square),
                                                    fnnet.Lambda(lambda x: 2 * x[:, ::-1], name="flip")),
     (-1, 3), {}),
    ("Identity", lambda: fnnet.Identity, (-1, 3), {}),
    # convolutions
    ("Conv", lambda: fnnet.Conv(3, (2, 2)), (-1, 4, 4, 2), {}),
    ("Conv2D same strided tanh", lambda: fnnet.Conv2D(2, 3, strides=2, padding="same", activation="tanh"),
     (-1, 5, 5, 1), {}),
    ("Conv1D", lambda: fnnet.Conv1D(3, 2), (-1, 5, 2), {}),
    ("GeneralConv NCHW", lambda: fnnet.GeneralConv(("NCHW", "OIHW", "NCHW"), 2, (3, 3), strides=(2, 2),
                                                   padding="SAME"), (-1, 1, 5, 5), {}),
    ("ConvTranspose", lambda: fnnet.ConvTranspose(2, (2, 2), strides=(2, 2)), (-1, 3, 3, 2), {}),
    ("GeneralConvTranspose NCHW", lambda: fnnet.GeneralConvTranspose(("NCHW", "OIHW", "NCHW"), 2, (2, 2)),
     (-1, 1, 3, 3), {}),
    ("Conv1DTranspose", lambda: fnnet.Conv1DTranspose(2, (3,)), (-1, 4, 2), {}),
    # pooling and reshaping
    ("2-D pooling", lambda: side_by_side(fnnet.MaxPool((2, 2), strides=(2, 2)), fnnet.AvgPool((3, 3), padding="SAME"),
                                         fnnet.SumPool((2, 2)), fnnet.MaxPooling2D(), fnnet.AveragePooling2D(),
                                         fnnet.GlobalAveragePooling2D(), fnnet.GlobalMaxPooling2D()),
     (-1, 4, 4, 2), {}),
    ("MaxPool NCHW", lambda: fnnet.MaxPool((2, 2), spec="NCHW"), (-1, 2, 3, 3), {}),
    ("1-D pooling", lambda: side_by_side(fnnet.MaxPooling1D(2), fnnet.AveragePooling1D(2, padding="same"),
                                         fnnet.SumPool((2,)), fnnet.GlobalAveragePooling1D(),
                                         fnnet.GlobalMaxPooling1D()), (-1, 5, 2), {}),
    ("Flatten and Reshape", lambda: side_by_side(fnnet.Flatten, fnnet.Reshape((3, -1))), (-1, 2, 3), {}),
    # normalisation and dropout
    ("LayerNorm", lambda: fnnet.LayerNorm(), (-1, 4), {}),
    ("LayerNorm two axes", lambda: fnnet.LayerNorm(axis=(1, 2)), (-1, 2, 3), {}),
    ("BatchNorm eval", lambda: fnnet.BatchNorm(), (-1, 3), {}),
    ("BatchNorm eval images", lambda: fnnet.BatchNorm(), (-1, 3, 3, 2), {}),
    ("BatchNorm train", lambda: fnnet.BatchNorm(), (-1, 3), TRAIN),
    ("Dropout eval", lambda: fnnet.Dropout(0.5), (-1, 3), {}),
    ("Dropout train", lambda: fnnet.Dropout(0.5), (-1, 3), TRAIN),
    # combinators
    ("serial MLP", lambda: fnnet.serial(fnnet.Dense(8), fnnet.Relu, fnnet.Dense(2)), (-1, 3), {}),
    ("serial with raw stax layers", lambda: fnnet.serial(stax.Dense(4), stax.Relu, fnnet.Dense(2), stax.Tanh),
     (-1, 3), {}),
    ("serial stax conv net", lambda: fnnet.serial(stax.Conv(2, (2, 2)), stax.Relu, stax.Flatten, stax.Dense(3)),
     (-1, 3, 3, 1), {}),
    ("serial with BatchNorm and Dropout, train",
     lambda: fnnet.serial(fnnet.Dense(4), fnnet.BatchNorm(), fnnet.Relu, fnnet.Dropout(0.2), fnnet.Dense(1)),
     (-1, 3), TRAIN),
    ("parallel on a tuple of inputs", lambda: fnnet.parallel(fnnet.Dense(2), fnnet.Tanh), ((-1, 3), (-1, 4)), {}),
    ("FanOut", lambda: fnnet.FanOut(3), (-1, 2), {}),
    ("FanInSum", lambda: fnnet.FanInSum, ((-1, 3), (-1, 3)), {}),
    ("FanInConcat", lambda: fnnet.FanInConcat(), ((-1, 3), (-1, 2)), {}),
    ("FanInConcat time axis", lambda: fnnet.FanInConcat(axis=1), ((-1, 2, 3), (-1, 1, 3)), {}),
    ("Residual", lambda: fnnet.Residual(fnnet.Dense(3), fnnet.Relu), (-1, 3), {}),
    ("shape_dependent", lambda: fnnet.shape_dependent(lambda shape: fnnet.Dense(shape[-1] * 2)), (-1, 3), {}),
    # sequences
    ("Embedding", lambda: fnnet.Embedding(10, 3), (-1, -1), {"dtype": jnp.int32, "value_range": (0, 10)}),
    ("Embedding masking into LSTM", lambda: fnnet.serial(fnnet.Embedding(6, 3, mask_zero=True), fnnet.LSTM(2)),
     (-1, 4), {"dtype": jnp.int32, "value_range": (0, 6)}),
    ("LSTM", lambda: fnnet.LSTM(4), (-1, -1, 3), {}),
    ("LSTM sequences, states, backwards",
     lambda: fnnet.LSTM(3, return_sequences=True, return_state=True, go_backwards=True), SEQUENCE, {}),
    ("LSTM from initial states", lambda: fnnet.LSTM(2), ((-1, 4, 3), (-1, 2), (-1, 2)), {}),
    ("GRU sequences", lambda: fnnet.GRU(3, return_sequences=True), SEQUENCE, {}),
    ("GRU reset before", lambda: fnnet.GRU(2, reset_after=False, return_state=True), SEQUENCE, {}),
    ("SimpleRNN", lambda: fnnet.SimpleRNN(3), SEQUENCE, {}),
    ("Bidirectional LSTM", lambda: fnnet.Bidirectional(fnnet.LSTM(2, return_sequences=True)), SEQUENCE, {}),
    ("Bidirectional GRU unmerged", lambda: fnnet.Bidirectional(fnnet.GRU(2), merge_mode=None), SEQUENCE, {}),
    ("TimeDistributed Dense", lambda: fnnet.TimeDistributed(fnnet.Dense(2)), SEQUENCE, {}),
    ("TimeDistributed Dropout, train", lambda: fnnet.TimeDistributed(fnnet.Dropout(0.5)), SEQUENCE, TRAIN),
]


@pytest.mark.parametrize("build, input_shape, flags", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_layer_contract(build, input_shape, flags):
    check_layer(build(), input_shape, **flags)


@settings(max_examples=3, suppress_health_check=[HealthCheck.nested_given, HealthCheck.too_slow])
@given(strategies.layer_stacks())
def test_random_stacks_in_combinators(stack):
    model = fnnet.Residual(stack, fnnet.Dense(3))
    check_layer(model, (-1, 3), max_examples=2)


# --------------------------------------------------------------------------- the protocol, for every layer

SEQ = (-1, 4, 3)
# Every registered constructor with sample arguments and an input shape: (args, kwargs, input shape).
SAMPLES = {
    "Activation": (("relu",), {}, (-1, 3)),
    "AveragePooling1D": ((2,), {}, (-1, 4, 2)),
    "AveragePooling2D": ((), {}, (-1, 4, 4, 2)),
    "AvgPool": (((2, 2),), {}, (-1, 4, 4, 2)),
    "BatchNorm": ((), {}, (-1, 3)),
    "Bidirectional": ((fnnet.LSTM(2),), {}, SEQ),
    "Conv": ((2, (2, 2)), {}, (-1, 4, 4, 2)),
    "Conv1D": ((2, 2), {}, (-1, 5, 2)),
    "Conv1DTranspose": ((2, (3,)), {}, (-1, 4, 2)),
    "Conv2D": ((2, 3), {}, (-1, 5, 5, 1)),
    "ConvTranspose": ((2, (2, 2)), {}, (-1, 3, 3, 2)),
    "Dense": ((2,), {}, (-1, 3)),
    "Dropout": ((0.5,), {}, (-1, 3)),
    "Embedding": ((5, 2), {}, (-1, 3)),
    "Ensemble": ((fnnet.Dense(2), 3), {}, (-1, 3)),
    "FanInConcat": ((), {}, ((-1, 2), (-1, 3))),
    "FanOut": ((2,), {}, (-1, 3)),
    "GRU": ((2,), {}, SEQ),
    "GeneralConv": ((("NHWC", "HWIO", "NHWC"), 2, (2, 2)), {}, (-1, 4, 4, 1)),
    "GeneralConvTranspose": ((("NHWC", "HWIO", "NHWC"), 2, (2, 2)), {}, (-1, 3, 3, 1)),
    "GlobalAveragePooling1D": ((), {}, (-1, 4, 2)),
    "GlobalAveragePooling2D": ((), {}, (-1, 4, 4, 2)),
    "GlobalMaxPooling1D": ((), {}, (-1, 4, 2)),
    "GlobalMaxPooling2D": ((), {}, (-1, 4, 4, 2)),
    "LSTM": ((2,), {}, SEQ),
    "Lambda": ((lambda x: 2 * x,), {}, (-1, 3)),
    "LayerNorm": ((), {}, (-1, 3)),
    "MaxPool": (((2, 2),), {}, (-1, 4, 4, 2)),
    "MaxPooling1D": ((2,), {}, (-1, 4, 2)),
    "MaxPooling2D": ((), {}, (-1, 4, 4, 2)),
    "Reshape": (((3, -1),), {}, (-1, 2, 3)),
    "Residual": ((fnnet.Dense(3),), {}, (-1, 3)),
    "SimpleRNN": ((2,), {}, SEQ),
    "SumPool": (((2, 2),), {}, (-1, 4, 4, 2)),
    "TimeDistributed": ((fnnet.Dense(2),), {}, SEQ),
    "elementwise": ((jnp.square,), {}, (-1, 3)),
    "parallel": ((fnnet.Dense(2), fnnet.BatchNorm()), {}, ((-1, 3), (-1, 4))),
    "serial": ((fnnet.Dense(2), fnnet.BatchNorm(), fnnet.Dropout(0.5)), {}, (-1, 3)),
    "shape_dependent": ((lambda shape: fnnet.Dense(shape[-1] * 2),), {}, (-1, 3)),
    "ReLU": ((), {"max_value": 1.0, "negative_slope": 0.1}, (-1, 3)),
    "Sequential": (([fnnet.Dense(2), fnnet.BatchNorm()],), {}, (-1, 3)),
    **{merge: ((), {}, ((-1, 3), (-1, 3))) for merge in ("Add", "Average", "Maximum", "Minimum", "Multiply",
                                                           "Subtract", "Concatenate")},
    "Dot": ((1,), {}, ((-1, 3), (-1, 3))),
}
SINGLETON_INPUTS = {"FanInSum": ((-1, 3), (-1, 3)), "Flatten": (-1, 2, 3)}


def _built_in(registry):
    # Only fnnet's own (tests and doctests may register more in the same process).
    return sorted(name for name, value in registry.items() if getattr(fnnet, name, None) is value)


def _sample(shape, integers):
    if isinstance(shape[0], tuple):
        return tuple(_sample(s, integers) for s in shape)
    concrete = tuple(2 if d == -1 else d for d in shape)
    if integers:
        return jnp.asarray(np.arange(int(np.prod(concrete))).reshape(concrete) % 5, jnp.int32)
    return jnp.asarray(np.linspace(-1, 1, int(np.prod(concrete)), dtype=np.float32).reshape(concrete))


def _protocol_cases():
    for name in _built_in(fnnet.LAYER_REGISTRY):
        args, kwargs, shape = SAMPLES[name]
        yield pytest.param(name, lambda a=args, k=kwargs, n=name: fnnet.LAYER_REGISTRY[n](*a, **k), shape, id=name)
    for name in _built_in(fnnet.SINGLETONS):
        yield pytest.param(name, lambda n=name: fnnet.SINGLETONS[n], SINGLETON_INPUTS.get(name, (-1, 3)),
                           id=name)


def test_every_built_in_constructor_has_a_sample():
    assert set(_built_in(fnnet.LAYER_REGISTRY)) <= set(SAMPLES)
    assert {"Dense", "serial", "BatchNorm"} <= set(_built_in(fnnet.LAYER_REGISTRY))
    assert {"Relu", "Flatten", "FanInSum"} <= set(_built_in(fnnet.SINGLETONS))


@pytest.mark.parametrize("name, build, input_shape", list(_protocol_cases()))
def test_protocol_of_every_built_in_layer(name, build, input_shape):
    layer = build()
    init_fun, apply_fun = layer  # stax's contract: a layer is the pair (init, apply)
    assert callable(init_fun) and callable(apply_fun)
    key = jax.random.PRNGKey(0)
    out_shape, params, state = layer.init_with_state(key, input_shape)
    assert init_fun(key, input_shape)[0] == out_shape
    x = _sample(input_shape, integers=name == "Embedding")
    for kwargs in ({}, {"train": True, "rng": key}):
        pair = layer.apply_with_state(params, state, x, **kwargs)
        assert isinstance(pair, tuple) and len(pair) == 2, f"{name}: apply_with_state must give (y, state)"
        y, new_state = pair
        assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
        if state is None or name in ("BatchNorm", "serial", "parallel"):  # BatchNorm runs without state too
            alone = layer.apply(params, x, **kwargs)
            # The outputs alone, never (y, state): the same structure and shapes as y.
            assert jax.tree_util.tree_map(jnp.shape, alone) == jax.tree_util.tree_map(jnp.shape, y), name
    if state is not None:  # state moves only in training
        _, kept = layer.apply_with_state(params, state, x, train=False)
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(state),
                                                         jax.tree_util.tree_leaves(kept)))
    with pytest.raises(TypeError, match="apply_with_state"):
        layer.apply(params, x, state=state)
    with pytest.raises(AttributeError):
        layer.name = "renamed"
    with pytest.raises(AttributeError):
        layer.anything = 1

"""to_spec / from_spec: every built-in layer round-trips exactly, and what cannot is named."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.example_libraries import stax

import fnnet
from fnnet.core import LAYER_REGISTRY, SINGLETONS

VEC, IMG, SEQ, IDS = (-1, 4), (-1, 6, 6, 2), (-1, 5, 3), (-1, 5)

# name -> (build the layer, input shape, input dtype). Arguments are chosen to exercise
# tuples, keyword arguments, callables given by identity and non-default settings.
EXAMPLES = {
    "Activation": (lambda: fnnet.Activation("gelu"), VEC, "float32"),
    "AveragePooling1D": (lambda: fnnet.AveragePooling1D(2, strides=1), SEQ, "float32"),
    "AveragePooling2D": (lambda: fnnet.AveragePooling2D((2, 2), padding="same"), IMG, "float32"),
    "AvgPool": (lambda: fnnet.AvgPool((2, 2), strides=(1, 1), padding="SAME"), IMG, "float32"),
    "BatchNorm": (lambda: fnnet.BatchNorm(momentum=0.9, epsilon=1e-3), VEC, "float32"),
    "Bidirectional": (lambda: fnnet.Bidirectional(fnnet.LSTM(3, return_sequences=True), merge_mode="sum"),
                      SEQ, "float32"),
    "Conv": (lambda: fnnet.Conv(3, (2, 2), strides=(1, 1), padding="SAME", W_init="he_normal"), IMG, "float32"),
    "Conv1D": (lambda: fnnet.Conv1D(3, 2, activation="relu"), SEQ, "float32"),
    "Conv1DTranspose": (lambda: fnnet.Conv1DTranspose(2, (3,)), SEQ, "float32"),
    "Conv2D": (lambda: fnnet.Conv2D(3, (2, 3), strides=2, padding="same", activation=jax.nn.relu), IMG, "float32"),
    "ConvTranspose": (lambda: fnnet.ConvTranspose(2, (2, 2), strides=(2, 2)), IMG, "float32"),
    "Dense": (lambda: fnnet.Dense(3, fnnet.INITIALIZERS["lecun_normal"], activation="tanh", use_bias=False),
              VEC, "float32"),
    "Dropout": (lambda: fnnet.Dropout(0.25), VEC, "float32"),
    "Embedding": (lambda: fnnet.Embedding(10, 3, mask_zero=True), IDS, "int32"),
    "Ensemble": (lambda: fnnet.Ensemble(fnnet.serial(fnnet.Dense(2), fnnet.Relu), 2, reduce="mean"), VEC, "float32"),
    "FanInConcat": (lambda: fnnet.FanInConcat(axis=-1), ((-1, 4), (-1, 2)), "float32"),
    "FanOut": (lambda: fnnet.FanOut(3), VEC, "float32"),
    "GRU": (lambda: fnnet.GRU(3, return_sequences=True, reset_after=False), SEQ, "float32"),
    "GeneralConv": (lambda: fnnet.GeneralConv(("NCHW", "OIHW", "NCHW"), 2, (3, 3), padding="SAME"),
                    (-1, 2, 6, 6), "float32"),
    "GeneralConvTranspose": (lambda: fnnet.GeneralConvTranspose(("NHWC", "HWIO", "NHWC"), 2, (2, 2), strides=(2, 2)),
                             IMG, "float32"),
    "GlobalAveragePooling1D": (fnnet.GlobalAveragePooling1D, SEQ, "float32"),
    "GlobalAveragePooling2D": (fnnet.GlobalAveragePooling2D, IMG, "float32"),
    "GlobalMaxPooling1D": (fnnet.GlobalMaxPooling1D, SEQ, "float32"),
    "GlobalMaxPooling2D": (fnnet.GlobalMaxPooling2D, IMG, "float32"),
    "LSTM": (lambda: fnnet.LSTM(3, return_state=True, unroll=2), SEQ, "float32"),
    "Lambda": (lambda: fnnet.Lambda(jnp.tanh, name="squash"), VEC, "float32"),
    "LayerNorm": (lambda: fnnet.LayerNorm(epsilon=1e-4), VEC, "float32"),
    "ReLU": (lambda: fnnet.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2), VEC, "float32"),
    "MaxPool": (lambda: fnnet.MaxPool((2, 2)), IMG, "float32"),
    "MaxPooling1D": (lambda: fnnet.MaxPooling1D(2, padding="same"), SEQ, "float32"),
    "MaxPooling2D": (lambda: fnnet.MaxPooling2D((3, 3), strides=1), IMG, "float32"),
    "Reshape": (lambda: fnnet.Reshape((2, 2)), VEC, "float32"),
    "Residual": (lambda: fnnet.Residual(fnnet.Dense(4), fnnet.Relu), VEC, "float32"),
    "SimpleRNN": (lambda: fnnet.SimpleRNN(3, go_backwards=True), SEQ, "float32"),
    "SumPool": (lambda: fnnet.SumPool((2, 2), strides=(2, 2)), IMG, "float32"),
    "TimeDistributed": (lambda: fnnet.TimeDistributed(fnnet.Dense(2)), SEQ, "float32"),
    "elementwise": (lambda: fnnet.elementwise(jax.nn.leaky_relu, negative_slope=0.2), VEC, "float32"),
    "parallel": (lambda: fnnet.parallel(fnnet.Dense(2), fnnet.Identity), ((-1, 4), (-1, 3)), "float32"),
    "serial": (lambda: fnnet.serial(fnnet.Dense(3), fnnet.Relu, fnnet.Dense(1)), VEC, "float32"),
    "Sequential": (lambda: fnnet.Sequential([fnnet.Input((4,)), fnnet.Dense(3), fnnet.Relu], name="seq"),
                   VEC, "float32"),
    # Merge layers (fnnet/layers/merge.py).
    **{name: ((lambda name=name: getattr(fnnet, name)()), ((-1, 4), (-1, 4)), "float32")
       for name in ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]},
    "Concatenate": (lambda: fnnet.Concatenate(axis=1), ((-1, 2, 3), (-1, 4, 3)), "float32"),
    "Dot": (lambda: fnnet.Dot(axes=(2, 2), normalize=True), ((-1, 2, 3), (-1, 4, 3)), "float32"),
    # Ready-made layers.
    "FanInSum": (lambda: fnnet.FanInSum, ((-1, 4), (-1, 4)), "float32"),
    "Flatten": (lambda: fnnet.Flatten, IMG, "float32"),
    **{name: ((lambda name=name: getattr(fnnet, name)), VEC, "float32")
       for name in ["Elu", "Exp", "Gelu", "Identity", "LeakyRelu", "LogSoftmax", "Relu", "Selu", "Sigmoid",
                    "Softmax", "Softplus", "Tanh"]},
}
# Built-ins whose arguments are arbitrary functions by design: to_spec must refuse them.
NOT_SERIALISABLE = {"shape_dependent": lambda: fnnet.shape_dependent(lambda shape: fnnet.Dense(shape[-1]))}


def built_in_names():
    constructors = {n for n, c in LAYER_REGISTRY.items() if getattr(fnnet, n, None) is c}
    ready_made = {n for n, layer in SINGLETONS.items() if getattr(fnnet, n, None) is layer}
    return constructors | ready_made


def random_inputs(shape, dtype, seed=0):
    gen = np.random.default_rng(seed)
    if all(isinstance(d, int) for d in shape):
        concrete = tuple(2 if d == -1 else d for d in shape)
        if dtype == "int32":
            return jnp.asarray(gen.integers(0, 10, size=concrete), jnp.int32)
        return jnp.asarray(gen.uniform(-2, 2, size=concrete), jnp.float32)
    return tuple(random_inputs(s, dtype, seed + i) for i, s in enumerate(shape))


def run(model, params, state, x):
    """Outputs and new state in training mode (Dropout and BatchNorm statistics in play)."""
    return model.apply_with_state(params, state, x, train=True, rng=jax.random.PRNGKey(7))


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_every_built_in_layer_has_a_round_trip_example():
    missing = built_in_names() - set(EXAMPLES) - set(NOT_SERIALISABLE)
    assert not missing, f"add round-trip examples for {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_spec_and_whole_model_round_trip(name, tmp_path):
    build, shape, dtype = EXAMPLES[name]
    layer = build()
    assert layer.spec[0] == name
    spec = fnnet.to_spec(layer)
    text = json.dumps(spec, allow_nan=False)
    rebuilt = fnnet.from_spec(json.loads(text))
    assert fnnet.to_spec(rebuilt) == spec

    _, params, state = layer.init_with_state(jax.random.PRNGKey(1), shape)
    _, params_rebuilt, state_rebuilt = rebuilt.init_with_state(jax.random.PRNGKey(1), shape)
    assert_trees_equal(params, params_rebuilt)  # same initialisers, same structure
    assert_trees_equal(state, state_rebuilt)

    # The loaded model is built by from_spec too: one comparison of outputs covers both.
    fnnet.save_model(tmp_path / name, layer, params, state, input_shape=shape)
    loaded, loaded_params, loaded_state = fnnet.load_model(tmp_path / name)
    assert fnnet.to_spec(loaded) == spec
    assert_trees_equal(loaded_params, params)
    x = random_inputs(shape, dtype)
    assert_trees_equal(run(loaded, loaded_params, loaded_state, x), run(layer, params, state, x))


@pytest.mark.parametrize("name", sorted(NOT_SERIALISABLE))
def test_function_arguments_are_refused(name):
    with pytest.raises(fnnet.SpecError, match=name):
        fnnet.to_spec(fnnet.serial(fnnet.Dense(2), NOT_SERIALISABLE[name]()))


# ------------------------------------------------------------------ clear refusals

def test_raw_stax_layer_is_named_by_its_path():
    model = fnnet.serial(fnnet.Dense(3), fnnet.Relu, stax.Dense(2))
    with pytest.raises(fnnet.SpecError, match=r"^serial\[2\]: a raw stax") as err:
        fnnet.to_spec(model)
    assert err.value.path == "serial[2]"


def test_layer_without_constructor_is_named_with_its_path():
    unregistered = fnnet.layer("Scale", lambda params, x: 2 * x)
    model = fnnet.serial(fnnet.Dense(3), fnnet.serial(fnnet.Relu, unregistered))
    with pytest.raises(fnnet.SpecError, match=r"serial\[1\]/serial\[1\]: layer Scale has no spec"):
        fnnet.to_spec(model)


def test_lambda_activation_names_layer_and_argument():
    model = fnnet.serial(fnnet.Dense(3), fnnet.Dense(2, activation=lambda x: x * 2))
    with pytest.raises(fnnet.SpecError, match=r"serial\[1\]: argument 'activation' of Dense is the callable "
                                              r"\S*<lambda>"):
        fnnet.to_spec(model)


def test_lambda_layer_names_positional_argument():
    with pytest.raises(fnnet.SpecError, match=r"positional argument 0 of Lambda is the callable .*<lambda>"):
        fnnet.to_spec(fnnet.serial(fnnet.Lambda(lambda x: x[:, 0])))


def test_unnamed_initializer_instance_is_refused():
    # A fresh glorot_uniform() is a new closure, not the registered one: no name maps to it.
    with pytest.raises(fnnet.SpecError, match="argument 'W_init' of Dense"):
        fnnet.to_spec(fnnet.Dense(3, W_init=jax.nn.initializers.glorot_uniform()))


def test_unknown_class_is_named_with_its_path():
    spec = fnnet.to_spec(fnnet.serial(fnnet.Dense(3), fnnet.Relu))
    spec["args"][1]["layer"]["class"] = "NoSuchLayer"
    with pytest.raises(fnnet.SpecError, match=r"serial\[1\]: unknown layer 'NoSuchLayer'"):
        fnnet.from_spec(spec)


def test_bad_arguments_are_reported_with_the_constructor():
    spec = fnnet.to_spec(fnnet.serial(fnnet.Dropout(0.5)))
    spec["args"][0]["layer"]["args"] = [1.5]
    with pytest.raises(fnnet.SpecError, match=r"serial\[0\]: Dropout\(...\) failed: Dropout rate must be"):
        fnnet.from_spec(spec)


def test_unknown_activation_name_in_spec():
    spec = fnnet.to_spec(fnnet.Dense(2, activation=jax.nn.relu))
    spec["kwargs"]["activation"] = {"activation": "nope"}
    with pytest.raises(fnnet.SpecError, match="unknown activation 'nope'"):
        fnnet.from_spec(spec)


# ------------------------------------------------------------------ user layers, exact values

@fnnet.register_layer("tests.Probe")
def Probe(*args, **kwargs):
    """A user layer that records whatever it is given (the identity on inputs)."""
    return fnnet.layer("Probe", lambda params, x: x)


@fnnet.register_layer("tests.Scale")
def Scale(factor, init="ones"):
    init_fn = fnnet.get_initializer(init)
    return fnnet.layer("Scale", lambda params, x: factor * params["s"] * x,
                       lambda rng, shape: {"s": init_fn(rng, shape[-1:], jnp.float32)})


def same_typed(a, b):
    """Equal, with tuples, lists, ints, floats and bools told apart (``==`` conflates them)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_typed(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_typed(a[k], b[k]) for k in a)
    return a == b


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)


@given(args=st.lists(json_values, max_size=3).map(tuple), kwargs=st.dictionaries(
    st.sampled_from(["a", "b", "tuple", "layer", "class"]), json_values, max_size=3))
def test_argument_values_round_trip_with_exact_types(args, kwargs):
    layer = Probe(*args, **kwargs)
    spec = fnnet.to_spec(layer)
    rebuilt = fnnet.from_spec(json.loads(json.dumps(spec)))
    assert same_typed(rebuilt.spec[1], layer.spec[1])
    assert same_typed(rebuilt.spec[2], layer.spec[2])
    assert fnnet.to_spec(rebuilt) == spec


def test_user_layer_round_trips_inside_combinators():
    model = fnnet.serial(fnnet.Dense(3), fnnet.Residual(Scale(0.5, init="normal")), Scale(2.0))
    spec = fnnet.to_spec(model)
    rebuilt = fnnet.from_spec(json.dumps(spec))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    x = jnp.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(rebuilt.apply(params, x), model.apply(params, x))


def test_numpy_scalars_become_python_numbers():
    spec = fnnet.to_spec(fnnet.Dense(np.int64(3)))
    assert spec["args"] == [3] and type(spec["args"][0]) is int
    assert fnnet.from_spec(spec).init(jax.random.PRNGKey(0), (-1, 2))[0] == (-1, 3)


def test_callables_map_back_to_their_registered_names():
    spec = fnnet.to_spec(fnnet.Dense(2, fnnet.INITIALIZERS["orthogonal"], activation=jnp.tanh))
    assert spec["args"][1] == {"initializer": "orthogonal"}
    assert spec["kwargs"]["activation"] == {"activation": "tanh"}
    rebuilt = fnnet.from_spec(spec)
    assert rebuilt.spec[1][1] is fnnet.INITIALIZERS["orthogonal"]
    assert rebuilt.spec[2]["activation"] is fnnet.ACTIVATIONS["tanh"]


def test_ready_made_layers_come_back_as_themselves():
    rebuilt = fnnet.from_spec(fnnet.to_spec(fnnet.serial(fnnet.Relu, fnnet.Flatten)))
    assert [layer for _, layer in rebuilt.children] == [fnnet.Relu, fnnet.Flatten]
    # Parameterless layers have no entry in the params: the model's params are {}.
    assert math.isclose(float(rebuilt.apply({}, jnp.array([[-1.0, 2.0]]))[0, 1]), 2.0)


# ------------------------------------------------------------------ names and the walker

def test_explicit_names_round_trip_and_keep_the_param_keys():
    model = fnnet.serial(fnnet.Dense(4, name="encoder"), fnnet.Relu.with_name("act"), fnnet.Dense(4),
                         fnnet.serial(fnnet.Dense(2), name="head"))
    spec = fnnet.to_spec(model)
    assert spec["args"][0]["layer"]["kwargs"] == {"name": "encoder"}
    assert spec["args"][1]["layer"] == {"class": "Relu", "args": [], "kwargs": {"name": "act"}}
    rebuilt = fnnet.from_spec(json.loads(json.dumps(spec)))
    assert [key for key, _ in rebuilt.children] == ["encoder", "act", "dense", "head"]
    assert rebuilt.children[0][1].name == "encoder" and rebuilt.children[1][1].name == "act"
    _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    _, rebuilt_params = rebuilt.init(jax.random.PRNGKey(0), (-1, 3))
    assert fnnet.tree_paths(rebuilt_params) == fnnet.tree_paths(params)
    assert sorted(params) == ["dense", "encoder", "head"]


def test_to_spec_reads_the_model_through_the_walker(monkeypatch):
    calls = []
    real = fnnet.core._walk_model

    def counting(model, input_shape, rng):
        calls.append(input_shape)
        return real(model, input_shape, rng)

    monkeypatch.setattr(fnnet.core, "_walk_model", counting)
    fnnet.to_spec(fnnet.serial(fnnet.Dense(3), fnnet.Residual(fnnet.Dense(3)), fnnet.Relu))
    assert calls == [None]  # one structure-only walk of the whole model


def test_layer_registered_under_a_plain_name_round_trips():
    @fnnet.registered("Scale")
    def PlainScale(factor):
        return fnnet.layer("Scale", lambda params, x: factor * params["s"] * x,
                           lambda rng, shape: {"s": jnp.full(shape[-1:], 2.0)})

    try:
        model = fnnet.serial(fnnet.Dense(2), PlainScale(3.0, name="scaled"))
        spec = fnnet.to_spec(model)
        assert spec["args"][1]["layer"] == {"class": "Scale", "args": [3.0], "kwargs": {"name": "scaled"}}
        rebuilt = fnnet.from_spec(json.dumps(spec))
        _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
        assert sorted(params) == ["dense", "scaled"]
        x = jnp.ones((2, 2))
        np.testing.assert_array_equal(rebuilt.apply(params, x), model.apply(params, x))
    finally:
        del LAYER_REGISTRY["Scale"]


def graph_with_shared_layer():
    num, ids = fnnet.Input((3,), name="num"), fnnet.Input((4,), dtype="int32", name="ids")
    shared = fnnet.Dense(3, activation="tanh")
    a = shared(num)
    b = shared(fnnet.Dense(3)(fnnet.Flatten(fnnet.Embedding(9, 2)(ids))))
    out = fnnet.Dense(2, name="head")(fnnet.Concatenate()([a, b]))
    return fnnet.Model({"num": num, "ids": ids}, {"head": out, "shared": b}, name="graph")


def test_graph_spec_round_trips_as_json_with_its_shared_layer_and_names():
    model = graph_with_shared_layer()
    spec = fnnet.to_spec(model)
    assert spec["class"] == "Model" and sorted(spec["graph"]["layers"]) == ["concatenate", "dense", "dense_1",
                                                                            "embedding", "flatten", "head"]
    rebuilt = fnnet.from_spec(json.dumps(spec))
    assert isinstance(rebuilt, fnnet.Model) and rebuilt.name == "graph" and fnnet.to_spec(rebuilt) == spec
    assert rebuilt.input_shape == model.input_shape and rebuilt.output_names == model.output_names
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    x = {"num": jnp.ones((2, 3)), "ids": jnp.array([[1, 2, 3, 4], [0, 0, 5, 8]])}
    assert_trees_equal(model.apply(params, x), rebuilt.apply(params, x))


def test_graph_inside_serial_round_trips():
    x = fnnet.Input((3,))
    block = fnnet.Model(x, fnnet.Dense(2)(x), name="block")
    model = fnnet.serial(block, fnnet.Relu)
    rebuilt = fnnet.from_spec(fnnet.to_spec(model))
    assert fnnet.to_spec(rebuilt) == fnnet.to_spec(model)
    assert sorted(rebuilt.init(jax.random.PRNGKey(0), (-1, 3))[1]) == ["block"]


def test_graph_spec_with_a_layer_without_spec_names_its_key():
    x = fnnet.Input((3,))
    model = fnnet.Model(x, fnnet.layer("Custom", lambda p, v: v)(x), name="m")
    with pytest.raises(fnnet.SpecError, match=r"Model\[custom\].*has no spec"):
        fnnet.to_spec(model)


# ------------------------------------------------------------------ issue 20: specs are untrusted data

@pytest.mark.parametrize("spec, message", [
    ({"class": "serial", "kwargs": [1]}, "'kwargs' is list, expected an object"),
    ({"class": "serial", "args": {"a": 1}}, "'args' is dict, expected a list"),
    ({"class": ["Dense"]}, "not a layer name"),
    ({"class": "Reshape", "args": [{"tuple": 5}]}, "'tuple' holds int, expected list"),
    ({"class": "Dense", "args": [-2]}, r"Dense\(\.\.\.\) failed: Dense: units must be a positive integer"),
    ("[", "not valid JSON"),
    ('{"class": "serial", "args": [{"layer": ' * 50_000 + '{"class": "Relu"}' + "}]}" * 50_000, "too deeply"),
])
def test_issue20_malformed_specs_raise_spec_errors(spec, message):
    # Issue 20, defect 8: kwargs as a list raised AttributeError, bad JSON a JSONDecodeError.
    with pytest.raises(fnnet.SpecError, match=message):
        fnnet.from_spec(spec)

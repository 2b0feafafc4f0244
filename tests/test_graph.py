"""Functional graphs (fnnet/graph.py): Input, layers called on tensors, Model and Sequential."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.testing import check_layer

VOCAB, IDS, FEATURES = 12, 5, 3


def two_branch_model():
    """Numeric features and ids (through an Embedding), one Dense shared by both branches, two outputs."""
    num = fnnet.Input((FEATURES,), name="num")
    ids = fnnet.Input((IDS,), dtype="int32", name="ids")
    embedded = fnnet.Flatten(fnnet.Embedding(VOCAB, 2)(ids))
    shared = fnnet.Dense(8, activation="tanh")
    from_num = shared(num)
    from_ids = shared(fnnet.Dense(FEATURES)(embedded))
    joined = fnnet.Concatenate()([from_num, from_ids])
    price = fnnet.Dense(1, name="price")(joined)
    kind = fnnet.Dense(3, activation="softmax", name="kind")(joined)
    return fnnet.Model([num, ids], [price, kind], name="shop"), shared


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, FEATURES)).astype(np.float32)
    ids = rng.integers(0, VOCAB, (n, IDS)).astype(np.int32)
    price = (num.sum(1, keepdims=True) + 0.1 * (ids[:, :1] % 3)).astype(np.float32)
    kind = (ids[:, 0] % 3).astype(np.int32)
    return [num, ids], {"price": price, "kind": kind}


# ------------------------------------------------------------------ building and running

def test_calling_a_layer_on_tensors_records_a_node_with_its_shape():
    x = fnnet.Input((4,), name="x")
    y = fnnet.Dense(3)(x)
    assert isinstance(y, fnnet.SymbolicTensor) and y.shape == (-1, 3)
    assert x.shape == (-1, 4) and x.dtype == "float32" and y.layer.name == "dense"


def test_calling_a_layer_on_arrays_still_says_it_is_already_a_layer():
    with pytest.raises(TypeError, match="already a layer"):
        fnnet.Dense(3)(jnp.ones((2, 4)))
    assert fnnet.Relu() is fnnet.Relu


def test_shared_layer_has_one_set_of_params_and_both_branches_use_it():
    model, shared = two_branch_model()
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    assert sorted(params) == ["dense", "dense_1", "embedding", "kind", "price"]
    assert [key for key, layer in model.children if layer is shared] == ["dense"]
    (num, ids), _ = data(4)
    # The shared kernel is used twice: zeroing it changes both branches.
    zeroed = {**params, "dense": jax.tree_util.tree_map(jnp.zeros_like, params["dense"])}
    price, _ = model.apply(zeroed, [num, ids])
    np.testing.assert_allclose(np.asarray(price), np.broadcast_to(np.asarray(params["price"]["bias"]), (4, 1)))


def test_shared_layer_init_is_recorded_once_in_the_walk():
    model, shared = two_branch_model()
    root = fnnet.walk(model, model.input_shape)
    assert [n.key for n in root.children].count("dense") == 1
    assert sum(1 for n in root.nodes() if n.layer is shared) == 1


def test_inputs_as_list_or_dict_and_outputs_in_the_given_structure():
    model, _ = two_branch_model()
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    (num, ids), _ = data(4)
    by_list = model.apply(params, [num, ids])
    by_dict = model.apply(params, {"ids": ids, "num": num})
    assert isinstance(by_list, list) and [o.shape for o in by_list] == [(4, 1), (4, 3)]
    for a, b in zip(by_list, by_dict):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = fnnet.Input((2,), name="x")
    h = fnnet.Dense(2)(x)
    named = fnnet.Model({"x": x}, {"a": fnnet.Relu(h), "b": fnnet.Tanh(h)})
    _, p = named.init(jax.random.PRNGKey(0), named.input_shape)
    out = named.apply(p, {"x": jnp.ones((1, 2))})
    assert sorted(out) == ["a", "b"] and named.output_names == ["a", "b"]


def test_model_output_equals_the_same_computation_written_by_hand():
    model, _ = two_branch_model()
    _, p = model.init(jax.random.PRNGKey(1), model.input_shape)
    (num, ids), _ = data(6)
    dense = lambda q, v: v @ q["kernel"] + q["bias"]
    embedded = np.asarray(p["embedding"]["embeddings"])[ids].reshape(6, -1)
    a = np.tanh(dense(p["dense"], num))
    b = np.tanh(dense(p["dense"], dense(p["dense_1"], embedded)))
    joined = np.concatenate([a, b], axis=1)
    price, kind = model.apply(p, [num, ids])
    np.testing.assert_allclose(np.asarray(price), dense(p["price"], joined), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(kind), jax.nn.softmax(dense(p["kind"], joined)), rtol=1e-5, atol=1e-6)


def test_default_keys_follow_first_call_order_and_explicit_names_win():
    x = fnnet.Input((2,))
    first, second = fnnet.Dense(2), fnnet.Dense(2)
    y = first(second(x))  # second is called first
    model = fnnet.Model(x, y)
    assert [(k, l) for k, l in model.children] == [("dense", second), ("dense_1", first)]


def test_sharing_is_by_identity_not_equality():
    x = fnnet.Input((2,))
    a, b = fnnet.Dense(2), fnnet.Dense(2)
    model = fnnet.Model(x, fnnet.Add()([a(x), b(x)]))
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    assert sorted(params) == ["dense", "dense_1"]


def test_init_checks_the_given_shape_against_the_inputs():
    model, _ = two_branch_model()
    shape, _ = model.init(jax.random.PRNGKey(0), ((None, FEATURES), (None, IDS)))
    assert shape == ((-1, 1), (-1, 3))
    with pytest.raises(fnnet.LayerError, match=r"input 'num' was declared with shape \(None, 3\)"):
        model.init(jax.random.PRNGKey(0), ((-1, 4), (-1, IDS)))
    with pytest.raises(fnnet.LayerError, match="expected 2 input shapes"):
        model.init(jax.random.PRNGKey(0), (-1, FEATURES))


def test_errors_name_the_model_node_and_its_input():
    x = fnnet.Input((3,), name="x")
    h = fnnet.Dense(4)(fnnet.Concatenate()([x, x]))
    model = fnnet.Model(x, fnnet.Dense(1)(h), name="m")
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    wrong = {**params, "dense": {"kernel": jnp.ones((5, 4)), "bias": jnp.ones(4)}}
    with pytest.raises(fnnet.LayerError, match=r"Model\[.m.\]/dense called on concatenate/Dense\(4\): .*last dimension is 5"):
        model.apply(wrong, jnp.ones((2, 3)))
    with pytest.raises(fnnet.LayerError, match=r"input 'x' was declared with shape \(None, 3\), got \(2, 4\)"):
        model.apply(params, jnp.ones((2, 4)))


def test_construction_errors_name_the_call():
    x = fnnet.Input((3,))
    with pytest.raises(fnnet.LayerError, match=r"concatenate called on input_layer, reshape:0.*one rank"):
        fnnet.Concatenate()([x, fnnet.Reshape((3, 1))(x)])


def test_outputs_must_depend_only_on_the_inputs_given():
    a, b = fnnet.Input((2,), name="a"), fnnet.Input((2,), name="b")
    with pytest.raises(ValueError, match="Input 'b'.*not among inputs"):
        fnnet.Model(a, fnnet.Add()([a, b]))


def test_several_positional_tensors_arrive_as_a_tuple_and_keyword_tensors_as_keywords():
    def apply(params, inputs, scale=None):
        query, value = inputs
        return query * value if scale is None else query * value * scale

    pair = fnnet.layer("Pair", apply)
    q, v, s = fnnet.Input((3,)), fnnet.Input((3,)), fnnet.Input((3,))
    model = fnnet.Model([q, v, s], pair(q, v, scale=s))
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    out = model.apply(params, [jnp.full((1, 3), 2.0), jnp.full((1, 3), 3.0), jnp.full((1, 3), 5.0)])
    assert out.tolist() == [[30.0, 30.0, 30.0]]


def test_masks_travel_through_the_graph():
    ids = fnnet.Input((4,), dtype="int32")
    emb = fnnet.Embedding(10, 3, mask_zero=True)(ids)
    model = fnnet.Model(ids, fnnet.LSTM(2)(emb))
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    padded = model.apply(params, jnp.array([[3, 4, 0, 0]]))
    short = fnnet.serial(fnnet.Embedding(10, 3, mask_zero=True), fnnet.LSTM(2)).apply(
        {"embedding": params["embedding"], "lstm": params["lstm"]}, jnp.array([[3, 4]]))
    np.testing.assert_allclose(np.asarray(padded), np.asarray(short), rtol=1e-5)


def test_stateful_shared_layer_threads_its_state_through_both_calls():
    x = fnnet.Input((2,))
    bn = fnnet.BatchNorm()
    model = fnnet.Model(x, bn(bn(x)))
    _, params, state = model.init_with_state(jax.random.PRNGKey(0), model.input_shape)
    _, new_state = model.apply_with_state(params, state, jnp.arange(8.0).reshape(4, 2), train=True)
    assert sorted(new_state) == ["batch_norm"]
    assert not np.allclose(np.asarray(new_state["batch_norm"]["mean"]), np.asarray(state["batch_norm"]["mean"]))


# ------------------------------------------------------------------ a Model is a layer

def test_model_keeps_the_layer_contract():
    x = fnnet.Input((3,))
    shared = fnnet.Dense(3, activation="tanh")
    model = fnnet.Model(x, fnnet.Add()([shared(x), shared(shared(x))]))
    check_layer(model, (-1, 3), max_examples=5)


def test_model_inside_serial_and_in_an_ensemble():
    x = fnnet.Input((3,))
    block = fnnet.Model(x, fnnet.Dense(4)(x), name="block")
    model = fnnet.serial(block, fnnet.Relu, fnnet.Dense(1))
    shape, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    assert shape == (-1, 1) and sorted(params) == ["block", "dense"]
    ensemble = fnnet.Ensemble(block, 2)
    shape, eparams = ensemble.init(jax.random.PRNGKey(0), (-1, 3))
    assert ensemble.apply(eparams, jnp.ones((2, 3))).shape[-1] == 4


def test_with_name_keeps_the_graph_and_its_params():
    model, _ = two_branch_model()
    renamed = model.with_name("other")
    assert renamed.name == "other" and isinstance(renamed, fnnet.Model)
    assert renamed.init(jax.random.PRNGKey(0), renamed.input_shape)[1].keys() == \
        model.init(jax.random.PRNGKey(0), model.input_shape)[1].keys()


# ------------------------------------------------------------------ the whole story

def test_two_input_two_output_model_built_summarised_drawn_trained_saved_reloaded(tmp_path):
    model, _ = two_branch_model()
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    assert fnnet.count_params(params["dense"]) == FEATURES * 8 + 8  # the shared layer, once

    table = fnnet.summary(model)
    assert "Connected to" in table
    shared_row = next(line for line in table.splitlines() if line.startswith("dense (Dense(8"))
    assert shared_row.rstrip().endswith("num; dense_1")
    assert f"Total params: {fnnet.count_params(params):,}" in table

    diagram = fnnet.model_diagram(model)
    by_layer = {n.path: n.id for n in diagram.nodes}
    assert [n.path for n in diagram.nodes].count("dense") == 1
    assert sorted(src for src, dst in diagram.edges if dst == by_layer["dense"]) == sorted(
        [by_layer["num"], by_layer["dense_1"]])
    assert fnnet.plot_model(model).count('class="node"') == len(diagram.nodes)

    x, y = data()
    result = fnnet.fit(model, params, x, y, loss={"price": "mse", "kind": "sparse_categorical_crossentropy"},
                       loss_weights={"price": 1.0, "kind": 0.5}, metrics={"kind": ["accuracy"]},
                       optimizer="adam", epochs=4, batch_size=16, validation_split=0.25, verbose=0)
    h = result.history
    assert {"loss", "price_loss", "kind_loss", "kind_accuracy", "val_loss", "val_price_loss",
            "val_kind_accuracy"} <= set(h)
    np.testing.assert_allclose(h["loss"][-1], h["price_loss"][-1] + 0.5 * h["kind_loss"][-1], rtol=1e-4)
    assert h["loss"][-1] < h["loss"][0]

    folder = fnnet.save_model(tmp_path / "shop", model, result.params)  # no input_shape: the model knows it
    assert fnnet.saved_input_shape(folder) == model.input_shape
    loaded, params2, _ = fnnet.load_model(folder)
    assert isinstance(loaded, fnnet.Model) and fnnet.to_spec(loaded) == fnnet.to_spec(model)
    for a, b in zip(model.apply(result.params, x), loaded.apply(params2, x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    rebuilt = fnnet.from_spec(json.dumps(fnnet.to_spec(model)))
    for a, b in zip(model.apply(result.params, x), rebuilt.apply(result.params, x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------ Sequential and the tutorial

def test_tutorial_sequential_mlp():
    # The tutorial's model.add(...) calls, as a list (models are values: no add).
    model = fnnet.Sequential([fnnet.Input((78,)), fnnet.Dense(400, activation="relu"),
                              fnnet.Dense(200, activation="relu"), fnnet.Dense(1, activation="linear")])
    assert model.input_shape == (-1, 78)
    rows = fnnet.summary_rows(model, model.input_shape)
    assert [r.trainable for r in rows] == [31600, 80200, 201]  # not the tutorial's 352,400 / 8,200
    classifier = fnnet.Sequential([fnnet.Dense(100), fnnet.Activation("relu"), fnnet.Dense(1),
                                   fnnet.Activation("sigmoid")])
    shape, params = classifier.init(jax.random.PRNGKey(0), (-1, 7))
    assert shape == (-1, 1) and sorted(params) == ["dense", "dense_1"]


def test_sequential_is_serial_params_per_position_and_extends_from_layers():
    dense = fnnet.Dense(3)
    seq = fnnet.Sequential([dense, dense])  # stax's rule: two positions, two sets of params
    _, params = seq.init(jax.random.PRNGKey(0), (-1, 3))
    assert sorted(params) == ["dense", "dense_1"]
    longer = fnnet.Sequential([*seq.layers, fnnet.Dense(1)], name="longer")
    assert longer.name == "longer" and len(longer.layers) == 3
    init_fun, apply_fun = longer  # still a stax pair
    assert init_fun(jax.random.PRNGKey(0), (-1, 3))[0] == (-1, 1)
    with pytest.raises(fnnet.LayerError, match="declared with shape"):
        fnnet.Sequential([fnnet.Input((3,)), fnnet.Dense(1)]).init(jax.random.PRNGKey(0), (-1, 4))
    spec = fnnet.to_spec(fnnet.Sequential([fnnet.Input((3,)), dense], name="s"))
    again = fnnet.from_spec(spec)
    assert again.input_shape == (-1, 3) and again.name == "s" and fnnet.to_spec(again) == spec


SEQUENCE_LENGTH, WORDS, CLASSES = 6, 30, 4


def test_tutorial_functional_sentiment_model_refuses_time_distributed_on_the_lstm_vector():
    inputs = fnnet.Input(shape=(SEQUENCE_LENGTH,), dtype="int32")
    embeddings = fnnet.Embedding(input_dim=WORDS, output_dim=8)(inputs)
    lstm_layer = fnnet.LSTM(units=5)(embeddings)
    with pytest.raises(fnnet.LayerError, match="time"):
        fnnet.TimeDistributed(fnnet.Dense(CLASSES))(lstm_layer)


def test_tutorial_functional_sentiment_model_corrected_trains():
    inputs = fnnet.Input(shape=(SEQUENCE_LENGTH,), dtype="int32")
    embeddings = fnnet.Embedding(input_dim=WORDS, output_dim=8)(inputs)
    lstm_layer = fnnet.LSTM(units=5)(embeddings)
    dense = fnnet.Dense(CLASSES)(lstm_layer)  # the fix: no time axis left, so a plain Dense
    outputs = fnnet.Activation("softmax")(dense)
    model = fnnet.Model(inputs=inputs, outputs=outputs)
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, WORDS, (64, SEQUENCE_LENGTH)).astype(np.int32)
    labels = np.eye(CLASSES, dtype=np.float32)[ids[:, 0] % CLASSES]
    result = fnnet.fit(model, params, ids, labels, loss="categorical_crossentropy", optimizer="adam",
                       metrics=["accuracy"], epochs=3, batch_size=16, verbose=0)
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert set(result.history) == {"loss", "accuracy"}


def test_readme_functional_example_runs(tmp_path):
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Functional models"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1).replace("/tmp/shop_model", str(tmp_path / "m"))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert fnnet.saved_input_shape(tmp_path / "m") == ((-1, 3), (-1, 5))
    assert "val_kind_accuracy" in namespace["result"].history


def test_surgery_on_a_serial_holding_a_model_keeps_the_model_params():
    x = fnnet.Input((3,))
    shared = fnnet.Dense(3)
    block = fnnet.Model(x, shared(shared(x)), name="block")
    model = fnnet.serial(block, fnnet.Dense(1))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    new_model, new_params, _ = fnnet.insert_layer(model, params, 1, fnnet.Relu, (-1, 3), jax.random.PRNGKey(1))
    jax.tree_util.tree_map(np.testing.assert_array_equal, new_params["block"], params["block"])
    out = new_model.apply(new_params, jnp.ones((2, 3)))
    hidden = jax.nn.relu(block.apply(params["block"], jnp.ones((2, 3))))
    np.testing.assert_allclose(np.asarray(out), np.asarray(hidden @ params["dense"]["kernel"] + params["dense"]["bias"]),
                               rtol=1e-6)

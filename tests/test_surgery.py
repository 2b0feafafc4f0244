"""Layer surgery: unchanged layers keep their params bit for bit; new layers fit their input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnnet

KEY = jax.random.PRNGKey(0)


def mlp():
    model = fnnet.serial(fnnet.Dense(6), fnnet.Relu, fnnet.Dense(4), fnnet.Relu, fnnet.Dense(1))
    _, params = model.init(KEY, (-1, 3))
    return model, params


def assert_same_arrays(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        # Bit for bit: compare the raw bytes, so even NaN payloads or -0.0 would count.
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_insert_moves_later_params_to_their_new_keys():
    model, params = mlp()
    new_model, new_params = fnnet.insert_layer(model, params, 2, fnnet.Dropout(0.5), (-1, 3), KEY)
    assert [k for k, _ in new_model.children] == ["dense_0", "relu_1", "dropout_2", "dense_3", "relu_4", "dense_5"]
    assert new_params["dense_0"] is params["dense_0"]
    assert new_params["dense_3"] is params["dense_2"] and new_params["dense_5"] is params["dense_4"]
    x = jnp.ones((2, 3))
    np.testing.assert_array_equal(new_model.apply(new_params, x), model.apply(params, x))  # Dropout off


def test_inserted_layer_is_initialised_for_its_input_shape():
    model, params = mlp()
    new_model, new_params = fnnet.insert_layer(model, params, "serial[2]", fnnet.Dense(6), (-1, 3),
                                               jax.random.PRNGKey(3))
    assert new_params["dense_2"]["kernel"].shape == (6, 6)
    expected = fnnet.Dense(6).init(jax.random.PRNGKey(3), (-1, 6))[1]
    assert_same_arrays(new_params["dense_2"], expected)  # exactly the given rng's initialisation
    assert new_model.apply(new_params, jnp.ones((2, 3))).shape == (2, 1)


def test_insert_at_minus_one_appends():
    model, params = mlp()
    new_model, new_params = fnnet.insert_layer(model, params, -1, fnnet.Sigmoid, (-1, 3), KEY)
    assert new_model.children[-1] == ("sigmoid_5", fnnet.Sigmoid)
    out = new_model.apply(new_params, jnp.ones((2, 3)))
    np.testing.assert_array_equal(out, jax.nn.sigmoid(model.apply(params, jnp.ones((2, 3)))))


def test_remove_and_replace_by_key_and_index():
    model, params = mlp()
    removed, removed_params = fnnet.remove_layer(model, params, "relu_3", (-1, 3))
    assert [k for k, _ in removed.children] == ["dense_0", "relu_1", "dense_2", "dense_3"]
    assert removed_params["dense_3"] is params["dense_4"]
    replaced, replaced_params = fnnet.replace_layer(model, params, -1, fnnet.Dense(3), (-1, 3), KEY)
    assert replaced.init(KEY, (-1, 3))[0] == (-1, 3)
    for key in ["dense_0", "relu_1", "dense_2", "relu_3"]:
        assert replaced_params[key] is params[key]
    assert replaced_params["dense_4"]["kernel"].shape == (4, 3)


def test_an_edit_that_breaks_a_kept_layer_is_refused_naming_it():
    model, params = mlp()
    with pytest.raises(fnnet.SurgeryError, match=r"params/dense_3/kernel \(was dense_4\) has shape \(4, 1\), "
                                                  r"the edited model needs \(6, 1\)"):
        fnnet.remove_layer(model, params, 2, (-1, 3))  # Dense(4) goes; Dense(1) now sees 6 features


def test_bad_addresses_are_explained():
    model, params = mlp()
    with pytest.raises(fnnet.SurgeryError, match="index 9 is out of range for a serial of 5 layers"):
        fnnet.remove_layer(model, params, 9, (-1, 3))
    with pytest.raises(fnnet.SurgeryError, match="no layer keyed 'dense_1' here; the keys are dense_0, relu_1"):
        fnnet.replace_layer(model, params, "dense_1", fnnet.Dense(2), (-1, 3), KEY)
    with pytest.raises(fnnet.SurgeryError, match="cannot read 'layer 2'"):
        fnnet.remove_layer(model, params, "layer 2", (-1, 3))
    with pytest.raises(fnnet.SurgeryError, match="surgery edits serial models, this is Residual"):
        block = fnnet.Residual(fnnet.Dense(3))
        fnnet.remove_layer(block, block.init(KEY, (-1, 3))[1], 0, (-1, 3))


def test_nested_serial_and_state():
    inner = fnnet.serial(fnnet.Dense(4), fnnet.BatchNorm(), fnnet.Relu)
    model = fnnet.serial(fnnet.BatchNorm(), inner, fnnet.Dense(2))
    _, params, state = fnnet.init_with_state(model, KEY, (-1, 3))
    state = jax.tree_util.tree_map(lambda s: s + 0.5, state)  # as if trained
    new_model, new_params, new_state = fnnet.insert_layer(model, params, "serial_1/dense_0", fnnet.LayerNorm(),
                                                          (-1, 3), KEY, state=state)
    assert sorted(new_params["serial_1"]) == ["batch_norm_2", "dense_1", "layer_norm_0", "relu_3"]
    assert new_params["serial_1"]["dense_1"] is params["serial_1"]["dense_0"]
    assert new_state["serial_1"]["batch_norm_2"] is state["serial_1"]["batch_norm_1"]
    assert new_state["batch_norm_0"] is state["batch_norm_0"]
    y, _ = new_model.apply(new_params, jnp.ones((2, 3)), state=new_state)
    assert y.shape == (2, 2)


def test_a_stateful_new_layer_needs_the_state_keyword():
    model, params = mlp()
    with pytest.raises(fnnet.SurgeryError, match="pass state="):
        fnnet.insert_layer(model, params, 1, fnnet.BatchNorm(), (-1, 3), KEY)
    _, _, state = fnnet.insert_layer(model, params, 1, fnnet.BatchNorm(), (-1, 3), KEY, state=None)
    assert sorted(state["batch_norm_1"]) == ["mean", "var"]


@st.composite
def edits(draw):
    """A Dense/Tanh stack and an edit that keeps every other layer valid: ``(layers, op, position, index)``."""
    widths = draw(st.lists(st.integers(1, 4), min_size=2, max_size=5))
    layers = [fnnet.Dense(w) if i % 2 == 0 else fnnet.Tanh for i, w in enumerate(widths)]
    op = draw(st.sampled_from(["insert", "remove", "replace"]))
    if op == "insert":  # an element-wise layer: shapes stay as they were
        position = draw(st.integers(0, len(layers)))
    elif op == "remove":
        position = draw(st.sampled_from([i for i, layer in enumerate(layers) if layer is fnnet.Tanh]))
    else:  # a fresh layer of the same kind, with new weights
        position = draw(st.integers(0, len(layers) - 1))
    size = len(layers) + (op == "insert")
    index = position - size if draw(st.booleans()) else position  # negative indices count from the end
    return layers, op, position, index


@given(case=edits(), seed=st.integers(0, 2**31 - 1))
def test_edits_keep_every_unchanged_layer_bit_for_bit(case, seed):
    layers, op, position, index = case
    model = fnnet.serial(*layers)
    _, params = model.init(jax.random.PRNGKey(seed), (-1, 3))
    if op == "insert":
        new_model, new_params = fnnet.insert_layer(model, params, index, fnnet.Sigmoid, (-1, 3), KEY)
    elif op == "remove":
        new_model, new_params = fnnet.remove_layer(model, params, index, (-1, 3))
    else:
        new_model, new_params = fnnet.replace_layer(model, params, index, fnnet.from_spec(
            fnnet.to_spec(layers[position])), (-1, 3), jax.random.PRNGKey(seed + 1))
    new_keys = [key for key, _ in new_model.children]
    for i, (old_key, _) in enumerate(model.children):
        if op != "insert" and i == position:
            continue
        new_i = i + 1 if op == "insert" and i >= position else i - 1 if op == "remove" and i > position else i
        assert_same_arrays(new_params[new_keys[new_i]], params[old_key])
    assert len(new_keys) == len(layers) + {"insert": 1, "remove": -1, "replace": 0}[op]
    assert new_model.apply(new_params, jnp.ones((2, 3))).shape[0] == 2


def test_fine_tuning_a_new_head_with_frozen_body():
    """Replace a classifier's head, then train only the head: embedding and LSTM stay put."""
    gen = np.random.default_rng(0)
    x = gen.integers(1, 20, size=(32, 4)).astype(np.int32)
    model = fnnet.serial(fnnet.Embedding(20, 4), fnnet.LSTM(3), fnnet.Dense(2))
    _, trained = model.init(KEY, (-1, 4))  # stands in for trained params: only their identity matters

    head3, params3 = fnnet.replace_layer(model, trained, -1, fnnet.Dense(3), (-1, 4), jax.random.PRNGKey(5))
    y3 = np.eye(3, dtype=np.float32)[gen.integers(0, 3, size=32)]
    tuned = fnnet.fit(head3, params3, x, y3, loss="categorical_crossentropy", optimizer="adam", epochs=2,
                      batch_size=16, verbose=0, frozen=["embedding_0", "lstm_1"]).params
    assert_same_arrays(tuned["embedding_0"], trained["embedding_0"])
    assert_same_arrays(tuned["lstm_1"], trained["lstm_1"])
    assert not np.array_equal(tuned["dense_2"]["kernel"], params3["dense_2"]["kernel"])
    assert head3.apply(tuned, x[:2]).shape == (2, 3)

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


def test_insert_changes_no_other_key_and_keeps_the_same_arrays():
    model, params = mlp()
    new_model, new_params, new_state = fnnet.insert_layer(model, params, 2, fnnet.Dropout(0.5), (-1, 3), KEY)
    assert [k for k, _ in new_model.children] == ["dense", "relu", "dropout", "dense_1", "relu_1", "dense_2"]
    assert new_state is None
    assert sorted(new_params) == sorted(params)
    for key in params:
        assert new_params[key] is params[key]
    x = jnp.ones((2, 3))
    np.testing.assert_array_equal(new_model.apply(new_params, x), model.apply(params, x))  # Dropout off


def test_inserting_a_dense_before_existing_ones_moves_no_key():
    model, params = mlp()
    new_model, new_params, _ = fnnet.insert_layer(model, params, 0, fnnet.Dense(3), (-1, 3), KEY)
    keys = [k for k, _ in new_model.children]
    # serial would number the new first Dense 'dense': the kept layers hold on to their keys instead.
    assert keys[1:] == ["dense", "relu", "dense_1", "relu_1", "dense_2"]
    assert keys[0] not in keys[1:] and new_params[keys[0]]["kernel"].shape == (3, 3)
    for key in params:
        assert new_params[key] is params[key]
    assert new_model.apply(new_params, jnp.ones((2, 3))).shape == (2, 1)
    _, fresh = new_model.init(KEY, (-1, 3))
    assert sorted(fresh) == sorted(new_params)  # the rebuilt model's own init uses the same keys


def test_inserted_layer_is_initialised_for_its_input_shape():
    model, params = mlp()
    new_model, new_params, _ = fnnet.insert_layer(model, params, "serial[2]", fnnet.Dense(6), (-1, 3),
                                                  jax.random.PRNGKey(3))
    new_key = new_model.children[2][0]
    assert new_key not in params
    assert new_params[new_key]["kernel"].shape == (6, 6)
    expected = fnnet.Dense(6).init(jax.random.PRNGKey(3), (-1, 6))[1]
    assert_same_arrays(new_params[new_key], expected)  # exactly the given rng's initialisation
    assert new_model.apply(new_params, jnp.ones((2, 3))).shape == (2, 1)


def test_insert_at_minus_one_appends():
    model, params = mlp()
    new_model, new_params, _ = fnnet.insert_layer(model, params, -1, fnnet.Sigmoid, (-1, 3), KEY)
    assert new_model.children[-1] == ("sigmoid", fnnet.Sigmoid)
    out = new_model.apply(new_params, jnp.ones((2, 3)))
    np.testing.assert_array_equal(out, jax.nn.sigmoid(model.apply(params, jnp.ones((2, 3)))))


def test_insert_before_a_key():
    model, params = mlp()
    new_model, _, _ = fnnet.insert_layer(model, params, "dense_1", fnnet.Dropout(0.1), (-1, 3), KEY)
    assert [k for k, _ in new_model.children] == ["dense", "relu", "dropout", "dense_1", "relu_1", "dense_2"]


def test_remove_and_replace_by_key_and_index():
    model, params = mlp()
    removed, removed_params, _ = fnnet.remove_layer(model, params, "relu_1", (-1, 3))
    assert [k for k, _ in removed.children] == ["dense", "relu", "dense_1", "dense_2"]
    assert removed_params["dense_2"] is params["dense_2"]
    replaced, replaced_params, _ = fnnet.replace_layer(model, params, -1, fnnet.Dense(3), (-1, 3), KEY)
    assert replaced.init(KEY, (-1, 3))[0] == (-1, 3)
    for key in ["dense", "dense_1"]:
        assert replaced_params[key] is params[key]
    assert replaced_params["dense_2"]["kernel"].shape == (4, 3)


def test_an_edit_that_breaks_a_kept_layer_is_refused_naming_it():
    model, params = mlp()
    with pytest.raises(fnnet.SurgeryError, match=r"params/dense_2/kernel has shape \(4, 1\), "
                                                  r"the edited model needs \(6, 1\)"):
        fnnet.remove_layer(model, params, 2, (-1, 3))  # Dense(4) goes; Dense(1) now sees 6 features


def test_bad_addresses_are_explained():
    model, params = mlp()
    with pytest.raises(fnnet.SurgeryError, match="index 9 is out of range for a serial of 5 layers"):
        fnnet.remove_layer(model, params, 9, (-1, 3))
    with pytest.raises(fnnet.SurgeryError,
                       match="no layer keyed 'dense_9' here; the keys are dense, relu, dense_1, relu_1, dense_2"):
        fnnet.replace_layer(model, params, "dense_9", fnnet.Dense(2), (-1, 3), KEY)
    with pytest.raises(fnnet.SurgeryError, match="cannot read 'layer 2'"):
        fnnet.remove_layer(model, params, "layer 2", (-1, 3))
    with pytest.raises(fnnet.SurgeryError, match="surgery edits serial models, this is Residual"):
        block = fnnet.Residual(fnnet.Dense(3))
        fnnet.remove_layer(block, block.init(KEY, (-1, 3))[1], 0, (-1, 3))
    with pytest.raises(fnnet.SurgeryError, match="give the new layer another name"):
        fnnet.insert_layer(model, params, 0, fnnet.Dense(3, name="dense_1"), (-1, 3), KEY)


def test_nested_serial_and_state():
    inner = fnnet.serial(fnnet.Dense(4), fnnet.BatchNorm(), fnnet.Relu)
    model = fnnet.serial(fnnet.BatchNorm(), inner, fnnet.Dense(2))
    _, params, state = model.init_with_state(KEY, (-1, 3))
    state = jax.tree_util.tree_map(lambda s: s + 0.5, state)  # as if trained
    new_model, new_params, new_state = fnnet.insert_layer(model, params, "serial/dense", fnnet.LayerNorm(),
                                                          (-1, 3), KEY, state=state)
    assert sorted(new_params["serial"]) == ["batch_norm", "dense", "layer_norm"]
    assert new_params["serial"]["dense"] is params["serial"]["dense"]
    assert new_state["serial"]["batch_norm"] is state["serial"]["batch_norm"]
    assert new_state["batch_norm"] is state["batch_norm"]
    assert new_params["dense"] is params["dense"]
    y, _ = new_model.apply_with_state(new_params, new_state, jnp.ones((2, 3)))
    assert y.shape == (2, 2)
    # The same edit addressed by paths.
    again, again_params, _ = fnnet.insert_layer(model, params, "serial[1]/serial[0]", fnnet.LayerNorm(),
                                                (-1, 3), KEY, state=state)
    assert [k for k, _ in again.children[1][1].children] == ["layer_norm", "dense", "batch_norm", "relu"]
    assert_same_arrays(again_params, new_params)


def test_edits_always_return_model_params_and_state():
    model, params = mlp()
    # A stateless model gives state None; a new stateful layer brings its fresh state.
    assert fnnet.remove_layer(model, params, 1, (-1, 3))[2] is None
    _, _, state = fnnet.insert_layer(model, params, 1, fnnet.BatchNorm(), (-1, 3), KEY)
    assert sorted(state["batch_norm"]) == ["mean", "var"]
    # A stateful model's state must come along, or the kept statistics would be lost.
    stateful = fnnet.serial(fnnet.Dense(4), fnnet.BatchNorm())
    _, params, state = stateful.init_with_state(KEY, (-1, 3))
    with pytest.raises(fnnet.SurgeryError, match="pass state="):
        fnnet.insert_layer(stateful, params, 1, fnnet.Relu, (-1, 3), KEY)
    _, _, kept = fnnet.insert_layer(stateful, params, 1, fnnet.Relu, (-1, 3), KEY, state=state)
    assert kept["batch_norm"] is state["batch_norm"]


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
        new_model, new_params, _ = fnnet.insert_layer(model, params, index, fnnet.Sigmoid, (-1, 3), KEY)
    elif op == "remove":
        new_model, new_params, _ = fnnet.remove_layer(model, params, index, (-1, 3))
    else:
        new_model, new_params, _ = fnnet.replace_layer(model, params, index, fnnet.from_spec(
            fnnet.to_spec(layers[position])), (-1, 3), jax.random.PRNGKey(seed + 1))
    new_keys = [key for key, _ in new_model.children]
    for i, (old_key, _) in enumerate(model.children):
        if op != "insert" and i == position:
            continue
        new_i = i + 1 if op == "insert" and i >= position else i - 1 if op == "remove" and i > position else i
        assert new_keys[new_i] == old_key  # no kept layer's key moves
        if old_key in params:  # layers without params (Tanh) have no entry
            assert new_params[old_key] is params[old_key]
            assert_same_arrays(new_params[old_key], params[old_key])
    assert len(new_keys) == len(layers) + {"insert": 1, "remove": -1, "replace": 0}[op]
    assert new_model.apply(new_params, jnp.ones((2, 3))).shape[0] == 2


def test_fine_tuning_a_new_head_with_frozen_body():
    """Replace a classifier's head, then train only the head: embedding and LSTM stay put."""
    gen = np.random.default_rng(0)
    x = gen.integers(1, 20, size=(32, 4)).astype(np.int32)
    model = fnnet.serial(fnnet.Embedding(20, 4), fnnet.LSTM(3), fnnet.Dense(2))
    _, trained = model.init(KEY, (-1, 4))  # stands in for trained params: only their identity matters

    head3, params3, _ = fnnet.replace_layer(model, trained, -1, fnnet.Dense(3), (-1, 4), jax.random.PRNGKey(5))
    y3 = np.eye(3, dtype=np.float32)[gen.integers(0, 3, size=32)]
    tuned = fnnet.fit(head3, params3, x, y3, loss="categorical_crossentropy", optimizer="adam", epochs=2,
                      batch_size=16, verbose=0, frozen=["embedding", "lstm"]).params
    assert_same_arrays(tuned["embedding"], trained["embedding"])
    assert_same_arrays(tuned["lstm"], trained["lstm"])
    assert not np.array_equal(tuned["dense"]["kernel"], params3["dense"]["kernel"])
    assert head3.apply(tuned, x[:2]).shape == (2, 3)

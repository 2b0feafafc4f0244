"""The layer contract: NamedTuple shape, kwargs, state threading, errors, shape inference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.example_libraries import stax

import fnnet


def tutorial_mlp():
    return fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))


def test_layer_unpacks_as_init_and_apply_and_is_immutable():
    layer = fnnet.Dense(3)
    init_fun, apply_fun = layer
    assert isinstance(layer, fnnet.Layer) and len(layer) == 2 and list(layer) == [layer.init, layer.apply]
    assert init_fun is layer.init and apply_fun is layer.apply and layer.init is layer.init
    out_shape, params = init_fun(jax.random.PRNGKey(0), (-1, 2))
    assert out_shape == (-1, 3)
    assert apply_fun(params, jnp.ones((4, 2))).shape == (4, 3)
    for attr in ("init", "name", "return_sequences"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(layer, attr, None)
    assert layer == layer and layer != fnnet.Dense(3) and {layer: 1}[layer] == 1


def test_none_means_an_unknown_dimension_like_minus_one():
    model = fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(2))
    assert model.init(jax.random.PRNGKey(0), (None, 3))[0] == (-1, 2)
    np.testing.assert_array_equal(model.init(jax.random.PRNGKey(0), (None, 3))[1]["dense"]["kernel"],
                                  model.init(jax.random.PRNGKey(0), (-1, 3))[1]["dense"]["kernel"])


def test_a_traced_train_flag_is_an_fnnet_error_that_says_what_to_do():
    model = fnnet.serial(fnnet.Dense(2), fnnet.Dropout(0.5))
    _, params = model.init(jax.random.PRNGKey(0), (None, 3))
    with pytest.raises(fnnet.LayerError, match="static_argnames='train'"):
        jax.jit(model.apply)(params, jnp.ones((2, 3)), train=True, rng=jax.random.PRNGKey(1))
    step = jax.jit(model.apply, static_argnames="train")
    assert step(params, jnp.ones((2, 3)), train=True, rng=jax.random.PRNGKey(1)).shape == (2, 2)


def test_layers_ignore_keyword_arguments_they_do_not_use():
    model = tutorial_mlp()
    _, params = model.init(jax.random.PRNGKey(0), (-1, 78))
    x = jnp.ones((2, 78))
    y = model.apply(params, x, rng=jax.random.PRNGKey(1), train=True, something_else=3)
    np.testing.assert_allclose(y, model.apply(params, x))


def test_stax_layers_compose_inside_fnnet_serial():
    model = fnnet.serial(stax.Dense(8), stax.Relu, fnnet.Dense(4), stax.serial(stax.Dense(3), stax.Tanh),
                         stax.Dropout(0.5, mode="train"))
    out_shape, params = model.init(jax.random.PRNGKey(0), (-1, 5))
    assert out_shape == (-1, 3)
    y = model.apply(params, jnp.ones((6, 5)), rng=jax.random.PRNGKey(2))  # stax Dropout needs rng
    assert y.shape == (6, 3)


def test_fnnet_layers_run_inside_stax_serial():
    init_fun, apply_fun = stax.serial(fnnet.Dense(4), fnnet.Relu, stax.Dense(2))
    out_shape, params = init_fun(jax.random.PRNGKey(0), (-1, 3))
    assert out_shape == (-1, 2)
    assert apply_fun(params, jnp.ones((5, 3))).shape == (5, 2)
    init_fun, apply_fun = stax.serial(fnnet.BatchNorm(), stax.Dense(2))
    out_shape, params = init_fun(jax.random.PRNGKey(0), (-1, 3))
    y = apply_fun(params, jax.random.normal(jax.random.PRNGKey(1), (6, 3)))
    assert out_shape == (-1, 2) and y.shape == (6, 2)
    model = fnnet.serial(stax.Dense(3), fnnet.Relu)
    out_shape, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    assert out_shape == (-1, 3) and set(params) == {"dense"} and isinstance(params["dense"], tuple)
    assert bool((model.apply(params, -jnp.ones((2, 2)) * 100) >= 0).all())


def test_params_have_readable_keys():
    _, params = tutorial_mlp().init(jax.random.PRNGKey(0), (-1, 78))
    assert sorted(params) == ["dense", "dense_1", "dense_2"]
    assert params["dense_1"]["kernel"].shape == (400, 200)


def keys(model, shape=(None, 3)):
    return set(model.init(jax.random.PRNGKey(0), shape)[1])


def test_default_names_follow_keras_and_explicit_names_are_reserved_first():
    assert keys(fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(4), fnnet.Dense(1))) == {
        "dense", "dense_1", "dense_2"}
    assert keys(fnnet.serial(fnnet.Dense(4, name="encoder"), fnnet.Relu, fnnet.Dense(1))) == {"encoder", "dense"}
    model = fnnet.serial(fnnet.Dense(4), fnnet.Dense(4, name="dense"))
    assert [k for k, _ in model.children] == ["dense_1", "dense"]
    assert model.init(jax.random.PRNGKey(0), (None, 3))[1]["dense"]["kernel"].shape == (4, 4)
    assert keys(fnnet.serial(fnnet.Dense(3), fnnet.BatchNorm(), fnnet.BatchNorm(name="bn"))) == {
        "dense", "batch_norm", "bn"}
    assert fnnet.BatchNorm().name == "batch_norm" and fnnet.SimpleRNN(2).name == "simple_rnn"
    assert fnnet.Relu(name="act").name == "act" and fnnet.Relu.name == "relu"


def test_two_children_with_the_same_explicit_name_are_an_error_naming_both():
    with pytest.raises(fnnet.LayerError, match=r"'head'.*serial\[0\] \(Dense\(4\)\).*serial\[2\] \(Dense\(1\)\)"):
        fnnet.serial(fnnet.Dense(4, name="head"), fnnet.Relu, fnnet.Dense(1, name="head"))


def test_inserting_a_dropout_changes_no_other_key():
    before = fnnet.serial(fnnet.Dense(8), fnnet.Relu, fnnet.Dense(8), fnnet.Dense(1))
    after = fnnet.serial(fnnet.Dense(8), fnnet.Dropout(0.2), fnnet.Relu, fnnet.Dense(8), fnnet.Dropout(0.2),
                         fnnet.Dense(1))
    _, params = before.init(jax.random.PRNGKey(0), (None, 3))
    assert keys(after) == set(params)
    x = jnp.ones((2, 3))
    np.testing.assert_allclose(after.apply(params, x), before.apply(params, x))


def test_the_parent_assigns_keys_so_one_layer_value_serves_in_two_models():
    shared = fnnet.Dense(2)
    assert keys(fnnet.serial(shared)) == {"dense"}
    assert keys(fnnet.serial(fnnet.Dense(3), shared)) == {"dense", "dense_1"}


def test_a_raw_stax_serial_keeps_its_positional_params():
    model = fnnet.serial(fnnet.Dense(3), stax.serial(stax.Dense(4), stax.Relu, stax.Dense(2)))
    _, params = model.init(jax.random.PRNGKey(0), (None, 5))
    assert set(params) == {"dense", "serial"}
    assert isinstance(params["serial"], (list, tuple)) and len(params["serial"]) == 3 and params["serial"][1] == ()
    assert model.apply(params, jnp.ones((2, 5))).shape == (2, 2)


def test_mlp_applied_to_77_features_names_dense_78_and_77():
    model = tutorial_mlp()
    _, params = model.init(jax.random.PRNGKey(0), (-1, 78))
    for run in (model.apply, jax.jit(model.apply)):
        with pytest.raises(fnnet.LayerError) as info:
            run(params, jnp.ones((32, 77)))
        message = str(info.value)
        assert "serial[0]" in message and "Dense(400)" in message
        assert "78" in message and "77" in message
        assert info.value.path == ["serial[0]", "Dense(400)"]


def test_fan_in_sum_mismatch_at_init_names_the_layer_and_both_shapes():
    model = fnnet.serial(fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(4), fnnet.Dense(5)), fnnet.FanInSum)
    with pytest.raises(fnnet.LayerError) as info:
        model.init(jax.random.PRNGKey(0), (-1, 3))
    message = str(info.value)
    assert "serial[2]" in message and "FanInSum" in message
    assert "(None, 4)" in message and "(None, 5)" in message


def test_nested_error_paths():
    model = fnnet.serial(fnnet.Dense(3), fnnet.serial(fnnet.Relu, fnnet.Dense(2)))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 4))
    params["serial"]["dense"]["kernel"] = jnp.ones((7, 2))
    with pytest.raises(fnnet.LayerError) as info:
        model.apply(params, jnp.ones((1, 4)))
    assert info.value.path[:3] == ["serial[1]", "serial[1]", "Dense(2)"]
    assert "7" in str(info.value)


def test_unknown_last_dimension_is_a_clear_init_error():
    with pytest.raises(fnnet.LayerError, match="Dense.*known last input dimension"):
        fnnet.Dense(3).init(jax.random.PRNGKey(0), (-1, -1))


def test_shape_inference_uses_unknown_dimensions():
    model = fnnet.serial(fnnet.Flatten, fnnet.Dense(5))
    assert model.init(jax.random.PRNGKey(0), (-1, 3, 4))[0] == (-1, 5)
    assert fnnet.Flatten.init(jax.random.PRNGKey(0), (-1, -1, 4))[0] == (-1, -1)
    assert fnnet.output_shape(lambda x: x[:, :2], (-1, 3)) == (-1, 2)


def test_state_threads_through_serial_and_parallel():
    model = fnnet.serial(fnnet.Dense(3), fnnet.BatchNorm(), fnnet.FanOut(2),
                         fnnet.parallel(fnnet.BatchNorm(), fnnet.Dense(3)), fnnet.FanInSum)
    _, params, state = model.init_with_state(jax.random.PRNGKey(0), (-1, 2))
    assert set(state) == {"batch_norm", "parallel"}
    assert set(state["parallel"]) == {"batch_norm"}
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 2))
    step = jax.jit(lambda p, s, x: model.apply_with_state(p, s, x, train=True))
    y, new_state = step(params, state, x)
    assert y.shape == (8, 3)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    assert not np.allclose(new_state["batch_norm"]["mean"], state["batch_norm"]["mean"])
    y_eval, same = model.apply_with_state(params, new_state, x)  # train=False: running statistics, unchanged
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: (a == b).all(), same, new_state))
    assert fnnet.serial(fnnet.Dense(2)).init_with_state(jax.random.PRNGKey(0), (-1, 2))[2] is None


def test_apply_returns_outputs_alone_and_apply_with_state_always_a_pair():
    model = fnnet.serial(fnnet.Dense(3), fnnet.BatchNorm())
    _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    out = model.apply(params, jnp.ones((4, 2)))  # stax's BatchNorm meaning: batch statistics
    assert isinstance(out, jax.Array) and out.shape == (4, 3)
    dense = fnnet.Dense(2)
    dense_params = dense.init(jax.random.PRNGKey(0), (-1, 2))[1]
    y, state = dense.apply_with_state(dense_params, None, jnp.ones((1, 2)))
    assert state is None and y.shape == (1, 2)
    with pytest.raises(TypeError, match="apply_with_state"):
        dense.apply(dense_params, jnp.ones((1, 2)), state=None)


def test_a_stateful_user_layer_reached_through_apply_names_itself_and_apply_with_state():
    counter = fnnet.layer("Counter", lambda params, state, x: (x, state + 1),
                          init_state=lambda shape: jnp.zeros(()))
    model = fnnet.serial(fnnet.Dense(2), counter)
    _, params, state = model.init_with_state(jax.random.PRNGKey(0), (None, 3))
    with pytest.raises(fnnet.LayerError, match=r"serial\[1\]/Counter: .*apply_with_state"):
        model.apply(params, jnp.ones((1, 3)))
    _, new_state = model.apply_with_state(params, state, jnp.ones((1, 3)))
    assert float(new_state["counter"]) == 1.0


MODELS = {
    "mlp": (tutorial_mlp, (-1, 78)),
    "cnn": (lambda: fnnet.serial(fnnet.Conv(4, (3, 3), padding="SAME"), fnnet.BatchNorm(), fnnet.Relu,
                                 fnnet.MaxPool((2, 2), strides=(2, 2)), fnnet.Flatten, fnnet.Dropout(0.1),
                                 fnnet.Dense(3), fnnet.LogSoftmax), (-1, 8, 8, 1)),
    "residual": (lambda: fnnet.serial(fnnet.Dense(6), fnnet.Residual(fnnet.Dense(6), fnnet.Tanh),
                                      fnnet.LayerNorm(), fnnet.Dense(2, activation="softmax")), (-1, 4)),
    "branches": (lambda: fnnet.serial(fnnet.FanOut(3), fnnet.parallel(fnnet.Dense(2), fnnet.Identity,
                                                                       fnnet.Dense(1, activation="sigmoid")),
                                      fnnet.FanInConcat(), fnnet.Dense(2)), (-1, 5)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_jit_vmap_grad_work_on_every_model(name):
    make, input_shape = MODELS[name]
    model = make()
    out_shape, params = model.init(jax.random.PRNGKey(0), input_shape)
    x = jax.random.normal(jax.random.PRNGKey(1), (3,) + input_shape[1:])
    eager = model.apply(params, x)
    np.testing.assert_allclose(jax.jit(model.apply)(params, x), eager, rtol=1e-5, atol=1e-5)
    assert eager.shape == (3,) + out_shape[1:]
    if name != "cnn":  # BatchNorm without state mixes the batch: vmap over single examples differs
        per_example = jax.vmap(lambda xi: model.apply(params, xi[None])[0])(x)
        np.testing.assert_allclose(per_example, eager, rtol=1e-5, atol=1e-5)
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, x, train=True, rng=jax.random.PRNGKey(2)) ** 2))(params)
    leaves = jax.tree_util.tree_leaves(grads)
    assert leaves and all(bool(jnp.isfinite(g).all()) for g in leaves)
    assert any(bool((g != 0).any()) for g in leaves)


def test_fnnet_layer_writes_a_layer_in_one_call_and_passes_only_declared_keywords():
    seen = {}

    def apply(params, x, *, train, mask):
        seen.update(train=train, mask=mask)
        return params["s"] * x

    scale = fnnet.layer("Scale", apply, lambda rng, shape: {"s": jnp.full(shape[-1:], 2.0)})
    model = fnnet.serial(fnnet.Dense(3), scale)
    out_shape, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    assert out_shape == (-1, 3) and set(params) == {"dense", "scale"}
    model.apply(params, jnp.ones((1, 2)), train=True, rng=jax.random.PRNGKey(0), unrelated=1)
    assert seen == {"train": True, "mask": None}
    extra = fnnet.layer("Shift", lambda params, x, *, offset=0.0: x + offset)
    assert float(extra.apply({}, jnp.zeros(()), offset=2.0, train=True)) == 2.0


def test_compute_mask_makes_a_mask_that_reaches_later_layers():
    make = fnnet.layer("Make", lambda params, x: x, compute_mask=lambda x, mask: x > 0)
    read = fnnet.layer("Read", lambda params, x, *, mask: jnp.where(mask, x, -1.0))
    y = fnnet.serial(make, fnnet.Relu, read).apply({}, jnp.array([1.0, -2.0, 3.0]))
    assert y.tolist() == [1.0, -1.0, 3.0]


def test_no_module_outside_core_reads_a_private_layer_attribute():
    import pathlib
    import re
    root = pathlib.Path(fnnet.__file__).parent
    offenders = [f"{path}:{n}" for path in root.rglob("*.py") if path.name != "core.py" or path.parent != root
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"(?<!self)\._(init|call|inner|type|explicit|memo)\b", line)]
    assert offenders == []


def test_walk_gives_every_layer_with_abstract_shapes_and_allocates_nothing():
    model = fnnet.serial(fnnet.Embedding(2_000_000, 256), fnnet.LSTM(4, name="encoder"), fnnet.Dense(1))
    root = fnnet.walk(model, (None, 7))
    assert [(n.key, n.output_shape) for n in root.children] == [
        ("embedding", (-1, 7, 256)), ("encoder", (-1, 4)), ("dense", (-1, 1))]
    table = root.children[0].params["embeddings"]
    assert isinstance(table, jax.ShapeDtypeStruct) and table.shape == (2_000_000, 256)
    assert root.children[1].path == ("encoder",) and root.children[1].layer.description == "LSTM(4)"
    bare = fnnet.walk(model)
    assert [n.key for n in bare.nodes()] == [None, "embedding", "encoder", "dense"]
    assert bare.children[0].output_shape is None


def test_as_layer_rejects_non_layers_clearly():
    with pytest.raises(TypeError, match="expected a layer"):
        fnnet.serial(fnnet.Dense(2), 3)

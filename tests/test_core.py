"""The layer contract: NamedTuple shape, kwargs, state threading, errors, shape inference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.example_libraries import stax

import fnnet


def tutorial_mlp():
    return fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))


def test_layer_is_a_namedtuple_of_init_and_apply():
    layer = fnnet.Dense(3)
    init_fun, apply_fun = layer
    assert isinstance(layer, fnnet.Layer) and isinstance(layer, tuple) and len(layer) == 2
    assert init_fun is layer.init and apply_fun is layer.apply
    out_shape, params = init_fun(jax.random.PRNGKey(0), (-1, 2))
    assert out_shape == (-1, 3)
    assert apply_fun(params, jnp.ones((4, 2))).shape == (4, 3)


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


def test_params_have_readable_keys():
    _, params = tutorial_mlp().init(jax.random.PRNGKey(0), (-1, 78))
    assert sorted(params) == ["dense_0", "dense_2", "dense_4", "relu_1", "relu_3"]
    assert params["dense_2"]["kernel"].shape == (400, 200)


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
    params["serial_1"]["dense_1"]["kernel"] = jnp.ones((7, 2))
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
    _, params, state = fnnet.init_with_state(model, jax.random.PRNGKey(0), (-1, 2))
    assert set(state) == {"batch_norm_1", "parallel_3"}
    assert set(state["parallel_3"]) == {"batch_norm_0"}
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 2))
    step = jax.jit(lambda p, s, x: model.apply(p, x, state=s, train=True))
    y, new_state = step(params, state, x)
    assert y.shape == (8, 3)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    assert not np.allclose(new_state["batch_norm_1"]["mean"], state["batch_norm_1"]["mean"])
    y_eval, same = model.apply(params, x, state=new_state)  # train=False: running statistics, unchanged
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: (a == b).all(), same, new_state))
    assert fnnet.init_state(fnnet.serial(fnnet.Dense(2)), (-1, 2)) is None


def test_apply_without_state_keyword_returns_outputs_only():
    model = fnnet.serial(fnnet.Dense(3), fnnet.BatchNorm())
    _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    out = model.apply(params, jnp.ones((4, 2)))
    assert isinstance(out, jax.Array) and out.shape == (4, 3)
    y, state = fnnet.Dense(2).apply(fnnet.Dense(2).init(jax.random.PRNGKey(0), (-1, 2))[1], jnp.ones((1, 2)),
                                    state=None)
    assert state is None and y.shape == (1, 2)


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


def test_make_layer_and_leaf_let_users_write_layers():
    scale = fnnet.leaf("Scale", lambda p, x, ctx: p["s"] * x, lambda rng, shape: {"s": jnp.full(shape[-1:], 2.0)})
    model = fnnet.serial(fnnet.Dense(3), scale)
    out_shape, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    assert out_shape == (-1, 3) and "scale_1" in params


def test_as_layer_rejects_non_layers_clearly():
    with pytest.raises(TypeError, match="expected a layer"):
        fnnet.serial(fnnet.Dense(2), 3)

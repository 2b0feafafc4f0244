"""Optimizers: Keras names with Keras's defaults (checked against Keras 3), freezing by path."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet

PARAMS = {"dense": {"kernel": jnp.array([[0.5, -1.0], [2.0, 0.1]]), "bias": jnp.array([0.1, -0.2])},
          "dense_1": {"kernel": jnp.array([[1.0], [-0.5]]), "bias": jnp.array([0.0])}}


def gradients(step):
    return jax.tree_util.tree_map(lambda p: jnp.cos(p * (step + 1)) * 0.3, PARAMS)


def run(optimizer, steps=3):
    params, state = PARAMS, optimizer.init(PARAMS)
    for step in range(steps):
        updates, state = optimizer.update(gradients(step), state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adadelta", "adam", "adamw"])
def test_keras_names_follow_keras_defaults(name):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    keras_opt = {"sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
                 "adadelta": keras.optimizers.Adadelta, "adam": keras.optimizers.Adam,
                 "adamw": keras.optimizers.AdamW}[name]()
    variables = {path: keras.Variable(np.asarray(leaf)) for path, leaf in
                 zip(fnnet.tree_paths(PARAMS), jax.tree_util.tree_leaves(PARAMS))}
    keras_opt.build(list(variables.values()))
    for step in range(3):
        grads = jax.tree_util.tree_leaves(gradients(step))
        keras_opt.apply_gradients(zip([np.asarray(g) for g in grads], variables.values()))
    ours = jax.tree_util.tree_leaves(run(fnnet.get_optimizer(name)))
    # Adam's epsilon sits before bias correction in Keras, after it in optax: a tiny difference.
    for (path, var), leaf in zip(variables.items(), ours):
        np.testing.assert_allclose(np.asarray(var.value), leaf, rtol=1e-5, atol=1e-6, err_msg=f"{name} {path}")


def test_hyper_parameters_in_optax_or_keras_spelling():
    a = run(fnnet.get_optimizer("adam", learning_rate=0.1, beta_1=0.5, epsilon=1e-3))
    b = run(optax.adam(0.1, b1=0.5, eps=1e-3))
    assert all(np.allclose(u, v) for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert fnnet.get_optimizer("RMSprop", rho=0.5) is not None
    with pytest.raises(TypeError, match="not 'betas'"):
        fnnet.get_optimizer("adam", betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="Keras names"):
        fnnet.get_optimizer("nadam2")
    tx = optax.sgd(0.1)
    assert fnnet.get_optimizer(tx) is tx


def test_freeze_by_path_prefix_glob_and_predicate():
    frozen = run(fnnet.freeze("sgd", PARAMS, ["dense"]))
    assert np.array_equal(frozen["dense"]["kernel"], PARAMS["dense"]["kernel"])
    assert not np.array_equal(frozen["dense_1"]["kernel"], PARAMS["dense_1"]["kernel"])
    biases = run(fnnet.freeze("adam", PARAMS, ["*/bias"]))
    assert np.array_equal(biases["dense_1"]["bias"], PARAMS["dense_1"]["bias"])
    assert not np.array_equal(biases["dense_1"]["kernel"], PARAMS["dense_1"]["kernel"])
    only_last = run(fnnet.freeze("sgd", PARAMS, trainable=lambda path: path.startswith("dense_1")))
    assert np.array_equal(only_last["dense"]["bias"], PARAMS["dense"]["bias"])
    assert not np.array_equal(only_last["dense_1"]["bias"], PARAMS["dense_1"]["bias"])


def test_frozen_params_carry_no_optimizer_state():
    state = fnnet.freeze("adam", PARAMS, ["dense"]).init(PARAMS)
    sizes = sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(state))
    full = sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(optax.adam(1e-3).init(PARAMS)))
    assert sizes < full


def test_a_selector_matching_nothing_names_the_available_params():
    with pytest.raises(ValueError, match=r"\['dense_2'\] match no parameter; top-level params are \['dense', 'dense_1'\]"):
        fnnet.freeze("sgd", PARAMS, ["dense_2"])

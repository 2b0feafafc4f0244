"""Ensemble: n members in one vmapped program, each trained as if it were alone."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet

N = 3


def mlp():
    return fnnet.serial(fnnet.Dense(6), fnnet.Relu, fnnet.Dense(1))


def mse(y_true, y_pred):
    return jnp.mean((y_true - y_pred) ** 2)


@pytest.fixture(scope="module")
def data():
    kx, ky = jax.random.split(jax.random.PRNGKey(1))
    x = jax.random.normal(kx, (16, 4))
    return x, jnp.sin(x[:, :1]) + 0.1 * jax.random.normal(ky, (16, 1))


def tree_allclose(a, b, **tol):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, **tol), a, b)


def test_members_are_the_member_model_initialised_with_split_keys():
    rng = jax.random.PRNGKey(0)
    shape, params = fnnet.Ensemble(mlp(), N).init(rng, (-1, 4))
    assert shape == (-1, N, 1)
    for i, key in enumerate(jax.random.split(rng, N)):
        tree_allclose(fnnet.member_params(params, i), mlp().init(key, (-1, 4))[1])
    first, second = (fnnet.member_params(params, i)["dense"]["kernel"] for i in (0, 1))
    assert not np.allclose(first, second)


def test_outputs_are_each_members_own_and_mean_averages_them(data):
    x, _ = data
    _, params = fnnet.Ensemble(mlp(), N).init(jax.random.PRNGKey(0), (-1, 4))
    stacked = fnnet.Ensemble(mlp(), N).apply(params, x)
    assert stacked.shape == (16, N, 1)
    for i in range(N):
        np.testing.assert_allclose(stacked[:, i], mlp().apply(fnnet.member_params(params, i), x), rtol=1e-5)
    averaged = fnnet.Ensemble(mlp(), N, reduce="mean").apply(params, x)
    np.testing.assert_allclose(averaged, stacked.mean(axis=1), rtol=1e-5)


def test_a_members_loss_has_no_gradient_in_other_members(data):
    x, y = data
    ensemble = fnnet.Ensemble(mlp(), N)
    _, params = ensemble.init(jax.random.PRNGKey(0), (-1, 4))
    grads = jax.grad(lambda p: mse(y, ensemble.apply(p, x)[:, 1]))(params)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.all(leaf[0] == 0) and np.all(leaf[2] == 0)
        assert np.any(leaf[1] != 0)


def test_ensemble_loss_gradient_is_each_members_own_gradient_over_n(data):
    x, y = data
    ensemble = fnnet.Ensemble(mlp(), N)
    _, params = ensemble.init(jax.random.PRNGKey(0), (-1, 4))
    grads = jax.grad(lambda p: fnnet.ensemble_loss(mse)(y, ensemble.apply(p, x)))(params)
    for i in range(N):
        own = jax.grad(lambda p: mse(y, mlp().apply(p, x)))(fnnet.member_params(params, i))
        tree_allclose(fnnet.member_params(grads, i), jax.tree_util.tree_map(lambda g: g / N, own),
                      rtol=1e-5, atol=1e-7)


def train(model, params, loss, x, y, optimizer, steps):
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(lambda p: loss(y, model.apply(p, x)))(params)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params


@pytest.mark.parametrize("optimizer, member_optimizer", [
    (optax.sgd(0.05 * N), optax.sgd(0.05)),   # the mean scales gradients by 1/n
    (optax.adam(0.01), optax.adam(0.01)),      # Adam is invariant to that scale
])
def test_training_together_matches_training_separately(data, optimizer, member_optimizer):
    x, y = data
    rng = jax.random.PRNGKey(0)
    ensemble = fnnet.Ensemble(mlp(), N)
    _, params = ensemble.init(rng, (-1, 4))
    together = train(ensemble, params, fnnet.ensemble_loss(mse), x, y, optimizer, steps=20)
    for i, key in enumerate(jax.random.split(rng, N)):
        alone = train(mlp(), mlp().init(key, (-1, 4))[1], mse, x, y, member_optimizer, steps=20)
        tree_allclose(fnnet.member_params(together, i), alone, rtol=1e-4, atol=1e-5)


def test_fit_trains_each_member_as_fit_would_alone(data):
    x, y = data
    rng = jax.random.PRNGKey(0)
    ensemble = fnnet.Ensemble(mlp(), N)
    _, params = ensemble.init(rng, (-1, 4))
    settings = dict(optimizer="adam", epochs=3, batch_size=4, seed=5, verbose=0)
    together = fnnet.fit(ensemble, params, x, y, loss=fnnet.ensemble_loss("mse"), validation_split=0.25,
                         **settings)
    assert set(together.history) == {"loss", "val_loss"}
    for i, key in enumerate(jax.random.split(rng, N)):
        alone = fnnet.fit(mlp(), mlp().init(key, (-1, 4))[1], x, y, loss="mse", validation_split=0.25,
                          **settings)
        tree_allclose(fnnet.member_params(together.params, i), alone.params, rtol=1e-4, atol=1e-5)
    predictions = fnnet.predict(fnnet.Ensemble(mlp(), N, reduce="mean"), together.params, x)
    assert predictions.shape == (16, 1)


def test_ensemble_metric_scores_the_members_average(data):
    x, y = data
    _, params = fnnet.Ensemble(mlp(), N).init(jax.random.PRNGKey(0), (-1, 4))
    members = fnnet.Ensemble(mlp(), N).apply(params, x)
    average = fnnet.Ensemble(mlp(), N, reduce="mean").apply(params, x)
    metric = fnnet.ensemble_metric("rmse")
    assert metric.name == "ensemble_rmse"
    np.testing.assert_allclose(metric(y, members), np.sqrt(np.mean((average - y) ** 2)), rtol=1e-5)
    member_rmse = [np.sqrt(np.mean((members[:, i] - y) ** 2)) for i in range(N)]
    assert float(metric(y, members)) <= np.mean(member_rmse) + 1e-6   # averaging never hurts RMSE


def test_members_draw_different_dropout_masks():
    member = fnnet.serial(fnnet.Dropout(0.5))
    ensemble = fnnet.Ensemble(member, 2)
    _, params = ensemble.init(jax.random.PRNGKey(0), (-1, 8))
    y = ensemble.apply(params, jnp.ones((4, 8)), train=True, rng=jax.random.PRNGKey(3))
    assert not np.array_equal(y[:, 0], y[:, 1])
    np.testing.assert_array_equal(ensemble.apply(params, jnp.ones((4, 8))), 1.0)


def test_each_member_keeps_its_own_state():
    ensemble = fnnet.Ensemble(fnnet.serial(fnnet.Dense(3), fnnet.BatchNorm()), 2)
    _, params, state = ensemble.init_with_state(jax.random.PRNGKey(0), (-1, 4))
    x = jax.random.normal(jax.random.PRNGKey(2), (8, 4))
    _, new_state = ensemble.apply_with_state(params, state, x, train=True)
    means = new_state["batch_norm"]["mean"]
    assert means.shape == (2, 3) and not np.allclose(means[0], means[1])


def test_composes_with_serial_summary_and_spec(data):
    x, _ = data
    model = fnnet.serial(fnnet.Ensemble(mlp(), N, reduce="mean"), fnnet.Relu)
    shape, params = model.init(jax.random.PRNGKey(0), (-1, 4))
    assert shape == (-1, 1) and model.apply(params, x).shape == (16, 1)
    assert fnnet.count_params(params) == N * fnnet.count_params(mlp().init(jax.random.PRNGKey(0), (-1, 4))[1])
    assert "ensemble/serial/dense (Dense(6)) x3" in fnnet.summary(model, (-1, 4))
    rebuilt = fnnet.from_spec(fnnet.to_spec(model))
    np.testing.assert_allclose(rebuilt.apply(params, x), model.apply(params, x), rtol=1e-6)


def test_errors_name_the_ensemble_and_the_member_layer():
    ensemble = fnnet.Ensemble(mlp(), N)
    _, params = ensemble.init(jax.random.PRNGKey(0), (-1, 4))
    with pytest.raises(fnnet.LayerError, match=r"^Ensemble\(3\)/serial\[0\]/Dense\(6\)"):
        ensemble.apply(params, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="n=0"):
        fnnet.Ensemble(mlp(), 0)
    with pytest.raises(ValueError, match="reduce"):
        fnnet.Ensemble(mlp(), 2, reduce="median")
    with pytest.raises(ValueError, match="members"):
        fnnet.ensemble_loss(mse)(jnp.zeros(3), jnp.zeros(3))
    with pytest.raises(ValueError, match="members"):
        fnnet.ensemble_metric("mae")(jnp.zeros(3), jnp.zeros(3))

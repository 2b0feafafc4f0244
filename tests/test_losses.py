"""Losses: Keras's formulas per example, names, shapes, callables, and agreement with Keras 3."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import losses

RNG = np.random.default_rng(0)
Y_REG = RNG.normal(size=(6, 3)).astype(np.float32)
P_REG = RNG.normal(size=(6, 3)).astype(np.float32)
Y_BIN = (RNG.uniform(size=(6, 1)) > 0.5).astype(np.float32)
LOGITS_BIN = RNG.normal(size=(6, 1)).astype(np.float32)
LABELS = RNG.integers(0, 4, size=6)
LOGITS_CAT = RNG.normal(size=(6, 4)).astype(np.float32)
ONE_HOT = np.eye(4, dtype=np.float32)[LABELS]


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_regression_losses_follow_their_formulas_per_example():
    diff = P_REG.astype(np.float64) - Y_REG
    np.testing.assert_allclose(losses.mean_squared_error(Y_REG, P_REG), np.mean(diff ** 2, 1), rtol=1e-6)
    np.testing.assert_allclose(losses.mean_absolute_error(Y_REG, P_REG), np.mean(np.abs(diff), 1), rtol=1e-6)
    small = np.abs(diff) <= 1.0
    huber = np.where(small, 0.5 * diff ** 2, np.abs(diff) - 0.5)
    np.testing.assert_allclose(losses.huber(Y_REG, P_REG), np.mean(huber, 1), rtol=1e-6)


def test_cross_entropies_from_logits_equal_those_from_probabilities():
    bce = -(Y_BIN * np.log(sigmoid(LOGITS_BIN)) + (1 - Y_BIN) * np.log(1 - sigmoid(LOGITS_BIN)))[:, 0]
    np.testing.assert_allclose(losses.binary_crossentropy(Y_BIN, sigmoid(LOGITS_BIN)), bce, rtol=1e-5)
    np.testing.assert_allclose(losses.binary_crossentropy(Y_BIN, LOGITS_BIN, from_logits=True), bce, rtol=1e-5)
    cce = -np.log(softmax(LOGITS_CAT)[np.arange(6), LABELS])
    np.testing.assert_allclose(losses.categorical_crossentropy(ONE_HOT, softmax(LOGITS_CAT)), cce, rtol=1e-5)
    np.testing.assert_allclose(losses.categorical_crossentropy(ONE_HOT, LOGITS_CAT, from_logits=True), cce, rtol=1e-5)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(LABELS, softmax(LOGITS_CAT)), cce, rtol=1e-5)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(LABELS[:, None], LOGITS_CAT, from_logits=True),
                               cce, rtol=1e-5)


def test_probabilities_are_clipped_so_certain_mistakes_stay_finite():
    value = losses.binary_crossentropy(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert np.all(np.isfinite(value)) and np.all(np.asarray(value) > 15)


def test_targets_without_the_trailing_axis_do_not_broadcast_to_a_matrix():
    y_true = np.arange(5, dtype=np.float32)
    y_pred = y_true[:, None] + 1.0
    assert losses.mean_squared_error(y_true, y_pred).shape == (5,)
    assert float(fnnet.get_loss("mse")(y_true, y_pred)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"y_true has shape \(5, 2\) but y_pred has shape \(5, 1\)"):
        losses.mean_squared_error(np.ones((5, 2)), y_pred)
    with pytest.raises(ValueError, match="integer labels of shape"):
        losses.sparse_categorical_crossentropy(np.ones((6, 2)), LOGITS_CAT)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_every_name_resolves_to_a_scalar_batch_loss(name):
    loss = fnnet.get_loss(name)
    if "sparse" in name:
        y_true, y_pred = LABELS, LOGITS_CAT if "logits" in name else softmax(LOGITS_CAT)
    elif "categorical" in name:
        y_true, y_pred = ONE_HOT, LOGITS_CAT if "logits" in name else softmax(LOGITS_CAT)
    elif "binary" in name:
        y_true, y_pred = Y_BIN, LOGITS_BIN if "logits" in name else sigmoid(LOGITS_BIN)
    else:
        y_true, y_pred = Y_REG, P_REG
    assert loss.per_example(y_true, jnp.asarray(y_pred)).shape == (6,)
    assert np.isfinite(float(loss(y_true, jnp.asarray(y_pred))))
    assert loss.from_logits == name.endswith("_from_logits")


def test_unknown_names_and_non_callables_are_clear_errors():
    with pytest.raises(ValueError, match="unknown loss 'msqe'; known names: .*mean_squared_error"):
        fnnet.get_loss("msqe")
    with pytest.raises(TypeError, match="loss must be"):
        fnnet.get_loss(3)


@pytest.mark.parametrize("rows, scale", [(1, 0.5), (3, 2.0), (8, 7.0)])
def test_a_callable_batch_mean_is_recovered_exactly_from_its_per_example_values(rows, scale):
    x = scale * np.linspace(-1, 1, rows * 2, dtype=np.float32).reshape(rows, 2)

    def my_loss(y_true, y_pred):
        return jnp.mean(jnp.abs(y_true - y_pred) ** 1.5)

    loss = fnnet.get_loss(my_loss)
    assert loss.name == "my_loss"
    per_example = loss.per_example(x, jnp.zeros_like(x))
    assert per_example.shape == (rows,)
    assert float(jnp.mean(per_example)) == pytest.approx(float(my_loss(x, jnp.zeros_like(x))), rel=1e-5)


def test_losses_agree_with_keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    cases = [
        ("mean_squared_error", keras.losses.mean_squared_error, Y_REG, P_REG),
        ("mean_absolute_error", keras.losses.mean_absolute_error, Y_REG, P_REG),
        ("huber", keras.losses.huber, Y_REG, P_REG),
        ("binary_crossentropy", keras.losses.binary_crossentropy, Y_BIN, sigmoid(LOGITS_BIN)),
        ("categorical_crossentropy", keras.losses.categorical_crossentropy, ONE_HOT, softmax(LOGITS_CAT)),
        ("sparse_categorical_crossentropy", keras.losses.sparse_categorical_crossentropy, LABELS, softmax(LOGITS_CAT)),
    ]
    for name, keras_fn, y_true, y_pred in cases:
        ours = fnnet.get_loss(name).per_example(y_true, jnp.asarray(y_pred, jnp.float32))
        np.testing.assert_allclose(ours, np.asarray(keras_fn(y_true, y_pred)).reshape(6), rtol=2e-5, atol=1e-6,
                                   err_msg=name)
    keras_logits = keras.losses.BinaryCrossentropy(from_logits=True)(Y_BIN, LOGITS_BIN)
    assert float(fnnet.get_loss("binary_crossentropy_from_logits")(Y_BIN, LOGITS_BIN)) == pytest.approx(
        float(keras_logits), rel=1e-5)

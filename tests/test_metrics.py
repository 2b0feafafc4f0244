"""Metrics: Keras's accuracy resolution, exact whole-data-set values, names."""

import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import metrics

PROBS = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]], np.float32)
LABELS = np.array([1, 2, 2, 1])


def test_accuracy_is_chosen_from_the_shapes_as_keras_does():
    sparse = fnnet.get_metric("accuracy")(LABELS, PROBS)
    one_hot = fnnet.get_metric("accuracy")(np.eye(3)[LABELS], PROBS)
    binary = fnnet.get_metric("acc")(np.array([1, 0, 1]), np.array([[0.9], [0.4], [0.2]]))
    assert float(sparse) == float(one_hot) == pytest.approx(0.75)
    assert float(binary) == pytest.approx(2 / 3)


def test_binary_accuracy_of_logits_thresholds_at_zero_when_the_loss_says_logits():
    logits = np.array([[0.3], [-0.2], [-1.0]], np.float32)
    y = np.array([1, 0, 1])
    assert float(fnnet.get_metric("accuracy", loss="binary_crossentropy_from_logits")(y, logits)) == pytest.approx(2 / 3)
    assert float(fnnet.get_metric("accuracy", loss="binary_crossentropy")(y, logits)) == pytest.approx(1 / 3)


def test_named_accuracies_per_example():
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(LABELS, PROBS), [1, 0, 1, 1])
    np.testing.assert_array_equal(metrics.categorical_accuracy(np.eye(3)[LABELS], PROBS), [1, 0, 1, 1])
    np.testing.assert_array_equal(metrics.binary_accuracy(np.array([[1, 0]]), np.array([[0.7, 0.6]])), [0.5])


def test_rmse_is_the_root_of_the_data_set_mean_not_a_mean_of_batch_roots():
    y_true, y_pred = np.zeros(4, np.float32), np.array([1.0, 1.0, 1.0, 5.0], np.float32)
    rmse = fnnet.get_metric("rmse")
    per_example = rmse.per_example(y_true, y_pred)
    assert float(rmse.finalize(jnp.mean(per_example))) == pytest.approx(np.sqrt(7.0))
    batch_roots = np.mean([float(rmse(y_true[:2], y_pred[:2])), float(rmse(y_true[2:], y_pred[2:]))])
    assert batch_roots != pytest.approx(np.sqrt(7.0))


def test_callable_metrics_use_their_name_and_are_exact_per_example():
    def max_error(y_true, y_pred):
        return jnp.mean(jnp.max(jnp.abs(y_true - y_pred), axis=-1))

    metric = fnnet.get_metric(max_error)
    assert metric.name == "max_error"
    np.testing.assert_allclose(metric.per_example(np.zeros((2, 2)), np.array([[1.0, -3.0], [0.5, 0.0]])), [3.0, 0.5])


def test_metric_names_are_checked():
    with pytest.raises(ValueError, match="unknown metric 'accuracyy'"):
        fnnet.get_metric("accuracyy")
    with pytest.raises(ValueError, match="unique"):
        metrics.get_metrics(["mae", "mae"])
    with pytest.raises(ValueError, match="clash"):
        metrics.get_metrics([fnnet.metrics.Metric("val_x", metrics.binary_accuracy)])
    assert [m.name for m in metrics.get_metrics("mae")] == ["mae"]


def test_metrics_agree_with_keras():
    import os
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    assert float(keras.metrics.sparse_categorical_accuracy(LABELS, PROBS).mean()) == pytest.approx(
        float(fnnet.get_metric("sparse_categorical_accuracy")(LABELS, PROBS)))
    y_true, y_pred = np.array([[0.0], [1.0], [2.0]]), np.array([[0.5], [1.0], [4.0]])
    rmse = keras.metrics.RootMeanSquaredError()
    rmse.update_state(y_true, y_pred)
    assert float(rmse.result()) == pytest.approx(float(fnnet.get_metric("rmse")(y_true, y_pred)), rel=1e-6)


def test_named_metrics_average_over_several_outputs():
    y = (np.array([1, 0]), np.array([1, 1]))
    pred = (np.array([[0.9], [0.2]]), np.array([[0.8], [0.1]]))
    assert float(fnnet.get_metric("binary_accuracy")(y, pred)) == pytest.approx(0.75)

"""fnnet.training.steps: padded rows left out of every reduction, metric states shaped for the carry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.training.steps import loss_of_rows, program

LOSSES = [
    fnnet.losses.MeanSquaredError(),
    fnnet.losses.MeanSquaredError(reduction="sum"),
    fnnet.losses.MeanSquaredError(reduction="mean_with_sample_weight"),
    fnnet.losses.SparseCategoricalCrossentropy(ignore_class=0),
    fnnet.losses.SparseCategoricalCrossentropy(ignore_class=0, reduction="mean_with_sample_weight"),
]


def batch(loss, rows, seed):
    rng = np.random.default_rng(seed)
    if "sparse" in loss.name:
        y_pred = jax.nn.softmax(jnp.asarray(rng.normal(size=(rows, 4)), jnp.float32))
        return jnp.asarray(rng.integers(0, 4, rows)), y_pred
    return jnp.asarray(rng.normal(size=(rows, 2)), jnp.float32), jnp.asarray(rng.normal(size=(rows, 2)), jnp.float32)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda l: f"{l.name}-{l.reduction}")
@pytest.mark.parametrize("weighted", [False, True])
def test_padded_rows_are_left_out_of_the_reduction(loss, weighted):
    y_true, y_pred = batch(loss, 8, seed=0)
    weight = jnp.asarray(np.random.default_rng(1).uniform(0.1, 2.0, 8), jnp.float32) if weighted else None
    real = 5
    keep = jnp.arange(8) < real
    expected = loss(y_true[:real], y_pred[:real], None if weight is None else weight[:real])
    padded_weight = None if weight is None else jnp.where(keep, weight, 0.0)
    got = loss_of_rows(loss, y_true, y_pred, padded_weight, keep)
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)
    assert float(loss_of_rows(loss, y_true, y_pred, weight)) == float(loss(y_true, y_pred, weight))


def test_zero_states_have_the_structure_and_shapes_of_a_batch_state():
    model = fnnet.serial(fnnet.Dense(3), fnnet.Softmax)
    prog = program(model, "categorical_crossentropy", ["auc", "accuracy", "r2_score"], "adam")
    params = model.init(jax.random.PRNGKey(0), (-1, 2))[1]
    x, y = np.ones((6, 2), np.float32), np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    zeros = prog.zero_states(params, None, x, y)
    states = tuple(m.state(y, model.apply(params, x), jnp.ones(6)) for m in prog.metrics)
    assert jax.tree_util.tree_structure(zeros) == jax.tree_util.tree_structure(states)
    for z, s in zip(jax.tree_util.tree_leaves(zeros), jax.tree_util.tree_leaves(states)):
        assert z.shape == s.shape and z.dtype == s.dtype and not np.any(z)

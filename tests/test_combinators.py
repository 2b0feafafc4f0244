"""Combinators: shapes, params keys, masks and rngs threaded to children."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet


def test_fan_out_parallel_fan_in():
    model = fnnet.serial(fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(4), fnnet.Dense(5)), fnnet.FanInConcat())
    out_shape, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    assert out_shape == (-1, 9)
    assert set(params["parallel"]) == {"dense", "dense_1"}
    assert model.apply(params, jnp.ones((2, 3))).shape == (2, 9)


def test_fan_in_sum_adds():
    xs = (jnp.ones((2, 3)), 2 * jnp.ones((2, 3)), 3 * jnp.ones((2, 3)))
    np.testing.assert_allclose(fnnet.FanInSum.apply((), xs), 6.0)
    assert fnnet.FanInSum.init(None, ((-1, 3), (-1, 3)))[0] == (-1, 3)


def test_fan_in_concat_axis_and_errors():
    assert fnnet.FanInConcat(axis=1).init(None, ((-1, 2, 3), (-1, 4, 3)))[0] == (-1, 6, 3)
    with pytest.raises(fnnet.LayerError, match="FanInConcat"):
        fnnet.FanInConcat().init(None, ((-1, 2, 3), (-1, 4, 3)))


def test_parallel_needs_a_tuple_of_the_right_length():
    with pytest.raises(fnnet.LayerError, match="tuple of 2 inputs"):
        fnnet.parallel(fnnet.Dense(1), fnnet.Dense(1)).init(jax.random.PRNGKey(0), (-1, 3))


def test_residual_adds_its_input():
    block = fnnet.Residual(fnnet.Dense(3, W_init="zeros"))
    _, params = block.init(jax.random.PRNGKey(0), (-1, 3))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3))
    np.testing.assert_allclose(block.apply(params, x), x)  # zero branch: identity
    assert block.name == "residual" and block.description == "Residual"
    assert set(params) == {"parallel"} and set(params["parallel"]) == {"dense"}


def test_residual_keys_are_the_ones_its_docstring_spells():
    _, params = fnnet.Residual(fnnet.serial(fnnet.Dense(3), fnnet.Relu)).init(jax.random.PRNGKey(0), (None, 3))
    assert jax.tree_util.tree_map(jnp.shape, params) == {
        "parallel": {"serial": {"dense": {"kernel": (3, 3), "bias": (3,)}}}}
    assert "{'parallel': {'serial': {'dense': ...}}}" in fnnet.Residual.__doc__


def test_shape_dependent_builds_from_input_shape():
    layer = fnnet.shape_dependent(lambda shape: fnnet.Dense(shape[-1] + 1))
    out_shape, params = layer.init(jax.random.PRNGKey(0), (-1, 4))
    assert out_shape == (-1, 5)
    assert layer.apply(params, jnp.ones((2, 4))).shape == (2, 5)


def test_rng_is_split_across_children():
    model = fnnet.serial(fnnet.Dropout(0.5), fnnet.Dropout(0.5))
    x = jnp.ones((1, 1000))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 1000))
    y = model.apply(params, x, train=True, rng=jax.random.PRNGKey(0))
    # independent masks: about a quarter survives both, scaled by 4
    assert 0.2 < float((y > 0).mean()) < 0.3
    np.testing.assert_allclose(y[y > 0], 4.0, rtol=1e-5)


def test_mask_travels_through_serial_to_layers_that_use_it():
    make_mask = fnnet.layer("MakeMask", lambda p, x: x, compute_mask=lambda x, mask: x[..., 0] > 0)
    model = fnnet.serial(make_mask, fnnet.Dense(2), fnnet.Tanh, fnnet.GlobalAveragePooling1D())
    _, params = model.init(jax.random.PRNGKey(0), (-1, 3, 2))
    x = jnp.array([[[1.0, 1.0], [1.0, 2.0], [-1.0, 50.0]]])
    masked = model.apply(params, x)
    unmasked_twin = model.apply(params, x[:, :2])  # the masked step must not count
    np.testing.assert_allclose(masked, unmasked_twin, rtol=1e-6)


def test_masks_fan_out_and_in():
    make_mask = fnnet.layer("MakeMask", lambda p, x: x, compute_mask=lambda x, mask: x[..., 0] > 0)
    seen = {}

    def record(x, mask):
        seen["mask"] = mask
        return mask

    probe = fnnet.layer("Probe", lambda p, x: x, compute_mask=record)
    model = fnnet.serial(make_mask, fnnet.FanOut(2), fnnet.parallel(fnnet.Identity, fnnet.Identity),
                         fnnet.FanInConcat(), probe)
    model.apply(model.init(jax.random.PRNGKey(0), (-1, 2, 1))[1], jnp.array([[[1.0], [-1.0]]]))
    np.testing.assert_array_equal(seen["mask"], [[True, False]])


def test_wrong_params_name_the_missing_entry():
    with pytest.raises(fnnet.LayerError, match="serial\\[1\\]/Dense\\(2\\): no entry 'kernel'"):
        fnnet.serial(fnnet.Dropout(0.5), fnnet.Dense(2)).apply({}, jnp.ones((1, 2)))
    with pytest.raises(fnnet.LayerError, match="expected params and state as dicts"):
        fnnet.serial(fnnet.Dense(2)).apply([1], jnp.ones((1, 2)))

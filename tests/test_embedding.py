"""Embedding: lookup, Keras's layout and initializer, and the padding mask it makes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet

KEY = jax.random.PRNGKey(0)


def test_looks_up_rows_of_the_embeddings_matrix():
    layer = fnnet.Embedding(10, 3)
    shape, params = layer.init(KEY, (-1, 4))
    ids = jnp.array([[1, 2, 9, 0], [3, 3, 3, 3]])
    vectors = layer.apply(params, ids)
    assert shape == (-1, 4, 3) and vectors.shape == (2, 4, 3)
    np.testing.assert_array_equal(vectors, np.asarray(params["embeddings"])[np.asarray(ids)])


def test_params_use_keras_layout_and_uniform_initializer():
    _, params = fnnet.Embedding(2000, 16).init(KEY, (-1, 5))
    table = np.asarray(params["embeddings"])
    assert list(params) == ["embeddings"] and table.shape == (2000, 16)
    # Keras's 'uniform': U[-0.05, 0.05), centred on zero.
    assert table.min() >= -0.05 and table.max() < 0.05
    assert table.min() < -0.045 and table.max() > 0.045


def test_other_initializers_by_name():
    _, params = fnnet.Embedding(5, 2, "zeros").init(KEY, (-1, 3))
    np.testing.assert_array_equal(params["embeddings"], np.zeros((5, 2)))


def test_mask_zero_marks_padding_ids():
    layer = fnnet.Embedding(10, 3, mask_zero=True)
    _, params = layer.init(KEY, (-1, 4))
    ids = jnp.array([[0, 0, 5, 6], [7, 8, 0, 0]])
    _, _, mask = layer.call(params, None, ids)
    np.testing.assert_array_equal(mask, np.asarray(ids) != 0)


def test_without_mask_zero_an_incoming_mask_is_passed_on():
    layer = fnnet.Embedding(10, 3)
    _, params = layer.init(KEY, (-1, 2))
    incoming = jnp.array([[True, False]])
    _, _, mask = layer.call(params, None, jnp.array([[0, 4]]), mask=incoming)
    assert mask is incoming
    _, _, none = layer.call(params, None, jnp.array([[0, 4]]))
    assert none is None


def test_mask_travels_through_serial_to_later_layers():
    seen = []

    def record_mask(params, x, *, mask):
        seen.append(mask)
        return x

    model = fnnet.serial(fnnet.Embedding(10, 3, mask_zero=True), fnnet.Dense(2), fnnet.layer("Spy", record_mask))
    _, params = model.init(KEY, (-1, 3))
    model.apply(params, jnp.array([[4, 0, 0]]))
    np.testing.assert_array_equal(seen[-1], [[True, False, False]])


def test_float_ids_are_cast_like_keras():
    layer = fnnet.Embedding(10, 3)
    _, params = layer.init(KEY, (-1, 2))
    np.testing.assert_array_equal(layer.apply(params, jnp.array([[2.0, 7.0]])),
                                  layer.apply(params, jnp.array([[2, 7]])))


def test_gradient_reaches_only_the_looked_up_rows():
    layer = fnnet.Embedding(6, 2)
    _, params = layer.init(KEY, (-1, 3))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply(p, jnp.array([[1, 4, 4]])))))(params)
    np.testing.assert_array_equal(grads["embeddings"][:, 0], [0, 1, 0, 0, 2, 0])


def test_spec_is_recorded():
    assert fnnet.Embedding(100, 8, mask_zero=True).spec == ("Embedding", (100, 8), {"mask_zero": True})


def test_unknown_initializer_is_an_error():
    with pytest.raises(ValueError, match="unknown initializer 'nope'"):
        fnnet.Embedding(4, 2, "nope")


def test_out_of_range_ids_never_wrap_around_they_give_nan_vectors():
    layer = fnnet.Embedding(10, 3)
    _, params = layer.init(KEY, (-1, 3))
    out = jax.jit(layer.apply)(params, jnp.array([[-1, 10, 4]]))
    assert bool(jnp.isnan(out[0, 0]).all()) and bool(jnp.isnan(out[0, 1]).all())
    np.testing.assert_array_equal(out[0, 2], params["embeddings"][4])

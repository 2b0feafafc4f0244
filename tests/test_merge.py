"""Merge layers (fnnet/layers/merge.py): the layer contract, Keras's equations and masks, specs,
and, where Keras is installed, Keras itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.testing import check_layer

PAIR = ((-1, 3), (-1, 3))
TRIPLE = ((-1, 2, 4), (-1, 2, 4), (-1, 2, 4))

# (id, factory, input shapes, numpy equation over the list of inputs)
CASES = [
    ("Add", fnnet.Add, TRIPLE, lambda xs: xs[0] + xs[1] + xs[2]),
    ("Subtract", fnnet.Subtract, PAIR, lambda xs: xs[0] - xs[1]),
    ("Multiply", fnnet.Multiply, TRIPLE, lambda xs: xs[0] * xs[1] * xs[2]),
    ("Average", fnnet.Average, TRIPLE, lambda xs: (xs[0] + xs[1] + xs[2]) / 3),
    ("Maximum", fnnet.Maximum, TRIPLE, lambda xs: np.maximum(np.maximum(xs[0], xs[1]), xs[2])),
    ("Minimum", fnnet.Minimum, TRIPLE, lambda xs: np.minimum(np.minimum(xs[0], xs[1]), xs[2])),
    ("Concatenate", fnnet.Concatenate, ((-1, 3), (-1, 2)), lambda xs: np.concatenate(xs, axis=-1)),
    ("Concatenate axis 1", lambda: fnnet.Concatenate(axis=1), ((-1, 2, 3), (-1, 1, 3)),
     lambda xs: np.concatenate(xs, axis=1)),
    ("Dot vectors", lambda: fnnet.Dot(axes=1), PAIR, lambda xs: np.sum(xs[0] * xs[1], axis=1, keepdims=True)),
    ("Dot sequences", lambda: fnnet.Dot(axes=(2, 2)), ((-1, 2, 4), (-1, 3, 4)),
     lambda xs: np.einsum("btd,bsd->bts", xs[0], xs[1])),
    ("Dot normalize", lambda: fnnet.Dot(axes=1, normalize=True), PAIR,
     lambda xs: np.sum(xs[0] * xs[1], 1, keepdims=True)
     / (np.linalg.norm(xs[0], axis=1, keepdims=True) * np.linalg.norm(xs[1], axis=1, keepdims=True))),
]


def inputs(shapes, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch,) + tuple(s[1:])).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("name,factory,shapes,equation", CASES, ids=[c[0] for c in CASES])
def test_merge_layer_keeps_the_layer_contract(name, factory, shapes, equation):
    check_layer(factory(), shapes, max_examples=5)


@pytest.mark.parametrize("name,factory,shapes,equation", CASES, ids=[c[0] for c in CASES])
def test_merge_layer_computes_keras_equation(name, factory, shapes, equation):
    layer = factory()
    xs = inputs(shapes)
    out_shape, params = layer.init(jax.random.PRNGKey(0), shapes)
    y = layer.apply(params, [jnp.asarray(x) for x in xs])
    np.testing.assert_allclose(np.asarray(y), equation(xs), rtol=1e-5, atol=1e-6)
    assert out_shape == (-1,) + y.shape[1:]


@pytest.mark.parametrize("name,factory,shapes,equation", CASES, ids=[c[0] for c in CASES])
def test_merge_layer_spec_round_trip(name, factory, shapes, equation):
    layer = factory()
    rebuilt = fnnet.from_spec(fnnet.to_spec(layer))
    assert fnnet.to_spec(rebuilt) == fnnet.to_spec(layer)
    xs = [jnp.asarray(x) for x in inputs(shapes)]
    np.testing.assert_array_equal(np.asarray(rebuilt.apply({}, xs)), np.asarray(layer.apply({}, xs)))


def test_merge_layers_work_after_parallel_in_a_combinator():
    model = fnnet.serial(fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(3), fnnet.Dense(3)), fnnet.Subtract())
    shape, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    x = jnp.ones((5, 2))
    a = x @ params["parallel"]["dense"]["kernel"]
    b = x @ params["parallel"]["dense_1"]["kernel"]
    assert shape == (-1, 3)
    np.testing.assert_allclose(np.asarray(model.apply(params, x)), np.asarray(a - b), rtol=1e-6)


@pytest.mark.parametrize("factory,shapes,message", [
    (fnnet.Add, (-1, 3), "merges a list of inputs"),
    (fnnet.Subtract, ((-1, 3), (-1, 3), (-1, 3)), "exactly 2 inputs"),
    (fnnet.Add, ((-1, 3),), "at least 2 inputs"),
    (fnnet.Add, ((-1, 3), (-1, 4)), "axis 1 differs"),
    (fnnet.Concatenate, ((-1, 3, 2), (-1, 4, 5)), "agree on every other axis"),
    (lambda: fnnet.Dot(axes=1), ((-1, 3), (-1, 4)), "must be equal"),
    (lambda: fnnet.Dot(axes=0), ((-1, 3), (-1, 3)), "batch axis"),
])
def test_bad_merge_inputs_are_named_errors(factory, shapes, message):
    with pytest.raises(fnnet.LayerError, match=message):
        factory().init(jax.random.PRNGKey(0), shapes)


def test_dot_rejects_bad_axes_at_construction():
    with pytest.raises(ValueError, match="int or a pair"):
        fnnet.Dot(axes=(1, 2, 3))


# ---------------------------------------------------------------- masks, as Keras merges them

M1 = jnp.array([[True, True, False]])
M2 = jnp.array([[True, False, False]])


def test_elementwise_merge_mask_is_the_or_and_none_unless_every_input_has_one():
    x = [jnp.ones((1, 3, 2)), jnp.ones((1, 3, 2))]
    _, _, both = fnnet.Add().call({}, None, x, mask=(M1, M2))
    _, _, one = fnnet.Add().call({}, None, x, mask=(M1, None))
    assert both.tolist() == [[True, True, False]]
    assert one is None


def test_concatenate_mask_counts_a_missing_mask_as_all_true_and_reduces_with_any():
    x = [jnp.ones((1, 3, 2)), jnp.ones((1, 3, 4))]
    _, _, with_missing = fnnet.Concatenate().call({}, None, x, mask=(M2, None))
    _, _, both = fnnet.Concatenate().call({}, None, x, mask=(M1, M2))
    assert with_missing.tolist() == [[True, True, True]]
    assert both.tolist() == [[True, True, False]]
    _, _, time_axis = fnnet.Concatenate(axis=1).call({}, None, [jnp.ones((1, 3, 2)), jnp.ones((1, 3, 2))],
                                                     mask=(M1, M2))
    assert time_axis.tolist() == [[True, True, False, True, False, False]]


def test_dot_drops_masks():
    _, _, mask = fnnet.Dot(axes=2).call({}, None, [jnp.ones((1, 3, 2)), jnp.ones((1, 3, 2))], mask=(M1, M2))
    assert mask is None


# ---------------------------------------------------------------- Keras itself

@pytest.fixture(scope="module")
def keras():
    from keras_backend import keras_or_skip
    return keras_or_skip("merge layer")


KERAS_NAMES = {"Concatenate axis 1": ("Concatenate", {"axis": 1}), "Dot vectors": ("Dot", {"axes": 1}),
               "Dot sequences": ("Dot", {"axes": (2, 2)}), "Dot normalize": ("Dot", {"axes": 1, "normalize": True})}


@pytest.mark.parametrize("name,factory,shapes,equation", CASES, ids=[c[0] for c in CASES])
def test_merge_layer_matches_keras(keras, name, factory, shapes, equation):
    keras_name, kwargs = KERAS_NAMES.get(name, (name, {}))
    xs = inputs(shapes, seed=3)
    expected = np.asarray(getattr(keras.layers, keras_name)(**kwargs)(xs))
    np.testing.assert_allclose(np.asarray(factory().apply({}, [jnp.asarray(x) for x in xs])), expected,
                               rtol=1e-5, atol=1e-6)


def test_merge_masks_match_keras(keras):
    x = [np.ones((1, 3, 2), np.float32), np.ones((1, 3, 4), np.float32)]
    masks = [np.array([[True, True, False]]), np.array([[True, False, False]])]
    for ours, theirs in ((fnnet.Concatenate(), keras.layers.Concatenate()),
                         (fnnet.Maximum(), keras.layers.Maximum())):
        xs = x if isinstance(theirs, keras.layers.Concatenate) else [x[0], x[0]]
        expected = np.asarray(theirs.compute_mask(xs, masks))
        got = ours.call({}, None, [jnp.asarray(a) for a in xs], mask=tuple(jnp.asarray(m) for m in masks))[2]
        np.testing.assert_array_equal(np.asarray(got), expected)

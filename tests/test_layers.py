"""stax parity: the cases of jax's stax test-suite, run against fnnet's names.

The shape that ``init`` declares must be the shape ``apply`` returns, for every layer
and combinator of ``jax.example_libraries.stax``; stax layers mix into ``fnnet.serial``.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.example_libraries import stax

import fnnet


def concrete(shape, batch=2):
    return tuple(batch if d == -1 else d for d in shape)


def check_shape_agreement(layer, input_shape, dtype=jnp.float32, **apply_kwargs):
    rng_init, rng_x, rng_apply = jax.random.split(jax.random.PRNGKey(0), 3)
    out_shape, params = layer.init(rng_init, input_shape)
    x = jax.random.normal(rng_x, concrete(input_shape)).astype(dtype)
    y = layer.apply(params, x, rng=rng_apply, **apply_kwargs)
    assert y.shape == concrete(out_shape), (layer.name, out_shape, y.shape)
    return y


STAX_LAYER_NAMES = ["Dense", "Conv", "ConvTranspose", "Conv1DTranspose", "GeneralConv", "GeneralConvTranspose",
                    "BatchNorm", "Relu", "Sigmoid", "Tanh", "Elu", "LeakyRelu", "Selu", "Gelu", "Softplus", "Exp",
                    "LogSoftmax", "Softmax", "Identity", "Flatten", "MaxPool", "AvgPool", "SumPool", "Dropout",
                    "FanOut", "FanInSum", "FanInConcat", "serial", "parallel", "shape_dependent", "elementwise"]


@pytest.mark.parametrize("name", STAX_LAYER_NAMES)
def test_every_stax_name_exists(name):
    assert hasattr(stax, name), name  # the list is stax's
    assert hasattr(fnnet, name), f"fnnet lacks stax's {name}"


@pytest.mark.parametrize("out_dim,input_shape", [(1, (2, 3)), (10, (-1, 3)), (4, (-1, 5, 3))])
def test_dense_shape(out_dim, input_shape):
    check_shape_agreement(fnnet.Dense(out_dim), input_shape)


@pytest.mark.parametrize("channels,filter_shape,padding,strides,input_shape", [
    (c, f, p, s, i) for c, f, p, s, i in itertools.product(
        [3], [(1, 1), (2, 3)], ["SAME", "VALID"], [None, (2, 1)], [(2, 10, 11, 1)])])
def test_conv_shape(channels, filter_shape, padding, strides, input_shape):
    check_shape_agreement(fnnet.Conv(channels, filter_shape, strides=strides, padding=padding), input_shape)


@pytest.mark.parametrize("channels,filter_shape,padding,strides", list(itertools.product(
    [3], [(1, 1), (2, 3)], ["SAME", "VALID"], [None, (2, 1)])))
def test_conv_transpose_shape(channels, filter_shape, padding, strides):
    check_shape_agreement(fnnet.ConvTranspose(channels, filter_shape, strides=strides, padding=padding),
                          (2, 10, 11, 1))


@pytest.mark.parametrize("channels,filter_shape,padding,strides", list(itertools.product(
    [3], [(1,), (3,)], ["SAME", "VALID"], [None, (2,)])))
def test_conv1d_transpose_shape(channels, filter_shape, padding, strides):
    check_shape_agreement(fnnet.Conv1DTranspose(channels, filter_shape, strides=strides, padding=padding),
                          (2, 10, 1))


@pytest.mark.parametrize("dimension_numbers", [("NCHW", "OIHW", "NCHW"), ("NHWC", "HWIO", "NHWC"),
                                               ("NHCW", "HOIW", "CWNH")])
def test_general_conv_layouts(dimension_numbers):
    lhs = dimension_numbers[0]
    sizes = {"N": 2, "C": 3, "H": 9, "W": 10}
    check_shape_agreement(fnnet.GeneralConv(dimension_numbers, 4, (3, 2), padding="SAME"),
                          tuple(sizes[c] for c in lhs))
    check_shape_agreement(fnnet.GeneralConvTranspose(dimension_numbers, 4, (3, 2), strides=(2, 1)),
                          tuple(sizes[c] for c in lhs))


@pytest.mark.parametrize("pool,window,padding,strides,spec", [
    (p, w, pad, s, spec) for p, w, pad, s, spec in itertools.product(
        ["MaxPool", "AvgPool", "SumPool"], [(3,)], ["SAME", "VALID"], [None, (2,)], [None, "NCH", "HNC"])])
def test_pooling_1d_shape(pool, window, padding, strides, spec):
    shape = {"NCH": (2, 3, 10), "HNC": (10, 2, 3), None: (2, 10, 3)}[spec]
    check_shape_agreement(getattr(fnnet, pool)(window, strides=strides, padding=padding, spec=spec), shape)


@pytest.mark.parametrize("pool,window,padding,strides", list(itertools.product(
    ["MaxPool", "AvgPool", "SumPool"], [(1, 1), (2, 3)], ["SAME", "VALID"], [None, (2, 1)])))
def test_pooling_2d_shape(pool, window, padding, strides):
    check_shape_agreement(getattr(fnnet, pool)(window, strides=strides, padding=padding), (2, 10, 11, 2))


def test_avgpool_same_padding_averages_real_cells_only():
    y = fnnet.AvgPool((3,), padding="SAME").apply({}, jnp.ones((1, 5, 1)))
    np.testing.assert_allclose(y, 1.0)


@pytest.mark.parametrize("input_shape", [(2, 3), (2, 3, 4), (2, 3, 4, 5)])
def test_flatten_shape(input_shape):
    y = check_shape_agreement(fnnet.Flatten, input_shape)
    assert y.shape == (2, int(np.prod(input_shape[1:])))


def test_singletons_are_their_own_constructor():
    assert fnnet.Flatten() is fnnet.Flatten
    assert fnnet.Relu() is fnnet.Relu
    with pytest.raises(TypeError, match="already a layer"):
        fnnet.Relu(3)


@pytest.mark.parametrize("name", ["Relu", "Sigmoid", "Tanh", "Elu", "LeakyRelu", "Selu", "Gelu", "Softplus",
                                  "Exp", "LogSoftmax", "Softmax", "Identity"])
def test_activation_shapes_and_values_match_stax(name):
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 4))
    check_shape_agreement(getattr(fnnet, name), (3, 4))
    y = getattr(fnnet, name).apply({}, x)
    init, apply = getattr(stax, name)
    np.testing.assert_allclose(y, apply(init(jax.random.PRNGKey(0), (3, 4))[1], x), rtol=1e-6, atol=1e-6)


def test_dropout_shape_and_modes():
    x = jnp.ones((4, 50))
    check_shape_agreement(fnnet.Dropout(0.3), (4, 50), train=True)
    assert (fnnet.Dropout(0.9).apply({}, x) == x).all()  # train=False is the identity
    y = fnnet.Dropout(0.9).apply({}, x, train=True, rng=jax.random.PRNGKey(0))
    dropped = float((y == 0).mean())
    assert 0.8 < dropped < 0.97, "rate is the fraction dropped (Keras), not kept (stax)"
    np.testing.assert_allclose(y[y != 0], 10.0, rtol=1e-5)
    with pytest.raises(fnnet.LayerError, match="rng"):
        fnnet.Dropout(0.5).apply({}, x, train=True)
    with pytest.raises(ValueError, match="fraction dropped"):
        fnnet.Dropout(1.5)


@pytest.mark.parametrize("input_shape,axis", [((2, 3, 4, 5), None), ((2, 3, 4, 5), (0, 1, 2)),
                                              ((2, 3, 4, 5), (0, 2, 3)), ((6, 3), None)])
def test_batchnorm_shape_and_normalisation(input_shape, axis):
    layer = fnnet.BatchNorm(axis=axis)
    _, params = layer.init(jax.random.PRNGKey(0), input_shape)
    x = 3.0 + 2.0 * jax.random.normal(jax.random.PRNGKey(1), input_shape)
    y = layer.apply(params, x)
    assert y.shape == x.shape
    axes = tuple(range(len(input_shape) - 1)) if axis is None else axis
    np.testing.assert_allclose(y.mean(axes), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axes), 1.0, atol=1e-3)


def test_batchnorm_matches_stax_without_state():
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 3, 3, 2))
    _, params = fnnet.BatchNorm(axis=(0, 1, 2)).init(jax.random.PRNGKey(0), x.shape)
    init, apply = stax.BatchNorm(axis=(0, 1, 2))
    _, stax_params = init(jax.random.PRNGKey(0), x.shape)
    np.testing.assert_allclose(fnnet.BatchNorm(axis=(0, 1, 2)).apply(params, x), apply(stax_params, x),
                               rtol=1e-5, atol=1e-5)


def test_batchnorm_running_statistics_are_used_in_eval():
    layer = fnnet.BatchNorm(momentum=0.0)  # running stats = last batch's, to check exactly
    _, params, state = layer.init_with_state(jax.random.PRNGKey(0), (-1, 2))
    x = jnp.array([[1.0, 10.0], [3.0, 30.0]])
    _, state = layer.apply_with_state(params, state, x, train=True)
    np.testing.assert_allclose(state["mean"], [2.0, 20.0])
    np.testing.assert_allclose(state["var"], [1.0, 100.0])
    y, same = layer.apply_with_state(params, state, jnp.array([[2.0, 20.0]]))
    np.testing.assert_allclose(y, 0.0, atol=1e-6)  # a single example normalised by the running stats
    assert same is state


def test_softmax_rows_sum_to_one():
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 7)) * 10
    np.testing.assert_allclose(fnnet.Softmax.apply((), x).sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(fnnet.Activation("softmax").apply({}, x).sum(axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "gelu", "elu", "selu", "softplus",
                                  "linear", "swish"])
def test_activation_by_keras_name(name):
    check_shape_agreement(fnnet.Activation(name), (2, 5))


def test_activation_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown activation 'rleu'"):
        fnnet.Activation("rleu")
    with pytest.raises(ValueError, match="unknown initializer"):
        fnnet.Dense(3, W_init="nope")


def test_dense_activation_and_keras_params():
    layer = fnnet.Dense(3, activation="relu")
    _, params = layer.init(jax.random.PRNGKey(0), (-1, 4))
    assert set(params) == {"kernel", "bias"} and (params["bias"] == 0).all()
    assert (layer.apply(params, -jnp.abs(jax.random.normal(jax.random.PRNGKey(1), (2, 4))) * 0 - 1) >= 0).all()
    assert "bias" not in fnnet.Dense(3, use_bias=False).init(jax.random.PRNGKey(0), (-1, 4))[1]


def test_reshape_and_layernorm_lambda():
    check_shape_agreement(fnnet.Reshape((3, 2)), (2, 6))
    y = check_shape_agreement(fnnet.LayerNorm(), (4, 6))
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
    first = fnnet.Lambda(lambda x: x[:, :2] * 2)
    assert check_shape_agreement(first, (3, 5)).shape == (3, 2)


@pytest.mark.parametrize("name", ["MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D",
                                  "GlobalMaxPooling1D"])
def test_keras_pooling_1d(name):
    check_shape_agreement(getattr(fnnet, name)(), (2, 8, 3))


@pytest.mark.parametrize("name", ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                                  "GlobalMaxPooling2D"])
def test_keras_pooling_2d(name):
    check_shape_agreement(getattr(fnnet, name)(), (2, 8, 6, 3))


def test_keras_convs():
    check_shape_agreement(fnnet.Conv1D(4, 3, padding="same", activation="relu"), (2, 9, 2))
    check_shape_agreement(fnnet.Conv2D(4, (3, 2), strides=2), (2, 9, 8, 2))


def test_global_average_pooling_respects_mask():
    x = jnp.array([[[1.0], [3.0], [100.0]]])
    y = fnnet.GlobalAveragePooling1D().apply({}, x, mask=jnp.array([[True, True, False]]))
    np.testing.assert_allclose(y, [[2.0]])


@given(batch=st.integers(1, 4), features=st.integers(1, 6), units=st.integers(1, 6))
def test_property_dense_mlp_declared_shape_is_produced(batch, features, units):
    model = fnnet.serial(fnnet.Dense(units), fnnet.Tanh, fnnet.Dropout(0.2), fnnet.Dense(units + 1))
    out_shape, params = model.init(jax.random.PRNGKey(0), (-1, features))
    y = model.apply(params, jnp.ones((batch, features)), train=True, rng=jax.random.PRNGKey(1))
    assert y.shape == concrete(out_shape, batch)


def _layer_norm_rms_reference(x, gamma, axis, epsilon):
    # Keras's LayerNormalization(rms_scaling=True): x * rsqrt(var(x) + epsilon) * gamma, no centring.
    var = np.var(x, axis=axis, keepdims=True)
    return x / np.sqrt(var + epsilon) * gamma


@pytest.mark.parametrize("axis", [-1, (1, 2)])
def test_layernorm_rms_scaling_matches_keras_formula(axis):
    x = np.random.default_rng(0).normal(1.0, 2.0, size=(3, 4, 5)).astype(np.float32)
    layer = fnnet.LayerNorm(axis, rms_scaling=True)
    _, params = layer.init(jax.random.PRNGKey(0), x.shape)
    assert sorted(params) == ["gamma"]  # Keras builds no beta with rms_scaling
    gamma = np.random.default_rng(1).normal(size=params["gamma"].shape).astype(np.float32)
    y = layer.apply({"gamma": jnp.asarray(gamma)}, jnp.asarray(x))
    shape = [1] * 3
    for a in ((axis,) if isinstance(axis, int) else axis):
        shape[a] = x.shape[a]
    expected = _layer_norm_rms_reference(x.astype(np.float64), gamma.reshape(shape), axis, 1e-3)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_layernorm_rms_scaling_matches_keras():
    from keras_backend import keras_or_skip
    import warnings
    keras = keras_or_skip("LayerNormalization(rms_scaling=True)")
    x = np.random.default_rng(2).normal(0.5, 3.0, size=(4, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras 3 deprecates the option, and says so
        k_layer = keras.layers.LayerNormalization(rms_scaling=True, epsilon=1e-2)
    k_layer(x)  # builds gamma
    k_layer.gamma.assign(np.linspace(0.5, 2.0, 6).astype(np.float32))
    expected = np.asarray(k_layer(x))
    params = {"gamma": jnp.asarray(k_layer.gamma)}
    np.testing.assert_allclose(fnnet.LayerNorm(epsilon=1e-2, rms_scaling=True).apply(params, jnp.asarray(x)),
                               expected, rtol=1e-6, atol=1e-6)


def test_layernorm_rms_scaling_passes_check_layer_and_round_trips():
    import fnnet.testing
    layer = fnnet.LayerNorm(rms_scaling=True)
    fnnet.testing.check_layer(layer, (-1, 5), max_examples=3)
    rebuilt = fnnet.from_spec(fnnet.to_spec(layer))
    _, params = layer.init(jax.random.PRNGKey(0), (-1, 5))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5))
    np.testing.assert_array_equal(rebuilt.apply(params, x), layer.apply(params, x))


@pytest.mark.parametrize("build,message", [
    (lambda: fnnet.MaxPool((0, 2)), "MaxPool: window_shape"),
    (lambda: fnnet.AvgPool((2,), strides=(1.5,)), "AvgPool: strides"),
    (lambda: fnnet.SumPool(2), "SumPool: window_shape"),
    (lambda: fnnet.SumPool((2, True)), "SumPool: window_shape"),
    (lambda: fnnet.MaxPooling1D(0), "MaxPooling1D: pool_size"),
    (lambda: fnnet.MaxPooling2D(pool_size=(2, -1)), "MaxPooling2D: pool_size"),
    (lambda: fnnet.MaxPooling2D(strides=0), "MaxPooling2D: strides"),
    (lambda: fnnet.AveragePooling1D(2, strides=2.0), "AveragePooling1D: strides"),
    (lambda: fnnet.AveragePooling2D(pool_size="2"), "AveragePooling2D: pool_size"),
])
def test_pooling_refuses_bad_window_or_strides_at_construction(build, message):
    with pytest.raises(ValueError, match=f"^{message} must be a"):
        build()


def test_pooling_accepts_numpy_integer_windows_from_a_spec():
    layer = fnnet.MaxPooling2D(pool_size=(np.int64(2), 2), strides=[np.int32(2), 1])
    assert layer.init(jax.random.PRNGKey(0), (-1, 8, 8, 3))[0] == (-1, 4, 7, 3)
    rebuilt = fnnet.from_spec(fnnet.to_spec(fnnet.AveragePooling1D(3, strides=1)))
    assert rebuilt.init(jax.random.PRNGKey(0), (-1, 10, 2))[0] == (-1, 8, 2)

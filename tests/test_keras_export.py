"""fnnet.to_keras: fnnet models written as Keras 3 models (JAX backend) compute what fnnet computes."""

import jax
import numpy as np
import pytest
from keras_backend import keras_or_skip

keras = keras_or_skip("Keras export")

import fnnet  # noqa: E402

TOL = {"rtol": 1e-5, "atol": 1e-5}


def trained_like(model, input_shape, seed=0):
    """Params and state with random values everywhere (biases, statistics), as after training."""
    _, params, state = model.init_with_state(jax.random.PRNGKey(seed), input_shape)
    rng = np.random.default_rng(seed)

    def randomize(path, leaf):
        positive = "var" in jax.tree_util.keystr(path)
        value = rng.uniform(0.5, 1.5, leaf.shape) if positive else rng.normal(0.0, 0.5, leaf.shape)
        return value.astype("float32")

    return jax.tree_util.tree_map_with_path(randomize, (params, state))


def padded_ids(rng, n, steps, vocab):
    ids = rng.integers(1, vocab, size=(n, steps))
    ids[0, steps // 2:] = 0
    ids[1, :steps // 2] = 0
    return ids.astype("int32")


def assert_exports_exactly(model, input_shape, x, seed=0):
    params, state = trained_like(model, input_shape, seed)
    km = fnnet.to_keras(model, params, state, input_shape=input_shape)
    expected = model.apply_with_state(params, state, x)[0]
    np.testing.assert_allclose(km.predict(x, verbose=0), np.asarray(expected), **TOL)
    return km


def test_sequence_model_exports_with_masks():
    # the last LSTM reads post-padded rows: Keras must return its last real step, as fnnet does
    model = fnnet.serial(fnnet.Embedding(30, 6, mask_zero=True),
                         fnnet.Bidirectional(fnnet.GRU(4, reset_after=False, return_sequences=True)),
                         fnnet.TimeDistributed(fnnet.Dense(3, activation="tanh")), fnnet.LSTM(3))
    km = assert_exports_exactly(model, (-1, 8), padded_ids(np.random.default_rng(0), 5, 8, 30))
    assert [layer.__class__.__name__ for layer in km.layers[1:3]] == ["Embedding", "Bidirectional"]


def test_image_model_exports_with_batch_norm_statistics():
    model = fnnet.serial(fnnet.Conv2D(4, 3, padding="same", activation="relu"), fnnet.BatchNorm(epsilon=1e-3),
                         fnnet.MaxPooling2D(), fnnet.AveragePooling2D((2, 2)),
                         fnnet.Flatten, fnnet.Dense(3), fnnet.Softmax)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 2)).astype("float32")
    km = assert_exports_exactly(model, (-1, 8, 8, 2), x)
    # and back again: the round trip keeps the outputs
    back, params, state = fnnet.from_keras(km)
    np.testing.assert_allclose(back.apply_with_state(params, state, x)[0], km.predict(x, verbose=0), **TOL)


def test_branches_become_a_functional_model():
    model = fnnet.serial(fnnet.Dense(6), fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(3), fnnet.Dense(4)),
                         fnnet.FanInConcat(), fnnet.Residual(fnnet.Dense(7), fnnet.Relu), fnnet.LayerNorm())
    x = np.random.default_rng(2).normal(size=(4, 5)).astype("float32")
    km = assert_exports_exactly(model, (-1, 5), x)
    kinds = {layer.__class__.__name__ for layer in km.layers}
    assert {"Concatenate", "Add"} <= kinds


def test_what_keras_cannot_express_is_named():
    model = fnnet.serial(fnnet.Dense(3), fnnet.Lambda(lambda x: x * 2, name="double"))
    params, _ = trained_like(model, (-1, 2))
    with pytest.raises(fnnet.KerasExportError, match=r"serial\[1\]: Lambda has no Keras export"):
        fnnet.to_keras(model, params, input_shape=(-1, 2))

    custom = fnnet.serial(fnnet.Dense(3, activation=lambda x: x ** 3))
    params, _ = trained_like(custom, (-1, 2))
    with pytest.raises(fnnet.KerasExportError, match=r"serial\[0\]: activation <function"):
        fnnet.to_keras(custom, params, input_shape=(-1, 2))

    with_stats = fnnet.serial(fnnet.Dense(3), fnnet.BatchNorm())
    params, _ = trained_like(with_stats, (-1, 2))
    with pytest.raises(fnnet.KerasExportError, match=r"serial\[1\]: BatchNorm needs its state"):
        fnnet.to_keras(with_stats, params, input_shape=(-1, 2))

    with pytest.raises(TypeError, match="input_shape"):
        fnnet.to_keras(fnnet.Dense(3), params)


def test_keras_layers_take_the_fnnet_keys_and_come_back_under_them():
    model = fnnet.serial(fnnet.Dense(4, name="encoder"), fnnet.Relu, fnnet.Dense(4), fnnet.Dropout(0.2),
                         fnnet.serial(fnnet.Dense(3), fnnet.Tanh, name="head"), fnnet.Dense(1))
    x = np.random.default_rng(3).normal(size=(4, 2)).astype("float32")
    km = assert_exports_exactly(model, (-1, 2), x)
    # Keys are unique per combinator, Keras names per model: the nested 'dense' is named by its path.
    assert [layer.name for layer in km.layers] == ["input", "encoder", "relu", "dense", "dropout", "head.dense",
                                                   "tanh", "dense_1"]
    params, _ = trained_like(model, (-1, 2))
    back, back_params, _ = fnnet.from_keras(fnnet.to_keras(model, params, input_shape=(-1, 2)))
    assert sorted(back_params) == ["dense", "dense_1", "encoder", "head.dense"]
    np.testing.assert_array_equal(back_params["head.dense"]["kernel"], params["head"]["dense"]["kernel"])


def test_to_keras_reads_the_model_through_one_walk(monkeypatch):
    calls = []
    real = fnnet.core._walk_model

    def counting(model, input_shape, rng):
        calls.append(input_shape)
        return real(model, input_shape, rng)

    model = fnnet.serial(fnnet.Dense(3), fnnet.Residual(fnnet.Dense(3), fnnet.Relu))
    params, _ = trained_like(model, (-1, 2))
    monkeypatch.setattr(fnnet.core, "_walk_model", counting)
    fnnet.to_keras(model, params, input_shape=(-1, 2))
    assert calls == [(-1, 2)]


def test_keras_activation_options_relu_and_rms_layer_norm_export_to_keras_layers():
    model = fnnet.serial(fnnet.Dense(6), fnnet.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.2),
                         fnnet.LayerNorm(rms_scaling=True), fnnet.Activation("leaky_relu", negative_slope=0.3),
                         fnnet.Dense(4), fnnet.Activation("softmax", axis=-1))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    km = assert_exports_exactly(model, (None, 3), x)
    kinds = [type(layer).__name__ for layer in km.layers]
    assert {"ReLU", "LeakyReLU", "Softmax", "LayerNormalization"} <= set(kinds)


def test_an_activation_option_keras_cannot_hold_is_refused():
    model = fnnet.serial(fnnet.Dense(2), fnnet.Activation("elu", alpha=0.5))
    params, _ = trained_like(model, (None, 3))
    with pytest.raises(fnnet.KerasExportError, match="elu"):
        fnnet.to_keras(model, params, input_shape=(None, 3))

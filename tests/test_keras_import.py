"""fnnet.from_keras: Keras 3 models (JAX backend) imported as fnnet models compute what Keras computes."""

import sys

import jax
import numpy as np
import pytest
from keras_backend import keras_or_skip

keras = keras_or_skip("Keras import")

import fnnet  # noqa: E402
from keras import layers  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")
TOL = {"rtol": 1e-5, "atol": 1e-5}


def randomize(km, seed=0):
    """Random weights, so that biases and BatchNorm statistics matter (variances stay positive)."""
    rng = np.random.default_rng(seed)
    for v in km.weights:
        shape = tuple(v.shape)
        value = rng.uniform(0.5, 1.5, shape) if "variance" in v.path else rng.normal(0.0, 0.5, shape)
        v.assign(value.astype("float32"))
    return km


def run(model, params, state, x):
    return np.asarray(model.apply_with_state(params, state, x)[0])


def assert_same_as_keras(km, x):
    """Import ``km`` and check its outputs against ``km.predict``; returns the import."""
    imported = fnnet.from_keras(km)
    model, params, state = imported
    np.testing.assert_allclose(run(model, params, state, x), km.predict(x, verbose=0), **TOL)
    return imported


def padded_ids(rng, n, steps, vocab):
    """Token ids with padding (0) at the end, at the start, and all but one step padded."""
    ids = rng.integers(1, vocab, size=(n, steps))
    ids[0, steps // 2:] = 0
    ids[1, :steps // 2] = 0
    ids[2, 1:] = 0
    return ids.astype("int32")


def jax_leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tree)]


def changed(before, after):
    return any(not np.allclose(a, b) for a, b in zip(jax_leaves(before), jax_leaves(after)))


def assert_saves_and_loads(tmp_path, model, params, state, x, input_shape):
    folder = fnnet.save_model(tmp_path / "imported", model, params, state, input_shape=input_shape)
    loaded, params2, state2 = fnnet.load_model(folder)
    np.testing.assert_array_equal(run(loaded, params2, state2, x), run(model, params, state, x))


# ------------------------------------------------------------------- the three models

def test_house_price_mlp_matches_keras_trains_and_saves(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 78)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    km = keras.Sequential([keras.Input((78,)), layers.Dense(400, activation="relu"),
                           layers.Dense(200, activation="relu"), layers.Dense(1)])
    km.compile(optimizer="adam", loss="mse")
    km.fit(x, y, epochs=1, batch_size=32, verbose=0)

    imported = assert_same_as_keras(km, rng.normal(size=(16, 78)).astype("float32"))
    model, params, state = imported

    # fnnet's params keys are Keras's layer names ('dense', 'dense_1', ... as Keras counted them).
    assert sorted(params) == sorted(layer.name for layer in km.layers) and state is None
    assert [key for key, _ in model.children] == [layer.name for layer in km.layers]
    assert imported.input_shape == (-1, 78)
    np.testing.assert_array_equal(params[km.layers[1].name]["kernel"], km.layers[1].kernel.numpy())
    result = fnnet.fit(model, params, x, y, loss="mse", optimizer="adam", epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(result.history["loss"][0]) and changed(params, result.params)
    assert_saves_and_loads(tmp_path, model, result.params, result.state, x[:4], imported.input_shape)


def test_sentiment_model_matches_keras_on_padded_sequences(tmp_path):
    rng = np.random.default_rng(1)
    x, y = padded_ids(rng, 32, 12, 60), rng.integers(0, 2, size=32)
    km = keras.Sequential([keras.Input((12,), dtype="int32"), layers.Embedding(60, 8, mask_zero=True),
                           layers.Bidirectional(layers.LSTM(6)), layers.Dense(2, activation="softmax")])
    km.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    km.fit(x, y, epochs=1, batch_size=16, verbose=0)

    imported = assert_same_as_keras(km, padded_ids(rng, 6, 12, 60))
    model, params, state = imported

    assert sorted(params[km.layers[1].name]) == ["backward", "forward"]
    result = fnnet.fit(model, params, x, y, loss="sparse_categorical_crossentropy", optimizer="adam", epochs=1,
                       batch_size=16, verbose=0)
    assert np.isfinite(result.history["loss"][0]) and changed(params, result.params)
    assert_saves_and_loads(tmp_path, model, result.params, result.state, x[:4], imported.input_shape)


def test_image_model_with_batch_norm_matches_keras_and_keeps_its_statistics(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(32, 10, 10, 2)).astype("float32"), rng.integers(0, 3, size=32)
    km = keras.Sequential([keras.Input((10, 10, 2)), layers.Conv2D(4, 3, padding="same", activation="relu"),
                           layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
                           layers.Dense(3, activation="softmax")])
    km.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    km.fit(x, y, epochs=1, batch_size=16, verbose=0)

    imported = assert_same_as_keras(km, rng.normal(size=(5, 10, 10, 2)).astype("float32"))
    model, params, state = imported

    assert sorted(state) == [km.layers[1].name]  # the BatchNormalization's name, e.g. 'batch_normalization'
    np.testing.assert_array_equal(state[km.layers[1].name]["mean"], km.layers[1].moving_mean.numpy())
    result = fnnet.fit(model, params, x, y, loss="sparse_categorical_crossentropy", optimizer="adam", epochs=1,
                       batch_size=16, state=state, verbose=0)
    assert changed(state, result.state)  # training updates the moving statistics
    assert_saves_and_loads(tmp_path, model, result.params, result.state, x[:4], imported.input_shape)


# ------------------------------------------------------------------------ layer zoo

def _ids_input():
    return [keras.Input((9,), dtype="int32"), layers.Embedding(40, 6, mask_zero=True)]


ZOO = {
    "recurrent_stack": lambda: _ids_input() + [
        layers.GRU(5, return_sequences=True), layers.GRU(4, reset_after=False, return_sequences=True),
        layers.SimpleRNN(4, activation="relu", return_sequences=True),
        layers.LSTM(3, return_sequences=True, go_backwards=True),
        layers.TimeDistributed(layers.Dense(3, activation="tanh"))],
    "bidirectional_stack": lambda: _ids_input() + [
        layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode="sum"),
        layers.Bidirectional(layers.LSTM(3, return_sequences=True),
                             backward_layer=layers.LSTM(3, activation="relu", return_sequences=True,
                                                        go_backwards=True)),
        layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True), merge_mode="ave"),
        layers.GlobalAveragePooling1D()],
    "norms_and_reshapes": lambda: _ids_input() + [
        layers.LayerNormalization(), layers.Dropout(0.3), layers.Flatten(), layers.Reshape((6, 9)),
        layers.Activation("gelu"), layers.ReLU(), layers.Softmax()],
    "conv1d_and_1d_pools": lambda: [
        keras.Input((12, 3)), layers.Conv1D(4, 3, strides=2, activation="tanh"),
        layers.MaxPooling1D(2, strides=1, padding="same"), layers.AveragePooling1D(3, padding="same"),
        layers.Conv1D(2, 2, padding="same", use_bias=False), layers.GlobalMaxPooling1D()],
    "conv2d_norms_and_2d_pools": lambda: [
        keras.Input((9, 9, 2)), layers.BatchNormalization(axis=1), layers.LayerNormalization(axis=[1, 2]),
        layers.Conv2D(4, (2, 3), strides=(1, 2), use_bias=False), layers.BatchNormalization(center=False),
        layers.AveragePooling2D((3, 2), strides=(2, 1)), layers.MaxPooling2D(2, padding="same"),
        layers.GlobalAveragePooling2D()],
}


def _zoo_input(name, rng):
    if name.startswith("conv1d"):
        return rng.normal(size=(4, 12, 3)).astype("float32")
    if name.startswith("conv2d"):
        return rng.normal(size=(3, 9, 9, 2)).astype("float32")
    return padded_ids(rng, 5, 9, 40)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_layer_matches_keras(name):
    km = randomize(keras.Sequential(ZOO[name]()))
    assert_same_as_keras(km, _zoo_input(name, np.random.default_rng(3)))


def test_sequential_without_input_layer_takes_the_built_shape():
    km = keras.Sequential([layers.Dense(3), layers.Dense(1)])
    km.build((None, 5))
    imported = assert_same_as_keras(randomize(km), np.ones((2, 5), "float32"))
    assert imported.input_shape == (-1, 5)


def test_activation_names_import_exactly_or_are_refused():
    x = np.linspace(-3, 3, 12, dtype="float32").reshape(4, 3)
    imported = []
    for name in sorted(fnnet.ACTIVATIONS):
        km = randomize(keras.Sequential([keras.Input((3,)), layers.Dense(4, activation=name)]))
        try:
            model, params, state = fnnet.from_keras(km)
        except fnnet.KerasImportError as e:
            assert name in str(e) and e.layer_class == "Dense"
            continue
        np.testing.assert_allclose(run(model, params, state, x), np.asarray(km(x)), err_msg=name, **TOL)
        imported.append(name)
    assert {"relu", "sigmoid", "softmax", "tanh", "gelu", "linear"} <= set(imported)


# ------------------------------------------------------------------------ functional

def test_functional_branches_become_fan_out_parallel_and_fan_in(tmp_path):
    inputs = keras.Input((5,))
    wide, narrow = layers.Dense(4, activation="relu")(inputs), layers.Dense(3)(inputs)
    joined = layers.Concatenate()([wide, narrow])
    residual = layers.Add()([joined, layers.Dense(7)(joined)])
    three_way = layers.Add()([residual, layers.Dense(7, activation="tanh")(residual), residual])
    head = keras.Sequential([layers.BatchNormalization(), layers.Dense(2)], name="head")
    km = randomize(keras.Model(inputs, head(three_way)))
    x = np.random.default_rng(4).normal(size=(6, 5)).astype("float32")

    imported = assert_same_as_keras(km, x)
    model, params, state = imported

    spec = str(fnnet.to_spec(model))
    assert all(name in spec for name in ("FanOut", "parallel", "FanInConcat", "FanInSum"))
    # The nested Sequential keeps its namespace: its layers' params sit under its name.
    assert sorted(state) == ["head"] and list(state["head"]) == [head.layers[0].name]
    assert sorted(params["head"]) == sorted(layer.name for layer in head.layers)
    assert_saves_and_loads(tmp_path, model, params, state, x, imported.input_shape)


def test_functional_sequence_model_with_masks():
    inputs = keras.Input((9,), dtype="int32")
    embedded = layers.Embedding(40, 6, mask_zero=True)(inputs)
    both = layers.Concatenate()([layers.SimpleRNN(3, return_sequences=True)(embedded), layers.Dense(2)(embedded)])
    km = randomize(keras.Model(inputs, layers.GlobalAveragePooling1D()(both)))  # a masked average
    assert_same_as_keras(km, padded_ids(np.random.default_rng(5), 5, 9, 40))


# ------------------------------------------------------------------------ .keras files

def test_keras_file_is_read_without_keras(tmp_path, monkeypatch):
    rng = np.random.default_rng(6)
    km = randomize(keras.Sequential([keras.Input((9,), dtype="int32"), layers.Embedding(40, 6, mask_zero=True),
                                     layers.Bidirectional(layers.GRU(3)), layers.BatchNormalization(),
                                     layers.Dense(2)]))
    path = tmp_path / "model.keras"
    km.save(path)
    x = padded_ids(rng, 5, 9, 40)
    expected = km.predict(x, verbose=0)

    monkeypatch.setitem(sys.modules, "keras", None)  # any `import keras` now fails
    imported = fnnet.from_keras(str(path))
    model, params, state = imported

    np.testing.assert_allclose(run(model, params, state, x), expected, **TOL)
    assert imported.input_shape == (-1, 9)
    assert sorted(params) == sorted(layer.name for layer in km.layers if layer.weights)


def test_keras_file_and_object_give_the_same_import(tmp_path):
    inputs = keras.Input((4,))
    km = randomize(keras.Model(inputs, layers.Add()([inputs, layers.Dense(4)(inputs)])))
    km.save(tmp_path / "m.keras")
    from_object, from_file = fnnet.from_keras(km), fnnet.from_keras(tmp_path / "m.keras")
    assert fnnet.to_spec(from_object[0]) == fnnet.to_spec(from_file[0])
    assert all(np.array_equal(a, b) for a, b in zip(jax_leaves(from_object[1]), jax_leaves(from_file[1])))


def test_files_that_are_not_keras_3_models_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        fnnet.from_keras(tmp_path / "missing.keras")
    (tmp_path / "old.h5").write_bytes(b"\x89HDF\r\n")
    with pytest.raises(fnnet.KerasImportError, match=r"old\.h5 is not a \.keras"):
        fnnet.from_keras(tmp_path / "old.h5")


# ------------------------------------------------------------------------ what is refused

def test_unsupported_layer_is_named_in_the_error(tmp_path):
    km = keras.Sequential([keras.Input((4, 4, 1)), layers.Conv2D(2, 2, name="edges"),
                           layers.UpSampling2D(name="grow")])
    with pytest.raises(fnnet.KerasImportError, match=r"'grow' \(UpSampling2D\).*not supported") as info:
        fnnet.from_keras(km)
    assert (info.value.layer_class, info.value.layer_name) == ("UpSampling2D", "grow")
    km.save(tmp_path / "m.keras")
    with pytest.raises(fnnet.KerasImportError, match=r"'grow' \(UpSampling2D\)"):
        fnnet.from_keras(tmp_path / "m.keras")


@pytest.mark.parametrize("layer, setting", [
    (layers.Conv2D(2, 3, dilation_rate=2, name="bad"), "dilation_rate"),
    (layers.Conv2D(2, 1, data_format="channels_first", name="bad"), "data_format"),
    (layers.BatchNormalization(renorm=True, name="bad"), "renorm"),
])
def test_settings_that_change_the_computation_are_refused(layer, setting):
    km = keras.Sequential([keras.Input((6, 6, 2)), layer])
    with pytest.raises(fnnet.KerasImportError, match=rf"'bad' .*{setting}"):
        fnnet.from_keras(km)


def test_mask_that_keras_drops_but_fnnet_would_keep_is_refused():
    km = keras.Sequential(_ids_input() + [layers.Conv1D(4, 3, padding="same", name="conv"),
                                          layers.LSTM(3, name="reader")])
    with pytest.raises(fnnet.KerasImportError, match=r"'reader' \(LSTM\).*'conv' \(Conv1D\)"):
        fnnet.from_keras(km)


def test_mask_that_keras_leaves_in_time_order_after_go_backwards_is_refused():
    # Keras returns go_backwards outputs reversed but leaves their mask as it was.
    km = keras.Sequential(_ids_input() + [layers.GRU(3, return_sequences=True, go_backwards=True, name="back"),
                                          layers.GlobalAveragePooling1D(name="average")])
    with pytest.raises(fnnet.KerasImportError, match=r"'average' .*'back' \(GRU\): it returns its outputs in rev"):
        fnnet.from_keras(km)


def test_last_output_that_keras_zeroes_for_end_padding_is_refused():
    km = keras.Sequential(_ids_input() + [layers.LSTM(2, zero_output_for_mask=True, name="last")])
    with pytest.raises(fnnet.KerasImportError, match=r"'last' \(LSTM\): zero_output_for_mask=True"):
        fnnet.from_keras(km)


def test_recurrent_dropout_is_not_imported_and_says_so():
    km = keras.Sequential([keras.Input((5, 2)), layers.SimpleRNN(3, dropout=0.2, recurrent_dropout=0.1)])
    with pytest.warns(UserWarning, match="recurrent_dropout=0.1 are not imported"):
        assert_same_as_keras(randomize(km), np.ones((2, 5, 2), "float32"))


def test_multi_input_shared_and_tangled_functional_models_are_refused():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    with pytest.raises(fnnet.KerasImportError, match="2 inputs"):
        fnnet.from_keras(keras.Model([a, b], layers.Add()([a, b])))

    shared = layers.Dense(3, name="shared")
    with pytest.raises(fnnet.KerasImportError, match=r"'shared' \(Dense\).*called 2 times"):
        fnnet.from_keras(keras.Model(a, shared(shared(a))))

    # u feeds two branches that join at different layers: not a nest of forks and joins
    u = layers.Dense(3, name="u")(a)
    left = layers.Add()([u, layers.Dense(3)(a)])
    km = keras.Model(a, layers.Concatenate()([left, layers.Dense(3)(u)]))
    with pytest.raises(fnnet.KerasImportError, match="branches that join at different layers"):
        fnnet.from_keras(km)


def test_unbuilt_and_non_keras_models_are_refused():
    with pytest.raises(fnnet.KerasImportError, match="not built"):
        fnnet.from_keras(keras.Sequential([layers.Dense(2)]))
    with pytest.raises(TypeError, match="Keras model or a path"):
        fnnet.from_keras(fnnet.Dense(2))


def test_params_are_keyed_by_the_keras_layer_names():
    km = randomize(keras.Sequential([keras.Input((4,)), layers.Dense(3, name="encoder"), layers.Dropout(0.1),
                                     layers.Dense(3, name="dense"), layers.LayerNormalization(name="norm"),
                                     layers.Dense(1, name="price")]))
    model, params, _ = assert_same_as_keras(km, np.ones((2, 4), "float32"))
    assert [key for key, _ in model.children] == ["encoder", km.layers[1].name, "dense", "norm", "price"]
    assert sorted(params) == ["dense", "encoder", "norm", "price"]  # Dropout has no params, so no entry
    np.testing.assert_array_equal(params["encoder"]["kernel"], km.get_layer("encoder").kernel.numpy())


def test_the_imported_model_knows_its_input_shape_and_saves_without_one(tmp_path):
    km = randomize(keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="relu"), layers.Dense(1)]))
    model, params, state = fnnet.from_keras(km)
    assert model.input_shape == (-1, 3)
    fnnet.save_model(tmp_path / "m", model, params, state)
    loaded, loaded_params, _ = fnnet.load_model(tmp_path / "m")
    x = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
    np.testing.assert_allclose(loaded.apply(loaded_params, x), np.asarray(km(x)), **TOL)

"""save_model / load_model: whole models round-trip exactly; weights that do not fit are refused."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnnet
from fnnet.io import atomic, saved_model

ACTIVATION_ARGS = [None, "relu", "tanh", "gelu", jax.nn.sigmoid, jnp.tanh]
INIT_ARGS = ["glorot_uniform", "he_normal", "lecun_uniform", fnnet.INITIALIZERS["glorot_normal"]]


@st.composite
def vector_stacks(draw):
    """Stacks on (batch, 4) floats: dense, activations, norms, dropout, branches, reshapes."""
    width, layers = 4, []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["dense", "ready_made", "activation", "dropout", "norm", "residual",
                                     "concat_branches", "sum_branches", "reshape", "function", "ensemble"]))
        if kind == "dense":
            width = draw(st.integers(1, 5))
            layers.append(fnnet.Dense(width, draw(st.sampled_from(INIT_ARGS)),
                                      activation=draw(st.sampled_from(ACTIVATION_ARGS)),
                                      use_bias=draw(st.booleans())))
        elif kind == "ready_made":
            layers.append(draw(st.sampled_from([fnnet.Relu, fnnet.Tanh, fnnet.Sigmoid, fnnet.Elu, fnnet.Selu,
                                                fnnet.Gelu, fnnet.LeakyRelu, fnnet.Softplus, fnnet.Softmax,
                                                fnnet.LogSoftmax, fnnet.Identity])))
        elif kind == "activation":
            layers.append(fnnet.Activation(draw(st.sampled_from(["swish", "softsign", jax.nn.elu]))))
        elif kind == "dropout":
            layers.append(fnnet.Dropout(draw(st.sampled_from([0.0, 0.3]))))
        elif kind == "norm":
            layers.append(draw(st.sampled_from([fnnet.BatchNorm(), fnnet.LayerNorm(), fnnet.BatchNorm(momentum=0.5)])))
        elif kind == "residual":
            layers.append(fnnet.Residual(fnnet.Dense(width), fnnet.Relu))
        elif kind == "concat_branches":
            a, b = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            layers += [fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(a), fnnet.serial(fnnet.Dense(b), fnnet.Tanh)),
                       fnnet.FanInConcat()]
            width = a + b
        elif kind == "sum_branches":
            layers += [fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(width), fnnet.Identity), fnnet.FanInSum]
        elif kind == "reshape":
            layers += [fnnet.Reshape((width, 1)), fnnet.Flatten]
        elif kind == "function":
            layers.append(draw(st.sampled_from([fnnet.elementwise(jax.nn.leaky_relu, negative_slope=0.3),
                                                fnnet.Lambda(jnp.tanh)])))
        else:
            width = draw(st.integers(1, 3))
            layers.append(fnnet.Ensemble(fnnet.Dense(width), 2, reduce="mean"))
    return fnnet.serial(*layers), (-1, 4), "float32"


@st.composite
def image_stacks(draw):
    """Stacks on (batch, 6, 6, 2) images: convolutions, pooling, batch norm, then a dense head."""
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        layers.append(draw(st.sampled_from([
            fnnet.Conv(3, (3, 3), padding="SAME"), fnnet.Conv2D(2, 2, padding="same", activation="relu"),
            fnnet.GeneralConv(("NHWC", "HWIO", "NHWC"), 2, (1, 1)), fnnet.ConvTranspose(2, (1, 1)),
            fnnet.MaxPool((2, 2), strides=(1, 1), padding="SAME"), fnnet.AvgPool((1, 1)),
            fnnet.SumPool((2, 2), strides=(1, 1), padding="SAME"), fnnet.BatchNorm(),
            fnnet.MaxPooling2D((1, 1)), fnnet.AveragePooling2D((1, 1))])))
    head = draw(st.sampled_from([fnnet.Flatten, fnnet.GlobalAveragePooling2D(), fnnet.GlobalMaxPooling2D()]))
    return fnnet.serial(*layers, head, fnnet.Dense(2)), (-1, 6, 6, 2), "float32"


@st.composite
def sequence_stacks(draw):
    """Stacks on (batch, 5) token ids: embedding, recurrent layers, wrappers, 1-D convolutions."""
    layers = [fnnet.Embedding(10, 3, mask_zero=draw(st.booleans()))]
    for _ in range(draw(st.integers(0, 2))):
        layers.append(draw(st.sampled_from([
            fnnet.LSTM(2, return_sequences=True), fnnet.GRU(2, return_sequences=True),
            fnnet.SimpleRNN(2, return_sequences=True, go_backwards=True),
            fnnet.Bidirectional(fnnet.GRU(2, return_sequences=True)), fnnet.TimeDistributed(fnnet.Dense(3)),
            fnnet.Conv1D(2, 2, padding="same"), fnnet.Conv1DTranspose(2, (1,)),
            fnnet.MaxPooling1D(1), fnnet.AveragePooling1D(1)])))
    layers.append(draw(st.sampled_from([fnnet.LSTM(2), fnnet.GRU(2, reset_after=False), fnnet.SimpleRNN(2),
                                        fnnet.Bidirectional(fnnet.LSTM(2), merge_mode="ave"),
                                        fnnet.GlobalAveragePooling1D(), fnnet.GlobalMaxPooling1D()])))
    return fnnet.serial(*layers, fnnet.Dense(2)), (-1, 5), "int32"


def random_inputs(shape, dtype):
    concrete = tuple(3 if d == -1 else d for d in shape)
    gen = np.random.default_rng(0)
    if dtype == "int32":
        return jnp.asarray(gen.integers(0, 10, size=concrete), jnp.int32)
    return jnp.asarray(gen.uniform(-2, 2, size=concrete), jnp.float32)


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@given(case=st.one_of(vector_stacks(), image_stacks(), sequence_stacks()), seed=st.integers(0, 2**31 - 1))
def test_random_stacks_round_trip_with_identical_outputs(case, seed, tmp_path_factory):
    model, shape, dtype = case
    _, params, state = model.init_with_state(jax.random.PRNGKey(seed), shape)
    folder = tmp_path_factory.mktemp("model") / "saved"
    fnnet.save_model(folder, model, params, state, input_shape=shape)
    loaded, loaded_params, loaded_state = fnnet.load_model(folder)
    assert fnnet.to_spec(loaded) == fnnet.to_spec(model)
    assert_trees_equal(loaded_params, params)
    assert_trees_equal(loaded_state, state)
    x = random_inputs(shape, dtype)
    key = jax.random.PRNGKey(seed + 1)
    for train in (False, True):
        assert_trees_equal(loaded.apply_with_state(loaded_params, loaded_state, x, train=train, rng=key),
                           model.apply_with_state(params, state, x, train=train, rng=key))


# ------------------------------------------------------------------ weights that do not fit

@pytest.fixture
def saved_mlp(tmp_path):
    model = fnnet.serial(fnnet.Dense(5), fnnet.Relu, fnnet.Dense(1))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    folder = fnnet.save_model(tmp_path / "mlp", model, params, input_shape=(-1, 3))
    return folder, model, params


def test_checkpoint_with_wrong_shape_is_refused_naming_the_path(saved_mlp):
    folder, _, params = saved_mlp
    wrong = {**params, "dense_1": {"kernel": jnp.zeros((4, 1)), "bias": params["dense_1"]["bias"]}}
    fnnet.save_checkpoint(saved_model.weights_file(folder), {"params": wrong, "state": None})
    with pytest.raises(fnnet.SavedModelError, match=r"shape differs .*params/dense_1/kernel \(4, 1\) vs \(5, 1\)") as e:
        fnnet.load_model(folder)
    assert e.value.shape_mismatch == [("params/dense_1/kernel", [4, 1], (5, 1))]


def test_checkpoint_with_missing_extra_and_wrong_dtype_lists_every_path(saved_mlp):
    folder, _, params = saved_mlp
    wrong = {"dense": {"kernel": params["dense"]["kernel"].astype(jnp.float16), "bias": params["dense"]["bias"],
                       "scale": jnp.ones(5)},
             "dense_1": {"kernel": params["dense_1"]["kernel"]}}
    fnnet.save_checkpoint(saved_model.weights_file(folder), {"params": wrong, "state": None})
    with pytest.raises(fnnet.SavedModelError) as e:
        fnnet.load_model(folder)
    message = str(e.value)
    assert "missing from the weights: params/dense_1/bias" in message
    assert "params/dense/scale" in message
    assert "params/dense/kernel float16 vs float32" in message
    assert str(folder) in message


def test_save_refuses_params_that_do_not_fit_and_writes_nothing(tmp_path):
    model = fnnet.serial(fnnet.Dense(5), fnnet.Dense(1))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    with pytest.raises(fnnet.SavedModelError, match=r"params/dense/kernel \(3, 5\) vs \(4, 5\)"):
        fnnet.save_model(tmp_path / "m", model, params, input_shape=(-1, 4))
    assert os.listdir(tmp_path) == []


def test_unserialisable_model_is_refused_before_writing(tmp_path):
    model = fnnet.serial(fnnet.Dense(2, activation=lambda x: x))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    with pytest.raises(fnnet.SpecError, match=r"serial\[0\]"):
        fnnet.save_model(tmp_path / "m", model, params, input_shape=(-1, 3))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ metadata and format

def test_metadata_and_input_shape_are_kept(tmp_path):
    model = fnnet.serial(fnnet.Embedding(6, 2), fnnet.GlobalAveragePooling1D(), fnnet.Dense(1))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 4))
    metadata = {"vocabulary": ["<pad>", "good", "bad"], "maxlen": 4, "scaler": {"mean": [0.5]}}
    folder = fnnet.save_model(tmp_path / "m", model, params, input_shape=(-1, 4), metadata=metadata)
    assert fnnet.load_model_metadata(folder) == metadata
    assert fnnet.saved_input_shape(folder) == (-1, 4)
    model2, params2, state2 = fnnet.load_model(folder)
    assert state2 is None
    description = json.loads((folder / saved_model.SPEC_FILE).read_text())
    assert description["format"] == "fnnet-model" and description["format_version"] == saved_model.FORMAT_VERSION


def test_nested_input_shapes_are_kept(tmp_path):
    model = fnnet.serial(fnnet.parallel(fnnet.Dense(2), fnnet.Dense(3)), fnnet.FanInConcat())
    shape = ((-1, 4), (-1, 5))
    _, params = model.init(jax.random.PRNGKey(0), shape)
    folder = fnnet.save_model(tmp_path / "m", model, params, input_shape=shape)
    assert fnnet.saved_input_shape(folder) == shape
    assert_trees_equal(fnnet.load_model(folder)[1], params)


def test_newer_format_is_refused(saved_mlp):
    folder = saved_mlp[0]
    description = json.loads((folder / saved_model.SPEC_FILE).read_text())
    description["format_version"] = saved_model.FORMAT_VERSION + 1
    (folder / saved_model.SPEC_FILE).write_text(json.dumps(description))
    with pytest.raises(fnnet.SavedModelError, match="newer than this fnnet reads"):
        fnnet.load_model(folder)


def test_missing_and_foreign_directories(tmp_path):
    with pytest.raises(fnnet.SavedModelError, match="no such model directory"):
        fnnet.load_model(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(fnnet.SavedModelError, match="not an fnnet model directory"):
        fnnet.load_model(tmp_path / "other")


def test_unregistered_user_layer_fails_to_load_with_its_name(tmp_path):
    @fnnet.register_layer("tests.model_io.Doubler")
    def Doubler():
        return fnnet.layer("Doubler", lambda params, x: 2 * x)

    model = fnnet.serial(fnnet.Dense(2), Doubler())
    _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    folder = fnnet.save_model(tmp_path / "m", model, params, input_shape=(-1, 3))
    del fnnet.core.LAYER_REGISTRY["tests.model_io.Doubler"]
    with pytest.raises(fnnet.SpecError, match=r"serial\[1\]: unknown layer 'tests.model_io.Doubler'"):
        fnnet.load_model(folder)


# ------------------------------------------------------------------ atomic replacement

def siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir())


def test_replacing_a_model_leaves_only_the_new_one(saved_mlp):
    folder, _, _ = saved_mlp
    bigger = fnnet.serial(fnnet.Dense(7), fnnet.Dense(2))
    _, params = bigger.init(jax.random.PRNGKey(1), (-1, 3))
    fnnet.save_model(folder, bigger, params, input_shape=(-1, 3))
    loaded, loaded_params, _ = fnnet.load_model(folder)
    assert fnnet.to_spec(loaded) == fnnet.to_spec(bigger)
    assert_trees_equal(loaded_params, params)
    assert siblings(folder) == [folder.name]  # no temporary or set-aside copies remain


@pytest.mark.parametrize("failing", ["save_checkpoint", "_write_json"])
def test_a_failed_save_keeps_the_old_model_whole(saved_mlp, monkeypatch, failing):
    folder, model, params = saved_mlp
    original = getattr(saved_model, failing)

    def fail_midway(*args, **kwargs):
        original(*args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(saved_model, failing, fail_midway)
    other = fnnet.serial(fnnet.Dense(2))
    _, other_params = other.init(jax.random.PRNGKey(1), (-1, 3))
    with pytest.raises(OSError, match="disk full"):
        fnnet.save_model(folder, other, other_params, input_shape=(-1, 3))
    monkeypatch.undo()
    loaded, loaded_params, _ = fnnet.load_model(folder)
    if failing == "save_checkpoint":  # failed before model.json switched: still the old model
        assert fnnet.to_spec(loaded) == fnnet.to_spec(model)
        assert_trees_equal(loaded_params, params)
    else:  # model.json was replaced: the new model, whole
        assert fnnet.to_spec(loaded) == fnnet.to_spec(other)
        assert_trees_equal(loaded_params, other_params)
    assert siblings(folder) == [folder.name]
    fnnet.save_model(folder, model, params, input_shape=(-1, 3))  # the next save cleans up
    assert len(os.listdir(folder)) == 2


def test_saving_through_a_symlink_writes_to_its_target(saved_mlp, tmp_path):
    folder, model, params = saved_mlp
    link = tmp_path / "link"
    os.symlink(folder, link)
    other = fnnet.serial(fnnet.Dense(2))
    _, other_params = other.init(jax.random.PRNGKey(1), (-1, 3))
    fnnet.save_model(link, other, other_params, input_shape=(-1, 3))
    assert link.is_symlink() and os.path.samefile(link, folder)
    assert fnnet.to_spec(fnnet.load_model(folder)[0]) == fnnet.to_spec(other)
    assert not any(".old" in name or ".tmp" in name for name in os.listdir(tmp_path) + os.listdir(folder))


def test_issue20_data_loss_folder_with_foreign_model_json_is_refused(tmp_path):
    # Issue 20, defect 1: a folder holding some model.json (a TF.js model, '{}') was replaced whole.
    project = tmp_path / "p"
    (project / "src").mkdir(parents=True)
    (project / "model.json").write_text("{}")
    (project / "src" / "main.py").write_text("print('mine')")
    _, params = fnnet.Dense(1).init(jax.random.PRNGKey(0), (-1, 2))
    with pytest.raises(fnnet.SavedModelError, match=r"not an fnnet model directory.*refusing to replace it"):
        fnnet.save_model(project, fnnet.Dense(1), params)
    (project / "src").rename(tmp_path / "elsewhere")  # even a lone '{}' model.json is not fnnet's
    with pytest.raises(fnnet.SavedModelError, match="not an fnnet model directory"):
        fnnet.save_model(project, fnnet.Dense(1), params)
    assert (project / "model.json").read_text() == "{}"
    assert (tmp_path / "elsewhere" / "main.py").read_text() == "print('mine')"


def test_a_tfjs_model_folder_is_never_replaced(tmp_path):
    folder = tmp_path / "tfjs"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"format": "layers-model", "modelTopology": {}}))
    (folder / "group1-shard1of1.bin").write_bytes(b"\0" * 16)
    _, params = fnnet.Dense(1).init(jax.random.PRNGKey(0), (-1, 2))
    with pytest.raises(fnnet.SavedModelError, match="not an fnnet model directory"):
        fnnet.save_model(folder, fnnet.Dense(1), params)
    assert sorted(os.listdir(folder)) == ["group1-shard1of1.bin", "model.json"]


def test_weights_name_in_model_json_cannot_point_outside(saved_mlp, tmp_path):
    folder = saved_mlp[0]
    description = json.loads((folder / saved_model.SPEC_FILE).read_text())
    for hostile in ["../secret.ckpt", "/etc/passwd", ["weights.ckpt"]]:
        description["weights"] = hostile
        (folder / saved_model.SPEC_FILE).write_text(json.dumps(description))
        with pytest.raises(fnnet.SavedModelError, match="not the name of a weights file inside"):
            fnnet.load_model(folder)


def test_loading_never_writes(saved_mlp):
    folder = saved_mlp[0]
    (folder / ".model.json.0123456789ab.tmp").write_text("left by a crash")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    fnnet.load_model(folder)
    fnnet.load_model_metadata(folder)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before


def test_version_1_model_directories_still_load(saved_mlp):
    folder, _, params = saved_mlp
    description = json.loads((folder / saved_model.SPEC_FILE).read_text())
    os.rename(saved_model.weights_file(folder), folder / "weights.ckpt")
    del description["weights"]
    description["format_version"] = 1
    (folder / saved_model.SPEC_FILE).write_text(json.dumps(description))
    assert_trees_equal(fnnet.load_model(folder)[1], params)


def test_a_foreign_directory_is_never_replaced(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("do not delete")
    model = fnnet.Dense(1)
    _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    with pytest.raises(fnnet.SavedModelError, match="refusing to replace it"):
        fnnet.save_model(tmp_path / "precious", model, params, input_shape=(-1, 2))
    assert (tmp_path / "precious" / "thesis.tex").read_text() == "do not delete"


def test_files_beside_a_saved_model_are_never_deleted(saved_mlp):
    folder, model, params = saved_mlp
    (folder / "notes.txt").write_text("my results")
    (folder / "plots").mkdir()
    before = sorted(os.listdir(folder))
    with pytest.raises(fnnet.SavedModelError, match=r"holds entries that save_model did not write \(notes\.txt, plots/\)"):
        fnnet.save_model(folder, model, params, input_shape=(-1, 3))
    assert (folder / "notes.txt").read_text() == "my results"
    assert sorted(os.listdir(folder)) == before


def test_a_file_in_place_of_the_directory_is_never_replaced(tmp_path):
    (tmp_path / "m").write_text("not a folder")
    _, params = fnnet.Dense(1).init(jax.random.PRNGKey(0), (-1, 2))
    with pytest.raises(fnnet.SavedModelError, match="refusing to replace it"):
        fnnet.save_model(tmp_path / "m", fnnet.Dense(1), params)
    assert (tmp_path / "m").read_text() == "not a folder"


def test_save_without_input_shape_keeps_weights_unchecked(tmp_path):
    model = fnnet.serial(fnnet.Dense(4, name="encoder"), fnnet.BatchNorm(), fnnet.Dense(1))
    _, params, state = model.init_with_state(jax.random.PRNGKey(0), (-1, 3))
    with pytest.warns(UserWarning, match="input shape is unknown.*without checking"):
        folder = fnnet.save_model(tmp_path / "m", model, params, state)  # the four-argument form
    assert fnnet.saved_input_shape(folder) is None
    loaded, loaded_params, loaded_state = fnnet.load_model(folder)
    assert sorted(loaded_params) == ["batch_norm", "dense", "encoder"]
    assert_trees_equal(loaded_params, params)
    assert_trees_equal(loaded_state, state)
    x = random_inputs((-1, 3), "float32")
    assert_trees_equal(loaded.apply_with_state(loaded_params, loaded_state, x),
                       model.apply_with_state(params, state, x))


def test_explicit_names_give_the_same_params_keys_after_loading(tmp_path):
    model = fnnet.serial(fnnet.Dense(3, name="encoder"), fnnet.Relu, fnnet.Dense(1, name="head"))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    loaded, loaded_params, _ = fnnet.load_model(fnnet.save_model(tmp_path / "m", model, params, input_shape=(-1, 2)))
    assert [key for key, _ in loaded.children] == ["encoder", "relu", "head"]
    assert fnnet.tree_paths(loaded_params) == fnnet.tree_paths(params) == [
        "encoder/bias", "encoder/kernel", "head/bias", "head/kernel"]


def test_only_the_atomic_module_syncs_and_renames_files():
    # One copy of the durability code: checkpoints and saved models both write through io/atomic.py.
    import inspect
    from fnnet.io import checkpoint
    for module in (checkpoint, saved_model):
        source = inspect.getsource(module)
        assert "fsync" not in source and "os.replace" not in source and "os.rename" not in source, module


def test_save_model_needs_no_input_shape_for_a_model_that_knows_it(tmp_path):
    a, ids = fnnet.Input((3,), name="a"), fnnet.Input((4,), dtype="int32", name="ids")
    shared = fnnet.Dense(2)
    out = fnnet.Concatenate()([shared(a), shared(fnnet.Dense(3)(fnnet.Flatten(fnnet.Embedding(7, 2)(ids))))])
    model = fnnet.Model([a, ids], out, name="graph")
    _, params = model.init(jax.random.PRNGKey(0), model.input_shape)
    folder = fnnet.save_model(tmp_path / "graph", model, params)
    assert fnnet.saved_input_shape(folder) == ((-1, 3), (-1, 4))
    loaded, loaded_params, state = fnnet.load_model(folder)
    x = [jnp.ones((2, 3)), jnp.array([[1, 2, 3, 0], [6, 5, 4, 3]], jnp.int32)]
    np.testing.assert_array_equal(np.asarray(model.apply(params, x)), np.asarray(loaded.apply(loaded_params, x)))
    # The saved shape is checked: weights of the wrong size are named.
    bad = {**params, "dense": {"kernel": jnp.ones((5, 2)), "bias": jnp.ones(2)}}
    with pytest.raises(fnnet.SavedModelError, match="dense/kernel"):
        fnnet.save_model(tmp_path / "bad", model, bad)
    seq = fnnet.Sequential([fnnet.Input((3,)), fnnet.Dense(2)])
    _, seq_params = seq.init(jax.random.PRNGKey(0), seq.input_shape)
    assert fnnet.saved_input_shape(fnnet.save_model(tmp_path / "seq", seq, seq_params)) == (-1, 3)

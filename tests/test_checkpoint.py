"""Checkpoints: exact round trips, atomic writes, clear errors, and no pickle."""

import json
import os
import pickle
import zipfile
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest

import fnnet
from fnnet.io import checkpoint


def _bits(x):
    x = np.asarray(x)
    return x.dtype, x.shape, x.reshape(-1).view(np.uint8).tobytes()


def assert_trees_identical(a, b):
    """Same structure, same container types, and every leaf equal bit for bit."""
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert _bits(x) == _bits(y)


def nested_tree():
    rng = np.random.default_rng(0)
    bf16 = rng.normal(size=(3, 4)).astype(ml_dtypes.bfloat16)
    bf16[0, 0] = np.nan
    bf16[0, 1] = -0.0
    return {
        "dense_0": {"kernel": jnp.asarray(bf16), "bias": jnp.arange(4, dtype=jnp.int32)},
        "layers": [np.float16([1.5, -2.25]), (np.int8([-128, 127]), np.int64([2**40, -1]))],
        "mask": np.array([[True, False]]),
        "key": np.asarray(jax.random.key_data(jax.random.PRNGKey(42))),  # uint32 key data
        "scalar": jnp.float32(3.25),
        "empty": {"d": {}, "l": [], "t": ()},
        "nothing": None,
        "zero_size": np.zeros((0, 5), np.float32),
    }


def test_round_trip_is_bit_exact_for_nested_tree(tmp_path):
    tree = nested_tree()
    path = fnnet.save_checkpoint(tmp_path / "model.ckpt", tree)
    loaded = fnnet.load_checkpoint(path)
    assert list(loaded) == list(tree)  # dict order as saved
    assert type(loaded["layers"]) is list and type(loaded["layers"][1]) is tuple
    assert loaded["empty"] == {"d": {}, "l": [], "t": ()} and loaded["nothing"] is None
    assert loaded["dense_0"]["kernel"].dtype == ml_dtypes.bfloat16
    assert loaded["dense_0"]["bias"].dtype == np.int32
    assert_trees_identical(loaded, jax.tree_util.tree_map(np.asarray, tree))


def test_python_numbers_and_typed_keys_come_back_as_saved(tmp_path):
    tree = {"epoch": 3, "lr": 0.1, "flag": True, "big": 2**40, "key": jax.random.key(7)}
    loaded = fnnet.load_checkpoint(fnnet.save_checkpoint(tmp_path / "c.ckpt", tree))
    assert loaded["epoch"] == 3 and type(loaded["epoch"]) is int
    assert loaded["lr"] == 0.1 and type(loaded["flag"]) is bool and loaded["big"] == 2**40
    assert jnp.issubdtype(loaded["key"].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(loaded["key"]), jax.random.key_data(tree["key"]))


def test_equal_trees_give_identical_files(tmp_path):
    a = fnnet.save_checkpoint(tmp_path / "a.ckpt", nested_tree())
    b = fnnet.save_checkpoint(tmp_path / "b.ckpt", nested_tree())
    assert a.read_bytes() == b.read_bytes()


class Pair(NamedTuple):
    weights: jnp.ndarray
    count: jnp.ndarray


def test_namedtuple_is_a_dict_without_template_and_rebuilt_with_like(tmp_path):
    tree = {"state": Pair(jnp.ones((2, 2), jnp.bfloat16), jnp.int32(5))}
    path = fnnet.save_checkpoint(tmp_path / "nt.ckpt", tree)
    plain = fnnet.load_checkpoint(path)
    assert set(plain["state"]) == {"weights", "count"}
    restored = fnnet.load_checkpoint(path, like=tree)
    assert isinstance(restored["state"], Pair)
    assert isinstance(restored["state"].weights, jax.Array)
    assert_trees_identical(restored, tree)


def test_optax_adam_state_round_trip_continues_identically(tmp_path):
    params = {"dense_0": {"kernel": jnp.linspace(-1, 1, 6).reshape(2, 3), "bias": jnp.zeros(3)}}
    opt = optax.adam(1e-2)
    opt_state = opt.init(params)
    grads = jax.tree_util.tree_map(lambda p: p * 0.5 + 0.1, params)
    for _ in range(2):
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    path = fnnet.save_checkpoint(tmp_path / "adam.ckpt", {"params": params, "opt_state": opt_state})
    template = {"params": params, "opt_state": opt.init(params)}
    restored = fnnet.load_checkpoint(path, like=template)
    assert type(restored["opt_state"][0]) is type(opt_state[0])
    assert_trees_identical(restored, {"params": params, "opt_state": opt_state})
    # One more step from the restored state equals one more step from the original.
    step = jax.jit(lambda p, s: opt.update(grads, s, p))
    assert_trees_identical(step(restored["params"], restored["opt_state"]), step(params, opt_state))


def test_like_accepts_eval_shape_structs(tmp_path):
    tree = {"w": jnp.ones((2, 3)), "key": jax.random.key(1)}
    path = fnnet.save_checkpoint(tmp_path / "c.ckpt", tree)
    restored = fnnet.load_checkpoint(path, like=jax.eval_shape(lambda: tree))
    np.testing.assert_array_equal(restored["w"], tree["w"])
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(tree["key"]))


def test_like_mismatch_lists_every_differing_path(tmp_path):
    saved = {"a": jnp.ones(3), "b": jnp.ones((2, 2)), "c": jnp.ones(2, jnp.float32), "old": jnp.ones(1)}
    path = fnnet.save_checkpoint(tmp_path / "c.ckpt", saved)
    template = {"a": jnp.ones(3), "b": jnp.ones((2, 5)), "c": jnp.ones(2, jnp.bfloat16), "new": {"x": jnp.ones(1)}}
    with pytest.raises(fnnet.CheckpointMismatchError) as info:
        fnnet.load_checkpoint(path, like=template)
    error = info.value
    assert error.missing == ["new/x"] and error.extra == ["old"]
    assert [p for p, *_ in error.shape_mismatch] == ["b"] and [p for p, *_ in error.dtype_mismatch] == ["c"]
    message = str(error)
    for expected in (str(path), "new/x", "old", "b (2, 2) vs (2, 5)", "c float32 vs bfloat16"):
        assert expected in message


def test_crash_during_write_keeps_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    fnnet.save_checkpoint(path, {"w": np.arange(4.0), "b": np.ones(2)})
    before = path.read_bytes()
    real_write = checkpoint._write_array
    written = []

    def crash_on_second_leaf(zf, name, array):
        if written:
            raise RuntimeError("simulated crash")
        written.append(name)
        real_write(zf, name, array)

    monkeypatch.setattr(checkpoint, "_write_array", crash_on_second_leaf)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fnnet.save_checkpoint(path, {"w": np.full(4, 9.0), "b": np.zeros(2)})
    assert written, "the crash must happen mid-write, after a leaf was written"
    assert path.read_bytes() == before
    np.testing.assert_array_equal(fnnet.load_checkpoint(path)["w"], np.arange(4.0))
    assert os.listdir(tmp_path) == ["model.ckpt"]


def test_missing_file_error_names_the_file(tmp_path):
    path = tmp_path / "nowhere.ckpt"
    with pytest.raises(fnnet.CheckpointNotFoundError, match="nowhere.ckpt") as info:
        fnnet.load_checkpoint(path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("damage", ["truncate", "flip_leaf_byte", "flip_manifest_byte", "garbage"])
def test_damaged_file_error_names_the_file(tmp_path, damage):
    path = fnnet.save_checkpoint(tmp_path / "damaged.ckpt", {"w": np.arange(64, dtype=np.float32)})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"this is not a checkpoint\n" * 10)
    else:
        needle = np.arange(64, dtype=np.float32)[10:12].tobytes() if damage == "flip_leaf_byte" else b"fnnet-checkpoint"
        data[data.index(needle) + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(fnnet.CheckpointError, match="damaged.ckpt"):
        fnnet.load_checkpoint(path)


def test_manifest_is_readable_json_with_paths_shapes_dtypes(tmp_path):
    tree = nested_tree()
    path = fnnet.save_checkpoint(tmp_path / "c.ckpt", tree)
    with zipfile.ZipFile(path) as zf:
        raw = json.loads(zf.read("manifest.json"))
    assert raw == fnnet.checkpoint_manifest(path)
    assert raw["format"] == "fnnet-checkpoint" and raw["version"] == checkpoint.VERSION
    by_path = {leaf["path"]: leaf for leaf in raw["leaves"]}
    assert by_path["dense_0/kernel"]["shape"] == [3, 4] and by_path["dense_0/kernel"]["dtype"] == "bfloat16"
    assert by_path["layers/1/1"]["dtype"] == "int64"
    assert set(by_path) == set(fnnet.tree_paths(tree))


class _Exploit:
    called = False

    def __reduce__(self):
        return (_mark_exploited, ())


def _mark_exploited():
    _Exploit.called = True


def test_a_crafted_pickle_is_refused_never_executed(tmp_path):
    payload = pickle.dumps(np.array([_Exploit()], dtype=object))
    manifest = {"format": "fnnet-checkpoint", "version": 1, "tree": {"leaf": 0},
                "leaves": [{"path": "x", "shape": [1], "dtype": "object", "file": "leaves/0.bin"}]}
    crafted = tmp_path / "crafted.ckpt"
    with zipfile.ZipFile(crafted, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("leaves/0.bin", payload)
    with pytest.raises(fnnet.CheckpointError, match="crafted.ckpt.*object"):
        fnnet.load_checkpoint(crafted)
    npz = tmp_path / "objects.npz"
    np.savez(npz, x=np.array([_Exploit()], dtype=object))
    with pytest.raises(fnnet.CheckpointError, match="objects.npz"):
        fnnet.load_checkpoint(npz)
    assert not _Exploit.called


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = fnnet.save_checkpoint(tmp_path / "c.ckpt", nested_tree())

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a checkpoint")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    fnnet.load_checkpoint(path)
    fnnet.load_checkpoint(path, like=nested_tree())


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "future.ckpt"
    with zipfile.ZipFile(path, "w") as zf:
        manifest = {"format": "fnnet-checkpoint", "version": 99, "tree": {}, "leaves": []}
        zf.writestr("manifest.json", json.dumps(manifest))
    with pytest.raises(fnnet.CheckpointError, match="future.ckpt.*version 99"):
        fnnet.load_checkpoint(path)


def test_unsupported_leaves_and_ambiguous_paths_are_refused(tmp_path):
    with pytest.raises(TypeError, match="layers/0.*str"):
        fnnet.save_checkpoint(tmp_path / "c.ckpt", {"layers": ["relu"]})
    with pytest.raises(ValueError, match="'a/b'"):
        fnnet.save_checkpoint(tmp_path / "c.ckpt", {"a/b": np.ones(1), "a": {"b": np.ones(1)}})
    assert not os.listdir(tmp_path)


def test_tree_paths_follow_jax_leaf_order():
    tree = {"b": [jnp.ones(1), None, (jnp.ones(1),)], "a": Pair(jnp.ones(1), jnp.ones(1))}
    assert fnnet.tree_paths(tree) == ["a/weights", "a/count", "b/0", "b/2/0"]
    assert len(fnnet.tree_paths(tree)) == len(jax.tree_util.tree_leaves(tree))


def test_manifest_paths_are_the_tree_paths(tmp_path):
    # One spelling of tree paths (fnnet.tree_paths / keypath_str): manifests, templates and errors agree.
    tree = {"dense": {"kernel": np.ones((2, 2))}, "opt": [Pair(np.zeros(2), np.int32(1))], "t": (np.ones(1),)}
    path = fnnet.save_checkpoint(tmp_path / "c.ckpt", tree)
    stored = [leaf["path"] for leaf in fnnet.checkpoint_manifest(path)["leaves"]]
    assert sorted(stored) == sorted(fnnet.tree_paths(tree))
    assert "opt/0/weights" in stored and "t/0" in stored


# ------------------------------------------------------------------ issue 20: leftovers and links

def test_issue20_the_next_save_removes_what_a_crashed_save_left(tmp_path):
    # Issue 20, defect 6: interrupted saves left .name.<hex>.tmp files that no later save removed.
    path = tmp_path / "c.ckpt"
    fnnet.save_checkpoint(path, {"w": np.ones(3)})
    for token in ("0123456789ab", "ba9876543210"):
        (tmp_path / f".c.ckpt.{token}.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / ".other.ckpt.0123456789ab.tmp").write_bytes(b"another file's")
    fnnet.save_checkpoint(path, {"w": np.zeros(3)})
    assert sorted(os.listdir(tmp_path)) == [".other.ckpt.0123456789ab.tmp", "c.ckpt"]
    assert fnnet.load_checkpoint(path)["w"].tolist() == [0.0, 0.0, 0.0]


def test_saving_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = fnnet.save_checkpoint(tmp_path / "real" / "c.ckpt", {"w": np.ones(2)})
    os.symlink(target, tmp_path / "link.ckpt")
    fnnet.save_checkpoint(tmp_path / "link.ckpt", {"w": np.zeros(2)})
    assert (tmp_path / "link.ckpt").is_symlink()
    assert fnnet.load_checkpoint(target)["w"].tolist() == [0.0, 0.0]
    assert sorted(os.listdir(tmp_path / "real")) == ["c.ckpt"]


def test_a_manifest_cannot_make_loading_allocate_more_than_the_file_holds(tmp_path):
    import json
    import zipfile
    path = fnnet.save_checkpoint(tmp_path / "c.ckpt", {"w": np.ones(4, np.float32)})
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["leaves"][0]["shape"] = [10**7, 10**7]  # 400 TB if allocated
    members["manifest.json"] = json.dumps(manifest)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(fnnet.CheckpointError, match=r"holds 16 bytes, its shape \(10000000, 10000000\)"):
        fnnet.load_checkpoint(path)

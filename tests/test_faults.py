"""Fault injection: crashes at every filesystem call of a save, random-delay kills, hostile input.

Fast by default (CI). ``FNNET_LONG_FAULTS=1`` runs the longer mode: more random kills
(``FNNET_FAULT_KILLS`` each, default 25) and a kill of a fresh interpreter mid-save.

What every save must guarantee, checked after each fault:
- the previous version or the new one loads, whole (never a mixture), with no manual step;
- after the next successful save, none of fnnet's temporary files remain.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import fnnet
from fnnet.io import atomic, saved_model

LONG = os.environ.get("FNNET_LONG_FAULTS", "") not in ("", "0")
KILLS = int(os.environ.get("FNNET_FAULT_KILLS", "25")) if LONG else 6
# The filesystem calls a save makes through the os module (Path methods go through these too).
FS_CALLS = ("open", "dup", "fdopen", "fsync", "replace", "rename", "unlink", "close", "mkdir", "rmdir",
            "listdir", "scandir")
MODEL = fnnet.serial(fnnet.Dense(8), fnnet.Relu, fnnet.Dense(2))

pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning", "ignore::DeprecationWarning")


class InjectedFault(OSError):
    """What a failing filesystem call raises in the tests (as a full disk would)."""


class _CountedFile:
    """A file object whose every write counts as one filesystem call."""

    def __init__(self, f, faults):
        self._f, self._faults = f, faults

    def write(self, data):
        self._faults.tick("write")
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


class Faults:
    """Counts the filesystem calls made inside ``with``; at call ``at`` it raises or kills the process."""

    def __init__(self, at=None, die=False):
        self.at, self.die, self.calls, self.log = at, die, 0, []

    def tick(self, name):
        self.calls += 1
        self.log.append(name)
        if self.at is not None and self.calls == self.at:
            if self.die:
                os._exit(17)  # no cleanup runs, as when the process is killed
            raise InjectedFault(f"injected failure at filesystem call {self.calls} ({name})")

    def __enter__(self):
        self.saved = {name: getattr(os, name) for name in FS_CALLS}
        for name, real in self.saved.items():
            if name == "fdopen":
                setattr(os, name, lambda *a, _real=real, **k: (self.tick("fdopen"),
                                                                 _CountedFile(_real(*a, **k), self))[1])
            else:
                setattr(os, name, lambda *a, _real=real, _name=name, **k: (self.tick(_name), _real(*a, **k))[1])
        return self

    def __exit__(self, *exc):
        for name, real in self.saved.items():
            setattr(os, name, real)


# ------------------------------------------------------------------ versions on disk

def params_of(version, width=8):
    """Params whose every entry is ``version``: a load that mixes two saves shows at once."""
    # MODEL's shapes written out: no JAX call, so forked children can save too.
    shapes = {"dense": {"kernel": (width, 8), "bias": (8,)}, "dense_1": {"kernel": (8, 2), "bias": (2,)}}
    return {k: {n: np.full(shape, version, np.float32) for n, shape in p.items()} for k, p in shapes.items()}


def checkpoint_version(path):
    tree = fnnet.load_checkpoint(path)
    values = {float(v) for leaf in (tree["params"]["dense"]["kernel"], tree["params"]["dense_1"]["bias"])
              for v in np.unique(leaf)}
    assert len(values) == 1 and values == {float(tree["version"])}, f"mixed versions in {path}: {values}"
    return int(tree["version"])


def save_checkpoint_version(path, version, width=8):
    fnnet.save_checkpoint(path, {"params": params_of(version, width), "version": np.int64(version)})


def model_version(folder, writer_running=False):
    _, params, _ = fnnet.load_model(folder)
    values = {float(v) for leaf in jax_leaves(params) for v in np.unique(leaf)}
    assert len(values) == 1, f"{folder}: weights of several saves mixed: {values}"
    if writer_running:  # model.json may have moved on since load_model read it
        return int(values.pop())
    meta = fnnet.load_model_metadata(folder)["version"]
    assert values == {float(meta)}, f"{folder}: model.json says version {meta}, the weights hold {values}"
    return meta


def jax_leaves(tree):
    import jax
    return jax.tree_util.tree_leaves(tree)


def save_model_version(folder, version, width=8):
    # No input_shape: the save itself calls no JAX, so it also runs in a forked child.
    fnnet.save_model(folder, MODEL, params_of(version, width), metadata={"version": version})


def no_leftovers(folder):
    """fnnet's temporary or set-aside files anywhere in or beside ``folder``."""
    places = [folder.parent] + ([folder] if folder.is_dir() else [])
    return [str(p / n) for p in places for n in os.listdir(p) if atomic.is_temporary(n) or n.endswith(".old")]


KINDS = {
    "checkpoint": (save_checkpoint_version, checkpoint_version, lambda tmp: tmp / "run" / "c.ckpt"),
    "model": (save_model_version, model_version, lambda tmp: tmp / "run" / "model"),
}


def _in_child(fn):
    """Run ``fn`` in a forked child; its exit status (17 when the injected kill fired)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pid = os.fork()
    if pid == 0:  # the child: nothing here may return into pytest
        try:
            fn()
        except BaseException:
            os._exit(3)
        os._exit(0)
    return _wait(pid)


def _wait(pid, timeout=60.0):
    """The child's exit code; a child still running after ``timeout`` seconds is killed and fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"forked child {pid} hung")


def _check_after_fault(kind, target, allowed):
    save, version_of, _ = KINDS[kind]
    assert version_of(target) in allowed
    save(target, 99)  # the next successful save
    assert version_of(target) == 99
    assert no_leftovers(target) == []
    if kind == "model":
        assert len(os.listdir(target)) == 2  # model.json and its one weights file


# ------------------------------------------------------------------ a fault at every call

def _calls_of_one_save(kind, tmp_path):
    save, _, place = KINDS[kind]
    target = place(tmp_path)
    save(target, 1)
    with Faults() as counted:
        save(target, 2)
    return counted


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_failure_at_every_filesystem_call_keeps_a_loadable_version(kind, tmp_path):
    save, version_of, place = KINDS[kind]
    total = _calls_of_one_save(kind, tmp_path / "count").calls
    assert total >= 8  # the counter does see the save's calls
    raised = 0
    for k in range(1, total + 1):
        target = place(tmp_path / f"raise{k}")
        save(target, 1)
        try:
            with Faults(at=k):
                save(target, 2)
        except InjectedFault:
            raised += 1  # else a best-effort call failed (syncing a folder, removing leftovers)
        _check_after_fault(kind, target, {1, 2})
    assert raised >= total // 2


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_process_death_at_every_filesystem_call_keeps_a_loadable_version(kind, tmp_path):
    save, version_of, place = KINDS[kind]
    total = _calls_of_one_save(kind, tmp_path / "count").calls
    deaths = 0
    for k in range(1, total + 1):
        target = place(tmp_path / f"die{k}")
        save(target, 1)

        def die_at_k():
            with Faults(at=k, die=True):
                save(target, 2)

        deaths += _in_child(die_at_k) == 17
        _check_after_fault(kind, target, {1, 2})
    assert deaths == total


def test_a_first_save_that_dies_leaves_nothing_that_blocks_the_next(tmp_path):
    target = tmp_path / "fresh"
    total = _calls_of_one_save("model", tmp_path / "count").calls
    for k in range(1, total + 1):
        folder = tmp_path / f"first{k}"

        def die_at_k():
            with Faults(at=k, die=True):
                save_model_version(folder, 1)

        _in_child(die_at_k)
        save_model_version(folder, 2)  # never refused: what the crash left is fnnet's own
        assert model_version(folder) == 2 and no_leftovers(folder) == []
    assert not target.exists()


# ------------------------------------------------------------------ random-delay kills

def _kill_loop(kind, tmp_path, kills, width):
    """Fork a child that saves versions 2, 3, ... without end; SIGKILL it after a random delay."""
    save, version_of, place = KINDS[kind]
    target = place(tmp_path)
    save(target, 1, width)
    started = time.perf_counter()
    save(target, 1, width)
    one_save = time.perf_counter() - started
    rng = random.Random(20)
    seen, interrupted = set(), 0
    for kill in range(kills):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pid = os.fork()
        if pid == 0:
            try:
                for version in range(2 + 1000 * kill, 2 + 1000 * (kill + 1)):
                    save(target, version, width)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.2, 4.0) * one_save)
        os.kill(pid, signal.SIGKILL)
        _wait(pid)
        version = version_of(target)  # loads, whole, without a manual step
        seen.add(version)
        interrupted += bool(no_leftovers(target))  # the kill landed inside a write
        assert version == 1 or 2 + 1000 * kill <= version < 2 + 1000 * (kill + 1)
        save(target, 1, width)
        assert no_leftovers(target) == []
        assert version_of(target) == 1
    # One more kill once the child has finished a save (random delays on a loaded machine can
    # all land before the first one), so the test always sees a save that completed between kills.
    pid = os.fork()
    if pid == 0:
        try:
            for version in range(2, 10_000):
                save(target, version, width)
        finally:
            os._exit(0)
    # Poll without racing the writer: a model's model.json and weights are read separately, so
    # while the child still saves, only the weights tell which version is there.
    def current():
        return version_of(target, writer_running=True) if kind == "model" else version_of(target)

    deadline = time.monotonic() + 60
    while current() == 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 1.0) * one_save)
    os.kill(pid, signal.SIGKILL)
    _wait(pid)
    seen.add(version_of(target))
    save(target, 1, width)
    assert no_leftovers(target) == [] and version_of(target) == 1
    print(f"{kind}: {kills + 1} kills, {interrupted} inside a write, versions seen {len(seen)}")
    return seen, interrupted


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_random_delay_kills_during_saves(kind, tmp_path):
    # Weights of a few MB, so that a save takes long enough for kills to land inside it.
    seen, interrupted = _kill_loop(kind, tmp_path, KILLS, width=20_000 if LONG else 5_000)
    assert len(seen) > 1  # saves completed between kills, and each kill was followed by a successful load
    if LONG:
        assert interrupted > 0  # some kills did land mid-write


@pytest.mark.skipif(not LONG, reason="longer fault mode: set FNNET_LONG_FAULTS=1")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_killing_a_fresh_interpreter_mid_save(kind, tmp_path):
    _, version_of, place = KINDS[kind]
    target = place(tmp_path)
    KINDS[kind][0](target, 1)
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_faults import KINDS
        print('ready', flush=True)
        for version in range(2, 10**6):
            KINDS[{kind!r}][0](__import__('pathlib').Path({str(target)!r}), version, 20_000)
    """)
    rng = random.Random(7)
    for _ in range(max(3, KILLS // 5)):
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                 env={**os.environ, "JAX_PLATFORMS": "cpu"})
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 1.0))
        child.kill()
        child.wait()
        assert version_of(target) >= 1
        KINDS[kind][0](target, 1)
        assert no_leftovers(target) == []


# ------------------------------------------------------------------ readers during saves

@pytest.mark.parametrize("kind", sorted(KINDS))
def test_loads_during_saves_always_see_one_whole_version(kind, tmp_path):
    save, version_of, place = KINDS[kind]
    target = place(tmp_path)
    save(target, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pid = os.fork()
    if pid == 0:  # the writer
        try:
            for version in range(2, 10**6):
                save(target, version)
        finally:
            os._exit(0)
    try:
        read = (lambda: model_version(target, writer_running=True)) if kind == "model" else lambda: version_of(target)
        versions, deadline = [], time.monotonic() + 60
        # Each load is whole; keep loading until the writer (slow to start on a busy machine) has moved on.
        while (len(versions) < (40 if not LONG else 400) or versions[-1] <= 2) and time.monotonic() < deadline:
            versions.append(read())
    finally:
        os.kill(pid, signal.SIGKILL)
        _wait(pid)
    assert versions == sorted(versions) and versions[-1] > 1  # the writer made progress meanwhile


# ------------------------------------------------------------------ a live writer's file is kept

def test_a_live_writers_temporary_file_is_not_removed(tmp_path):
    target, seen = tmp_path / "c.bin", {}

    def write(f):
        f.write(b"partial")
        seen["removed"] = atomic.remove_leftovers(tmp_path)  # as another save's cleanup would, meanwhile
        seen["present"] = [n for n in os.listdir(tmp_path) if atomic.is_temporary(n)]
        f.write(b" and the rest")

    (tmp_path / ".c.bin.0123456789ab.tmp").write_bytes(b"left by a dead writer")
    atomic.atomic_write(target, write)
    assert seen["removed"] == [".c.bin.0123456789ab.tmp"] and len(seen["present"]) == 1
    assert target.read_bytes() == b"partial and the rest" and os.listdir(tmp_path) == ["c.bin"]


# ------------------------------------------------------------------ hostile and malformed input
# Each case: (what the user did, thunk(tmp_path), the error fnnet raises, a regex its message matches).
# The same list makes the table of issue 20's note (scripts print it), so every row is tested.

def _saved(tmp, name="m"):
    import jax
    model = fnnet.serial(fnnet.Dense(2), fnnet.Relu, fnnet.Dense(1))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    return fnnet.save_model(tmp / name, model, params, input_shape=(-1, 3))


def _edit_description(tmp, change):
    import json
    folder = _saved(tmp)
    path = folder / "model.json"
    description = json.loads(path.read_text())
    path.write_text(change(description) if callable(change) else change)
    return folder


def _with(description, **fields):
    import json
    return json.dumps({**description, **fields})


def _with_spec(**fields):
    return lambda d: _with(d, spec={**d["spec"], **fields})


def _dense_params():
    return {"kernel": np.ones((3, 1), np.float32), "bias": np.zeros(1, np.float32)}


def _checkpoint(tmp):
    return fnnet.save_checkpoint(tmp / "c.ckpt", {"w": np.arange(6.0).reshape(2, 3), "step": np.int64(3)})


def _rewrite_zip(path, change):
    """Rewrite the zip at ``path`` with ``change(name, bytes) -> bytes or None`` (None drops the member)."""
    import zipfile
    members = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            members[name] = z.read(name)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            data = change(name, data)
            if data is not None:
                z.writestr(name, data)
    return path


def _manifest(tmp, change):
    import json
    path = _checkpoint(tmp)

    def edit(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        change(manifest)
        return json.dumps(manifest)

    return _rewrite_zip(path, edit)


def _flip_byte(path, at=0.6):
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def keras_file(path, units=2, kernel=None, config=None, tweak=None, layer_config=None):
    """A .keras file written with h5py and zipfile alone: Input(3) -> Dense(units)."""
    import io
    import json
    import zipfile
    h5py = pytest.importorskip("h5py")
    dense = {"name": "dense", "units": units, "activation": "linear", "use_bias": True}
    if layer_config is not None:
        dense = layer_config(dense)
    config = config if config is not None else {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 3], "name": "input"}},
        {"class_name": "Dense", "config": dense, "build_config": {"input_shape": [None, 3]}}]}}
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        group = f.create_group("layers/dense/vars")
        if kernel is None:
            group.create_dataset("0", data=np.ones((3, units), np.float32))
        else:
            kernel(f, group)
        group.create_dataset("1", data=np.zeros(units, np.float32))
        if tweak is not None:
            tweak(f, group)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
        z.writestr("model.weights.h5", buffer.getvalue())
    return path


def _external_kernel(secret):
    def kernel(f, group):
        secret.write_bytes(np.full((3, 2), 7, np.float32).tobytes())
        group.create_dataset("0", shape=(3, 2), dtype="float32", external=[(str(secret), 0, 24)])
    return kernel


def _virtual_kernel(f, group):
    import h5py
    layout = h5py.VirtualLayout(shape=(3, 2), dtype="float32")
    layout[:] = h5py.VirtualSource("elsewhere.h5", "data", shape=(3, 2))
    group.create_virtual_dataset("0", layout, fillvalue=0)


def _external_link(f, group):
    import h5py
    group["0"] = h5py.ExternalLink("/etc/hostname", "/data")


def _soft_link(f, group):
    import h5py
    f.create_dataset("stash", data=np.ones((3, 2), np.float32))
    group["0"] = h5py.SoftLink("/stash")


def _huge_kernel(f, group):
    # Compressed to a few KB, but 400 MB once read: refused from its declared shape, never read.
    group.create_dataset("0", shape=(100_000, 1000), dtype="float32", compression="gzip", fillvalue=0)


def _text_kernel(f, group):
    group.create_dataset("0", data=np.array([b"a", b"b", b"c"]))


def _fit(model, x, y, **kw):
    import jax
    _, params = model.init(jax.random.PRNGKey(0), (-1,) + np.shape(x)[1:])
    return fnnet.fit(model, params, x, y, optimizer="sgd", epochs=1, batch_size=4, verbose=0, **kw)


EMBED = fnnet.serial(fnnet.Embedding(10, 4), fnnet.Flatten, fnnet.Dense(3))
XS = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
IDS = np.random.default_rng(0).integers(0, 10, size=(12, 2))
LABELS = np.arange(12) % 3


def _set(array, index, value):
    array = array.copy()
    array[index] = value
    return array


def _tabular(cells):
    import pandas as pd
    return fnnet.TabularPreprocessor().fit(pd.DataFrame({"LotArea": cells}))


def _contract_test_without_pytest():
    import builtins
    import importlib
    real_import = builtins.__import__

    def no_pytest(name, *args, **kwargs):
        if name == "pytest" or name.startswith("pytest."):
            raise ModuleNotFoundError("No module named 'pytest'")
        return real_import(name, *args, **kwargs)

    import fnnet.testing
    builtins.__import__ = no_pytest
    try:
        importlib.reload(fnnet.testing)
        return fnnet.testing.layer_contract_test
    finally:
        builtins.__import__ = real_import


def _nested_spec(depth):
    return '{"class": "serial", "args": [{"layer": ' * depth + '{"class": "Relu"}' + "}]}" * depth


SavedModelError, SpecError, CheckpointError = fnnet.SavedModelError, fnnet.SpecError, fnnet.CheckpointError
KerasImportError = fnnet.KerasImportError
from fnnet.training.validation import DataError  # noqa: E402
from fnnet.data.text import TextDataError  # noqa: E402

BAD_INPUTS = [
    # --- saving over things that are not fnnet's (issue 20, defect 1)
    ("save_model into a folder with model.json '{}' and src/main.py",
     lambda t: ((t / "p" / "src").mkdir(parents=True), (t / "p" / "model.json").write_text("{}"),
                (t / "p" / "src" / "main.py").write_text("x"),
                fnnet.save_model(t / "p", fnnet.Dense(1), _dense_params())),
     SavedModelError, r"is not an fnnet model directory .*refusing to replace it"),
    ("save_model into a folder holding only a model.json '{}'",
     lambda t: ((t / "p").mkdir(), (t / "p" / "model.json").write_text("{}"),
                fnnet.save_model(t / "p", fnnet.Dense(1), _dense_params())),
     SavedModelError, r"is not an fnnet model directory .*refusing to replace it"),
    ("save_model into a TF.js model folder",
     lambda t: ((t / "js").mkdir(), (t / "js" / "model.json").write_text('{"format": "layers-model"}'),
                (t / "js" / "group1-shard1of1.bin").write_bytes(b"0"),
                fnnet.save_model(t / "js", fnnet.Dense(1), _dense_params())),
     SavedModelError, r"does not say format 'fnnet-model'.*refusing to replace it"),
    ("save_model over an fnnet model folder holding the user's notes.txt and plots/",
     lambda t: (_saved(t), (t / "m" / "notes.txt").write_text("x"), (t / "m" / "plots").mkdir(),
                fnnet.save_model(t / "m", fnnet.Dense(1), _dense_params())),
     SavedModelError, r"holds entries that save_model did not write \(notes\.txt, plots/\)"),
    ("save_model where a file of that name exists",
     lambda t: ((t / "f").write_text("x"), fnnet.save_model(t / "f", fnnet.Dense(1), _dense_params())),
     SavedModelError, "is a file, not a model directory"),
    ("save_model with metadata that is not JSON",
     lambda t: fnnet.save_model(t / "m", fnnet.Dense(1), _dense_params(), metadata={"f": object()}),
     TypeError, "metadata for .* is not JSON-serialisable"),
    ("save_model with params that do not fit the architecture",
     lambda t: fnnet.save_model(t / "m", fnnet.Dense(2), _dense_params(), input_shape=(-1, 3)),
     SavedModelError, r"shape differs .*kernel \(3, 1\) vs \(3, 2\)"),
    # --- loading malformed model folders (defect 8)
    ("load_model on a missing folder", lambda t: fnnet.load_model(t / "nothing"),
     SavedModelError, "no such model directory"),
    ("load_model on a folder without model.json",
     lambda t: ((t / "d").mkdir(), fnnet.load_model(t / "d")), SavedModelError, r"no model\.json"),
    ("model.json that is not JSON", lambda t: fnnet.load_model(_edit_description(t, "{not json")),
     SavedModelError, "model.json is not valid JSON"),
    ("model.json holding a JSON list", lambda t: fnnet.load_model(_edit_description(t, "[1, 2]")),
     SavedModelError, "does not say format"),
    ("model.json without 'spec'",
     lambda t: fnnet.load_model(_edit_description(t, lambda d: _with({k: v for k, v in d.items() if k != "spec"}))),
     SavedModelError, "has no 'spec'"),
    ("model.json from a newer fnnet",
     lambda t: fnnet.load_model(_edit_description(t, lambda d: _with(d, format_version=99))),
     SavedModelError, "newer than this fnnet reads"),
    ("model.json with format_version '1' (a string)",
     lambda t: fnnet.load_model(_edit_description(t, lambda d: _with(d, format_version="1"))),
     SavedModelError, "is not a version number"),
    ("model.json whose weights name points outside ('../../secret.ckpt')",
     lambda t: fnnet.load_model(_edit_description(t, lambda d: _with(d, weights="../../secret.ckpt"))),
     SavedModelError, "not the name of a weights file inside the model directory"),
    ("model.json with input_shape 'abc'",
     lambda t: fnnet.load_model(_edit_description(t, lambda d: _with(d, input_shape="abc"))),
     SavedModelError, "'input_shape' 'abc' is not a shape"),
    ("model.json with metadata as a list",
     lambda t: fnnet.load_model_metadata(_edit_description(t, lambda d: _with(d, metadata=[1]))),
     SavedModelError, "'metadata' is not an object"),
    ("model.json with has_state 'yes'",
     lambda t: fnnet.load_model(_edit_description(t, lambda d: _with(d, has_state="yes"))),
     SavedModelError, "'has_state' is not true or false"),
    ("spec kwargs as a list", lambda t: fnnet.load_model(_edit_description(t, _with_spec(kwargs=[1]))),
     SpecError, r"model\.json: model: serial: 'kwargs' is list, expected an object"),
    ("spec args as an object", lambda t: fnnet.load_model(_edit_description(t, _with_spec(args={"a": 1}))),
     SpecError, "'args' is dict, expected a list"),
    ("spec class 42", lambda t: fnnet.from_spec({"class": 42}), SpecError, "'class' is 42, not a layer name"),
    ("spec of an unknown layer", lambda t: fnnet.from_spec({"class": "Evil"}), SpecError, "unknown layer 'Evil'"),
    ("spec tuple holding a string",
     lambda t: fnnet.from_spec({"class": "Reshape", "args": [{"tuple": "12"}]}),
     SpecError, "'tuple' holds str, expected list"),
    ("spec nested 100,000 layers deep", lambda t: fnnet.from_spec(_nested_spec(100_000)),
     SpecError, "nests layers or values too deeply"),
    ("spec that is not JSON", lambda t: fnnet.from_spec("{"), SpecError, "the spec is not valid JSON"),
    ("spec Dense with units 0", lambda t: fnnet.from_spec({"class": "Dense", "args": [0]}),
     SpecError, r"Dense\(\.\.\.\) failed: Dense: units must be a positive integer, got 0"),
    ("weights file deleted from a model folder",
     lambda t: (lambda f: (fnnet.io.saved_model.weights_file(f).unlink(), fnnet.load_model(f)))(_saved(t)),
     CheckpointError, "no such checkpoint file"),
    ("weights file truncated to half",
     lambda t: (lambda f: (lambda w: (w.write_bytes(w.read_bytes()[: w.stat().st_size // 2]), fnnet.load_model(f)))(
         fnnet.io.saved_model.weights_file(f)))(_saved(t)),
     CheckpointError, "truncated or corrupted"),
    # --- checkpoints (defect 8)
    ("load_checkpoint on a missing file", lambda t: fnnet.load_checkpoint(t / "none.ckpt"),
     CheckpointError, "no such checkpoint file"),
    ("load_checkpoint on a folder", lambda t: fnnet.load_checkpoint(t), CheckpointError, "is a directory"),
    ("checkpoint that is a text file",
     lambda t: ((t / "c.ckpt").write_text("hello"), fnnet.load_checkpoint(t / "c.ckpt")),
     CheckpointError, "not a readable fnnet checkpoint"),
    ("checkpoint with one flipped byte in a leaf",
     lambda t: fnnet.load_checkpoint(_flip_byte(_checkpoint(t), 0.5)), CheckpointError, "truncated or corrupted"),
    ("checkpoint truncated to 100 bytes",
     lambda t: (lambda p: (p.write_bytes(p.read_bytes()[:100]), fnnet.load_checkpoint(p)))(_checkpoint(t)),
     CheckpointError, "truncated or corrupted"),
    ("zip without a manifest",
     lambda t: fnnet.load_checkpoint(_rewrite_zip(_checkpoint(t), lambda n, d: None if n == "manifest.json" else d)),
     CheckpointError, r"no manifest\.json inside"),
    ("manifest asking for dtype 'object' (a pickle)",
     lambda t: fnnet.load_checkpoint(_manifest(t, lambda m: m["leaves"][0].update(dtype="object"))),
     CheckpointError, "which checkpoints never load"),
    ("manifest with a negative shape",
     lambda t: fnnet.load_checkpoint(_manifest(t, lambda m: m["leaves"][0].update(shape=[-2, 3]))),
     CheckpointError, "is malformed"),
    ("manifest shape larger than the stored bytes (10^12 elements)",
     lambda t: fnnet.load_checkpoint(_manifest(t, lambda m: m["leaves"][0].update(shape=[10**6, 10**6]))),
     CheckpointError, r"holds 48 bytes, its shape \(1000000, 1000000\)"),
    ("manifest naming an unknown PRNG implementation",
     lambda t: fnnet.load_checkpoint(_manifest(t, lambda m: m["leaves"][0].update(key_impl="evil"))),
     CheckpointError, "unknown PRNG implementation"),
    ("manifest tree pointing at leaf 99",
     lambda t: fnnet.load_checkpoint(_manifest(t, lambda m: m["tree"]["values"][0].update(leaf=99))),
     CheckpointError, "refers to leaf 99"),
    ("load_checkpoint(like=) with another shape",
     lambda t: fnnet.load_checkpoint(_checkpoint(t), like={"w": np.zeros((3, 2)), "step": np.int64(0)}),
     CheckpointError, r"shape differs .*w \(2, 3\) vs \(3, 2\)"),
    # --- Keras files: data, never pointers (defect 2) and malformed (defect 8)
    ("kernel stored in an external file (/path/secret)",
     lambda t: fnnet.from_keras(keras_file(t / "m.keras", kernel=_external_kernel(t / "secret"))),
     KerasImportError, "stores its bytes in an external file"),
    ("kernel as a virtual dataset", lambda t: fnnet.from_keras(keras_file(t / "m.keras", kernel=_virtual_kernel)),
     KerasImportError, "is a virtual dataset"),
    ("kernel as an HDF5 external link", lambda t: fnnet.from_keras(keras_file(t / "m.keras", kernel=_external_link)),
     KerasImportError, "is an external link to /etc/hostname"),
    ("kernel as an HDF5 soft link", lambda t: fnnet.from_keras(keras_file(t / "m.keras", kernel=_soft_link)),
     KerasImportError, "is a soft link"),
    ("55 KB file declaring a gzip kernel of shape (100000, 1000)",
     lambda t: fnnet.from_keras(keras_file(t / "m.keras", kernel=_huge_kernel)),
     KerasImportError, r"shape differs \(file vs config\).*100000, 1000"),
    ("kernel of byte strings", lambda t: fnnet.from_keras(keras_file(t / "m.keras", kernel=_text_kernel)),
     KerasImportError, "not a numeric weight type"),
    ("config.json that is not JSON", lambda t: fnnet.from_keras(keras_file(t / "m.keras", config="{oops")),
     KerasImportError, "config.json is not valid JSON"),
    ("config.json holding a list", lambda t: fnnet.from_keras(keras_file(t / "m.keras", config=[1, 2])),
     KerasImportError, "the model config is not an object"),
    ("Dense config without 'units'",
     lambda t: fnnet.from_keras(keras_file(t / "m.keras", layer_config=lambda c: {k: v for k, v in c.items()
                                                                                    if k != "units"})),
     KerasImportError, r"Keras layer 'dense' \(Dense\): its config has no 'units'"),
    ("Dense config with units -3", lambda t: fnnet.from_keras(keras_file(t / "m.keras",
                                                                         layer_config=lambda c: {**c, "units": -3})),
     KerasImportError, "units must be a positive integer, got -3"),
    ("config and weights from different models (units 4, kernel (3, 2))",
     lambda t: fnnet.from_keras(keras_file(t / "m.keras", layer_config=lambda c: {**c, "units": 4})),
     KerasImportError, "the weights file does not fit the architecture its config describes"),
    ("a layer entry that is a string",
     lambda t: fnnet.from_keras(keras_file(t / "m.keras", config={"class_name": "Sequential",
                                                                  "config": {"layers": ["Dense"]}})),
     KerasImportError, "the model config is malformed"),
    ("batch_shape [null, -3]",
     lambda t: fnnet.from_keras(keras_file(t / "m.keras", config={"class_name": "Sequential", "config": {"layers": [
         {"class_name": "InputLayer", "config": {"batch_shape": [None, -3]}}]}})),
     KerasImportError, r"is not a shape"),
    ("a subclassed model's config",
     lambda t: fnnet.from_keras(keras_file(t / "m.keras", config={"class_name": "MyModel", "config": {}})),
     KerasImportError, "cannot import a MyModel"),
    (".keras with one flipped byte",
     lambda t: fnnet.from_keras(_flip_byte(keras_file(t / "m.keras"), 0.5)), KerasImportError, "is damaged"),
    (".keras without model.weights.h5",
     lambda t: fnnet.from_keras(_rewrite_zip(keras_file(t / "m.keras"), lambda n, d: None if n.endswith(".h5") else d)),
     KerasImportError, "has no model.weights.h5"),
    ("model.weights.h5 that is not HDF5",
     lambda t: fnnet.from_keras(_rewrite_zip(keras_file(t / "m.keras"), lambda n, d: b"junk" if n.endswith(".h5")
                                             else d)),
     KerasImportError, "is not a readable HDF5 file"),
    ("a legacy .h5 file", lambda t: ((t / "old.h5").write_bytes(b"\x89HDF\r\n"), fnnet.from_keras(t / "old.h5")),
     KerasImportError, r"is not a \.keras \(zip\) file"),
    # --- layer arguments (defect 8)
    ("Dense(0)", lambda t: fnnet.Dense(0), ValueError, "Dense: units must be a positive integer, got 0"),
    ("Dense(-3)", lambda t: fnnet.Dense(-3), ValueError, "got -3"),
    ("Dense(2.5)", lambda t: fnnet.Dense(2.5), ValueError, "got 2.5"),
    ("Conv2D(-1, 3)", lambda t: fnnet.Conv2D(-1, 3), ValueError, "Conv2D: filters must be a positive integer"),
    ("Conv1D(0, 3)", lambda t: fnnet.Conv1D(0, 3), ValueError, "Conv1D: filters must be a positive integer"),
    ("Embedding(0, 4)", lambda t: fnnet.Embedding(0, 4), ValueError, "Embedding: input_dim must be a positive"),
    ("Embedding(10, -2)", lambda t: fnnet.Embedding(10, -2), ValueError, "Embedding: output_dim must be a positive"),
    ("Dropout(1.5)", lambda t: fnnet.Dropout(1.5), ValueError, r"Dropout rate must be in \[0, 1\)"),
    # --- bad data (defects 4, 5, 7)
    ("NaN in x", lambda t: _fit(fnnet.Dense(3), _set(XS, (3, 1), np.nan), LABELS,
                                loss="sparse_categorical_crossentropy"),
     DataError, r"x: nan at row 3, column 1"),
    ("inf in y (regression)", lambda t: _fit(fnnet.Dense(1), XS, _set(XS[:, :1], (5, 0), np.inf), loss="mse"),
     DataError, r"y: inf at row 5, column 0"),
    ("NaN only in validation_data", lambda t: _fit(fnnet.Dense(3), XS, LABELS, loss="sparse_categorical_crossentropy",
                                                   validation_data=(_set(XS, (0, 0), np.nan), LABELS)),
     DataError, r"validation x: nan at row 0"),
    ("Embedding id -1", lambda t: _fit(EMBED, _set(IDS, (2, 0), -1), LABELS, loss="sparse_categorical_crossentropy"),
     DataError, r"id for Embedding 'embedding' \(input_dim=10\): -1 at row 2, column 0 is outside \[0, 10\)"),
    ("Embedding id 10 (= input_dim)",
     lambda t: _fit(EMBED, _set(IDS, (7, 1), 10), LABELS, loss="sparse_categorical_crossentropy"),
     DataError, r"10 at row 7, column 1 is outside \[0, 10\)"),
    ("sparse cross-entropy label -1",
     lambda t: _fit(fnnet.Dense(3), XS, _set(LABELS, 4, -1), loss="sparse_categorical_crossentropy"),
     DataError, r"^y: label for sparse_categorical_crossentropy \(the model gives 3 classes\): -1 at row 4"),
    ("label 3 with 3 classes",
     lambda t: _fit(fnnet.Dense(3), XS, _set(LABELS, 0, 3), loss="sparse_categorical_crossentropy"),
     DataError, r"3 at row 0 is outside \[0, 3\)"),
    ("predict with an out-of-range id",
     lambda t: fnnet.predict(EMBED, EMBED.init(np.zeros(2, np.uint32), (-1, 2))[1], _set(IDS, (1, 1), 99)),
     DataError, r"99 at row 1, column 1 is outside"),
    ("CSV column LotArea with one cell '8450sqft'", lambda t: _tabular([str(8000 + i) for i in range(40)] + ["8450sqft"]),
     ValueError, r"column 'LotArea': looks numeric \(40 of 41 cells are numbers\) but 1 cell\(s\) are not: "
                 r"'8450sqft' \(row 40\)"),
    ("CSV column LotArea with one cell 'inf'", lambda t: _tabular([8000.0, float("inf"), 9000.0]),
     ValueError, r"column 'LotArea': inf \(row 1\) is not a finite number"),
    ("text CSV without the label column",
     lambda t: ((t / "r.csv").write_text("text\nok\n"), fnnet.load_text_csv(t / "r.csv")),
     TextDataError, "no column 'label'"),
    ("rt-polarity folder with only the .pos file",
     lambda t: ((t / "rt-polarity.pos").write_text("good\n"), fnnet.load_rt_polarity(t)),
     TextDataError, r"no rt-polarity\.neg"),
    # --- callbacks and tools (defects 3 and 7)
    ("EarlyStopping monitoring a key fit does not log",
     lambda t: _fit(fnnet.Dense(1), XS, XS[:, :1], loss="mse", callbacks=[fnnet.EarlyStopping(monitor="val_acc")]),
     ValueError, "EarlyStopping monitors 'val_acc', which fit does not log"),
    ("fnnet.testing.layer_contract_test without pytest installed", lambda t: _contract_test_without_pytest(),
     ImportError, "layer_contract_test makes pytest tests and needs pytest"),
]


@pytest.mark.parametrize("what, thunk, error, pattern", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(what, thunk, error, pattern, tmp_path):
    with pytest.raises(error, match=pattern):
        thunk(tmp_path)


def test_a_keras_file_cannot_make_fnnet_allocate_more_than_its_architecture(tmp_path):
    import tracemalloc
    path = keras_file(tmp_path / "m.keras", kernel=_huge_kernel)  # 400 MB declared, config says (3, 2)
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(KerasImportError, match="does not fit the architecture"):
            fnnet.from_keras(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # numpy never allocated the declared kernel


def test_the_table_covers_at_least_fifty_inputs():
    assert len(BAD_INPUTS) >= 50 and len({case[0] for case in BAD_INPUTS}) == len(BAD_INPUTS)

"""Whole models on disk: architecture, weights and state in one directory.

A model directory holds two files:

- ``model.json``: the format name and version, the architecture (:func:`fnnet.to_spec`),
  the input shape ``init`` was called with, whether state was saved, the caller's
  ``metadata`` (a vocabulary, preprocessing settings) and the name of the weights file;
- ``weights.<12 hex>.ckpt``: ``{'params': ..., 'state': ...}`` as an
  :mod:`fnnet.io.checkpoint` file (``weights.ckpt`` in format version 1).

Each save writes a new weights file under a fresh name, then atomically replaces
``model.json``, which names it: that rename is the one moment the new model takes over,
so a crash at any point leaves the old model or the new one loadable, never a mixture,
and no manual step is needed. Only then are the previous weights file and crashed saves'
leftovers deleted. A directory is replaced only when it provably is an fnnet model
(a ``model.json`` fnnet can read, nothing but fnnet's files beside it); anything else
is refused, naming what is in the way, so a user's file is never deleted. A symbolic
link to a model directory is written through. Loading never writes. Loading rebuilds
the model from its spec and, when the input shape was saved, checks every saved array
against what the spec's ``init`` would produce (:func:`fnnet.walk`, nothing computed),
naming each path that differs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp

from ..core import shape_str, walk
from ..structure.eval_init import tree_differences
from . import atomic
from .checkpoint import CheckpointMismatchError, CheckpointNotFoundError, load_checkpoint, save_checkpoint
from .spec import SpecError, from_spec, to_spec

FORMAT = "fnnet-model"
FORMAT_VERSION = 2
SPEC_FILE = "model.json"
WEIGHTS_FILE = "weights.ckpt"  # format version 1's fixed name
# Every weights file save_model may write, hence the only names besides model.json (and the
# atomic writes' temporary files) it may delete from an existing model directory.
_WEIGHTS_NAME = re.compile(r"weights(\.[0-9a-f]{12})?\.ckpt")
_MAX_LISTED = 20
_READ_ATTEMPTS = 5  # loads that race a save re-read model.json this often before giving up


class SavedModelError(ValueError):
    """A model directory is missing, malformed, or its weights do not fit its architecture.

    ``directory`` is the model directory; ``missing``, ``extra``, ``shape_mismatch`` and
    ``dtype_mismatch`` list the differing paths (``'params/dense_1/kernel'``) when the
    weights do not fit (``(path, saved, expected)`` for the mismatches).
    """

    def __init__(self, directory, detail, missing=(), extra=(), shape_mismatch=(), dtype_mismatch=()):
        self.directory = Path(directory)
        self.detail = detail
        self.missing, self.extra = list(missing), list(extra)
        self.shape_mismatch, self.dtype_mismatch = list(shape_mismatch), list(dtype_mismatch)
        super().__init__(f"{directory}: {detail}")

    def __reduce__(self):
        return (SavedModelError, (self.directory, self.detail, self.missing, self.extra,
                                  self.shape_mismatch, self.dtype_mismatch))


# ------------------------------------------------------------------------ checking

def _listing(items) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _mismatch_error(directory, input_shape, missing, extra, shapes, dtypes) -> SavedModelError:
    parts = []
    if missing:
        parts.append("missing from the weights: " + _listing(missing))
    if extra:
        parts.append("in the weights but not made by the spec: " + _listing(extra))
    if shapes:
        parts.append("shape differs (weights vs spec): " + _listing(
            [f"{p} {tuple(a)} vs {tuple(b)}" for p, a, b in shapes]))
    if dtypes:
        parts.append("dtype differs (weights vs spec): " + _listing([f"{p} {a} vs {b}" for p, a, b in dtypes]))
    detail = (f"the weights do not match what the spec's init gives for input shape {shape_str(input_shape)}; "
              + "; ".join(parts))
    return SavedModelError(directory, detail, missing, extra, shapes, dtypes)


def _check_against(directory, input_shape, expected, actual):
    """Raise :class:`SavedModelError` listing every path where ``actual`` differs from ``expected``."""
    missing, extra, shapes, dtypes = tree_differences(expected, actual)
    if missing or extra or shapes or dtypes:
        raise _mismatch_error(directory, input_shape, missing, extra, shapes, dtypes)


def _expected_tree(model, input_shape, with_state: bool):
    # The one walker runs init under jax.eval_shape: shapes and dtypes, no weights computed.
    root = walk(model, input_shape)
    return {"params": root.params, "state": root.state if with_state else None}


# ------------------------------------------------------------------------ JSON parts

def _shape_to_json(shape):
    if shape is None:
        return None
    return [_shape_to_json(d) if isinstance(d, (tuple, list)) else int(d) for d in shape]


def _shape_from_json(shape):
    if shape is None:
        return None
    if not isinstance(shape, list):
        raise TypeError(f"expected a list, got {shape!r}")
    for d in shape:
        if not isinstance(d, list) and (not isinstance(d, int) or isinstance(d, bool) or d < -1):
            raise ValueError(f"{d!r} is not a dimension (a size >= 0, or -1 for unknown)")
    return tuple(_shape_from_json(d) if isinstance(d, list) else d for d in shape)


def _read_description(directory: Path) -> dict:
    path = directory / SPEC_FILE
    if not path.is_file():
        if not directory.exists():
            # fnnet 0.1 swapped whole folders; a crash between its two renames left the model aside.
            aside = sorted(directory.parent.glob(f".{directory.name}.*.old"))
            hint = f"; an fnnet 0.1 save_model was interrupted and left the model at {aside[-1]}" if aside else ""
            raise SavedModelError(directory, f"no such model directory{hint}")
        if not directory.is_dir():
            raise SavedModelError(directory, "is a file, not a model directory")
        raise SavedModelError(directory, f"not an fnnet model directory (no {SPEC_FILE})")
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise SavedModelError(directory, f"{SPEC_FILE} is not valid JSON: {e}") from e
    except OSError as e:
        raise SavedModelError(directory, f"cannot read {SPEC_FILE}: {e}") from e
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise SavedModelError(directory, f"{SPEC_FILE} does not say format {FORMAT!r}")
    version = description.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SavedModelError(directory, f"{SPEC_FILE}: format_version {version!r} is not a version number")
    if version > FORMAT_VERSION:
        raise SavedModelError(directory, f"model format version {version!r} is newer than this fnnet reads "
                                         f"({FORMAT_VERSION}); upgrade fnnet")
    if "spec" not in description:
        raise SavedModelError(directory, f"{SPEC_FILE} has no 'spec' (the architecture)")
    weights = description.get("weights", WEIGHTS_FILE)
    # The name is data from the file: only fnnet's own weights names, so it can never point elsewhere.
    if not isinstance(weights, str) or not _WEIGHTS_NAME.fullmatch(weights):
        raise SavedModelError(directory, f"{SPEC_FILE}: 'weights' is {weights!r}, not the name of a weights file "
                                         "inside the model directory")
    if not isinstance(description.get("metadata", {}), dict):
        raise SavedModelError(directory, f"{SPEC_FILE}: 'metadata' is not an object")
    if not isinstance(description.get("has_state", False), bool):
        raise SavedModelError(directory, f"{SPEC_FILE}: 'has_state' is not true or false")
    try:
        _shape_from_json(description.get("input_shape"))
    except (TypeError, ValueError) as e:
        raise SavedModelError(directory, f"{SPEC_FILE}: 'input_shape' {description.get('input_shape')!r} "
                                         "is not a shape") from e
    return description


def _weights_path(directory: Path, description: dict) -> Path:
    return directory / description.get("weights", WEIGHTS_FILE)


def weights_file(directory) -> Path:
    """The weights file that a model directory's ``model.json`` names (its current weights).

    >>> import fnnet, jax, os, tempfile
    >>> _, params = fnnet.Dense(1).init(jax.random.PRNGKey(0), (-1, 2))
    >>> folder = fnnet.save_model(os.path.join(tempfile.mkdtemp(), 'm'), fnnet.Dense(1), params)
    >>> weights_file(folder).parent == folder, weights_file(folder).suffix
    (True, '.ckpt')
    """
    directory = Path(os.fspath(directory))
    return _weights_path(directory, _read_description(directory))


# ------------------------------------------------------------------------ writing

def _write_json(path: Path, value) -> None:
    text = json.dumps(value, indent=1).encode("utf-8")
    atomic.atomic_write(path, lambda f: f.write(text))


def _is_own_entry(entry: Path) -> bool:
    """Whether a model directory's entry is one save_model writes (so it may replace or delete it)."""
    if entry.is_symlink() or not entry.is_file():
        return False
    return entry.name == SPEC_FILE or bool(_WEIGHTS_NAME.fullmatch(entry.name)) or atomic.is_temporary(entry.name)


def _refuse_unless_own(directory: Path) -> None:
    """Raise unless ``directory`` is absent, empty, or provably an fnnet model directory."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise SavedModelError(directory, "exists and is a file, not a model directory; refusing to replace it")
    entries = sorted(directory.iterdir())
    foreign = [e.name + ("/" if e.is_dir() else "") for e in entries if not _is_own_entry(e)]
    if (directory / SPEC_FILE).exists():
        try:
            _read_description(directory)
        except SavedModelError as e:
            raise SavedModelError(directory, f"exists and is not an fnnet model directory ({e.detail}); "
                                             "refusing to replace it") from None
    if foreign:
        raise SavedModelError(directory, f"exists and holds entries that save_model did not write "
                                         f"({_listing(foreign)}); refusing to replace it: "
                                         "save to a new directory, or move them away")


def _remove_stale(directory: Path, keep: str) -> None:
    """Delete old weights files and crashed saves' temporary files, all fnnet's own; keep ``keep``."""
    for entry in directory.iterdir():
        if _WEIGHTS_NAME.fullmatch(entry.name) and entry.name != keep and _is_own_entry(entry):
            entry.unlink(missing_ok=True)
    atomic.remove_leftovers(directory)


def save_model(directory, model, params, state=None, *, input_shape=None, metadata=None) -> Path:
    """Save a whole model (architecture, params, optional state) to ``directory``, atomically.

    ``input_shape`` is the shape ``init`` was called with (``(-1, 78)``); a model that knows
    it (``fnnet.Model``, ``fnnet.Sequential`` with an ``Input``) needs none. Given, the params
    (and state) are checked against what the architecture's ``init`` makes before
    anything is written, and :func:`load_model` checks the weights again; without it the
    weights are stored and loaded as they are. ``metadata`` is any JSON-serialisable dict
    (read it back with :func:`load_model_metadata`).

    The directory is written whole beside its place and renamed into it, so an existing
    model is replaced only once the new one is complete. Files are never lost: a
    directory holding anything but an fnnet model's files (a ``model.json`` fnnet can read,
    its weights files, temporary files) is refused, naming the foreign entries, and only
    fnnet's own files are ever deleted. A crash at any moment leaves the old or the new
    model loadable; the next save removes what the crash left.

    >>> import fnnet, jax, os, tempfile
    >>> model = fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(1))
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    >>> folder = os.path.join(tempfile.mkdtemp(), 'mlp')
    >>> _ = fnnet.save_model(folder, model, params, input_shape=(-1, 3), metadata={'target': 'price'})
    >>> _ = fnnet.save_model(folder, model, params, input_shape=(-1, 3))  # replaces the first save
    >>> [name.split('.')[0] for name in sorted(os.listdir(folder))]  # model.json, weights.<hex>.ckpt
    ['model', 'weights']
    """
    # Through a symbolic link: the link stays and its target folder is the model directory.
    directory = atomic.through_links(directory)
    if input_shape is None:  # a model built from fnnet.Input knows the shape its init takes
        input_shape = getattr(model, "input_shape", None)
    input_shape = None if input_shape is None else tuple(input_shape)
    spec = to_spec(model)
    if input_shape is not None:
        _check_against(directory, input_shape, _expected_tree(model, input_shape, state is not None),
                       {"params": params, "state": state})
    else:  # the architecture and the weights are saved; only their fit cannot be checked
        warnings.warn(f"save_model({os.fspath(directory)!r}): the model's input shape is unknown, so the weights "
                      "are saved without checking that they fit the architecture (nor will load_model check "
                      "them); pass input_shape=, or build the model from fnnet.Input", UserWarning, stacklevel=2)
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    weights_name = f"weights.{secrets.token_hex(6)}.ckpt"
    description = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec,
                   "input_shape": _shape_to_json(input_shape), "has_state": state is not None,
                   "metadata": metadata or {}, "weights": weights_name}
    try:
        json.dumps(description)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata for {directory} is not JSON-serialisable: {e}") from e
    _refuse_unless_own(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # The new weights first, under a name no earlier save used; then model.json, whose atomic
    # replacement switches readers from the old model to the new one in one rename.
    save_checkpoint(directory / weights_name, {"params": params, "state": state})
    _write_json(directory / SPEC_FILE, description)
    _remove_stale(directory, keep=weights_name)
    return directory


def load_model(directory):
    """Load a model saved by :func:`save_model`: ``(model, params, state)``.

    The model is rebuilt from its spec (user layers must be registered first). When the
    input shape was saved, every saved array is checked against what the spec's
    ``init`` would produce for it, and a :class:`SavedModelError` lists each path whose
    presence, shape or dtype differs. ``state`` is None when none was saved.

    >>> import fnnet, jax, jax.numpy as jnp, os, tempfile
    >>> model = fnnet.serial(fnnet.Dense(4), fnnet.BatchNorm(), fnnet.Dense(1))
    >>> _, params, state = model.init_with_state(jax.random.PRNGKey(0), (-1, 3))
    >>> folder = fnnet.save_model(os.path.join(tempfile.mkdtemp(), 'm'), model, params, state, input_shape=(-1, 3))
    >>> loaded, params2, state2 = fnnet.load_model(folder)
    >>> x = jnp.ones((2, 3))
    >>> bool(jnp.array_equal(model.apply_with_state(params, state, x)[0], loaded.apply_with_state(params2, state2, x)[0]))
    True
    """
    directory = Path(os.fspath(directory))
    for attempt in range(_READ_ATTEMPTS):
        try:
            return _load(directory, _read_description(directory))
        except CheckpointNotFoundError:
            # A save may have switched model.json and removed the old weights between our two
            # reads; the new description then names weights that exist.
            if attempt == _READ_ATTEMPTS - 1:
                raise


def _load(directory: Path, description: dict):
    try:
        model = from_spec(description["spec"])
    except SpecError as e:  # the same error, naming the file too
        raise SpecError(f"{directory / SPEC_FILE}: {e.path}", e.detail) from e
    input_shape = _shape_from_json(description.get("input_shape"))
    weights = _weights_path(directory, description)
    if input_shape is None:  # saved without an input shape: nothing to check the weights against
        tree = load_checkpoint(weights)
        if not isinstance(tree, dict) or not {"params", "state"} <= set(tree):
            raise SavedModelError(directory, f"{weights.name} does not hold 'params' and 'state'")
    else:
        like = _expected_tree(model, input_shape, bool(description.get("has_state")))
        try:
            tree = load_checkpoint(weights, like=like)
        except CheckpointMismatchError as e:
            raise _mismatch_error(directory, input_shape, e.missing, e.extra, e.shape_mismatch,
                                  e.dtype_mismatch) from e
    params, state = jax.tree_util.tree_map(jnp.asarray, (tree["params"], tree["state"]))
    return model, params, state


def load_model_metadata(directory) -> dict:
    """The ``metadata`` dict given to :func:`save_model` (``{}`` when none was).

    >>> import fnnet, jax, os, tempfile
    >>> _, params = fnnet.Dense(1).init(jax.random.PRNGKey(0), (-1, 2))
    >>> folder = fnnet.save_model(os.path.join(tempfile.mkdtemp(), 'm'), fnnet.Dense(1), params,
    ...                           input_shape=(-1, 2), metadata={'vocabulary': ['a', 'b']})
    >>> fnnet.load_model_metadata(folder)
    {'vocabulary': ['a', 'b']}
    """
    return _read_description(Path(os.fspath(directory))).get("metadata", {})


def saved_input_shape(directory):
    """The input shape a saved model was initialised with (``(-1, 78)``; None if none was saved).

    >>> import fnnet, jax, os, tempfile
    >>> _, params = fnnet.Dense(1).init(jax.random.PRNGKey(0), (-1, 2))
    >>> folder = fnnet.save_model(os.path.join(tempfile.mkdtemp(), 'm'), fnnet.Dense(1), params, input_shape=(-1, 2))
    >>> fnnet.saved_input_shape(folder)
    (-1, 2)
    """
    return _shape_from_json(_read_description(Path(os.fspath(directory))).get("input_shape"))

"""Whole models on disk: architecture, weights and state in one directory.

A model directory holds two files:

- ``model.json``: the format name and version, the architecture (:func:`fnnet.to_spec`),
  the input shape ``init`` was called with, whether state was saved, and the caller's
  ``metadata`` (a vocabulary, preprocessing settings);
- ``weights.ckpt``: ``{'params': ..., 'state': ...}`` as an :mod:`fnnet.io.checkpoint` file.

The directory is written whole into a temporary sibling and renamed into place
(:func:`fnnet.io.atomic.write_directory`), so a reader sees the old model or the new one,
never a mixture, and no file that fnnet did not write is ever deleted. Loading rebuilds
the model from its spec and, when the input shape was saved, checks every saved array
against what the spec's ``init`` would produce (:func:`fnnet.walk`, nothing computed),
naming each path that differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp

from ..core import shape_str, walk
from ..structure.eval_init import tree_differences
from . import atomic
from .checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from .spec import from_spec, to_spec

FORMAT = "fnnet-model"
FORMAT_VERSION = 1
SPEC_FILE = "model.json"
WEIGHTS_FILE = "weights.ckpt"
# Everything save_model writes: the only entries it may ever delete from an old model directory.
MODEL_FILES = (SPEC_FILE, WEIGHTS_FILE)
_MAX_LISTED = 20


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
    return tuple(_shape_from_json(d) if isinstance(d, list) else d for d in shape)


def _read_description(directory: Path) -> dict:
    path = directory / SPEC_FILE
    if not path.is_file():
        if not directory.exists():
            aside = atomic.set_aside_copies(directory)
            hint = (f"; an interrupted save_model left the previous version at {aside[-1]}, rename it back"
                    if aside else "")
            raise SavedModelError(directory, f"no such model directory{hint}")
        raise SavedModelError(directory, f"not an fnnet model directory (no {SPEC_FILE})")
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SavedModelError(directory, f"{SPEC_FILE} is not valid JSON: {e}") from e
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise SavedModelError(directory, f"{SPEC_FILE} does not say format {FORMAT!r}")
    version = description.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SavedModelError(directory, f"model format version {version!r} is newer than this fnnet reads "
                                         f"({FORMAT_VERSION}); upgrade fnnet")
    return description


# ------------------------------------------------------------------------ writing

def _write_json(path: Path, value) -> None:
    text = json.dumps(value, indent=1).encode("utf-8")
    atomic.atomic_write(path, lambda f: f.write(text))


def _foreign_entries(directory: Path) -> list:
    """What in an existing ``directory`` save_model did not write (and so must never delete)."""
    if not directory.is_dir():
        return [directory.name]
    entries = sorted(p.name for p in directory.iterdir())
    if entries and SPEC_FILE not in entries:  # not a model directory at all
        return entries
    return [name for name in entries if name not in MODEL_FILES]


def save_model(directory, model, params, state=None, *, input_shape=None, metadata=None) -> Path:
    """Save a whole model (architecture, params, optional state) to ``directory``, atomically.

    ``input_shape`` is the shape ``init`` was called with (``(-1, 78)``). Given, the params
    (and state) are checked against what the architecture's ``init`` makes before
    anything is written, and :func:`load_model` checks the weights again; without it the
    weights are stored and loaded as they are. ``metadata`` is any JSON-serialisable dict
    (read it back with :func:`load_model_metadata`).

    The directory is written whole beside its place and renamed into it, so an existing
    model is replaced only once the new one is complete. Files are never lost: a
    directory holding anything but an fnnet model's two files (``model.json``,
    ``weights.ckpt``) is refused, and only those two are deleted from the old model.

    >>> import fnnet, jax, os, tempfile
    >>> model = fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(1))
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 3))
    >>> folder = os.path.join(tempfile.mkdtemp(), 'mlp')
    >>> _ = fnnet.save_model(folder, model, params, input_shape=(-1, 3), metadata={'target': 'price'})
    >>> sorted(os.listdir(folder))
    ['model.json', 'weights.ckpt']
    """
    directory = Path(os.fspath(directory))
    input_shape = None if input_shape is None else tuple(input_shape)
    spec = to_spec(model)
    if input_shape is not None:
        _check_against(directory, input_shape, _expected_tree(model, input_shape, state is not None),
                       {"params": params, "state": state})
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    description = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec,
                   "input_shape": _shape_to_json(input_shape), "has_state": state is not None,
                   "metadata": metadata or {}}
    try:
        json.dumps(description)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata for {directory} is not JSON-serialisable: {e}") from e
    if directory.exists():
        foreign = _foreign_entries(directory)
        if foreign:
            what = (f"holds files that save_model did not write ({', '.join(foreign[:_MAX_LISTED])})"
                    if (directory / SPEC_FILE).is_file() else f"is not an fnnet model directory (no {SPEC_FILE})")
            raise SavedModelError(directory, f"exists and {what}; refusing to replace it")

    def fill(folder: Path) -> None:
        save_checkpoint(folder / WEIGHTS_FILE, {"params": params, "state": state})
        _write_json(folder / SPEC_FILE, description)

    return atomic.write_directory(directory, fill, MODEL_FILES)


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
    description = _read_description(directory)
    model = from_spec(description["spec"])
    input_shape = _shape_from_json(description.get("input_shape"))
    if input_shape is None:  # saved without an input shape: nothing to check the weights against
        tree = load_checkpoint(directory / WEIGHTS_FILE)
    else:
        like = _expected_tree(model, input_shape, bool(description.get("has_state")))
        try:
            tree = load_checkpoint(directory / WEIGHTS_FILE, like=like)
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

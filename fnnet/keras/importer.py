"""Import Keras 3 models: :func:`from_keras` gives an fnnet model, its params and its state.

Both ways in read the same two things, so one code path (the private modules of
:mod:`fnnet.keras`) converts them:

- the model's config as JSON (Keras's ``serialize_keras_object`` form, which is also
  the ``config.json`` inside a ``.keras`` zip);
- its weights in Keras's HDF5 layout (``model.weights.h5`` inside the zip; for a live
  model, what ``model.save_weights`` writes).

A ``.keras`` file is read with ``h5py`` alone, so Keras need not be installed for it.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..graph import Input, Sequential
from ..core import LayerError, walk
from ..structure.eval_init import tree_differences
from ._graph import NO_MASK, combine, model_chain, model_mask
from ._reading import KerasImportError, StoredArray, WeightsGroup, import_h5py

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"


class KerasImport(tuple):
    """What :func:`from_keras` returns: ``(model, params, state)``, plus the input shape Keras recorded.

    It unpacks as the 3-tuple (``model, params, state = fnnet.from_keras(...)``); keep
    the result to read ``input_shape`` (``(-1, 78)``, ``-1`` for unknown sizes), the shape
    :func:`fnnet.save_model` and :func:`fnnet.to_keras` take. (fnnet layers are
    immutable values, so the shape cannot ride on the model.)
    """

    def __new__(cls, model, params, state, input_shape):
        result = super().__new__(cls, (model, params, state))
        result.input_shape = input_shape
        return result

    def __getnewargs__(self):  # copy and pickle keep the input shape
        return (*self, self.input_shape)

    model = property(lambda self: self[0], doc="The fnnet model.")
    params = property(lambda self: self[1], doc="Its params, keyed by the Keras layer names.")
    state = property(lambda self: self[2], doc="BatchNormalization's moving statistics, or None.")

    def __repr__(self):
        return f"KerasImport(model={self[0]!r}, input_shape={self.input_shape!r})"


def _read(leaf):
    return jnp.asarray(leaf.read() if isinstance(leaf, StoredArray) else leaf)


def _convert(model_entry, weights: WeightsGroup):
    if not isinstance(model_entry, dict) or not isinstance(model_entry.get("config"), dict):
        raise KerasImportError(f"the model config is not an object with a 'class_name' and a 'config' "
                               f"(got {type(model_entry).__name__}); it is not a Keras 3 model config")
    try:
        chain, input_shape = model_chain(model_entry, weights)
        model_mask(model_entry, NO_MASK)
        if input_shape is None:
            raise KerasImportError("the model records no input shape; build it first (give it a keras.Input, "
                                   "or call it on data) and save it again")
        # The top level is a Sequential headed by an Input, so the model knows its input shape
        # (params are keyed exactly as serial keys them).
        converted = combine(lambda *layers: Sequential([Input(input_shape[1:]), *layers]), chain)
        # What init would make, by the one walker (abstract shapes, nothing computed or allocated).
        root = walk(converted.layer, input_shape)
    except KerasImportError:
        raise
    except LayerError as e:
        raise KerasImportError(f"the config describes a model fnnet cannot build: {e}") from e
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise KerasImportError(f"the model config is malformed ({type(e).__name__}: {e})") from e
    # The weights file's declared shapes and dtypes are checked before a byte of them is read.
    for what, want, have in (("params", root.params, converted.params), ("state", root.state, converted.state)):
        missing, extra, shapes, dtypes = tree_differences(want, have)
        if missing or extra or shapes or dtypes:
            parts = [f"{label} {items}" for label, items in (
                ("missing from the weights file:", missing), ("in the weights file but not in the model:", extra),
                ("shape differs (file vs config):", shapes), ("dtype differs (file vs config):", dtypes)) if items]
            raise KerasImportError(f"the weights file does not fit the architecture its config describes "
                                   f"({what}: {'; '.join(parts)}); the config and weights do not come from "
                                   "the same model, or the file was altered")
    params, state = jax.tree_util.tree_map(_read, (converted.params, converted.state))
    return KerasImport(converted.layer, params, state, input_shape)


# A .keras member may expand at most this much (Keras 3 refuses beyond 100x, for zip bombs).
_MAX_EXPANSION = 100
_EXPANSION_FLOOR = 1 << 26  # small members are always allowed, whatever their ratio


def _member_text(path: Path, archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > max(limit, _EXPANSION_FLOOR, _MAX_EXPANSION * info.compress_size):
        raise KerasImportError(f"{path}: {name} expands from {info.compress_size} to {info.file_size} bytes; "
                               "refusing what looks like a zip bomb")
    return archive.read(name)


def _copy_member(path: Path, archive: zipfile.ZipFile, name: str, target) -> None:
    """Copy a zip member to ``target`` in chunks, never past the size the zip declares."""
    info = archive.getinfo(name)
    if info.file_size > max(_EXPANSION_FLOOR, _MAX_EXPANSION * info.compress_size):
        raise KerasImportError(f"{path}: {name} expands from {info.compress_size} to {info.file_size} bytes; "
                               "refusing what looks like a zip bomb")
    with archive.open(name) as source:
        copied = 0
        while chunk := source.read(1 << 20):
            copied += len(chunk)
            if copied > info.file_size:
                raise KerasImportError(f"{path}: {name} holds more bytes than its zip entry declares")
            target.write(chunk)
    target.flush()


def _from_file(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise KerasImportError(f"{path} is not a .keras (zip) file; legacy .h5 files and SavedModel folders "
                               "are not read: load the model in Keras and save it with model.save('name.keras')")
    h5py = import_h5py()
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE) if n not in names]
            if missing:
                raise KerasImportError(f"{path} has no {' and no '.join(missing)} (it holds "
                                       f"{', '.join(sorted(names))}); it is not a Keras 3 model file with HDF5 weights")
            try:
                config = json.loads(_member_text(path, archive, CONFIG_FILE, 0))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                raise KerasImportError(f"{path}: {CONFIG_FILE} is not valid JSON ({type(e).__name__}: {e})") from e
            # The weights go to a temporary file, not memory; only metadata is read until the
            # declared shapes have been checked against the config's architecture.
            with tempfile.TemporaryFile() as local:
                _copy_member(path, archive, WEIGHTS_FILE, local)
                local.seek(0)
                try:
                    store = h5py.File(local, "r")
                except OSError as e:
                    raise KerasImportError(f"{path}: {WEIGHTS_FILE} is not a readable HDF5 file ({e})") from e
                with store:
                    return _convert(config, WeightsGroup(store, f"{path.name}:{WEIGHTS_FILE}"))
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise KerasImportError(f"{path} is damaged (truncated or corrupted zip: {e})") from e
    except OSError as e:  # h5py reports corrupted HDF5 data as OSError
        if isinstance(e, FileNotFoundError) and not path.exists():
            raise
        raise KerasImportError(f"{path}: cannot read {WEIGHTS_FILE} ({e})") from e


def _plain(value):
    """JSON stand-ins for the NumPy values a live model's config may hold."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"cannot read a {type(value).__name__} in the Keras config: {value!r}")


def _from_object(model):
    try:
        import keras
    except ImportError as e:
        raise TypeError(f"from_keras takes a Keras model or a path to a .keras file, got "
                        f"{type(model).__name__} (and Keras is not installed)") from e
    if not isinstance(model, keras.Model):
        raise TypeError(f"from_keras takes a Keras model or a path to a .keras file, got {type(model).__name__}")
    if not model.built:
        raise KerasImportError(f"Keras model {model.name!r} is not built yet; give it a keras.Input or call it "
                               "on data first")
    # Through JSON, so the config is exactly what a .keras file holds (lists, not tuples).
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model), default=_plain))
    h5py = import_h5py()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.weights.h5")
        model.save_weights(path)
        with h5py.File(path, "r") as store:
            return _convert(config, WeightsGroup(store, f"weights of {model.name!r}"))


def from_keras(model_or_path):
    """Import a Keras 3 model: ``(model, params, state)`` computing what the Keras model computes.

    ``model_or_path`` is a Keras ``Sequential`` or functional ``Model`` (built), or the
    path to a ``.keras`` file saved by Keras 3. The file is read with ``h5py`` only, so
    Keras need not be installed for it (``pip install 'fnnet[keras]'`` brings h5py).

    Every fnnet layer is named as its Keras layer (``Dense(4, name='dense_1')``), so the
    params are keyed by Keras's layer names (``params['dense_1']['kernel']``; a nested
    Keras model is a nested ``serial`` under its name); BatchNormalization's moving
    statistics are the ``state`` (None without BatchNormalization). Run the model as
    Keras's ``predict`` does with ``model.apply_with_state(params, state, x)`` (returns
    ``(y, state)``). The result unpacks as ``(model, params, state)`` and is a
    :class:`KerasImport`: its ``input_shape`` is the input shape Keras recorded (``-1``
    for unknown sizes), as :func:`fnnet.save_model` and :func:`fnnet.to_keras` take it.

    A functional model must have one input and one output; branches that fork at one
    tensor and join at a ``Concatenate`` or ``Add`` become ``FanOut``/``parallel``/
    ``FanInConcat``/``FanInSum``. Layers fnnet has no equivalent for, and settings of
    supported layers that would change what they compute, raise
    :class:`KerasImportError` naming the layer's class and its name in the Keras model.

    >>> import os; _ = os.environ.setdefault('KERAS_BACKEND', 'jax')
    >>> import pytest; keras = pytest.importorskip('keras')
    >>> import fnnet, numpy as np
    >>> km = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation='relu'),
    ...                        keras.layers.Dense(1)])
    >>> imported = fnnet.from_keras(km)
    >>> model, params, state = imported
    >>> sorted(params) == sorted(layer.name for layer in km.layers), imported.input_shape, state
    (True, (-1, 3), None)
    >>> x = np.random.default_rng(0).normal(size=(5, 3)).astype('float32')
    >>> bool(np.allclose(model.apply(params, x), km(x), atol=1e-5))
    True
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        return _from_file(Path(os.fspath(model_or_path)))
    return _from_object(model_or_path)

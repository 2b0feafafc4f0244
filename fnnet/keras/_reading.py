"""What a saved Keras model says: its config entries and its HDF5 weights, as records.

In the weights file a model's layers sit under ``layers/``, named by their class in snake
case plus a counter in the model's layer order (``dense``, ``dense_1``): that is how
Keras itself finds them when loading. Sub-layers sit under their attribute name
(``cell``, ``forward_layer``, ``layer``), and each object's variables under ``vars/0``,
``vars/1``, ... in creation order.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

MODEL_CLASSES = ("Sequential", "Functional", "Model")
RECURRENT_CLASSES = ("LSTM", "GRU", "SimpleRNN")
MERGE_CLASSES = ("Concatenate", "Add")


class KerasImportError(ValueError):
    """A Keras model cannot be imported as an fnnet model.

    ``layer_class`` and ``layer_name`` name the Keras layer at fault (``'Conv3D'``,
    ``'conv3d_1'``); both are None when the problem is the model or file as a whole.

    >>> err = KerasImportError("is not supported", "Conv3D", "conv3d_1")
    >>> str(err), err.layer_name
    ("Keras layer 'conv3d_1' (Conv3D): is not supported", 'conv3d_1')
    """

    def __init__(self, detail, layer_class=None, layer_name=None):
        self.detail, self.layer_class, self.layer_name = detail, layer_class, layer_name
        where = f"Keras layer {layer_name!r} ({layer_class}): " if layer_class else ""
        super().__init__(where + detail)

    def __reduce__(self):
        return (KerasImportError, (self.detail, self.layer_class, self.layer_name))


# ------------------------------------------------------------------------ weights file

def import_h5py():
    """``h5py``, which the ``keras`` extra installs; imported only when weights are read."""
    try:
        import h5py
    except ImportError as e:
        raise ImportError("reading Keras weights needs h5py: pip install 'fnnet[keras]'") from e
    return h5py


def _member(group, name: str, where: str):
    """``group[name]`` (None when absent), refusing links: a model file holds its weights itself.

    HDF5 lets an entry be a soft link, or an external link to another file; opening one
    would read whatever it points at, so neither is followed.
    """
    if group is None:
        return None
    h5py = import_h5py()
    link = group.get(name, getlink=True)
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise KerasImportError(f"{where} is an external link to {link.filename}:{link.path}; a model file must "
                               "hold its weights, so links out of it are never followed")
    if isinstance(link, h5py.SoftLink):
        raise KerasImportError(f"{where} is a soft link to {link.path}; Keras never writes links, so a linked "
                               "weights file is refused")
    return group[name]


class StoredArray:
    """A weight array as the weights file declares it: shape and dtype known, bytes not yet read.

    The importer compares ``shape`` and ``dtype`` with what the architecture needs before
    calling :meth:`read`, so a file cannot make fnnet allocate more than its weights.
    """

    def __init__(self, dataset, where: str):
        self.dataset, self.where = dataset, where
        self.shape, self.dtype = tuple(dataset.shape), np.dtype(dataset.dtype)

    def read(self) -> np.ndarray:
        return np.asarray(self.dataset[()])

    def __repr__(self):
        return f"StoredArray({self.where}, shape={self.shape}, dtype={self.dtype})"


def _stored_array(dataset, where: str) -> StoredArray:
    h5py = import_h5py()
    if not isinstance(dataset, h5py.Dataset):
        raise KerasImportError(f"{where} in the weights file is a group, where a weight array belongs")
    if dataset.is_virtual:
        raise KerasImportError(f"{where} is a virtual dataset (its data lives in other files); a model file "
                               "must hold its weights itself")
    if dataset.id.get_create_plist().get_external_count():
        raise KerasImportError(f"{where} stores its bytes in an external file; a model file must hold its "
                               "weights itself, so external storage is never read")
    if dataset.dtype.kind not in "biuf" or dataset.dtype.fields is not None:
        raise KerasImportError(f"{where} has dtype {dataset.dtype}, not a numeric weight type")
    return StoredArray(dataset, where)


class WeightsGroup:
    """One Keras object's group in the weights file: its own variables and its sub-objects."""

    def __init__(self, group, path: str):
        self.group, self.path = group, path

    def child(self, name: str) -> "WeightsGroup":
        where = f"{self.path}/{name}"
        group = _member(self.group, name, where)
        if group is not None and not isinstance(group, import_h5py().Group):
            raise KerasImportError(f"{where} in the weights file is an array, where a layer's group belongs")
        return WeightsGroup(group, where)

    def _store(self):
        store = _member(self.group, "vars", f"{self.path}/vars")
        if store is not None and not isinstance(store, import_h5py().Group):
            raise KerasImportError(f"{self.path}/vars in the weights file is not a group")
        return store

    def variables(self) -> list:
        """The variables as :class:`StoredArray` (declared, not read), in creation order."""
        store = self._store()
        if store is None:
            return []
        arrays = []
        for i in range(len(store)):
            where = f"{self.path}/vars/{i}"
            dataset = _member(store, str(i), where)
            if dataset is None:
                raise KerasImportError(f"{self.path}/vars holds {len(store)} entries but no {i!r}; the weights "
                                       "file is damaged or not written by Keras")
            arrays.append(_stored_array(dataset, where))
        return arrays

    def layer_name(self):
        """The Keras layer name that newer Keras versions record beside the variables."""
        store = self._store()
        name = store.attrs.get("name") if store is not None else None
        return name.decode(errors="replace") if isinstance(name, bytes) else name


def _snake_case(name: str) -> str:
    """Keras's ``to_snake_case``, which names layer groups in the weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_groups(model_weights: WeightsGroup, entries) -> list:
    """The weights group of each layer entry, found the way Keras's loader finds it."""
    container, used, groups = model_weights.child("layers"), {}, []
    for entry in entries:
        key = _snake_case(entry["class_name"])
        used[key] = used.get(key, -1) + 1
        node = container.child(key if used[key] == 0 else f"{key}_{used[key]}")
        recorded, name = node.layer_name(), entry_name(entry)
        if recorded is not None and recorded != name:
            raise KerasImportError(f"the weights file holds layer {recorded!r} at {node.path}, where this layer's "
                                   "weights belong; the config and weights do not come from the same model",
                                   entry["class_name"], name)
        groups.append(node)
    return groups


# --------------------------------------------------------------------- layer records

class KerasLayer(NamedTuple):
    """A Keras layer as read from the config, with its weights group."""

    class_name: str
    name: str
    config: dict
    weights: WeightsGroup
    input_shape: tuple | None  # from its build_config; None when not recorded

    def error(self, detail) -> KerasImportError:
        return KerasImportError(detail, self.class_name, self.name)


class Converted(NamedTuple):
    layer: object
    params: object
    state: object = None


def entry_name(entry) -> str:
    """A config entry's layer name (functional entries carry it beside the config too)."""
    config = entry.get("config")
    return entry.get("name") or (config.get("name", "?") if isinstance(config, dict) else "?")


class LayerConfig(dict):
    """A layer's config dict; a setting it lacks is a :class:`KerasImportError` naming the layer."""

    def __init__(self, config, layer_class, layer_name):
        super().__init__(config)
        self.layer_class, self.layer_name = layer_class, layer_name

    def __missing__(self, key):
        raise KerasImportError(f"its config has no {key!r}, which this layer needs", self.layer_class, self.layer_name)


def keras_layer(entry, weights: WeightsGroup) -> KerasLayer:
    """The record of one config entry (a layer, or a layer wrapped by another) with its weights group."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise KerasImportError(f"a layer entry of the config is not an object with a 'class_name': {entry!r:.200}")
    name = entry_name(entry)
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise KerasImportError(f"its config is {type(config).__name__}, not an object", entry["class_name"], name)
    shape = (entry.get("build_config") or {}).get("input_shape")
    single = isinstance(shape, list) and not any(isinstance(d, list) for d in shape)  # merge layers take several
    return KerasLayer(entry["class_name"], name, LayerConfig(config, entry["class_name"], name), weights,
                      shape_tuple(shape, f"Keras layer {name!r}: build_config input_shape") if single else None)


def shape_tuple(shape, where: str = "shape") -> tuple:
    """A Keras shape (``None`` for unknown sizes) as fnnet's (``-1``)."""
    if not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape):
        raise KerasImportError(f"{where} {shape!r} is not a shape (sizes >= 0, or null for unknown)")
    return tuple(-1 if d is None else int(d) for d in shape)

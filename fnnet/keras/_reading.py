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


class WeightsGroup:
    """One Keras object's group in the weights file: its own variables and its sub-objects."""

    def __init__(self, group, path: str):
        self.group, self.path = group, path

    def child(self, name: str) -> "WeightsGroup":
        group = self.group.get(name) if self.group is not None else None
        return WeightsGroup(group, f"{self.path}/{name}")

    def variables(self) -> list:
        store = self.group.get("vars") if self.group is not None else None
        if store is None:
            return []
        return [np.asarray(store[str(i)]) for i in range(len(store))]

    def layer_name(self):
        """The Keras layer name that newer Keras versions record beside the variables."""
        store = self.group.get("vars") if self.group is not None else None
        name = store.attrs.get("name") if store is not None else None
        return name.decode() if isinstance(name, bytes) else name


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
    return entry.get("name") or entry.get("config", {}).get("name", "?")


def keras_layer(entry, weights: WeightsGroup) -> KerasLayer:
    """The record of one config entry (a layer, or a layer wrapped by another) with its weights group."""
    shape = (entry.get("build_config") or {}).get("input_shape")
    single = isinstance(shape, list) and not any(isinstance(d, list) for d in shape)  # merge layers take several
    return KerasLayer(entry["class_name"], entry_name(entry), entry.get("config", {}), weights,
                      shape_tuple(shape) if single else None)


def shape_tuple(shape) -> tuple:
    """A Keras shape (``None`` for unknown sizes) as fnnet's (``-1``)."""
    return tuple(-1 if d is None else int(d) for d in shape)

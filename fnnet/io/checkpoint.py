"""Checkpoints: any pytree of arrays in one file, bit-exact, written atomically, no pickle.

A checkpoint is a ZIP archive, stored uncompressed, holding:

- ``manifest.json``: readable JSON with the format name and version, the tree's
  structure (dicts, lists, tuples, NamedTuples, ``None``) and one entry per leaf
  (``path`` such as ``'dense/kernel'``, ``shape``, ``dtype``, ``file``);
- ``leaves/<i>.bin``: the raw little-endian bytes of leaf ``i`` in C order.

Loading reads only JSON and raw bytes: dtypes come by name from an allow-list
(numpy's numeric types plus ``ml_dtypes`` such as ``bfloat16``), classes named in the
file are never imported and nothing is unpickled, so a checkpoint from an untrusted
source cannot execute code. ZIP's CRC-32 of every member catches corrupted bytes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from .atomic import atomic_write

DictKey, GetAttrKey, SequenceKey = jax.tree_util.DictKey, jax.tree_util.GetAttrKey, jax.tree_util.SequenceKey

FORMAT = "fnnet-checkpoint"
VERSION = 1
_MANIFEST = "manifest.json"
# A fixed timestamp makes equal trees give byte-identical files.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_READ_CHUNK = 1 << 18  # small chunks stay in cache while copied: ~3x faster than 16 MiB
_MAX_LISTED = 20

_NUMPY_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64", "complex64", "complex128")
_ML_DTYPES = ("bfloat16", "float8_e3m4", "float8_e4m3", "float8_e4m3fn", "float8_e4m3fnuz",
              "float8_e4m3b11fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu",
              "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn", "int2", "int4", "uint2", "uint4")
_DTYPES = {name: np.dtype(name) for name in _NUMPY_DTYPES}
_DTYPES.update({name: np.dtype(getattr(ml_dtypes, name)) for name in _ML_DTYPES if hasattr(ml_dtypes, name)})
_KEY_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")
_PYTHON_SCALARS = {"bool": bool, "int": int, "float": float, "complex": complex}


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted, not a checkpoint, or does not fit.

    The message starts with the file's path; ``path`` holds it.

    >>> import fnnet
    >>> try:
    ...     fnnet.load_checkpoint("no/such/file.ckpt")
    ... except fnnet.CheckpointError as e:
    ...     print(e)
    no/such/file.ckpt: no such checkpoint file
    """

    def __init__(self, path, detail):
        self.path = Path(path)
        self.detail = detail
        super().__init__(f"{path}: {detail}")

    def __str__(self):
        return f"{self.path}: {self.detail}"


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (also a ``FileNotFoundError``)."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint does not fit the ``like=`` template of :func:`load_checkpoint`.

    ``missing`` (paths in the template, not in the file), ``extra`` (in the file, not in
    the template), ``shape_mismatch`` and ``dtype_mismatch`` (``(path, in_file, in_template)``)
    list every difference.
    """

    def __init__(self, path, missing, extra, shape_mismatch, dtype_mismatch):
        self.missing, self.extra = list(missing), list(extra)
        self.shape_mismatch, self.dtype_mismatch = list(shape_mismatch), list(dtype_mismatch)
        parts = []
        if self.missing:
            parts.append("missing from the checkpoint: " + _listing(self.missing))
        if self.extra:
            parts.append("in the checkpoint but not in the template: " + _listing(self.extra))
        if self.shape_mismatch:
            parts.append("shape differs (checkpoint vs template): " + _listing(
                [f"{p} {tuple(a)} vs {tuple(b)}" for p, a, b in self.shape_mismatch]))
        if self.dtype_mismatch:
            parts.append("dtype differs (checkpoint vs template): " + _listing(
                [f"{p} {a} vs {b}" for p, a, b in self.dtype_mismatch]))
        super().__init__(path, "does not match the template; " + "; ".join(parts))


def _listing(items) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


# ---------------------------------------------------------------------------- paths


def keypath_str(keypath) -> str:
    """A readable ``'a/b/0'`` string for a JAX key path (dict keys, indices, field names).

    >>> import fnnet, jax
    >>> [fnnet.keypath_str(p) for p, _ in jax.tree_util.tree_flatten_with_path({'w': [1, 2]})[0]]
    ['w/0', 'w/1']
    """
    parts = []
    for key in keypath:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key))
    return "/".join(parts)


def tree_paths(tree) -> list:
    """The readable path of every leaf of a pytree, in ``jax.tree_util`` leaf order.

    Dict keys, list/tuple indices and NamedTuple field names are joined with ``/``;
    these are the paths a checkpoint's manifest lists.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.tree_paths({'dense': {'kernel': jnp.ones((2, 3)), 'bias': jnp.zeros(3)}, 'step': 1})
    ['dense/bias', 'dense/kernel', 'step']
    """
    return [keypath_str(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


# ---------------------------------------------------------------------------- saving


def _is_namedtuple(node) -> bool:
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def _is_key_dtype(dtype) -> bool:
    return jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _encode(node, path, leaves):
    """The JSON structure of ``node``; leaves are appended to ``leaves`` as ``(key path, value)``.

    ``path`` is a tuple of ``jax.tree_util`` keys, spelled by :func:`keypath_str` alone, so
    the manifest's paths are the ones ``like=`` templates and error messages use.
    """
    where = keypath_str(path) or "<root>"
    if node is None:
        return {"type": "none"}
    if isinstance(node, dict):
        keys = list(node)
        for key in keys:
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"dict key {key!r} at {where} is not a str or int; checkpoints store "
                                "only str and int keys")
        return {"type": "dict", "keys": keys,
                "values": [_encode(node[k], path + (DictKey(k),), leaves) for k in keys]}
    if _is_namedtuple(node):
        fields = list(type(node)._fields)
        return {"type": "namedtuple", "name": type(node).__name__, "fields": fields,
                "values": [_encode(v, path + (GetAttrKey(f),), leaves) for f, v in zip(fields, node)]}
    if isinstance(node, (list, tuple)):
        return {"type": "list" if isinstance(node, list) else "tuple",
                "values": [_encode(v, path + (SequenceKey(i),), leaves) for i, v in enumerate(node)]}
    if isinstance(node, (np.ndarray, np.generic, jax.Array, bool, int, float, complex)):
        leaves.append((path, node))
        return {"leaf": len(leaves) - 1}
    # Another registered pytree node (a dataclass, a FrozenDict): one level of its children.
    children = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]
    if len(children) == 1 and children[0][1] is node:
        raise TypeError(f"leaf at {where} is a {type(node).__name__}, not an array; checkpoints "
                        "store arrays, Python numbers and containers of them")
    return {"type": "node", "name": type(node).__qualname__,
            "keys": [keypath_str(k) for k, _ in children],
            "values": [_encode(v, path + tuple(k), leaves) for k, v in children]}


def _to_numpy(path, value):
    """A leaf as a little-endian numpy array and its manifest entry (without ``file``)."""
    entry = {"path": path}
    if isinstance(value, (bool, int, float, complex)) and not isinstance(value, np.generic):
        # bool before int: True is also an int.
        entry["python"] = next(n for n, t in _PYTHON_SCALARS.items() if isinstance(value, t))
        try:
            array = np.asarray(value, dtype=np.int64 if entry["python"] == "int" else None)
        except OverflowError:
            raise OverflowError(f"Python int at {path or '<root>'} does not fit in int64") from None
    elif isinstance(value, jax.Array) and _is_key_dtype(value.dtype):
        entry["key_impl"] = str(jax.random.key_impl(value))
        entry["key_dtype"] = str(value.dtype)
        array = np.asarray(jax.random.key_data(value))
    else:
        array = np.asarray(value)
    name = array.dtype.name
    if name not in _DTYPES:
        raise TypeError(f"leaf at {path or '<root>'} has dtype {array.dtype}, which checkpoints do not "
                        f"store (allowed: {', '.join(_DTYPES)})")
    if array.dtype.kind in "biufc":
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    entry.update(shape=list(array.shape), dtype=name)
    return np.ascontiguousarray(array), entry


def _write_array(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    with zf.open(info, "w", force_zip64=array.nbytes >= (1 << 31) - 1) as out:
        out.write(array.reshape(-1).view(np.uint8).data)


def _write_container(fileobj, manifest: dict, arrays) -> None:
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(zipfile.ZipInfo(_MANIFEST, date_time=_ZIP_DATE), json.dumps(manifest, indent=1))
        for entry, array in zip(manifest["leaves"], arrays):
            _write_array(zf, entry["file"], array)


def save_checkpoint(path, tree) -> Path:
    """Saves a pytree of arrays to one file, atomically; returns the file's ``Path``.

    ``tree`` may nest dicts (str or int keys), lists, tuples, NamedTuples (optax states),
    ``None`` and empty containers; leaves are arrays of any numeric dtype (``bfloat16``
    and the other ``ml_dtypes`` included), Python numbers, and typed PRNG keys. The file
    is written to a temporary file in the same folder (created if missing), synced,
    then renamed over ``path``: a crash mid-write leaves the previous checkpoint intact.
    Equal trees give byte-identical files.

    >>> import fnnet, jax.numpy as jnp, numpy as np, os, tempfile
    >>> tree = {'dense': {'kernel': jnp.ones((2, 3), jnp.bfloat16)}, 'step': np.int32(7)}
    >>> path = fnnet.save_checkpoint(os.path.join(tempfile.mkdtemp(), 'model.ckpt'), tree)
    >>> [(leaf['path'], leaf['shape'], leaf['dtype']) for leaf in fnnet.checkpoint_manifest(path)['leaves']]
    [('dense/kernel', [2, 3], 'bfloat16'), ('step', [], 'int32')]
    """
    path = Path(os.fspath(path))
    found = []
    structure = _encode(tree, (), found)
    arrays, entries, seen = [], [], {}
    for i, (keys, value) in enumerate(found):
        leaf_path = keypath_str(keys)
        if leaf_path in seen:
            raise ValueError(f"two leaves share the path {leaf_path!r} (leaves {seen[leaf_path]} and {i}); "
                             "a dict key containing '/' or keys 1 and '1' side by side make paths ambiguous")
        seen[leaf_path] = i
        array, entry = _to_numpy(leaf_path, value)
        entry["file"] = f"leaves/{i}.bin"
        arrays.append(array)
        entries.append(entry)
    manifest = {"format": FORMAT, "version": VERSION, "byteorder": "little", "tree": structure,
                "leaves": entries}
    atomic_write(path, lambda f: _write_container(f, manifest, arrays))
    return path


# ---------------------------------------------------------------------------- loading

# What zipfile, json and struct raise on truncated or corrupted bytes.
_CORRUPT = (zipfile.BadZipFile, zlib.error, struct.error, EOFError, UnicodeDecodeError,
            json.JSONDecodeError, RecursionError, NotImplementedError)


@contextlib.contextmanager
def _reading(path):
    path = Path(os.fspath(path))
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointNotFoundError(path, "no such checkpoint file") from None
    except IsADirectoryError:
        raise CheckpointError(path, "is a directory, not a checkpoint file") from None
    except _CORRUPT as e:
        raise CheckpointError(path, f"not a readable fnnet checkpoint (truncated or corrupted?): {e}") from e
    try:
        with zf:
            yield path, zf
    except _CORRUPT as e:
        raise CheckpointError(path, f"not a readable fnnet checkpoint (truncated or corrupted?): {e}") from e


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _read_manifest(path: Path, zf: zipfile.ZipFile) -> dict:
    try:
        raw = zf.read(_MANIFEST)
    except KeyError:
        raise CheckpointError(path, f"not an fnnet checkpoint (no {_MANIFEST} inside)") from None
    manifest = json.loads(raw.decode("utf-8"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(path, f"not an fnnet checkpoint ({_MANIFEST} does not say format {FORMAT!r})")
    version = manifest.get("version")
    if not _is_int(version) or version > VERSION:
        raise CheckpointError(path, f"checkpoint format version {version!r} is newer than this fnnet reads "
                                    f"({VERSION}); upgrade fnnet")
    leaves = manifest.get("leaves")
    if not isinstance(leaves, list) or not isinstance(manifest.get("tree"), dict):
        raise CheckpointError(path, f"{_MANIFEST} lacks 'tree' or 'leaves'")
    names = set(zf.namelist())
    for i, entry in enumerate(leaves):
        ok = (isinstance(entry, dict) and isinstance(entry.get("path"), str)
              and isinstance(entry.get("shape"), list) and all(_is_int(d) and d >= 0 for d in entry["shape"])
              and entry.get("file") in names)
        if not ok:
            raise CheckpointError(path, f"leaf {i} of {_MANIFEST} is malformed: {entry!r}")
        if entry.get("dtype") not in _DTYPES:
            raise CheckpointError(path, f"leaf {entry['path']!r} has dtype {entry.get('dtype')!r}, which "
                                        "checkpoints never load (only numeric dtypes; no pickled objects)")
        if "key_impl" in entry and entry["key_impl"] not in _KEY_IMPLS:
            raise CheckpointError(path, f"leaf {entry['path']!r} names an unknown PRNG implementation "
                                        f"{entry['key_impl']!r}")
    return manifest


def checkpoint_manifest(path) -> dict:
    """The JSON manifest of a checkpoint (structure, paths, shapes, dtypes), without its arrays.

    >>> import fnnet, numpy as np, os, tempfile
    >>> path = fnnet.save_checkpoint(os.path.join(tempfile.mkdtemp(), 'c.ckpt'), {'w': np.zeros((4, 2))})
    >>> manifest = fnnet.checkpoint_manifest(path)
    >>> manifest['format'], manifest['leaves'][0]['path'], manifest['leaves'][0]['shape']
    ('fnnet-checkpoint', 'w', [4, 2])
    """
    with _reading(path) as (path, zf):
        return _read_manifest(path, zf)


def _read_array(path: Path, zf: zipfile.ZipFile, entry: dict) -> np.ndarray:
    dtype = _DTYPES[entry["dtype"]]
    if dtype.kind in "biufc":
        dtype = dtype.newbyteorder("<")
    # Sizes are checked before allocating: a manifest cannot make fnnet allocate more than the file holds.
    needed = math.prod(entry["shape"]) * dtype.itemsize
    if zf.getinfo(entry["file"]).file_size != needed:
        raise CheckpointError(path, f"leaf {entry['path']!r} holds {zf.getinfo(entry['file']).file_size} bytes, "
                                    f"its shape {tuple(entry['shape'])} and dtype {entry['dtype']} need {needed}")
    array = np.empty(tuple(entry["shape"]), dtype)
    target = array.reshape(-1).view(np.uint8)
    # Read in chunks into the final buffer; zipfile checks the CRC-32 when it reaches the end.
    with zf.open(entry["file"]) as f:
        filled = 0
        while filled < target.size:
            chunk = f.read(min(_READ_CHUNK, target.size - filled))
            if not chunk:
                raise CheckpointError(path, f"leaf {entry['path']!r} is truncated")
            target[filled:filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
            filled += len(chunk)
        f.read(1)
    return array


def _finish_leaf(path: Path, entry: dict, array: np.ndarray):
    """Turns stored bytes back into the saved kind of leaf: array, Python number or PRNG key."""
    if "python" in entry:
        kind = _PYTHON_SCALARS.get(entry["python"])
        if kind is None or array.shape != ():
            raise CheckpointError(path, f"leaf {entry['path']!r} claims to be a Python {entry['python']!r}")
        return kind(array.item())
    if "key_impl" in entry:
        return jax.random.wrap_key_data(array, impl=entry["key_impl"])
    return array


def _decode(path: Path, node, leaves):
    if not isinstance(node, dict):
        raise CheckpointError(path, f"malformed tree node in {_MANIFEST}: {node!r}")
    if "leaf" in node:
        index = node["leaf"]
        if not _is_int(index) or not 0 <= index < len(leaves):
            raise CheckpointError(path, f"tree refers to leaf {index!r}, which {_MANIFEST} does not list")
        return leaves[index]
    kind, values = node.get("type"), node.get("values", [])
    if kind == "none":
        return None
    if not isinstance(values, list):
        raise CheckpointError(path, f"malformed {kind!r} node in {_MANIFEST}")
    children = [_decode(path, v, leaves) for v in values]
    if kind == "list":
        return children
    if kind == "tuple":
        return tuple(children)
    names = node.get("fields") if kind == "namedtuple" else node.get("keys")
    if kind in ("dict", "namedtuple", "node") and isinstance(names, list) and len(names) == len(children) \
            and all(isinstance(k, str) or _is_int(k) for k in names):
        return dict(zip(names, children))
    raise CheckpointError(path, f"malformed tree node of type {kind!r} in {_MANIFEST}")


def _template_signature(leaf):
    """``(shape, dtype name)`` of a ``like=`` leaf as it is stored (PRNG keys by their key data)."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and _is_key_dtype(dtype):
        data = jax.eval_shape(jax.random.key_data, leaf)
        return tuple(data.shape), np.dtype(data.dtype).name, str(dtype)
    if dtype is None:
        dtype = np.asarray(leaf).dtype
    return tuple(np.shape(leaf)), np.dtype(dtype).name, None


def _like_template(array: np.ndarray, entry: dict, template):
    """``array`` in the same form as the template leaf: Python number, jax Array, key, or numpy."""
    if isinstance(template, (bool, int, float, complex)) and not isinstance(template, np.generic):
        return type(template)(array.item())
    if _is_key_dtype(getattr(template, "dtype", np.float32)):
        impl = entry.get("key_impl") or str(jax.random.key_impl(template))
        return jax.random.wrap_key_data(array, impl=impl)
    if isinstance(template, jax.Array):
        if template.weak_type and array.shape == ():
            scalar = jnp.asarray(array.item())  # from a Python number: weakly typed, as the template
            if scalar.dtype == template.dtype:
                return scalar
        if template.committed:
            return jax.device_put(array, template.sharding)
        return jnp.asarray(array)
    return array


def load_checkpoint(path, like=None):
    """Loads a checkpoint written by :func:`save_checkpoint`.

    Without ``like``, dicts, lists, tuples and ``None`` come back as saved; leaves are
    numpy arrays (Python numbers and typed PRNG keys as saved). NamedTuples and other
    custom pytree nodes come back as dicts keyed by field name: classes named in the
    file are never imported. Pass ``like`` to get them back.

    With ``like`` (a template pytree, e.g. freshly initialised params, an optax state, or
    ``jax.eval_shape`` structs), the result has ``like``'s exact tree structure; every
    leaf must match by path, shape and dtype, or :class:`CheckpointMismatchError` lists
    the missing, extra and differing paths. Leaves take the template leaf's kind (jax
    arrays on the template's device, numpy arrays, Python numbers).

    Raises :class:`CheckpointError` (a ``ValueError``) naming the file when it is
    missing, truncated, corrupted or not a checkpoint.

    >>> import fnnet, jax, jax.numpy as jnp, optax, os, tempfile
    >>> params = {'w': jnp.arange(3.0)}
    >>> opt_state = optax.adam(1e-3).init(params)
    >>> path = fnnet.save_checkpoint(os.path.join(tempfile.mkdtemp(), 'c.ckpt'), [params, opt_state])
    >>> plain = fnnet.load_checkpoint(path)
    >>> sorted(plain[1][0])  # the ScaleByAdamState NamedTuple, as a dict
    ['count', 'mu', 'nu']
    >>> restored = fnnet.load_checkpoint(path, like=[params, opt_state])
    >>> type(restored[1][0]).__name__, restored[0]['w'].tolist()
    ('ScaleByAdamState', [0.0, 1.0, 2.0])
    """
    with _reading(path) as (path, zf):
        manifest = _read_manifest(path, zf)
        entries = manifest["leaves"]
        if like is None:
            leaves = [_finish_leaf(path, e, _read_array(path, zf, e)) for e in entries]
            return _decode(path, manifest["tree"], leaves)
        return _load_like(path, zf, entries, like)


def _load_like(path: Path, zf: zipfile.ZipFile, entries, like):
    flat, treedef = jax.tree_util.tree_flatten_with_path(like)
    template_paths = [keypath_str(p) for p, _ in flat]
    stored = {e["path"]: e for e in entries}
    missing = [p for p in template_paths if p not in stored]
    wanted = set(template_paths)
    extra = [e["path"] for e in entries if e["path"] not in wanted]
    shapes, dtypes = [], []
    for leaf_path, (_, template) in zip(template_paths, flat):
        entry = stored.get(leaf_path)
        if entry is None:
            continue
        shape, dtype, key_dtype = _template_signature(template)
        if tuple(entry["shape"]) != shape:
            shapes.append((leaf_path, entry["shape"], shape))
        stored_dtype = entry.get("key_dtype", entry["dtype"]) if key_dtype else entry["dtype"]
        if stored_dtype != (key_dtype or dtype):
            dtypes.append((leaf_path, stored_dtype, key_dtype or dtype))
    if missing or extra or shapes or dtypes:
        raise CheckpointMismatchError(path, missing, extra, shapes, dtypes)
    values = [_like_template(_read_array(path, zf, stored[p]), stored[p], t)
              for p, (_, t) in zip(template_paths, flat)]
    return jax.tree_util.tree_unflatten(treedef, values)

"""Data parallelism on a ``jax.sharding.Mesh``: where batches, params and data live.

fit, evaluate and predict take ``mesh=``; the mesh needs a ``'data'`` axis and may have
a ``'model'`` axis. The rules, all expressed as sharding annotations so that XLA inserts
the collectives (the gradient all-reduce included) itself:

- every batch is split over ``'data'`` (``PartitionSpec('data')`` on its first axis);
  ``batch_size`` must be a multiple of the ``'data'`` axis size, else fit raises a
  ``ValueError``. The last, partial batch of an epoch is split too when its size is a
  multiple of the axis size, and otherwise computed replicated (every device computes
  the same small batch), so results stay exact without padding;
- params, optimizer state and model state are replicated (``PartitionSpec()``). With a
  ``'model'`` axis, each leaf of at least :data:`MODEL_SHARD_MIN_SIZE` elements is split
  FSDP-style over ``'model'`` along its first axis whose size the axis divides; optimizer
  moments shaped like a param are split the same way;
- arrays given as numpy are put on the mesh replicated (the whole data set on every
  device, so shuffling moves nothing between devices); ``jax.Array`` leaves already
  sharded on the mesh (e.g. built with ``jax.make_array_from_process_local_data`` on
  several hosts) are used where they are;
- predict and evaluate pad their batches to a multiple of the ``'data'`` axis size and
  mask the padded rows.

The mesh's axis types are taken as ``Auto`` (GSPMD propagation): a mesh made by
``jax.make_mesh`` (``Explicit`` by default) is rebuilt over the same devices and names.
The returned params carry ``NamedSharding`` on that mesh.

Multi-host: call ``jax.distributed.initialize()`` first on every host, build the mesh
over ``jax.devices()`` (all hosts' devices), and give fit global arrays made from each
host's rows, e.g.
``jax.make_array_from_process_local_data(NamedSharding(mesh, P('data')), local_x)``;
every host runs the same fit call, with the same seed. The global shuffle then gathers
rows across hosts (XLA's collectives). predict and evaluate slice their batches on the
host: on several hosts, call them without ``mesh`` on each host's own rows. Only the
single-process path (one or many local devices) is tested here.
"""

from __future__ import annotations

import math

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
MODEL_AXIS = "model"
# Leaves smaller than this stay replicated on a 'model' axis: splitting them saves little
# memory and costs a collective each.
MODEL_SHARD_MIN_SIZE = 2 ** 14


def auto_mesh(mesh: Mesh | None) -> Mesh | None:
    """``mesh`` with every axis ``Auto``; checks it has a ``'data'`` axis.

    >>> import jax, numpy as np
    >>> from jax.sharding import Mesh
    >>> from fnnet.training.sharding import auto_mesh
    >>> auto_mesh(Mesh(np.array(jax.devices()[:1]), ('data',))).axis_names
    ('data',)
    """
    if mesh is None:
        return None
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"the mesh needs a {DATA_AXIS!r} axis for data parallelism; its axes are "
                         f"{mesh.axis_names} (e.g. jax.sharding.Mesh(jax.devices(), ('data',)))")
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def data_size(mesh: Mesh | None) -> int:
    """How many ways a batch is split: the size of the mesh's ``'data'`` axis (1 without a mesh)."""
    return 1 if mesh is None else mesh.shape[DATA_AXIS]


def check_batch_size(batch_size: int, mesh: Mesh | None) -> None:
    """Raise a ``ValueError`` unless ``batch_size`` splits evenly over the ``'data'`` axis."""
    ways = data_size(mesh)
    if batch_size % ways:
        lower, upper = batch_size - batch_size % ways, batch_size + ways - batch_size % ways
        raise ValueError(f"batch_size={batch_size} does not split evenly over the mesh's {ways} "
                         f"{DATA_AXIS!r} devices; use a multiple of {ways} (e.g. {lower or ways} or {upper})")


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that puts a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def batch_spec(rows: int, mesh: Mesh) -> P:
    """Split the first axis over ``'data'`` when ``rows`` divides evenly, else replicate."""
    return P(DATA_AXIS) if rows % data_size(mesh) == 0 else P()


def leaf_spec(shape, mesh: Mesh) -> P:
    """The spec of a param-like leaf: replicated, or split over ``'model'`` (see module doc)."""
    if MODEL_AXIS not in mesh.axis_names or math.prod(shape) < MODEL_SHARD_MIN_SIZE:
        return P()
    ways = mesh.shape[MODEL_AXIS]
    for axis, size in enumerate(shape):
        if size % ways == 0:
            return P(*([None] * axis + [MODEL_AXIS]))
    return P()


def tree_shardings(tree, mesh: Mesh):
    """A pytree of ``NamedSharding`` for params, optimizer or model state, by :func:`leaf_spec`."""
    return jax.tree_util.tree_map(lambda leaf: NamedSharding(mesh, leaf_spec(jax.numpy.shape(leaf), mesh)), tree)


def constrain_tree(tree, mesh: Mesh | None):
    """Inside jit: pin params-like leaves to their shardings (a no-op without a mesh)."""
    if mesh is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, tree_shardings(tree, mesh))


def constrain_batch(tree, mesh: Mesh | None):
    """Inside jit: split a batch (any pytree with a leading batch axis) over ``'data'``."""
    if mesh is None:
        return tree
    return jax.tree_util.tree_map(
        lambda a: jax.lax.with_sharding_constraint(a, NamedSharding(mesh, batch_spec(a.shape[0], mesh))), tree)


def _on_mesh(leaf, mesh: Mesh) -> bool:
    sharding = getattr(leaf, "sharding", None)
    return isinstance(sharding, NamedSharding) and sharding.mesh.devices.tolist() == mesh.devices.tolist()


def put_data(tree, mesh: Mesh | None):
    """Put a pytree on the device(s) in one transfer: replicated on the mesh unless already on it
    (params-like trees go through :func:`put_params`)."""
    if mesh is None:
        return jax.device_put(tree)
    return jax.tree_util.tree_map(
        lambda a: a if _on_mesh(a, mesh) else jax.device_put(a, replicated(mesh)), tree)


def put_params(tree, mesh: Mesh | None):
    """Put params-like pytrees on the device(s) in one transfer, placed by :func:`tree_shardings`."""
    if mesh is None:
        return jax.device_put(tree)
    return jax.device_put(tree, tree_shardings(tree, mesh))

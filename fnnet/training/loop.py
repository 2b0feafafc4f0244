"""``fit``, ``evaluate`` and ``predict``: Keras's training loop as pure functions over params.

How an epoch runs (see :mod:`fnnet.training.steps` for the jitted pieces):

- the data set goes to the device(s) once; each epoch draws its shuffle and dropout keys
  from ``seed`` and the epoch number only, so the same seed gives a bit-identical
  history, and a run resumed from a checkpoint continues exactly;
- by default (``scan_epoch='auto'``) the whole epoch is one jitted call: a ``lax.scan``
  over its full batches, then the last partial batch as one more step with its true
  size. On a terminal with ``verbose=1`` a long epoch (over 128 steps) is cut into a few
  scanned chunks so that the live bar moves. A callback with ``on_batch_end`` makes
  fit run one jitted call per step instead (``scan_epoch=False`` forces that too);
- params, optimizer and model state are donated from one jitted call to the next within
  an epoch (the first call of an epoch keeps its input: see :mod:`fnnet.training.steps`)
  and read back once per epoch, with the loss sums, the metrics' values (their mergeable
  states are merged on the device and turned into values there) and the non-finite
  guard's record;
- ``sample_weight`` / ``class_weight`` travel with the data as one weight per row, and
  validation's padded rows have weight 0, so the reported losses are Keras's.
"""

from __future__ import annotations

import collections
import functools
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..io.checkpoint import keypath_str, load_checkpoint
from ..core import as_layer, walk
from . import sharding
from .callbacks import TrainingRun, as_callback, finish_training
from .progress import Progress
from .steps import EpochData, program
from .validation import check_data, epoch_data_error

# Chunks of the live bar: at least this many steps each, and about CHUNKS_PER_EPOCH per epoch.
MIN_CHUNK_STEPS = 64
CHUNKS_PER_EPOCH = 20
# How often the per-step loop redraws the live bar (each redraw waits for the device).
LIVE_REDRAW_SECONDS = 0.25
DEFAULT_EVAL_BATCH_SIZE = 256


class FitResult(NamedTuple):
    """What :func:`fit` returns: final ``params``, model ``state`` (None when stateless),
    optimizer state ``opt_state``, and ``history`` (dict of per-epoch float lists)."""

    params: Any
    state: Any
    opt_state: Any
    history: dict


class NonFiniteLossError(FloatingPointError):
    """fit met a NaN or Inf loss; neither that step nor any after it was applied.

    ``params``, ``state`` and ``opt_state`` are those from before the failing step (the
    message says whether every param is finite); ``history`` holds the completed
    epochs; ``epoch`` and ``step`` (from 1) locate the failure.
    """


# ------------------------------------------------------------------------- data


def _leaf_name(prefix, keypath):
    rest = keypath_str(keypath)
    return f"{prefix}[{rest!r}]" if rest else prefix


def num_examples(*named_trees) -> int:
    """The common length of the first axis of every leaf; a clear error when they differ.

    >>> import numpy as np
    >>> from fnnet.training.loop import num_examples
    >>> num_examples(('x', {'a': np.ones((5, 2)), 'b': np.ones(5)}), ('y', np.ones(5)))
    5
    """
    sizes = []
    for name, tree in named_trees:
        for keypath, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            if np.ndim(leaf) == 0:
                raise ValueError(f"{_leaf_name(name, keypath)} is a scalar; data needs a leading example axis")
            sizes.append((_leaf_name(name, keypath), np.shape(leaf)[0]))
    if not sizes:
        raise ValueError("no data: x and y hold no arrays")
    first_name, n = sizes[0]
    for name, size in sizes[1:]:
        if size != n:
            raise ValueError(f"{name} has {size} examples but {first_name} has {n}; they must match")
    if n == 0:
        raise ValueError(f"{first_name} has no examples")
    return n


def _as_arrays(tree, name="data"):
    def convert(keypath, leaf):
        if isinstance(leaf, jax.Array):
            return leaf
        array = np.asarray(leaf)
        if array.dtype == object or array.dtype.kind in "USM":
            raise TypeError(f"{_leaf_name(name, keypath)} holds {array.dtype} values (text or mixed columns?); "
                            "fit, evaluate and predict need numbers (see fnnet.TabularPreprocessor)")
        return array

    return jax.tree_util.tree_map_with_path(convert, tree)


def _take(tree, start, stop):
    return jax.tree_util.tree_map(lambda a: a[start:stop], tree)


def _pad_rows(tree, rows):
    def pad(a):
        missing = rows - a.shape[0]
        if missing == 0:
            return a
        xp = jnp if isinstance(a, jax.Array) else np
        return xp.concatenate([a, xp.zeros((missing,) + a.shape[1:], a.dtype)])

    return jax.tree_util.tree_map(pad, tree)


def _input_shape(x):
    shapes = jax.tree_util.tree_map(lambda a: (-1,) + tuple(np.shape(a)[1:]), x)
    return shapes


def initial_state(model, x):
    """The model's initial state for inputs like ``x`` (None for stateless models), without
    initialising anything when there is no state.

    >>> import fnnet, numpy as np
    >>> from fnnet.training.loop import initial_state
    >>> initial_state(fnnet.Dense(2), np.ones((4, 3))) is None
    True
    >>> sorted(initial_state(fnnet.serial(fnnet.Dense(2), fnnet.BatchNorm()), np.ones((4, 3)))['batch_norm'])
    ['mean', 'var']
    """
    shape = _input_shape(x)
    model = as_layer(model)

    def build():
        # Only the state is wanted: params are initialised abstractly, the state for real.
        probe = jax.eval_shape(lambda: model.init_with_state(jax.random.PRNGKey(0), shape)[2])
        if probe is None:
            return None
        return jax.jit(lambda key: model.init_with_state(key, shape)[2])(jax.random.PRNGKey(0))

    try:
        hash(shape)
    except TypeError:  # an unhashable shape tree (dict inputs)
        return build()
    # Tracing a model's init costs milliseconds: once per input shape, kept on the model (it
    # goes with it). fit never donates the state it was given, so the kept arrays stay valid.
    return model.memo(("fnnet.training.initial_state", shape), build)


def _split_validation(x, y, weight, validation_data, validation_split):
    """``(x, y, weight, validation)``, validation ``(x_val, y_val, w_val or None)`` or None."""
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight_val)")
        x_val, y_val = _as_arrays(validation_data[0], "x_val"), _as_arrays(validation_data[1], "y_val")
        w_val = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            n_val = num_examples(("x_val", x_val), ("y_val", y_val))
            w_val = sample_weights(y_val, validation_data[2], n=n_val, name="validation_data's sample_weight")
        return x, y, weight, (x_val, y_val, w_val)
    if not validation_split:
        return x, y, weight, None
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    n = num_examples(("x", x), ("y", y))
    # Keras's rule: the last fraction of the rows, taken before any shuffling.
    cut = int(math.floor(n * (1.0 - validation_split)))
    if cut == 0 or cut == n:
        raise ValueError(f"validation_split={validation_split} of {n} examples leaves an empty "
                         f"{'training' if cut == 0 else 'validation'} set")
    w_val = None if weight is None else weight[cut:]
    return (_take(x, 0, cut), _take(y, 0, cut), None if weight is None else weight[:cut],
            (_take(x, cut, n), _take(y, cut, n), w_val))


def _class_labels(y):
    """Integer class labels of each example, as Keras reads them for ``class_weight``."""
    leaves = jax.tree_util.tree_leaves(y)
    if len(leaves) != 1:
        raise ValueError(f"class_weight needs a model with one output, but y holds {len(leaves)} arrays; "
                         "pass sample_weight instead")
    labels = np.asarray(leaves[0])
    if labels.ndim > 1:
        labels = labels[..., 0] if labels.shape[-1] == 1 else np.argmax(labels, axis=-1)
    return np.round(labels).astype(np.int64)


def sample_weights(y, sample_weight=None, class_weight=None, *, n=None, name="sample_weight"):
    """The per-example weights ``fit`` trains with (float32, None when both are None):
    ``sample_weight`` as given, or ``class_weight`` (``{class: weight}``) looked up at each
    example's integer label (one-hot targets: their arg-max), as Keras does.

    >>> import numpy as np
    >>> from fnnet.training.loop import sample_weights
    >>> sample_weights(np.array([0, 1, 1, 0]), class_weight={0: 1.0, 1: 3.0}).tolist()
    [1.0, 3.0, 3.0, 1.0]
    """
    n = num_examples(("y", y)) if n is None else n
    if sample_weight is not None and class_weight is not None:
        raise ValueError("give sample_weight or class_weight, not both (as in Keras); "
                         "multiply the class weights into sample_weight yourself")
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight must be a dict {{class: weight}}, got {type(class_weight).__name__}")
        labels = _class_labels(y)
        classes = np.asarray(sorted(int(k) for k in class_weight), np.int64)
        missing = sorted(set(np.unique(labels).tolist()) - set(classes.tolist()))
        if missing:
            raise ValueError(f"class_weight has no weight for class{'es' if len(missing) > 1 else ''} "
                             f"{', '.join(map(str, missing))} present in y (it has {classes.tolist()}); "
                             "give every class a weight")
        values = np.asarray([float(class_weight[k]) for k in sorted(class_weight, key=int)], np.float32)
        return values[np.searchsorted(classes, labels)]
    if sample_weight is None:
        return None
    weight = np.asarray(jax.device_get(sample_weight), np.float32)
    if weight.ndim == 0 or weight.shape[0] != n:
        got = "a scalar" if weight.ndim == 0 else f"{weight.shape[0]} entries"
        raise ValueError(f"{name} has {got} but x and y have {n} examples; give one weight per example")
    if not np.all(np.isfinite(weight)) or np.any(weight < 0):
        raise ValueError(f"{name} holds negative or non-finite weights; weights must be finite and >= 0")
    return weight


@functools.lru_cache(maxsize=16)
def _seed_key(seed):
    # Making a key is a dispatch of its own (~0.1 ms); fit is called repeatedly with one seed.
    return jax.random.PRNGKey(seed)


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


def _padded_on_device(x, y, weight, batch_size, mesh):
    """``(x, y, keep, weight)`` padded to whole batches, on the device(s): ``keep`` is 1 on
    real rows and 0 on padding; ``weight`` the per-example weights (padding 0) or None."""
    n = num_examples(("x_val", x), ("y_val", y))
    rows = _round_up(n, batch_size)
    keep = np.zeros(rows, np.float32)
    keep[:n] = 1.0
    weight = None if weight is None else _pad_rows(weight, rows)
    return sharding.put_data((_pad_rows(x, rows), _pad_rows(y, rows), keep, weight), mesh)


# ------------------------------------------------------------------------ resume


def _restore(path, run, callbacks, seed):
    """Load a training checkpoint (written by ModelCheckpoint) into ``run``."""
    plain = load_checkpoint(path)
    missing = {"params", "opt_state", "epoch", "seed", "history"} - set(plain if isinstance(plain, dict) else ())
    if missing:
        raise ValueError(f"{path}: not a training checkpoint written by fnnet.ModelCheckpoint "
                         f"(it lacks {sorted(missing)}); to start from saved params, pass them to fit")
    template = dict(plain, params=run.params, state=run.state, opt_state=run.opt_state)
    tree = load_checkpoint(path, like=template)
    if int(tree["seed"]) != seed:
        raise ValueError(f"{path} was trained with seed={int(tree['seed'])} but fit got seed={seed}; "
                         "pass the same seed to continue that run exactly")
    run.params, run.state, run.opt_state = tree["params"], tree["state"], tree["opt_state"]
    run.epoch = run.initial_epoch = int(tree["epoch"])
    run.lr_scale = float(tree["lr_scale"])
    run.history = {k: [float(v) for v in np.asarray(values)] for k, values in tree["history"].items()}
    for i, cb in enumerate(callbacks):
        state = tree.get("callbacks", {}).get(str(i))
        if state is not None and callable(getattr(cb, "set_state", None)):
            cb.set_state(state, run)


# --------------------------------------------------------------------------- fit


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _logs(prog, values, prefix=""):
    """History entries from a program's values vector (host numpy, ``prog.keys`` order)."""
    return {prefix + key: float(v) for key, v in zip(prog.keys, np.asarray(values).tolist())}


def fit(model, params, x, y, *, loss, optimizer, epochs, batch_size, seed=0, validation_data=None,
        validation_split=0.0, metrics=(), callbacks=(), state=None, verbose=1, shuffle=True, frozen=(),
        resume_from=None, mesh=None, scan_epoch="auto", stop_on_nonfinite=True, loss_weights=None,
        sample_weight=None, class_weight=None, weighted_metrics=()) -> FitResult:
    """Train ``model`` from ``params`` on ``(x, y)``; Keras's ``fit`` as a pure function.

    Args:
        model: an fnnet layer (or stax pair); called as
            ``model.apply_with_state(params, state, x, train=True, rng=key)``.
        params: initial params (not modified: fit works on copies).
        x, y: arrays (numpy, jax, pandas) or pytrees of arrays sharing the first axis.
        loss: Keras name (``'mse'``, ...) or callable ``(y_true, y_pred) -> scalar``
            (a mean over the batch; see :mod:`fnnet.losses`); for a model with named
            outputs (``fnnet.Model``), a dict by output name (``{'price': 'mse'}``),
            with ``loss_weights`` by name too; history then holds ``price_loss`` and
            metrics given by output (``metrics={'kind': ['accuracy']}``) as ``kind_accuracy``.
        optimizer: Keras name (``'adam'``, ...; Keras's defaults) or an optax transformation.
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: examples per step; the last batch of an epoch holds the rest.
        seed: everything random (shuffling, dropout) derives from it.
        validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``; or
            ``validation_split``: the last fraction of ``x``, ``y`` (and ``sample_weight``),
            taken before shuffling, as in Keras.
        metrics: names or callables (see :mod:`fnnet.metrics`), computed exactly over
            each epoch's examples from mergeable states (AUC, precision, recall, R² are
            those of all the epoch's examples at once); unweighted, as Keras's ``metrics``;
            history keys are their names, ``val_`` prefixed for validation.
        callbacks: functions ``fn(epoch, logs, params) -> stop?`` or objects (see
            :mod:`fnnet.training.callbacks`).
        state: model state (BatchNorm statistics); None initialises it for stateful models.
        verbose: 0 silent, 1 a line per epoch with a live bar on terminals, 2 a line per epoch.
        shuffle: reshuffle the training rows every epoch.
        frozen: param path selectors kept fixed (``['dense']``, by layer name; see :func:`fnnet.freeze`).
        resume_from: a checkpoint written by :class:`fnnet.ModelCheckpoint`; training
            continues from it exactly as if never interrupted. A path that does not
            exist yet starts from scratch, so one script serves the first run and restarts.
        mesh: a ``jax.sharding.Mesh`` with a ``'data'`` axis for data parallelism (see
            :mod:`fnnet.training.sharding`).
        scan_epoch: ``'auto'`` (one ``lax.scan`` per epoch unless a callback needs every
            step), True, or False (one jitted call per step).
        stop_on_nonfinite: raise :class:`NonFiniteLossError` (a ``FloatingPointError``)
            at the first NaN/Inf loss, with the last finite params attached.
        sample_weight: one weight per example (``(n,)``, or ``(n, steps)`` for per-step
            losses); each batch's loss is the loss with its ``reduction`` and these weights
            (default ``'sum_over_batch_size'``: Σ w·l / batch size), and the epoch's loss is
            the mean of the batch losses weighted by batch size, as Keras reports it.
        class_weight: ``{class: weight}``, turned into per-example weights from the integer
            labels of ``y`` (one-hot ``y``: its arg-max), as Keras does; every class in ``y``
            needs a weight. Not with ``sample_weight``; as in Keras, validation rows are not
            weighted by class.
        weighted_metrics: metrics that take the sample (or class) weights, as Keras's
            ``compile(weighted_metrics=...)``; a name already in ``metrics`` is logged as
            ``weighted_<name>``.

    Returns:
        :class:`FitResult` ``(params, state, opt_state, history)``.

    >>> import fnnet, jax, numpy as np
    >>> x = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    >>> model = fnnet.serial(fnnet.Dense(8), fnnet.Tanh, fnnet.Dense(1))
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 1))
    >>> result = fnnet.fit(model, params, x, 3 * x, loss='mse', optimizer='adam', epochs=3,
    ...                    batch_size=16, validation_split=0.25, metrics=['mae'], verbose=0)
    >>> sorted(result.history), len(result.history['loss'])
    (['loss', 'mae', 'val_loss', 'val_mae'], 3)
    """
    _check_positive_int("batch_size", batch_size)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if scan_epoch not in ("auto", True, False):
        raise ValueError(f"scan_epoch must be 'auto', True or False, got {scan_epoch!r}")
    model = as_layer(model)
    mesh = sharding.auto_mesh(mesh)
    sharding.check_batch_size(batch_size, mesh)
    x, y = _as_arrays(x, "x"), _as_arrays(y, "y")
    weight = sample_weights(y, sample_weight, class_weight, n=num_examples(("x", x), ("y", y)))
    if class_weight is not None:  # as Keras: class weights weigh the training rows only, not validation_split's
        weight = None
    x, y, weight, validation = _split_validation(x, y, weight, validation_data, validation_split)
    if class_weight is not None:
        weight = sample_weights(y, class_weight=class_weight)
    check_data(model, x, y, loss=loss, validation=validation, validation_split=validation_split)
    n = num_examples(("x", x), ("y", y))
    full_steps, remainder = divmod(n, batch_size)
    steps = full_steps + (remainder > 0)

    prog = program(model, loss, metrics, optimizer, frozen, mesh, loss_weights, weighted_metrics)
    if state is None:
        state = initial_state(model, x)
    if callable(callbacks) or hasattr(callbacks, "on_epoch_end"):
        callbacks = [callbacks]
    callbacks = [as_callback(c) for c in callbacks]
    per_step = any(callable(getattr(cb, "on_batch_end", None)) for cb in callbacks)
    if scan_epoch is True and per_step:
        raise ValueError("scan_epoch=True cannot call on_batch_end after every step; use 'auto' or False")
    per_step = per_step or scan_epoch is False
    progress = Progress(epochs, steps, verbose)
    params, state = sharding.put_params((params, state), mesh)
    carry = prog.start(params, prog.init_opt_state(params), state, example=(x, y))
    run = TrainingRun(params=carry.params, state=carry.state, opt_state=carry.opt_state, epochs=epochs, seed=seed,
                      callbacks=callbacks, progress=progress)
    if resume_from is not None and Path(resume_from).exists():
        _restore(resume_from, run, callbacks, seed)
        carry = prog.start(run.params, run.opt_state, run.state, example=(x, y))

    data = EpochData(*sharding.put_data((x, y, _seed_key(seed), weight), mesh))
    val = None if validation is None else _padded_on_device(*validation, batch_size, mesh)
    for cb in callbacks:
        if callable(getattr(cb, "on_train_begin", None)):
            cb.on_train_begin(run)

    runner = _EpochRunner(prog, data, batch_size, n, shuffle, progress, callbacks, per_step, mesh)
    # Without callbacks nothing read from epoch e decides how epoch e + 1 runs, so e + 1 is
    # queued on the device before the host waits for e's results: no idle gap between epochs.
    ahead = 2 if not callbacks and runner.chunk is None and not per_step else 1
    queued, next_epoch, last_done = collections.deque(), run.epoch, time.perf_counter()
    while True:
        while next_epoch < epochs and len(queued) < ahead:
            source = queued[-1].carry if queued else carry
            queued.append(_dispatch(runner, prog, source, next_epoch, run.lr_scale, val, batch_size))
            next_epoch += 1
        if not queued:
            break
        done = queued.popleft()
        carry = done.carry
        stats, values, val_values = jax.device_get((carry.stats, done.values, done.val_values))
        stats = prog.read_stats(stats)
        if stats.bad_data:  # bad data, not a diverging model: before the loss guard, always raised
            raise epoch_data_error(done.epoch + 1, x, y)
        if stats.bad_step >= 0 and stop_on_nonfinite:
            last_good = runner.replay(done.snapshot, done.epoch, run.lr_scale, stats.bad_step)
            raise _non_finite(last_good, run, done.epoch, stats.bad_step, stats.bad_loss, steps)
        logs = _logs(prog, values)
        if val_values is not None:
            logs.update(_logs(prog, val_values, prefix="val_"))
        for key, value in logs.items():
            run.history.setdefault(key, []).append(value)
        now = time.perf_counter()
        progress.end_epoch(done.epoch, logs, now - max(done.started, last_done))
        last_done = now

        run.params, run.state, run.opt_state, run.epoch = carry.params, carry.state, carry.opt_state, done.epoch + 1
        stop = False
        for cb in callbacks:
            if callable(getattr(cb, "on_epoch_end", None)):
                stop = bool(cb.on_epoch_end(done.epoch, logs, run.params)) or stop
        for cb in callbacks:
            if callable(getattr(cb, "after_epoch", None)):
                cb.after_epoch(run)
        if stop or run.stop:
            break

    # Every hook runs; if one raises, the trained run is saved first (TrainingEndError names the file).
    finish_training(run, callbacks)
    return FitResult(run.params, run.state, run.opt_state, run.history)


class _Dispatched(NamedTuple):
    """An epoch queued on the device: its input (kept for a replay) and its outputs."""

    epoch: int
    started: float
    snapshot: Any
    carry: Any
    values: Any       # the epoch's history values, on the device
    val_values: Any


def _dispatch(runner, prog, carry, epoch, lr_scale, val, batch_size) -> _Dispatched:
    started = time.perf_counter()
    # The epoch's first call does not donate `carry`: it stays valid for a replay after a
    # non-finite loss, and the params that callbacks received last epoch stay alive.
    out = runner.run(carry, epoch, lr_scale, started)
    val_values = None if val is None else prog.evaluate_all(out.params, out.state, *val, batch_size=batch_size)
    return _Dispatched(epoch, started, carry, out, prog.epoch_values(out), val_values)


def _running_logs(prog, carry):
    stats = prog.read_stats(jax.device_get(carry.stats))
    return {"loss": stats.totals["loss"] / max(stats.count, 1.0)}


class _EpochRunner:
    """Runs an epoch as one scanned call, as scanned chunks (live bar), or one call per step."""

    def __init__(self, prog, data, batch_size, n, shuffle, progress, callbacks, per_step, mesh):
        self.prog, self.data, self.batch_size, self.n, self.shuffle = prog, data, batch_size, n, shuffle
        self.mesh = mesh
        self.full_steps, self.remainder = divmod(n, batch_size)
        self.progress = progress
        self.hooks = [cb.on_batch_end for cb in callbacks if callable(getattr(cb, "on_batch_end", None))]
        self.per_step = per_step
        self.chunk = self._chunk_steps() if progress.live and not per_step else None

    def _chunk_steps(self):
        if self.full_steps <= 2 * MIN_CHUNK_STEPS:
            return None
        return max(MIN_CHUNK_STEPS, -(-self.full_steps // CHUNKS_PER_EPOCH))

    def _epoch_args(self, epoch, lr_scale):
        # On the device(s) once per epoch, not once per jitted call; on every host's mesh
        # devices when data parallel, as multi-process jit requires.
        return sharding.put_data((np.int32(epoch), np.float32(lr_scale)), self.mesh)

    def _call(self, carry, args, perm, *, num_steps, remainder, first):
        run_steps = self.prog.run_steps_keep if first else self.prog.run_steps
        return run_steps(carry, self.data, perm, *args, batch_size=self.batch_size, num_steps=num_steps,
                         remainder=remainder, start=first, shuffle=self.shuffle)

    def run(self, carry, epoch, lr_scale, started):
        args = self._epoch_args(epoch, lr_scale)
        if not self.per_step and self.chunk is None:
            return self._call(carry, args, None, num_steps=self.full_steps, remainder=self.remainder, first=True)
        perm = self.prog.permutation(self.data.key, args[0], n=self.n, shuffle=self.shuffle)
        if self.per_step:
            return self._steps(carry, epoch, args, perm, started)
        done = 0
        while self.full_steps - done > self.chunk:
            carry = self._call(carry, args, perm, num_steps=self.chunk, remainder=0, first=done == 0)
            done += self.chunk
            self.progress.update(epoch, done, time.perf_counter() - started, _running_logs(self.prog, carry))
        return self._call(carry, args, perm, num_steps=self.full_steps - done, remainder=self.remainder,
                          first=done == 0)

    def _steps(self, carry, epoch, args, perm, started):
        last_redraw, total = started, self.full_steps + (self.remainder > 0)
        for step in range(total):
            partial = step == self.full_steps
            carry = self._call(carry, args, perm, num_steps=0 if partial else 1,
                               remainder=self.remainder if partial else 0, first=step == 0)
            if self.hooks:
                logs = _running_logs(self.prog, carry)
                for hook in self.hooks:
                    hook(step, logs)
            now = time.perf_counter()
            if self.progress.live and now - last_redraw > LIVE_REDRAW_SECONDS and step + 1 < total:
                self.progress.update(epoch, step + 1, now - started, _running_logs(self.prog, carry))
                last_redraw = now
        return carry

    def replay(self, snapshot, epoch, lr_scale, steps):
        """The carry after the epoch's first ``steps`` steps (all full batches), from its start."""
        args = self._epoch_args(epoch, lr_scale)
        return self._call(snapshot, args, None, num_steps=steps, remainder=0, first=True)


def _all_finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(jax.device_get(tree))
               if np.issubdtype(np.asarray(leaf).dtype, np.inexact))


def _non_finite(carry, run, epoch, step, loss, steps):
    finite = _all_finite(carry.params)
    kept = ("error.params holds the params from before that step (all finite)" if finite else
            "error.params holds the params from before that step, though an earlier update already made "
            "some of them non-finite")
    error = NonFiniteLossError(
        f"non-finite loss ({loss}) at epoch {epoch + 1}/{run.epochs}, step {step + 1}/{steps}; training "
        f"stopped. {kept}. Try a lower learning rate, or scale the inputs and targets "
        "(e.g. fnnet.StandardScaler).")
    error.params, error.state, error.opt_state = carry.params, carry.state, carry.opt_state
    error.history, error.epoch, error.step = run.history, epoch + 1, step + 1
    return error


# ------------------------------------------------------------------ evaluate/predict


def _eval_batch_size(n, batch_size, mesh):
    _check_positive_int("batch_size", batch_size)
    # Few distinct shapes (powers of two up to batch_size), so small inputs are not
    # padded to a large batch and repeated calls do not compile again.
    size = min(batch_size, 1 << max(3, (n - 1).bit_length()))
    return _round_up(size, sharding.data_size(mesh))


def stateful_layers(model, input_shape) -> list:
    """The paths of the layers that keep state (``['serial/batch_norm']``), by the one walker.

    >>> import fnnet
    >>> from fnnet.training.loop import stateful_layers
    >>> stateful_layers(fnnet.serial(fnnet.Dense(2), fnnet.BatchNorm()), (None, 3))
    ['batch_norm']
    """
    return ["/".join(node.path) or node.layer.name for node in walk(model, input_shape).nodes()
            if node.state is not None and not node.children]


def _prepare(model, params, x, state, mesh, where):
    model = as_layer(model)
    mesh = sharding.auto_mesh(mesh)
    x = _as_arrays(x, "x")
    if state is None:
        # Inference with freshly initialised statistics (mean 0, variance 1) is silently wrong.
        keeping = stateful_layers(model, _input_shape(x))
        if keeping:
            raise ValueError(f"{where}: the model keeps state ({', '.join(keeping)}) and no state= was given; "
                             "pass the state training returned (fit(...).state), or init_with_state's for "
                             "an untrained model")
    params, state = sharding.put_params((params, state), mesh)
    return model, mesh, x, params, state


def evaluate(model, params, x, y, *, loss, metrics=(), batch_size=DEFAULT_EVAL_BATCH_SIZE, state=None,
             mesh=None, loss_weights=None, sample_weight=None, weighted_metrics=()) -> dict:
    """The loss and metrics of ``model`` over a whole data set, exactly (``train=False``).

    Batches are padded to a fixed size and the padded rows masked, so the result is the
    data set's own mean (RMSE: the root of the mean), and calls with other data sizes
    do not compile again. Returns ``{'loss': ..., <metric name>: ...}`` as floats; losses
    and metrics by output name (``loss={'price': 'mse'}``) work as in :func:`fit`.
    ``sample_weight`` (one per example) weighs the loss as in :func:`fit` (Keras's value:
    the batch losses' mean weighted by batch size); ``metrics`` are unweighted and
    ``weighted_metrics`` weighted, as Keras's.
    Metrics are exact over the whole set (AUC, precision, recall, R² included).

    >>> import fnnet, jax, numpy as np
    >>> model = fnnet.Dense(1, W_init='ones')
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    >>> x = np.ones((5, 2), np.float32)
    >>> fnnet.evaluate(model, params, x, np.zeros(5), loss='mse', metrics=['mae', 'rmse'], batch_size=2)
    {'loss': 4.0, 'mae': 2.0, 'rmse': 2.0}
    """
    model, mesh, x, params, state = _prepare(model, params, x, state, mesh, "evaluate")
    y = _as_arrays(y, "y")
    check_data(model, x, y, loss=loss)
    n = num_examples(("x", x), ("y", y))
    weight = sample_weights(y, sample_weight, n=n)
    prog = program(model, loss, metrics, mesh=mesh, loss_weights=loss_weights, weighted_metrics=weighted_metrics)
    size = _eval_batch_size(n, batch_size, mesh)
    acc = prog.zero_sums(params, state, x, y)
    for start in range(0, n, size):
        stop = min(start + size, n)
        keep = np.zeros(size, np.float32)
        keep[:stop - start] = 1.0
        w = None if weight is None else _pad_rows(weight[start:stop], size)
        acc = prog.evaluate_batch(acc, params, state, _pad_rows(_take(x, start, stop), size),
                                  _pad_rows(_take(y, start, stop), size), keep, w)
    return _logs(prog, jax.device_get(prog.values(*acc)))


def predict(model, params, x, batch_size=DEFAULT_EVAL_BATCH_SIZE, state=None, *, mesh=None):
    """The model's outputs for ``x`` (``train=False``), in batches, as a jax array (or pytree).

    The last batch is padded to the batch size, so calls with other data sizes do not
    compile again; padded rows are dropped from the result.

    >>> import fnnet, jax, numpy as np
    >>> model = fnnet.Dense(1, W_init='ones')
    >>> _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    >>> fnnet.predict(model, params, np.ones((3, 2), np.float32), batch_size=2).tolist()
    [[2.0], [2.0], [2.0]]
    """
    model, mesh, x, params, state = _prepare(model, params, x, state, mesh, "predict")
    check_data(model, x)
    n = num_examples(("x", x))
    prog = program(model, mesh=mesh)
    size = _eval_batch_size(n, batch_size, mesh)
    outputs = [prog.predict_batch(params, state, _pad_rows(_take(x, start, min(start + size, n)), size))
               for start in range(0, n, size)]
    if len(outputs) == 1:
        return _take(outputs[0], 0, n)
    return jax.tree_util.tree_map(lambda *parts: jnp.concatenate(parts)[:n], *outputs)

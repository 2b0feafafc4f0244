"""Callbacks for fit: early stopping, checkpoints, learning-rate reduction, CSV logs, your own.

The protocol. A callback is either a plain function ``fn(epoch, logs, params) -> stop?``
or an object with any of these methods (missing ones do nothing):

- ``on_train_begin(run)``: once, before the first epoch; ``run`` is the
  :class:`TrainingRun` (params, state, opt_state, history, ``lr_scale``, ...);
- ``on_epoch_end(epoch, logs, params) -> stop?``: after each epoch, ``epoch`` counted
  from 0, ``logs`` a dict of floats (``loss``, metrics, ``val_*``); a truthy return
  stops training after this epoch. ``params`` stay valid after the call (fit never
  donates the buffers it hands to callbacks), so keeping a reference is safe;
- ``after_epoch(run)``: after every callback's ``on_epoch_end`` (checkpoints are written
  here, so they hold every callback's state for the epoch);
- ``on_batch_end(step, logs)``: after each step; defining it makes fit run one jitted
  call per step, with a host sync each (slower);
- ``on_train_end(run)``: once, at the end (EarlyStopping restores the best params here);
- ``get_state()`` / ``set_state(state, run)``: what a resumed fit must restore
  (numbers, arrays, lists of arrays); stored in ModelCheckpoint's training checkpoints.

Subclassing :class:`Callback` is optional.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from pathlib import Path

import jax
import numpy as np

from ..io.checkpoint import save_checkpoint


class TrainingRun:
    """The state of one fit call, shared with callbacks.

    Attributes: ``params``, ``state``, ``opt_state`` (at the end of the last epoch),
    ``history`` (dict of lists), ``epoch`` (epochs completed), ``epochs``, ``seed``,
    ``initial_epoch`` (where this call started: > 0 when resumed), ``lr_scale`` (the
    learning-rate multiplier; callbacks may change it between epochs), ``stop``
    (set True to stop after this epoch) and ``callbacks``.
    """

    def __init__(self, *, params, state, opt_state, epochs, seed, callbacks, progress):
        self.params, self.state, self.opt_state = params, state, opt_state
        self.history: dict = {}
        self.epoch = self.initial_epoch = 0
        self.epochs, self.seed = epochs, seed
        self.lr_scale = 1.0
        self.stop = False
        self.callbacks = list(callbacks)
        self.progress = progress

    def message(self, text: str) -> None:
        """Print a line unless fit runs with ``verbose=0``."""
        self.progress.message(text)

    def checkpoint_tree(self) -> dict:
        """Everything a resumed fit needs, as one pytree for :func:`fnnet.save_checkpoint`.

        ``{'params', 'state', 'opt_state', 'epoch', 'seed', 'lr_scale', 'history',
        'callbacks'}``; the history as float64 arrays, callback states by position.
        """
        callback_states = {str(i): cb.get_state() for i, cb in enumerate(self.callbacks)
                           if callable(getattr(cb, "get_state", None))}
        return {"params": self.params, "state": self.state, "opt_state": self.opt_state,
                "epoch": np.int64(self.epoch), "seed": np.int64(self.seed),
                "lr_scale": np.float64(self.lr_scale),
                "history": {k: np.asarray(v, np.float64) for k, v in self.history.items()},
                "callbacks": callback_states}


class Callback:
    """Base class with no-op hooks (subclassing it is optional; see the module doc)."""

    def on_train_begin(self, run: TrainingRun) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict, params) -> bool:
        return False

    def after_epoch(self, run: TrainingRun) -> None:
        pass

    def on_train_end(self, run: TrainingRun) -> None:
        pass


class _FunctionCallback(Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, epoch, logs, params):
        return bool(self.fn(epoch, logs, params))


def as_callback(obj):
    """A callback object from a plain function ``fn(epoch, logs, params)`` or an object.

    >>> from fnnet.training.callbacks import as_callback
    >>> as_callback(lambda epoch, logs, params: logs['loss'] < 0.1).on_epoch_end(0, {'loss': 0.05}, None)
    True
    """
    hooks = ("on_train_begin", "on_epoch_end", "after_epoch", "on_batch_end", "on_train_end")
    if any(callable(getattr(obj, h, None)) for h in hooks):
        return obj
    if callable(obj):
        return _FunctionCallback(obj)
    raise TypeError(f"a callback must be a function (epoch, logs, params) -> stop? or an object with "
                    f"on_epoch_end; got {obj!r}")


def _mode_for(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"


def _monitored(logs: dict, monitor: str, who: str) -> float:
    if monitor not in logs:
        raise ValueError(f"{who} monitors {monitor!r}, which fit does not log; logged: {sorted(logs)} "
                         "(val_* keys need validation_data or validation_split)")
    return float(logs[monitor])


class _Monitor:
    """The best value of a logged quantity so far, and whether a new one improves on it."""

    def __init__(self, monitor, mode, min_delta):
        self.monitor, self.mode, self.min_delta = monitor, _mode_for(monitor, mode), abs(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def improves(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


def _leaves(tree):
    return None if tree is None else jax.tree_util.tree_leaves(tree)


def _rebuild(leaves, like):
    if leaves is None or like is None:
        return None
    treedef = jax.tree_util.tree_structure(like)
    return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(v) for v in leaves])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras's rule).

    ``min_delta``: the least change that counts as an improvement. ``mode``: ``'min'``,
    ``'max'`` or ``'auto'`` (max for accuracies). With ``restore_best=True`` fit returns
    the params (and model state) of the best epoch, whether or not it stopped early;
    the optimizer state and history stay those of the last epoch.

    >>> import fnnet
    >>> stop = fnnet.EarlyStopping(monitor='loss', patience=2)
    >>> [stop.on_epoch_end(e, {'loss': v}, params={}) for e, v in enumerate([3.0, 2.0, 2.5, 2.4])]
    [False, False, False, True]
    >>> stop.best_epoch
    1
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, restore_best=True, mode="auto"):
        self.monitor_name, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode, self.restore_best = mode, restore_best
        self._reset()

    def _reset(self):
        self._monitor = _Monitor(self.monitor_name, self.mode, self.min_delta)
        self.wait, self.best_epoch, self.stopped_epoch = 0, None, None
        self.best_params = self.best_state = None
        self._run = None

    def on_train_begin(self, run):
        if run.initial_epoch == 0:
            self._reset()
        self._run = run

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_epoch_end(self, epoch, logs, params):
        value = _monitored(logs, self.monitor_name, "EarlyStopping")
        if self._monitor.improves(value):
            self._monitor.best, self.wait, self.best_epoch = value, 0, epoch
            if self.restore_best:
                self.best_params = params
                self.best_state = self._run.state if self._run is not None else None
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, run):
        if self.stopped_epoch is not None and self.best_epoch is None:
            # Nothing ever counted as an improvement (NaN compares false with everything).
            run.message(f"Early stopping at epoch {self.stopped_epoch + 1}: {self.monitor_name} never improved "
                        f"(last value {run.history.get(self.monitor_name, ['?'])[-1]}); the params are the "
                        "last epoch's")
        elif self.stopped_epoch is not None:
            run.message(f"Early stopping at epoch {self.stopped_epoch + 1}: {self.monitor_name} last improved "
                        f"at epoch {self.best_epoch + 1} ({self.best:.6g})")
        if self.restore_best and self.best_params is not None:
            run.params, run.state = self.best_params, self.best_state

    def get_state(self):
        return {"best": float(self.best), "wait": self.wait,
                "best_epoch": -1 if self.best_epoch is None else self.best_epoch,
                "best_params": _leaves(self.best_params), "best_state": _leaves(self.best_state)}

    def set_state(self, state, run):
        self._monitor.best, self.wait = float(state["best"]), int(state["wait"])
        self.best_epoch = None if int(state["best_epoch"]) < 0 else int(state["best_epoch"])
        self.best_params = _rebuild(state.get("best_params"), run.params)
        self.best_state = _rebuild(state.get("best_state"), run.state)


class TrainingEndError(RuntimeError):
    """A callback's ``on_train_end`` raised; the trained result was kept safe first.

    ``run`` is the :class:`TrainingRun` (``run.params``, ``run.state``, ``run.opt_state``,
    ``run.history``), ``checkpoint`` the file holding :meth:`TrainingRun.checkpoint_tree`
    (``fnnet.load_checkpoint(path)['params']``, or ``fit(..., resume_from=path)``), and
    ``errors`` the ``(callback, exception)`` pairs. Every callback's hook ran.
    """

    def __init__(self, run, checkpoint, errors):
        self.run, self.checkpoint, self.errors = run, checkpoint, list(errors)
        failed = "; ".join(f"{type(cb).__name__}.on_train_end raised {type(e).__name__}: {e}" for cb, e in errors)
        super().__init__(f"{failed}. Training itself finished: the trained params are in error.run.params and "
                         f"saved to {checkpoint} (fnnet.load_checkpoint(path)['params'])")


def finish_training(run: TrainingRun, callbacks) -> None:
    """Call every callback's ``on_train_end``; if any raises, save the run, then raise :class:`TrainingEndError`.

    An exception at the very end of training must not lose the trained params: every
    hook still runs, the run's checkpoint tree is written to a fresh temporary file, and
    the error names that file.

    >>> import fnnet
    >>> from fnnet.training.callbacks import TrainingRun, finish_training
    >>> from fnnet.training.progress import Progress
    >>> class Broken(fnnet.Callback):
    ...     def on_train_end(self, run):
    ...         raise OSError('log disk full')
    >>> run = TrainingRun(params={'w': 1.0}, state=None, opt_state=(), epochs=1, seed=0, callbacks=[Broken()],
    ...                   progress=Progress(1, 1, 0))
    >>> try:
    ...     finish_training(run, run.callbacks)
    ... except TrainingEndError as e:
    ...     print(fnnet.load_checkpoint(e.checkpoint)['params'])
    {'w': 1.0}
    """
    errors = []
    for cb in callbacks:
        if callable(getattr(cb, "on_train_end", None)):
            try:
                cb.on_train_end(run)
            except Exception as e:  # noqa: BLE001 - reported below, after the run is safe
                errors.append((cb, e))
    if errors:
        folder = tempfile.mkdtemp(prefix="fnnet-rescued-")
        path = save_checkpoint(Path(folder) / "trained.ckpt", run.checkpoint_tree())
        raise TrainingEndError(run, path, errors) from errors[0][1]


class ModelCheckpoint(Callback):
    """Write a training checkpoint after each epoch (or only when ``monitor`` improves).

    The file (:func:`fnnet.save_checkpoint`, atomic) holds the params, model and
    optimizer state, epoch, seed, history and callback states: ``fit(...,
    resume_from=path)`` continues from it, and ``fnnet.load_checkpoint(path)['params']``
    gives the params. ``path`` may use ``{epoch}`` and log keys, as in Keras
    (``'ckpt/epoch{epoch:03d}-{val_loss:.3f}.ckpt'``; epochs counted from 1).

    ``save_best_only=True`` writes only when ``monitor`` (default ``'val_loss'``, or
    ``'loss'`` without validation data) improves on the best value so far.

    >>> import fnnet, os, tempfile
    >>> cb = fnnet.ModelCheckpoint(os.path.join(tempfile.mkdtemp(), 'best.ckpt'), save_best_only=True)
    >>> cb.monitor is None, cb.save_best_only
    (True, True)
    """

    def __init__(self, path, monitor=None, save_best_only=False, mode="auto"):
        self.path, self.monitor, self.save_best_only, self.mode = os.fspath(path), monitor, save_best_only, mode
        self._best = None
        self._pending = None
        self.saved: list = []

    def _monitor_for(self, logs):
        if self.monitor is not None:
            return self.monitor
        return "val_loss" if "val_loss" in logs else "loss"

    def on_epoch_end(self, epoch, logs, params):
        self._pending = None
        if self.save_best_only:
            name = self._monitor_for(logs)
            if self._best is None:
                self._best = _Monitor(name, self.mode, 0.0)
            value = _monitored(logs, name, "ModelCheckpoint")
            if not self._best.improves(value):
                return False
            self._best.best = value
        self._pending = self.path.format(epoch=epoch + 1, **logs)
        return False

    def after_epoch(self, run):
        if self._pending is not None:
            self.saved.append(save_checkpoint(self._pending, run.checkpoint_tree()))
            self._pending = None

    def get_state(self):
        return {"best": None if self._best is None else float(self._best.best)}

    def set_state(self, state, run):
        if state.get("best") is not None:
            self._best = _Monitor(self.monitor or "val_loss", self.mode, 0.0)
            self._best.best = float(state["best"])


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving for ``patience`` epochs.

    fit multiplies every optimizer update by ``run.lr_scale`` (1.0 at the start); this
    callback lowers it, never below ``min_scale``, then waits ``cooldown`` epochs. For
    optax optimizers whose update is proportional to the learning rate (Adam, RMSprop,
    plain SGD) that is exactly a smaller learning rate; with momentum, the scale also
    applies to the momentum already accumulated. Keras's ``min_lr`` is absolute; here
    ``min_scale`` is relative to the optimizer's own learning rate.

    >>> import fnnet
    >>> from fnnet.training.callbacks import TrainingRun
    >>> from fnnet.training.progress import Progress
    >>> run = TrainingRun(params={}, state=None, opt_state=None, epochs=5, seed=0, callbacks=[],
    ...                   progress=Progress(5, 1, verbose=0))
    >>> cb = fnnet.ReduceLROnPlateau(monitor='loss', factor=0.5, patience=1)
    >>> cb.on_train_begin(run)
    >>> for epoch, loss in enumerate([1.0, 1.0, 1.0, 1.0]):
    ...     _ = cb.on_epoch_end(epoch, {'loss': loss}, {})
    >>> run.lr_scale
    0.125
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_delta=1e-4, cooldown=0, min_scale=0.0,
                 mode="auto"):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor}")
        self.monitor, self.factor, self.patience = monitor, factor, patience
        self.min_delta, self.cooldown, self.min_scale, self.mode = min_delta, cooldown, min_scale, mode
        self._monitor = _Monitor(monitor, mode, min_delta)
        self.wait = self.cooldown_left = 0
        self._run = None

    def on_train_begin(self, run):
        if run.initial_epoch == 0:
            self._monitor = _Monitor(self.monitor, self.mode, self.min_delta)
            self.wait = self.cooldown_left = 0
        self._run = run

    def on_epoch_end(self, epoch, logs, params):
        value = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self._monitor.improves(value):
            self._monitor.best, self.wait = value, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience and self._run.lr_scale > self.min_scale:
                self._run.lr_scale = max(self._run.lr_scale * self.factor, self.min_scale)
                self._run.message(f"Epoch {epoch + 1}: ReduceLROnPlateau scales the learning rate by "
                                  f"{self._run.lr_scale:.4g}")
                self.cooldown_left, self.wait = self.cooldown, 0
        return False

    def get_state(self):
        return {"best": float(self._monitor.best), "wait": self.wait, "cooldown_left": self.cooldown_left}

    def set_state(self, state, run):
        self._monitor.best = float(state["best"])
        self.wait, self.cooldown_left = int(state["wait"]), int(state["cooldown_left"])


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` from 0, then the logs) to a CSV file.

    The file is overwritten at the start of training unless ``append=True`` or fit
    resumes from a checkpoint. Rows are flushed as they are written.

    >>> import fnnet, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'log.csv')
    >>> logger = fnnet.CSVLogger(path)
    >>> logger.on_epoch_end(0, {'loss': 0.5, 'val_loss': 0.7}, None)
    False
    >>> logger.on_train_end(None)
    >>> open(path).read().splitlines()
    ['epoch,loss,val_loss', '0,0.5,0.7']
    """

    def __init__(self, path, separator=",", append=False):
        self.path, self.separator, self.append = Path(path), separator, append
        self._file = self._writer = self._keys = None
        self._resuming = False

    def on_train_begin(self, run):
        self._resuming = run.initial_epoch > 0

    def _open(self, logs):
        appending = (self.append or self._resuming) and self.path.exists() and self.path.stat().st_size > 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a" if appending else "w", newline="")
        self._keys = list(logs)
        self._writer = csv.writer(self._file, delimiter=self.separator)
        if not appending:
            self._writer.writerow(["epoch"] + self._keys)

    def on_epoch_end(self, epoch, logs, params):
        if self._file is None:
            self._open(logs)
        self._writer.writerow([epoch] + [repr(float(logs[k])) if k in logs else "" for k in self._keys])
        self._file.flush()
        return False

    def on_train_end(self, run):
        if self._file is not None:
            self._file.close()
            self._file = None

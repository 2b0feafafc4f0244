"""The jitted pieces of training: one train step, an epoch (or a chunk of it) as a
``lax.scan`` over steps, and padded evaluation and prediction batches.

Everything here is pure; :mod:`fnnet.training.loop` drives it. A :class:`Program` holds
the compiled functions for one (model, loss, metrics, optimizer, mesh) combination and
is kept on the model (``model.memo``), so fitting the same model again (cross-validation
folds, benchmarks) does not compile again, and the compiled programs go with the model.

Exactness: each step sums per-example losses and metric values; the epoch's value is
the sum over all examples divided by their count, so the last partial batch (run as its
own step with its true size, never padded: BatchNorm must not see padding rows) weighs
exactly its share. Evaluation pads its last batch and masks the padded rows.

Non-finite guard: the first step of an epoch whose loss is not finite is recorded (its
index and loss, two scalars in the carry); the loop reads the record once per epoch, so
there is no host sync per step. The first jitted call of each epoch does not donate its
input, which therefore stays valid: on a bad step the loop replays the epoch from it up
to that step to recover the last finite params exactly, at no cost to healthy epochs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..core import as_layer
from . import sharding
from .losses import get_loss
from .metrics import get_metrics
from .optimizers import freeze, get_optimizer


class Carry(NamedTuple):
    """What the train steps thread through an epoch (donated between jitted calls).

    ``stats`` is one float32 vector, so that the loop reads an epoch's results with one
    transfer: the sum of per-example values for each history key (``Program.keys``), the
    number of examples, then the first step whose loss was not finite (-1 if none) and
    that loss.
    """

    params: object
    opt_state: object
    state: object
    stats: jax.Array
    step: jax.Array    # steps run this epoch


class EpochStats(NamedTuple):
    """An epoch's ``Carry.stats`` read on the host."""

    totals: dict
    count: float
    bad_step: int
    bad_loss: float


class EpochData(NamedTuple):
    """The training data on device, and the key every epoch's randomness derives from."""

    x: object
    y: object
    key: jax.Array


def _rows(tree, index):
    return jax.tree_util.tree_map(lambda a: a[index], tree)


def epoch_keys(key, epoch):
    """``(shuffle_key, step_key)`` of an epoch: a pure function of the seed and the epoch number."""
    return jax.random.split(jax.random.fold_in(key, epoch))


class Program:
    """The compiled functions of one training configuration (see :func:`program`)."""

    def __init__(self, model, loss, metrics, optimizer, frozen, mesh):
        self.model = as_layer(model)
        self.loss = get_loss(loss)
        self.metrics = get_metrics(metrics, self.loss)
        tx = get_optimizer(optimizer)
        if frozen:
            tx = freeze(tx, None, frozen)
        self.optimizer = tx
        self.mesh = mesh
        self.keys = ("loss",) + tuple(m.name for m in self.metrics)
        self.init_opt_state = jax.jit(self._init_opt_state)
        self.permutation = jax.jit(self._permutation, static_argnames=("n", "shuffle"))
        statics = ("batch_size", "num_steps", "remainder", "start", "shuffle")
        # Later calls of an epoch donate the carry; the first keeps its input (see above).
        self.run_steps = jax.jit(self._run_steps, donate_argnums=(0,), static_argnames=statics)
        self.run_steps_keep = jax.jit(self._run_steps, static_argnames=statics)
        self.evaluate_all = jax.jit(self._evaluate_all, static_argnames=("batch_size",))
        self.evaluate_batch = jax.jit(self._evaluate_batch)
        self.predict_batch = jax.jit(self._predict_batch)

    # ------------------------------------------------------------------ training

    def _init_opt_state(self, params):
        return sharding.constrain_tree(self.optimizer.init(params), self.mesh)

    def start(self, params, opt_state, state) -> Carry:
        """A carry around the given trees, on the device(s), with cleared sums.

        No copies: the first jitted call of an epoch never donates its input, so the
        caller's arrays are never consumed. The sums start as numpy scalars shaped as
        run_steps returns them (its second call must not compile again); under a mesh
        everything is placed as run_steps returns it, for the same reason.
        """
        carry = Carry(params, opt_state, state, self._cleared_stats(np), np.int32(0))
        return sharding.put_params(carry, self.mesh)

    def _cleared_stats(self, xp):
        return xp.asarray([0.0] * (len(self.keys) + 1) + [-1.0, 0.0], dtype=xp.float32)

    def reset(self, carry: Carry) -> Carry:
        """The carry at the start of an epoch: sums, counters and the guard record cleared."""
        return carry._replace(stats=self._cleared_stats(jnp), step=jnp.zeros((), jnp.int32))

    def read_stats(self, stats) -> EpochStats:
        """Host-side view of ``Carry.stats`` (a numpy array)."""
        k = len(self.keys)
        return EpochStats(dict(zip(self.keys, stats[:k].tolist())), float(stats[k]), int(stats[k + 1]),
                          float(stats[k + 2]))

    def _permutation(self, key, epoch, *, n, shuffle):
        shuffle_key, _ = epoch_keys(key, epoch)
        return jax.random.permutation(shuffle_key, n) if shuffle else jnp.arange(n)

    def train_step(self, carry: Carry, xb, yb, rng, lr_scale) -> Carry:
        """One optimizer step on one batch, with the sums for the epoch's history."""
        xb, yb = sharding.constrain_batch(xb, self.mesh), sharding.constrain_batch(yb, self.mesh)

        def objective(params):
            y_pred, new_state = self.model.apply_with_state(params, carry.state, xb, train=True, rng=rng)
            per_example = self.loss.per_example(yb, y_pred)
            return jnp.mean(per_example), (y_pred, new_state, per_example)

        (value, (y_pred, new_state, per_example)), grads = jax.value_and_grad(objective, has_aux=True)(carry.params)
        updates, opt_state = self.optimizer.update(grads, carry.opt_state, carry.params)
        # The learning-rate multiplier of ReduceLROnPlateau; scaling the final updates is
        # scaling the learning rate for every optax optimizer without momentum.
        updates = jax.tree_util.tree_map(lambda u: u * lr_scale.astype(u.dtype), updates)
        params = sharding.constrain_tree(optax.apply_updates(carry.params, updates), self.mesh)
        opt_state = sharding.constrain_tree(opt_state, self.mesh)
        y_pred = jax.lax.stop_gradient(y_pred)
        rows = jax.tree_util.tree_leaves(yb)[0].shape[0]
        sums = [jnp.sum(per_example)] + [jnp.sum(m.per_example(yb, y_pred)) for m in self.metrics]
        sums = jnp.stack([v.astype(jnp.float32) for v in sums] + [jnp.float32(rows)])
        # Only scalars here: selecting old params with jnp.where after a bad step made XLA
        # copy params and optimizer state every step (~30% of a step). The loop replays the
        # epoch up to the bad step instead, from the epoch's first, undonated input.
        k = len(self.keys) + 1
        first_bad = (carry.stats[k] < 0) & ~jnp.isfinite(value)
        record = jnp.where(first_bad, jnp.stack([carry.step.astype(jnp.float32), value.astype(jnp.float32)]),
                           carry.stats[k:])
        return Carry(params, opt_state, new_state, jnp.concatenate([carry.stats[:k] + sums, record]), carry.step + 1)

    def _run_steps(self, carry: Carry, data: EpochData, perm, epoch, lr_scale, *, batch_size, num_steps,
                   remainder, start, shuffle=True):
        """``num_steps`` full batches from ``carry.step`` on, as one ``lax.scan``; then, if
        ``remainder``, the epoch's last ``remainder`` rows as one more step.

        ``start``: the first call of an epoch (clears the epoch's sums). ``perm``: the
        epoch's row order, or None to draw it here (the whole epoch in one call).
        """
        if start:
            carry = self.reset(carry)
        if perm is None:
            n = jax.tree_util.tree_leaves(data.y)[0].shape[0]
            perm = self._permutation(data.key, epoch, n=n, shuffle=shuffle)
        _, step_key = epoch_keys(data.key, epoch)

        def step(c, _):
            index = jax.lax.dynamic_slice_in_dim(perm, c.step * batch_size, batch_size)
            rng = jax.random.fold_in(step_key, c.step)
            return self.train_step(c, _rows(data.x, index), _rows(data.y, index), rng, lr_scale), None

        if num_steps == 1:
            carry = step(carry, None)[0]
        elif num_steps > 1:
            carry = jax.lax.scan(step, carry, None, length=num_steps)[0]
        if remainder:
            index = perm[perm.shape[0] - remainder:]
            rng = jax.random.fold_in(step_key, carry.step)
            carry = self.train_step(carry, _rows(data.x, index), _rows(data.y, index), rng, lr_scale)
        return sharding.constrain_tree(carry, self.mesh)

    # --------------------------------------------------------------- evaluation

    def _batch_sums(self, params, state, xb, yb, weight):
        xb, yb = sharding.constrain_batch(xb, self.mesh), sharding.constrain_batch(yb, self.mesh)
        y_pred, _ = self.model.apply_with_state(params, state, xb, train=False)
        keep = weight > 0
        values = [self.loss.per_example(yb, y_pred)] + [m.per_example(yb, y_pred) for m in self.metrics]
        sums = [jnp.sum(jnp.where(keep, v, 0.0)).astype(jnp.float32) for v in values]
        return jnp.stack(sums + [jnp.sum(weight).astype(jnp.float32)])

    def _evaluate_all(self, params, state, x, y, weight, *, batch_size):
        """Sums over a padded data set on device (rows a multiple of ``batch_size``), one scan:
        a vector of the per-example sums for each history key, then the example count."""
        batches = weight.shape[0] // batch_size

        def split(a):
            return a.reshape((batches, batch_size) + a.shape[1:])

        def step(acc, batch):
            return acc + self._batch_sums(params, state, *batch), None

        xs = (jax.tree_util.tree_map(split, x), jax.tree_util.tree_map(split, y), split(weight))
        return jax.lax.scan(step, jnp.zeros(len(self.keys) + 1, jnp.float32), xs)[0]

    def _evaluate_batch(self, acc, params, state, xb, yb, weight):
        return acc + self._batch_sums(params, state, xb, yb, weight)

    def read_sums(self, sums):
        """Host-side ``(totals dict, count)`` of an evaluation's sums vector (numpy)."""
        return dict(zip(self.keys, sums[:-1].tolist())), float(sums[-1])

    def _predict_batch(self, params, state, xb):
        xb = sharding.constrain_batch(xb, self.mesh)
        y_pred, _ = self.model.apply_with_state(params, state, xb, train=False)
        return y_pred


def _hashable(value):
    # Lists of metric names become tuples; NamedTuples (a Metric) stay what they are.
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return tuple(_hashable(v) for v in value)
    return value


def program(model, loss="mse", metrics=(), optimizer="sgd", frozen=(), mesh=None) -> Program:
    """The :class:`Program` for a training configuration, kept on the model (:meth:`fnnet.Layer.memo`).

    Configurations given by names, or by the same callables and optax objects as before,
    reuse the compiled functions of an earlier call; they go when the model goes.

    >>> import fnnet
    >>> model = fnnet.Dense(1)
    >>> p = program(model, 'mse', ['mae'], 'adam')
    >>> p is program(model, 'mse', ['mae'], 'adam'), p.keys
    (True, ('loss', 'mae'))
    """
    model = as_layer(model)
    args = (loss, _hashable(metrics), optimizer, _hashable(frozen), mesh)
    try:
        hash(args)
    except TypeError:  # something unhashable: build without keeping it
        return Program(model, *args)
    return model.memo(("fnnet.training.program",) + args, lambda: Program(model, *args))

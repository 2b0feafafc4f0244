"""The jitted pieces of training: one train step, an epoch (or a chunk of it) as a
``lax.scan`` over steps, and padded evaluation and prediction batches.

Everything here is pure; :mod:`fnnet.training.loop` drives it. A :class:`Program` holds
the compiled functions for one (model, loss, metrics, optimizer, mesh) combination and
is cached, so fitting the same model again (cross-validation folds, benchmarks) does
not compile again.

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

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..core import as_layer
from ..losses import get_loss
from ..metrics import get_metrics
from ..optimizers import freeze, get_optimizer
from . import sharding


class Carry(NamedTuple):
    """What the train steps thread through an epoch (donated between jitted calls)."""

    params: object
    opt_state: object
    state: object
    totals: dict       # history key -> sum of per-example values over the applied steps
    count: jax.Array   # examples in the applied steps
    step: jax.Array    # steps run this epoch
    bad_step: jax.Array  # first step whose loss or params were not finite; -1 if none
    bad_loss: jax.Array  # the loss of that step


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
        carry = Carry(params, opt_state, state, {k: np.float32(0) for k in self.keys}, np.float32(0),
                      np.int32(0), np.int32(-1), np.float32(0))
        return sharding.put_params(carry, self.mesh)

    @staticmethod
    def reset(carry: Carry) -> Carry:
        """The carry at the start of an epoch: totals, counters and the guard record cleared."""
        zero = jnp.zeros((), jnp.float32)
        return carry._replace(totals={k: zero for k in carry.totals}, count=zero,
                              step=jnp.zeros((), jnp.int32), bad_step=jnp.full((), -1, jnp.int32), bad_loss=zero)

    def _permutation(self, key, epoch, *, n, shuffle):
        shuffle_key, _ = epoch_keys(key, epoch)
        return jax.random.permutation(shuffle_key, n) if shuffle else jnp.arange(n)

    def train_step(self, carry: Carry, xb, yb, rng, lr_scale) -> Carry:
        """One optimizer step on one batch, with the sums for the epoch's history."""
        xb, yb = sharding.constrain_batch(xb, self.mesh), sharding.constrain_batch(yb, self.mesh)

        def objective(params):
            y_pred, new_state = self.model.apply(params, xb, state=carry.state, train=True, rng=rng)
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
        sums = {"loss": jnp.sum(per_example)}
        sums.update({m.name: jnp.sum(m.per_example(yb, y_pred)) for m in self.metrics})
        rows = jnp.float32(jax.tree_util.tree_leaves(yb)[0].shape[0])
        totals = {k: carry.totals[k] + sums[k] for k in self.keys}
        # Only scalars here: selecting old params with jnp.where after a bad step made XLA
        # copy params and optimizer state every step (~30% of a step). The loop replays the
        # epoch up to the bad step instead, from the epoch's first, undonated input.
        first_bad = (carry.bad_step < 0) & ~jnp.isfinite(value)
        return Carry(params, opt_state, new_state, totals, carry.count + rows, carry.step + 1,
                     jnp.where(first_bad, carry.step, carry.bad_step),
                     jnp.where(first_bad, value.astype(jnp.float32), carry.bad_loss))

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
        y_pred, _ = self.model.apply(params, xb, state=state, train=False)
        keep = weight > 0
        sums = {"loss": jnp.sum(jnp.where(keep, self.loss.per_example(yb, y_pred), 0.0))}
        sums.update({m.name: jnp.sum(jnp.where(keep, m.per_example(yb, y_pred), 0.0)) for m in self.metrics})
        return sums, jnp.sum(weight)

    def _evaluate_all(self, params, state, x, y, weight, *, batch_size):
        """Sums over a padded data set on device (rows a multiple of ``batch_size``), one scan."""
        batches = weight.shape[0] // batch_size

        def split(a):
            return a.reshape((batches, batch_size) + a.shape[1:])

        def step(acc, batch):
            sums, count = self._batch_sums(params, state, *batch)
            return (jax.tree_util.tree_map(jnp.add, acc[0], sums), acc[1] + count), None

        zero = jnp.zeros((), jnp.float32)
        init = ({k: zero for k in self.keys}, zero)
        xs = (jax.tree_util.tree_map(split, x), jax.tree_util.tree_map(split, y), split(weight))
        return jax.lax.scan(step, init, xs)[0]

    def _evaluate_batch(self, acc, params, state, xb, yb, weight):
        sums, count = self._batch_sums(params, state, xb, yb, weight)
        return jax.tree_util.tree_map(jnp.add, acc[0], sums), acc[1] + count

    def _predict_batch(self, params, state, xb):
        xb = sharding.constrain_batch(xb, self.mesh)
        y_pred, _ = self.model.apply(params, xb, state=state, train=False)
        return y_pred


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


@functools.lru_cache(maxsize=32)
def _cached_program(model, loss, metrics, optimizer, frozen, mesh):
    return Program(model, loss, metrics, optimizer, frozen, mesh)


def program(model, loss="mse", metrics=(), optimizer="sgd", frozen=(), mesh=None) -> Program:
    """The (cached) :class:`Program` for a training configuration.

    Configurations given by names, or by the same callables and optax objects as before,
    reuse the compiled functions of an earlier call.

    >>> import fnnet
    >>> model = fnnet.Dense(1)
    >>> p = program(model, 'mse', ['mae'], 'adam')
    >>> p is program(model, 'mse', ['mae'], 'adam'), p.keys
    (True, ('loss', 'mae'))
    """
    args = (model, loss, _hashable(metrics), optimizer, _hashable(frozen), mesh)
    try:
        return _cached_program(*args)
    except TypeError:  # something unhashable: build without the cache
        return Program(*args)

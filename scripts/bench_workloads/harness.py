"""What the JAX contenders share: the Adam step, the epoch as a Python loop or as one
``lax.scan``, the single train step and the jitted forward pass; and the peers' imports
(PyTorch on XLA's thread count, Keras on its JAX backend), which raise
:class:`benchlib.Skipped` when a peer is not installed."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import benchlib
from benchlib import Skipped, require

LEARNING_RATE = 1e-3
# A train step costs about 3x the forward pass's matmul FLOPs: the forward matmuls, and
# the two of the backward pass (gradients with respect to inputs and to weights).
TRAIN_FLOPS_PER_FORWARD = 3


def adam():
    """The optimizer of every JAX contender: ``optax.adam(1e-3)``."""
    return optax.adam(LEARNING_RATE)


def mse(pred, target):
    """Mean squared error over the batch.

    >>> float(mse(jnp.array([1.0, 3.0]), jnp.array([1.0, 1.0])))
    2.0
    """
    return jnp.mean((pred - target) ** 2)


def cross_entropy(logits, labels):
    """Softmax cross-entropy against integer labels, averaged over the batch.

    >>> round(float(cross_entropy(jnp.zeros((3, 2)), jnp.array([0, 1, 0]))), 4)
    0.6931
    """
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def train_step(loss_fn, tx):
    """``(params, opt_state), xb, yb -> ((params, opt_state), loss)``: one Adam step."""

    def step(carry, xb, yb):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


def jitted_loop_epoch(loss_fn, params, x, y, batch_size, *, donate):
    """The idiomatic epoch: shuffle on the host, then a Python loop over a jitted step,
    numpy batches passed in (the last partial batch is a second compiled shape)."""
    tx = adam()
    step = jax.jit(train_step(loss_fn, tx), donate_argnums=(0,) if donate else ())
    carry = [(params, tx.init(params))]
    rng = np.random.default_rng(0)

    def run():
        state, order = carry[0], rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            state, loss = step(state, x[rows], y[rows])
        carry[0] = state
        return state, loss

    return run


def scanned_epoch(loss_fn, params, x, y, batch_size):
    """The JAX best form: one jitted call per epoch (shuffle on device, ``lax.scan`` over
    the full batches, then the partial batch), everything donated."""
    tx = adam()
    step = train_step(loss_fn, tx)
    n = len(x)
    full, rest = divmod(n, batch_size)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def epoch(carry, data_x, data_y, key):
        order = jax.random.permutation(key, n)

        def body(state, rows):
            return step(state, data_x[rows], data_y[rows])

        carry, losses = jax.lax.scan(body, carry, order[:full * batch_size].reshape(full, batch_size))
        if rest:
            carry, _ = step(carry, data_x[order[full * batch_size:]], data_y[order[full * batch_size:]])
        return carry, losses[-1] if full else jnp.zeros(())

    data_x, data_y = jnp.asarray(x), jnp.asarray(y)
    carry = [(params, tx.init(params))]
    key, count = jax.random.PRNGKey(0), [0]

    def run():
        count[0] += 1
        carry[0], loss = epoch(carry[0], data_x, data_y, jax.random.fold_in(key, count[0]))
        return carry[0], loss

    return run


def jitted_train_step(loss_fn, params, xb, yb):
    """One Adam step per call on a fixed batch, jitted, params and optimizer state donated."""
    tx = adam()
    step = jax.jit(train_step(loss_fn, tx), donate_argnums=(0,))
    carry = [(params, tx.init(params))]
    xb, yb = jnp.asarray(xb), jnp.asarray(yb)

    def run():
        carry[0], loss = step(carry[0], xb, yb)
        return carry[0], loss

    return run


def nnx_train_step(nnx, loss_of_outputs):
    """Flax NNX's idiomatic step: ``nnx.jit`` with the optimizer updating the model in place."""

    @nnx.jit
    def step(model, optimizer, xb, yb):
        loss, grads = nnx.value_and_grad(lambda m: loss_of_outputs(m(xb), yb))(model)
        optimizer.update(model, grads)
        return loss

    return step


def equinox_train_step(eqx, tx, loss_of_outputs):
    """Equinox's idiomatic step: ``filter_jit`` over a model applied per example with ``jax.vmap``."""

    @eqx.filter_jit
    def step(model, opt_state, xb, yb):
        loss, grads = eqx.filter_value_and_grad(lambda m: loss_of_outputs(jax.vmap(m)(xb), yb))(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    return step


def jitted_forward(forward, params, x):
    """A jitted ``forward(params, x)`` on a fixed batch."""
    fn, x = jax.jit(forward), jnp.asarray(x)
    return lambda: fn(params, x)


def import_torch():
    """``torch`` set to XLA's thread count, or :class:`benchlib.Skipped`."""
    torch = require("torch")
    # The same number of threads as XLA's CPU backend uses.
    torch.set_num_threads(benchlib.cpu_threads())
    return torch


def import_keras():
    """``keras`` on its JAX backend, or :class:`benchlib.Skipped`."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = require("keras")
    if keras.backend.backend() != "jax":
        raise Skipped(f"keras runs on the {keras.backend.backend()} backend; set KERAS_BACKEND=jax")
    return keras


def import_fnnet():
    """``fnnet`` (from the repo beside ``scripts/``), or :class:`benchlib.Skipped`."""
    return require("fnnet")

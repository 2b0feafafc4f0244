"""fnnet side by side with Flax (linen, NNX), Equinox, Haiku, stax, Keras 3, PyTorch and
scikit-learn: the tutorial's three workloads and the machine's matmul peak, in one run.

    python scripts/bench.py --quick                      # every workload, 3 rounds (< 5 min)
    python scripts/bench.py --json bench.json            # full mode, 11 rounds
    python scripts/bench.py --quick --rounds 1 --workloads w1_epoch_b32
    python scripts/bench.py --list                       # workloads and contenders, nothing run

Workloads (names are the JSON keys):

- ``matmul_2048``, ``matmul_4096``: float32 n^3 matmul with ``jnp.dot``, numpy and
  ``torch.mm``; the best GFLOP/s seen is "the peak" for the fractions below.
- ``w1_epoch_b32``, ``w1_epoch_b1024``: one epoch of the tutorial's MLP (78 -> 400 relu ->
  200 relu -> 1, MSE, Adam, float32, 1,460 rows, shuffled every epoch, the last partial
  batch included) at batch 32 and 1024: each library's idiomatic form (a Python loop over
  a jitted step; Keras ``fit``; PyTorch eager), the JAX libraries' best form (the whole
  epoch as one jitted ``lax.scan``), and ``fnnet.fit(..., epochs=1, verbose=0)`` itself.
- ``w2_train_t200``, ``w2_train_t80``: one Adam train step of the sentiment LSTM
  (Embedding(20000, 128) -> LSTM(128) -> Dense(2), softmax cross-entropy) at batch 64;
  ``w2_infer_b64``, ``w2_infer_b512``: its forward pass at length 200 (sequences/s).
- ``w3_knn_100k``: k=5 nearest neighbours of 2,000 queries among 100,000 x 64 points.

FLOPs are counted analytically (matmuls only): a dense layer is 2*in*out per example,
an LSTM step 2*(in + units)*4*units per sequence, a train step 3x its forward pass
(forward, and the two matmuls of its backward pass), KNN 2*queries*points*features.

Every contender is built and warmed up first (the first call is reported apart as
``first call``), then timed in interleaved rounds; the tables give medians and ratios
(see ``scripts/benchlib.py``). Absolute times on a shared machine mean little; ratios
measured in one run are the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

SCRIPTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS_DIR.parent
for _path in (str(SCRIPTS_DIR), str(REPO_ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import benchlib  # noqa: E402
from benchlib import Contender, Skipped, require  # noqa: E402

QUICK_ROUNDS = 3
FULL_ROUNDS = 11
LEARNING_RATE = 1e-3
TRAIN_FLOPS_PER_FORWARD = 3
PEER_MODULES = ("jax", "jaxlib", "optax", "numpy", "flax", "equinox", "haiku", "keras", "torch", "sklearn")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size a workload uses; :data:`TINY` shrinks them all to check the code paths."""

    mlp_rows: int = 1460
    mlp_features: int = 78
    mlp_hidden: tuple = (400, 200)
    mlp_batches: tuple = (32, 1024)  # for w1_epoch_b32, w1_epoch_b1024
    vocab: int = 20000
    embed: int = 128
    units: int = 128
    classes: int = 2
    train_batch: int = 64
    seq_lengths: tuple = (200, 80)  # for w2_train_t200, w2_train_t80
    infer_length: int = 200
    infer_batches: tuple = (64, 512)  # for w2_infer_b64, w2_infer_b512
    knn_points: int = 100_000
    knn_features: int = 64
    knn_queries: int = 2000
    knn_k: int = 5
    knn_classes: int = 10
    knn_chunk: int = 100  # queries per chunk of the plain JAX version
    matmul_sizes: tuple = (2048, 4096)  # for matmul_2048, matmul_4096


FULL = Sizes()
TINY = Sizes(mlp_rows=70, mlp_features=6, mlp_hidden=(8, 4), mlp_batches=(16, 48), vocab=30, embed=4, units=4,
             train_batch=4, seq_lengths=(5, 3), infer_length=5, infer_batches=(4, 8), knn_points=300,
             knn_features=4, knn_queries=20, knn_k=3, knn_classes=3, knn_chunk=10, matmul_sizes=(32, 64))


# ------------------------------------------------------------------- FLOP counts


def mlp_train_flops(rows: int, features: int, hidden: tuple) -> float:
    """FLOPs of training an MLP ``features -> *hidden -> 1`` on ``rows`` examples:
    ``3 * 2 * rows * sum(in * out)`` over its dense layers.

    >>> mlp_train_flops(1460, 78, (400, 200)) / 1e9  # the tutorial's epoch
    0.975864
    """
    widths = (features, *hidden, 1)
    forward = 2 * rows * sum(a * b for a, b in zip(widths, widths[1:]))
    return float(TRAIN_FLOPS_PER_FORWARD * forward)


def lstm_forward_flops(batch: int, length: int, embed: int, units: int, classes: int) -> float:
    """FLOPs of the LSTM classifier's forward pass: ``batch * (length * 2*(embed + units)*4*units
    + 2*units*classes)`` (the embedding lookup and the gates' element-wise maths are not counted).

    >>> round(3 * lstm_forward_flops(64, 200, 128, 128, 2) / 1e9, 2)  # a train step at T=200
    10.07
    """
    return float(batch * (length * 2 * (embed + units) * 4 * units + 2 * units * classes))


def knn_flops(queries: int, points: int, features: int) -> float:
    """FLOPs of the distance matmul: ``2 * queries * points * features``.

    >>> knn_flops(2000, 100_000, 64) / 1e9
    25.6
    """
    return float(2 * queries * points * features)


# -------------------------------------------------------------- shared harnesses


def _adam():
    return optax.adam(LEARNING_RATE)


def _mse(pred, target):
    return jnp.mean((pred - target) ** 2)


def _cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _train_step(loss_fn, tx):
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
    tx = _adam()
    step = jax.jit(_train_step(loss_fn, tx), donate_argnums=(0,) if donate else ())
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
    tx = _adam()
    step = _train_step(loss_fn, tx)
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
    tx = _adam()
    step = jax.jit(_train_step(loss_fn, tx), donate_argnums=(0,))
    carry = [(params, tx.init(params))]
    xb, yb = jnp.asarray(xb), jnp.asarray(yb)

    def run():
        carry[0], loss = step(carry[0], xb, yb)
        return carry[0], loss

    return run


def jitted_forward(forward, params, x):
    """A jitted ``forward(params, x)`` on a fixed batch."""
    fn, x = jax.jit(forward), jnp.asarray(x)
    return lambda: fn(params, x)


def _torch():
    torch = require("torch")
    # The same number of threads as XLA's CPU backend uses.
    torch.set_num_threads(benchlib.cpu_threads())
    return torch


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = require("keras")
    if keras.backend.backend() != "jax":
        raise Skipped(f"keras runs on the {keras.backend.backend()} backend; set KERAS_BACKEND=jax")
    return keras


def _fnnet():
    return require("fnnet")


# ------------------------------------------------------------------------ matmul


def matmul_contenders(s: Sizes, n: int) -> list[Contender]:
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))

    def build_jax():
        da, db = jnp.asarray(a), jnp.asarray(b)
        return lambda: jnp.dot(da, db)

    def build_numpy():
        return lambda: a @ b

    def build_torch():
        torch = _torch()
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.mm(ta, tb)

    return [Contender("jnp.dot", build_jax, flops=flops, note=f"on {jax.default_backend()}"),
            Contender("numpy", build_numpy, flops=flops, note="numpy's BLAS"),
            Contender("torch.mm", build_torch, flops=flops)]


# ----------------------------------------------------------------- W1: the MLP


def mlp_data(s: Sizes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((s.mlp_rows, s.mlp_features), dtype=np.float32)
    y = (x[:, :1] - 0.5 * x[:, 1:2] + 0.1 * rng.standard_normal((s.mlp_rows, 1))).astype(np.float32)
    return x, y


def _stax_mlp(s: Sizes):
    from jax.example_libraries import stax
    layers = [layer for width in s.mlp_hidden for layer in (stax.Dense(width), stax.Relu)]
    init, apply = stax.serial(*layers, stax.Dense(1))
    _, params = init(jax.random.PRNGKey(0), (-1, s.mlp_features))
    return params, lambda p, xb, yb: _mse(apply(p, xb), yb)


def _linen_mlp(s: Sizes):
    nn = require("flax.linen")

    class MLP(nn.Module):
        hidden: tuple

        @nn.compact
        def __call__(self, x):
            for width in self.hidden:
                x = nn.relu(nn.Dense(width)(x))
            return nn.Dense(1)(x)

    model = MLP(s.mlp_hidden)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, s.mlp_features)))
    return params, lambda p, xb, yb: _mse(model.apply(p, xb), yb)


def _nnx_mlp(s: Sizes):
    nnx = require("flax.nnx")
    rngs = nnx.Rngs(0)
    widths = (s.mlp_features, *s.mlp_hidden)
    layers = [part for a, b in zip(widths, widths[1:]) for part in (nnx.Linear(a, b, rngs=rngs), jax.nn.relu)]
    return nnx, nnx.Sequential(*layers, nnx.Linear(widths[-1], 1, rngs=rngs))


def _nnx_functional(nnx, model):
    graphdef, params = nnx.split(model)
    return params, lambda p, xb: nnx.merge(graphdef, p)(xb)


def _haiku_mlp(s: Sizes):
    hk = require("haiku")
    net = hk.without_apply_rng(hk.transform(lambda x: hk.nets.MLP([*s.mlp_hidden, 1])(x)))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, s.mlp_features)))
    return params, lambda p, xb, yb: _mse(net.apply(p, xb), yb)


def _equinox_mlp(s: Sizes):
    eqx = require("equinox")
    widths = (s.mlp_features, *s.mlp_hidden, 1)
    keys = jax.random.split(jax.random.PRNGKey(0), len(widths) - 1)
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(eqx.nn.Linear(a, b, key=keys[i]))
        if i < len(widths) - 2:
            layers.append(eqx.nn.Lambda(jax.nn.relu))
    return eqx, eqx.nn.Sequential(layers)


def w1_contenders(s: Sizes, batch_size: int) -> list[Contender]:
    x, y = mlp_data(s)
    flops = mlp_train_flops(s.mlp_rows, s.mlp_features, s.mlp_hidden)
    loop, scan = jitted_loop_epoch, scanned_epoch

    def build_fnnet(epochs):
        def build():
            fnnet = _fnnet()
            layers = [layer for width in s.mlp_hidden for layer in (fnnet.Dense(width), fnnet.Relu)]
            model = fnnet.serial(*layers, fnnet.Dense(1))
            _, params = model.init(jax.random.PRNGKey(0), (-1, s.mlp_features))
            carry = [params]

            def run():
                result = fnnet.fit(model, carry[0], x, y, loss="mse", optimizer="adam", epochs=epochs,
                                   batch_size=batch_size, verbose=0)
                carry[0] = result.params
                return result.params

            return run
        return build

    def build_stax(form, donate=False):
        params, loss = _stax_mlp(s)
        return scan(loss, params, x, y, batch_size) if form == "scan" else loop(loss, params, x, y, batch_size,
                                                                                donate=donate)

    def build_linen(form):
        params, loss = _linen_mlp(s)
        return scan(loss, params, x, y, batch_size) if form == "scan" else loop(loss, params, x, y, batch_size,
                                                                                donate=False)

    def build_haiku(form):
        params, loss = _haiku_mlp(s)
        return scan(loss, params, x, y, batch_size) if form == "scan" else loop(loss, params, x, y, batch_size,
                                                                                donate=False)

    def build_nnx_loop():
        nnx, model = _nnx_mlp(s)
        optimizer = nnx.Optimizer(model, _adam(), wrt=nnx.Param)

        @nnx.jit
        def step(model, optimizer, xb, yb):
            loss, grads = nnx.value_and_grad(lambda m: _mse(m(xb), yb))(model)
            optimizer.update(model, grads)
            return loss

        rng = np.random.default_rng(0)

        def run():
            order = rng.permutation(len(x))
            for start in range(0, len(x), batch_size):
                rows = order[start:start + batch_size]
                loss = step(model, optimizer, x[rows], y[rows])
            return loss  # one executable per step: its loss is ready when its updates are

        return run

    def build_nnx_scan():
        nnx, model = _nnx_mlp(s)
        params, forward = _nnx_functional(nnx, model)
        return scan(lambda p, xb, yb: _mse(forward(p, xb), yb), params, x, y, batch_size)

    def build_equinox_loop():
        eqx, model = _equinox_mlp(s)
        tx = _adam()

        @eqx.filter_jit
        def step(model, opt_state, xb, yb):
            loss, grads = eqx.filter_value_and_grad(lambda m: _mse(jax.vmap(m)(xb), yb))(model)
            updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
            return eqx.apply_updates(model, updates), opt_state, loss

        carry = [(model, tx.init(eqx.filter(model, eqx.is_array)))]
        rng = np.random.default_rng(0)

        def run():
            (model_, opt_state), order = carry[0], rng.permutation(len(x))
            for start in range(0, len(x), batch_size):
                rows = order[start:start + batch_size]
                model_, opt_state, loss = step(model_, opt_state, x[rows], y[rows])
            carry[0] = (model_, opt_state)
            return carry[0], loss

        return run

    def build_equinox_scan():
        eqx, model = _equinox_mlp(s)
        params, static = eqx.partition(model, eqx.is_array)
        loss = lambda p, xb, yb: _mse(jax.vmap(eqx.combine(p, static))(xb), yb)  # noqa: E731
        return scan(loss, params, x, y, batch_size)

    def build_keras():
        keras = _keras()
        keras.utils.set_random_seed(0)
        layers = [keras.layers.Dense(width, activation="relu") for width in s.mlp_hidden]
        model = keras.Sequential([keras.Input((s.mlp_features,)), *layers, keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")

        def run():
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)
            return [v.value for v in model.trainable_variables]

        return run

    def build_torch():
        torch = _torch()
        torch.manual_seed(0)
        widths = (s.mlp_features, *s.mlp_hidden)
        layers = [m for a, b in zip(widths, widths[1:]) for m in (torch.nn.Linear(a, b), torch.nn.ReLU())]
        model = torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def run():
            order = torch.randperm(len(x))
            for start in range(0, len(x), batch_size):
                rows = order[start:start + batch_size]
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(tx[rows]), ty[rows])
                loss.backward()
                optimizer.step()
            return loss.detach()

        return run

    p = functools.partial
    return [
        Contender("fnnet", build_fnnet(1), flops=flops, note="fnnet.fit(epochs=1, verbose=0), one call"),
        Contender("fnnet.fit x5", build_fnnet(5), units_per_call=5, flops=flops,
                  note="fnnet.fit(epochs=5), time per epoch"),
        Contender("stax loop donated", p(build_stax, "loop", donate=True), flops=flops,
                  note="jit step, params+opt state donated"),
        Contender("stax loop", p(build_stax, "loop"), flops=flops, note="jit step"),
        Contender("stax scan", p(build_stax, "scan"), flops=flops, note="epoch = one jitted lax.scan"),
        Contender("linen loop", p(build_linen, "loop"), flops=flops, note="jax.jit step"),
        Contender("linen scan", p(build_linen, "scan"), flops=flops, note="epoch = one jitted lax.scan"),
        Contender("nnx loop", build_nnx_loop, flops=flops, note="nnx.jit step, nnx.Optimizer"),
        Contender("nnx scan", build_nnx_scan, flops=flops, note="split/merge, epoch = one jitted lax.scan"),
        Contender("haiku loop", p(build_haiku, "loop"), flops=flops, note="jax.jit step"),
        Contender("haiku scan", p(build_haiku, "scan"), flops=flops, note="epoch = one jitted lax.scan"),
        Contender("equinox loop", build_equinox_loop, flops=flops, note="eqx.filter_jit step"),
        Contender("equinox scan", build_equinox_scan, flops=flops, note="partition, epoch = one jitted lax.scan"),
        Contender("keras fit", build_keras, flops=flops, note="model.fit(epochs=1, verbose=0)"),
        Contender("torch eager", build_torch, flops=flops, note="randperm + slicing, default Adam"),
    ]


# ------------------------------------------------------------- W2: the LSTM


def lstm_data(s: Sizes, batch: int, length: int):
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, s.vocab, size=(batch, length), dtype=np.int32)  # no padding: no masks anywhere
    labels = rng.integers(0, s.classes, size=(batch,), dtype=np.int32)
    return tokens, labels


def _lstm_gates(z, c):
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def _plain_lstm(s: Sizes):
    """Plain JAX: one ``[x_t, h] @ W`` matmul per step inside ``lax.scan``."""
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    params = {"embeddings": jax.random.uniform(k[0], (s.vocab, s.embed), minval=-0.05, maxval=0.05),
              "w": jax.nn.initializers.glorot_uniform()(k[1], (s.embed + s.units, 4 * s.units)),
              "b": jnp.zeros(4 * s.units),
              "head_w": jax.nn.initializers.glorot_uniform()(k[2], (s.units, s.classes)),
              "head_b": jnp.zeros(s.classes)}

    def forward(p, tokens):
        xs = jnp.swapaxes(p["embeddings"][tokens], 0, 1)
        zeros = jnp.zeros((tokens.shape[0], s.units), xs.dtype)

        def step(carry, x_t):
            h, c = carry
            h, c = _lstm_gates(jnp.concatenate([x_t, h], axis=-1) @ p["w"] + p["b"], c)
            return (h, c), None

        (h, _), _ = jax.lax.scan(step, (zeros, zeros), xs)
        return h @ p["head_w"] + p["head_b"]

    return params, forward


def _fnnet_lstm(s: Sizes):
    fnnet = _fnnet()
    model = fnnet.serial(fnnet.Embedding(s.vocab, s.embed), fnnet.LSTM(s.units), fnnet.Dense(s.classes))
    _, params = model.init(jax.random.PRNGKey(0), (-1, -1))
    return fnnet, model, params


def _linen_lstm(s: Sizes):
    nn = require("flax.linen")

    class Classifier(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.RNN(nn.OptimizedLSTMCell(s.units))(nn.Embed(s.vocab, s.embed)(tokens))
            return nn.Dense(s.classes)(x[:, -1])

    model = Classifier()
    params = model.init(jax.random.PRNGKey(0), jnp.ones((1, 2), jnp.int32))
    return params, model.apply


def _nnx_lstm(s: Sizes):
    nnx = require("flax.nnx")

    class Classifier(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(s.vocab, s.embed, rngs=rngs)
            self.rnn = nnx.RNN(nnx.OptimizedLSTMCell(s.embed, s.units, rngs=rngs))
            self.head = nnx.Linear(s.units, s.classes, rngs=rngs)

        def __call__(self, tokens):
            return self.head(self.rnn(self.embed(tokens))[:, -1])

    return nnx, Classifier(nnx.Rngs(0))


def _haiku_lstm(s: Sizes):
    hk = require("haiku")

    def forward(tokens):
        core = hk.LSTM(s.units)
        xs = jnp.swapaxes(hk.Embed(s.vocab, s.embed)(tokens), 0, 1)
        outputs, _ = hk.dynamic_unroll(core, xs, core.initial_state(tokens.shape[0]))
        return hk.Linear(s.classes)(outputs[-1])

    net = hk.without_apply_rng(hk.transform(forward))
    return net.init(jax.random.PRNGKey(0), jnp.ones((1, 2), jnp.int32)), net.apply


def _equinox_lstm(s: Sizes):
    eqx = require("equinox")

    class Classifier(eqx.Module):
        embed: eqx.nn.Embedding
        cell: eqx.nn.LSTMCell
        head: eqx.nn.Linear

        def __init__(self, key):
            k = jax.random.split(key, 3)
            self.embed = eqx.nn.Embedding(s.vocab, s.embed, key=k[0])
            self.cell = eqx.nn.LSTMCell(s.embed, s.units, key=k[1])
            self.head = eqx.nn.Linear(s.units, s.classes, key=k[2])

        def __call__(self, tokens):  # one sequence; jax.vmap batches it
            zeros = jnp.zeros(s.units)
            (h, _), _ = jax.lax.scan(lambda carry, x: (self.cell(x, carry), None), (zeros, zeros),
                                     jax.vmap(self.embed)(tokens))
            return self.head(h)

    return eqx, Classifier(jax.random.PRNGKey(0))


def _keras_lstm(s: Sizes, length: int):
    keras = _keras()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((length,), dtype="int32"), keras.layers.Embedding(s.vocab, s.embed),
                              keras.layers.LSTM(s.units), keras.layers.Dense(s.classes)])
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _torch_lstm(s: Sizes):
    torch = _torch()
    torch.manual_seed(0)

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(s.vocab, s.embed)
            self.lstm = torch.nn.LSTM(s.embed, s.units, batch_first=True)
            self.head = torch.nn.Linear(s.units, s.classes)

        def forward(self, tokens):
            _, (h, _) = self.lstm(self.embed(tokens))
            return self.head(h[-1])

    return torch, Classifier()


def w2_train_contenders(s: Sizes, length: int) -> list[Contender]:
    tokens, labels = lstm_data(s, s.train_batch, length)
    flops = TRAIN_FLOPS_PER_FORWARD * lstm_forward_flops(s.train_batch, length, s.embed, s.units, s.classes)

    def with_forward(forward):
        return lambda p, xb, yb: _cross_entropy(forward(p, xb), yb)

    def build_fnnet():
        _, model, params = _fnnet_lstm(s)
        return jitted_train_step(with_forward(model.apply), params, tokens, labels)

    def build_fnnet_fit():
        fnnet, model, params = _fnnet_lstm(s)
        carry = [params]

        def run():
            result = fnnet.fit(model, carry[0], tokens, labels, loss="sparse_categorical_crossentropy_from_logits",
                               optimizer="adam", epochs=1, batch_size=s.train_batch, verbose=0)
            carry[0] = result.params
            return result.params

        return run

    def build_pure(make):
        params, forward = make(s)
        return jitted_train_step(with_forward(forward), params, tokens, labels)

    def build_nnx():
        nnx, model = _nnx_lstm(s)
        optimizer = nnx.Optimizer(model, _adam(), wrt=nnx.Param)

        @nnx.jit
        def step(model, optimizer, xb, yb):
            loss, grads = nnx.value_and_grad(lambda m: _cross_entropy(m(xb), yb))(model)
            optimizer.update(model, grads)
            return loss

        xb, yb = jnp.asarray(tokens), jnp.asarray(labels)
        return lambda: step(model, optimizer, xb, yb)

    def build_equinox():
        eqx, model = _equinox_lstm(s)
        tx = _adam()

        @eqx.filter_jit
        def step(model, opt_state, xb, yb):
            loss, grads = eqx.filter_value_and_grad(lambda m: _cross_entropy(jax.vmap(m)(xb), yb))(model)
            updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
            return eqx.apply_updates(model, updates), opt_state, loss

        carry = [(model, tx.init(eqx.filter(model, eqx.is_array)))]
        xb, yb = jnp.asarray(tokens), jnp.asarray(labels)

        def run():
            model_, opt_state, loss = step(*carry[0], xb, yb)
            carry[0] = (model_, opt_state)
            return carry[0], loss

        return run

    def build_keras():
        model = _keras_lstm(s, length)
        return lambda: model.train_on_batch(tokens, labels)

    def build_torch():
        torch, model = _torch_lstm(s)
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        xb, yb = torch.from_numpy(tokens).long(), torch.from_numpy(labels).long()

        def run():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            return loss.detach()

        return run

    p = functools.partial
    return [
        Contender("fnnet", build_fnnet, flops=flops, note="fnnet.LSTM, jitted optax step, donated"),
        Contender("fnnet.fit", build_fnnet_fit, flops=flops, note="one fnnet.fit call = one step"),
        Contender("plain jax", p(build_pure, _plain_lstm), flops=flops, note="lax.scan, [x,h]@W per step"),
        Contender("linen", p(build_pure, _linen_lstm), flops=flops, note="nn.RNN(OptimizedLSTMCell), jax.jit"),
        Contender("nnx", build_nnx, flops=flops, note="nnx.RNN(OptimizedLSTMCell), nnx.jit"),
        Contender("haiku", p(build_pure, _haiku_lstm), flops=flops, note="hk.LSTM + dynamic_unroll, jax.jit"),
        Contender("equinox", build_equinox, flops=flops, note="LSTMCell in lax.scan, vmap, filter_jit"),
        Contender("keras", build_keras, flops=flops, note="keras.layers.LSTM, train_on_batch"),
        Contender("torch", build_torch, flops=flops, note="nn.LSTM eager"),
    ]


def w2_infer_contenders(s: Sizes, batch: int) -> list[Contender]:
    tokens, _ = lstm_data(s, batch, s.infer_length)
    flops = lstm_forward_flops(batch, s.infer_length, s.embed, s.units, s.classes)

    def build_fnnet():
        fnnet, model, params = _fnnet_lstm(s)
        return lambda: fnnet.predict(model, params, tokens, batch_size=batch)

    def build_pure(make):
        params, forward = make(s)
        return jitted_forward(forward, params, tokens)

    def build_nnx():
        nnx, model = _nnx_lstm(s)
        forward, xb = nnx.jit(lambda m, t: m(t)), jnp.asarray(tokens)
        return lambda: forward(model, xb)

    def build_equinox():
        eqx, model = _equinox_lstm(s)
        forward, xb = eqx.filter_jit(lambda m, t: jax.vmap(m)(t)), jnp.asarray(tokens)
        return lambda: forward(model, xb)

    def build_keras():
        model = _keras_lstm(s, s.infer_length)
        return lambda: model.predict_on_batch(tokens)

    def build_torch():
        torch, model = _torch_lstm(s)
        model.eval()
        xb = torch.from_numpy(tokens).long()

        def run():
            with torch.inference_mode():
                return model(xb)

        return run

    p = functools.partial
    return [
        Contender("fnnet", build_fnnet, flops=flops, note="fnnet.predict"),
        Contender("plain jax", p(build_pure, _plain_lstm), flops=flops, note="jax.jit forward"),
        Contender("linen", p(build_pure, _linen_lstm), flops=flops, note="jax.jit forward"),
        Contender("nnx", build_nnx, flops=flops, note="nnx.jit forward"),
        Contender("haiku", p(build_pure, _haiku_lstm), flops=flops, note="jax.jit forward"),
        Contender("equinox", build_equinox, flops=flops, note="filter_jit(vmap)"),
        Contender("keras", build_keras, flops=flops, note="predict_on_batch"),
        Contender("torch", build_torch, flops=flops, note="inference_mode"),
    ]


# ------------------------------------------------------------------- W3: KNN


def knn_data(s: Sizes):
    """Points around one centre per class, so the neighbours' vote means something."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((s.knn_classes, s.knn_features), dtype=np.float32) * 2.0
    labels = rng.integers(0, s.knn_classes, size=s.knn_points + s.knn_queries).astype(np.int32)
    points = centres[labels] + rng.standard_normal((len(labels), s.knn_features), dtype=np.float32)
    return points[:s.knn_points], labels[:s.knn_points], points[s.knn_points:]


def _chunked_knn(s: Sizes):
    """Plain jitted JAX: queries in chunks, ``||p||^2 - 2 q.p`` (``||q||^2`` cannot change the
    ranking), ``lax.top_k``, then the vote (ties to the smallest label)."""
    k, chunk, classes = s.knn_k, s.knn_chunk, s.knn_classes

    @jax.jit
    def classify(points, labels, queries):
        points_sq = jnp.sum(points * points, axis=1)

        def one_chunk(q):
            _, nearest = jax.lax.top_k(2.0 * q @ points.T - points_sq, k)
            votes = jax.nn.one_hot(labels[nearest], classes).sum(axis=1)
            return jnp.argmax(votes, axis=1)

        padded = -(-queries.shape[0] // chunk) * chunk
        queries_ = jnp.pad(queries, ((0, padded - queries.shape[0]), (0, 0)))
        return jax.lax.map(one_chunk, queries_.reshape(-1, chunk, queries.shape[1])).reshape(-1)[:queries.shape[0]]

    return classify


def w3_contenders(s: Sizes) -> list[Contender]:
    points, labels, queries = knn_data(s)
    flops = knn_flops(s.knn_queries, s.knn_points, s.knn_features)

    def on_device():
        return jnp.asarray(points), jnp.asarray(labels), jnp.asarray(queries)

    def build_fnnet():
        neighbors = require("fnnet.neighbors")
        p, l, q = on_device()
        return lambda: neighbors.classify(p, l, q, k=s.knn_k)

    def build_fnnet_kneighbors():
        neighbors = require("fnnet.neighbors")
        p, _, q = on_device()
        return lambda: neighbors.kneighbors(p, q, s.knn_k)[1]

    def build_jax():
        classify, (p, l, q) = _chunked_knn(s), on_device()
        return lambda: classify(p, l, q)

    def build_sklearn(algorithm, what="predict"):
        sk = require("sklearn.neighbors")
        model = sk.KNeighborsClassifier(n_neighbors=s.knn_k, algorithm=algorithm).fit(points, labels)
        if what == "kneighbors":
            return lambda: model.kneighbors(queries, return_distance=False)
        return lambda: model.predict(queries)

    p = functools.partial
    return [
        Contender("fnnet", build_fnnet, flops=flops, note="fnnet.neighbors.classify, data on device"),
        Contender("fnnet.kneighbors", build_fnnet_kneighbors, flops=flops, note="indices only"),
        Contender("jax chunked", build_jax, flops=flops, note=f"jit, {s.knn_chunk} queries a chunk, top_k"),
        Contender("sklearn brute", p(build_sklearn, "brute"), flops=flops, note="predict, fitted beforehand"),
        Contender("sklearn auto", p(build_sklearn, "auto"), flops=flops, note="predict, fitted beforehand"),
        Contender("sklearn brute kneighbors", p(build_sklearn, "brute", "kneighbors"), flops=flops,
                  note="indices only"),
    ]


def knn_agreement(found: dict, rows: dict) -> None:
    """Each KNN contender's agreement with scikit-learn's brute force (labels, or neighbour
    index sets for the ``kneighbors`` ones), as ``agreement`` and in the note."""
    references = {False: found.get("sklearn brute"), True: found.get("sklearn brute kneighbors")}
    for name, row in rows.items():
        is_index = "kneighbors" in name
        reference = references[is_index]
        if reference is None or reference.skipped or name.startswith("sklearn brute"):
            continue
        ours, theirs = np.asarray(found[name].first_result), np.asarray(reference.first_result)
        if is_index:
            same = np.mean([set(a) == set(b) for a, b in zip(ours, theirs)])
        else:
            same = np.mean(ours.reshape(-1) == theirs.reshape(-1))
        row["agreement"] = float(same)
        row["note"] = f"{row['note']}; agrees {100 * same:.1f}%".lstrip("; ")


# ------------------------------------------------------------------- the run


@dataclasses.dataclass(frozen=True)
class Workload:
    """A named workload: its contenders for the given sizes, what one call does, and
    optional post-processing of its rows (extra columns, agreement checks)."""

    name: str
    what: str
    contenders: Callable[[Sizes], list]
    post: Callable[[Sizes, dict, dict], None] | None = None
    rate_header: str = ""
    rate: Callable[[dict], str] | None = None


def _sequences_per_second(batch_index: int):
    def post(s, found, rows):
        for row in rows.values():
            row["seq_per_s"] = s.infer_batches[batch_index] / row["median_s"]
    return post


WORKLOADS = {w.name: w for w in [
    Workload("matmul_2048", "one float32 2048^3 matmul", lambda s: matmul_contenders(s, s.matmul_sizes[0])),
    Workload("matmul_4096", "one float32 4096^3 matmul", lambda s: matmul_contenders(s, s.matmul_sizes[1])),
    Workload("w1_epoch_b32", "one epoch of the MLP, batch 32", lambda s: w1_contenders(s, s.mlp_batches[0])),
    Workload("w1_epoch_b1024", "one epoch of the MLP, batch 1024", lambda s: w1_contenders(s, s.mlp_batches[1])),
    Workload("w2_train_t200", "one LSTM train step, batch 64, length 200",
             lambda s: w2_train_contenders(s, s.seq_lengths[0])),
    Workload("w2_train_t80", "one LSTM train step, batch 64, length 80",
             lambda s: w2_train_contenders(s, s.seq_lengths[1])),
    Workload("w2_infer_b64", "LSTM inference, batch 64, length 200", lambda s: w2_infer_contenders(s, s.infer_batches[0]),
             post=_sequences_per_second(0), rate_header="seq/s", rate=lambda row: f"{row['seq_per_s']:.0f}"),
    Workload("w2_infer_b512", "LSTM inference, batch 512, length 200",
             lambda s: w2_infer_contenders(s, s.infer_batches[1]),
             post=_sequences_per_second(1), rate_header="seq/s", rate=lambda row: f"{row['seq_per_s']:.0f}"),
    Workload("w3_knn_100k", "KNN: 2,000 queries, 100,000 x 64 points, k=5", w3_contenders,
             post=lambda s, found, rows: knn_agreement(found, rows)),
]}
REQUIRED_WORKLOADS = ("w1_epoch_b32", "w1_epoch_b1024", "w2_train_t200", "w2_train_t80", "w3_knn_100k")


def _selected(names: list[str] | None, known: dict, what: str) -> list[str]:
    if not names:
        return list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; choose from {list(known)}")
    return names


def run_benchmarks(workloads: list[str], rounds: int, sizes: Sizes = FULL, contenders: list[str] | None = None,
                   peak_gflops: float | None = None, log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """Run ``workloads`` (names from :data:`WORKLOADS`, run in that table's order) and
    return ``(workloads_rows, meta)`` as written to the JSON file. ``contenders``, if given,
    keeps only those names. The matmul workloads, when selected, set the peak for the
    fractions of the later ones; otherwise ``peak_gflops`` does."""
    results, left_out = {}, {}
    measured_peak = None
    started = time.perf_counter()
    for name in [n for n in WORKLOADS if n in workloads]:
        workload = WORKLOADS[name]
        chosen = [c for c in workload.contenders(sizes) if contenders is None or c.name in contenders]
        log(f"\n== {name}: {workload.what} ({rounds} rounds)")
        found = benchlib.measure(chosen, rounds, log=log)
        peak = measured_peak or peak_gflops
        rows = benchlib.summarize(found, peak_gflops=None if name.startswith("matmul") else peak)
        if workload.post:
            workload.post(sizes, found, rows)
        if name.startswith("matmul"):
            best = max((r["gflops"] for r in rows.values() if r["gflops"]), default=None)
            measured_peak = max(measured_peak or 0.0, best or 0.0) or None
        results[name], left_out[name] = rows, benchlib.skipped(found)
        log("")
        log(benchlib.format_table(f"{name}: {workload.what}", rows, left_out[name], rate=workload.rate,
                                  rate_header=workload.rate_header))
        if not peak and not name.startswith("matmul") and any(r["gflops"] for r in rows.values()):
            log("  (no matmul peak measured: select matmul_2048 or pass --peak-gflops for % of peak)")
    meta = {
        "rounds": rounds,
        "sizes": dataclasses.asdict(sizes),
        "peak_gflops": measured_peak or peak_gflops,
        "peak_source": "measured (best of the matmul workloads)" if measured_peak else
                       ("--peak-gflops" if peak_gflops else None),
        "skipped": left_out,
        "seconds": time.perf_counter() - started,
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_threads": benchlib.cpu_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "versions": benchlib.versions(PEER_MODULES),
        "flops": "train = 3 x forward matmul FLOPs; dense 2*in*out, LSTM step 2*(in+units)*4*units, "
                 "KNN 2*queries*points*features",
    }
    return results, meta


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds instead of {FULL_ROUNDS}")
    parser.add_argument("--rounds", type=int, help="timed rounds per workload (overrides --quick)")
    parser.add_argument("--workloads", type=_comma_list, help=f"comma-separated, from: {', '.join(WORKLOADS)}")
    parser.add_argument("--contenders", type=_comma_list, help="comma-separated contender names to keep")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--peak-gflops", type=float, help="matmul peak to use when no matmul workload is run")
    parser.add_argument("--tiny", action="store_true", help="shrink every size (checks code paths; times mean nothing)")
    parser.add_argument("--list", action="store_true", help="list the workloads and their contenders, run nothing")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    sizes = TINY if args.tiny else FULL
    workloads = _selected(args.workloads, WORKLOADS, "workloads")
    if args.list:
        for name in workloads:
            print(f"{name}: {WORKLOADS[name].what}")
            for contender in WORKLOADS[name].contenders(TINY):
                print(f"  {contender.name:26s} {contender.note}")
        return {}
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else FULL_ROUNDS)
    print(f"fnnet benchmarks: {rounds} rounds, jax {jax.__version__} on {jax.default_backend()}, "
          f"{benchlib.cpu_threads()} CPU threads" + (" (tiny sizes)" if args.tiny else ""))
    results, meta = run_benchmarks(workloads, rounds, sizes, args.contenders, args.peak_gflops)
    meta["command"] = "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\ntotal {meta['seconds']:.0f} s")
    if args.json:
        benchlib.write_json(args.json, results, meta)
        print(f"wrote {args.json}")
    return {"workloads": results, "meta": meta}


if __name__ == "__main__":
    main()

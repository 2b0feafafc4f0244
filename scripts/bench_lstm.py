"""Train-step time of the tutorial's sentiment LSTM: fnnet against Flax and PyTorch.

The model is Embedding(20000, 128) -> LSTM(128) -> Dense(2) with softmax cross-entropy
and Adam, batch 64, sequence lengths 200 and 80 (the Keras tutorial's sentiment model).

Each contender runs in its own process (its own thread pool, no shared allocator), and
the contenders are interleaved round by round, in a rotating order, so that load from
other users of the machine falls on all of them alike. Reported: the median time per
train step and its ratio to fnnet; the fastest JAX peer is the figure to beat.

    python scripts/bench_lstm.py            # T=200 and T=80, 7 rounds
    python scripts/bench_lstm.py --quick    # T=80, 3 rounds: a smoke test, not a measurement

Peers that are not installed are skipped with a note. PyTorch runs with
OMP_WAIT_POLICY=PASSIVE (see ``_worker``). "fnnet, autodiff backward" is fnnet's LSTM
with JAX's own backward pass of the scan, to measure the hand-written one.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

VOCAB, EMBED, UNITS, CLASSES = 20000, 128, 128, 2


def _batch(batch, length, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (batch, length)).astype("int32")
    if length > 20:  # a few right-padded rows, as real batches have (used only by masked contenders)
        for row in range(0, batch, 4):
            ids[row, rng.integers(length // 2, length):] = 0
    return ids, rng.integers(0, CLASSES, batch).astype("int32")


# --------------------------------------------------------------------------- contenders

def _jax_step(loss_fn):
    """A jitted Adam train step with params and optimizer state donated (see PERFORMANCE.md W1)."""
    import jax
    import optax

    optimizer = optax.adam(1e-3)

    def step(params, opt_state, ids, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, ids, labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1)), optimizer


def _autodiff_lstm(fnnet):
    """fnnet's LSTM with JAX's own backward pass of the scan instead of the hand-written one."""
    from fnnet.layers import recurrent

    cell = recurrent._lstm_cell(UNITS, "tanh", "sigmoid", True, "glorot_uniform", "orthogonal", "zeros", True)
    return recurrent._recurrent_layer(f"LSTM({UNITS})", cell._replace(gates=None), False, False, False, 1, True)


def build_fnnet(batch, length, mask_zero=False, autodiff=False):
    import jax
    import jax.numpy as jnp
    import optax

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fnnet

    lstm = _autodiff_lstm(fnnet) if autodiff else fnnet.LSTM(UNITS)
    model = fnnet.serial(fnnet.Embedding(VOCAB, EMBED, mask_zero=mask_zero), lstm, fnnet.Dense(CLASSES))
    _, params = model.init(jax.random.PRNGKey(0), (-1, length))

    def loss_fn(params, ids, labels):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, ids), labels).mean()

    return _jax_runner(loss_fn, params, batch, length, jnp)


def build_flax(batch, length):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    class Sentiment(nn.Module):
        @nn.compact
        def __call__(self, ids):
            x = nn.Embed(VOCAB, EMBED)(ids)
            h = nn.RNN(nn.OptimizedLSTMCell(UNITS))(x)[:, -1]
            return nn.Dense(CLASSES)(h)

    model = Sentiment()
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((batch, length), jnp.int32))

    def loss_fn(params, ids, labels):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, ids), labels).mean()

    return _jax_runner(loss_fn, params, batch, length, jnp)


def _jax_runner(loss_fn, params, batch, length, jnp):
    step, optimizer = _jax_step(loss_fn)
    ids, labels = (jnp.asarray(a) for a in _batch(batch, length))
    state = [params, optimizer.init(params)]

    def run(n):
        loss = None
        for _ in range(n):
            state[0], state[1], loss = step(state[0], state[1], ids, labels)
        loss.block_until_ready()

    return run


def build_torch(batch, length):
    import torch

    class Sentiment(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, EMBED)
            self.lstm = torch.nn.LSTM(EMBED, UNITS, batch_first=True)
            self.dense = torch.nn.Linear(UNITS, CLASSES)

        def forward(self, ids):
            _, (h, _) = self.lstm(self.embed(ids))
            return self.dense(h[-1])

    torch.manual_seed(0)
    model = Sentiment()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids, labels = (torch.from_numpy(a).long() for a in _batch(batch, length))

    def run(n):
        for _ in range(n):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(ids), labels)
            loss.backward()
            optimizer.step()

    return run


CONTENDERS = {
    # name: (builder, extra kwargs, the module it needs, is a JAX peer)
    "fnnet": (build_fnnet, {}, "jax", False),
    "fnnet mask_zero": (build_fnnet, {"mask_zero": True}, "jax", False),
    "fnnet, autodiff backward": (build_fnnet, {"autodiff": True}, "jax", False),
    "flax OptimizedLSTMCell": (build_flax, {}, "flax", True),
    "torch nn.LSTM": (build_torch, {}, "torch", False),
}


def _worker(conn, name, batch, length):
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # PyTorch's OpenMP threads busy-wait by default; on a machine shared with other
    # processes that made its steps 10-50x slower here. Passive waiting is the fair setting.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    builder, kwargs, _, _ = CONTENDERS[name]
    run = builder(batch, length, **kwargs)
    run(2)  # compile and warm up
    conn.send("ready")
    while (n := conn.recv()) is not None:
        start, start_cpu = time.perf_counter(), time.process_time()
        run(n)
        conn.send(((time.perf_counter() - start) / n, (time.process_time() - start_cpu) / n))


def bench(names, batch, length, rounds, steps):
    """Median (wall, CPU) seconds per train step for each contender, interleaved round by round."""
    ctx = mp.get_context("spawn")
    workers = {}
    for name in names:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker, args=(child, name, batch, length), daemon=True)
        process.start()
        workers[name] = (process, parent)
    for name, (_, conn) in workers.items():  # start together, wait for every compile
        assert conn.recv() == "ready", name
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            conn = workers[name][1]
            conn.send(steps)
            times[name].append(conn.recv())
    for process, conn in workers.values():
        conn.send(None)
        process.join()
    return {name: tuple(statistics.median(column) for column in zip(*t)) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="T=80 only, 3 rounds of 1 step: a smoke test")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="sequence lengths (default 200 80)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7)")
    parser.add_argument("--steps", type=int, default=None, help="train steps per contender per round (default 3)")
    args = parser.parse_args(argv)
    lengths = args.lengths or ([80] if args.quick else [200, 80])
    rounds = args.rounds or (3 if args.quick else 7)
    steps = args.steps or (1 if args.quick else 3)

    names = []
    for name, (_, _, module, _) in CONTENDERS.items():
        if args.quick and name in ("fnnet mask_zero", "fnnet, autodiff backward"):
            continue
        if importlib.util.find_spec(module) is None:
            print(f"note: {name} skipped ({module} is not installed)")
            continue
        names.append(name)

    print(f"train step, batch {args.batch}, {rounds} rounds x {steps} steps, medians per step; "
          "ratio = time / fnnet's (> 1: slower than fnnet).\n"
          "CPU time (all threads of the process) is steadier than wall time on a shared machine.")
    for length in lengths:
        medians = bench(names, args.batch, length, rounds, steps)
        wall_ref, cpu_ref = medians["fnnet"]
        print(f"\nT={length}{'':<22} {'wall ms':>9} {'ratio':>6} {'CPU ms':>9} {'ratio':>6}")
        for name, (wall, cpu) in medians.items():
            print(f"  {name:<27} {wall * 1e3:9.1f} {wall / wall_ref:6.2f} {cpu * 1e3:9.1f} {cpu / cpu_ref:6.2f}")
        jax_peers = [n for n in medians if CONTENDERS[n][3]]
        if jax_peers:
            best = min(jax_peers, key=lambda n: medians[n][0])
            print(f"  fastest JAX peer ({best}) / fnnet: wall {medians[best][0] / wall_ref:.2f}, "
                  f"CPU {medians[best][1] / cpu_ref:.2f}")


if __name__ == "__main__":
    main()

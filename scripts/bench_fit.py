"""How fast is one epoch of ``fnnet.fit``? W1 of PERFORMANCE.md, against plain stax, in one run.

The tutorial's house-price MLP (78 -> 400 relu -> 200 relu -> 1, MSE, Adam, float32) on
1,460 rows of synthetic data of the real data set's shape, one epoch at batch 32 and at
batch 1024 (the last batch partial in both). Contenders, interleaved round by round:

- ``stax_loop``: the idiomatic stax loop: a jitted step with params and optimizer state
  donated, batches sliced on the host after a numpy shuffle;
- ``stax_scan``: the whole epoch as one jitted ``lax.scan`` (data on device, shuffled on
  device), the best form measured in PERFORMANCE.md;
- ``fnnet_fit``: ``fnnet.fit`` as users call it (``verbose=0``; default: epoch as scan);
- ``fnnet_fit_steps``: ``fnnet.fit(scan_epoch=False)``, one jitted call per step.

A fit epoch is the time of one ``fit(epochs=k)`` call over ``k`` (its setup, about
0.4 ms, included; no callbacks, so fit queues each epoch before reading the previous
one's results, as users' calls do); the whole ``fit(epochs=1)`` call is listed too. The
stax contenders also run ``k`` epochs per round. Medians over rounds, ratios to the
fastest; the first round (compilation) is not counted.

    python scripts/bench_fit.py --rounds 11 --epochs 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.example_libraries import stax

import fnnet

ROWS, FEATURES = 1460, 78


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    y = (x[:, :5].sum(1, keepdims=True) + 0.1 * rng.normal(size=(ROWS, 1))).astype(np.float32)
    return x, y


def stax_model():
    return stax.serial(stax.Dense(400), stax.Relu, stax.Dense(200), stax.Relu, stax.Dense(1))


def _stax_setup():
    init_fun, apply_fun = stax_model()
    _, params = init_fun(jax.random.PRNGKey(0), (-1, FEATURES))
    tx = optax.adam(1e-3, eps=1e-7)

    def step(params, opt_state, xb, yb):
        def loss(p):
            return jnp.mean(jnp.square(apply_fun(p, xb) - yb))
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return params, tx, step


class StaxLoop:
    def __init__(self, x, y, batch_size):
        self.x, self.y, self.bs = x, y, batch_size
        params, tx, step = _stax_setup()
        self.params, self.opt_state = params, tx.init(params)
        self.step = jax.jit(step, donate_argnums=(0, 1))
        self.rng = np.random.default_rng(0)

    def run(self, epochs):
        for _ in range(epochs):
            perm = self.rng.permutation(ROWS)
            for start in range(0, ROWS, self.bs):
                idx = perm[start:start + self.bs]
                self.params, self.opt_state, loss = self.step(self.params, self.opt_state, self.x[idx], self.y[idx])
        jax.block_until_ready(self.params)


class StaxScan:
    def __init__(self, x, y, batch_size):
        params, tx, step = _stax_setup()
        self.params, self.opt_state = params, tx.init(params)
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)
        full, rest = divmod(ROWS, batch_size)

        def epoch(params, opt_state, key, x, y):
            perm = jax.random.permutation(key, ROWS)
            idx = perm[:full * batch_size].reshape(full, batch_size)

            def body(carry, i):
                p, s, _ = step(*carry, x[i], y[i])
                return (p, s), None

            params, opt_state = jax.lax.scan(body, (params, opt_state), idx)[0]
            if rest:
                params, opt_state, _ = step(params, opt_state, x[perm[-rest:]], y[perm[-rest:]])
            return params, opt_state

        self.epoch = jax.jit(epoch, donate_argnums=(0, 1))
        self.key = jax.random.PRNGKey(0)

    def run(self, epochs):
        for e in range(epochs):
            self.params, self.opt_state = self.epoch(self.params, self.opt_state, jax.random.fold_in(self.key, e),
                                                     self.x, self.y)
        jax.block_until_ready(self.params)


class FnnetFit:
    def __init__(self, x, y, batch_size, **options):
        self.x, self.y, self.bs, self.options = x, y, batch_size, options
        self.model = fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))
        _, self.params = self.model.init(jax.random.PRNGKey(0), (-1, FEATURES))

    def run(self, epochs):
        # No callbacks: a timing callback would make fit wait for each epoch before queuing the next.
        result = fnnet.fit(self.model, self.params, self.x, self.y, loss="mse", optimizer="adam", epochs=epochs,
                           batch_size=self.bs, verbose=0, **self.options)
        jax.block_until_ready(result.params)


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def bench(batch_size, rounds, epochs, x, y):
    plain = {"stax_loop": StaxLoop(x, y, batch_size), "stax_scan": StaxScan(x, y, batch_size)}
    fits = {"fnnet_fit": FnnetFit(x, y, batch_size),
            "fnnet_fit_steps": FnnetFit(x, y, batch_size, scan_epoch=False)}
    times = {name: [] for name in list(plain) + list(fits) + ["fnnet_fit(epochs=1) call"]}
    compile_s = {}
    for r in range(rounds + 1):
        for name, contender in plain.items():
            seconds = timed(contender.run, epochs) / epochs
            if r:
                times[name].append(seconds)
            else:
                compile_s[name] = seconds * epochs
        for name, contender in fits.items():
            if not r:
                compile_s[name] = timed(contender.run, 1)
                continue
            times[name].append(timed(contender.run, epochs) / epochs)
            if name == "fnnet_fit":
                times["fnnet_fit(epochs=1) call"].append(timed(contender.run, 1))
    medians = {name: statistics.median(v) for name, v in times.items()}
    fastest = min(medians.values())
    print(f"\nW1 one epoch, batch {batch_size} ({-(-ROWS // batch_size)} steps), {rounds} rounds x {epochs} epochs")
    print(f"{'contender':<26}{'median ms':>10}{'ratio':>8}{'min ms':>9}{'first call s':>14}")
    for name, value in sorted(medians.items(), key=lambda kv: kv[1]):
        first = f"{compile_s[name]:>14.2f}" if name in compile_s else ""
        print(f"{name:<26}{value * 1e3:>10.2f}{value / fastest:>8.2f}{min(times[name]) * 1e3:>9.2f}{first}")
    return medians


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per contender per round")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1024])
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {jax.device_count()} device(s)")
    x, y = make_data()
    for batch_size in args.batch_sizes:
        bench(batch_size, args.rounds, args.epochs, x, y)


if __name__ == "__main__":
    main()

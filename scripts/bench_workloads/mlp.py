"""W1, the tutorial's house-price MLP (78 -> 400 relu -> 200 relu -> 1, MSE, Adam): one
epoch over 1,460 rows, shuffled, the last partial batch included, in each library's
idiomatic form and in the JAX libraries' best form (the epoch as one jitted ``lax.scan``).
The data are random: speed does not depend on the values."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchlib import Contender, require

from .harness import (LEARNING_RATE, TRAIN_FLOPS_PER_FORWARD, adam, equinox_train_step, import_fnnet, import_keras,
                      import_torch, jitted_loop_epoch, mse, nnx_train_step, scanned_epoch)
from .sizes import Sizes


def mlp_train_flops(rows: int, features: int, hidden: tuple) -> float:
    """FLOPs of training an MLP ``features -> *hidden -> 1`` on ``rows`` examples:
    ``3 * 2 * rows * sum(in * out)`` over its dense layers.

    >>> mlp_train_flops(1460, 78, (400, 200)) / 1e9  # the tutorial's epoch
    0.975864
    """
    widths = (features, *hidden, 1)
    forward = 2 * rows * sum(a * b for a, b in zip(widths, widths[1:]))
    return float(TRAIN_FLOPS_PER_FORWARD * forward)


def mlp_data(s: Sizes):
    """Random float32 features ``(rows, features)`` and targets ``(rows, 1)``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((s.mlp_rows, s.mlp_features), dtype=np.float32)
    y = (x[:, :1] - 0.5 * x[:, 1:2] + 0.1 * rng.standard_normal((s.mlp_rows, 1))).astype(np.float32)
    return x, y


def _stax_mlp(s: Sizes):
    from jax.example_libraries import stax
    layers = [layer for width in s.mlp_hidden for layer in (stax.Dense(width), stax.Relu)]
    init, apply = stax.serial(*layers, stax.Dense(1))
    _, params = init(jax.random.PRNGKey(0), (-1, s.mlp_features))
    return params, lambda p, xb, yb: mse(apply(p, xb), yb)


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
    return params, lambda p, xb, yb: mse(model.apply(p, xb), yb)


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
    return params, lambda p, xb, yb: mse(net.apply(p, xb), yb)


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


def epoch_contenders(s: Sizes, batch_size: int) -> list[Contender]:
    """One epoch at ``batch_size``: ``fnnet.fit``, each peer's idiomatic loop, and the scans."""
    x, y = mlp_data(s)
    flops = mlp_train_flops(s.mlp_rows, s.mlp_features, s.mlp_hidden)
    loop, scan = jitted_loop_epoch, scanned_epoch

    def build_fnnet(epochs):
        def build():
            fnnet = import_fnnet()
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
        optimizer = nnx.Optimizer(model, adam(), wrt=nnx.Param)

        step = nnx_train_step(nnx, mse)

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
        return scan(lambda p, xb, yb: mse(forward(p, xb), yb), params, x, y, batch_size)

    def build_equinox_loop():
        eqx, model = _equinox_mlp(s)
        tx = adam()

        step = equinox_train_step(eqx, tx, mse)

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
        loss = lambda p, xb, yb: mse(jax.vmap(eqx.combine(p, static))(xb), yb)  # noqa: E731
        return scan(loss, params, x, y, batch_size)

    def build_keras():
        keras = import_keras()
        keras.utils.set_random_seed(0)
        layers = [keras.layers.Dense(width, activation="relu") for width in s.mlp_hidden]
        model = keras.Sequential([keras.Input((s.mlp_features,)), *layers, keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")

        def run():
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)
            return [v.value for v in model.trainable_variables]

        return run

    def build_torch():
        torch = import_torch()
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

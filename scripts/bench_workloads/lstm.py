"""W2, the tutorial's sentiment LSTM (Embedding(20000, 128) -> LSTM(128) -> Dense(2),
softmax cross-entropy, Adam): one train step on a fixed batch, and the forward pass for
inference. Sequences have no padding, so no contender needs masks."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchlib import Contender, require

from .harness import (LEARNING_RATE, TRAIN_FLOPS_PER_FORWARD, adam, cross_entropy, equinox_train_step, import_fnnet,
                      import_keras, import_torch, jitted_forward, jitted_train_step, nnx_train_step)
from .sizes import Sizes


def lstm_forward_flops(batch: int, length: int, embed: int, units: int, classes: int) -> float:
    """FLOPs of the LSTM classifier's forward pass: ``batch * (length * 2*(embed + units)*4*units
    + 2*units*classes)`` (the embedding lookup and the gates' element-wise maths are not counted).

    >>> round(3 * lstm_forward_flops(64, 200, 128, 128, 2) / 1e9, 2)  # a train step at T=200
    10.07
    """
    return float(batch * (length * 2 * (embed + units) * 4 * units + 2 * units * classes))


def lstm_data(s: Sizes, batch: int, length: int):
    """Random token ids ``(batch, length)`` in ``[1, vocab)`` and labels ``(batch,)``."""
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
    fnnet = import_fnnet()
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
    keras = import_keras()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((length,), dtype="int32"), keras.layers.Embedding(s.vocab, s.embed),
                              keras.layers.LSTM(s.units), keras.layers.Dense(s.classes)])
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _torch_lstm(s: Sizes):
    torch = import_torch()
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


def train_step_contenders(s: Sizes, length: int) -> list[Contender]:
    """One Adam step on a fixed batch of ``s.train_batch`` sequences of ``length`` tokens."""
    tokens, labels = lstm_data(s, s.train_batch, length)
    flops = TRAIN_FLOPS_PER_FORWARD * lstm_forward_flops(s.train_batch, length, s.embed, s.units, s.classes)

    def with_forward(forward):
        return lambda p, xb, yb: cross_entropy(forward(p, xb), yb)

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
        optimizer = nnx.Optimizer(model, adam(), wrt=nnx.Param)

        step = nnx_train_step(nnx, cross_entropy)

        xb, yb = jnp.asarray(tokens), jnp.asarray(labels)
        return lambda: step(model, optimizer, xb, yb)

    def build_equinox():
        eqx, model = _equinox_lstm(s)
        tx = adam()

        step = equinox_train_step(eqx, tx, cross_entropy)

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


def inference_contenders(s: Sizes, batch: int) -> list[Contender]:
    """The forward pass (logits) of ``batch`` sequences of ``s.infer_length`` tokens."""
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

"""Keras-style model summaries and parameter counts."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax

from ..core import as_layer, shape_str


def count_params(params) -> int:
    """The number of scalars in a pytree of arrays (params or state).

    >>> import fnnet, jax
    >>> mlp = fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))
    >>> fnnet.count_params(mlp.init(jax.random.PRNGKey(0), (-1, 78))[1])
    112001
    """
    return sum(math.prod(getattr(leaf, "shape", ())) for leaf in jax.tree_util.tree_leaves(params))


class SummaryRow(NamedTuple):
    """One row of :func:`summary_rows`: a layer's params path, type, output shape and counts."""

    path: str
    layer: str
    output_shape: tuple
    trainable: int
    non_trainable: int
    depth: int


def _rows(layer, input_shape, path, depth, rng):
    layer = as_layer(layer)
    out_shape, params, state = layer._init(rng, input_shape)
    if layer.name in ("serial", "parallel") and layer.children:
        rows, shape = [], input_shape
        for i, ((key, child), r) in enumerate(zip(layer.children, jax.random.split(rng, len(layer.children)))):
            child_in = shape if layer.name == "serial" else input_shape[i]
            child_rows, child_out = _rows(child, child_in, f"{path}/{key}" if path else key, depth + 1, r)
            rows += child_rows
            shape = child_out
        return rows, out_shape
    row = SummaryRow(path or layer.key, layer.name, out_shape, count_params(params), count_params(state), depth)
    return [row], out_shape


def summary_rows(model, input_shape, rng=None) -> list:
    """The rows of :func:`summary`: one :class:`SummaryRow` per layer inside ``serial``/``parallel``.

    >>> import fnnet
    >>> [r.trainable for r in fnnet.summary_rows(fnnet.serial(fnnet.Dense(4), fnnet.Relu), (-1, 2))]
    [12, 0]
    """
    rng = jax.random.PRNGKey(0) if rng is None else rng
    # Shapes and counts only: nothing is computed beyond the (cheap) initialisers.
    rows, _ = _rows(model, tuple(input_shape), "", 0, rng)
    return rows


def _fmt(n: int) -> str:
    return f"{n:,}"


def summary(model, input_shape, rng=None) -> str:
    """A Keras-style table: layer path and type, output shape, parameter count, and totals.

    Non-trainable parameters are the model state (e.g. BatchNorm running statistics),
    counted as Keras counts them.

    >>> import fnnet
    >>> mlp = fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))
    >>> print(fnnet.summary(mlp, (-1, 78)))  # doctest: +NORMALIZE_WHITESPACE
    Model: serial, input shape (None, 78)
    ──────────────────────────────────────────────────────────────────
    Layer (path)                   Output Shape           Param #
    ══════════════════════════════════════════════════════════════════
    dense_0 (Dense(400))           (None, 400)             31,600
    relu_1 (Relu)                  (None, 400)                  0
    dense_2 (Dense(200))           (None, 200)             80,200
    relu_3 (Relu)                  (None, 200)                  0
    dense_4 (Dense(1))             (None, 1)                  201
    ══════════════════════════════════════════════════════════════════
    Total params: 112,001
    Trainable params: 112,001
    Non-trainable params: 0
    """
    model = as_layer(model)
    rows = summary_rows(model, input_shape, rng)
    # The rows cover every layer once, so their sums are the model's totals (no second init).
    trainable, non_trainable = sum(r.trainable for r in rows), sum(r.non_trainable for r in rows)
    labels = [f"{r.path} ({r.layer})" for r in rows]
    shapes = [shape_str(r.output_shape) for r in rows]
    name_w = max([30] + [len(label) for label in labels])
    shape_w = max([20] + [len(shape) for shape in shapes])
    width = name_w + shape_w + 16
    lines = [f"Model: {model.name}, input shape {shape_str(tuple(input_shape))}", "─" * width,
             f"{'Layer (path)':<{name_w}} {'Output Shape':<{shape_w}} {'Param #':>14}", "═" * width]
    for label, shape, r in zip(labels, shapes, rows):
        lines.append(f"{label:<{name_w}} {shape:<{shape_w}} {_fmt(r.trainable + r.non_trainable):>14}")
    lines += ["═" * width, f"Total params: {_fmt(trainable + non_trainable)}",
              f"Trainable params: {_fmt(trainable)}", f"Non-trainable params: {_fmt(non_trainable)}"]
    return "\n".join(lines)

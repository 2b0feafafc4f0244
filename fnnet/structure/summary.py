"""Keras-style model summaries and parameter counts, read from :func:`fnnet.walk`.

Every combinator (``serial``, ``parallel``, ``Residual``, ``Ensemble``, ``Bidirectional``,
``TimeDistributed``, your own) is expanded the same way: one row per layer without
children, named by its path from the model (``residual/parallel/serial/dense``). The
walk runs ``init`` under ``jax.eval_shape``, so summarising a model allocates no weights.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax

from ..core import shape_str, walk


def count_params(params) -> int:
    """The number of scalars in a pytree of arrays (params or state).

    >>> import fnnet, jax
    >>> mlp = fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))
    >>> fnnet.count_params(mlp.init(jax.random.PRNGKey(0), (-1, 78))[1])
    112001
    """
    return sum(math.prod(getattr(leaf, "shape", ())) for leaf in jax.tree_util.tree_leaves(params))


class SummaryRow(NamedTuple):
    """One row of :func:`summary_rows`.

    ``path`` is the layer's keys from the model down (a layer whose params are its
    parent's own, such as an ``Ensemble`` member, is named by its name); ``layer`` its
    description (``Dense(2, activation='softmax')``); ``trainable``/``non_trainable`` count
    its params and state, all ``copies`` of it together (``Ensemble(model, 3)`` stacks
    three copies of each member layer); ``depth`` its nesting depth (1 inside the model).
    """

    path: str
    layer: str
    output_shape: tuple
    trainable: int
    non_trainable: int
    depth: int
    copies: int = 1


def _copies(parent, child) -> int:
    """How many stacked copies of ``child``'s params ``parent`` holds, when they are its own (key None).

    ``TimeDistributed`` holds one (the same params); ``Ensemble(member, n)`` holds ``n``,
    stacked on a new axis, which shows as ``n`` times as many scalars.
    """
    if child.key is not None or len(parent.children) != 1:
        return 1
    inner = count_params(child.params) + count_params(child.state)
    outer = count_params(parent.params) + count_params(parent.state)
    return outer // inner if inner and outer % inner == 0 else 1


def _rows(node, prefix, copies):
    name = node.key or node.layer.name
    path = f"{prefix}/{name}" if prefix else name
    trainable, non_trainable = count_params(node.params), count_params(node.state)
    if not node.children:
        return [SummaryRow(path, node.layer.description, node.output_shape, trainable * copies,
                           non_trainable * copies, node.depth, copies)]
    rows = []
    # The root's path is the model itself: its children's paths start at their own keys.
    child_prefix = path if node.depth > 0 else ""
    for child in node.children:
        n = _copies(node, child)
        if child.key is not None or n > 1:
            trainable -= count_params(child.params) * n
            non_trainable -= count_params(child.state) * n
        else:  # the child's params are this layer's own, in an unknown form: count them here
            trainable = non_trainable = 0
        rows += _rows(child, child_prefix, copies * n)
    if trainable > 0 or non_trainable > 0:  # a combinator with params of its own, beside its children's
        rows.insert(0, SummaryRow(path, node.layer.description, node.output_shape, trainable * copies,
                                  non_trainable * copies, node.depth, copies))
    return rows


def summary_rows(model, input_shape, rng=None) -> list:
    """The rows of :func:`summary`: one :class:`SummaryRow` per layer that has no children.

    >>> import fnnet
    >>> rows = fnnet.summary_rows(fnnet.serial(fnnet.Dense(4), fnnet.Relu), (None, 2))
    >>> [(r.path, r.layer, r.trainable) for r in rows]
    [('dense', 'Dense(4)', 12), ('relu', 'Relu', 0)]
    """
    return _rows(walk(model, input_shape, rng), "", 1)


def _connections(model):
    """For a graph, each layer key's inputs over all its calls (``'x, dense_1'``); None otherwise."""
    if not hasattr(model, "node_rows"):
        return None
    links = {}
    for _, key, inputs in model.node_rows():
        links.setdefault(key, []).append(", ".join(inputs))
    return {key: "; ".join(calls) for key, calls in links.items()}


def _fmt(n: int) -> str:
    return f"{n:,}"


def summary(model, input_shape=None, rng=None) -> str:
    """A Keras-style table: layer name and type, output shape, parameter count, and totals.

    Combinators are expanded: each layer inside one shows as a row named by its path.
    Non-trainable parameters are the model state (e.g. BatchNorm running statistics),
    counted as Keras counts them. A row marked ``x3`` is a layer of which the model
    stacks three copies (an ``Ensemble`` member); its count covers all of them.
    ``input_shape`` may be left out for a model that knows it (``fnnet.Model``,
    ``fnnet.Sequential`` with an ``Input``). A graph (``fnnet.Model``) gets Keras's
    "Connected to" column: the tensors each layer is called on, every call of a shared
    layer listed on its one row.

    >>> import fnnet
    >>> mlp = fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu,
    ...                    fnnet.Dense(2, activation='softmax'))
    >>> print(fnnet.summary(mlp, (None, 78)))  # doctest: +NORMALIZE_WHITESPACE
    Model: serial, input shape (None, 78)
    ──────────────────────────────────────────────────────────────────────────────
    Layer (type)                               Output Shape                Param #
    ══════════════════════════════════════════════════════════════════════════════
    dense (Dense(400))                         (None, 400)                  31,600
    relu (Relu)                                (None, 400)                       0
    dense_1 (Dense(200))                       (None, 200)                  80,200
    relu_1 (Relu)                              (None, 200)                       0
    dense_2 (Dense(2, activation='softmax'))   (None, 2)                       402
    ══════════════════════════════════════════════════════════════════════════════
    Total params: 112,202
    Trainable params: 112,202
    Non-trainable params: 0
    """
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError("summary needs input_shape (e.g. (None, 78)): this model does not know its own; "
                             "build it from fnnet.Input to let it")
    root = walk(model, input_shape, rng)
    rows = _rows(root, "", 1)
    connected = _connections(root.layer)
    if connected is not None:  # a graph lists its inputs first, as Keras does
        names = list(root.layer.input_names)
        in_shapes = [root.input_shape] if len(names) == 1 else list(root.input_shape)
        rows = [SummaryRow(n, "Input", s, 0, 0, 1) for n, s in zip(names, in_shapes)] + rows
    # Totals come from the model's own params and state, not from adding up the rows.
    trainable, non_trainable = count_params(root.params), count_params(root.state)
    labels = [f"{r.path} ({r.layer})" + (f" x{r.copies}" if r.copies > 1 else "") for r in rows]
    shapes = [shape_str(r.output_shape) for r in rows]
    name_w = max([30] + [len(label) + 2 for label in labels])
    shape_w = max([20] + [len(shape) for shape in shapes])
    width = name_w + shape_w + 16
    links = None if connected is None else [connected.get(r.path.split("/")[0], "") for r in rows]
    if links is not None:
        width += 2 + max([12] + [len(link) for link in links])
    lines = [f"Model: {root.layer.name}, input shape {shape_str(tuple(input_shape))}", "─" * width,
             f"{'Layer (type)':<{name_w}} {'Output Shape':<{shape_w}} {'Param #':>14}"
             + ("  Connected to" if links is not None else ""), "═" * width]
    for i, (label, shape, r) in enumerate(zip(labels, shapes, rows)):
        link = "" if links is None or (i and rows[i - 1].path.split("/")[0] == r.path.split("/")[0]) else links[i]
        lines.append((f"{label:<{name_w}} {shape:<{shape_w}} {_fmt(r.trainable + r.non_trainable):>14}"
                      + (f"  {link}" if link else "")).rstrip())
    lines += ["═" * width, f"Total params: {_fmt(trainable + non_trainable)}",
              f"Trainable params: {_fmt(trainable)}", f"Non-trainable params: {_fmt(non_trainable)}"]
    return "\n".join(lines)

"""Training-history plots (matplotlib is an optional extra: ``pip install fnnet[plots]``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def _quantities(history: Mapping) -> list:
    """Base names in first-seen order: ``'loss'`` for both ``loss`` and ``val_loss``."""
    names = []
    for key in history:
        base = key[len("val_"):] if key.startswith("val_") else key
        if base not in names:
            names.append(base)
    return names


def _curve(history: Mapping, key: str) -> np.ndarray:
    try:
        values = np.asarray(history[key], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"plot_history: history[{key!r}] is not a list of numbers ({e})") from None
    if values.ndim != 1:
        raise ValueError(f"plot_history: history[{key!r}] must be one number per epoch, got shape {values.shape}")
    return values


def plot_history(history, path, title=None) -> Path:
    """Writes a PNG with one subplot per quantity (loss, each metric) over the epochs.

    ``history`` is a dict of per-epoch number lists (``{'loss': [...], 'val_loss': [...],
    'mae': [...]}``) or an object with such a ``.history`` dict (``fit``'s result, a
    Keras ``History``). Each subplot shows the training curve and, when present, the
    ``val_`` curve. Returns the path written. Uses matplotlib's Agg canvas directly, so
    the global backend and pyplot's state are left alone.

    >>> import fnnet, os, tempfile
    >>> path = fnnet.plot_history({'loss': [1.0, 0.5, 0.3], 'val_loss': [1.1, 0.7, 0.6]},
    ...                           os.path.join(tempfile.mkdtemp(), 'history.png'), title='MLP')
    >>> path.read_bytes()[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
    True
    """
    history = getattr(history, "history", history)
    if not isinstance(history, Mapping) or not history:
        raise ValueError("plot_history: history must be a non-empty dict of per-epoch lists "
                         f"(or have a .history dict), got {type(history).__name__}")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as e:
        raise ImportError("plot_history needs matplotlib; install it with: pip install fnnet[plots]") from e

    names = _quantities(history)
    columns = min(len(names), 2)
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(5.5 * columns, 3.5 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "training", "-"), (f"val_{name}", "validation", "--")):
            if key in history:
                values = _curve(history, key)
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, style, marker="o" if len(values) <= 30 else None, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(ax.get_lines()) > 1:
            ax.legend()
    for ax in axes[len(names):]:
        figure.delaxes(ax)
    if title:
        figure.suptitle(title)
    path = Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path

"""Keras-style progress output for fit.

``verbose=1``: one line per epoch,
``Epoch 3/20  46/46 [==============================] 0.4s 9ms/step - loss: 0.0123 - val_loss: 0.0456``,
redrawn in place as a live bar while a long epoch runs when the output is a terminal.
``verbose=2``: the same line without the bar. ``verbose=0``: nothing.
"""

from __future__ import annotations

import sys

BAR_WIDTH = 30


def format_value(value: float) -> str:
    """A log value as Keras prints it: 4 decimals, or scientific when tiny or huge.

    >>> from fnnet.training.progress import format_value
    >>> format_value(0.01234), format_value(1.5e-05), format_value(123456.0)
    ('0.0123', '1.5000e-05', '1.2346e+05')
    """
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.4e}"


def format_seconds(seconds: float) -> str:
    """``35ms``, ``0.4s``, ``12s`` or ``2m 05s``.

    >>> from fnnet.training.progress import format_seconds
    >>> format_seconds(0.035), format_seconds(0.43), format_seconds(12.3), format_seconds(125)
    ('35ms', '0.4s', '12s', '2m 05s')
    """
    if seconds < 0.1:
        return f"{seconds * 1e3:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m {rest:02d}s"


def format_step_time(seconds: float) -> str:
    """Time per step: ``9ms/step`` or ``450us/step``.

    >>> from fnnet.training.progress import format_step_time
    >>> format_step_time(0.009), format_step_time(0.00045)
    ('9ms/step', '450us/step')
    """
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def bar(done: int, total: int) -> str:
    """``[=====>....]`` for ``done`` of ``total`` steps.

    >>> from fnnet.training.progress import bar
    >>> bar(5, 10)
    '[===============>..............]'
    """
    filled = BAR_WIDTH * done // max(total, 1)
    if done >= total:
        return "[" + "=" * BAR_WIDTH + "]"
    return "[" + "=" * filled + ">" + "." * (BAR_WIDTH - filled - 1) + "]"


def format_logs(logs: dict) -> str:
    """`` - loss: 0.0123 - val_loss: 0.0456`` (in the order given)."""
    return "".join(f" - {key}: {format_value(value)}" for key, value in logs.items())


class Progress:
    """Writes fit's progress to ``stream`` (``sys.stdout`` at the time of the call by default).

    >>> import io
    >>> from fnnet.training.progress import Progress
    >>> out = io.StringIO()
    >>> p = Progress(epochs=20, steps=46, verbose=1, stream=out)
    >>> p.end_epoch(2, {'loss': 0.0123}, seconds=0.41)
    >>> out.getvalue()
    'Epoch 3/20  46/46 [==============================] 0.4s 9ms/step - loss: 0.0123\\n'
    """

    def __init__(self, epochs: int, steps: int, verbose: int = 1, stream=None):
        self.epochs, self.steps, self.verbose = epochs, steps, verbose
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        # Redrawing with '\r' only makes sense on a terminal; logs and notebooks get the final line.
        self.live = verbose == 1 and bool(isatty and isatty())

    def _prefix(self, epoch: int, done: int) -> str:
        line = f"Epoch {epoch + 1}/{self.epochs}  {done}/{self.steps}"
        return line + (" " + bar(done, self.steps) if self.verbose == 1 else "")

    def update(self, epoch: int, done: int, seconds: float, logs: dict) -> None:
        """Redraw the live bar after ``done`` steps (terminals only)."""
        if not self.live:
            return
        eta = seconds / max(done, 1) * (self.steps - done)
        self.stream.write("\r" + self._prefix(epoch, done) + f" ETA {format_seconds(eta)}" + format_logs(logs))
        self.stream.flush()

    def end_epoch(self, epoch: int, logs: dict, seconds: float) -> None:
        """The epoch's final line."""
        if not self.verbose:
            return
        per_step = format_step_time(seconds / max(self.steps, 1))
        line = self._prefix(epoch, self.steps) + f" {format_seconds(seconds)} {per_step}" + format_logs(logs)
        self.stream.write(("\r" if self.live else "") + line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line from fit or a callback (e.g. a learning-rate reduction), shown unless ``verbose=0``."""
        if self.verbose:
            self.stream.write(text + "\n")
            self.stream.flush()

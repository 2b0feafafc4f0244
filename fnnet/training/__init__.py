"""Training: ``fit``, ``evaluate``, ``predict``, callbacks, progress and data parallelism.

Modules: :mod:`.loop` (the three entry points), :mod:`.steps` (the jitted train step and
epoch scan), :mod:`.callbacks`, :mod:`.progress`, :mod:`.sharding` (``mesh=``), and what a
run is made of: :mod:`.losses`, :mod:`.metrics`, :mod:`.optimizers` (also importable as
``fnnet.losses``, ``fnnet.metrics``, ``fnnet.optimizers``) and :mod:`.plots` (``plot_history``).
"""

from .callbacks import (Callback, CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, TrainingEndError,
                        TrainingRun, as_callback)
from .validation import DataError, check_data
from .loop import FitResult, NonFiniteLossError, evaluate, fit, predict

__all__ = ["CSVLogger", "Callback", "DataError", "EarlyStopping", "FitResult", "ModelCheckpoint",
           "NonFiniteLossError", "ReduceLROnPlateau", "TrainingEndError", "TrainingRun", "as_callback", "check_data",
           "evaluate", "fit", "predict"]

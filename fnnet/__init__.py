"""fnnet: models as pure functions on JAX, with Keras-level comfort.

A layer is an ``(init, apply)`` pair with the contract of ``jax.example_libraries.stax``;
models are layers built with combinators. Every public name is re-exported here.
"""

import sys as _sys

from .combinators import FanInConcat, FanInSum, FanOut, Identity, Residual, parallel, serial, shape_dependent
from .core import (LAYER_REGISTRY, SINGLETONS, Layer, LayerError, Node, as_layer, child_keys, error_path,
                   expect_last_dim, expect_positive_int, is_empty, layer, output_shape, registered, shape_str,
                   singleton, snake_case, split_rng, walk)
from .initializers import INITIALIZERS, get_initializer
from .layers import *  # noqa: F401,F403  (the list lives in layers/__init__.py)
from .graph import Input, Model, Sequential, SymbolicTensor, call_layer_symbolically
from .structure.summary import SummaryRow, count_params, summary, summary_rows
from .io.spec import SpecError, from_spec, register_layer, to_spec
from .structure.eval_init import eval_init, tree_differences
from .io.saved_model import SavedModelError, load_model, load_model_metadata, save_model, saved_input_shape
from .structure.diagrams import Diagram, DiagramNode, model_diagram, model_to_dot, model_to_svg, plot_model
from .structure.surgery import SurgeryError, insert_layer, remove_layer, replace_layer
from .data.tabular import TabularPreprocessor
from .ensemble import Ensemble, ensemble_loss, ensemble_metric, member_params
from .io.checkpoint import (CheckpointError, CheckpointMismatchError, CheckpointNotFoundError, checkpoint_manifest,
                            keypath_str, load_checkpoint, save_checkpoint, tree_paths)
from . import data  # noqa: F401  (fnnet.data stays a submodule; its common names are flat too)
from .data import StandardScaler, Tokenizer, add_weighted_sums, batches, one_hot, pad_sequences, train_val_split
from .training.plots import plot_history
from .training import losses, metrics, optimizers  # noqa: F401  (submodules with the Keras names)
from .training.losses import get_loss
from .training.metrics import get_metric
from .training.optimizers import freeze, get_optimizer
from .training import (CSVLogger, Callback, DataError, EarlyStopping, FitResult, ModelCheckpoint, NonFiniteLossError,
                       ReduceLROnPlateau, TrainingEndError, TrainingRun, check_data, evaluate, fit, predict)
from . import neighbors  # noqa: F401  (fnnet.neighbors.kneighbors / classify / regress)
from .neighbors import KNNClassifier, KNNRegressor
from .keras.importer import KerasImport, KerasImportError, from_keras
from .keras.exporter import KerasExportError, to_keras
from .data.text import TextDataError, TextDataset, load_imdb, load_rt_polarity, load_text_csv, load_text_dataset

# They live in training/; the aliases keep `import fnnet.losses` / `from fnnet.losses import X` working.
_sys.modules[__name__ + ".losses"] = losses
_sys.modules[__name__ + ".metrics"] = metrics
_sys.modules[__name__ + ".optimizers"] = optimizers

__version__ = "0.1.0"

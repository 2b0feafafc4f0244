"""fnnet: models as pure functions on JAX, with Keras-level comfort.

A layer is an ``(init, apply)`` pair with the contract of ``jax.example_libraries.stax``;
models are layers built with combinators. Every public name is re-exported here.
"""

from .combinators import FanInConcat, FanInSum, FanOut, Identity, Residual, parallel, serial, shape_dependent
from .core import (Context, Layer, LayerError, as_layer, call_layer, expect_last_dim, init_state,
                   init_with_state, leaf, make_layer, output_shape, registered, shape_str, singleton)
from .initializers import INITIALIZERS, get_initializer
from .layers import *  # noqa: F401,F403  (the list lives in layers/__init__.py)
from .layers import __all__ as _layer_names  # noqa: F401
from .summary import SummaryRow, count_params, summary, summary_rows

__version__ = "0.1.0"

"""Property tests for layers: :func:`check_layer` and hypothesis strategies.

``fnnet.testing.check_layer(layer, input_shape, ...)`` checks the layer contract with
hypothesis; ``fnnet.testing.strategies`` holds the strategies it draws from;
``fnnet.testing.layer_contract_test`` (needs pytest) turns a layer into a one-line test.
"""

from . import strategies
from .check import PROPERTIES, PropertyViolation, check_layer

__all__ = ["PROPERTIES", "PropertyViolation", "check_layer", "layer_contract_test", "strategies"]


def __getattr__(name):
    # pytest is not a dependency of fnnet: the plugin module is imported only when asked for.
    if name == "layer_contract_test":
        try:
            import pytest  # noqa: F401
        except ImportError as e:
            raise ImportError("fnnet.testing.layer_contract_test makes pytest tests and needs pytest: "
                              "pip install pytest (check_layer works without it)") from e
        from .pytest_plugin import layer_contract_test
        return layer_contract_test
    raise AttributeError(f"module 'fnnet.testing' has no attribute {name!r}")

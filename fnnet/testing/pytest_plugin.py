"""A pytest plugin for fnnet users: one line per layer in their own test suite.

Registered as the ``fnnet`` pytest11 entry point, it adds the ``check_layer`` fixture;
:func:`layer_contract_test` builds a test function (and works without the plugin loaded)::

    # tests/test_my_layers.py
    from fnnet.testing import layer_contract_test
    test_scale = layer_contract_test(Scale(), (-1, 3))

The plugin defines no hooks, so loading it changes nothing about a test run; it only
imports fnnet (and so JAX and hypothesis).
"""

from __future__ import annotations

import pytest


@pytest.fixture
def check_layer():
    """:func:`fnnet.testing.check_layer`, as a fixture for tests that take it as an argument."""
    from .check import check_layer as check
    return check


def layer_contract_test(layer, input_shape, **flags):
    """Return a pytest test function that runs ``check_layer(layer, input_shape, **flags)``.

    ``layer`` may be a layer or a function of no arguments that builds one (so building
    it waits until the test runs).

    >>> import fnnet
    >>> test_tanh = layer_contract_test(fnnet.Tanh, (-1, 3), max_examples=2)
    >>> test_tanh.__name__
    'test_contract_Tanh'
    >>> test_tanh()
    """

    from ..core import Layer

    def build():
        return layer if isinstance(layer, (tuple, Layer)) else layer()

    def test():
        from .check import check_layer as check
        check(build(), input_shape, **flags)

    # A layer's type (Tanh), not its key (tanh); a builder function by its own name.
    label = layer.description if isinstance(layer, Layer) else getattr(layer, "__name__", "layer")
    test.__name__ = test.__qualname__ = "test_contract_" + "".join(c if c.isalnum() else "_" for c in label)
    test.__doc__ = f"The layer contract of {label} for input shape {input_shape}."
    return test

"""Keras 3 on the JAX backend for the tests that compare against it, or a clear skip."""

import os

import pytest


def keras_or_skip(what: str):
    """Import Keras with the JAX backend, skipping the calling test module (with ``what`` in
    the reason) when Keras is missing or was already imported with another backend."""
    os.environ["KERAS_BACKEND"] = "jax"  # before Keras is first imported
    keras = pytest.importorskip("keras", reason=f"Keras 3 is not installed (pip install 'fnnet[keras]'); "
                                                f"the {what} tests compare against it")
    if keras.backend.backend() != "jax":
        pytest.skip(f"Keras was already imported with the {keras.backend.backend()!r} backend; "
                    "these tests need 'jax'", allow_module_level=True)
    return keras

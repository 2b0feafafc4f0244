"""Initializers by name: Keras's names mapped to ``jax.nn.initializers``.

Constructors take an initializer either as a callable ``(key, shape, dtype) -> array``
or as one of these names, which keeps layer specs serialisable.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import jax.nn.initializers as jinit


def _keras_uniform(key, shape, dtype=jnp.float32):
    """Keras's ``RandomUniform()``: uniform on [-0.05, 0.05)."""
    return jax.random.uniform(key, shape, dtype, -0.05, 0.05)


INITIALIZERS: dict[str, Callable] = {
    "glorot_uniform": jinit.glorot_uniform(),
    "glorot_normal": jinit.glorot_normal(),
    "he_uniform": jinit.he_uniform(),
    "he_normal": jinit.he_normal(),
    "lecun_uniform": jinit.lecun_uniform(),
    "lecun_normal": jinit.lecun_normal(),
    "orthogonal": jinit.orthogonal(),
    "zeros": jinit.zeros,
    "ones": jinit.ones,
    "normal": jinit.normal(0.05),  # Keras's RandomNormal(): stddev 0.05
    "uniform": _keras_uniform,
}


def get_initializer(init) -> Callable:
    """Resolve an initializer given by name or as a callable.

    >>> import fnnet, jax
    >>> fnnet.get_initializer('zeros')(jax.random.PRNGKey(0), (2,)).tolist()
    [0.0, 0.0]
    """
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except (KeyError, TypeError):
        raise ValueError(f"unknown initializer {init!r}; known names: {', '.join(sorted(INITIALIZERS))}") from None

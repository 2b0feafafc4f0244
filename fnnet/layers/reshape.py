"""Shape-changing layers: ``Flatten``, ``Reshape``."""

from __future__ import annotations

import jax.numpy as jnp

from ..core import layer, registered, singleton


def _flatten(params, x):
    return jnp.reshape(x, (x.shape[0], -1))


# Flatten all but the leading (batch) dimension; a ready-made layer, as in stax.
Flatten = singleton(layer("Flatten", _flatten), "Flatten")


@registered("Reshape")
def Reshape(target_shape):
    """Reshape each example to ``target_shape`` (batch dimension excluded; one entry may be -1).

    >>> import fnnet, jax
    >>> fnnet.Reshape((2, -1)).init(jax.random.PRNGKey(0), (-1, 6))[0]
    (-1, 2, 3)
    """
    target = tuple(target_shape)

    def apply(params, x):
        return jnp.reshape(x, (x.shape[0],) + target)

    return layer("Reshape", apply)

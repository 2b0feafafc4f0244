"""``Dropout`` with Keras's meaning of ``rate`` and the mode chosen at call time."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import layer, registered


@registered("Dropout")
def Dropout(rate):
    """Drop a fraction ``rate`` of the inputs during training (Keras's meaning).

    Unlike stax, whose ``Dropout(rate)`` takes the *keep* probability and fixes the mode
    when built, ``rate`` here is the fraction dropped, and the mode is chosen per call:
    ``apply(params, x, train=True, rng=key)`` drops and rescales by ``1 / (1 - rate)``;
    ``train=False`` (the default) is the identity. ``train=True`` without ``rng`` is an
    error. Stax code ``stax.Dropout(0.9)`` becomes ``fnnet.Dropout(0.1)``.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> layer = fnnet.Dropout(0.5)
    >>> layer.apply({}, jnp.ones(4)).tolist()
    [1.0, 1.0, 1.0, 1.0]
    >>> sorted(set(layer.apply({}, jnp.ones(100), train=True, rng=jax.random.PRNGKey(0)).tolist()))
    [0.0, 2.0]
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"Dropout rate must be in [0, 1), got {rate} (it is the fraction dropped)")

    def apply(params, x, *, train, rng):
        if not train or rate == 0.0:
            return x
        if rng is None:
            raise ValueError("train=True needs an rng: call apply(params, x, train=True, rng=key)")
        keep = jax.random.bernoulli(rng, 1.0 - rate, jnp.shape(x))
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))

    return layer("Dropout", apply)

"""The machine's float32 matmul peak: one n^3 product with ``jnp.dot``, numpy and ``torch.mm``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchlib import Contender

from .harness import import_torch


def contenders(n: int) -> list[Contender]:
    """``jnp.dot``, numpy and ``torch.mm`` multiplying two random float32 ``n x n`` matrices."""
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))

    def build_jax():
        da, db = jnp.asarray(a), jnp.asarray(b)
        return lambda: jnp.dot(da, db)

    def build_numpy():
        return lambda: a @ b

    def build_torch():
        torch = import_torch()
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.mm(ta, tb)

    return [Contender("jnp.dot", build_jax, flops=flops, note=f"on {jax.default_backend()}"),
            Contender("numpy", build_numpy, flops=flops, note="numpy's BLAS"),
            Contender("torch.mm", build_torch, flops=flops)]

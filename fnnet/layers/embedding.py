"""``Embedding``: integer token ids to vectors, optionally making a padding mask (id 0)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..core import expect_positive_int, layer, registered
from ..initializers import get_initializer



@registered("Embedding")
def Embedding(input_dim, output_dim, embeddings_init="uniform", *, mask_zero=False):
    """Look up a ``output_dim`` vector for each integer id in ``[0, input_dim)``.

    Params are ``{'embeddings': (input_dim, output_dim)}`` (Keras's layout). The default
    ``embeddings_init='uniform'`` is Keras's: uniform on ``[-0.05, 0.05)``; other names
    and callables resolve through :func:`fnnet.get_initializer`.

    With ``mask_zero=True``, id 0 is padding: the layer emits the mask ``ids != 0``
    (shape ``(batch, time)``), which combinators carry to later layers; recurrent layers
    skip masked steps and layers that ignore masks pass it on. ``input_dim`` must then
    count the padding id too (vocabulary size + 1), as in Keras.

    JAX cannot raise inside ``jit``, so an id outside ``[0, input_dim)`` (negative ones too) yields a vector of NaNs
    (loud in the loss) rather than an error.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> emb = fnnet.Embedding(1000, 8, mask_zero=True)
    >>> shape, params = emb.init(jax.random.PRNGKey(0), (-1, 5))
    >>> shape, params['embeddings'].shape
    ((-1, 5, 8), (1000, 8))
    >>> ids = jnp.array([[4, 7, 0, 0, 0]])
    >>> vectors, _, mask = emb.call(params, None, ids)
    >>> vectors.shape, mask.tolist()
    ((1, 5, 8), [[True, True, False, False, False]])
    """
    for argument, value in (("input_dim", input_dim), ("output_dim", output_dim)):
        expect_positive_int(value, f"Embedding: {argument}")
    init = get_initializer(embeddings_init)

    def init_params(rng, input_shape):
        return {"embeddings": init(rng, (input_dim, output_dim), jnp.float32)}

    def apply(params, ids):
        ids = jnp.asarray(ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            # Keras casts float ids too; doing the same keeps float-typed pipelines working.
            ids = ids.astype(jnp.int32)
        # Out-of-range ids, negative ones included (which would wrap around to the last rows),
        # give NaN vectors: loud in the loss. fit/evaluate/predict name them first (check_data).
        ids = jnp.where(ids < 0, input_dim, ids)
        return jnp.take(params["embeddings"], ids, axis=0, mode="fill", fill_value=jnp.nan)

    def padding_mask(ids, mask):
        return jnp.asarray(ids) != 0

    return layer("Embedding", apply, init_params, compute_mask=padding_mask if mask_zero else None)

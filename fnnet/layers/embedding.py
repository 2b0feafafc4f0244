"""``Embedding``: integer token ids to vectors, optionally making a padding mask (id 0)."""

from __future__ import annotations

import jax.numpy as jnp

from ..core import layer, registered
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

    JAX cannot raise inside ``jit``, so an id ``>= input_dim`` yields a vector of NaNs
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
    init = get_initializer(embeddings_init)

    def init_params(rng, input_shape):
        return {"embeddings": init(rng, (input_dim, output_dim), jnp.float32)}

    def apply(params, ids):
        ids = jnp.asarray(ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            # Keras casts float ids too; doing the same keeps float-typed pipelines working.
            ids = ids.astype(jnp.int32)
        return jnp.take(params["embeddings"], ids, axis=0)

    def padding_mask(ids, mask):
        return jnp.asarray(ids) != 0

    return layer("Embedding", apply, init_params, compute_mask=padding_mask if mask_zero else None)

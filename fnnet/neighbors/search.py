"""The exact k-nearest-neighbour search behind :mod:`fnnet.neighbors` (private).

One jitted function, :func:`search`, finds each query's ``k`` nearest training points
with bounded memory:

1. Queries are taken ``query_block`` at a time (``lax.map``); for each such chunk the
   training set is scanned ``train_block`` points at a time (``lax.scan``), so the only
   distance matrix alive is ``query_block x train_block``.
2. Each block is reduced at once to the minimum over every ``group`` consecutive training
   points (a cheap vectorised min), for euclidean and cosine from a ranking key that one
   matrix product gives (the ``||q||^2`` term, equal for all candidates, is dropped).
3. ``lax.top_k`` over those group minima picks the ``kept_groups`` best groups. The k
   nearest points always lie in the k groups with the smallest minima (a group holding one
   of them has its minimum at or before it in (distance, index) order), so this selection
   is exact; ``kept_groups`` adds a margin for float rounding of the ranking key.
4. The candidates of the kept groups (one kept group per query at a time) get their
   distances recomputed directly from the raw data (``sum((t - q)**2)``, no cancellation),
   and a last ``lax.top_k`` picks the ``k``.

Ties go to the lower training index everywhere: ``lax.top_k`` keeps the lower position
among equal values and positions are kept in training-index order (groups are contiguous
and sorted before their candidates are compared). The key is computed exactly for small
integer data (digits) thanks to :func:`_center`, so exact ties stay ties.

Costs, measured (N = 100,000 x 64, 2,000 queries): the matrix product with the group
minima about 75%, the candidate stage about 20%; gathering all kept groups at once
instead cost 40% more, and a ``lax.top_k`` over whole distance rows as much as the product.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

METRICS = ("euclidean", "manhattan", "cosine")

# Measured on 2 Zen 3 cores (scripts/bench_knn.py and CPU-time comparisons): a 512 x 2048
# distance block keeps the matrix product efficient and in cache.
QUERY_BLOCK = 512
TRAIN_BLOCK = 2048
# Groups kept beyond k, so that float32 rounding of the ranking key (which drops a term and
# may round near-ties apart) cannot push a true neighbour out of the candidates.
EXTRA_GROUPS = 4
DEFAULT_BLOCK_BYTES = 64 * 2**20


class SearchPlan(NamedTuple):
    """Static block sizes of one search; see :func:`plan_search`."""

    query_block: int
    n_query_blocks: int
    train_block: int
    n_train_blocks: int
    group: int
    kept_groups: int


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _group_size(n_train: int) -> int:
    """Training points per group: larger groups make the top_k over group minima cheaper,
    smaller ones the candidate stage (kept groups x group rows per query); measured best:
    16 up to 32k points, 32 up to 512k, 64 beyond. At least 4 groups for tiny sets."""
    group = 16 if n_train < 2**15 else 32 if n_train < 2**19 else 64
    while group > 1 and n_train < 4 * group:
        group //= 2
    return group


def plan_search(n_train: int, n_queries: int, n_features: int, k: int, metric: str,
                max_block_bytes: int = DEFAULT_BLOCK_BYTES, itemsize: int = 4) -> SearchPlan:
    """Choose block sizes so that no per-chunk buffer exceeds ``max_block_bytes``.

    The buffers of one query chunk are its distance block (``query_block x train_block``;
    manhattan's broadcast difference is fused into its sum, never stored), its group minima over the
    whole training set and the candidate rows of one kept group; training blocks shrink
    until one query's share fits, then ``query_block`` until the block fits (down to one
    query: the floor is one query's group minima and candidates).

    >>> plan_search(100_000, 2_000, 64, 5, "euclidean")
    SearchPlan(query_block=504, n_query_blocks=4, train_block=2048, n_train_blocks=49, group=32, kept_groups=9)
    """
    group = _group_size(n_train)
    train_block = min(TRAIN_BLOCK, _round_up(n_train, group))
    n_train_blocks = -(-n_train // train_block)
    n_groups = n_train_blocks * train_block // group
    kept_groups = min(k + EXTRA_GROUPS, n_groups)
    budget = max(1, max_block_bytes // itemsize)
    candidates = max(group * n_features, kept_groups * group)  # gathered rows of one kept group

    def per_query(tb):
        # the distance block, and the group minima held twice (stacked, then transposed).
        return max(tb, 2 * (-(-n_train // tb) * tb // group))

    while train_block > group and per_query(train_block) > budget:
        train_block = max(group, _round_up(train_block // 2, group))
    n_train_blocks = -(-n_train // train_block)
    largest = max(1, min(QUERY_BLOCK, n_queries, budget // max(per_query(train_block), candidates)))
    # Equal blocks, so that padding the last one wastes little (300 queries: 2 x 152, not 2 x 256).
    n_query_blocks = -(-n_queries // largest)
    query_block = -(-n_queries // n_query_blocks)
    if query_block > 8:
        query_block = min(largest, _round_up(query_block, 8))
    n_query_blocks = -(-n_queries // query_block)
    n_groups = n_train_blocks * train_block // group
    return SearchPlan(query_block, n_query_blocks, train_block, n_train_blocks,
                      group, min(k + EXTRA_GROUPS, n_groups))


def _center(train):
    """A per-feature offset near the mean, rounded to a power of two below the spread.

    Subtracting it keeps the ranking key ``||t||^2 - 2 q.t`` free of cancellation for data
    far from the origin, and keeps integer (or dyadic) data exact, so exact ties stay ties.
    """
    std = jnp.std(train, axis=0)
    step = jnp.exp2(jnp.floor(jnp.log2(jnp.where(std > 0, std, 1.0))))
    center = jnp.round(jnp.mean(train, axis=0) / step) * step
    return jnp.where(std > 0, center, train[0])


def _unit_rows(x):
    # Zero rows stay zero (cosine distance 1 to everything), as scikit-learn's normalize does.
    norm = jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True))
    return x / jnp.where(norm > 0, norm, 1.0)


def _exact_distances(metric, candidates, query):
    """Distances from ``query`` (..., d) to ``candidates`` (..., d), computed directly."""
    diff = candidates - query
    if metric == "euclidean":
        return jnp.sum(diff * diff, axis=-1)  # squared: same order, sqrt taken at the end
    if metric == "manhattan":
        return jnp.sum(jnp.abs(diff), axis=-1)
    return jnp.clip(1.0 - jnp.sum(candidates * query, axis=-1), 0.0, 2.0)


@functools.partial(jax.jit, static_argnames=("k", "metric", "plan"))
def search(train_x, query_x, *, k: int, metric: str, plan: SearchPlan):
    """``(distances, indices)`` of the ``k`` nearest rows of ``train_x`` for each query.

    Inputs must already be validated (2-D, same feature count, finite, ``k <= n_train``).
    """
    dtype = jnp.result_type(train_x.dtype, query_x.dtype, jnp.float32)
    train, queries = train_x.astype(dtype), query_x.astype(dtype)
    n_train, n_queries = train.shape[0], queries.shape[0]
    mq, tb, g, kept = plan.query_block, plan.train_block, plan.group, plan.kept_groups
    n_padded = plan.n_train_blocks * tb

    if metric == "cosine":
        train, queries = _unit_rows(train), _unit_rows(queries)
    exact_train = jnp.pad(train, ((0, n_padded - n_train), (0, 0)))
    # +inf on padding rows keeps them last in every ranking.
    padding_bias = jnp.where(jnp.arange(n_padded) < n_train, 0.0, jnp.inf).astype(dtype)
    if metric == "euclidean":
        center = _center(train)
        key_train = jnp.pad(train - center, ((0, n_padded - n_train), (0, 0)))
        key_bias = jnp.sum(key_train * key_train, axis=1) + padding_bias
        key_queries = -2.0 * (queries - center)  # scaling by 2 is exact
    elif metric == "cosine":
        key_train, key_bias, key_queries = exact_train, padding_bias, -queries
    else:
        key_train, key_bias, key_queries = exact_train, padding_bias, queries

    def block_group_minima(q_chunk, block):
        """Group minima of one query chunk against one training block: (tb // g, mq)."""
        t_block, bias = block
        if metric == "manhattan":
            keys = jnp.sum(jnp.abs(t_block[:, None, :] - q_chunk[None, :, :]), axis=-1)
        else:
            keys = jnp.dot(t_block, q_chunk.T)
        keys = keys + bias[:, None]
        return keys.reshape(tb // g, g, mq).min(axis=1)

    def query_chunk(chunk):
        q_keys, q_exact = chunk
        blocks = (key_train.reshape(plan.n_train_blocks, tb, -1),
                  key_bias.reshape(plan.n_train_blocks, tb))
        _, minima = lax.scan(lambda c, b: (c, block_group_minima(q_keys, b)), None, blocks)
        minima = minima.reshape(n_padded // g, mq).T
        _, best_groups = lax.top_k(-minima, kept)
        best_groups = jnp.sort(best_groups, axis=1)  # training-index order for the tie-break
        groups = exact_train.reshape(n_padded // g, g, -1)

        def kept_slot(carry, group_ids):
            # One kept group per query at a time: gathering all of them at once would
            # materialise (mq, kept, g, d) floats and cost 40% of the search.
            return carry, _exact_distances(metric, groups[group_ids], q_exact[:, None, :])

        _, dist = lax.scan(kept_slot, None, best_groups.T)  # (kept, mq, g)
        dist = jnp.moveaxis(dist, 0, 1).reshape(mq, kept * g)
        indices = (best_groups[:, :, None] * g + jnp.arange(g)).reshape(mq, kept * g)
        dist = dist + padding_bias[indices]
        neg_best, position = lax.top_k(-dist, k)
        return -neg_best + 0.0, jnp.take_along_axis(indices, position, axis=1)  # + 0.0: no -0.0

    n_padded_q = plan.n_query_blocks * mq
    pad_q = ((0, n_padded_q - n_queries), (0, 0))
    chunks = (jnp.pad(key_queries, pad_q).reshape(plan.n_query_blocks, mq, -1),
              jnp.pad(queries, pad_q).reshape(plan.n_query_blocks, mq, -1))
    dist, idx = lax.map(query_chunk, chunks)
    dist, idx = dist.reshape(n_padded_q, k)[:n_queries], idx.reshape(n_padded_q, k)[:n_queries]
    if metric == "euclidean":
        dist = jnp.sqrt(dist)
    return dist, idx.astype(jnp.int32)

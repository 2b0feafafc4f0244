"""W3, k-nearest-neighbour classification: fnnet.neighbors against scikit-learn's brute
force and ``'auto'``, and a plain chunked jitted JAX version; each contender's answers
are checked against scikit-learn's brute force."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchlib import Contender, require

from .sizes import Sizes


def knn_flops(queries: int, points: int, features: int) -> float:
    """FLOPs of the distance matmul: ``2 * queries * points * features``.

    >>> knn_flops(2000, 100_000, 64) / 1e9
    25.6
    """
    return float(2 * queries * points * features)


def knn_data(s: Sizes):
    """Points around one centre per class, so the neighbours' vote means something."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((s.knn_classes, s.knn_features), dtype=np.float32) * 2.0
    labels = rng.integers(0, s.knn_classes, size=s.knn_points + s.knn_queries).astype(np.int32)
    points = centres[labels] + rng.standard_normal((len(labels), s.knn_features), dtype=np.float32)
    return points[:s.knn_points], labels[:s.knn_points], points[s.knn_points:]


def _chunked_knn(s: Sizes):
    """Plain jitted JAX: queries in chunks, ``||p||^2 - 2 q.p`` (``||q||^2`` cannot change the
    ranking), ``lax.top_k``, then the vote (ties to the smallest label)."""
    k, chunk, classes = s.knn_k, s.knn_chunk, s.knn_classes

    @jax.jit
    def classify(points, labels, queries):
        points_sq = jnp.sum(points * points, axis=1)

        def one_chunk(q):
            _, nearest = jax.lax.top_k(2.0 * q @ points.T - points_sq, k)
            votes = jax.nn.one_hot(labels[nearest], classes).sum(axis=1)
            return jnp.argmax(votes, axis=1)

        padded = -(-queries.shape[0] // chunk) * chunk
        queries_ = jnp.pad(queries, ((0, padded - queries.shape[0]), (0, 0)))
        return jax.lax.map(one_chunk, queries_.reshape(-1, chunk, queries.shape[1])).reshape(-1)[:queries.shape[0]]

    return classify


def classify_contenders(s: Sizes) -> list[Contender]:
    """Labels (or neighbour indices) of ``s.knn_queries`` queries; models fitted untimed."""
    points, labels, queries = knn_data(s)
    flops = knn_flops(s.knn_queries, s.knn_points, s.knn_features)

    def on_device():
        return jnp.asarray(points), jnp.asarray(labels), jnp.asarray(queries)

    def build_fnnet():
        neighbors = require("fnnet.neighbors")
        p, l, q = on_device()
        return lambda: neighbors.classify(p, l, q, k=s.knn_k)

    def build_fnnet_kneighbors():
        neighbors = require("fnnet.neighbors")
        p, _, q = on_device()
        return lambda: neighbors.kneighbors(p, q, s.knn_k)[1]

    def build_jax():
        classify, (p, l, q) = _chunked_knn(s), on_device()
        return lambda: classify(p, l, q)

    def build_sklearn(algorithm, what="predict"):
        sk = require("sklearn.neighbors")
        model = sk.KNeighborsClassifier(n_neighbors=s.knn_k, algorithm=algorithm).fit(points, labels)
        if what == "kneighbors":
            return lambda: model.kneighbors(queries, return_distance=False)
        return lambda: model.predict(queries)

    p = functools.partial
    return [
        Contender("fnnet", build_fnnet, flops=flops, note="fnnet.neighbors.classify, data on device"),
        Contender("fnnet.kneighbors", build_fnnet_kneighbors, flops=flops, note="indices only"),
        Contender("jax chunked", build_jax, flops=flops, note=f"jit, {s.knn_chunk} queries a chunk, top_k"),
        Contender("sklearn brute", p(build_sklearn, "brute"), flops=flops, note="predict, fitted beforehand"),
        Contender("sklearn auto", p(build_sklearn, "auto"), flops=flops, note="predict, fitted beforehand"),
        Contender("sklearn brute kneighbors", p(build_sklearn, "brute", "kneighbors"), flops=flops,
                  note="indices only"),
    ]


def agreement(found: dict, rows: dict) -> None:
    """Each KNN contender's agreement with scikit-learn's brute force (labels, or neighbour
    index sets for the ``kneighbors`` ones), as ``agreement`` and in the note."""
    references = {False: found.get("sklearn brute"), True: found.get("sklearn brute kneighbors")}
    for name, row in rows.items():
        is_index = "kneighbors" in name
        reference = references[is_index]
        if reference is None or reference.skipped or name.startswith("sklearn brute"):
            continue
        ours, theirs = np.asarray(found[name].first_result), np.asarray(reference.first_result)
        if is_index:
            same = np.mean([set(a) == set(b) for a, b in zip(ours, theirs)])
        else:
            same = np.mean(ours.reshape(-1) == theirs.reshape(-1))
        row["agreement"] = float(same)
        row["note"] = f"{row['note']}; agrees {100 * same:.1f}%".lstrip("; ")

"""The sizes of every workload: :data:`FULL` (the issue's) and :data:`TINY` (code paths only)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size a workload uses; :data:`TINY` shrinks them all to check the code paths."""

    mlp_rows: int = 1460
    mlp_features: int = 78
    mlp_hidden: tuple = (400, 200)
    mlp_batches: tuple = (32, 1024)  # for w1_epoch_b32, w1_epoch_b1024
    vocab: int = 20000
    embed: int = 128
    units: int = 128
    classes: int = 2
    train_batch: int = 64
    seq_lengths: tuple = (200, 80)  # for w2_train_t200, w2_train_t80
    infer_length: int = 200
    infer_batches: tuple = (64, 512)  # for w2_infer_b64, w2_infer_b512
    knn_points: int = 100_000
    knn_features: int = 64
    knn_queries: int = 2000
    knn_k: int = 5
    knn_classes: int = 10
    knn_chunk: int = 100  # queries per chunk of the plain JAX version
    matmul_sizes: tuple = (2048, 4096)  # for matmul_2048, matmul_4096


FULL = Sizes()
TINY = Sizes(mlp_rows=70, mlp_features=6, mlp_hidden=(8, 4), mlp_batches=(16, 48), vocab=30, embed=4, units=4,
             train_batch=4, seq_lengths=(5, 3), infer_length=5, infer_batches=(4, 8), knn_points=300,
             knn_features=4, knn_queries=20, knn_k=3, knn_classes=3, knn_chunk=10, matmul_sizes=(32, 64))

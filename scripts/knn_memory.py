"""Does ``fnnet.neighbors.kneighbors`` stay within a memory budget on a large problem?

The issue's check: N = 1,000,000 training points x 32 features, 10,000 queries, k = 5,
must complete within 2 GB of extra memory. The search runs in a fresh subprocess that
creates the data, notes its peak resident set size (``ru_maxrss``: Python, JAX and the
data), runs the search once, and reports how much the peak grew. The inputs and a few
O(N x features) copies of the training set (padding, centring) are expected; a full
queries x N distance matrix (40 GB here) is not.

    python scripts/knn_memory.py                      # the issue's sizes, 2 GB limit
    python scripts/knn_memory.py --n-train 200000 --queries 2000 --limit-gb 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import numpy as np
import jax
from fnnet.neighbors import kneighbors

n_train, n_queries, features, k, metric = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
train = rng.standard_normal((n_train, features), dtype=np.float32)
queries = rng.standard_normal((n_queries, features), dtype=np.float32)
jax.numpy.zeros(1).block_until_ready()  # the backend's start-up memory belongs to the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
distances, indices = jax.block_until_ready(kneighbors(train, queries, k, metric))
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"baseline_mb": before / 1024, "peak_mb": after / 1024, "seconds": seconds,
                  "shape": list(indices.shape)}))
"""


def measure(n_train: int, n_queries: int, features: int, k: int, metric: str) -> dict:
    """Run one search in a subprocess; ``extra_mb`` is how much its peak RSS grew (Linux: KB units)."""
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([n_train, n_queries, features, k, metric])],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the search subprocess failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found["extra_mb"] = found["peak_mb"] - found["baseline_mb"]
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--metric", default="euclidean", choices=["euclidean", "manhattan", "cosine"])
    parser.add_argument("--limit-gb", type=float, default=2.0)
    args = parser.parse_args(argv)
    found = measure(args.n_train, args.queries, args.features, args.k, args.metric)
    data_mb = 4 * (args.n_train + args.queries) * args.features / 2**20
    full_mb = 4 * args.n_train * args.queries / 2**20
    print(f"N={args.n_train:,} x {args.features}, {args.queries:,} queries, k={args.k}, {args.metric}: "
          f"{found['seconds']:.1f} s, peak RSS {found['peak_mb']:.0f} MB, extra {found['extra_mb']:.0f} MB "
          f"(inputs {data_mb:.0f} MB; a full distance matrix would be {full_mb:,.0f} MB)")
    ok = found["extra_mb"] <= 1024 * args.limit_gb
    print(f"{'OK' if ok else 'OVER'}: limit {args.limit_gb} GB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

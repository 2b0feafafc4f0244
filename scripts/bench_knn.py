"""How fast is ``fnnet.neighbors.kneighbors``? W3 of PERFORMANCE.md, against scikit-learn, in one run.

N training points x F features of standard-normal float32 data, Q queries, k nearest
(default: N = 100,000, F = 64, Q = 2,000, k = 5, euclidean). Contenders, interleaved
round by round with ``scripts/benchlib.py`` (medians; the first call, with fnnet's XLA
compilation, is reported apart as ``first call``):

- ``fnnet``: ``fnnet.neighbors.kneighbors(train, queries, k)`` on numpy inputs, as users
  call it (input checks included);
- ``sklearn_brute`` / ``sklearn_auto``: ``NearestNeighbors(algorithm=...)`` fitted once
  (untimed), ``kneighbors(queries)`` timed; on the same float32 data;
- ``sklearn_brute_f64``: brute force on float64 copies (scikit-learn computes in float64
  either way; whichever is faster is the one to beat).

After timing, fnnet's answer is compared with scikit-learn's brute force: rows with the
same neighbours (as sets; scikit-learn orders equal distances arbitrarily) and the largest
distance difference. ``--quick``: N = 10,000 and 3 rounds, for a smoke run.

    python scripts/bench_knn.py                 # the issue's workload
    python scripts/bench_knn.py --quick
    python scripts/bench_knn.py --json knn.json --rounds 7
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import (Contender, cpu_threads, format_table, measure, require, skipped, summarize,  # noqa: E402
                      versions, write_json)

# float32 matmul peak for "% peak" unless --peak-gflops says otherwise: numpy 2048^3 on the
# reference machine of PERFORMANCE.md (scripts/bench.py measures it in the same run instead).
DEFAULT_PEAK_GFLOPS = 130.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--metric", default="euclidean", choices=["euclidean", "manhattan", "cosine"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peak-gflops", type=float, default=DEFAULT_PEAK_GFLOPS)
    parser.add_argument("--quick", action="store_true", help="N = 10,000 and 3 rounds")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.rounds = min(args.n_train, 10_000), min(args.rounds, 3)
    return args


def make_data(args):
    rng = np.random.default_rng(args.seed)
    train = rng.standard_normal((args.n_train, args.features), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.features), dtype=np.float32)
    return train, queries


def contenders(args, train, queries):
    def fnnet_build():
        from fnnet.neighbors import kneighbors
        return lambda: kneighbors(train, queries, args.k, args.metric)

    def sklearn_build(algorithm, dtype=np.float32):
        def build():
            neighbors = require("sklearn.neighbors")
            model = neighbors.NearestNeighbors(n_neighbors=args.k, algorithm=algorithm, metric=args.metric)
            model.fit(train.astype(dtype))
            q = queries.astype(dtype)
            return lambda: model.kneighbors(q)
        return build

    # The distance matrix product; the metrics without one are not counted.
    flops = 2.0 * args.n_train * args.queries * args.features if args.metric != "manhattan" else None
    return [
        Contender("fnnet", fnnet_build, flops=flops, note="kneighbors on numpy inputs"),
        Contender("sklearn_brute", sklearn_build("brute"), flops=flops, note="float32 inputs"),
        Contender("sklearn_auto", sklearn_build("auto"), flops=flops, note="float32 inputs"),
        Contender("sklearn_brute_f64", sklearn_build("brute", np.float64), flops=flops, note="float64 inputs"),
    ]


def agreement(found):
    """Rows whose neighbour sets match scikit-learn brute force's, and the largest distance gap."""
    ours, theirs = found.get("fnnet"), found.get("sklearn_brute")
    if ours is None or theirs is None or ours.skipped or theirs.skipped:
        return None
    (d1, i1), (d2, i2) = (np.asarray(a) for a in ours.first_result), theirs.first_result
    same_sets = np.mean([set(a) == set(b) for a, b in zip(i1, i2)])
    return {"same_neighbour_sets": float(same_sets), "max_distance_difference": float(np.abs(d1 - d2).max())}


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    train, queries = make_data(args)
    title = (f"kneighbors: N={args.n_train:,} x {args.features}, {args.queries:,} queries, k={args.k}, "
             f"{args.metric}, {cpu_threads()} CPU threads, {args.rounds} rounds")
    print(title, flush=True)
    found = measure(contenders(args, train, queries), rounds=args.rounds, log=print)
    rows = summarize(found, peak_gflops=args.peak_gflops)
    print(format_table("knn", rows, skipped(found)))
    agree = agreement(found)
    if agree:
        print(f"agreement with sklearn_brute: {100 * agree['same_neighbour_sets']:.2f}% of rows have the same "
              f"neighbours, max distance difference {agree['max_distance_difference']:.2g}")
    if args.json:
        meta = {"args": vars(args), "cpu_threads": cpu_threads(), "agreement": agree,
                "versions": versions(["jax", "jaxlib", "numpy", "sklearn"])}
        write_json(args.json, {"knn": rows}, meta)


if __name__ == "__main__":
    main()

"""fnnet side by side with Flax (linen, NNX), Equinox, Haiku, stax, Keras 3, PyTorch and
scikit-learn: the tutorial's three workloads and the machine's matmul peak, in one run.

    python scripts/bench.py --quick                      # every workload, 3 rounds (< 5 min)
    python scripts/bench.py --json bench.json            # full mode, 11 rounds
    python scripts/bench.py --quick --rounds 1 --workloads w1_epoch_b32
    python scripts/bench.py --list                       # workloads and contenders, nothing run

Workloads (names are the JSON keys):

- ``matmul_2048``, ``matmul_4096``: float32 n^3 matmul with ``jnp.dot``, numpy and
  ``torch.mm``; the best GFLOP/s seen is "the peak" for the fractions below.
- ``w1_epoch_b32``, ``w1_epoch_b1024``: one epoch of the tutorial's MLP (78 -> 400 relu ->
  200 relu -> 1, MSE, Adam, float32, 1,460 rows, shuffled every epoch, the last partial
  batch included) at batch 32 and 1024: each library's idiomatic form (a Python loop over
  a jitted step; Keras ``fit``; PyTorch eager), the JAX libraries' best form (the whole
  epoch as one jitted ``lax.scan``), and ``fnnet.fit(..., epochs=1, verbose=0)`` itself.
- ``w2_train_t200``, ``w2_train_t80``: one Adam train step of the sentiment LSTM
  (Embedding(20000, 128) -> LSTM(128) -> Dense(2), softmax cross-entropy) at batch 64;
  ``w2_infer_b64``, ``w2_infer_b512``: its forward pass at length 200 (sequences/s).
- ``w3_knn_100k``: k=5 nearest neighbours of 2,000 queries among 100,000 x 64 points.

FLOPs are counted analytically (matmuls only): a dense layer is 2*in*out per example,
an LSTM step 2*(in + units)*4*units per sequence, a train step 3x its forward pass
(forward, and the two matmuls of its backward pass), KNN 2*queries*points*features.

Every contender is built and warmed up first (the first call is reported apart as
``first call``), then timed in interleaved rounds; the tables give medians and ratios
(see ``scripts/benchlib.py``). Absolute times on a shared machine mean little; ratios
measured in one run are the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from pathlib import Path
from typing import Callable

SCRIPTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS_DIR.parent
for _path in (str(SCRIPTS_DIR), str(REPO_ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import jax  # noqa: E402

import benchlib  # noqa: E402
from bench_workloads import FULL, TINY, Sizes, knn, lstm, matmul, mlp  # noqa: E402,F401

QUICK_ROUNDS = 3
FULL_ROUNDS = 11
# Calls before the rounds: the first is timed apart (compilation), the second settles
# whatever a library does lazily on its second call (allocator pools, Keras's adapters).
WARMUP_CALLS = 2
PEER_MODULES = ("jax", "jaxlib", "optax", "numpy", "flax", "equinox", "haiku", "keras", "torch", "sklearn")


@dataclasses.dataclass(frozen=True)
class Workload:
    """A named workload: its contenders for the given sizes, what one call does, and
    optional post-processing of its rows (extra columns, agreement checks)."""

    name: str
    what: str
    contenders: Callable[[Sizes], list]
    post: Callable[[Sizes, dict, dict], None] | None = None
    rate_header: str = ""
    rate: Callable[[dict], str] | None = None


def _sequences_per_second(batch_index: int):
    def post(s, found, rows):
        for row in rows.values():
            row["seq_per_s"] = s.infer_batches[batch_index] / row["median_s"]
    return post


WORKLOADS = {w.name: w for w in [
    Workload("matmul_2048", "one float32 2048^3 matmul", lambda s: matmul.contenders(s.matmul_sizes[0])),
    Workload("matmul_4096", "one float32 4096^3 matmul", lambda s: matmul.contenders(s.matmul_sizes[1])),
    Workload("w1_epoch_b32", "one epoch of the MLP, batch 32", lambda s: mlp.epoch_contenders(s, s.mlp_batches[0])),
    Workload("w1_epoch_b1024", "one epoch of the MLP, batch 1024", lambda s: mlp.epoch_contenders(s, s.mlp_batches[1])),
    Workload("w2_train_t200", "one LSTM train step, batch 64, length 200",
             lambda s: lstm.train_step_contenders(s, s.seq_lengths[0])),
    Workload("w2_train_t80", "one LSTM train step, batch 64, length 80",
             lambda s: lstm.train_step_contenders(s, s.seq_lengths[1])),
    Workload("w2_infer_b64", "LSTM inference, batch 64, length 200", lambda s: lstm.inference_contenders(s, s.infer_batches[0]),
             post=_sequences_per_second(0), rate_header="seq/s", rate=lambda row: f"{row['seq_per_s']:.0f}"),
    Workload("w2_infer_b512", "LSTM inference, batch 512, length 200",
             lambda s: lstm.inference_contenders(s, s.infer_batches[1]),
             post=_sequences_per_second(1), rate_header="seq/s", rate=lambda row: f"{row['seq_per_s']:.0f}"),
    Workload("w3_knn_100k", "KNN: 2,000 queries, 100,000 x 64 points, k=5", knn.classify_contenders,
             post=lambda s, found, rows: knn.agreement(found, rows)),
]}
REQUIRED_WORKLOADS = ("w1_epoch_b32", "w1_epoch_b1024", "w2_train_t200", "w2_train_t80", "w3_knn_100k")


def _selected(names: list[str] | None, known: dict, what: str) -> list[str]:
    if not names:
        return list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; choose from {list(known)}")
    return names


def run_benchmarks(workloads: list[str], rounds: int, sizes: Sizes = FULL, contenders: list[str] | None = None,
                   peak_gflops: float | None = None, log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """Run ``workloads`` (names from :data:`WORKLOADS`, run in that table's order) and
    return ``(workloads_rows, meta)`` as written to the JSON file. ``contenders``, if given,
    keeps only those names. The matmul workloads, when selected, set the peak for the
    fractions of the later ones; otherwise ``peak_gflops`` does."""
    results, left_out = {}, {}
    measured_peak = None
    started, load_at_start = time.perf_counter(), benchlib.load_average()
    for name in [n for n in WORKLOADS if n in workloads]:
        workload = WORKLOADS[name]
        chosen = [c for c in workload.contenders(sizes) if contenders is None or c.name in contenders]
        log(f"\n== {name}: {workload.what} ({rounds} rounds)")
        found = benchlib.measure(chosen, rounds, warmup=WARMUP_CALLS, log=log)
        peak = measured_peak or peak_gflops
        rows = benchlib.summarize(found, peak_gflops=None if name.startswith("matmul") else peak)
        if workload.post:
            workload.post(sizes, found, rows)
        if name.startswith("matmul"):
            best = max((r["gflops"] for r in rows.values() if r["gflops"]), default=None)
            measured_peak = max(measured_peak or 0.0, best or 0.0) or None
        results[name], left_out[name] = rows, benchlib.skipped(found)
        log("")
        log(benchlib.format_table(f"{name}: {workload.what}", rows, left_out[name], rate=workload.rate,
                                  rate_header=workload.rate_header))
        if not peak and not name.startswith("matmul") and any(r["gflops"] for r in rows.values()):
            log("  (no matmul peak measured: select matmul_2048 or pass --peak-gflops for % of peak)")
    meta = {
        "rounds": rounds,
        "sizes": dataclasses.asdict(sizes),
        "peak_gflops": measured_peak or peak_gflops,
        "peak_source": "measured (best of the matmul workloads)" if measured_peak else
                       ("--peak-gflops" if peak_gflops else None),
        "skipped": left_out,
        "seconds": time.perf_counter() - started,
        "load_average": {"start": load_at_start, "end": benchlib.load_average()},
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_threads": benchlib.cpu_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "versions": benchlib.versions(PEER_MODULES),
        "flops": "train = 3 x forward matmul FLOPs; dense 2*in*out, LSTM step 2*(in+units)*4*units, "
                 "KNN 2*queries*points*features",
    }
    return results, meta


def _warn_if_busy(when: str) -> None:
    load, cores = benchlib.load_average(), benchlib.cpu_threads()
    if load is not None and load > cores:
        print(f"WARNING: load average {load:.1f} on {cores} cores {when}: other processes share the CPUs, "
              "so these timings are unreliable (PyTorch's OpenMP threads suffer most)")


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds instead of {FULL_ROUNDS}")
    parser.add_argument("--rounds", type=int, help="timed rounds per workload (overrides --quick)")
    parser.add_argument("--workloads", type=_comma_list, help=f"comma-separated, from: {', '.join(WORKLOADS)}")
    parser.add_argument("--contenders", type=_comma_list, help="comma-separated contender names to keep")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--peak-gflops", type=float, help="matmul peak to use when no matmul workload is run")
    parser.add_argument("--tiny", action="store_true", help="shrink every size (checks code paths; times mean nothing)")
    parser.add_argument("--list", action="store_true", help="list the workloads and their contenders, run nothing")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    sizes = TINY if args.tiny else FULL
    workloads = _selected(args.workloads, WORKLOADS, "workloads")
    if args.list:
        for name in workloads:
            print(f"{name}: {WORKLOADS[name].what}")
            for contender in WORKLOADS[name].contenders(sizes):
                print(f"  {contender.name:26s} {contender.note}")
        return {}
    if args.contenders:
        known = {c.name: None for w in workloads for c in WORKLOADS[w].contenders(TINY)}
        _selected(args.contenders, known, "contenders")
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else FULL_ROUNDS)
    print(f"fnnet benchmarks: {rounds} rounds, jax {jax.__version__} on {jax.default_backend()}, "
          f"{benchlib.cpu_threads()} CPU threads" + (" (tiny sizes)" if args.tiny else ""))
    _warn_if_busy("at the start")
    results, meta = run_benchmarks(workloads, rounds, sizes, args.contenders, args.peak_gflops)
    meta["command"] = "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\ntotal {meta['seconds']:.0f} s")
    _warn_if_busy("at the end")
    if args.json:
        benchlib.write_json(args.json, results, meta)
        print(f"wrote {args.json}")
    return {"workloads": results, "meta": meta}


if __name__ == "__main__":
    main()


"""Timing utilities shared by the benchmark scripts in ``scripts/``.

The machines are noisy and shared, so every benchmark here follows one protocol:

1. **Build** each contender (imports, model, data: not timed). A peer that is not
   installed raises :class:`Skipped` and is left out with a note; any other failure is
   reported and left out too, so one broken peer does not stop the run.
2. **Warm up**: the first call is timed on its own (``first_call_s``: tracing, XLA
   compilation, first allocations, plus one run) and the XLA compilations it caused are
   counted; then ``warmup - 1`` more untimed calls.
3. **Rounds**: each round calls every contender once, in round-robin order rotated by
   one each round, so slow drifts of the machine's load fall on everyone alike; garbage
   is collected before each round, so no contender pays for another's. Every
   call ends with ``jax.block_until_ready`` on its result. XLA compilations during the
   rounds are counted per contender (``recompiles``): anything but 0 means the timed
   path compiles again on every call.
4. **Summary**: the median per contender, its ratio to ``fnnet`` and to the fastest,
   and, given the work's FLOPs and the machine's matmul peak, GFLOP/s and the fraction
   of peak.

A contender is a name and a ``build()`` that returns ``run()``; ``run()`` does one unit
of work (an epoch, a train step) and returns something to block on. State that carries
over (params, optimizer state) lives in ``build``'s closure.

Typical use (see ``scripts/bench.py``)::

    contenders = [Contender("fnnet", build_fnnet, flops=epoch_flops), ...]
    found = measure(contenders, rounds=5)
    rows = summarize(found, peak_gflops=peak)
    print(format_table("w1_epoch_b32", rows, skipped(found)))
    write_json("out.json", {"w1_epoch_b32": rows})
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import json
import math
import os
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import jax

REFERENCE = "fnnet"
# An idle gap after each timed call, so that worker threads still spinning after one
# contender's call (OpenMP, XLA's thread pool) go to sleep before the next call starts.
SETTLE_SECONDS = 0.005
_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class Skipped(Exception):
    """Raised by a contender's ``build`` to leave it out of the run; the message says why."""


def require(module_name: str):
    """Import ``module_name``, or raise :class:`Skipped` naming the missing package.

    >>> require("json").__name__
    'json'
    >>> try:
    ...     require("no_such_peer_library")
    ... except Skipped as e:
    ...     print(e)
    no_such_peer_library is not installed
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise Skipped(f"{module_name} is not installed" if error.name and module_name.startswith(error.name)
                      else f"importing {module_name} failed: {error}") from None


def cpu_threads() -> int:
    """The cores this process may run on: the thread count XLA's CPU backend uses.

    >>> cpu_threads() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Contender:
    """One way of doing a workload.

    ``build()`` prepares everything untimed and returns ``run()``, which does one call's
    work and returns something to block on. ``units_per_call``: units of work per call
    (e.g. 5 epochs), so times are reported per unit; ``flops``: FLOPs per unit (None if
    not counted); ``note``: one line shown in the table.

    >>> c = Contender("numpy", lambda: (lambda: sum(range(10))), note="a note")
    >>> c.build()()
    45
    """

    name: str
    build: Callable[[], Callable[[], Any]]
    units_per_call: int = 1
    flops: float | None = None
    note: str = ""


@dataclasses.dataclass
class Measurement:
    """What :func:`measure` found for one contender: per-unit times of the rounds, or why
    it was skipped. ``first_result`` is what the first call returned (for checks such as
    predictions agreeing between contenders)."""

    contender: Contender
    times: list = dataclasses.field(default_factory=list)
    first_call_s: float = math.nan
    setup_s: float = math.nan
    warmup_compiles: int = 0
    recompiles: int = 0
    first_result: Any = None
    skipped: str | None = None


class CompileCounter:
    """Counts XLA backend compilations (any jit in the process: JAX, Flax, Keras...).

    >>> import jax, jax.numpy as jnp
    >>> with CompileCounter() as counter:
    ...     _ = jax.jit(lambda v: v * 3)(jnp.ones(7)).block_until_ready()
    >>> counter.count >= 1
    True
    """

    _lock = threading.Lock()
    _active: list = []
    _listening = False

    def __init__(self):
        self.count = 0
        self.seconds = 0.0

    @classmethod
    def _on_event(cls, event, duration, **_):
        if event == _BACKEND_COMPILE_EVENT:
            for counter in list(cls._active):
                counter.count += 1
                counter.seconds += duration

    def __enter__(self):
        with CompileCounter._lock:
            if not CompileCounter._listening:
                # Registered once for the process: jax.monitoring listeners are global.
                jax.monitoring.register_event_duration_secs_listener(CompileCounter._on_event)
                CompileCounter._listening = True
            CompileCounter._active.append(self)
        return self

    def __exit__(self, *exc):
        with CompileCounter._lock:
            CompileCounter._active.remove(self)
        return False


def timed_call(run: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds, result)`` of one call, waiting for every JAX array in the result.

    >>> import jax.numpy as jnp
    >>> seconds, result = timed_call(lambda: jnp.ones(3) * 2)
    >>> seconds > 0, result.tolist()
    (True, [2.0, 2.0, 2.0])
    """
    started = time.perf_counter()
    result = jax.block_until_ready(run())
    return time.perf_counter() - started, result


def round_orders(names: Sequence[str], rounds: int) -> list[list[str]]:
    """The call order of each round: round-robin, rotated by one each round.

    >>> round_orders(["a", "b", "c"], 4)
    [['a', 'b', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b'], ['a', 'b', 'c']]
    """
    names = list(names)
    if not names:
        return [[] for _ in range(rounds)]
    return [names[r % len(names):] + names[:r % len(names)] for r in range(rounds)]


def _describe_failure(error: BaseException) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"failed: {type(error).__name__}: {first_line[:160]}"


def measure(contenders: Iterable[Contender], rounds: int, *, warmup: int = 1, settle: float = SETTLE_SECONDS,
            log: Callable[[str], None] | None = None) -> dict[str, Measurement]:
    """Build, warm up and time ``contenders`` in ``rounds`` interleaved rounds (see the module doc).

    Returns ``{name: Measurement}`` in the given order, skipped contenders included
    (``skipped`` says why). ``log`` receives one progress line per contender.

    >>> import time
    >>> found = measure([Contender("sleepy", lambda: (lambda: time.sleep(0.002))),
    ...                  Contender("absent", lambda: require("no_such_peer_library"))], rounds=3)
    >>> len(found["sleepy"].times), found["absent"].skipped
    (3, 'no_such_peer_library is not installed')
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if warmup < 1:
        raise ValueError(f"warmup must be at least 1 (the first call is never timed with the rounds), got {warmup}")
    say = log or (lambda line: None)
    found: dict[str, Measurement] = {}
    runs: dict[str, Callable[[], Any]] = {}
    for contender in contenders:
        if contender.name in found:
            raise ValueError(f"two contenders are named {contender.name!r}")
        m = found[contender.name] = Measurement(contender)
        try:
            started = time.perf_counter()
            run = contender.build()
            m.setup_s = time.perf_counter() - started
            with CompileCounter() as compiles:
                m.first_call_s, m.first_result = timed_call(run)
            for _ in range(warmup - 1):
                timed_call(run)
            m.warmup_compiles = compiles.count
        except Skipped as why:
            m.skipped = str(why)
        except Exception as error:  # a broken peer must not stop the others
            m.skipped = _describe_failure(error)
            traceback.print_exc(file=sys.stderr)
        if m.skipped:
            say(f"  {contender.name}: skipped ({m.skipped})")
            continue
        runs[contender.name] = run
        say(f"  {contender.name}: first call {m.first_call_s:.3f} s ({m.warmup_compiles} XLA compilations)")

    for order in round_orders(runs, rounds):
        gc.collect()
        for name in order:
            with CompileCounter() as compiles:
                seconds, _ = timed_call(runs[name])
            m = found[name]
            m.times.append(seconds / m.contender.units_per_call)
            m.recompiles += compiles.count
            if settle:
                time.sleep(settle)
    return found


def skipped(found: dict[str, Measurement]) -> dict[str, str]:
    """``{name: reason}`` of the contenders that were left out.

    >>> skipped({"a": Measurement(Contender("a", None), skipped="torch is not installed")})
    {'a': 'torch is not installed'}
    """
    return {name: m.skipped for name, m in found.items() if m.skipped}


def gflops(flops: float | None, seconds: float) -> float | None:
    """Achieved GFLOP/s, or None when the FLOPs are not counted.

    >>> gflops(2e9, 0.5), gflops(None, 0.5)
    (4.0, None)
    """
    return None if flops is None or not seconds > 0 else flops / seconds / 1e9


def summarize(found: dict[str, Measurement], *, reference: str = REFERENCE,
              peak_gflops: float | None = None) -> dict[str, dict]:
    """Per contender: ``median_s``, ``ratio_to_fnnet`` (None without the reference),
    ``ratio_to_fastest``, ``min_s``, ``max_s``, ``rounds``, ``first_call_s``,
    ``compile_s`` (first call minus the median: what the first call cost extra),
    ``warmup_compiles``, ``recompiles``, ``gflops``, ``fraction_of_peak`` and ``note``.
    Skipped contenders are left out (see :func:`skipped`).

    >>> found = {n: Measurement(Contender(n, None, flops=1e9), times=t, first_call_s=1.0)
    ...          for n, t in [("fnnet", [0.1, 0.2, 0.3]), ("peer", [0.4, 0.4, 0.5])]}
    >>> rows = summarize(found, peak_gflops=10.0)
    >>> rows["peer"]["median_s"], rows["peer"]["ratio_to_fnnet"], rows["fnnet"]["fraction_of_peak"]
    (0.4, 2.0, 0.5)
    """
    medians = {name: statistics.median(m.times) for name, m in found.items() if not m.skipped and m.times}
    if not medians:
        return {}
    fastest = min(medians.values())
    ref = medians.get(reference)
    rows = {}
    for name, median in medians.items():
        m = found[name]
        rate = gflops(m.contender.flops, median)
        rows[name] = {
            "median_s": median,
            "ratio_to_fnnet": None if ref is None else median / ref,
            "ratio_to_fastest": median / fastest,
            "min_s": min(m.times),
            "max_s": max(m.times),
            "rounds": len(m.times),
            "first_call_s": m.first_call_s,
            "compile_s": max(0.0, m.first_call_s - median * m.contender.units_per_call),
            "warmup_compiles": m.warmup_compiles,
            "recompiles": m.recompiles,
            "gflops": rate,
            "fraction_of_peak": None if rate is None or not peak_gflops else rate / peak_gflops,
            "note": m.contender.note,
        }
    return rows


def _seconds(value: float) -> str:
    if value >= 1.0:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} us"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_table(title: str, rows: dict[str, dict], left_out: dict[str, str] | None = None, *,
                 rate: Callable[[dict], str] | None = None, rate_header: str = "") -> str:
    """A plain-text table of :func:`summarize`'s rows, fastest first, then the skipped.

``first call`` is the warm-up call, timed apart: tracing, XLA compilation and first
allocations, plus one run (``compile_s`` in the rows is that minus the median).

    ``rate(row) -> str`` adds a column (e.g. sequences/s) headed ``rate_header``.

    >>> found = {"fnnet": Measurement(Contender("fnnet", None), times=[0.02], first_call_s=1.5)}
    >>> print(format_table("demo", summarize(found), {"torch": "torch is not installed"}))
    demo
      contender  median   x fnnet  x fastest  first call  GFLOP/s  % peak  recompiles  note
      fnnet      20.0 ms  1.00x    1.00x      1.50 s      -        -       0
      torch      skipped: torch is not installed
    """
    header = ["contender", "median", "x fnnet", "x fastest", "first call"]
    header += ([rate_header] if rate else []) + ["GFLOP/s", "% peak", "recompiles", "note"]
    table = [header]
    for name, row in sorted(rows.items(), key=lambda item: item[1]["median_s"]):
        cells = [name, _seconds(row["median_s"]), _ratio(row["ratio_to_fnnet"]), _ratio(row["ratio_to_fastest"]),
                 _seconds(row["first_call_s"])]
        cells += [rate(row)] if rate else []
        cells += ["-" if row["gflops"] is None else f"{row['gflops']:.1f}",
                  "-" if row["fraction_of_peak"] is None else f"{100 * row['fraction_of_peak']:.0f}%",
                  str(row["recompiles"]), row["note"]]
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [title] + ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines += [f"  {name.ljust(widths[0])}  skipped: {why}" for name, why in (left_out or {}).items()]
    return "\n".join(lines)


def _plain(value):
    """JSON cannot hold NaN/inf; write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(path, workloads: dict[str, dict], meta: dict | None = None) -> None:
    """Write ``{"workloads": {name: {contender: row}}, "meta": meta}`` to ``path``.

    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "bench.json")
    >>> write_json(path, {"w": {"fnnet": {"median_s": 0.5, "ratio_to_fnnet": 1.0}}}, {"rounds": 1})
    >>> json.load(open(path))["workloads"]["w"]["fnnet"]["median_s"]
    0.5
    """
    document = {"workloads": workloads, "meta": meta or {}}
    Path(path).write_text(json.dumps(_plain(document), indent=2, allow_nan=False) + "\n")


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS does not say); above
    :func:`cpu_threads` the timings are unreliable, OpenMP-threaded ones most of all.

    >>> load_average() is None or load_average() >= 0
    True
    """
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def versions(modules: Iterable[str]) -> dict[str, str]:
    """``{module: version}`` of the already-imported ``modules`` (not importing anything).

    >>> versions(["jax"])["jax"] == jax.__version__
    True
    """
    found = {}
    for name in modules:
        module = sys.modules.get(name)
        if module is not None:
            found[name] = str(getattr(module, "__version__", "?"))
    return found

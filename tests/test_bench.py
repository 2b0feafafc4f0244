"""Smoke tests of the benchmark driver (scripts/bench.py) and its timing library
(scripts/benchlib.py): tiny sizes, one round; they check code paths and the JSON's
shape, never speed."""

import dataclasses
import doctest
import json
import statistics
import os
import sys
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench  # noqa: E402
import bench_workloads  # noqa: E402
import benchlib  # noqa: E402
from bench_workloads import harness, knn, lstm, matmul, mlp, sizes  # noqa: E402
from benchlib import Contender, Measurement, Skipped  # noqa: E402

PEERS = {  # the first word of a contender's name -> the module it needs
    "stax": "jax.example_libraries.stax", "linen": "flax.linen", "nnx": "flax.nnx", "haiku": "haiku",
    "equinox": "equinox", "keras": "keras", "torch": "torch", "sklearn": "sklearn"}


def test_benchlib_doctests():
    assert doctest.testmod(benchlib).failed == 0


@pytest.mark.parametrize("module", [bench, bench_workloads, harness, knn, lstm, matmul, mlp, sizes],
                         ids=lambda m: m.__name__)
def test_driver_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_rounds_interleave_every_contender_in_rotated_order():
    calls = []

    def recorder(name):
        return lambda: (lambda: calls.append(name))

    found = benchlib.measure([Contender(n, recorder(n)) for n in "abc"], rounds=3, warmup=2, settle=0)
    timed = calls[6:]  # each contender's two warm-up calls come first, while it is built
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(m.times) == 3 for m in found.values())


def test_a_failing_or_missing_peer_is_skipped_and_the_others_still_run():
    def broken():
        raise RuntimeError("no such layer\nsecond line")

    found = benchlib.measure([Contender("broken", broken), Contender("absent", lambda: benchlib.require("nope_lib")),
                              Contender("fine", lambda: (lambda: 1))], rounds=2, settle=0)
    assert benchlib.skipped(found) == {"broken": "failed: RuntimeError: no such layer",
                                       "absent": "nope_lib is not installed"}
    assert len(found["fine"].times) == 2
    assert set(benchlib.summarize(found)) == {"fine"}


def test_recompiling_contender_is_flagged():
    import jax
    import jax.numpy as jnp

    x = jnp.ones(3)
    stable = jax.jit(lambda v: v + 1)
    found = benchlib.measure([Contender("stable", lambda: (lambda: stable(x))),
                              Contender("fresh jit per call", lambda: (lambda: jax.jit(lambda v: v * 2)(x)))],
                             rounds=2, settle=0)
    rows = benchlib.summarize(found)
    assert rows["stable"]["recompiles"] == 0 and rows["stable"]["warmup_compiles"] == 1
    assert rows["fresh jit per call"]["recompiles"] == 2


def test_summary_ratios_and_units_per_call():
    def sleeper(seconds):
        return lambda: (lambda: time.sleep(seconds))

    found = benchlib.measure([Contender("fnnet", sleeper(0.004), units_per_call=2, flops=1e6),
                              Contender("peer", sleeper(0.004))], rounds=3, settle=0)
    rows = benchlib.summarize(found, peak_gflops=1.0)
    # times are per unit (half a call): a 4 ms sleep gives at least 2 ms; load can only add to it
    assert all(t >= 0.002 for t in found["fnnet"].times)
    assert all(t >= 0.004 for t in found["peer"].times)
    assert rows["fnnet"]["median_s"] == statistics.median(found["fnnet"].times)
    assert rows["fnnet"]["ratio_to_fnnet"] == 1.0
    assert rows["peer"]["ratio_to_fnnet"] == pytest.approx(rows["peer"]["median_s"] / rows["fnnet"]["median_s"])
    assert min(r["ratio_to_fastest"] for r in rows.values()) == 1.0
    assert rows["fnnet"]["fraction_of_peak"] == pytest.approx(1e6 / rows["fnnet"]["median_s"] / 1e9)
    assert rows["peer"]["gflops"] is None and rows["peer"]["fraction_of_peak"] is None


def test_without_the_reference_ratio_to_fnnet_is_null_in_json(tmp_path):
    found = {"peer": Measurement(Contender("peer", None), times=[0.1], first_call_s=float("nan"))}
    path = tmp_path / "out.json"
    benchlib.write_json(path, {"w": benchlib.summarize(found)})
    row = json.loads(path.read_text())["workloads"]["w"]["peer"]
    assert row["ratio_to_fnnet"] is None and row["first_call_s"] is None and row["median_s"] == 0.1


def test_flop_formulas_follow_the_layer_sizes():
    assert mlp.mlp_train_flops(10, 3, (4,)) == 3 * 2 * 10 * (3 * 4 + 4 * 1)
    assert lstm.lstm_forward_flops(2, 5, 3, 4, 2) == 2 * (5 * 2 * (3 + 4) * 16 + 2 * 4 * 2)
    assert knn.knn_flops(3, 10, 4) == 2 * 3 * 10 * 4


def test_unknown_workload_is_refused():
    with pytest.raises(SystemExit, match="unknown workloads"):
        bench.main(["--workloads", "w9_nothing", "--tiny"])


def test_json_has_every_required_workload_with_fnnet(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    path = tmp_path / "bench.json"
    # fnnet alone (plus the KNN reference): each JAX contender costs a compile; the peers'
    # code paths are checked by test_peer_contenders_build_and_run.
    bench.main(["--tiny", "--rounds", "1", "--workloads", ",".join(bench.REQUIRED_WORKLOADS),
                "--contenders", "fnnet,sklearn brute", "--json", str(path)])
    document = json.loads(path.read_text())
    out = capsys.readouterr().out
    assert set(document["workloads"]) == set(bench.REQUIRED_WORKLOADS)
    for name, rows in document["workloads"].items():
        assert name in out
        assert "fnnet" in rows, f"{name}: fnnet missing ({document['meta']['skipped'][name]})"
        fnnet = rows["fnnet"]["median_s"]
        for contender, row in rows.items():
            assert isinstance(row["median_s"], float) and row["median_s"] > 0
            assert row["ratio_to_fnnet"] == pytest.approx(row["median_s"] / fnnet)
            assert row["recompiles"] == 0, f"{name}/{contender} compiles on every call"
    assert document["workloads"]["w3_knn_100k"]["fnnet"]["agreement"] == 1.0
    assert set(document["workloads"]["w3_knn_100k"]) == {"fnnet", "sklearn brute"}
    assert document["meta"]["rounds"] == 1 and document["meta"]["sizes"]["mlp_rows"] == bench.TINY.mlp_rows


def test_shared_training_harnesses_train_and_survive_donation():
    import numpy as np
    wanted = {"stax loop donated", "stax scan"}
    contenders = [c for c in bench.WORKLOADS["w1_epoch_b32"].contenders(bench.TINY) if c.name in wanted]
    found = benchlib.measure(contenders, rounds=3, settle=0)
    assert benchlib.skipped(found) == {} and set(found) == wanted
    for m in found.values():
        _, loss = m.first_result
        assert np.isfinite(float(loss)) and len(m.times) == 3


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_peer_contenders_build_and_run(peer, monkeypatch):
    """Each peer's model definitions (the LSTM forward; sklearn's KNN) run twice each. With
    FNNET_BENCH_SMOKE=all, every contender of every workload does (minutes: one compile
    each); ``python scripts/bench.py --tiny --rounds 1`` is the same check with tables."""
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    pytest.importorskip(PEERS[peer])
    if peer == "keras":
        import keras
        if keras.backend.backend() != "jax":
            pytest.skip("keras was imported earlier with another backend")
    everything = os.environ.get("FNNET_BENCH_SMOKE") == "all"
    workloads = bench.WORKLOADS if everything else ("w2_infer_b64", "w3_knn_100k")
    contenders = [c for w in workloads for c in bench.WORKLOADS[w].contenders(bench.TINY)
                  if c.name.split()[0] == peer]
    if not contenders:
        pytest.skip(f"{peer} has no contender in {', '.join(workloads)}")
    # Names must be unique within one measure() call; workloads reuse them.
    contenders = [dataclasses.replace(c, name=f"{i}:{c.name}") for i, c in enumerate(contenders)]
    found = benchlib.measure(contenders, rounds=1, settle=0)  # two calls each: donated buffers must survive
    assert benchlib.skipped(found) == {}
    assert all(m.times[0] > 0 for m in found.values())


def test_skipped_class_is_an_exception_with_a_reason():
    with pytest.raises(Skipped, match="is not installed"):
        benchlib.require("definitely_missing_module_xyz")

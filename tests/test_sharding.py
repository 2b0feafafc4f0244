"""Data parallelism: fit/evaluate/predict over a mesh agree with one device; shardings as documented.

The 8-device check runs in a subprocess: XLA_FLAGS must be set before JAX starts.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import fnnet

EIGHT_DEVICES = textwrap.dedent('''
    import json
    import jax, numpy as np
    import fnnet
    from fnnet.training import sharding
    from fnnet.training.steps import EpochData, program
    from jax.sharding import Mesh

    out = {"devices": jax.device_count()}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(94, 4)).astype(np.float32)
    y = (np.tanh(x[:, :1]) + x[:, 1:2] * x[:, 2:3]).astype(np.float32)
    model = fnnet.serial(fnnet.Dense(32), fnnet.Relu, fnnet.Dropout(0.1), fnnet.Dense(1))
    params = model.init(jax.random.PRNGKey(0), (-1, 4))[1]
    # 75 training rows: 4 batches of 16 split over 8 devices, then 11 rows computed replicated.
    kw = dict(loss="mse", optimizer="adam", epochs=3, batch_size=16, validation_split=0.2, metrics=["mae"],
              verbose=0)

    def specs(tree):
        return {fnnet.keypath_str(p): [str(l.sharding.spec), l.sharding.is_fully_replicated,
                                       len(l.sharding.device_set)]
                for p, l in jax.tree_util.tree_flatten_with_path(tree)[0]}

    out["single"] = fnnet.fit(model, params, x, y, **kw).history
    data_mesh = Mesh(np.array(jax.devices()), ("data",))
    multi = fnnet.fit(model, params, x, y, mesh=data_mesh, **kw)
    out["data"] = multi.history
    out["data_params"], out["data_opt"] = specs(multi.params), specs(multi.opt_state)
    out["eval_1"] = fnnet.evaluate(model, multi.params, x[:37], y[:37], loss="mse", metrics=["rmse"])
    out["eval_8"] = fnnet.evaluate(model, multi.params, x[:37], y[:37], loss="mse", metrics=["rmse"], mesh=data_mesh)
    p8 = fnnet.predict(model, multi.params, x[:37], mesh=data_mesh)
    out["predict_diff"] = float(np.abs(np.asarray(fnnet.predict(model, multi.params, x[:37])) - np.asarray(p8)).max())
    out["predict_shape"] = list(p8.shape)
    try:
        fnnet.fit(model, params, x, y, mesh=data_mesh, **dict(kw, batch_size=12))
    except ValueError as e:
        out["batch_error"] = str(e)

    # The gradient all-reduce is inserted by XLA's partitioner from the sharding annotations.
    prog = program(model, "mse", ["mae"], "adam", (), data_mesh)
    carry = prog.start(params, prog.init_opt_state(params), None)
    data = EpochData(sharding.put_data(x[:16], data_mesh), sharding.put_data(y[:16], data_mesh), jax.random.PRNGKey(0))
    hlo = prog.run_steps_keep.lower(carry, data, None, np.int32(0), np.float32(1), batch_size=16, num_steps=1,
                                    remainder=0, start=True).compile().as_text()
    out["all_reduce"] = hlo.count("all-reduce(")

    # FSDP-style 'model' axis (the size threshold lowered so this small kernel qualifies);
    # jax.make_mesh gives Explicit axes, which fit takes as Auto.
    sharding.MODEL_SHARD_MIN_SIZE = 64
    fsdp = fnnet.fit(model, params, x, y, mesh=jax.make_mesh((4, 2), ("data", "model")), **kw)
    out["fsdp"] = fsdp.history
    out["fsdp_params"], out["fsdp_mu"] = specs(fsdp.params), specs(fsdp.opt_state[0].mu)
    print("RESULT" + json.dumps(out))
''')


def run_on_eight_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(Path(fnnet.__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], env=env, capture_output=True, text=True,
                          timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[0][len("RESULT"):])


def assert_histories_close(a, b, rtol=1e-4):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, err_msg=key)


def test_eight_devices_match_one_device_and_shard_as_documented():
    # One test, one subprocess: pytest-xdist may otherwise run a shared fixture once per worker.
    out = run_on_eight_devices()
    assert out["devices"] == 8
    # Data parallel: the same loss history as one device, within 1e-4 relative.
    assert_histories_close(out["single"], out["data"])
    assert len(out["data"]["loss"]) == 3
    # Params and optimizer state come back replicated over the 8 devices.
    for path, placement in {**out["data_params"], **out["data_opt"]}.items():
        assert placement == ["P()", True, 8], path
    # The gradient all-reduce is XLA's, from the sharding annotations.
    assert out["all_reduce"] >= 1
    # evaluate and predict over the mesh pad, mask and agree with one device.
    for key, value in out["eval_1"].items():
        assert out["eval_8"][key] == pytest.approx(value, rel=1e-5)
    assert out["predict_shape"] == [37, 1] and out["predict_diff"] < 1e-5
    # A batch size the 'data' axis does not divide is a clear error.
    assert "batch_size=12 does not split evenly over the mesh's 8 'data' devices" in out["batch_error"]
    # A 'model' axis splits large leaves and their optimizer moments, FSDP-style.
    assert_histories_close(out["single"], out["fsdp"])
    assert out["fsdp_params"]["dense/kernel"] == ["P('model',)", False, 8]
    assert out["fsdp_mu"]["dense/kernel"] == ["P('model',)", False, 8]
    assert out["fsdp_params"]["dense_1/kernel"] == ["P()", True, 8]  # below the size threshold


def test_one_device_mesh_in_process_and_mesh_errors():
    model = fnnet.Dense(1)
    params = model.init(jax.random.PRNGKey(0), (-1, 2))[1]
    x = np.linspace(0, 1, 20, dtype=np.float32).reshape(10, 2)
    y = x.sum(1, keepdims=True)
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    kw = dict(loss="mse", optimizer="sgd", epochs=2, batch_size=4, verbose=0)
    plain = fnnet.fit(model, params, x, y, **kw)
    meshed = fnnet.fit(model, params, x, y, mesh=mesh, **kw)
    assert_histories_close(plain.history, meshed.history, rtol=1e-6)
    assert meshed.params["kernel"].sharding.mesh.axis_names == ("data",)
    with pytest.raises(ValueError, match="needs a 'data' axis"):
        fnnet.fit(model, params, x, y, mesh=Mesh(np.array(jax.devices()[:1]), ("batch",)), **kw)
    with pytest.raises(TypeError, match="jax.sharding.Mesh"):
        fnnet.predict(model, params, x, mesh="data")

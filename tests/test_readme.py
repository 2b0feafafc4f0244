"""The README's two user layers (stateless and stateful) work wherever built-in layers do."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.testing import check_layer

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def readme_layers():
    text = README.read_text()
    section = text[text.index("### Your own layers"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) < 25  # the promise: both layers in under 25 lines
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_both_pass_check_layer(readme_layers):
    check_layer(readme_layers["Scale"](), (None, 3), max_examples=10)
    check_layer(readme_layers["RunningMean"](), (None, 3), max_examples=10)


def test_they_train_in_fit_and_the_running_mean_moves_only_with_train(readme_layers):
    model = readme_layers["model"]
    _, params, state = model.init_with_state(jax.random.PRNGKey(0), (None, 3))
    assert set(params) == {"dense", "scale", "dense_1"} and set(state) == {"running_mean"}
    x = np.random.default_rng(0).normal(5.0, 1.0, (64, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    y_eval, same = model.apply_with_state(params, state, x)  # train=False: the mean stays
    np.testing.assert_array_equal(same["running_mean"], state["running_mean"])
    result = fnnet.fit(model, params, x, y, state=state, loss="mse", optimizer="adam", epochs=3, batch_size=16,
                       verbose=0)
    assert result.history["loss"][-1] < result.history["loss"][0]
    moved = np.asarray(result.state["running_mean"])
    assert np.all(moved > 0.5)  # pulled towards the data's mean of 5 by 3 epochs of training steps
    assert not np.allclose(result.params["scale"]["scale"], 1.0)


def test_they_appear_in_summary_and_plot_model_and_round_trip_through_specs(readme_layers, tmp_path):
    model = readme_layers["model"]
    table = fnnet.summary(model, (None, 3))
    assert "running_mean (RunningMean)" in table and "scale (Scale)" in table
    path = tmp_path / "model.svg"
    fnnet.plot_model(model, (None, 3), str(path))
    svg = path.read_text()
    assert "RunningMean" in svg and "Scale" in svg
    rebuilt = fnnet.from_spec(fnnet.to_spec(model))
    _, params, state = model.init_with_state(jax.random.PRNGKey(0), (None, 3))
    x = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(rebuilt.apply_with_state(params, state, x)[0], model.apply_with_state(params, state, x)[0])

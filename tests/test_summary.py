"""Summaries and parameter counts (the tutorial's printed counts are wrong; ours are right)."""

import jax

import fnnet


def tutorial_mlp():
    return fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))


def test_count_params_of_the_tutorial_mlp():
    _, params = tutorial_mlp().init(jax.random.PRNGKey(0), (-1, 78))
    assert fnnet.count_params(params) == 112_001


def test_summary_shows_per_layer_counts_and_totals():
    text = fnnet.summary(tutorial_mlp(), (-1, 78))
    for expected in ("31,600", "80,200", "201", "Total params: 112,001", "Trainable params: 112,001",
                     "Non-trainable params: 0", "(None, 400)", "(None, 200)", "(None, 1)", "dense_0", "Dense(400)"):
        assert expected in text, expected
    assert "352,400" not in text and "8,200 " not in text  # the tutorial's wrong counts


def test_summary_counts_state_as_non_trainable_and_nests():
    model = fnnet.serial(fnnet.Dense(4), fnnet.BatchNorm(),
                         fnnet.serial(fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(2), fnnet.Dense(2)),
                                      fnnet.FanInSum))
    rows = fnnet.summary_rows(model, (-1, 3))
    assert [r.path for r in rows] == ["dense_0", "batch_norm_1", "serial_2/fan_out_0",
                                      "serial_2/parallel_1/dense_0", "serial_2/parallel_1/dense_1",
                                      "serial_2/fan_in_sum_2"]
    assert rows[1].trainable == 8 and rows[1].non_trainable == 8
    text = fnnet.summary(model, (-1, 3))
    assert "Total params: 52" in text and "Non-trainable params: 8" in text and "Trainable params: 44" in text

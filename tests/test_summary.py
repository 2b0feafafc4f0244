"""Summaries and parameter counts (the tutorial's printed counts are wrong; ours are right)."""

import resource

import jax
import pytest

import fnnet
import fnnet.core


def tutorial_mlp():
    return fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))


def test_count_params_of_the_tutorial_mlp():
    _, params = tutorial_mlp().init(jax.random.PRNGKey(0), (-1, 78))
    assert fnnet.count_params(params) == 112_001


def test_summary_shows_per_layer_counts_and_totals():
    text = fnnet.summary(tutorial_mlp(), (-1, 78))
    for expected in ("31,600", "80,200", "201", "Total params: 112,001", "Trainable params: 112,001",
                     "Non-trainable params: 0", "(None, 400)", "(None, 200)", "(None, 1)", "dense (Dense(400))",
                     "dense_2 (Dense(1))", "Layer (type)"):
        assert expected in text, expected
    assert "352,400" not in text and "8,200 " not in text  # the tutorial's wrong counts


def test_summary_counts_state_as_non_trainable_and_nests():
    model = fnnet.serial(fnnet.Dense(4), fnnet.BatchNorm(),
                         fnnet.serial(fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(2), fnnet.Dense(2)),
                                      fnnet.FanInSum))
    rows = fnnet.summary_rows(model, (-1, 3))
    assert [r.path for r in rows] == ["dense", "batch_norm", "serial/fan_out", "serial/parallel/dense",
                                      "serial/parallel/dense_1", "serial/fan_in_sum"]
    assert [r.depth for r in rows] == [1, 1, 2, 3, 3, 2]
    assert rows[1].trainable == 8 and rows[1].non_trainable == 8
    text = fnnet.summary(model, (-1, 3))
    assert "Total params: 52" in text and "Non-trainable params: 8" in text and "Trainable params: 44" in text


def test_summary_shows_the_activation_in_the_type_column():
    text = fnnet.summary(fnnet.serial(fnnet.Dense(4), fnnet.Dense(2, activation="softmax")), (None, 3))
    assert "dense_1 (Dense(2, activation='softmax'))" in text


def test_every_combinator_is_expanded_and_totals_come_from_the_model():
    member = fnnet.serial(fnnet.Dense(3), fnnet.BatchNorm(), fnnet.Dense(2))
    model = fnnet.serial(
        fnnet.Embedding(50, 4),
        fnnet.Bidirectional(fnnet.LSTM(3, return_sequences=True)),
        fnnet.TimeDistributed(fnnet.Dense(5)),
        fnnet.Flatten,
        fnnet.Residual(fnnet.Dense(20), fnnet.Relu),
        fnnet.Ensemble(member, 3),
    )
    rows = fnnet.summary_rows(model, (None, 4))
    paths = [r.path for r in rows]
    assert paths == ["embedding", "bidirectional/forward", "bidirectional/backward", "time_distributed/dense",
                     "flatten", "residual/fan_out", "residual/parallel/serial/dense", "residual/parallel/serial/relu",
                     "residual/parallel/identity", "residual/fan_in_sum", "ensemble/serial/dense",
                     "ensemble/serial/batch_norm", "ensemble/serial/dense_1"]
    by_path = {r.path: r for r in rows}
    assert by_path["time_distributed/dense"].trainable == 3 * 2 * 5 + 5  # its params are the wrapper's own
    # Ensemble stacks three copies of each member layer: the rows count all of them.
    assert by_path["ensemble/serial/dense"].copies == 3
    assert by_path["ensemble/serial/dense"].trainable == 3 * (20 * 3 + 3)
    assert by_path["ensemble/serial/batch_norm"].non_trainable == 3 * 6
    # The model's own init, shapes only (a real init of the LSTMs takes seconds).
    params, state = jax.eval_shape(lambda key: model.init_with_state(key, (None, 4))[1:], jax.random.PRNGKey(0))
    assert sum(r.trainable for r in rows) == fnnet.count_params(params)
    assert sum(r.non_trainable for r in rows) == fnnet.count_params(state)
    text = fnnet.summary(model, (None, 4))
    total = fnnet.count_params(params) + fnnet.count_params(state)
    assert f"Total params: {total:,}" in text and f"Non-trainable params: {fnnet.count_params(state):,}" in text
    assert "ensemble/serial/dense (Dense(3)) x3" in text
    assert "residual/parallel/serial/dense (Dense(20))" in text


def test_summary_of_a_huge_embedding_allocates_nothing():
    model = fnnet.serial(fnnet.Embedding(2_000_000, 256), fnnet.Dense(2))  # 2 GB of float32 if initialised
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    text = fnnet.summary(model, (None, 10))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert "512,000,000" in text
    assert grown_mib < 100, f"summary grew the peak memory by {grown_mib:.0f} MiB"


@pytest.mark.parametrize("use", [
    lambda model: fnnet.summary(model, (None, 3)),
    lambda model: fnnet.summary_rows(model, (None, 3)),
    lambda model: fnnet.model_diagram(model, (None, 3)),
    lambda model: fnnet.plot_model(model, (None, 3)),
    lambda model: fnnet.eval_init(model, (None, 3)),
    lambda model: fnnet.insert_layer(model, model.init(jax.random.PRNGKey(0), (None, 3))[1], 1, fnnet.Relu,
                                     (None, 3), jax.random.PRNGKey(1)),
    lambda model: fnnet.remove_layer(model, model.init(jax.random.PRNGKey(0), (None, 3))[1], 1, (None, 3)),
], ids=["summary", "summary_rows", "model_diagram", "plot_model", "eval_init", "insert_layer", "remove_layer"])
def test_structure_tools_go_through_the_one_walker(monkeypatch, use):
    calls = []
    walk_model = fnnet.core._walk_model

    def counting(*args, **kwargs):
        calls.append(args)
        return walk_model(*args, **kwargs)

    monkeypatch.setattr(fnnet.core, "_walk_model", counting)
    use(fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(4), fnnet.Residual(fnnet.Dense(4))))
    assert calls


def shared_graph():
    a, b = fnnet.Input((3,), name="a"), fnnet.Input((3,), name="b")
    shared = fnnet.Dense(2)
    out = fnnet.Add()([shared(a), shared(b)])
    return fnnet.Model([a, b], fnnet.Dense(1, name="out")(out), name="siamese")


def test_graph_summary_has_the_connected_to_column_and_counts_a_shared_layer_once():
    model = shared_graph()
    text = fnnet.summary(model)  # the model knows its input shape
    lines = text.splitlines()
    assert lines[0] == "Model: siamese, input shape [(None, 3), (None, 3)]"
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#", "Connected", "to"]
    rows = {line.split()[0]: line for line in lines[4:9]}
    assert sorted(rows) == ["a", "add", "b", "dense", "out"]
    assert rows["a"].split() == ["a", "(Input)", "(None,", "3)", "0"]
    assert rows["dense"].endswith("8  a; b")  # 3 * 2 + 2 params, called on both inputs
    assert rows["add"].endswith("dense, dense[1]")
    assert "Total params: 11" in text  # 8 + 3: the shared Dense counted once


def test_summary_without_input_shape_needs_a_model_that_knows_it():
    with pytest.raises(ValueError, match="needs input_shape"):
        fnnet.summary(fnnet.Dense(2))

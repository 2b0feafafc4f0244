"""Bidirectional and TimeDistributed: shapes, masks in both directions, merges, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from test_recurrent import assert_padding_invariant, lstm_reference

KEY = jax.random.PRNGKey(0)


def _inputs(batch=2, time=5, features=3, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), (batch, time, features))


# ---------------------------------------------------------------------- Bidirectional

@pytest.mark.parametrize("merge_mode, size", [("concat", 32), ("ave", 16)])
def test_bidirectional_shapes(merge_mode, size):
    model = fnnet.serial(fnnet.Embedding(100, 8), fnnet.Bidirectional(fnnet.LSTM(16), merge_mode))
    declared, params = model.init(KEY, (-1, 6))
    assert declared == (-1, size)
    assert model.apply(params, jnp.ones((3, 6), jnp.int32)).shape == (3, size)


def test_bidirectional_return_sequences_and_states_shapes():
    layer = fnnet.Bidirectional(fnnet.GRU(4, return_sequences=True, return_state=True))
    declared, params = layer.init(KEY, (-1, 5, 3))
    produced = jax.tree_util.tree_map(lambda a: a.shape, layer.apply(params, _inputs()))
    assert produced == ((2, 5, 8), (2, 4), (2, 4))
    assert declared == ((-1, 5, 8), (-1, 4), (-1, 4))


def test_bidirectional_is_forward_and_time_aligned_backward_keras_lstms():
    layer = fnnet.Bidirectional(fnnet.LSTM(4, return_sequences=True), merge_mode=None)
    x = _inputs()
    mask = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], bool)
    _, params = layer.init(KEY, x.shape)
    assert sorted(params) == ["backward", "forward"]
    forward, backward = layer.apply(params, x, mask=jnp.asarray(mask))
    expected_forward, _ = lstm_reference(params["forward"], x, mask=mask)
    expected_backward, _ = lstm_reference(params["backward"], x, mask=mask, go_backwards=True)
    np.testing.assert_allclose(forward, expected_forward, atol=2e-5)
    np.testing.assert_allclose(backward, expected_backward[:, ::-1], atol=2e-5)
    # The backward direction starts at each sequence's last real token.
    last_real = [2, 4]
    for row, t in enumerate(last_real):
        first_step, _ = lstm_reference(params["backward"], x[row:row + 1, t:t + 1])
        np.testing.assert_allclose(backward[row, t], first_step[0, 0], atol=2e-5)


def test_bidirectional_merge_modes():
    x = _inputs()
    _, params = fnnet.Bidirectional(fnnet.SimpleRNN(3)).init(KEY, x.shape)
    both = fnnet.Bidirectional(fnnet.SimpleRNN(3), merge_mode=None).apply(params, x)
    forward, backward = (np.asarray(y) for y in both)
    merges = {"sum": forward + backward, "mul": forward * backward, "ave": (forward + backward) / 2,
              "concat": np.concatenate([forward, backward], -1)}
    for merge_mode, expected in merges.items():
        merged = fnnet.Bidirectional(fnnet.SimpleRNN(3), merge_mode=merge_mode).apply(params, x)
        np.testing.assert_allclose(merged, expected, atol=1e-6, err_msg=merge_mode)


def test_bidirectional_lstm_is_padding_invariant():
    assert_padding_invariant(fnnet.serial(fnnet.Embedding(50, 8, mask_zero=True),
                                          fnnet.Bidirectional(fnnet.LSTM(6))))


def test_bidirectional_sequences_pass_the_mask_to_the_next_layer():
    assert_padding_invariant(fnnet.serial(fnnet.Embedding(50, 8, mask_zero=True),
                                          fnnet.Bidirectional(fnnet.LSTM(5, return_sequences=True)),
                                          fnnet.LSTM(4)))


def test_bidirectional_gradients_are_finite_and_non_zero_under_jit():
    model = fnnet.serial(fnnet.Embedding(20, 4, mask_zero=True), fnnet.Bidirectional(fnnet.GRU(3)), fnnet.Dense(1))
    _, params = model.init(KEY, (-1, 5))
    ids = jnp.array([[3, 4, 0, 0, 0], [0, 7, 8, 9, 1]])
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, ids) ** 2)))(params)
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert np.all(np.isfinite(g)) and np.any(g != 0), path


def test_bidirectional_backward_copy_keeps_the_layer_settings():
    layer = fnnet.Bidirectional(fnnet.GRU(3, False, False, False, "relu", reset_after=False))
    backward = layer.children[1][1]
    assert backward.spec == ("GRU", (3, False, False, True, "relu"), {"reset_after": False})


def test_bidirectional_spec_and_errors():
    assert fnnet.Bidirectional(fnnet.LSTM(2), "sum").spec[0] == "Bidirectional"
    with pytest.raises(ValueError, match="unknown merge_mode 'max'"):
        fnnet.Bidirectional(fnnet.LSTM(2), "max")
    with pytest.raises(TypeError, match="Bidirectional needs a recurrent layer .* got Dense\\(3\\)"):
        fnnet.Bidirectional(fnnet.Dense(3))


def test_bidirectional_child_errors_name_the_direction():
    model = fnnet.serial(fnnet.Dense(4), fnnet.Bidirectional(fnnet.LSTM(2)))
    with pytest.raises(fnnet.LayerError, match=r"serial\[1\]/Bidirectional/forward/LSTM\(2\): "):
        model.init(KEY, (-1, 3))


# -------------------------------------------------------------------- TimeDistributed

def test_time_distributed_dense_shapes_and_values():
    layer = fnnet.TimeDistributed(fnnet.Dense(5))
    declared, params = layer.init(KEY, (-1, 7, 16))
    x = jax.random.normal(KEY, (2, 7, 16))
    y = layer.apply(params, x)
    assert declared == (-1, 7, 5) and y.shape == (2, 7, 5)
    for t in range(7):
        np.testing.assert_allclose(y[:, t], fnnet.Dense(5).apply(params, x[:, t]), atol=1e-6)


def test_time_distributed_after_lstm_sequences():
    model = fnnet.serial(fnnet.Embedding(30, 8), fnnet.LSTM(16, return_sequences=True),
                         fnnet.TimeDistributed(fnnet.Dense(2)))
    declared, params = model.init(KEY, (-1, 9))
    assert declared == (-1, 9, 2)
    assert model.apply(params, jnp.ones((3, 9), jnp.int32)).shape == (3, 9, 2)


def test_time_distributed_on_a_final_vector_is_a_clear_error():
    # The Keras tutorial's bug: TimeDistributed after an LSTM that returns only its last output.
    model = fnnet.serial(fnnet.Embedding(30, 8), fnnet.LSTM(16), fnnet.TimeDistributed(fnnet.Dense(2)))
    with pytest.raises(fnnet.LayerError, match=r"serial\[2\]/TimeDistributed: expected inputs of "
                                               r"shape \(batch, time, \.\.\.\).* got \(None, 16\)"
                                               r".*return_sequences=True"):
        model.init(KEY, (-1, 9))
    _, params = fnnet.TimeDistributed(fnnet.Dense(2)).init(KEY, (-1, 4, 16))
    with pytest.raises(fnnet.LayerError, match=r"TimeDistributed: .* got \(3, 16\) at apply"):
        fnnet.TimeDistributed(fnnet.Dense(2)).apply(params, jnp.ones((3, 16)))


def test_time_distributed_draws_fresh_randomness_per_step():
    layer = fnnet.TimeDistributed(fnnet.Dropout(0.5))
    _, params = layer.init(KEY, (-1, 6, 50))
    y = layer.apply(params, jnp.ones((1, 6, 50)), train=True, rng=jax.random.PRNGKey(3))
    kept = np.asarray(y[0] != 0)
    assert not all(np.array_equal(kept[0], kept[t]) for t in range(1, 6))
    np.testing.assert_array_equal(layer.apply(params, jnp.ones((1, 6, 50))), np.ones((1, 6, 50)))


def test_time_distributed_passes_the_mask_on():
    assert_padding_invariant(fnnet.serial(fnnet.Embedding(50, 8, mask_zero=True),
                                          fnnet.TimeDistributed(fnnet.Dense(6)), fnnet.GRU(4)))


def test_time_distributed_rejects_stateful_layers():
    with pytest.raises(fnnet.LayerError, match=r"TimeDistributed: BatchNorm keeps state"):
        fnnet.TimeDistributed(fnnet.BatchNorm()).init(KEY, (-1, 4, 3))


def test_time_distributed_child_errors_name_both_layers():
    with pytest.raises(fnnet.LayerError, match=r"TimeDistributed/Dense\(2\): needs a known last"):
        fnnet.TimeDistributed(fnnet.Dense(2)).init(KEY, (-1, 4, -1))


def test_wrapped_models_round_trip_through_their_spec():
    model = fnnet.serial(fnnet.Embedding(100, 8, mask_zero=True),
                         fnnet.Bidirectional(fnnet.LSTM(6, return_sequences=True), "sum"),
                         fnnet.TimeDistributed(fnnet.Dense(3)), fnnet.GRU(4, reset_after=False))
    rebuilt = fnnet.from_spec(fnnet.to_spec(model))
    _, params = model.init(KEY, (-1, 5))
    ids = jnp.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    np.testing.assert_array_equal(rebuilt.apply(params, ids), model.apply(params, ids))


# ------------------------------------------------------------- Bidirectional initial states

def test_bidirectional_initial_states_follow_keras_order():
    layer = fnnet.Bidirectional(fnnet.LSTM(3, return_sequences=True, return_state=True))
    x = _inputs()
    states = [jax.random.normal(jax.random.PRNGKey(i), (2, 3)) for i in range(4)]  # h_f, c_f, h_b, c_b
    _, params = layer.init(KEY, (x.shape, (2, 3), (2, 3), (2, 3), (2, 3)))
    merged, h_f, c_f, h_b, c_b = layer.apply(params, (x, *states))
    forward, _ = lstm_reference(params["forward"], x, state=tuple(np.asarray(s, np.float64) for s in states[:2]))
    backward, _ = lstm_reference(params["backward"], x, go_backwards=True,
                                 state=tuple(np.asarray(s, np.float64) for s in states[2:]))
    np.testing.assert_allclose(merged, np.concatenate([forward, backward[:, ::-1]], -1), atol=2e-5)
    with pytest.raises(fnnet.LayerError, match="as many states for each direction, got 3"):
        layer.apply(params, (x, *states[:3]))


@pytest.mark.parametrize("rnn", ["LSTM", "GRU"])
def test_bidirectional_initial_states_equal_keras(rnn):
    from keras_backend import keras_or_skip
    keras = keras_or_skip("Bidirectional initial_state")
    x = np.asarray(_inputs(), np.float32)
    n_states = 2 if rnn == "LSTM" else 1
    states = [np.asarray(jax.random.normal(jax.random.PRNGKey(10 + i), (2, 3)), np.float32)
              for i in range(2 * n_states)]
    k_layer = keras.layers.Bidirectional(getattr(keras.layers, rnn)(3, return_sequences=True))
    expected = np.asarray(k_layer(x, initial_state=states))
    params = {d: dict(zip(("kernel", "recurrent_kernel", "bias"), (np.asarray(w) for w in
                                                                  getattr(k_layer, f"{d}_layer").cell.weights)))
              for d in ("forward", "backward")}
    layer = fnnet.Bidirectional(getattr(fnnet, rnn)(3, return_sequences=True))
    np.testing.assert_allclose(layer.apply(params, (jnp.asarray(x), *states)), expected, rtol=1e-5, atol=1e-6)


def test_stateful_bidirectional_continues_both_directions_carries():
    layer = fnnet.Bidirectional(fnnet.GRU(3, stateful=True))
    _, params, state = layer.init_with_state(KEY, (2, 5, 3))
    assert sorted(state) == ["backward", "forward"] and state["forward"]["h"].shape == (2, 3)
    y, new = layer.apply_with_state(params, state, _inputs())
    np.testing.assert_allclose(new["forward"]["h"], y[:, :3], atol=1e-6)
    np.testing.assert_allclose(new["backward"]["h"], y[:, 3:], atol=1e-6)

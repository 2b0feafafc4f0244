"""LSTM, GRU and SimpleRNN: Keras's equations (against NumPy references), masks, shapes, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import fnnet.testing
from fnnet.layers import recurrent

KEY = jax.random.PRNGKey(0)


# ------------------------------------------------------------- NumPy references of Keras

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _run_reference(step, x, state, mask, go_backwards, zero_masked=True):
    """Keras's masked recurrence around a one-step function: a masked step keeps the carry
    and outputs 0 (or, with ``zero_masked=False``, the carried output)."""
    x = np.asarray(x, np.float64)
    mask = np.ones(x.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    if go_backwards:
        x, mask = x[:, ::-1], mask[:, ::-1]
    outputs = []
    for t in range(x.shape[1]):
        new_state = step(x[:, t], state)
        keep = mask[:, t, None]
        state = tuple(np.where(keep, new, old) for new, old in zip(new_state, state))
        outputs.append(np.where(keep, new_state[0], 0.0 if zero_masked else state[0]))
    return np.stack(outputs, axis=1), state


def lstm_reference(params, x, mask=None, go_backwards=False, state=None, zero_masked=True):
    kernel, recurrent, bias = (np.asarray(params[k], np.float64) for k in ("kernel", "recurrent_kernel", "bias"))
    units = recurrent.shape[0]

    def step(x_t, state):
        h, c = state
        z = x_t @ kernel + h @ recurrent + bias
        i, f = _sigmoid(z[:, :units]), _sigmoid(z[:, units:2 * units])
        g, o = np.tanh(z[:, 2 * units:3 * units]), _sigmoid(z[:, 3 * units:])
        c = f * c + i * g
        return o * np.tanh(c), c

    zeros = np.zeros((x.shape[0], units))
    return _run_reference(step, x, state or (zeros, zeros), mask, go_backwards, zero_masked)


def gru_reference(params, x, mask=None, go_backwards=False, reset_after=True):
    kernel, recurrent, bias = (np.asarray(params[k], np.float64) for k in ("kernel", "recurrent_kernel", "bias"))
    units = recurrent.shape[0]
    k_z, k_r, k_h = np.split(kernel, 3, axis=1)
    r_z, r_r, r_h = np.split(recurrent, 3, axis=1)

    def step(x_t, state):
        (h,) = state
        if reset_after:
            (bx_z, bx_r, bx_h), (bh_z, bh_r, bh_h) = np.split(bias[0], 3), np.split(bias[1], 3)
            z = _sigmoid(x_t @ k_z + bx_z + h @ r_z + bh_z)
            r = _sigmoid(x_t @ k_r + bx_r + h @ r_r + bh_r)
            candidate = np.tanh(x_t @ k_h + bx_h + r * (h @ r_h + bh_h))
        else:
            b_z, b_r, b_h = np.split(bias, 3)
            z = _sigmoid(x_t @ k_z + b_z + h @ r_z)
            r = _sigmoid(x_t @ k_r + b_r + h @ r_r)
            candidate = np.tanh(x_t @ k_h + b_h + (r * h) @ r_h)
        return (z * h + (1 - z) * candidate,)

    return _run_reference(step, x, (np.zeros((x.shape[0], units)),), mask, go_backwards)


def simple_rnn_reference(params, x, mask=None, go_backwards=False):
    kernel, recurrent, bias = (np.asarray(params[k], np.float64) for k in ("kernel", "recurrent_kernel", "bias"))

    def step(x_t, state):
        return (np.tanh(x_t @ kernel + state[0] @ recurrent + bias),)

    return _run_reference(step, x, (np.zeros((x.shape[0], recurrent.shape[0])),), mask, go_backwards)


CELLS = {
    "lstm": (lambda **kw: fnnet.LSTM(5, **kw), lstm_reference),
    "gru": (lambda **kw: fnnet.GRU(5, **kw), gru_reference),
    "gru_reset_before": (lambda **kw: fnnet.GRU(5, reset_after=False, **kw),
                         lambda *a, **kw: gru_reference(*a, reset_after=False, **kw)),
    "simple_rnn": (lambda **kw: fnnet.SimpleRNN(5, **kw), simple_rnn_reference),
}


def _random_params(layer, input_shape, seed=0):
    """Initialised params with random biases, so the bias layout is tested too."""
    _, params = layer.init(jax.random.PRNGKey(seed), input_shape)
    bias_key = jax.random.PRNGKey(seed + 1)
    return {**params, "bias": 0.5 * jax.random.normal(bias_key, params["bias"].shape)}


def _inputs(batch=3, time=6, features=4, seed=2):
    return jax.random.normal(jax.random.PRNGKey(seed), (batch, time, features))


# ------------------------------------------------------------------------------ cells

@pytest.mark.parametrize("cell, go_backwards", [(cell, False) for cell in sorted(CELLS)] + [("lstm", True)])
def test_cell_matches_the_keras_equations(cell, go_backwards):
    make, reference = CELLS[cell]
    layer = make(return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = _inputs()
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]], bool)
    params = _random_params(layer, x.shape)
    (outputs, *states), _, _ = layer.call(params, None, x, mask=jnp.asarray(mask))
    expected_outputs, expected_states = reference(params, x, mask=mask, go_backwards=go_backwards)
    np.testing.assert_allclose(outputs, expected_outputs, atol=2e-5)
    for state, expected in zip(states, expected_states, strict=True):
        np.testing.assert_allclose(state, expected, atol=2e-5)


def test_masked_steps_can_repeat_the_last_output_like_keras_3():
    layer = fnnet.LSTM(5, return_sequences=True, zero_output_for_mask=False)
    x = _inputs()
    mask = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]], bool)
    params = _random_params(layer, x.shape)
    expected, _ = lstm_reference(params, x, mask=mask, zero_masked=False)
    np.testing.assert_allclose(layer.apply(params, x, mask=jnp.asarray(mask)), expected, atol=2e-5)
    assert np.all(expected[1, :2] == 0) and np.all(expected[0, 4] == expected[0, 3])


def test_lstm_starts_from_initial_states_given_with_the_inputs():
    layer = fnnet.LSTM(5, return_sequences=True)
    x = _inputs()
    h0, c0 = (jax.random.normal(jax.random.PRNGKey(s), (3, 5)) for s in (7, 8))
    params = _random_params(layer, ((3, 6, 4), (3, 5), (3, 5)))
    expected, _ = lstm_reference(params, x, state=(np.asarray(h0), np.asarray(c0)))
    np.testing.assert_allclose(layer.apply(params, (x, h0, c0)), expected, atol=2e-5)


def test_lstm_init_follows_keras():
    _, params = fnnet.LSTM(8).init(KEY, (-1, 3, 6))
    assert {k: v.shape for k, v in params.items()} == {
        "kernel": (6, 32), "recurrent_kernel": (8, 32), "bias": (32,)}
    # unit_forget_bias: forget gate (the second block) starts at 1, the others at 0.
    np.testing.assert_array_equal(params["bias"], np.r_[np.zeros(8), np.ones(8), np.zeros(16)])
    # Orthogonal recurrent kernel: its rows are orthonormal.
    np.testing.assert_allclose(params["recurrent_kernel"] @ params["recurrent_kernel"].T, np.eye(8), atol=1e-5)
    limit = np.sqrt(6 / (6 + 32))  # glorot-uniform over (in, 4 * units)
    assert np.abs(params["kernel"]).max() <= limit and np.abs(params["kernel"]).max() > limit / 2


@pytest.mark.parametrize("reset_after, bias_shape", [(True, (2, 12)), (False, (12,))])
def test_gru_weight_layout(reset_after, bias_shape):
    _, params = fnnet.GRU(4, reset_after=reset_after).init(KEY, (-1, 3, 6))
    assert {k: v.shape for k, v in params.items()} == {
        "kernel": (6, 12), "recurrent_kernel": (4, 12), "bias": bias_shape}


def test_use_bias_false_has_no_bias():
    _, params = fnnet.LSTM(4, use_bias=False).init(KEY, (-1, 3, 2))
    assert sorted(params) == ["kernel", "recurrent_kernel"]
    assert fnnet.LSTM(4, use_bias=False).apply(params, jnp.ones((2, 3, 2))).shape == (2, 4)


# ----------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("cell, return_sequences, return_state",
                         [(cell, flag, flag) for cell in sorted(CELLS) for flag in (False, True)]
                         + [("lstm", True, False), ("lstm", False, True)])
def test_declared_shapes_equal_produced_shapes(cell, return_sequences, return_state):
    layer = CELLS[cell][0](return_sequences=return_sequences, return_state=return_state)
    model = fnnet.serial(fnnet.Embedding(30, 4), layer)
    declared, params = model.init(KEY, (-1, 7))
    produced = jax.tree_util.tree_map(lambda a: a.shape, model.apply(params, jnp.ones((2, 7), jnp.int32)))
    output = (2, 7, 5) if return_sequences else (2, 5)
    n_states = 2 if cell == "lstm" else 1
    expected = (output,) + ((2, 5),) * n_states if return_state else output
    assert produced == expected
    assert declared == jax.tree_util.tree_map(lambda d: -1 if d == 2 else d, expected)


def test_issue_shapes_for_embedding_then_lstm():
    model = fnnet.serial(fnnet.Embedding(1000, 32), fnnet.LSTM(16))
    assert model.init(KEY, (-1, 20))[0] == (-1, 16)
    model = fnnet.serial(fnnet.Embedding(1000, 32), fnnet.LSTM(16, return_sequences=True))
    assert model.init(KEY, (-1, 20))[0] == (-1, 20, 16)
    assert model.init(KEY, (-1, -1))[0] == (-1, -1, 16)


def test_return_state_output_is_the_last_hidden_state():
    layer = fnnet.LSTM(5, return_sequences=True, return_state=True)
    x = _inputs()
    _, params = layer.init(KEY, x.shape)
    sequence, h, c = layer.apply(params, x)
    np.testing.assert_allclose(sequence[:, -1], h)
    assert c.shape == h.shape and not np.allclose(c, h)


# ---------------------------------------------------------------------------- masking

def _padded(tokens, pads, side):
    padding = np.zeros((tokens.shape[0], pads), tokens.dtype)
    return np.concatenate([tokens, padding] if side == "trailing" else [padding, tokens], axis=1)


def _padding_invariance_cases(tokens):
    """The unpadded batch, and batches of the same rows padded at the end and at the start."""
    cases = {}
    for pads in (0, 5, 50):
        cases[f"{pads} pads"] = np.concatenate([_padded(tokens, pads, "trailing"), _padded(tokens, pads, "leading")])
    return cases


def assert_padding_invariant(model, atol=1e-5):
    """``model``'s output for each sequence is the same with 0, 5 or 50 pads at either end."""
    _, params = model.init(KEY, (-1, 7))
    tokens = np.random.default_rng(0).integers(1, 50, (2, 7))
    apply = jax.jit(model.apply)
    unpadded = np.asarray(apply(params, tokens))
    for case, batch in _padding_invariance_cases(tokens).items():
        np.testing.assert_allclose(apply(params, batch), np.concatenate([unpadded, unpadded]), atol=atol,
                                   err_msg=f"{case}, rows: trailing, trailing, leading, leading")


@pytest.mark.parametrize("recurrent", [fnnet.LSTM(6), fnnet.GRU(6)], ids=lambda l: l.name)
def test_padding_does_not_change_the_final_output(recurrent):
    assert_padding_invariant(fnnet.serial(fnnet.Embedding(50, 8, mask_zero=True), recurrent))


def test_sequences_of_different_lengths_in_one_batch():
    model = fnnet.serial(fnnet.Embedding(50, 8, mask_zero=True), fnnet.LSTM(6))
    _, params = model.init(KEY, (-1, 7))
    short, long = [3, 9, 4], [5, 1, 7, 2, 8, 6]
    batch = np.array([short + [0] * 3, long])
    out = model.apply(params, batch)
    np.testing.assert_allclose(out[0], model.apply(params, np.array([short]))[0], atol=1e-6)
    np.testing.assert_allclose(out[1], model.apply(params, np.array([long]))[0], atol=1e-6)


def test_layers_that_ignore_the_mask_pass_it_on():
    # Dense between Embedding and LSTM, and a stacked LSTM reading the first one's mask.
    model = fnnet.serial(fnnet.Embedding(50, 8, mask_zero=True), fnnet.Dense(8),
                         fnnet.LSTM(6, return_sequences=True), fnnet.LSTM(4))
    _, params = model.init(KEY, (-1, 7))
    tokens = np.random.default_rng(1).integers(1, 50, (2, 4))
    np.testing.assert_allclose(model.apply(params, _padded(tokens, 5, "trailing")),
                               model.apply(params, tokens), atol=1e-5)


def test_masked_steps_output_zero_and_the_mask_is_passed_on():
    layer = fnnet.LSTM(3, return_sequences=True)
    _, params = layer.init(KEY, (-1, 4, 2))
    mask = jnp.array([[True, True, False, False]])
    y, _, out_mask = layer.call(params, None, jnp.ones((1, 4, 2)), mask=mask)
    assert np.all(y[0, 2:] == 0) and np.all(y[0, :2] != 0)
    np.testing.assert_array_equal(out_mask, mask)
    _, _, no_mask = fnnet.LSTM(3).call(params, None, jnp.ones((1, 4, 2)), mask=mask)
    assert no_mask is None


# -------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gradients_are_finite_and_non_zero_under_jit(cell):
    model = fnnet.serial(fnnet.Embedding(20, 4, mask_zero=True), CELLS[cell][0](), fnnet.Dense(1))
    _, params = model.init(KEY, (-1, 6))
    ids = jnp.array([[3, 4, 5, 0, 0, 0], [0, 0, 7, 8, 9, 1]])
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, ids) ** 2)))(params)
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), path


def _autodiff_twin(layer_fn, cell_fn, **kwargs):
    """The layer, and the same layer with JAX's own backward pass instead of the hand-written one."""
    cell = cell_fn()
    args = [kwargs.get(k, default) for k, default in [("return_sequences", False), ("return_state", False),
                                                       ("go_backwards", False), ("unroll", 1),
                                                       ("zero_output_for_mask", True)]]
    return layer_fn(**kwargs), recurrent._recurrent_layer("autodiff", cell._replace(gates=None), *args)


TWINS = {
    "lstm": (lambda **kw: fnnet.LSTM(4, **kw),
             lambda: recurrent._lstm_cell(4, "tanh", "sigmoid", True, "glorot_uniform", "orthogonal", "zeros", True)),
    "gru": (lambda **kw: fnnet.GRU(4, **kw),
            lambda: recurrent._gru_cell(4, "tanh", "sigmoid", True, "glorot_uniform", "orthogonal", "zeros", True)),
    "simple_rnn": (lambda **kw: fnnet.SimpleRNN(4, **kw),
                   lambda: recurrent._simple_rnn_cell(4, "tanh", True, "glorot_uniform", "orthogonal", "zeros")),
}


EVERYTHING = dict(return_sequences=True, return_state=True, go_backwards=True, zero_output_for_mask=False,
                  masked=True, initial_state=True)


@pytest.mark.parametrize("cell, options", [(cell, options) for cell in sorted(TWINS)
                                           for options in (dict(return_state=True), EVERYTHING)]
                         + [("lstm", dict(return_sequences=True, return_state=True, masked=True))],
                         ids=lambda v: v if isinstance(v, str) else "-".join(sorted(v)))
def test_hand_written_backward_pass_matches_jax_autodiff(cell, options):
    options = dict(options)
    masked, initial_state = options.pop("masked", False), options.pop("initial_state", False)
    custom, autodiff = _autodiff_twin(*TWINS[cell], **options)
    x = _inputs(time=5)
    n_states = 2 if cell == "lstm" else 1
    states = tuple(jax.random.normal(jax.random.PRNGKey(9 + i), (3, 4)) for i in range(n_states))
    inputs = (x, *states) if initial_state else x
    mask = jnp.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 1]], bool) if masked else None
    params = _random_params(custom, jax.tree_util.tree_map(jnp.shape, inputs))

    def loss(layer, params, inputs):
        outputs = layer.call(params, None, inputs, mask=mask)[0]
        leaves = jax.tree_util.tree_leaves(outputs)
        return sum(jnp.sum(jnp.cos(jnp.arange(a.size).reshape(a.shape)) * a) for a in leaves)

    expected = jax.jit(jax.grad(lambda p, i: loss(autodiff, p, i), argnums=(0, 1)))(params, inputs)
    got = jax.jit(jax.grad(lambda p, i: loss(custom, p, i), argnums=(0, 1)))(params, inputs)
    for (path, g), e in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(g, e, atol=2e-5, err_msg=str(path))


def test_gradients_work_under_vmap_over_stacked_params():
    # An ensemble trained together: jax.vmap over members' params, as in PERFORMANCE.md's MR runs.
    layer = fnnet.LSTM(3)
    x = _inputs(batch=2, time=4)
    members = [layer.init(jax.random.PRNGKey(s), x.shape)[1] for s in range(3)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *members)
    grad = jax.grad(lambda p: jnp.sum(layer.apply(p, x) ** 2))
    batched = jax.jit(jax.vmap(grad))(stacked)
    grad = jax.jit(grad)
    for i, member in enumerate(members):
        for key, g in grad(member).items():
            np.testing.assert_allclose(batched[key][i], g, atol=1e-6)


def test_lstm_gradient_agrees_with_finite_differences():
    with jax.enable_x64(True):
        layer = fnnet.LSTM(3, return_sequences=True)
        x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 2), jnp.float64)
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), _random_params(layer, x.shape))
        weights = jax.random.normal(jax.random.PRNGKey(2), (2, 4, 3), jnp.float64)
        mask = jnp.array([[True, True, True, False], [True, True, True, True]])

        def loss(p):
            return jnp.sum(weights * layer.call(p, None, x, mask=mask)[0])

        grads, loss = jax.jit(jax.grad(loss)), jax.jit(loss)
        grads = grads(params)
        leaves, treedef = jax.tree_util.tree_flatten(params)
        for seed in range(3):
            keys = jax.random.split(jax.random.PRNGKey(10 + seed), len(leaves))
            direction = treedef.unflatten([jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)])
            eps = 1e-6
            step = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * eps * d, params, direction)  # noqa: E731
            numeric = (loss(step(1)) - loss(step(-1))) / (2 * eps)
            analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree_util.tree_leaves(grads),
                                                           jax.tree_util.tree_leaves(direction)))
            np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


# ------------------------------------------------------------------ jit, spec, errors

def test_serial_embedding_lstm_under_jit_matches_eager():
    model = fnnet.serial(fnnet.Embedding(50, 8, mask_zero=True), fnnet.LSTM(6))
    _, params = model.init(KEY, (-1, 5))
    ids = jnp.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    np.testing.assert_allclose(jax.jit(model.apply)(params, ids), model.apply(params, ids), atol=1e-6)


@pytest.mark.parametrize("unroll", [2, True])
def test_unroll_gives_the_same_result(unroll):
    x = _inputs()
    _, params = fnnet.LSTM(5).init(KEY, x.shape)
    np.testing.assert_allclose(fnnet.LSTM(5, unroll=unroll).apply(params, x), fnnet.LSTM(5).apply(params, x),
                               atol=1e-6)


def test_constructors_record_their_spec():
    assert fnnet.LSTM(8, return_sequences=True).spec == ("LSTM", (8,), {"return_sequences": True})
    assert fnnet.GRU(8, reset_after=False).spec == ("GRU", (8,), {"reset_after": False})
    assert fnnet.SimpleRNN(8).spec == ("SimpleRNN", (8,), {})


def test_input_without_time_axis_names_the_layer():
    model = fnnet.serial(fnnet.Dense(4), fnnet.LSTM(3))
    with pytest.raises(fnnet.LayerError, match=r"serial\[1\]/LSTM\(3\): .*\(batch, time, features\)"):
        model.init(KEY, (-1, 5))


def test_mask_of_the_wrong_shape_is_an_error():
    layer = fnnet.LSTM(3)
    _, params = layer.init(KEY, (-1, 4, 2))
    with pytest.raises(fnnet.LayerError, match=r"LSTM\(3\): expected a mask of shape \(batch, time\) = \(1, 4\)"):
        layer.apply(params, jnp.ones((1, 4, 2)), mask=jnp.ones((1, 5), bool))


def test_wrong_feature_size_is_an_error():
    layer = fnnet.GRU(3)
    _, params = layer.init(KEY, (-1, 4, 2))
    with pytest.raises(fnnet.LayerError, match=r"GRU\(3\): expected inputs whose last dimension is 2"):
        layer.apply(params, jnp.ones((1, 4, 5)))


def test_eager_apply_compiles_the_scan_once():
    compiles = []

    def on_event(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    model = fnnet.serial(fnnet.Embedding(50, 4, mask_zero=True), fnnet.LSTM(3))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 5))
    ids = jnp.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
    first = model.apply(params, ids)  # compiles what it needs
    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        again = model.apply(params, ids)
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    np.testing.assert_array_equal(first, again)
    assert compiles == [], "an eager LSTM apply compiled again on its second call"


# ------------------------------------------------------------- stateful and dropout

@pytest.mark.parametrize("make", [lambda **kw: fnnet.LSTM(4, **kw), lambda **kw: fnnet.GRU(4, **kw),
                                  lambda **kw: fnnet.GRU(4, reset_after=False, **kw),
                                  lambda **kw: fnnet.SimpleRNN(4, **kw)], ids=["lstm", "gru", "gru_before", "rnn"])
def test_stateful_over_two_halves_equals_the_whole_sequence(make):
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 3))
    whole = make(return_sequences=True)
    _, params = whole.init(KEY, x.shape)
    expected = whole.apply(params, x)
    stateful = fnnet.serial(make(return_sequences=True, stateful=True))
    _, _, state = stateful.init_with_state(KEY, (2, None, 3))
    first, state = stateful.apply_with_state({next(iter(state)): params}, state, x[:, :5])
    second, state = stateful.apply_with_state({next(iter(state)): params}, state, x[:, 5:])  # inference moves it too
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), expected, atol=1e-6)
    np.testing.assert_allclose(state[next(iter(state))]["h"], expected[:, -1], atol=1e-6)


def test_reset_states_zeroes_the_carries_and_keeps_other_state():
    model = fnnet.serial(fnnet.BatchNorm(), fnnet.Bidirectional(fnnet.LSTM(3, stateful=True)), fnnet.Dense(1))
    _, params, state = model.init_with_state(KEY, (2, 5, 4))
    x = jax.random.normal(KEY, (2, 5, 4))
    y0, moved = model.apply_with_state(params, state, x, train=True)
    assert jnp.any(moved["bidirectional"]["forward"]["c"] != 0)
    reset = fnnet.reset_states(model, moved)
    for direction in ("forward", "backward"):
        for k in ("h", "c"):
            np.testing.assert_array_equal(reset["bidirectional"][direction][k], 0.0)
    np.testing.assert_array_equal(reset["batch_norm"]["mean"], moved["batch_norm"]["mean"])
    again, _ = model.apply_with_state(params, reset, x)  # from zero carries, with the moved statistics
    fresh, _ = model.apply_with_state(params, {**state, "batch_norm": moved["batch_norm"]}, x)
    np.testing.assert_allclose(again, fresh, atol=1e-6)


def test_stateful_errors_are_clear():
    with pytest.raises(fnnet.LayerError, match="stateful=True .* needs a known batch size"):
        fnnet.LSTM(3, stateful=True).init_with_state(KEY, (None, 5, 2))
    layer = fnnet.GRU(3, stateful=True)
    _, params, state = layer.init_with_state(KEY, (2, 5, 2))
    with pytest.raises(fnnet.LayerError, match="keeps carries for a batch of 2"):
        layer.apply_with_state(params, state, jnp.ones((3, 5, 2)))
    with pytest.raises(fnnet.LayerError, match="apply_with_state"):
        layer.apply(params, jnp.ones((2, 5, 2)))


def test_given_initial_states_win_over_kept_ones():
    layer = fnnet.LSTM(3, stateful=True)
    _, params, state = layer.init_with_state(KEY, ((2, 4, 2), (2, 3), (2, 3)))
    x, h0, c0 = jnp.ones((2, 4, 2)), jnp.full((2, 3), 0.5), jnp.full((2, 3), -0.5)
    moved = {"h": jnp.ones((2, 3)), "c": jnp.ones((2, 3))}
    y, _ = layer.apply_with_state(params, moved, (x, h0, c0))
    np.testing.assert_allclose(y, fnnet.LSTM(3).apply(params, (x, h0, c0)), atol=1e-6)


def _identity_rnn(**kwargs):
    """A linear SimpleRNN h_t = x_t @ I + h_{t-1} @ I: its outputs show the dropout masks."""
    layer = fnnet.SimpleRNN(3, return_sequences=True, activation="linear", use_bias=False, **kwargs)
    return layer, {"kernel": jnp.eye(3), "recurrent_kernel": jnp.eye(3)}


def test_input_dropout_mask_is_fixed_over_time():
    layer, params = _identity_rnn(dropout=0.5)
    x = jnp.zeros((64, 4, 3)).at[:, :, :].set(1.0)
    y = layer.apply(params, x, train=True, rng=jax.random.PRNGKey(1))
    steps = np.diff(np.asarray(y), axis=1, prepend=0.0)  # x_t * mask at each step
    assert set(np.unique(steps).round(5)) <= {0.0, 2.0}  # dropped or scaled by 1 / (1 - 0.5)
    np.testing.assert_array_equal(steps, np.broadcast_to(steps[:, :1], steps.shape))  # same mask each step
    assert 0.3 < float((steps[:, 0] == 0).mean()) < 0.7
    np.testing.assert_array_equal(layer.apply(params, x), layer.apply(params, x, train=False))  # off in inference


def test_recurrent_dropout_mask_is_fixed_over_time():
    layer, params = _identity_rnn(recurrent_dropout=0.5)
    x = jnp.zeros((64, 4, 3)).at[:, 0, :].set(1.0)  # one impulse, then only the recurrence
    y = np.asarray(layer.apply(params, x, train=True, rng=jax.random.PRNGKey(2)))
    r = y[:, 1]  # h_1 * mask = mask (h_1 = 1)
    assert set(np.unique(r).round(5)) <= {0.0, 2.0}
    np.testing.assert_allclose(y[:, 2], r * r, rtol=1e-6)  # the same mask applied again
    np.testing.assert_allclose(y[:, 3], r ** 3, rtol=1e-6)


def _keras_implementation_1_lstm(params, x, in_masks, rec_masks):
    """Keras's LSTMCell (implementation 1) in NumPy: a mask per gate on x_t and on h."""
    kernel, recurrent, bias = (np.asarray(params[k], np.float64) for k in ("kernel", "recurrent_kernel", "bias"))
    u = recurrent.shape[0]
    h = c = np.zeros((x.shape[0], u))
    out = []
    for t in range(x.shape[1]):
        z = [(x[:, t] * in_masks[g]) @ kernel[:, g * u:(g + 1) * u] + (h * rec_masks[g]) @ recurrent[:, g * u:(g + 1) * u]
             + bias[g * u:(g + 1) * u] for g in range(4)]
        i, f, g_, o = _sigmoid(z[0]), _sigmoid(z[1]), np.tanh(z[2]), _sigmoid(z[3])
        c = f * c + i * g_
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, 1)


def test_lstm_recurrent_dropout_follows_keras_per_gate_masks():
    layer = fnnet.LSTM(4, return_sequences=True, dropout=0.3, recurrent_dropout=0.4)
    x = jax.random.normal(KEY, (3, 5, 2))
    _, params = layer.init(KEY, x.shape)
    rng = jax.random.PRNGKey(7)
    y = layer.apply(params, x, train=True, rng=rng)
    _, (in_masks, rec_masks) = recurrent._dropout_masks(rng, recurrent._lstm_cell(
        4, "tanh", "sigmoid", True, "glorot_uniform", "orthogonal", "zeros", True), 0.3, 0.4, 3, 2, jnp.float32)
    assert in_masks.shape == (4, 3, 2) and rec_masks.shape == (4, 3, 4)
    expected = _keras_implementation_1_lstm(params, np.asarray(x, np.float64), np.asarray(in_masks),
                                            np.asarray(rec_masks))
    np.testing.assert_allclose(y, expected, atol=2e-5)
    grads = jax.grad(lambda p: layer.apply(p, x, train=True, rng=rng).sum())(params)
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in jax.tree_util.tree_leaves(grads))


def test_dropout_needs_an_rng_in_training_and_valid_rates():
    layer = fnnet.GRU(3, dropout=0.2)
    _, params = layer.init(KEY, (2, 4, 2))
    with pytest.raises(fnnet.LayerError, match="needs an rng"):
        layer.apply(params, jnp.ones((2, 4, 2)), train=True)
    with pytest.raises(ValueError, match=r"recurrent_dropout is the fraction .* \[0, 1\)"):
        fnnet.LSTM(3, recurrent_dropout=1.0)


@pytest.mark.parametrize("make", [lambda: fnnet.LSTM(3, dropout=0.2, recurrent_dropout=0.2, return_sequences=True),
                                  lambda: fnnet.GRU(3, reset_after=False, recurrent_dropout=0.3),
                                  lambda: fnnet.SimpleRNN(3, dropout=0.2)], ids=["lstm", "gru", "rnn"])
def test_dropout_layers_pass_check_layer_in_training(make):
    # Masks are drawn for the whole batch, so one example alone draws others: not batch-independent.
    fnnet.testing.check_layer(make(), (-1, 4, 2), max_examples=2, train=True, batch_independent=False)


def test_new_recurrent_options_round_trip_through_their_spec():
    model = fnnet.serial(fnnet.LSTM(3, stateful=True, dropout=0.1, recurrent_dropout=0.2, return_sequences=True),
                         fnnet.GRU(2, stateful=True))
    rebuilt = fnnet.from_spec(fnnet.to_spec(model))
    _, params, state = model.init_with_state(KEY, (2, 4, 3))
    x = jax.random.normal(KEY, (2, 4, 3))
    np.testing.assert_array_equal(rebuilt.apply_with_state(params, state, x)[0],
                                  model.apply_with_state(params, state, x)[0])


@pytest.mark.parametrize("make", [fnnet.LSTM, fnnet.GRU, fnnet.SimpleRNN])
def test_stateful_layers_pass_check_layer_with_a_moving_carry(make):
    from fnnet.testing import check_layer
    check_layer(make(3, stateful=True), (2, 4, 2), batch_independent=False, state_moves_in_inference=True,
                max_examples=5)


@pytest.mark.parametrize("make", [fnnet.LSTM, fnnet.GRU, fnnet.SimpleRNN])
@pytest.mark.parametrize("units", [0, -2, 2.5])
def test_units_must_be_a_positive_integer(make, units):
    with pytest.raises(ValueError, match="units must be a positive integer"):
        make(units)

"""Recurrent layers on ``jax.lax.scan``: ``LSTM``, ``GRU`` and ``SimpleRNN``.

Each layer is a *cell* (one time step: Keras's equations, gate order and weight layout)
run by one shared scan that handles masks, direction, initial states and what the
layer returns. Params keep Keras's names and shapes so Keras weights map over 1:1.

Masking (Keras semantics): at a masked step the carry is kept unchanged and the step's
output is zero, so the final output is the state after the last unmasked step, and a
sequence gives the same result however much padding surrounds it.

Speed: each step does one matmul ``[x_t, h] @ W`` with the input and recurrent kernels
stacked once per call. On 2 CPU cores this beat both ``x_t @ K + h @ R`` and hoisting
``x @ K`` for all steps out of the scan. The backward pass is written by hand
(``jax.custom_vjp``): inside the reverse loop it keeps only ``dz @ W_h.T`` and recomputes
the gates, then forms the weight and input gradients for all steps as two large matmuls;
that took ~15% less CPU time per train step than JAX's own backward pass of the same scan
(``scripts/bench_lstm.py``). The cost: forward-mode differentiation (``jax.jvp``,
``jax.jacfwd``) does not go through these layers; reverse mode, ``vmap`` and ``jit`` do.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..core import LAYER_REGISTRY, as_layer, expect_last_dim, expect_positive_int, layer, registered, walk
from ..initializers import get_initializer
from .activations import get_activation


class _Cell(NamedTuple):
    """One time step of a recurrent layer; the scan around it is shared."""

    units: int
    n_states: int  # carry entries: (h, c) for LSTM, (h,) for GRU and SimpleRNN
    init_params: Callable  # (rng, input_dim) -> params in Keras's layout
    prepare: Callable  # params -> the weights the step uses (fused once per call, outside the scan)
    step: Callable  # (weights, carry, x_t) -> (new_carry, output_t)
    # Recurrent dropout (Keras's implementation 1: one mask per gate, on x_t and on h):
    # (weights, carry, x_t, input_masks or None, recurrent_masks) -> (new_carry, output_t).
    dropped_step: Callable
    n_gates: int  # how many dropout masks Keras draws with recurrent_dropout (4, 3, 1)
    # For cells whose step is ``z = [x_t, h] @ w + b`` then element-wise maths, that maths:
    # (z, carry) -> (new_carry, output_t); the scan then uses a hand-written backward pass.
    gates: Callable | None = None


def _dropped_projection(w, b, x_t, h, input_masks, recurrent_masks, block_gates, units):
    """``[x_t, h] @ w + b`` where each ``units``-wide column block ``j`` of ``w`` sees ``x_t`` and
    ``h`` times gate ``block_gates[j]``'s dropout masks (Keras's per-gate masks)."""
    features = x_t.shape[-1]
    blocks = []
    for j, g in enumerate(block_gates):
        x_g = x_t if input_masks is None else x_t * input_masks[g]
        h_g = h if recurrent_masks is None else h * recurrent_masks[g]
        cols = slice(j * units, (j + 1) * units)
        blocks.append(x_g @ w[:features, cols] + h_g @ w[features:, cols])
    return jnp.concatenate(blocks, axis=-1) + b


def _fused(units, n_states, init_params, prepare, gates, block_gates) -> _Cell:
    """A cell whose step is one matmul ``[x_t, h] @ w + b`` followed by ``gates``; column block
    ``j`` of ``w`` belongs to gate ``block_gates[j]`` (for the dropout masks)."""

    def step(weights, carry, x_t):
        w, b = weights
        return gates(jnp.concatenate([x_t, carry[0]], axis=-1) @ w + b, carry)

    def dropped_step(weights, carry, x_t, input_masks, recurrent_masks):
        w, b = weights
        z = _dropped_projection(w, b, x_t, carry[0], input_masks, recurrent_masks, block_gates, units)
        return gates(z, carry)

    return _Cell(units, n_states, init_params, prepare, step, dropped_step, max(block_gates) + 1, gates)


def _stack(params):
    """``[kernel; recurrent_kernel]`` so that ``[x_t, h] @ W`` is one matmul per step."""
    return jnp.concatenate([params["kernel"], params["recurrent_kernel"]], axis=0)


def _bias_or_zeros(params, size):
    return params["bias"] if "bias" in params else jnp.zeros((size,), params["kernel"].dtype)


def _weight_initializer(units, gates, kernel_init, recurrent_init, bias_init, use_bias, bias_shape=None):
    """``init_params(rng, input_dim)`` for Keras's ``kernel``/``recurrent_kernel``/``bias`` of a cell
    with ``gates`` blocks of ``units`` columns (bias shaped ``bias_shape``, default ``(gates * units,)``)."""
    kernel_init, recurrent_init = get_initializer(kernel_init), get_initializer(recurrent_init)
    bias_init = get_initializer(bias_init)
    width = gates * units

    def init_params(rng, input_dim):
        k_kernel, k_recurrent, k_bias = jax.random.split(rng, 3)
        params = {"kernel": kernel_init(k_kernel, (input_dim, width), jnp.float32),
                  "recurrent_kernel": recurrent_init(k_recurrent, (units, width), jnp.float32)}
        if use_bias:
            params["bias"] = bias_init(k_bias, bias_shape or (width,), jnp.float32)
        return params

    return init_params


def _lstm_cell(units, activation, recurrent_activation, use_bias, kernel_init, recurrent_init,
               bias_init, unit_forget_bias) -> _Cell:
    act, gate = get_activation(activation), get_activation(recurrent_activation)
    init_weights = _weight_initializer(units, 4, kernel_init, recurrent_init, bias_init, use_bias)

    def init_params(rng, input_dim):
        params = init_weights(rng, input_dim)
        if use_bias and unit_forget_bias:  # Keras's unit_forget_bias: start with the forget gate open
            params["bias"] = params["bias"].at[units:2 * units].set(1.0)
        return params

    def prepare(params):
        return _stack(params), _bias_or_zeros(params, 4 * units)

    def gates(z, carry):
        i, f, g, o = jnp.split(z, 4, axis=-1)  # Keras's gate order: input, forget, cell, output
        c = gate(f) * carry[1] + gate(i) * act(g)
        h = gate(o) * act(c)
        return (h, c), h

    return _fused(units, 2, init_params, prepare, gates, block_gates=(0, 1, 2, 3))


def _gru_cell(units, activation, recurrent_activation, use_bias, kernel_init, recurrent_init,
              bias_init, reset_after) -> _Cell:
    act, gate = get_activation(activation), get_activation(recurrent_activation)
    # reset_after keeps separate input and recurrent biases, as rows 0 and 1.
    init_params = _weight_initializer(units, 3, kernel_init, recurrent_init, bias_init, use_bias,
                                      bias_shape=(2, 3 * units) if reset_after else None)

    def split3(a):
        return a[..., :units], a[..., units:2 * units], a[..., 2 * units:]

    def prepare_reset_after(params):
        # One matmul per step gives [x;h] @ [[Kz Kr Kh 0], [Rz Rr 0 Rh]]: the update and reset
        # sums, x @ Kh and h @ Rh apart (the reset gate multiplies h @ Rh alone).
        kernel, recurrent = params["kernel"], params["recurrent_kernel"]
        (kz, kr, kh), (rz, rr, rh) = split3(kernel), split3(recurrent)
        w = jnp.concatenate([jnp.concatenate([kz, kr, kh, jnp.zeros_like(rh, shape=kh.shape)], axis=1),
                             jnp.concatenate([rz, rr, jnp.zeros_like(kh, shape=rh.shape), rh], axis=1)], axis=0)
        bias = params.get("bias", jnp.zeros((2, 3 * units), kernel.dtype))
        (bz, br, bh), (bz_r, br_r, bh_r) = split3(bias[0]), split3(bias[1])
        return w, jnp.concatenate([bz + bz_r, br + br_r, bh, bh_r])

    def gates_reset_after(s, carry):
        z, r = jnp.split(gate(s[..., :2 * units]), 2, axis=-1)
        candidate = act(s[..., 2 * units:3 * units] + r * s[..., 3 * units:])
        h = z * carry[0] + (1.0 - z) * candidate
        return (h,), h

    def prepare_reset_before(params):
        kernel, recurrent = params["kernel"], params["recurrent_kernel"]
        rz, rr, rh = split3(recurrent)
        w = jnp.concatenate([kernel, jnp.concatenate([rz, rr, jnp.zeros_like(rh)], axis=1)], axis=0)
        return w, _bias_or_zeros(params, 3 * units), rh

    def step_reset_before(weights, carry, x_t):
        w, b, rh = weights
        (h,) = carry
        s = jnp.concatenate([x_t, h], axis=-1) @ w + b
        z, r = jnp.split(gate(s[..., :2 * units]), 2, axis=-1)
        candidate = act(s[..., 2 * units:] + (r * h) @ rh)
        h = z * h + (1.0 - z) * candidate
        return (h,), h

    def dropped_step_reset_before(weights, carry, x_t, input_masks, recurrent_masks):
        w, b, rh = weights
        (h,) = carry
        s = _dropped_projection(w, b, x_t, h, input_masks, recurrent_masks, (0, 1, 2), units)
        z, r = jnp.split(gate(s[..., :2 * units]), 2, axis=-1)
        h_candidate = h if recurrent_masks is None else h * recurrent_masks[2]  # Keras's h_tm1_h
        candidate = act(s[..., 2 * units:] + (r * h_candidate) @ rh)
        h = z * h + (1.0 - z) * candidate  # the update mixes the undropped h, as Keras does
        return (h,), h

    if reset_after:
        # Blocks z, r, x @ Kh, h @ Rh: the last two belong to the candidate gate.
        return _fused(units, 1, init_params, prepare_reset_after, gates_reset_after, block_gates=(0, 1, 2, 2))
    return _Cell(units, 1, init_params, prepare_reset_before, step_reset_before, dropped_step_reset_before, 3)


def _simple_rnn_cell(units, activation, use_bias, kernel_init, recurrent_init, bias_init) -> _Cell:
    act = get_activation(activation)
    init_params = _weight_initializer(units, 1, kernel_init, recurrent_init, bias_init, use_bias)

    def prepare(params):
        return _stack(params), _bias_or_zeros(params, units)

    def gates(z, carry):
        h = act(z)
        return (h,), h

    return _fused(units, 1, init_params, prepare, gates, block_gates=(0,))


# ------------------------------------------------------------------------- the scan

def _masked(keep, new_carry, carry, y, zero_masked_outputs):
    """Keras's masking of one step: a masked row keeps its carry and outputs 0 (or the carried output)."""
    new_carry = tuple(jnp.where(keep, new, old) for new, old in zip(new_carry, carry))
    y = jnp.where(keep, y, jnp.zeros_like(y) if zero_masked_outputs else new_carry[0])
    return new_carry, y


def _scan(cell: _Cell, weights, carry, xs, mask, keep_outputs: bool, unroll, zero_masked_outputs=True,
          gate_masks=None):
    """Run ``cell`` over time-major ``xs``: ``(final_carry, outputs or None)``.

    ``mask`` is time-major ``(time, batch)`` or None. A masked step keeps the carry; its
    output is zero, or the carried output when ``zero_masked_outputs`` is False (Keras 3's
    default). ``gate_masks`` (recurrent dropout) is ``(input_masks or None, recurrent_masks)``,
    each ``(gates, batch, size)`` and the same at every step; it takes the plain scan, with
    JAX's own backward pass.
    """
    if cell.gates is not None and gate_masks is None:
        recurrence = _fused_recurrence(cell.gates, keep_outputs, zero_masked_outputs, unroll)
        return recurrence(*weights, xs, carry, mask)

    def body(carry, inputs):
        x_t, m_t = inputs
        if gate_masks is None:
            new_carry, y = cell.step(weights, carry, x_t)
        else:
            new_carry, y = cell.dropped_step(weights, carry, x_t, *gate_masks)
        if m_t is not None:
            new_carry, y = _masked(m_t[:, None], new_carry, carry, y, zero_masked_outputs)
        return new_carry, (y if keep_outputs else None)

    return lax.scan(body, carry, (xs, mask), unroll=unroll)


def _fused_recurrence(gates, keep_outputs, zero_masked_outputs, unroll):
    """``recurrence(w, b, xs, carry, mask)``: the scan of ``gates([x_t, h] @ w + b, carry)``,
    with a hand-written backward pass.

    JAX's own backward pass of the scan multiplies by all of ``w`` at every step. This one
    keeps only the recurrent product ``dz @ w_h.T`` inside the loop (recomputing the
    element-wise gates from the saved ``z``), and forms the weight gradient
    ``[x, h_prev].T @ dz`` and the input gradient ``dz @ w_x.T`` for all steps at once, as
    two large matmuls after it.
    """

    def run(w, b, xs, carry, mask, save):
        def body(carry, inputs):
            x_t, m_t = inputs
            z = jnp.concatenate([x_t, carry[0]], axis=-1) @ w + b
            new_carry, y = gates(z, carry)
            if m_t is not None:
                new_carry, y = _masked(m_t[:, None], new_carry, carry, y, zero_masked_outputs)
            return new_carry, (y if keep_outputs else None, (z, carry) if save else None)

        final, (ys, saved) = lax.scan(body, carry, (xs, mask), unroll=unroll)
        return (final, ys), saved

    @jax.custom_vjp
    def recurrence(w, b, xs, carry, mask):
        return run(w, b, xs, carry, mask, save=False)[0]

    def forward(w, b, xs, carry, mask):
        outputs, saved = run(w, b, xs, carry, mask, save=True)
        return outputs, (w, xs, mask, saved)

    def backward(residuals, cotangents):
        w, xs, mask, (zs, carries) = residuals
        d_final, d_ys = cotangents
        w_x, w_h = w[:xs.shape[-1]], w[xs.shape[-1]:]

        def body(d_carry, inputs):
            z, carry, d_y, m_t = inputs
            d_y = jnp.zeros_like(carry[0]) if d_y is None else d_y
            _, gates_vjp = jax.vjp(gates, z, carry)
            d_z, d_prev = gates_vjp((d_carry, d_y))
            if m_t is not None:  # a masked row passes its carry's cotangent straight through
                keep = m_t[:, None]
                d_z = jnp.where(keep, d_z, 0.0)
                d_prev = tuple(jnp.where(keep, new, old) for new, old in zip(d_prev, d_carry))
                if not zero_masked_outputs:  # there, the output was the carried h
                    d_prev = (d_prev[0] + jnp.where(keep, 0.0, d_y),) + d_prev[1:]
            d_prev = (d_prev[0] + d_z @ w_h.T,) + d_prev[1:]
            return d_prev, d_z

        d_carry, d_zs = lax.scan(body, d_final, (zs, carries, d_ys, mask), reverse=True, unroll=unroll)
        inputs = jnp.concatenate([xs, carries[0]], axis=-1)  # [x_t, h_prev] at every step
        d_w = inputs.reshape(-1, inputs.shape[-1]).T @ d_zs.reshape(-1, d_zs.shape[-1])
        return d_w, d_zs.sum(axis=(0, 1)), d_zs @ w_x.T, d_carry, None

    recurrence.defvjp(forward, backward)
    return recurrence


# Module-level and jitted on the cell (a static argument): an eager apply of a layer would
# otherwise trace and compile the scan anew on every call; inside an outer jit it inlines.
@functools.partial(jax.jit, static_argnames=("cell", "keep_outputs", "unroll", "zero_masked_outputs"))
def _run_scan(weights, carry, xs, mask, gate_masks, *, cell, keep_outputs, unroll, zero_masked_outputs):
    return _scan(cell, weights, carry, xs, mask, keep_outputs, unroll, zero_masked_outputs, gate_masks)


def _first(mask):
    return mask[0] if isinstance(mask, (tuple, list)) else mask


def _split_inputs(inputs, n_states):
    """``x`` or ``(x, *initial_states)`` -> ``(x, initial_states or None)``."""
    if not isinstance(inputs, (tuple, list)):
        return inputs, None
    if len(inputs) != 1 + n_states:
        raise ValueError(f"expected a sequence or (sequence, {n_states} initial state(s)), "
                         f"got a tuple of {len(inputs)} inputs")
    return inputs[0], tuple(inputs[1:])


def _time_mask(mask, x):
    """The incoming ``(batch, time)`` mask, checked and made time-major; None if absent."""
    mask = _first(mask)
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"expected a mask of shape (batch, time) = {tuple(x.shape[:2])}, "
                         f"got shape {tuple(mask.shape)}")
    return mask.astype(bool).T


def _initial_carry(cell, initial, batch, dtype):
    if initial is None:
        return tuple(jnp.zeros((batch, cell.units), dtype) for _ in range(cell.n_states))
    for s in initial:
        if jnp.shape(s) != (batch, cell.units):
            raise ValueError(f"expected initial states of shape (batch, units) = {(batch, cell.units)}, "
                             f"got shape {tuple(jnp.shape(s))}")
    return tuple(jnp.asarray(s, dtype) for s in initial)


def _sequence_shape(input_shape):
    shape = input_shape[0] if input_shape and isinstance(input_shape[0], (tuple, list)) else input_shape
    if len(shape) != 3 or shape[-1] == -1:
        raise ValueError(f"expected inputs of shape (batch, time, features) with known features, "
                         f"got input shape {tuple(shape)}")
    return tuple(shape)


_STATE_NAMES = ("h", "c")  # the carry's entries, as Keras's return_state orders them


def _check_rate(option, rate):
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{option} is the fraction of units dropped, in [0, 1); got {rate!r}")


def _dropout_masks(rng, cell: _Cell, dropout, recurrent_dropout, batch, features, dtype):
    """Keras's dropout masks for one call, fixed over the time steps, scaled by ``1 / keep``.

    Without ``recurrent_dropout`` (Keras's implementation 2): one input mask ``(batch,
    features)`` shared by the gates, returned as ``(input_mask, None)``. With it
    (implementation 1): per-gate masks ``(gates, batch, size)`` on the inputs (or None
    without ``dropout``) and on ``h``, returned as ``(None, (input_masks, recurrent_masks))``.
    """
    def mask(key, rate, shape):
        keep = 1.0 - rate
        return jax.random.bernoulli(key, keep, shape).astype(dtype) / keep

    k_input, k_recurrent = jax.random.split(rng)
    if not recurrent_dropout:
        return mask(k_input, dropout, (batch, features)), None
    count = cell.n_gates
    inputs = mask(k_input, dropout, (count, batch, features)) if dropout else None
    return None, (inputs, mask(k_recurrent, recurrent_dropout, (count, batch, cell.units)))


def _recurrent_layer(name, cell: _Cell, return_sequences, return_state, go_backwards, unroll,
                     zero_output_for_mask, *, stateful=False, dropout=0.0, recurrent_dropout=0.0):
    _check_rate("dropout", dropout)
    _check_rate("recurrent_dropout", recurrent_dropout)
    names = _STATE_NAMES[:cell.n_states]

    def init_params(rng, input_shape):
        return cell.init_params(rng, _sequence_shape(input_shape)[-1])

    def init_state(input_shape):
        batch = _sequence_shape(input_shape)[0]
        if batch == -1:
            raise ValueError(f"stateful=True keeps one carry per example, so it needs a known batch size: init "
                             f"with input shape (batch, time, features) such as (32, None, "
                             f"{_sequence_shape(input_shape)[-1]}), got {tuple(input_shape)}")
        return {k: jnp.zeros((batch, cell.units), jnp.float32) for k in names}

    def run(params, inputs, mask, train, rng, kept=None):
        x, initial = _split_inputs(inputs, cell.n_states)
        x = jnp.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"expected inputs of shape (batch, time, features), got shape {tuple(x.shape)}")
        expect_last_dim(x, params["kernel"].shape[0])
        dtype = jnp.result_type(x.dtype, params["kernel"].dtype)
        if initial is None and kept is not None:  # given initial states win over the kept ones, as in Keras
            if kept[0].shape[0] != x.shape[0]:
                raise ValueError(f"this stateful layer keeps carries for a batch of {kept[0].shape[0]} (init's "
                                 f"input shape), got inputs of shape {tuple(x.shape)}: stateful layers need the "
                                 "same batch size on every call, as in Keras")
            initial = kept
        carry = _initial_carry(cell, initial, x.shape[0], dtype)
        mask = _time_mask(mask, x)
        xs = jnp.swapaxes(x, 0, 1).astype(dtype)
        gate_masks = None
        if train and (dropout or recurrent_dropout):
            if rng is None:
                raise ValueError("dropout in training needs an rng: call apply(params, x, train=True, rng=key)")
            input_mask, gate_masks = _dropout_masks(rng, cell, dropout, recurrent_dropout, x.shape[0],
                                                    x.shape[-1], dtype)
            if input_mask is not None:  # one mask for every gate: the fused path still runs
                xs = xs * input_mask
        if go_backwards:
            xs = xs[::-1]
            mask = None if mask is None else mask[::-1]
        carry, ys = _run_scan(cell.prepare(params), carry, xs, mask, gate_masks, cell=cell,
                              keep_outputs=return_sequences, unroll=unroll, zero_masked_outputs=zero_output_for_mask)
        output = jnp.swapaxes(ys, 0, 1) if return_sequences else carry[0]
        return ((output, *carry) if return_state else output), carry

    def apply(params, inputs, *, mask, train, rng):
        return run(params, inputs, mask, train, rng)[0]

    def apply_stateful(params, state, inputs, *, mask, train, rng):
        # The carry moves on every call, in inference too (Keras's stateful RNNs).
        kept = tuple(state[k] for k in names)
        outputs, carry = run(params, inputs, mask, train, rng, kept)
        return outputs, {k: c.astype(state[k].dtype) for k, c in zip(names, carry)}

    def out_mask(inputs, mask):
        mask = _first(mask)
        if not return_sequences or mask is None:
            return None
        mask = mask[:, ::-1] if go_backwards else mask  # outputs come in reversed time order
        return (mask,) + (None,) * cell.n_states if return_state else mask

    if stateful:
        return layer(name, apply_stateful, init_params, init_state=init_state, compute_mask=out_mask)
    return layer(name, apply, init_params, compute_mask=out_mask)


def _is_stateful_recurrent(candidate) -> bool:
    spec = candidate.spec
    constructor = LAYER_REGISTRY.get(spec[0]) if spec else None
    if constructor not in (LSTM, GRU, SimpleRNN):
        return False
    return bool(inspect.signature(constructor).bind(*spec[1], **spec[2]).arguments.get("stateful", False))


def reset_states(model, state):
    """``state`` with the carry of every ``stateful=True`` LSTM, GRU and SimpleRNN in ``model`` set to
    zeros (Keras's ``model.reset_states()``); other state, such as BatchNorm's statistics, is kept.

    Works on any model (``serial``, ``Bidirectional``, ...): the layers are found with
    :func:`fnnet.walk`. Call it between independent sequences, e.g. at the start of each epoch.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> model = fnnet.serial(fnnet.LSTM(3, stateful=True), fnnet.Dense(1))
    >>> _, params, state = model.init_with_state(jax.random.PRNGKey(0), (2, None, 4))
    >>> _, state = model.apply_with_state(params, state, jnp.ones((2, 5, 4)))
    >>> bool(jnp.any(state['lstm']['h'] != 0)), bool(jnp.all(fnnet.reset_states(model, state)['lstm']['h'] == 0))
    (True, True)
    """
    def reset(tree, path, where):
        if not path:
            return jax.tree_util.tree_map(jnp.zeros_like, tree)
        if not isinstance(tree, dict) or path[0] not in tree:
            raise ValueError(f"reset_states: the state has no entry {path[0]!r} at {'/'.join(where) or 'the root'}; "
                             "pass the state that this model's init_with_state returned")
        return {**tree, path[0]: reset(tree[path[0]], path[1:], where + (path[0],))}

    for node in walk(as_layer(model)).nodes():
        if _is_stateful_recurrent(node.layer):
            state = reset(state, node.path, ())
    return state


@registered("LSTM")
def LSTM(units, return_sequences=False, return_state=False, go_backwards=False, activation="tanh",
         recurrent_activation="sigmoid", unroll=1, *, use_bias=True, kernel_init="glorot_uniform",
         recurrent_init="orthogonal", bias_init="zeros", unit_forget_bias=True, zero_output_for_mask=True,
         stateful=False, dropout=0.0, recurrent_dropout=0.0):
    """Long short-term memory layer with Keras's equations, defaults and weights.

    Params: ``kernel`` ``(features, 4 * units)``, ``recurrent_kernel`` ``(units, 4 * units)``,
    ``bias`` ``(4 * units,)``, gates in Keras's order input, forget, cell, output; the
    forget-gate bias starts at 1 (``unit_forget_bias``). The states are ``(h, c)``.

    Inputs are ``(batch, time, features)``, or a tuple ``(inputs, *initial_states)`` to
    start from given states (each ``(batch, units)``). ``apply`` returns the last output
    ``(batch, units)``, or every step's ``(batch, time, units)`` with
    ``return_sequences=True``; with ``return_state=True`` it returns the tuple
    ``(output, h, c)`` (Keras's order). ``go_backwards=True`` reads the sequence from its
    end and returns the outputs in that reversed order, as Keras does. An incoming
    ``(batch, time)`` mask (from ``Embedding(..., mask_zero=True)``) makes the layer skip
    padded steps: their outputs are zero (``zero_output_for_mask=False`` repeats the last
    real output instead, as Keras 3 does by default), and with ``return_sequences`` the
    mask is passed on. ``unroll`` is ``lax.scan``'s (steps per iteration, or True for all).

    ``stateful=True`` (Keras's): the final carry of each call is model state, ``{'h', 'c'}``
    (``{'h'}`` for GRU and SimpleRNN), and the next call starts from it, in training and
    inference alike, so a long sequence can be fed in consecutive pieces. It needs a known
    batch size at init (``init_with_state(rng, (32, None, features))``) and runs through
    ``apply_with_state``; initial states given with the inputs take precedence over the
    kept ones. :func:`fnnet.reset_states` sets the kept carries back to zero.

    ``dropout`` / ``recurrent_dropout`` (Keras's): fractions of the inputs / of ``h`` dropped
    in training (``train=True`` with an ``rng``), with masks drawn once per call and kept over
    the time steps. With ``dropout`` alone one input mask serves all gates (Keras's
    implementation 2, and the fused fast path); with ``recurrent_dropout`` each gate draws its
    own masks (Keras's implementation 1), on a simpler, slower path.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> model = fnnet.serial(fnnet.Embedding(1000, 32, mask_zero=True), fnnet.LSTM(16))
    >>> shape, params = model.init(jax.random.PRNGKey(0), (-1, 10))
    >>> shape, params['lstm']['kernel'].shape
    ((-1, 16), (32, 64))
    >>> ids = jnp.array([[5, 8, 2, 0, 0]])
    >>> bool(jnp.allclose(model.apply(params, ids), model.apply(params, ids[:, :3]), atol=1e-6))
    True
    """
    expect_positive_int(units, "LSTM: units")
    cell = _lstm_cell(units, activation, recurrent_activation, use_bias, kernel_init, recurrent_init,
                      bias_init, unit_forget_bias)
    return _recurrent_layer("LSTM", cell, return_sequences, return_state, go_backwards, unroll,
                            zero_output_for_mask, stateful=stateful, dropout=dropout,
                            recurrent_dropout=recurrent_dropout)


@registered("GRU")
def GRU(units, return_sequences=False, return_state=False, go_backwards=False, activation="tanh",
        recurrent_activation="sigmoid", unroll=1, reset_after=True, *, use_bias=True,
        kernel_init="glorot_uniform", recurrent_init="orthogonal", bias_init="zeros", zero_output_for_mask=True,
        stateful=False, dropout=0.0, recurrent_dropout=0.0):
    """Gated recurrent unit with Keras's equations, defaults and weights (gate order z, r, h).

    Params: ``kernel`` ``(features, 3 * units)``, ``recurrent_kernel`` ``(units, 3 * units)``
    and ``bias``: ``(2, 3 * units)`` (input and recurrent biases) with Keras's default
    ``reset_after=True``, where the reset gate multiplies ``h @ recurrent_kernel``;
    ``(3 * units,)`` with ``reset_after=False``, where it multiplies ``h`` first.
    Inputs, masks, ``return_sequences``, ``go_backwards``, ``unroll``, ``zero_output_for_mask``,
    ``stateful``, ``dropout`` and ``recurrent_dropout`` work as for :func:`LSTM`;
    ``return_state=True`` returns ``(output, h)``.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> shape, params = fnnet.GRU(8, return_sequences=True).init(jax.random.PRNGKey(0), (-1, 5, 3))
    >>> shape, params['bias'].shape
    ((-1, 5, 8), (2, 24))
    """
    expect_positive_int(units, "GRU: units")
    cell = _gru_cell(units, activation, recurrent_activation, use_bias, kernel_init, recurrent_init,
                     bias_init, reset_after)
    return _recurrent_layer("GRU", cell, return_sequences, return_state, go_backwards, unroll,
                            zero_output_for_mask, stateful=stateful, dropout=dropout,
                            recurrent_dropout=recurrent_dropout)


@registered("SimpleRNN")
def SimpleRNN(units, return_sequences=False, return_state=False, go_backwards=False, activation="tanh",
              unroll=1, *, use_bias=True, kernel_init="glorot_uniform", recurrent_init="orthogonal",
              bias_init="zeros", zero_output_for_mask=True, stateful=False, dropout=0.0, recurrent_dropout=0.0):
    """Fully connected recurrence ``h = activation(x_t @ kernel + h @ recurrent_kernel + bias)``.

    Params: ``kernel`` ``(features, units)``, ``recurrent_kernel`` ``(units, units)``,
    ``bias`` ``(units,)``. Inputs, masks, ``return_sequences``, ``go_backwards``, ``unroll``,
    ``zero_output_for_mask``, ``stateful``, ``dropout`` and ``recurrent_dropout`` work as for
    :func:`LSTM`; ``return_state=True`` returns ``(output, h)``.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> rnn = fnnet.SimpleRNN(4, return_state=True)
    >>> shape, params = rnn.init(jax.random.PRNGKey(0), (-1, 6, 3))
    >>> shape
    ((-1, 4), (-1, 4))
    """
    expect_positive_int(units, "SimpleRNN: units")
    cell = _simple_rnn_cell(units, activation, use_bias, kernel_init, recurrent_init, bias_init)
    return _recurrent_layer("SimpleRNN", cell, return_sequences, return_state, go_backwards, unroll,
                            zero_output_for_mask, stateful=stateful, dropout=dropout,
                            recurrent_dropout=recurrent_dropout)


"""Layers that wrap a layer: ``Bidirectional`` (a recurrent layer both ways) and
``TimeDistributed`` (a layer applied at every time step)."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp

from ..core import LAYER_REGISTRY, Layer, as_layer, error_path, output_shape, registered, shape_str, split_rng


# ---------------------------------------------------------------------- Bidirectional

def _merge_concat(a, b):
    return jnp.concatenate([a, b], axis=-1)


_MERGES = {
    "concat": _merge_concat,
    "sum": jnp.add,
    "mul": jnp.multiply,
    "ave": lambda a, b: (a + b) / 2,
}


def _recurrent_arguments(layer):
    """``(constructor, bound arguments)`` of a registered recurrent layer, from its spec."""
    spec = layer.spec
    constructor = LAYER_REGISTRY.get(spec[0]) if spec else None
    if constructor is None or "go_backwards" not in inspect.signature(constructor).parameters:
        raise TypeError(f"Bidirectional needs a recurrent layer with go_backwards (LSTM, GRU, SimpleRNN), "
                        f"or an explicit backward_layer; got {layer.description}")
    return constructor, inspect.signature(constructor).bind(*spec[1], **spec[2])


def _backward_copy(layer):
    """The same registered layer rebuilt with ``go_backwards`` flipped (as Keras does)."""
    constructor, bound = _recurrent_arguments(layer)
    bound.arguments["go_backwards"] = not bound.arguments.get("go_backwards", False)
    bound.arguments.pop("name", None)
    return constructor(*bound.args, **bound.kwargs)


def _directions(inputs):
    """``x`` or ``(x, *forward_states, *backward_states)`` (Keras's order) -> the two layers' inputs."""
    if not isinstance(inputs, (tuple, list)) or all(isinstance(d, int) for d in inputs):  # an array, or a shape
        return inputs, inputs
    if len(inputs) == 1:
        return inputs[0], inputs[0]
    sequence, states = inputs[0], tuple(inputs[1:])
    if len(states) % 2:
        raise ValueError(f"expected (sequence, *forward_states, *backward_states), as many states for each "
                         f"direction, got {len(states)} initial state(s)")
    half = len(states) // 2
    return (sequence, *states[:half]), (sequence, *states[half:])


def _sequence_mask(mask):
    return mask[0] if isinstance(mask, (tuple, list)) else mask


@registered("Bidirectional")
def Bidirectional(layer, merge_mode="concat", backward_layer=None):
    """Run a recurrent layer forwards and backwards over the sequence and merge the two.

    The backward copy is ``layer`` rebuilt with ``go_backwards`` flipped (or
    ``backward_layer``). Params are ``{'forward': ..., 'backward': ...}``. ``merge_mode``
    is ``'concat'`` (default), ``'sum'``, ``'mul'``, ``'ave'``, or ``None`` for the
    tuple ``(forward_output, backward_output)``. With ``return_sequences`` the backward
    outputs are put back in time order. With ``return_state`` the output is
    ``(merged, *forward_states, *backward_states)``.

    Inputs are a sequence, or ``(sequence, *forward_states, *backward_states)`` to start
    both directions from given states (Keras's ``initial_state`` order: for LSTMs
    ``(x, h_f, c_f, h_b, c_b)``).

    Masks reach both directions, and the backward one skips masked steps, so it starts
    at each sequence's last real token whether the padding is at the end or the start.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> model = fnnet.serial(fnnet.Embedding(100, 8, mask_zero=True), fnnet.Bidirectional(fnnet.LSTM(16)))
    >>> shape, params = model.init(jax.random.PRNGKey(0), (-1, 5))
    >>> shape, sorted(params['bidirectional'])
    ((-1, 32), ['backward', 'forward'])
    """
    if merge_mode is not None and merge_mode not in _MERGES:
        raise ValueError(f"unknown merge_mode {merge_mode!r}; expected one of {', '.join(_MERGES)} or None")
    forward = as_layer(layer)
    backward = as_layer(backward_layer) if backward_layer is not None else _backward_copy(forward)
    # The backward direction's outputs come in reversed time order: put them back.
    realign = backward.spec is not None and _recurrent_arguments(backward)[1].arguments.get("return_sequences", False)

    def init_with_state(rng, input_shape):
        rng_f, rng_b = jax.random.split(rng)
        shape_f, shape_b = _directions(input_shape)
        with error_path("forward"):
            _, params_f, state_f = forward.init_with_state(rng_f, shape_f)
        with error_path("backward"):
            _, params_b, state_b = backward.init_with_state(rng_b, shape_b)
        params = {"forward": params_f, "backward": params_b}
        state = None if state_f is None and state_b is None else {"forward": state_f, "backward": state_b}
        shape = output_shape(lambda x: call(params, state, x, mask=None, rng=None)[0], input_shape)
        return shape, params, state

    def call(params, state, x, *, mask, rng, **kwargs):
        state = state or {}
        rng_f, rng_b = split_rng(rng, 2)
        x_f, x_b = _directions(x)
        mask = _sequence_mask(mask)  # initial states carry no mask
        with error_path("forward"):
            y_f, state_f, mask_f = forward.call(params["forward"], state.get("forward"), x_f, mask=mask, rng=rng_f,
                                                **kwargs)
        with error_path("backward"):
            y_b, state_b, _ = backward.call(params["backward"], state.get("backward"), x_b, mask=mask, rng=rng_b,
                                            **kwargs)
        (y_f, *states_f), (y_b, *states_b) = (y if isinstance(y, tuple) else (y,) for y in (y_f, y_b))
        if realign:
            y_b = y_b[:, ::-1]
        outputs = [y_f, y_b] if merge_mode is None else [_MERGES[merge_mode](y_f, y_b)]
        seq_mask = mask_f[0] if isinstance(mask_f, tuple) else mask_f
        masks = [seq_mask] * len(outputs) + [None] * (len(states_f) + len(states_b))
        outputs += [*states_f, *states_b]
        merged = outputs[0] if len(outputs) == 1 else tuple(outputs)
        out_mask = None if seq_mask is None else (masks[0] if len(masks) == 1 else tuple(masks))
        new_state = None if state_f is None and state_b is None else {"forward": state_f, "backward": state_b}
        return merged, new_state, out_mask

    return Layer(init_with_state, call, name="Bidirectional", children=(("forward", forward), ("backward", backward)))


# -------------------------------------------------------------------- TimeDistributed

@registered("TimeDistributed")
def TimeDistributed(layer):
    """Apply ``layer`` to every time step of ``(batch, time, ...)`` inputs (via ``jax.vmap``).

    The wrapped layer sees ``(batch, ...)`` slices and shares its params across steps;
    the params are the wrapped layer's own. Each step gets its own ``rng`` (so Dropout
    differs across steps). An incoming mask is passed on unchanged, not given to the
    wrapped layer. Inputs without a time axis, such as an LSTM's final vector, raise a
    :class:`fnnet.LayerError`: use ``return_sequences=True`` on the layer before.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> shape, params = fnnet.TimeDistributed(fnnet.Dense(5)).init(jax.random.PRNGKey(0), (-1, 7, 16))
    >>> shape, params['kernel'].shape
    ((-1, 7, 5), (16, 5))
    """
    inner = as_layer(layer)

    def check_time_axis(shape, where):
        if not isinstance(shape, tuple) or len(shape) < 3:
            raise ValueError(f"expected inputs of shape (batch, time, ...) with at least 3 axes, got "
                             f"{shape_str(shape)} at {where}; the layer before returns no time axis "
                             "(for a recurrent layer, set return_sequences=True)")

    def init_with_state(rng, input_shape):
        check_time_axis(input_shape, "init")
        step_shape = input_shape[:1] + input_shape[2:]
        _, params, state = inner.init_with_state(rng, step_shape)
        if state is not None:
            raise ValueError(f"{inner.description} keeps state (e.g. BatchNorm statistics), "
                             "which cannot be shared across time steps; apply it without TimeDistributed")
        shape = output_shape(lambda x: call(params, None, x, mask=None, rng=None)[0], input_shape)
        return shape, params, None

    def call(params, state, x, *, mask, rng, **kwargs):
        check_time_axis(tuple(jnp.shape(x)), "apply")
        rngs = None if rng is None else jax.random.split(rng, x.shape[1])

        def one_step(x_t, rng_t):
            return inner.call(params, None, x_t, mask=None, rng=rng_t, **kwargs)[0]

        y = jax.vmap(one_step, in_axes=(1, 0), out_axes=1)(x, rngs)
        return y, state, mask

    # The wrapped layer's params are this layer's own: its key is None.
    return Layer(init_with_state, call, name="TimeDistributed", children=((None, inner),))

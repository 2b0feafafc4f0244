"""Mutation tests for fnnet.testing: planted bugs that check_layer must catch, by name.

Each planted layer breaks exactly one property of the layer contract; if check_layer
stopped catching one, the test for it fails.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import fnnet
from fnnet.testing import PROPERTIES, PropertyViolation, check_layer, layer_contract_test, strategies

pytest_plugins = ["pytester"]

# Enough examples that a batch of two or more is drawn (mixing needs one), whatever the profile.
EXAMPLES = 10


def violated(layer, input_shape, **flags):
    with pytest.raises(PropertyViolation) as info:
        check_layer(layer, input_shape, max_examples=EXAMPLES, **flags)
    message = str(info.value)
    assert message.startswith(f"property '{info.value.property}' violated by ")
    return info.value.property, message


# --------------------------------------------------------------------------- planted bugs

def wrong_declared_shape():
    def init_with_state(rng, input_shape):
        return input_shape[:-1] + (input_shape[-1] + 1,), {}, None  # hand-written, off by one

    def call(params, state, x, *, mask, train, rng, **kwargs):
        return x, state, mask

    return fnnet.Layer(init_with_state, call, name="WrongShape")


def call_returns_a_pair():
    def init_with_state(rng, input_shape):
        return input_shape, {}, None

    def call(params, state, x, *, mask, train, rng, **kwargs):
        return x, state  # forgot the mask: apply_with_state cannot unpack it

    return fnnet.Layer(init_with_state, call, name="NoMask")


def mixes_examples():
    return fnnet.Lambda(lambda x: x - jnp.mean(x, axis=0), name="center_batch")


def counts_calls():
    calls = [0]

    def forward(params, x):
        calls[0] += 1
        return x * calls[0]

    return fnnet.layer("CountsCalls", forward)


def numpy_global_rng():
    def forward(params, x):
        return x + np.random.normal(size=x.shape).astype(np.float32)

    return fnnet.layer("NumpyNoise", forward)


def returns_float16():
    return fnnet.Lambda(lambda x: jnp.tanh(x).astype(jnp.float16), name="half")


def nan_for_negatives():
    return fnnet.Lambda(jnp.sqrt, name="sqrt")


@jax.custom_vjp
def _tanh_twice_grad(x):
    return jnp.tanh(x)


def _tanh_fwd(x):
    y = jnp.tanh(x)
    return y, y


def _tanh_bwd(y, g):
    return (2.0 * g * (1.0 - y * y),)  # twice the true gradient


_tanh_twice_grad.defvjp(_tanh_fwd, _tanh_bwd)


def twice_the_gradient():
    return fnnet.Lambda(_tanh_twice_grad, name="tanh_bad_vjp")


@jax.custom_vjp
def _matmul_bad_kernel_grad(x, w):
    return x @ w


def _matmul_fwd(x, w):
    return x @ w, (x, w)


def _matmul_bwd(res, g):
    x, w = res
    return g @ w.T, 2.0 * (x.T @ g)  # right for the inputs, twice too big for the kernel


_matmul_bad_kernel_grad.defvjp(_matmul_fwd, _matmul_bwd)


def wrong_kernel_gradient():
    return fnnet.layer("BadDense", lambda p, x: _matmul_bad_kernel_grad(x, p["kernel"]),
                       lambda rng, shape: {"kernel": jax.random.normal(rng, (shape[-1], 2))})


def not_jittable():
    # fnnet.layer could not even infer its shape, so the init is written by hand.
    def init_with_state(rng, input_shape):
        return input_shape, {}, None

    def call(params, state, x, *, mask, train, rng, **kwargs):
        return (x if float(jnp.sum(x)) > 0 else -x), state, mask  # Python branch on a value

    return fnnet.Layer(init_with_state, call, name="PythonBranch")


def differs_under_jit():
    def forward(params, x):
        return 2 * x if isinstance(x, jax.core.Tracer) else x

    return fnnet.layer("TracerAware", forward)


def state_changes_shape():
    def forward(params, state, x):
        return x, {"count": jnp.concatenate([state["count"], state["count"]])}

    return fnnet.layer("GrowingState", forward, init_state=lambda shape: {"count": jnp.zeros((1,))})


def state_moves_in_inference():
    def forward(params, state, x):  # ignores train: counts inference calls too
        return x, {"count": state["count"] + 1}

    return fnnet.layer("CountsAlways", forward, init_state=lambda shape: {"count": jnp.zeros((1,))})


PLANTED = [
    ("call returns a pair", call_returns_a_pair, "protocol"),
    ("wrong declared shape", wrong_declared_shape, "output_shape"),
    ("mixes examples", mixes_examples, "batch_independence"),
    ("counts calls", counts_calls, "determinism"),
    ("numpy global rng", numpy_global_rng, "determinism"),
    ("float16 output", returns_float16, "dtype"),
    ("nan for negatives", nan_for_negatives, "finite_outputs"),
    ("custom vjp twice the gradient", twice_the_gradient, "gradients"),
    ("python branch on values", not_jittable, "jit_consistency"),
    ("behaves differently when traced", differs_under_jit, "jit_consistency"),
    ("state changes shape", state_changes_shape, "output_shape"),
    ("state moves in inference", state_moves_in_inference, "state_in_inference"),
]


@pytest.mark.parametrize("build, prop", [p[1:] for p in PLANTED], ids=[p[0] for p in PLANTED])
def test_planted_bug_is_caught_and_named(build, prop):
    layer = build()
    found, message = violated(layer, (-1, 3))
    assert found == prop, message
    assert layer.name in message and "input shape (" in message


def test_properties_are_all_planted():
    assert {p[2] for p in PLANTED} == set(PROPERTIES)


def test_wrong_kernel_gradient_names_the_leaf():
    prop, message = violated(wrong_kernel_gradient(), (-1, 3))
    assert prop == "gradients"
    assert "params['kernel']" in message and "inputs" not in message.split("disagree for")[1]


def test_mixing_is_reported_on_a_minimal_batch_with_the_place():
    _, message = violated(mixes_examples(), (-1, 3))
    assert "input shape (3, 3)" in message  # one example cannot mix
    assert "jax.vmap over single examples gives" in message and "at index (" in message


def test_nan_is_reported_on_the_smallest_batch():
    _, message = violated(nan_for_negatives(), (-1, 3))
    assert "input shape (1, 3)" in message and "non-finite" in message  # shrunk to a batch of one


def test_layer_error_inside_apply_becomes_a_named_violation():
    def forward(params, x):
        if x.shape[0] == 1:
            raise ValueError("cannot handle a batch of one")
        return x

    prop, message = violated(fnnet.layer("NoSingletons", forward), (-1, 3))
    assert prop == "output_shape"
    assert "input shape (1, 3)" in message and "raised LayerError" in message and "batch of one" in message


# --------------------------------------------------------------------------- declared exceptions

def test_declared_batch_coupling_is_not_an_alarm():
    check_layer(mixes_examples(), (-1, 3), batch_independent=False, max_examples=3)


def test_declared_non_differentiable_layer_skips_gradients():
    check_layer(twice_the_gradient(), (-1, 3), differentiable=False, max_examples=3)


def test_declared_output_dtype():
    check_layer(returns_float16(), (-1, 3), out_dtype=jnp.float16, max_examples=3)


def test_integer_inputs_need_a_value_range():
    with pytest.raises(ValueError, match="value_range"):
        check_layer(fnnet.Lambda(lambda x: x * 1.0), (-1, 3), dtype=jnp.int32)


def test_integer_inputs_check_gradients_of_params_only():
    # fnnet.layer infers the output shape from float32 stand-ins, so the ids are cast (as Embedding does).
    table = fnnet.layer("Lookup", lambda p, x: p["table"][x.astype(jnp.int32)],
                        lambda rng, shape: {"table": jax.random.normal(rng, (5, 2))})
    check_layer(table, (-1, 3), dtype=jnp.int32, value_range=(0, 5), max_examples=3)


def test_tuple_inputs_and_outputs():
    swap = fnnet.Lambda(lambda xs: (xs[1], 2 * xs[0]), name="swap")
    check_layer(swap, ((-1, 3), (-1, 4)), max_examples=3)
    broken = fnnet.Lambda(lambda xs: (xs[1], xs[0] - xs[0].mean(0)), name="swap_mixing")
    prop, message = violated(broken, ((-1, 3), (-1, 4)))
    assert prop == "batch_independence" and "output[1]" in message


def test_usage_errors_are_raised_unwrapped():
    with pytest.raises(fnnet.LayerError, match="Dense"):
        check_layer(fnnet.Dense(2), (-1, -1))


# --------------------------------------------------------------------------- strategies

@given(strategies.input_shapes(((-1, -1, 3), (-1, 2))))
def test_input_shapes_fill_batch_and_other_unknown_dims(shapes):
    (b1, t, c), (b2, d) = shapes
    assert b1 == b2 and b1 in strategies.BATCH_SIZES and t in strategies.DIM_SIZES and (c, d) == (3, 2)


def test_input_shapes_include_batch_of_one():
    seen = set()

    @settings(max_examples=30)
    @given(strategies.input_shapes((-1, 2)))
    def collect(shape):
        seen.add(shape[0])

    collect()
    assert 1 in seen and len(seen) > 1


@given(strategies.arrays(((2, 3), (4,)), (jnp.float32, jnp.int32), low=0, high=3))
def test_arrays_follow_shape_dtype_and_range(xs):
    floats, ints = xs
    assert floats.shape == (2, 3) and floats.dtype == np.float32 and ints.dtype == np.int32
    assert floats.min() >= 0 and floats.max() < 3 and set(ints.tolist()) <= {0, 1, 2}


@settings(max_examples=5)
@given(strategies.rng_keys())
def test_rng_keys_are_prng_keys(key):
    a, b = jax.random.split(key)
    assert jax.random.normal(a, (2,)).shape == (2,) and not jnp.array_equal(a, b)


@settings(max_examples=5)
@given(strategies.layer_params(fnnet.serial(fnnet.Dense(4), fnnet.BatchNorm()), (-1, 3)))
def test_layer_params_match_init(params):
    assert params["dense"]["kernel"].shape == (3, 4) and params["batch_norm"]["gamma"].shape == (4,)


@settings(max_examples=3, suppress_health_check=[HealthCheck.nested_given])
@given(strategies.layer_stacks(max_layers=3))
def test_random_layer_stacks_satisfy_the_contract(stack):
    check_layer(stack, (-1, 3), max_examples=2)


# --------------------------------------------------------------------------- pytest helper

test_generated_tanh_contract = layer_contract_test(fnnet.Tanh, (-1, 2), max_examples=2)


def test_layer_contract_test_runs_check_layer():
    test = layer_contract_test(lambda: mixes_examples(), (-1, 3), max_examples=EXAMPLES)
    assert test.__name__.startswith("test_contract_")
    with pytest.raises(PropertyViolation, match="batch_independence"):
        test()


def test_plugin_gives_a_check_layer_fixture(pytester, monkeypatch):
    # Installed fnnet registers the plugin through its entry point; load it once, explicitly.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile("""
        import fnnet
        def test_uses_fixture(check_layer):
            check_layer(fnnet.Lambda(lambda x: x.astype('float16'), name='half'), (-1, 2), max_examples=2)
    """)
    result = pytester.runpytest_inprocess("-p", "fnnet.testing.pytest_plugin", "-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*property 'dtype' violated by half (Lambda(<lambda>))*"])

"""Activations: Keras's names against Keras's documented formulas (NumPy) and keras.activations,
the ReLU layer, Activation's options, stax's singletons keeping stax's meanings."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import fnnet.testing

X = np.linspace(-3.0, 3.0, 61).astype(np.float32)  # includes -1, 0, 1 and the shrink thresholds
X2 = np.stack([X[:30], X[31:61]], axis=0)  # (2, 30) for axis-wise activations


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _sparsemax(x, axis=-1):
    # Martins & Astudillo (2016), as Keras writes it: sort, find the support, shift by tau.
    z = np.moveaxis(x, axis, -1)
    s = -np.sort(-z, axis=-1)
    k = np.arange(1, z.shape[-1] + 1)
    cumsum = np.cumsum(s, axis=-1)
    support = s - (cumsum - 1) / k > 0
    n = support.sum(-1, keepdims=True)
    tau = (np.take_along_axis(cumsum, n - 1, -1) - 1) / n
    return np.moveaxis(np.maximum(z - tau, 0), -1, axis)


_erf = np.vectorize(math.erf)

# Keras 3's documented formulas (keras.activations docstrings), in float64.
FORMULAS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    "celu": lambda x: np.maximum(x, 0) + np.minimum(0, np.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "log_sigmoid": lambda x: -_softplus(-x),
    "sparse_sigmoid": lambda x: np.clip((x + 1) / 2, 0, 1),
    "tanh": np.tanh,
    "hard_tanh": lambda x: np.clip(x, -1, 1),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0),
    "soft_shrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)),
    "softmax": _softmax,
    "log_softmax": lambda x: np.log(_softmax(x)),
    "sparsemax": _sparsemax,
    "softplus": _softplus,
    "sparse_plus": lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, (x + 1) ** 2 / 4)),
    "squareplus": lambda x: (x + np.sqrt(x * x + 4)) / 2,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "hard_silu": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "hard_swish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "glu": lambda x: x[..., :x.shape[-1] // 2] * _sigmoid(x[..., x.shape[-1] // 2:]),
    "exponential": np.exp,
}
NEEDS_OPTIONS = {"threshold"}  # Keras's threshold(x, threshold, default_value) has no defaults
AXIS_WISE = {"softmax", "log_softmax", "sparsemax", "glu"}


def _close(actual, expected, rtol=1e-6):
    # Relative to each value, with an absolute floor at float32's resolution near zero.
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=1e-7)


def test_every_keras_activation_name_has_a_formula_here():
    assert set(fnnet.ACTIVATIONS) == set(FORMULAS) | NEEDS_OPTIONS


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_matches_keras_formula(name):
    x = X2 if name in AXIS_WISE else X
    expected = FORMULAS[name](x.astype(np.float64))
    _close(fnnet.Activation(name).apply({}, jnp.asarray(x)), expected)
    _close(fnnet.get_activation(name)(jnp.asarray(x)), expected)


@pytest.mark.parametrize("name, options, formula", [
    ("leaky_relu", {"negative_slope": 0.05}, lambda x: np.where(x >= 0, x, 0.05 * x)),
    ("elu", {"alpha": 0.5}, lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    ("celu", {"alpha": 2.0}, lambda x: np.maximum(x, 0) + np.minimum(0, 2 * np.expm1(x / 2))),
    ("gelu", {"approximate": True},
     lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    ("squareplus", {"b": 1.0}, lambda x: (x + np.sqrt(x * x + 1)) / 2),
    ("hard_shrink", {"threshold": 1.0}, lambda x: np.where(np.abs(x) > 1, x, 0)),
    ("soft_shrink", {"threshold": 1.0}, lambda x: np.where(x > 1, x - 1, np.where(x < -1, x + 1, 0))),
    ("threshold", {"threshold": 0.5, "default_value": -1.0}, lambda x: np.where(x > 0.5, x, -1.0)),
    ("relu", {"max_value": 1.5, "negative_slope": 0.1, "threshold": 0.5},
     lambda x: np.where(x > 0.5, np.minimum(x, 1.5), 0.1 * (x - 0.5))),
])
def test_activation_options_match_keras_formulas(name, options, formula):
    _close(fnnet.Activation(name, **options).apply({}, jnp.asarray(X)), formula(X.astype(np.float64)))


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "sparsemax", "glu"])
def test_axis_wise_activations_take_an_axis(name):
    x = np.random.default_rng(0).normal(size=(4, 6, 2)).astype(np.float32) * 2
    expected = np.moveaxis(FORMULAS[name](np.moveaxis(x, 1, -1).astype(np.float64)), -1, 1)
    _close(fnnet.Activation(name, axis=1).apply({}, jnp.asarray(x)), expected)


def test_sparsemax_is_a_sparse_distribution():
    y = fnnet.Activation("sparsemax").apply({}, jnp.array([[3.0, 1.0, 0.2], [0.1, 0.0, 0.05]]))
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)
    assert float(y[0, 2]) == 0.0 and float(y[0, 0]) == 1.0


def test_wrong_or_missing_options_are_clear_errors():
    with pytest.raises(TypeError, match=r"activation 'softmax' cannot take these options.*it takes axis"):
        fnnet.Activation("softmax", axes=1)
    with pytest.raises(TypeError, match=r"activation 'threshold' needs threshold, default_value"):
        fnnet.Activation("threshold")
    with pytest.raises(TypeError, match=r"activation 'tanh' cannot take these options"):
        fnnet.Dense(3, activation=fnnet.get_activation("tanh", alpha=1.0))


def test_stax_names_keep_stax_meanings_and_keras_names_keras_meanings():
    x = jnp.array([-1.0, 1.5])
    _close(fnnet.LeakyRelu.apply((), x), np.array([-0.01, 1.5]))  # stax / jax: slope 0.01
    _close(fnnet.Activation("leaky_relu").apply({}, x), np.array([-0.2, 1.5]))  # Keras: 0.2
    _close(fnnet.Gelu.apply((), x), FORMULAS["gelu"](np.asarray(x, np.float64)), rtol=1e-3)  # tanh form
    assert not np.allclose(fnnet.Gelu.apply((), x), FORMULAS["gelu"](np.asarray(x, np.float64)), rtol=1e-6)
    _close(fnnet.Activation("gelu").apply({}, x), FORMULAS["gelu"](np.asarray(x, np.float64)))


# ----------------------------------------------------------------------------- ReLU

RELU_CASES = [{}, {"max_value": 6.0}, {"max_value": 1.0}, {"negative_slope": 0.3},
              {"threshold": 1.0}, {"negative_slope": 0.5, "threshold": 0.5},
              {"max_value": 2.0, "negative_slope": 0.1, "threshold": 1.0}]


def _keras_relu_formula(x, max_value=None, negative_slope=0.0, threshold=0.0):
    # Keras's ReLU docs: max_value if x >= max_value; x if threshold <= x < max_value;
    # negative_slope * (x - threshold) otherwise.
    y = np.where(x > threshold, x, negative_slope * (x - threshold))
    return y if max_value is None else np.where(x >= max_value, max_value, y)


@pytest.mark.parametrize("options", RELU_CASES, ids=str)
def test_relu_layer_matches_keras_formula(options):
    _close(fnnet.ReLU(**options).apply({}, jnp.asarray(X)), _keras_relu_formula(X.astype(np.float64), **options))


def test_relu_refuses_negative_options_like_keras():
    for options in ({"max_value": -1.0}, {"negative_slope": -0.1}, {"threshold": -1.0}, {"negative_slope": None}):
        with pytest.raises(ValueError, match=f"ReLU: {next(iter(options))} must be a number >= 0"):
            fnnet.ReLU(**options)


def test_relu_default_key_and_spec_are_keras():
    assert fnnet.ReLU().name == "re_lu"  # Keras's default name for its ReLU layer
    assert fnnet.ReLU(max_value=6.0).spec == ("ReLU", (), {"max_value": 6.0})


# ------------------------------------------------------- contracts and specs of the new layers

NEW_LAYERS = [lambda: fnnet.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.2),
              lambda: fnnet.Activation("softmax", axis=1), lambda: fnnet.Activation("log_softmax", axis=1),
              lambda: fnnet.Activation("sparsemax"), lambda: fnnet.Activation("glu"),
              lambda: fnnet.Activation("leaky_relu", negative_slope=0.1),
              *[(lambda name=name: fnnet.Activation(name)) for name in
                ("mish", "celu", "tanh_shrink", "hard_tanh", "hard_shrink", "squareplus", "soft_shrink",
                 "sparse_plus", "sparse_sigmoid", "log_sigmoid", "hard_silu")]]


@pytest.mark.parametrize("build", NEW_LAYERS, ids=lambda b: b().description)
def test_new_layers_pass_check_layer(build):
    # Piecewise activations have kinks where finite differences disagree with the gradient;
    # smooth ones are checked for gradients too.
    layer = build()
    kinked = any(k in layer.description for k in ("ReLU", "shrink", "hard", "sparse"))
    fnnet.testing.check_layer(layer, (-1, 3, 4), max_examples=3, differentiable=not kinked)


@pytest.mark.parametrize("build", NEW_LAYERS, ids=lambda b: b().description)
def test_new_layers_round_trip_through_their_spec(build):
    model = fnnet.serial(fnnet.Dense(4), build())
    rebuilt = fnnet.from_spec(fnnet.to_spec(model))
    _, params = model.init(jax.random.PRNGKey(0), (-1, 3, 2))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 2))
    np.testing.assert_array_equal(rebuilt.apply(params, x), model.apply(params, x))
    assert rebuilt.children[1][1].spec == model.children[1][1].spec


# --------------------------------------------------------------------- against Keras itself

def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras", reason="Keras 3 is not installed; these cases compare against it")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras was imported with another backend")
    return keras


@pytest.mark.parametrize("name", sorted(set(FORMULAS) - {"sparsemax"}))
def test_activation_matches_keras_activations(name):
    keras = _keras()
    x = X2 if name in AXIS_WISE else X
    expected = np.asarray(getattr(keras.activations, name)(jnp.asarray(x)), np.float64)
    _close(fnnet.Activation(name).apply({}, jnp.asarray(x)), expected)


def test_sparsemax_matches_keras_where_keras_gives_a_distribution():
    # Keras 3.15's sparsemax computes tau from the sum of the cumulative sums over the support,
    # not the cumulative sum at its end, so its rows do not sum to 1 once two or more entries
    # are kept ([0.1, 0, 0.05] gives [0.3, 0.2, 0.25]). fnnet follows the definition Keras
    # documents (the projection onto the simplex): the two agree where one entry is kept.
    keras = _keras()
    one_kept = jnp.array([[3.0, 1.0, 0.2], [0.0, -2.0, 5.0]])
    _close(fnnet.Activation("sparsemax").apply({}, one_kept), np.asarray(keras.activations.sparsemax(one_kept)))
    several = jnp.array([[0.1, 0.0, 0.05]])
    np.testing.assert_allclose(fnnet.Activation("sparsemax").apply({}, several).sum(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("options", RELU_CASES, ids=str)
def test_relu_layer_matches_keras_relu_layer(options):
    keras = _keras()
    expected = np.asarray(keras.layers.ReLU(**options)(jnp.asarray(X)), np.float64)
    _close(fnnet.ReLU(**options).apply({}, jnp.asarray(X)), expected)


def test_softmax_axis_matches_keras_softmax_layer():
    keras = _keras()
    x = np.random.default_rng(1).normal(size=(3, 4, 5)).astype(np.float32)
    expected = np.asarray(keras.layers.Softmax(axis=1)(jnp.asarray(x)), np.float64)
    _close(fnnet.Activation("softmax", axis=1).apply({}, jnp.asarray(x)), expected)

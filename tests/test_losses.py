"""Losses: Keras's formulas (NumPy references in float64), options, sample weights and reductions,
names, shapes, callables, and agreement with Keras 3 itself where it is installed."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import losses
from keras_backend import keras_or_skip

EPS = 1e-7
RNG = np.random.default_rng(0)
N = 6
Y_REG = RNG.normal(size=(N, 3)).astype(np.float32)
P_REG = RNG.normal(size=(N, 3)).astype(np.float32)
Y_POS = RNG.uniform(0.0, 3.0, size=(N, 3)).astype(np.float32)
P_POS = RNG.uniform(0.1, 3.0, size=(N, 3)).astype(np.float32)
Y_BIN = (RNG.uniform(size=(N, 3)) > 0.5).astype(np.float32)
P_BIN = RNG.uniform(0.01, 0.99, size=(N, 3)).astype(np.float32)
LOGITS_BIN = RNG.normal(scale=2.0, size=(N, 3)).astype(np.float32)
LABELS = RNG.integers(0, 4, size=N)
LOGITS_CAT = RNG.normal(size=(N, 4)).astype(np.float32)
ONE_HOT = np.eye(4, dtype=np.float32)[LABELS]
WEIGHTS = RNG.uniform(0.0, 2.0, size=N).astype(np.float32)
CIRCLE_LABELS = np.array([0, 1, 0, 2, 1, 0])
CTC_LABELS = np.array([[1, 2, 0], [3, 0, 0], [1, 1, 0], [2, 3, 1], [2, 0, 0], [3, 1, 0]])
CTC_LOGITS = RNG.normal(size=(N, 5, 4)).astype(np.float32)


def sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, np.float64)))


def softmax(z, axis=-1):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


P_CAT = softmax(LOGITS_CAT).astype(np.float32)
EMBEDDINGS = (lambda e: e / np.linalg.norm(e, axis=1, keepdims=True))(RNG.normal(size=(N, 4))).astype(np.float32)


# --------------------------------------------------------------------------- NumPy references (Keras's documented formulas)


def f64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


def ref_bce_elements(t, p, from_logits=False, label_smoothing=0.0):
    t, p = f64(t, p)
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        p = sigmoid(p)
    else:
        p = np.clip(p, EPS, 1 - EPS)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def ref_cce(t, p, from_logits=False, label_smoothing=0.0, axis=-1):
    t, p = f64(t, p)
    t = t * (1 - label_smoothing) + label_smoothing / t.shape[axis]
    p = softmax(p, axis) if from_logits else np.clip(p / p.sum(axis, keepdims=True), EPS, 1 - EPS)
    return -np.sum(t * np.log(p), axis=axis)


def ref_hinge_targets(t):
    return 2 * t - 1 if np.all((t == 0) | (t == 1)) else t


def ref_circle(labels, emb, gamma=80.0, margin=0.4):
    emb = np.asarray(emb, np.float64)
    d = np.maximum(1 - emb @ emb.T, 0)
    same = labels[:, None] == labels[None, :]
    pos, neg = same & ~np.eye(len(labels), dtype=bool), ~same
    out = []
    for i in range(len(labels)):
        sp = [-gamma * max(margin + d[i, j], 0) * (margin - d[i, j]) for j in range(len(labels)) if pos[i, j]]
        sn = [gamma * max(1 + margin - d[i, j], 0) * (1 - margin - d[i, j]) for j in range(len(labels)) if neg[i, j]]
        lse = (lambda v: -np.inf if not v else np.log(np.sum(np.exp(v))))
        out.append(np.logaddexp(0.0, lse(sp) + lse(sn)))
    return np.array(out)


def ref_ctc(labels, logits):
    """Minus the log of the summed probability of every frame path that collapses to the labels."""
    probs = softmax(logits)
    out = []
    for lab, prob in zip(labels, probs):
        target = [int(c) for c in lab if c != 0]
        total = 0.0
        for path in itertools.product(range(prob.shape[1]), repeat=prob.shape[0]):
            collapsed = [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]
            if collapsed == target:
                total += np.prod(prob[np.arange(prob.shape[0]), path])
        out.append(-np.log(total))
    return np.array(out)


def ref_dice(t, p):
    t, p = f64(t, p)
    return 1 - 2 * np.sum(t * p) / (np.sum(t) + np.sum(p) + EPS)


def ref_tversky(t, p, alpha=0.5, beta=0.5):
    t, p = f64(t, p)
    tp, fp, fn = np.sum(t * p), np.sum((1 - p) * t), np.sum(p * (1 - t))
    return 1 - tp / (tp + alpha * fp + beta * fn + EPS)


def ref_focal_binary(t, p, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                     label_smoothing=0.0):
    t, p = f64(t, p)
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    p = sigmoid(p) if from_logits else p
    bce = ref_bce_elements(t, p)
    p_t = t * p + (1 - t) * (1 - p)
    out = (1 - p_t) ** gamma * bce
    if apply_class_balancing:
        out = (t * alpha + (1 - t) * (1 - alpha)) * out
    return out.mean(-1)


def ref_focal_categorical(t, p, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0):
    t, p = f64(t, p)
    t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]
    p = softmax(p) if from_logits else p
    p = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return np.sum(alpha * (1 - p) ** gamma * -t * np.log(p), -1)


def ref_cosine(t, p):
    t, p = f64(t, p)
    return -np.sum(t * p, -1) / (np.linalg.norm(t, axis=-1) * np.linalg.norm(p, axis=-1))


# name, fnnet/Keras class, options, (y_true, y_pred), reference per-example values, mask of counted values
CASES = [
    ("mse", "MeanSquaredError", {}, (Y_REG, P_REG), lambda t, p: np.mean((p - t) ** 2, -1)),
    ("mae", "MeanAbsoluteError", {}, (Y_REG, P_REG), lambda t, p: np.mean(np.abs(p - t), -1)),
    ("mape", "MeanAbsolutePercentageError", {}, (Y_REG, P_REG),
     lambda t, p: 100 * np.mean(np.abs((t - p) / np.maximum(np.abs(t), EPS)), -1)),
    ("msle", "MeanSquaredLogarithmicError", {}, (Y_POS, P_REG),
     lambda t, p: np.mean((np.log1p(np.maximum(p, EPS)) - np.log1p(np.maximum(t, EPS))) ** 2, -1)),
    ("huber", "Huber", {"delta": 0.7}, (Y_REG, P_REG),
     lambda t, p: np.mean(np.where(np.abs(p - t) <= 0.7, 0.5 * (p - t) ** 2, 0.7 * np.abs(p - t) - 0.5 * 0.49), -1)),
    ("log_cosh", "LogCosh", {}, (Y_REG, P_REG), lambda t, p: np.mean(np.log(np.cosh(p - t)), -1)),
    ("cosine_similarity", "CosineSimilarity", {}, (Y_REG, P_REG), ref_cosine),
    ("hinge", "Hinge", {}, (Y_BIN, P_REG), lambda t, p: np.mean(np.maximum(1 - ref_hinge_targets(t) * p, 0), -1)),
    ("hinge_pm1", "Hinge", {}, (2 * Y_BIN - 1, P_REG), lambda t, p: np.mean(np.maximum(1 - t * p, 0), -1)),
    ("squared_hinge", "SquaredHinge", {}, (Y_BIN, P_REG),
     lambda t, p: np.mean(np.maximum(1 - ref_hinge_targets(t) * p, 0) ** 2, -1)),
    ("categorical_hinge", "CategoricalHinge", {}, (ONE_HOT, LOGITS_CAT),
     lambda t, p: np.maximum(np.max((1 - t) * p, -1) - np.sum(t * p, -1) + 1, 0)),
    ("kl_divergence", "KLDivergence", {}, (P_CAT, softmax(LOGITS_CAT[::-1]).astype(np.float32)),
     lambda t, p: np.sum(np.clip(t, EPS, 1) * np.log(np.clip(t, EPS, 1) / np.clip(p, EPS, 1)), -1)),
    ("poisson", "Poisson", {}, (Y_POS, P_POS), lambda t, p: np.mean(p - t * np.log(p + EPS), -1)),
    ("bce", "BinaryCrossentropy", {}, (Y_BIN, P_BIN), lambda t, p: ref_bce_elements(t, p).mean(-1)),
    ("bce_smooth", "BinaryCrossentropy", {"label_smoothing": 0.2}, (Y_BIN, P_BIN),
     lambda t, p: ref_bce_elements(t, p, label_smoothing=0.2).mean(-1)),
    ("bce_logits", "BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, (Y_BIN, LOGITS_BIN),
     lambda t, p: ref_bce_elements(t, p, True, 0.1).mean(-1)),
    ("bfce", "BinaryFocalCrossentropy", {}, (Y_BIN, P_BIN), ref_focal_binary),
    ("bfce_options", "BinaryFocalCrossentropy",
     {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5, "from_logits": True, "label_smoothing": 0.1},
     (Y_BIN, LOGITS_BIN), lambda t, p: ref_focal_binary(t, p, True, 0.4, 1.5, True, 0.1)),
    ("cce", "CategoricalCrossentropy", {}, (ONE_HOT, P_CAT), ref_cce),
    ("cce_logits_smooth", "CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1},
     (ONE_HOT, LOGITS_CAT), lambda t, p: ref_cce(t, p, True, 0.1)),
    ("cfce", "CategoricalFocalCrossentropy", {}, (ONE_HOT, P_CAT), ref_focal_categorical),
    ("cfce_options", "CategoricalFocalCrossentropy",
     {"alpha": 0.5, "gamma": 3.0, "from_logits": True, "label_smoothing": 0.2}, (ONE_HOT, LOGITS_CAT),
     lambda t, p: ref_focal_categorical(t, p, 0.5, 3.0, True, 0.2)),
    ("scce", "SparseCategoricalCrossentropy", {}, (LABELS, P_CAT), lambda t, p: ref_cce(ONE_HOT, p)),
    ("scce_logits", "SparseCategoricalCrossentropy", {"from_logits": True}, (LABELS[:, None], LOGITS_CAT),
     lambda t, p: ref_cce(ONE_HOT, p, True)),
    ("scce_ignore", "SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": int(LABELS[0])},
     (LABELS, LOGITS_CAT), lambda t, p: np.where(LABELS == LABELS[0], 0.0, ref_cce(ONE_HOT, p, True))),
    ("dice", "Dice", {}, (Y_BIN, P_BIN), ref_dice),
    ("tversky", "Tversky", {"alpha": 0.3, "beta": 0.7}, (Y_BIN, P_BIN), lambda t, p: ref_tversky(t, p, 0.3, 0.7)),
    ("circle", "Circle", {"gamma": 8.0}, (CIRCLE_LABELS, EMBEDDINGS), lambda t, p: ref_circle(t, p, gamma=8.0)),
    ("ctc", "CTC", {}, (CTC_LABELS, CTC_LOGITS), ref_ctc),
]
IDS = [case[0] for case in CASES]


def counted(name, values):
    """Where Keras's loss masks values out of the mean: ignored labels, circle's zero losses."""
    if name == "scce_ignore":
        return LABELS != LABELS[0]
    if name == "circle":
        return values > 0
    return None


def ref_reduce(values, weight, reduction, mask=None):
    """Keras's reductions: Σ w·l / N, Σ w·l, Σ w·l / Σ w, or the weighted values (N: the values kept)."""
    values = np.asarray(values, np.float64)
    w = np.ones_like(values) if weight is None else np.broadcast_to(np.asarray(weight, np.float64), values.shape)
    keep = np.ones(values.shape, bool) if mask is None else mask
    weighted = values * w * keep
    if reduction is None:
        return weighted
    if reduction == "sum":
        return weighted.sum()
    if reduction == "mean_with_sample_weight":
        return weighted.sum() / (w * keep).sum()
    return weighted.sum() / keep.sum()


@pytest.mark.parametrize("name, cls, options, data, reference", CASES, ids=IDS)
def test_loss_functions_follow_keras_formulas(name, cls, options, data, reference):
    loss = getattr(losses, cls)(**options)
    values, mask = loss.unreduced(*data)
    np.testing.assert_allclose(values, reference(*data), rtol=1e-6, atol=1e-6, err_msg=name)
    expected_mask = counted(name, np.asarray(values))
    if expected_mask is None:
        assert mask is None
    else:
        np.testing.assert_array_equal(mask, expected_mask)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", None])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name, cls, options, data, reference", CASES, ids=IDS)
def test_sample_weight_and_reduction_follow_keras_formulas(name, cls, options, data, reference, weighted, reduction):
    loss = getattr(losses, cls)(reduction=reduction, **options)
    weight = WEIGHTS if weighted else None
    values = reference(*data)
    if values.ndim == 0:  # dice / tversky over all axes: one value, weighted per example as Keras does
        values = np.full(N, values) if weighted else values
    expected = ref_reduce(values, weight, reduction, counted(name, values) if values.ndim else None)
    np.testing.assert_allclose(loss(*data, sample_weight=weight), expected, rtol=1e-6, atol=1e-6)


def test_reduce_loss_formulas_and_errors():
    values = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    weight = jnp.array([1.0, 0.5])
    assert float(losses.reduce_loss(values, weight)) == pytest.approx((1 + 2 + 1.5 + 2) / 4)
    assert float(losses.reduce_loss(values, weight, "mean_with_sample_weight")) == pytest.approx(6.5 / 3)
    np.testing.assert_allclose(losses.reduce_loss(values, weight, None), [[1, 2], [1.5, 2]])
    assert float(losses.reduce_loss(values, jnp.zeros(2), "mean_with_sample_weight")) == 0.0  # 0 / 0 -> 0
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.reduce_loss(values, reduction="average")
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.BinaryCrossentropy(reduction="mean_over_batch")


def test_axis_moves_the_class_axis():
    time_major = np.moveaxis(np.stack([P_CAT, P_CAT[::-1]], 1), 2, 1)  # (batch, classes, 2)
    one_hot = np.moveaxis(np.stack([ONE_HOT, ONE_HOT[::-1]], 1), 2, 1)
    labels = np.stack([LABELS, LABELS[::-1]], 1)
    by_axis = losses.categorical_crossentropy(one_hot, time_major, axis=1)
    assert by_axis.shape == (N, 2)
    np.testing.assert_allclose(by_axis, ref_cce(one_hot, time_major, axis=1), rtol=1e-6)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, time_major, axis=1), by_axis, rtol=1e-6)
    np.testing.assert_allclose(losses.cosine_similarity(Y_REG.T, P_REG.T, axis=0), ref_cosine(Y_REG, P_REG),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="axis must be an int"):
        losses.categorical_crossentropy(ONE_HOT, P_CAT, axis=True)


def test_ignore_class_leaves_labels_out_of_the_mean():
    ignored = int(LABELS[0])
    keep = LABELS != ignored
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignored)
    assert float(loss(LABELS, LOGITS_CAT)) == pytest.approx(
        float(losses.SparseCategoricalCrossentropy(from_logits=True)(LABELS[keep], LOGITS_CAT[keep])), rel=1e-6)


def test_per_step_values_take_per_example_or_per_step_weights():
    y, p = np.stack([Y_REG, Y_REG[::-1]], 1), np.stack([P_REG, P_REG], 1)  # (batch, 2 steps, 3)
    loss = losses.MeanSquaredError()
    values = np.mean((p - y) ** 2, -1)
    assert loss.unreduced(y, p)[0].shape == (N, 2)
    assert float(loss(y, p, WEIGHTS)) == pytest.approx(np.sum(values * WEIGHTS[:, None]) / (2 * N), rel=1e-6)
    step_weights = np.stack([WEIGHTS, 1 - WEIGHTS / 2], 1)
    assert float(loss(y, p, step_weights)) == pytest.approx(np.sum(values * step_weights) / (2 * N), rel=1e-6)


def test_from_logits_equals_probabilities_and_sets_the_flag():
    np.testing.assert_allclose(losses.binary_crossentropy(Y_BIN, LOGITS_BIN, from_logits=True),
                               ref_bce_elements(Y_BIN, LOGITS_BIN, True).mean(-1), rtol=1e-6)
    np.testing.assert_allclose(losses.categorical_crossentropy(ONE_HOT, LOGITS_CAT, from_logits=True),
                               losses.categorical_crossentropy(ONE_HOT, P_CAT), rtol=1e-5)
    assert losses.BinaryCrossentropy(from_logits=True).from_logits
    assert not losses.BinaryCrossentropy().from_logits
    assert fnnet.get_loss("binary_crossentropy_from_logits").from_logits


def test_probabilities_are_clipped_so_certain_mistakes_stay_finite():
    value = losses.binary_crossentropy(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    # Keras's float32 arithmetic: p clipped to [1e-7, 1 - 1e-7], then log(p) and log(1 - p).
    high = np.float32(1) - np.float32(EPS)
    np.testing.assert_allclose(value, [-np.log(np.float32(EPS)), -np.log(np.float32(1) - high)], rtol=1e-6)


def test_keras_no_reduction_bce_case_is_exact_and_its_expected_value_is_rounded():
    # Keras's own test expects [0.0, 6.666] at atol 1e-3. The exact value of the second row is
    # (10 + log1p(e^-10) + 10 + 2 log1p(e^-10)) / 3 = 6.66670: Keras's 6.666 is rounded down,
    # hence the 7.1e-4 gap; fnnet's value is the exact one (and Keras's computed value, below).
    y_true = np.array([[1, 0, 1], [0, 1, 1]])
    logits = np.array([[10.0, -10.0, 10.0], [10.0, 10.0, -10.0]], np.float32)
    ours = losses.BinaryCrossentropy(from_logits=True, reduction=None)(y_true, logits)
    np.testing.assert_allclose(ours, ref_bce_elements(y_true, logits, True).mean(-1), rtol=1e-6)
    assert float(ours[1]) == pytest.approx(20.0 / 3 + np.log1p(np.exp(-10.0)), rel=1e-6)


def test_targets_without_the_trailing_axis_do_not_broadcast_to_a_matrix():
    y_true = np.arange(5, dtype=np.float32)
    y_pred = y_true[:, None] + 1.0
    assert losses.mean_squared_error(y_true, y_pred).shape == (5,)
    assert float(fnnet.get_loss("mse")(y_true, y_pred)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"y_true has shape \(5, 2\) but y_pred has shape \(5, 1\)"):
        losses.mean_squared_error(np.ones((5, 2)), y_pred)
    with pytest.raises(ValueError, match="integer labels of shape"):
        losses.sparse_categorical_crossentropy(np.ones((6, 2)), LOGITS_CAT)
    with pytest.raises(ValueError, match=r"ctc: y_pred must be logits of shape \(batch, steps, classes\)"):
        losses.ctc(CTC_LABELS, CTC_LOGITS[:, 0])


def _inputs_for(name):
    if "sparse" in name:
        return LABELS, LOGITS_CAT if "logits" in name else P_CAT
    if "categorical" in name:
        return ONE_HOT, LOGITS_CAT if "logits" in name else P_CAT
    if "binary" in name or name in ("dice", "tversky"):
        return Y_BIN, LOGITS_BIN if "logits" in name else P_BIN
    if name == "circle":
        return CIRCLE_LABELS, EMBEDDINGS
    if name == "ctc":
        return CTC_LABELS, CTC_LOGITS
    return Y_POS, P_POS


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_every_name_resolves_to_a_scalar_batch_loss(name):
    loss = fnnet.get_loss(name)
    y_true, y_pred = _inputs_for(name)
    assert loss.per_example(y_true, jnp.asarray(y_pred)).shape == (N,)
    value = float(loss(y_true, jnp.asarray(y_pred)))
    assert np.isfinite(value)
    assert loss.from_logits == name.endswith("_from_logits")
    if name not in ("circle",):  # the mean of per-example values is the batch loss (circle masks zeros out)
        assert value == pytest.approx(float(jnp.mean(loss.per_example(y_true, jnp.asarray(y_pred)))), rel=1e-5)


@pytest.mark.parametrize("cls", sorted(losses.LOSS_CLASSES))
def test_class_names_resolve_with_keras_defaults(cls):
    loss = fnnet.get_loss(cls)
    assert loss == losses.LOSS_CLASSES[cls]()._replace(per_example=loss.per_example, unreduced=loss.unreduced)
    assert loss.reduction == "sum_over_batch_size"


def test_unknown_names_and_non_callables_are_clear_errors():
    with pytest.raises(ValueError, match="unknown loss 'msqe'; known names: .*mean_squared_error"):
        fnnet.get_loss("msqe")
    with pytest.raises(TypeError, match="loss must be"):
        fnnet.get_loss(3)


@pytest.mark.parametrize("rows, scale", [(1, 0.5), (3, 2.0), (8, 7.0)])
def test_a_callable_batch_mean_is_recovered_exactly_from_its_per_example_values(rows, scale):
    x = scale * np.linspace(-1, 1, rows * 2, dtype=np.float32).reshape(rows, 2)

    def my_loss(y_true, y_pred):
        return jnp.mean(jnp.abs(y_true - y_pred) ** 1.5)

    loss = fnnet.get_loss(my_loss)
    assert loss.name == "my_loss"
    per_example = loss.per_example(x, jnp.zeros_like(x))
    assert per_example.shape == (rows,)
    assert float(jnp.mean(per_example)) == pytest.approx(float(my_loss(x, jnp.zeros_like(x))), rel=1e-5)
    weight = np.linspace(0, 1, rows, dtype=np.float32)
    assert float(loss(x, jnp.zeros_like(x), weight)) == pytest.approx(float(jnp.sum(per_example * weight)) / rows,
                                                                      rel=1e-5)


def test_several_outputs_sum_their_reduced_losses():
    loss = losses.MeanAbsoluteError(reduction="mean_with_sample_weight")
    y, p = (Y_REG, Y_POS), (P_REG, P_POS)
    expected = sum(ref_reduce(np.mean(np.abs(b - a), -1), WEIGHTS, "mean_with_sample_weight")
                   for a, b in zip(y, p))
    assert float(loss(y, p, WEIGHTS)) == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- Keras itself


@pytest.fixture(scope="module")
def keras():
    return keras_or_skip("losses")


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", None])
@pytest.mark.parametrize("name, cls, options, data, reference", CASES, ids=IDS)
def test_losses_agree_with_keras(keras, name, cls, options, data, reference, reduction):
    ours = getattr(losses, cls)(reduction=reduction, **options)
    theirs = getattr(keras.losses, cls)(reduction=reduction, **options)
    for weight in (None, WEIGHTS):
        expected = np.asarray(theirs(*data, sample_weight=weight))
        np.testing.assert_allclose(ours(*data, sample_weight=weight), expected, rtol=1e-6, atol=1e-6,
                                   err_msg=f"{name} weight={weight is not None}")


def test_loss_functions_agree_with_keras_functions(keras):
    cases = [("mean_squared_error", Y_REG, P_REG), ("mean_absolute_error", Y_REG, P_REG),
             ("mean_absolute_percentage_error", Y_REG, P_REG), ("mean_squared_logarithmic_error", Y_POS, P_REG),
             ("huber", Y_REG, P_REG), ("log_cosh", Y_REG, P_REG), ("cosine_similarity", Y_REG, P_REG),
             ("hinge", Y_BIN, P_REG), ("squared_hinge", Y_BIN, P_REG), ("categorical_hinge", ONE_HOT, LOGITS_CAT),
             ("kl_divergence", P_CAT, P_CAT[::-1]), ("poisson", Y_POS, P_POS), ("binary_crossentropy", Y_BIN, P_BIN),
             ("binary_focal_crossentropy", Y_BIN, P_BIN), ("categorical_crossentropy", ONE_HOT, P_CAT),
             ("categorical_focal_crossentropy", ONE_HOT, P_CAT), ("sparse_categorical_crossentropy", LABELS, P_CAT),
             ("dice", Y_BIN, P_BIN), ("tversky", Y_BIN, P_BIN), ("circle", CIRCLE_LABELS, EMBEDDINGS),
             ("ctc", CTC_LABELS, CTC_LOGITS)]
    for name, y_true, y_pred in cases:
        np.testing.assert_allclose(getattr(losses, name)(y_true, y_pred),
                                   np.asarray(getattr(keras.losses, name)(y_true, y_pred)), rtol=1e-6, atol=1e-6,
                                   err_msg=name)


def test_keras_no_reduction_bce_matches_keras_computation(keras):
    y_true = np.array([[1, 0, 1], [0, 1, 1]])
    logits = np.array([[10.0, -10.0, 10.0], [10.0, 10.0, -10.0]], np.float32)
    theirs = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)(y_true, logits)
    ours = losses.BinaryCrossentropy(from_logits=True, reduction=None)(y_true, logits)
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-6, atol=1e-7)

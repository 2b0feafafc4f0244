"""Metrics: Keras's formulas (NumPy references) with and without sample weights, mergeable states that
are exact over uneven batches, accuracy resolution, names, and agreement with Keras 3 where installed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import metrics
from keras_backend import keras_or_skip
from test_losses import (EPS, ref_bce_elements, ref_cce, ref_cosine, ref_hinge_targets, sigmoid, softmax)

PROBS = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]], np.float32)
LABELS = np.array([1, 2, 2, 1])

RNG = np.random.default_rng(1)
M = 37
SPLITS = [5, 13, 1, 18]  # uneven batches of the M rows
Y_BIN = (RNG.uniform(size=(M, 1)) > 0.4).astype(np.float32)
# Scores correlated with the labels, rounded to 3 decimals so that some tie.
P_BIN = np.round(np.clip(0.3 * Y_BIN + RNG.uniform(0, 0.7, size=(M, 1)), 0, 1), 3).astype(np.float32)
LOGITS_BIN = RNG.normal(size=(M, 1)).astype(np.float32) + 2 * Y_BIN - 1
W = RNG.uniform(0.0, 2.0, size=M).astype(np.float32)
CLASSES = RNG.integers(0, 5, size=M)
ONE_HOT = np.eye(5, dtype=np.float32)[CLASSES]
LOGITS_CAT = RNG.normal(size=(M, 5)).astype(np.float32)
P_CAT = softmax(LOGITS_CAT).astype(np.float32)
Y_REG = RNG.normal(size=(M, 2)).astype(np.float32)
P_REG = (Y_REG + RNG.normal(scale=0.5, size=(M, 2))).astype(np.float32)
Y_POS = RNG.uniform(0, 3, size=(M, 2)).astype(np.float32)
P_POS = RNG.uniform(0.1, 3, size=(M, 2)).astype(np.float32)


def batched_result(metric, y_true, y_pred, weight=None, splits=SPLITS):
    """The metric over the rows fed batch by batch: states merged, then one result."""
    state, start = None, 0
    for size in splits:
        rows = slice(start, start + size)
        state = metrics.merge_states(state, metric.state(y_true[rows], y_pred[rows],
                                                         None if weight is None else weight[rows]))
        start += size
    assert start == len(y_true)
    return metric.result(state)


def weighted_mean(values, weight):
    values = np.asarray(values, np.float64)
    return values.mean() if weight is None else np.sum(values * weight) / np.sum(weight)


def in_top_k(labels, scores, k):
    at_label = scores[np.arange(len(labels)), labels]
    return (1 + np.sum(scores > at_label[:, None], -1) <= k).astype(np.float64)


# name, fnnet/Keras class, options, (y_true, y_pred), reference per-example values
MEAN_CASES = [
    ("mape", "MeanAbsolutePercentageError", {}, (Y_REG, P_REG),
     lambda t, p: 100 * np.mean(np.abs((t - p) / np.maximum(np.abs(t), EPS)), -1)),
    ("msle", "MeanSquaredLogarithmicError", {}, (Y_POS, P_REG),
     lambda t, p: np.mean((np.log1p(np.maximum(p, EPS)) - np.log1p(np.maximum(t, EPS))) ** 2, -1)),
    ("rmse", "RootMeanSquaredError", {}, (Y_REG, P_REG), None),
    ("cosine_similarity", "CosineSimilarity", {}, (Y_REG, P_REG), lambda t, p: -ref_cosine(t, p)),
    ("log_cosh_error", "LogCoshError", {}, (Y_REG, P_REG), lambda t, p: np.mean(np.log(np.cosh(p - t)), -1)),
    ("kl_divergence", "KLDivergence", {}, (P_CAT, P_CAT[::-1]),
     lambda t, p: np.sum(np.clip(t, EPS, 1) * np.log(np.clip(t, EPS, 1) / np.clip(p, EPS, 1)), -1)),
    ("poisson", "Poisson", {}, (Y_POS, P_POS), lambda t, p: np.mean(p - t * np.log(p + EPS), -1)),
    ("binary_crossentropy", "BinaryCrossentropy", {}, (Y_BIN, P_BIN), lambda t, p: ref_bce_elements(t, p).mean(-1)),
    ("binary_crossentropy_logits", "BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1},
     (Y_BIN, LOGITS_BIN), lambda t, p: ref_bce_elements(t, p, True, 0.1).mean(-1)),
    ("categorical_crossentropy", "CategoricalCrossentropy", {"label_smoothing": 0.2}, (ONE_HOT, P_CAT),
     lambda t, p: ref_cce(t, p, label_smoothing=0.2)),
    ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", {"from_logits": True}, (CLASSES, LOGITS_CAT),
     lambda t, p: ref_cce(ONE_HOT, p, True)),
    ("hinge", "Hinge", {}, (Y_BIN, LOGITS_BIN), lambda t, p: np.mean(np.maximum(1 - ref_hinge_targets(t) * p, 0), -1)),
    ("squared_hinge", "SquaredHinge", {}, (Y_BIN, LOGITS_BIN),
     lambda t, p: np.mean(np.maximum(1 - ref_hinge_targets(t) * p, 0) ** 2, -1)),
    ("categorical_hinge", "CategoricalHinge", {}, (ONE_HOT, LOGITS_CAT),
     lambda t, p: np.maximum(np.max((1 - t) * p, -1) - np.sum(t * p, -1) + 1, 0)),
    ("top_k_categorical_accuracy", "TopKCategoricalAccuracy", {"k": 2}, (ONE_HOT, LOGITS_CAT),
     lambda t, p: in_top_k(CLASSES, p, 2)),
    ("sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy", {"k": 3}, (CLASSES, LOGITS_CAT),
     lambda t, p: in_top_k(t, p, 3)),
    ("sparse_top_k_default", "SparseTopKCategoricalAccuracy", {}, (CLASSES[:, None], LOGITS_CAT),
     lambda t, p: in_top_k(t[:, 0], p, 5)),
    ("binary_accuracy", "BinaryAccuracy", {"threshold": 0.4}, (Y_BIN, P_BIN),
     lambda t, p: np.mean((p > 0.4) == (t > 0.5), -1)),
    ("categorical_accuracy", "CategoricalAccuracy", {}, (ONE_HOT, P_CAT),
     lambda t, p: (p.argmax(-1) == t.argmax(-1)).astype(float)),
    ("sparse_categorical_accuracy", "SparseCategoricalAccuracy", {}, (CLASSES, P_CAT),
     lambda t, p: (p.argmax(-1) == t).astype(float)),
]
MEAN_IDS = [c[0] for c in MEAN_CASES]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name, cls, options, data, reference", MEAN_CASES, ids=MEAN_IDS)
def test_mean_metrics_follow_keras_formulas_and_merge_exactly(name, cls, options, data, reference, weighted):
    metric = getattr(metrics, cls)(**options)
    weight = W if weighted else None
    if reference is None:  # rmse: the root of the weighted mean squared error
        expected = np.sqrt(weighted_mean(np.mean((data[1] - data[0]).astype(np.float64) ** 2, -1), weight))
    else:
        expected = weighted_mean(reference(*data), weight)
    np.testing.assert_allclose(metric(*data, sample_weight=weight), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batched_result(metric, *data, weight), expected, rtol=1e-6, atol=1e-6)


def ref_counts(y, p, thresholds, w=None):
    y, p = np.asarray(y).reshape(-1) != 0, np.asarray(p, np.float64).reshape(-1)
    w = np.ones(len(y)) if w is None else np.broadcast_to(np.asarray(w, np.float64).reshape(-1), y.shape)
    above = p[None, :] > np.asarray(thresholds)[:, None]
    return {"tp": (above & y) @ w, "fp": (above & ~y) @ w, "tn": (~above & ~y) @ w, "fn": (~above & y) @ w}


def safe_divide(a, b):
    return np.where(b == 0, 0.0, a / np.where(b == 0, 1, b))


def ref_auc(y, p, w=None, num_thresholds=200, curve="ROC", method="interpolation"):
    """Keras's documented AUC: counts at thresholds {-eps, 1/(n-1), ..., 1+eps}, a Riemann sum."""
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    c = ref_counts(y, np.clip(p, 0, 1), [-EPS] + inner + [1 + EPS], w)
    recall = safe_divide(c["tp"], c["tp"] + c["fn"])
    if curve == "ROC":
        x, h = safe_divide(c["fp"], c["fp"] + c["tn"]), recall
    elif method != "interpolation":
        x, h = recall, safe_divide(c["tp"], c["tp"] + c["fp"])
    else:  # PR with Davis-Goadrich interpolation of precision between thresholds
        tp, p_all = c["tp"], c["tp"] + c["fp"]
        dtp, dp = tp[:-1] - tp[1:], p_all[:-1] - p_all[1:]
        slope = safe_divide(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p_all[1:]
        ratio = np.where((p_all[:-1] > 0) & (p_all[1:] > 0), safe_divide(p_all[:-1], p_all[1:]), 1.0)
        return np.sum(safe_divide(slope * (dtp + intercept * np.log(ratio)), tp[1:] + c["fn"][1:]))
    pairs = {"interpolation": (h[:-1] + h[1:]) / 2, "minoring": np.minimum(h[:-1], h[1:]),
             "majoring": np.maximum(h[:-1], h[1:])}[method]
    return np.sum((x[:-1] - x[1:]) * pairs)


def mann_whitney_auc(y, p):
    y, p = np.asarray(y).reshape(-1) != 0, np.asarray(p).reshape(-1)
    pos, neg = p[y], p[~y]
    return np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))


COUNT_CASES = [
    ("precision", lambda: metrics.Precision(),
     lambda y, p, w: (lambda c: safe_divide(c["tp"], c["tp"] + c["fp"])[0])(ref_counts(y, p, [0.5], w))),
    ("recall", lambda: metrics.Recall(),
     lambda y, p, w: (lambda c: safe_divide(c["tp"], c["tp"] + c["fn"])[0])(ref_counts(y, p, [0.5], w))),
    ("precision_thresholds", lambda: metrics.Precision(thresholds=[0.3, 0.6]),
     lambda y, p, w: (lambda c: safe_divide(c["tp"], c["tp"] + c["fp"]))(ref_counts(y, p, [0.3, 0.6], w))),
    ("recall_threshold", lambda: metrics.Recall(thresholds=0.7),
     lambda y, p, w: (lambda c: safe_divide(c["tp"], c["tp"] + c["fn"])[0])(ref_counts(y, p, [0.7], w))),
    ("auc", lambda: metrics.AUC(), lambda y, p, w: ref_auc(y, p, w)),
    ("auc_pr", lambda: metrics.AUC(curve="PR"), lambda y, p, w: ref_auc(y, p, w, curve="PR")),
    ("auc_pr_majoring", lambda: metrics.AUC(curve="PR", summation_method="majoring", num_thresholds=50),
     lambda y, p, w: ref_auc(y, p, w, 50, "PR", "majoring")),
    ("auc_roc_minoring", lambda: metrics.AUC(summation_method="minoring"),
     lambda y, p, w: ref_auc(y, p, w, method="minoring")),
]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name, make, reference", COUNT_CASES, ids=[c[0] for c in COUNT_CASES])
def test_count_metrics_follow_keras_formulas_and_uneven_batches_equal_the_whole_set(name, make, reference, weighted):
    metric = make()
    weight = W if weighted else None
    expected = reference(Y_BIN, P_BIN, weight)
    whole = metric(Y_BIN, P_BIN, sample_weight=weight)
    np.testing.assert_allclose(whole, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batched_result(metric, Y_BIN, P_BIN, weight), whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(batched_result(metric, Y_BIN, P_BIN, weight, [1] * M), whole, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_multi_label_auc_averages_the_labels_curves(weighted):
    weight = W if weighted else None
    label_weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0])
    per_label = np.array([ref_auc(ONE_HOT[:, j], P_CAT[:, j], weight, curve="PR") for j in range(5)])
    metric = metrics.AUC(multi_label=True, curve="PR", label_weights=label_weights)
    expected = np.sum(per_label * label_weights) / label_weights.sum()
    np.testing.assert_allclose(batched_result(metric, ONE_HOT, P_CAT, weight), expected, rtol=1e-6, atol=1e-6)
    roc = [ref_auc(ONE_HOT[:, j], P_CAT[:, j], weight) for j in range(5)]
    np.testing.assert_allclose(metrics.AUC(multi_label=True)(ONE_HOT, P_CAT, weight), np.mean(roc), rtol=1e-6)
    rows = np.ones(M) if weight is None else weight
    flat = ref_auc(ONE_HOT, P_CAT, np.repeat(rows, 5) * np.tile(label_weights, M))  # each value one decision
    np.testing.assert_allclose(metrics.AUC(label_weights=label_weights)(ONE_HOT, P_CAT, weight), flat, rtol=1e-6)


def test_auc_with_keras_thresholds_is_close_to_the_exact_rank_auc():
    assert float(metrics.AUC()(Y_BIN, P_BIN)) == pytest.approx(mann_whitney_auc(Y_BIN, P_BIN), abs=5e-3)
    logits = metrics.AUC(from_logits=True)(Y_BIN, LOGITS_BIN)
    assert float(logits) == pytest.approx(float(metrics.AUC()(Y_BIN, sigmoid(LOGITS_BIN).astype(np.float32))))


def test_precision_top_k_and_class_id():
    y = ONE_HOT
    top2 = metrics.Precision(top_k=2)(y, P_CAT)
    picked = np.argsort(-P_CAT, axis=1)[:, :2]
    hits = np.take_along_axis(y, picked, axis=1)
    assert float(top2) == pytest.approx(hits.mean(), rel=1e-6)
    class_3 = metrics.Recall(class_id=3)(y, P_CAT)
    positives = CLASSES == 3
    assert float(class_3) == pytest.approx(np.mean(P_CAT[positives, 3] > 0.5), rel=1e-6)


def ref_r2(y, p, w=None, aggregation="uniform_average", num_regressors=0):
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    w = np.ones(len(y)) if w is None else np.asarray(w, np.float64)
    w = w[:, None]
    mean = np.sum(w * y, 0) / np.sum(w * np.ones_like(y), 0)
    total = np.sum(w * (y - mean) ** 2, 0)
    raw = 1 - np.sum(w * (y - p) ** 2, 0) / total
    score = {"uniform_average": raw.mean(), "variance_weighted_average": np.sum(total * raw) / np.sum(total),
             None: raw}[aggregation]
    if num_regressors:
        n = y.size
        score = 1 - (1 - score) * (n - 1) / (n - num_regressors - 1)
    return score


@pytest.mark.parametrize("options", [{}, {"class_aggregation": "variance_weighted_average"},
                                     {"class_aggregation": None}, {"num_regressors": 3}])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_r2_score_follows_its_formula_over_uneven_batches(options, weighted):
    metric = metrics.R2Score(**options)
    weight = W if weighted else None
    expected = ref_r2(Y_REG, P_REG, weight, options.get("class_aggregation", "uniform_average"),
                      options.get("num_regressors", 0))
    np.testing.assert_allclose(metric(Y_REG, P_REG, sample_weight=weight), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched_result(metric, Y_REG, P_REG, weight), expected, rtol=1e-5, atol=1e-6)


def test_states_are_jittable_dicts_of_sums():
    metric = metrics.AUC()
    state = jax.jit(metric.state)(Y_BIN, P_BIN, W)
    assert set(state) == {"true_positives", "false_positives", "true_negatives", "false_negatives"}
    assert state["true_positives"].shape == (200,)
    assert float(state["true_positives"][0] + state["false_negatives"][0]) == pytest.approx(float(W @ Y_BIN[:, 0]),
                                                                                            rel=1e-6)
    assert float(jax.jit(metric.result)(state)) == pytest.approx(float(metric(Y_BIN, P_BIN, W)), rel=1e-6)
    assert metrics.merge_states(None, None) is None


def test_count_metrics_have_no_per_example_form_and_say_what_to_use():
    with pytest.raises(TypeError, match="ratio of counts.*state"):
        fnnet.get_metric("auc").per_example(Y_BIN, P_BIN)


def test_ensemble_metric_scores_the_averaged_members_with_states():
    members = np.stack([P_BIN, np.clip(P_BIN + 0.1, 0, 1)], axis=1)  # (batch, 2 members, 1)
    auc = fnnet.ensemble_metric("auc")
    assert auc.name == "ensemble_auc"
    assert float(auc(Y_BIN, members)) == pytest.approx(float(metrics.AUC()(Y_BIN, members.mean(1))), rel=1e-6)


# --------------------------------------------------------------------------- older behaviour


def test_accuracy_is_chosen_from_the_shapes_as_keras_does():
    sparse = fnnet.get_metric("accuracy")(LABELS, PROBS)
    one_hot = fnnet.get_metric("accuracy")(np.eye(3)[LABELS], PROBS)
    binary = fnnet.get_metric("acc")(np.array([1, 0, 1]), np.array([[0.9], [0.4], [0.2]]))
    assert float(sparse) == float(one_hot) == pytest.approx(0.75)
    assert float(binary) == pytest.approx(2 / 3)
    weighted = fnnet.get_metric("accuracy")(LABELS, PROBS, sample_weight=np.array([1.0, 3.0, 1.0, 1.0]))
    assert float(weighted) == pytest.approx(3 / 6)


def test_binary_accuracy_of_logits_thresholds_at_zero_when_the_loss_says_logits():
    logits = np.array([[0.3], [-0.2], [-1.0]], np.float32)
    y = np.array([1, 0, 1])
    assert float(fnnet.get_metric("accuracy", loss="binary_crossentropy_from_logits")(y, logits)) == pytest.approx(2 / 3)
    assert float(fnnet.get_metric("accuracy", loss="binary_crossentropy")(y, logits)) == pytest.approx(1 / 3)


def test_named_accuracies_per_example():
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(LABELS, PROBS), [1, 0, 1, 1])
    np.testing.assert_array_equal(metrics.categorical_accuracy(np.eye(3)[LABELS], PROBS), [1, 0, 1, 1])
    np.testing.assert_array_equal(metrics.binary_accuracy(np.array([[1, 0]]), np.array([[0.7, 0.6]])), [0.5])


def test_rmse_is_the_root_of_the_data_set_mean_not_a_mean_of_batch_roots():
    y_true, y_pred = np.zeros(4, np.float32), np.array([1.0, 1.0, 1.0, 5.0], np.float32)
    rmse = fnnet.get_metric("rmse")
    per_example = rmse.per_example(y_true, y_pred)
    assert float(rmse.finalize(jnp.mean(per_example))) == pytest.approx(np.sqrt(7.0))
    assert float(batched_result(rmse, y_true, y_pred, splits=[2, 2])) == pytest.approx(np.sqrt(7.0))
    batch_roots = np.mean([float(rmse(y_true[:2], y_pred[:2])), float(rmse(y_true[2:], y_pred[2:]))])
    assert batch_roots != pytest.approx(np.sqrt(7.0))


def test_callable_metrics_use_their_name_and_are_exact_per_example():
    def max_error(y_true, y_pred):
        return jnp.mean(jnp.max(jnp.abs(y_true - y_pred), axis=-1))

    metric = fnnet.get_metric(max_error)
    assert metric.name == "max_error"
    np.testing.assert_allclose(metric.per_example(np.zeros((2, 2)), np.array([[1.0, -3.0], [0.5, 0.0]])), [3.0, 0.5])
    assert float(metric(np.zeros((2, 2)), np.array([[1.0, -3.0], [0.5, 0.0]]), np.array([1.0, 3.0]))) == \
        pytest.approx((3.0 + 1.5) / 4)


def test_metric_names_are_checked():
    with pytest.raises(ValueError, match="unknown metric 'accuracyy'"):
        fnnet.get_metric("accuracyy")
    with pytest.raises(ValueError, match="unique"):
        metrics.get_metrics(["mae", "mae"])
    with pytest.raises(ValueError, match="clash"):
        metrics.get_metrics([fnnet.metrics.Metric("val_x", metrics.binary_accuracy)])
    assert [m.name for m in metrics.get_metrics("mae")] == ["mae"]


def _inputs_for(name):
    if "sparse" in name:
        return CLASSES, P_CAT
    if "categorical" in name or name in ("kl_divergence", "kld", "kullback_leibler_divergence", "accuracy", "acc"):
        return ONE_HOT, P_CAT
    if name in ("binary_accuracy", "binary_crossentropy", "hinge", "squared_hinge", "precision", "recall", "auc"):
        return Y_BIN, P_BIN
    return Y_POS, P_POS


@pytest.mark.parametrize("name", metrics.METRIC_NAMES)
def test_every_name_resolves_to_a_finite_value_under_its_name(name):
    metric = fnnet.get_metric(name)
    assert metric.name == name
    assert np.isfinite(float(metric(*_inputs_for(name))))


@pytest.mark.parametrize("cls", sorted(metrics.METRIC_CLASSES))
def test_class_names_resolve(cls):
    metric = fnnet.get_metric(cls)
    y_true, y_pred = _inputs_for(metrics.METRIC_CLASSES[cls]().name)
    assert metric.name == cls
    np.testing.assert_allclose(metric(y_true, y_pred), metrics.METRIC_CLASSES[cls]()(y_true, y_pred))


def test_named_metrics_average_over_several_outputs():
    y = (np.array([1, 0]), np.array([1, 1]))
    pred = (np.array([[0.9], [0.2]]), np.array([[0.8], [0.1]]))
    assert float(fnnet.get_metric("binary_accuracy")(y, pred)) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="auc takes one output"):
        fnnet.get_metric("auc")(y, pred)


# --------------------------------------------------------------------------- Keras itself


@pytest.fixture(scope="module")
def keras():
    return keras_or_skip("metrics")


def keras_batched(keras_metric, y_true, y_pred, weight):
    start = 0
    for size in SPLITS:
        rows = slice(start, start + size)
        keras_metric.update_state(y_true[rows], y_pred[rows], None if weight is None else weight[rows])
        start += size
    return np.asarray(keras_metric.result())


KERAS_COUNT_CASES = [
    ("Precision", {}, (Y_BIN, P_BIN)), ("Recall", {"thresholds": [0.2, 0.5, 0.8]}, (Y_BIN, P_BIN)),
    ("Precision", {"top_k": 2}, (ONE_HOT, P_CAT)), ("Recall", {"class_id": 1}, (ONE_HOT, P_CAT)),
    ("AUC", {}, (Y_BIN, P_BIN)), ("AUC", {"curve": "PR"}, (Y_BIN, P_BIN)),
    ("AUC", {"from_logits": True, "num_thresholds": 37}, (Y_BIN, LOGITS_BIN)),
    ("AUC", {"summation_method": "majoring"}, (ONE_HOT, P_CAT)),
    ("AUC", {"thresholds": [0.1, 0.4, 0.45, 0.9]}, (Y_BIN, P_BIN)),
    ("AUC", {"multi_label": True}, (ONE_HOT, P_CAT)),
    ("AUC", {"multi_label": True, "curve": "PR", "label_weights": [1.0, 0.0, 2.0, 0.5, 1.0]}, (ONE_HOT, P_CAT)),
    ("AUC", {"label_weights": [1.0, 0.0, 2.0, 0.5, 1.0]}, (ONE_HOT, P_CAT)),
    ("R2Score", {}, (Y_REG, P_REG)), ("R2Score", {"class_aggregation": "variance_weighted_average"}, (Y_REG, P_REG)),
    ("R2Score", {"num_regressors": 2}, (Y_REG, P_REG)),
]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", MEAN_CASES + KERAS_COUNT_CASES,
                         ids=MEAN_IDS + [f"{c[0]}{c[1]}" for c in KERAS_COUNT_CASES])
def test_metrics_agree_with_keras_over_uneven_batches(keras, case, weighted):
    cls, options, data = case[1:4] if len(case) == 5 else case
    weight = W if weighted else None
    expected = keras_batched(getattr(keras.metrics, cls)(**options), *data, weight)
    ours = batched_result(getattr(metrics, cls)(**options), *data, weight)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)

"""Metrics with Keras's names, formulas and ``sample_weight``, exact over a whole data set.

A metric's value over a data set is a function of **sums**: a :class:`Metric` turns one
batch into a *state*, a dict of summed arrays (``metric.state(y_true, y_pred,
sample_weight=None)``); states of any batches, of any sizes, add up
(:func:`merge_states`); and ``metric.result(state)`` turns the merged state into the
value. So a metric over a data set seen in uneven batches is exactly the metric of the
whole set at once, never an average of batch values::

    state = None
    for xb, yb in batches:
        state = merge_states(state, metric.state(yb, predict(xb)))
    value = metric.result(state)

Means (accuracy, MSE, MAE, the cross-entropies, ...) keep ``{'total': Σ w·v, 'count': Σ w}``
(Keras's ``Mean``); RMSE is the root of that mean; ``precision``/``recall`` keep true and
false positive/negative counts at their thresholds, ``auc`` all four at 200 thresholds
(Keras's); ``r2_score`` keeps per-output sums of targets, squares and residuals.

Mean metrics also keep the older form, ``per_example(y_true, y_pred) -> (batch,)`` and
``finalize(mean) -> value``; metrics that are ratios of counts (precision, recall, AUC,
R²) have only states.

Names: ``'accuracy'``/``'acc'`` (binary, categorical or sparse, chosen from the shapes and
the loss as Keras does) and every name in ``METRIC_NAMES``; Keras's class names
(``'AUC'``, ``fnnet.metrics.AUC(num_thresholds=200, curve='ROC')``) give the same metrics
with their options.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import losses as _losses


# --------------------------------------------------------------------------- mean metrics' functions


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Fraction of outputs on the right side of ``threshold``, per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.binary_accuracy(jnp.array([1, 0, 1]), jnp.array([[0.8], [0.6], [0.3]])).tolist()
    [1.0, 0.0, 0.0]
    """
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    hit = (y_pred > threshold) == (y_true > 0.5)
    return _losses.per_example_mean(hit.astype(jnp.float32))


def categorical_accuracy(y_true, y_pred):
    """1.0 where the arg-max of ``y_pred`` matches that of one-hot ``y_true``, per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.categorical_accuracy(jnp.eye(2), jnp.array([[0.9, 0.1], [0.8, 0.2]])).tolist()
    [1.0, 0.0]
    """
    hit = jnp.argmax(jnp.asarray(y_pred), axis=-1) == jnp.argmax(jnp.asarray(y_true), axis=-1)
    return _losses.per_example_mean(hit.astype(jnp.float32))


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the arg-max of ``y_pred`` equals the integer label, per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.sparse_categorical_accuracy(jnp.array([0, 0]), jnp.array([[0.9, 0.1], [0.2, 0.8]])).tolist()
    [1.0, 0.0]
    """
    labels = _losses.integer_labels(y_true, y_pred, "sparse_categorical_accuracy")
    hit = jnp.argmax(jnp.asarray(y_pred), axis=-1) == labels
    return _losses.per_example_mean(hit.astype(jnp.float32))


def accuracy(y_true, y_pred, from_logits=False):
    """Keras's ``'accuracy'``: binary, categorical or sparse, chosen from the shapes.

    One output column (or none) means binary accuracy, thresholded at 0.5, or at 0 for
    logits; targets shaped like the outputs mean one-hot targets; targets without the
    class axis mean integer labels.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.accuracy(jnp.array([2, 0]), jnp.array([[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]])).tolist()
    [1.0, 0.0]
    """
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
        return binary_accuracy(y_true, y_pred, threshold=0.0 if from_logits else 0.5)
    if y_true.shape == y_pred.shape:
        return categorical_accuracy(y_true, y_pred)
    return sparse_categorical_accuracy(y_true, y_pred)


def _in_top_k(labels, y_pred, k):
    # Keras's rule: the label's rank is 1 + the number of strictly larger scores (ties count for
    # the label), and a NaN score is never among the top k.
    at_label = jnp.take_along_axis(y_pred, labels[..., None], axis=-1)
    at_label = jnp.where(jnp.isnan(at_label), -jnp.inf, at_label)
    return (1 + jnp.sum(y_pred > at_label, axis=-1)) <= k


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the one-hot target's class is among the ``k`` largest scores, per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.top_k_categorical_accuracy(jnp.eye(3), jnp.array([[0.1, 0.5, 0.4]] * 3), k=2).tolist()
    [0.0, 1.0, 1.0]
    """
    y_pred = jnp.asarray(y_pred)
    labels = jnp.argmax(jnp.asarray(y_true), axis=-1)
    return _losses.per_example_mean(_in_top_k(labels, y_pred, k).astype(jnp.float32))


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the integer label is among the ``k`` largest scores, per example.

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.sparse_top_k_categorical_accuracy(jnp.array([0, 1, 2]), jnp.array([[0.1, 0.5, 0.4]] * 3), k=2).tolist()
    [0.0, 1.0, 1.0]
    """
    y_pred = jnp.asarray(y_pred)
    labels = _losses.integer_labels(y_true, y_pred, "sparse_top_k_categorical_accuracy")
    return _losses.per_example_mean(_in_top_k(labels, y_pred, k).astype(jnp.float32))


def cosine_similarity(y_true, y_pred, axis=-1):
    """The cosine similarity along ``axis`` (a metric: 1 is best; the loss is its negative).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.metrics.cosine_similarity(jnp.array([[1.0, 0.0]]), jnp.array([[2.0, 0.0]])).tolist()
    [1.0]
    """
    return -_losses.cosine_similarity(y_true, y_pred, axis=axis)


# --------------------------------------------------------------------------- states


def _float(x):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def mean_state(values, sample_weight=None) -> dict:
    """The state of a mean metric over one batch of Keras-shaped values: ``{'total': Σ w·v, 'count': Σ w}``.

    A weight per example weighs every value of its example; values with more axes than
    the weights are first averaged over the extra axes, as Keras's ``Mean`` does.

    >>> import fnnet, jax.numpy as jnp
    >>> s = fnnet.metrics.mean_state(jnp.array([1.0, 2.0, 4.0]), jnp.array([1.0, 1.0, 2.0]))
    >>> float(s['total']), float(s['count'])
    (11.0, 4.0)
    """
    values = _float(values).astype(jnp.float32)
    if values.ndim == 0:
        values = values[None]
    if sample_weight is None:
        per_sample = values.reshape(values.shape[0], -1).mean(axis=1) if values.ndim > 1 else values
        return {"total": jnp.sum(per_sample), "count": jnp.asarray(per_sample.shape[0], jnp.float32)}
    weight = jnp.asarray(sample_weight, jnp.float32)
    values, weight = _losses.same_rank(values, weight)
    if values.ndim > weight.ndim:
        values = jnp.mean(values, axis=tuple(range(weight.ndim, values.ndim)))
    weight = jnp.broadcast_to(weight, values.shape)
    weighted = values * weight
    if weight.ndim > 1:
        weight = jnp.mean(weight, axis=tuple(range(1, weight.ndim)))
        weighted = jnp.mean(weighted, axis=tuple(range(1, weighted.ndim)))
    return {"total": jnp.sum(weighted), "count": jnp.sum(weight)}


def merge_states(*states):
    """The state of the union of the batches the ``states`` came from: their sum, leaf by leaf
    (``None`` states, e.g. a loop's start, are skipped).

    >>> import fnnet, jax.numpy as jnp
    >>> mae = fnnet.get_metric('mae')
    >>> a = mae.state(jnp.zeros(3), jnp.array([1.0, 1.0, 1.0]))
    >>> b = mae.state(jnp.zeros(1), jnp.array([5.0]))
    >>> float(mae.result(fnnet.metrics.merge_states(a, b)))   # (1 + 1 + 1 + 5) / 4
    2.0
    """
    present = [s for s in states if s is not None]
    if not present:
        return None
    return functools.reduce(lambda a, b: jax.tree_util.tree_map(jnp.add, a, b), present)


def _divide_no_nan(a, b):
    return jnp.where(b == 0, jnp.zeros_like(a), a / jnp.where(b == 0, 1, b))


def _identity(mean):
    return mean


class Metric(NamedTuple):
    """A resolved metric: ``name`` (its history key), and either the mean form (``per_example(y_true,
    y_pred) -> (batch,)`` with ``finalize(mean) -> value``) or ``batch_state(y_true, y_pred,
    sample_weight) -> state`` with ``from_state(state) -> value``.

    Use it through ``state`` / :func:`merge_states` / ``result`` (exact over uneven
    batches), or call it on one batch (or a whole data set at once).

    >>> import fnnet, jax.numpy as jnp
    >>> rmse = fnnet.get_metric('rmse')
    >>> round(float(rmse(jnp.array([0.0, 0.0]), jnp.array([3.0, 4.0]))), 4)  # sqrt((9 + 16) / 2)
    3.5355
    """

    name: str
    per_example: Callable | None = None
    finalize: Callable = _identity
    batch_state: Callable | None = None
    from_state: Callable | None = None

    def state(self, y_true, y_pred, sample_weight=None) -> dict:
        """The mergeable state (a dict of summed arrays) of one batch."""
        if self.batch_state is not None:
            return self.batch_state(y_true, y_pred, sample_weight)
        return mean_state(self.per_example(y_true, y_pred), sample_weight)

    def result(self, state):
        """The metric's value from a (merged) state."""
        if self.from_state is not None:
            return self.from_state(state)
        return self.finalize(_divide_no_nan(state["total"], state["count"]))

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The metric over one batch (or a whole data set given at once)."""
        return self.result(self.state(y_true, y_pred, sample_weight))


def _mean_metric(fn, name, finalize=_identity, **options) -> Metric:
    fn = functools.partial(fn, **options) if options else fn

    def per_example(y_true, y_pred):
        return _losses.per_example_mean(fn(y_true, y_pred))

    per_example_all = _losses.over_outputs(per_example, average=True)

    def batch_state(y_true, y_pred, sample_weight):
        trues, preds = _losses.output_leaves(y_true), _losses.output_leaves(y_pred)
        if len(trues) == 1 and len(preds) == 1:  # Keras's values, so per-step weights apply per step
            return mean_state(fn(trues[0], preds[0]), sample_weight)
        return mean_state(per_example_all(y_true, y_pred), sample_weight)

    return Metric(name, per_example_all, finalize, batch_state)


def _ratio_only(name):
    def per_example(y_true, y_pred):
        raise TypeError(f"metric {name!r} is a ratio of counts over the whole data set, not a mean of "
                        "per-example values: use its state(y_true, y_pred, sample_weight), "
                        "fnnet.metrics.merge_states and result(state)")

    return per_example


def _single_output(y_true, y_pred, name):
    trues, preds = _losses.output_leaves(y_true), _losses.output_leaves(y_pred)
    if len(trues) != 1 or len(preds) != 1:
        raise ValueError(f"{name} takes one output, got {len(preds)} outputs and {len(trues)} targets; "
                         "give one metric per output")
    return _float(trues[0]), _float(preds[0])


# --------------------------------------------------------------------------- confusion counts

NEG_INF = -1e10  # Keras's threshold when only the top-k scores count


def _confusion_inputs(y_true, y_pred, sample_weight, name):
    y_true, y_pred = _single_output(y_true, y_pred, name)
    y_pred, y_true = _losses.same_rank(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name}: y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    if sample_weight is None:
        weight = jnp.ones_like(y_pred)
    else:
        weight = jnp.asarray(sample_weight, y_pred.dtype)[..., None]
        if weight.ndim == y_true.ndim + 1:
            weight = weight[..., 0]
        weight = jnp.broadcast_to(weight.reshape(weight.shape + (1,) * (y_pred.ndim - weight.ndim)), y_pred.shape)
    return y_true, y_pred, weight


def confusion_counts(y_true, y_pred, thresholds, sample_weight=None, evenly_spaced=False, per_label=False) -> dict:
    """Weighted true/false positive/negative counts at each threshold (a prediction above a threshold
    is positive; a nonzero target is positive), every output value counting as one decision, or,
    ``per_label``, counted separately for each label (last axis): arrays ``(thresholds, labels)``.

    ``evenly_spaced`` thresholds (Keras's AUC grid, first below 0 and last above 1) are counted
    by bucketing the predictions clipped to [0, 1], as Keras does, in one pass.

    >>> import fnnet, jax.numpy as jnp
    >>> c = fnnet.metrics.confusion_counts(jnp.array([1, 0, 1]), jnp.array([0.9, 0.6, 0.2]), [0.5])
    >>> {k: v.tolist() for k, v in c.items()}
    {'true_positives': [1.0], 'false_positives': [1.0], 'true_negatives': [0.0], 'false_negatives': [1.0]}
    """
    y_true, y_pred = _float(y_true), _float(y_pred)
    weight = jnp.ones_like(y_pred) if sample_weight is None else jnp.broadcast_to(sample_weight, y_pred.shape)
    flat = (-1, y_pred.shape[-1]) if per_label else (-1,)
    positive = (y_true != 0).reshape(flat).astype(jnp.float32)
    weight = weight.reshape(flat).astype(jnp.float32)
    pred = y_pred.reshape(flat).astype(jnp.float32)
    n = len(thresholds)
    if evenly_spaced:
        # Prediction p lands in bucket ceil(p * (n - 1)) - 1 (at least 0) and counts as positive at
        # every threshold up to its bucket: a reversed cumulative sum of bucket totals.
        bucket = jnp.maximum(jnp.ceil(jnp.clip(pred, 0.0, 1.0) * (n - 1)) - 1, 0).astype(jnp.int32)

        def above(w, b):
            return jnp.cumsum(jax.ops.segment_sum(w, b, num_segments=n)[::-1])[::-1]

        if per_label:
            above = jax.vmap(above, in_axes=(1, 1), out_axes=1)
        tp, fp = above(positive * weight, bucket), above((1.0 - positive) * weight, bucket)
    else:
        levels = jnp.asarray(thresholds, jnp.float32).reshape((n,) + (1,) * pred.ndim)
        predicted = pred[None] > levels
        tp = jnp.sum(jnp.where(predicted, positive * weight, 0.0), axis=1)
        fp = jnp.sum(jnp.where(predicted, (1.0 - positive) * weight, 0.0), axis=1)
    return {"true_positives": tp, "false_positives": fp,
            "true_negatives": jnp.sum((1.0 - positive) * weight, axis=0) - fp,
            "false_negatives": jnp.sum(positive * weight, axis=0) - tp}


def _thresholds_list(thresholds, default):
    values = [default] if thresholds is None else list(np.atleast_1d(np.asarray(thresholds, np.float64)))
    if thresholds is not None and any(not 0.0 <= t <= 1.0 for t in values):
        raise ValueError(f"thresholds must lie in [0, 1], got {thresholds!r}")
    return [float(t) for t in values]


def _keep_top_k(y_pred, k):
    top = jax.lax.top_k(y_pred, k)[1]
    kept = jnp.sum(jax.nn.one_hot(top, y_pred.shape[-1], dtype=y_pred.dtype), axis=-2)
    return y_pred * kept + NEG_INF * (1.0 - kept)


def _counts_metric(name, keys, value, thresholds, top_k, class_id) -> Metric:
    levels = _thresholds_list(thresholds, 0.5 if top_k is None else NEG_INF)

    def batch_state(y_true, y_pred, sample_weight):
        y_true, y_pred, weight = _confusion_inputs(y_true, y_pred, sample_weight, name)
        if top_k is not None:
            y_pred = _keep_top_k(y_pred, top_k)
        if class_id is not None:
            if y_pred.ndim < 2:
                raise ValueError(f"{name}: class_id needs predictions of shape (batch, classes), got {y_pred.shape}")
            y_true, y_pred, weight = y_true[..., class_id], y_pred[..., class_id], weight[..., class_id]
        counts = confusion_counts(y_true, y_pred, levels, weight)
        return {k: counts[k] for k in keys}

    def from_state(state):
        result = value(state)
        return result[0] if len(levels) == 1 else result

    return Metric(name, _ratio_only(name), _identity, batch_state, from_state)


def Precision(thresholds=None, top_k=None, class_id=None, name="precision") -> Metric:
    """Keras's ``Precision``: weighted TP / (TP + FP) at ``thresholds`` (default 0.5; a list gives one
    value per threshold), over the ``top_k`` scores or one ``class_id`` if given.

    >>> import fnnet, jax.numpy as jnp
    >>> float(fnnet.metrics.Precision()(jnp.array([1, 0, 1, 1]), jnp.array([0.9, 0.6, 0.2, 0.7])))
    0.6666666865348816
    """
    return _counts_metric(name, ("true_positives", "false_positives"),
                          lambda s: _divide_no_nan(s["true_positives"], s["true_positives"] + s["false_positives"]),
                          thresholds, top_k, class_id)


def Recall(thresholds=None, top_k=None, class_id=None, name="recall") -> Metric:
    """Keras's ``Recall``: weighted TP / (TP + FN) at ``thresholds`` (default 0.5).

    >>> import fnnet, jax.numpy as jnp
    >>> float(fnnet.metrics.Recall()(jnp.array([1, 0, 1, 1]), jnp.array([0.9, 0.6, 0.2, 0.7])))
    0.6666666865348816
    """
    return _counts_metric(name, ("true_positives", "false_negatives"),
                          lambda s: _divide_no_nan(s["true_positives"], s["true_positives"] + s["false_negatives"]),
                          thresholds, top_k, class_id)


def _auc_thresholds(num_thresholds, thresholds):
    if thresholds is not None:
        inner = sorted(float(t) for t in np.atleast_1d(thresholds))
        even = len(inner) + 2 >= 3 and np.allclose(
            [0.0] + inner + [1.0], np.arange(len(inner) + 2) / (len(inner) + 1), atol=_losses.EPSILON)
    else:
        if not isinstance(num_thresholds, int) or num_thresholds <= 1:
            raise ValueError(f"AUC num_thresholds must be an integer > 1, got {num_thresholds!r}")
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        even = True
    return [0.0 - _losses.EPSILON] + inner + [1.0 + _losses.EPSILON], even


def _pr_auc_interpolated(s):
    # Davis & Goadrich (2006): precision interpolated between thresholds, as Keras's interpolate_pr_auc.
    tp, fp, fn = s["true_positives"], s["false_positives"], s["false_negatives"]
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    slope = _divide_no_nan(dtp, jnp.maximum(dp, 0.0))
    intercept = tp[1:] - slope * p[1:]
    ratio = jnp.where((p[:-1] > 0) & (p[1:] > 0), _divide_no_nan(p[:-1], jnp.maximum(p[1:], 0.0)),
                      jnp.ones_like(p[1:]))
    increments = _divide_no_nan(slope * (dtp + intercept * jnp.log(ratio)), jnp.maximum(tp[1:] + fn[1:], 0.0))
    return jnp.sum(increments, axis=0)  # per label when the counts are per label


def AUC(num_thresholds=200, curve="ROC", summation_method="interpolation", name="auc", thresholds=None,
        multi_label=False, num_labels=None, label_weights=None, from_logits=False) -> Metric:
    """Keras's ``AUC``: the area under the ROC (or ``curve='PR'``) curve from confusion counts at
    ``num_thresholds`` evenly spaced thresholds (Keras's 200 by default), summed by Riemann
    ``summation_method`` ``'interpolation'`` (trapezoids; for PR, Davis & Goadrich),
    ``'minoring'`` or ``'majoring'``. The counts add up over batches, so the value over a data
    set in batches is the value over the whole set. ``from_logits`` applies a sigmoid first.
    ``multi_label``: one curve per label (last axis), their AUCs averaged (weighted by
    ``label_weights`` if given); otherwise every value is one decision, ``label_weights``
    weighting each label's values. ``num_labels`` is accepted for Keras compatibility.

    >>> import fnnet, jax.numpy as jnp
    >>> round(float(fnnet.metrics.AUC()(jnp.array([0, 0, 1, 1]), jnp.array([0.1, 0.4, 0.35, 0.8]))), 4)
    0.75
    """
    curve_key = str(curve).upper()
    method = str(summation_method).lower()
    if curve_key not in ("ROC", "PR"):
        raise ValueError(f"AUC curve must be 'ROC' or 'PR', got {curve!r}")
    if method not in ("interpolation", "minoring", "majoring"):
        raise ValueError(f"AUC summation_method must be 'interpolation', 'minoring' or 'majoring', "
                         f"got {summation_method!r}")
    levels, even = _auc_thresholds(num_thresholds, thresholds)
    label_weights = None if label_weights is None else jnp.asarray(label_weights, jnp.float32)

    def batch_state(y_true, y_pred, sample_weight):
        y_true, y_pred, weight = _confusion_inputs(y_true, y_pred, sample_weight, name)
        if multi_label and y_pred.ndim != 2:
            raise ValueError(f"{name}: multi_label needs y_pred of shape (batch, labels), got {y_pred.shape}")
        if from_logits:
            y_pred = jax.nn.sigmoid(y_pred)
        if label_weights is not None and not multi_label:
            weight = weight * label_weights
        return confusion_counts(y_true, y_pred, levels, weight, evenly_spaced=even, per_label=multi_label)

    def over_labels(by_label):
        if label_weights is None:
            return jnp.mean(by_label)
        return _divide_no_nan(jnp.sum(by_label * label_weights), jnp.sum(label_weights))

    def from_state(s):
        value = _curve_area(s)
        return over_labels(value) if multi_label else value

    def _curve_area(s):
        if curve_key == "PR" and method == "interpolation":
            return _pr_auc_interpolated(s)
        tp, fp, tn, fn = s["true_positives"], s["false_positives"], s["true_negatives"], s["false_negatives"]
        recall = _divide_no_nan(tp, tp + fn)
        if curve_key == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif method == "minoring":
            heights = jnp.minimum(y[:-1], y[1:])
        else:
            heights = jnp.maximum(y[:-1], y[1:])
        return jnp.sum((x[:-1] - x[1:]) * heights, axis=0)

    return Metric(name, _ratio_only(name), _identity, batch_state, from_state)


def R2Score(class_aggregation="uniform_average", num_regressors=0, name="r2_score") -> Metric:
    """Keras's ``R2Score``: 1 - Σ w·(y - ŷ)² / Σ w·(y - ȳ)² per output over the whole data set,
    averaged over outputs (``'uniform_average'``), weighted by their variance
    (``'variance_weighted_average'``) or per output (``None``); ``num_regressors`` > 0 gives
    the adjusted R². Inputs are ``(batch, outputs)``.

    >>> import fnnet, jax.numpy as jnp
    >>> float(fnnet.metrics.R2Score()(jnp.array([[1.0], [2.0], [3.0]]), jnp.array([[1.0], [2.0], [4.0]])))
    0.5
    """
    if class_aggregation not in (None, "uniform_average", "variance_weighted_average"):
        raise ValueError(f"R2Score class_aggregation must be None, 'uniform_average' or "
                         f"'variance_weighted_average', got {class_aggregation!r}")
    if num_regressors < 0:
        raise ValueError(f"R2Score num_regressors must be >= 0, got {num_regressors!r}")

    def batch_state(y_true, y_pred, sample_weight):
        y_true, y_pred = _single_output(y_true, y_pred, name)
        y_true, y_pred = _losses.same_rank(y_true, y_pred)
        if y_true.ndim != 2 or y_pred.ndim != 2:
            raise ValueError(f"{name} expects inputs of shape (batch, outputs), got y_true {y_true.shape} "
                             f"and y_pred {y_pred.shape}")
        weight = jnp.ones(()) if sample_weight is None else jnp.asarray(sample_weight, jnp.float32)
        if weight.ndim == 1:
            weight = weight[:, None]
        weight = jnp.broadcast_to(weight, y_true.shape).astype(jnp.float32)
        y_true, y_pred = y_true.astype(jnp.float32), y_pred.astype(jnp.float32)
        return {"sum": jnp.sum(weight * y_true, axis=0), "squared_sum": jnp.sum(weight * y_true * y_true, axis=0),
                "residual": jnp.sum(weight * jnp.square(y_true - y_pred), axis=0),
                "count": jnp.sum(weight, axis=0), "num_samples": jnp.asarray(y_true.size, jnp.float32)}

    def from_state(s):
        mean = s["sum"] / s["count"]
        total = s["squared_sum"] - s["sum"] * mean
        raw = 1.0 - s["residual"] / total
        raw = jnp.where(jnp.isinf(raw), 0.0, raw)
        if class_aggregation == "uniform_average":
            score = jnp.mean(raw)
        elif class_aggregation == "variance_weighted_average":
            score = jnp.sum(total * raw) / jnp.sum(total)
        else:
            score = raw
        if num_regressors:
            n = s["num_samples"]
            adjusted = 1.0 - (1.0 - score) * (n - 1.0) / (n - num_regressors - 1.0)
            # Keras falls back to the plain score when there are too few samples for the adjustment.
            score = jnp.where(num_regressors < n - 1, adjusted, score)
        return score

    return Metric(name, _ratio_only(name), _identity, batch_state, from_state)


# --------------------------------------------------------------------------- Keras-style classes of mean metrics


def MeanSquaredError(name="mean_squared_error") -> Metric:
    """Keras's ``MeanSquaredError`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.MeanSquaredError()([[0.0], [0.0]], [[1.0], [3.0]], sample_weight=[1.0, 3.0]))
    7.0
    """
    return _mean_metric(_losses.mean_squared_error, name)


def RootMeanSquaredError(name="root_mean_squared_error") -> Metric:
    """Keras's ``RootMeanSquaredError``: the root of the data set's (weighted) mean squared error.

    >>> import fnnet
    >>> float(fnnet.metrics.RootMeanSquaredError()([[0.0], [0.0]], [[1.0], [3.0]], sample_weight=[1.0, 3.0]))
    2.6457512378692627
    """
    return _mean_metric(_losses.mean_squared_error, name, jnp.sqrt)


def MeanAbsoluteError(name="mean_absolute_error") -> Metric:
    """Keras's ``MeanAbsoluteError`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.MeanAbsoluteError()([[0.0], [0.0]], [[1.0], [3.0]]))
    2.0
    """
    return _mean_metric(_losses.mean_absolute_error, name)


def MeanAbsolutePercentageError(name="mean_absolute_percentage_error") -> Metric:
    """Keras's ``MeanAbsolutePercentageError`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.MeanAbsolutePercentageError()([[2.0], [4.0]], [[1.0], [4.0]]))
    25.0
    """
    return _mean_metric(_losses.mean_absolute_percentage_error, name)


def MeanSquaredLogarithmicError(name="mean_squared_logarithmic_error") -> Metric:
    """Keras's ``MeanSquaredLogarithmicError`` metric.

    >>> import fnnet
    >>> round(float(fnnet.metrics.MeanSquaredLogarithmicError()([[0.0]], [[1.0]])), 4)
    0.4805
    """
    return _mean_metric(_losses.mean_squared_logarithmic_error, name)


def CosineSimilarity(name="cosine_similarity", axis=-1) -> Metric:
    """Keras's ``CosineSimilarity`` metric (1 is best).

    >>> import fnnet
    >>> float(fnnet.metrics.CosineSimilarity()([[1.0, 0.0], [1.0, 0.0]], [[2.0, 0.0], [0.0, 1.0]]))
    0.5
    """
    return _mean_metric(cosine_similarity, name, axis=axis)


def LogCoshError(name="logcosh") -> Metric:
    """Keras's ``LogCoshError`` metric (its default name is ``'logcosh'``).

    >>> import fnnet
    >>> round(float(fnnet.metrics.LogCoshError()([[0.0]], [[1.0]])), 4)
    0.4338
    """
    return _mean_metric(_losses.log_cosh, name)


def KLDivergence(name="kl_divergence") -> Metric:
    """Keras's ``KLDivergence`` metric.

    >>> import fnnet
    >>> round(float(fnnet.metrics.KLDivergence()([[0.5, 0.5]], [[0.25, 0.75]])), 4)
    0.1438
    """
    return _mean_metric(_losses.kl_divergence, name)


def Poisson(name="poisson") -> Metric:
    """Keras's ``Poisson`` metric.

    >>> import fnnet
    >>> round(float(fnnet.metrics.Poisson()([[1.0]], [[2.0]])), 4)
    1.3069
    """
    return _mean_metric(_losses.poisson, name)


def BinaryCrossentropy(name="binary_crossentropy", from_logits=False, label_smoothing=0) -> Metric:
    """Keras's ``BinaryCrossentropy`` metric.

    >>> import fnnet
    >>> round(float(fnnet.metrics.BinaryCrossentropy(from_logits=True)([[1.0]], [[0.0]])), 4)
    0.6931
    """
    return _mean_metric(_losses.binary_crossentropy, name, from_logits=from_logits, label_smoothing=label_smoothing)


def CategoricalCrossentropy(name="categorical_crossentropy", from_logits=False, label_smoothing=0, axis=-1) -> Metric:
    """Keras's ``CategoricalCrossentropy`` metric.

    >>> import fnnet
    >>> round(float(fnnet.metrics.CategoricalCrossentropy()([[0.0, 1.0]], [[0.25, 0.75]])), 4)
    0.2877
    """
    return _mean_metric(_losses.categorical_crossentropy, name, from_logits=from_logits,
                        label_smoothing=label_smoothing, axis=axis)


def SparseCategoricalCrossentropy(name="sparse_categorical_crossentropy", from_logits=False, axis=-1) -> Metric:
    """Keras's ``SparseCategoricalCrossentropy`` metric.

    >>> import fnnet
    >>> round(float(fnnet.metrics.SparseCategoricalCrossentropy()([1], [[0.25, 0.75]])), 4)
    0.2877
    """
    return _mean_metric(_losses.sparse_categorical_crossentropy, name, from_logits=from_logits, axis=axis)


def Hinge(name="hinge") -> Metric:
    """Keras's ``Hinge`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.Hinge()([[1.0], [0.0]], [[0.5], [0.5]]))
    1.0
    """
    return _mean_metric(_losses.hinge, name)


def SquaredHinge(name="squared_hinge") -> Metric:
    """Keras's ``SquaredHinge`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.SquaredHinge()([[1.0], [0.0]], [[0.5], [0.5]]))
    1.25
    """
    return _mean_metric(_losses.squared_hinge, name)


def CategoricalHinge(name="categorical_hinge") -> Metric:
    """Keras's ``CategoricalHinge`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.CategoricalHinge()([[0.0, 1.0]], [[0.25, 0.75]]))
    0.5
    """
    return _mean_metric(_losses.categorical_hinge, name)


def BinaryAccuracy(name="binary_accuracy", threshold=0.5) -> Metric:
    """Keras's ``BinaryAccuracy`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.BinaryAccuracy(threshold=0.7)([[1.0], [0.0]], [[0.6], [0.2]]))
    0.5
    """
    return _mean_metric(binary_accuracy, name, threshold=threshold)


def CategoricalAccuracy(name="categorical_accuracy") -> Metric:
    """Keras's ``CategoricalAccuracy`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.CategoricalAccuracy()([[0.0, 1.0]], [[0.25, 0.75]]))
    1.0
    """
    return _mean_metric(categorical_accuracy, name)


def SparseCategoricalAccuracy(name="sparse_categorical_accuracy") -> Metric:
    """Keras's ``SparseCategoricalAccuracy`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.SparseCategoricalAccuracy()([0], [[0.25, 0.75]]))
    0.0
    """
    return _mean_metric(sparse_categorical_accuracy, name)


def TopKCategoricalAccuracy(k=5, name="top_k_categorical_accuracy") -> Metric:
    """Keras's ``TopKCategoricalAccuracy`` metric (the target among the ``k`` best scores).

    >>> import fnnet
    >>> float(fnnet.metrics.TopKCategoricalAccuracy(k=1)([[0.0, 1.0], [1.0, 0.0]], [[0.25, 0.75], [0.4, 0.6]]))
    0.5
    """
    return _mean_metric(top_k_categorical_accuracy, name, k=k)


def SparseTopKCategoricalAccuracy(k=5, name="sparse_top_k_categorical_accuracy") -> Metric:
    """Keras's ``SparseTopKCategoricalAccuracy`` metric.

    >>> import fnnet
    >>> float(fnnet.metrics.SparseTopKCategoricalAccuracy(k=1)([1, 0], [[0.25, 0.75], [0.4, 0.6]]))
    0.5
    """
    return _mean_metric(sparse_top_k_categorical_accuracy, name, k=k)


# --------------------------------------------------------------------------- names

# Keras's string names -> a factory of the metric with Keras's defaults.
_BY_NAME: dict[str, Callable[[], Metric]] = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "rmse": RootMeanSquaredError, "root_mean_squared_error": RootMeanSquaredError,
    "mape": MeanAbsolutePercentageError, "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "cosine_similarity": CosineSimilarity,
    "log_cosh_error": LogCoshError, "logcosh": LogCoshError, "log_cosh": LogCoshError,
    "r2_score": R2Score,
    "kl_divergence": KLDivergence, "kld": KLDivergence, "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "hinge": Hinge, "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "precision": Precision, "recall": Recall, "auc": AUC,
}
METRIC_CLASSES: dict[str, Callable[..., Metric]] = {f.__name__: f for f in set(_BY_NAME.values())}
METRIC_NAMES = tuple(sorted(list(_BY_NAME) + ["accuracy", "acc"]))


def get_metric(metric, loss=None) -> Metric:
    """Resolve a metric given by Keras name, Keras class name, :class:`Metric` or callable
    ``(y_true, y_pred) -> scalar``.

    The history key is the name as given (``'mae'``, ``'accuracy'``, ``'AUC'``) or the
    callable's ``__name__``. ``loss`` (name or :class:`fnnet.losses.Loss`) tells
    ``'accuracy'`` whether binary outputs are logits. A callable must be a mean over its
    batch; it is applied one example at a time (see :func:`fnnet.losses.per_example`). For
    a model with several outputs, a named mean metric is averaged over them (Keras reports
    one per output; pass one callable per output for that).

    >>> import fnnet, jax.numpy as jnp
    >>> acc = fnnet.get_metric('accuracy', loss='binary_crossentropy_from_logits')
    >>> acc.name, float(acc(jnp.array([1.0, 0.0]), jnp.array([[0.3], [-0.2]])))
    ('accuracy', 1.0)
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        key = metric.lower()
        if key in ("accuracy", "acc"):
            from_logits = loss is not None and _losses.get_loss(loss).from_logits
            return _mean_metric(accuracy, metric, from_logits=from_logits)
        factory = METRIC_CLASSES.get(metric) or _BY_NAME.get(key)
        if factory is None:
            raise ValueError(f"unknown metric {metric!r}; known names: {', '.join(METRIC_NAMES)} "
                             f"(or a class name: {', '.join(sorted(METRIC_CLASSES))})")
        return factory(name=metric)
    if callable(metric):
        return Metric(_losses.name_of(metric), _losses.per_example(metric))
    raise TypeError(f"metric must be a Keras metric name or a callable (y_true, y_pred) -> scalar, got {metric!r}")


def get_metrics(metrics, loss=None) -> tuple:
    """Resolve a sequence of metrics; history keys must be unique.

    >>> import fnnet
    >>> [m.name for m in fnnet.metrics.get_metrics(['mae', 'rmse'])]
    ['mae', 'rmse']
    """
    if isinstance(metrics, (str, Metric)) or callable(metrics):
        metrics = [metrics]
    resolved = tuple(get_metric(m, loss) for m in metrics)
    names = [m.name for m in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"metric names must be unique (they are history keys), got {duplicates} more than once")
    reserved = [n for n in names if n == "loss" or n.startswith("val_")]
    if reserved:
        raise ValueError(f"metric names {reserved} clash with history keys ('loss', 'val_*'); rename them")
    return resolved

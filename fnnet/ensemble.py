"""Train n copies of a model with different initial weights as one jitted program.

``Ensemble(model, n)`` is a layer whose params are the members' params stacked on a new
leading axis: ``init`` maps the member's ``init`` over ``n`` split keys with ``jax.vmap``,
and ``apply`` maps the member over the stacked params, so the ``n`` forward and backward
passes become one batched computation instead of ``n`` Python-level trainings.

Its output keeps the batch axis first and puts the members second, ``(batch, n, ...)``.
Train it with :func:`ensemble_loss`, the mean of the members' own losses: member ``i``'s
gradient is ``1/n`` of the gradient of its own loss and nothing from the others, so the
members learn independently. Predict with ``Ensemble(model, n, reduce='mean')``, which takes
the same params and averages the members; :func:`ensemble_metric` scores that average
during training (e.g. to stop early on it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .core import Layer, as_layer, registered, shape_str
from .training.losses import Loss, get_loss
from .training.metrics import Metric, get_metric

_REDUCTIONS = (None, "mean")


def _check_single_output(shape):
    if not (isinstance(shape, tuple) and len(shape) >= 1 and all(isinstance(d, int) for d in shape)):
        raise ValueError(f"members must return one array with a batch axis, got output "
                                 f"shape {shape_str(shape) if isinstance(shape, tuple) else shape}")


@registered("Ensemble")
def Ensemble(layer, n, *, reduce=None):
    """``n`` independently initialised copies of ``layer``, run side by side with ``jax.vmap``.

    Args:
      layer: the member model (any fnnet layer or stax pair).
      n: the number of members.
      reduce: ``None`` returns every member's output, stacked as ``(batch, n, ...)``;
        ``'mean'`` returns their average, shaped like one member's output.

    Params (and state) are the member's, with a leading axis of size ``n``; member ``i`` is
    initialised with ``jax.random.split(rng, n)[i]``, and in training gets its own slice of
    the ``rng`` (so dropout masks differ between members). Both ``reduce`` settings use the
    same params: train with ``reduce=None`` and :func:`ensemble_loss`, predict with
    ``reduce='mean'``.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> mlp = fnnet.serial(fnnet.Dense(8), fnnet.Relu, fnnet.Dense(1))
    >>> shape, params = fnnet.Ensemble(mlp, 3).init(jax.random.PRNGKey(0), (-1, 4))
    >>> shape, params['dense']['kernel'].shape
    ((-1, 3, 1), (3, 4, 8))
    >>> fnnet.Ensemble(mlp, 3, reduce='mean').apply(params, jnp.ones((5, 4))).shape
    (5, 1)
    """
    member = as_layer(layer)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"Ensemble needs a positive whole number of members, got n={n!r}")
    if reduce not in _REDUCTIONS:
        raise ValueError(f"Ensemble reduce must be one of {_REDUCTIONS}, got {reduce!r}")

    def init_with_state(rng, input_shape):
        shapes = []

        def init_member(key):
            shape, params, state = member.init_with_state(key, input_shape)
            shapes.append(shape)  # traced once: every member has the same shapes
            return params, state

        params, state = jax.vmap(init_member)(jax.random.split(rng, n))
        out_shape = shapes[0]
        _check_single_output(out_shape)
        if reduce is None:
            out_shape = out_shape[:1] + (n,) + out_shape[1:]
        return out_shape, params, state

    def call(params, state, x, *, mask, rng, **kwargs):
        rngs = None if rng is None else jax.random.split(rng, n)

        def run_member(member_params, member_state, member_rng):
            return member.call(member_params, member_state, x, mask=mask, rng=member_rng, **kwargs)

        ys, new_state, masks = jax.vmap(run_member, in_axes=(0, 0, None if rngs is None else 0),
                                        out_axes=(1, 0, 0), axis_size=n)(params, state, rngs)
        # Members share the input, so they agree on the mask they pass on: keep the first's.
        mask = jax.tree_util.tree_map(lambda m: m[0], masks)
        if reduce == "mean":
            ys = jnp.mean(ys, axis=1)
        return ys, new_state, mask

    # The members' params are this layer's own (stacked): the child's key is None.
    return Layer(init_with_state, call, name="Ensemble", children=((None, member),))


def ensemble_loss(loss="mse") -> Loss:
    """The mean of an ensemble's member losses, from a loss for one model (a name or callable).

    ``y_pred`` is an :func:`Ensemble`'s output ``(batch, n, ...)``; each member's slice
    ``y_pred[:, i]`` is scored against the same ``y_true`` with ``loss`` (resolved by
    :func:`fnnet.get_loss`), and the ``n`` values of each example averaged. Because the
    mean is a sum of separate terms, no member's gradient depends on another's params.
    The result is a :class:`fnnet.losses.Loss`, so ``fnnet.fit`` takes it as ``loss=``.

    >>> import jax.numpy as jnp
    >>> y_true = jnp.zeros((2, 1))
    >>> y_pred = jnp.stack([jnp.ones((2, 1)), 3 * jnp.ones((2, 1))], axis=1)   # two members
    >>> loss = ensemble_loss('mse')
    >>> loss.name, loss.per_example(y_true, y_pred).tolist()   # (1 + 9) / 2 per example
    ('ensemble_mean_squared_error', [5.0, 5.0])
    """
    member_loss = get_loss(loss)

    def per_example(y_true, y_pred):
        if jnp.ndim(y_pred) < 2:
            raise ValueError(f"ensemble_loss expects predictions shaped (batch, members, ...), "
                             f"got shape {tuple(jnp.shape(y_pred))}")
        per_member = jax.vmap(lambda pred: member_loss.per_example(y_true, pred), in_axes=1)(y_pred)
        return jnp.mean(per_member, axis=0)

    return Loss(f"ensemble_{member_loss.name}", per_example, member_loss.from_logits)


def ensemble_metric(metric="mse") -> Metric:
    """A metric of the ensemble's averaged prediction, for ``fit(metrics=...)`` on an :func:`Ensemble`.

    ``y_pred`` is the members' outputs ``(batch, n, ...)``; ``metric`` (a name or callable,
    resolved by :func:`fnnet.get_metric`) scores their mean, which is what the ensemble
    predicts. Its history key is ``ensemble_<name>`` (``val_ensemble_<name>`` on validation
    data), so ``EarlyStopping(monitor='val_ensemble_rmse')`` stops on the ensemble's own
    score rather than the members' average.

    >>> import jax.numpy as jnp
    >>> y_true = jnp.zeros((2, 1))
    >>> y_pred = jnp.stack([jnp.ones((2, 1)), -3 * jnp.ones((2, 1))], axis=1)   # mean -1
    >>> metric = ensemble_metric('mae')
    >>> metric.name, float(metric(y_true, y_pred))
    ('ensemble_mae', 1.0)
    """
    resolved = get_metric(metric)

    def averaged(y_pred):
        if jnp.ndim(y_pred) < 2:
            raise ValueError(f"ensemble_metric expects predictions shaped (batch, members, ...), "
                             f"got shape {tuple(jnp.shape(y_pred))}")
        return jnp.mean(y_pred, axis=1)

    def per_example(y_true, y_pred):
        return resolved.per_example(y_true, averaged(y_pred))

    def batch_state(y_true, y_pred, sample_weight):
        return resolved.state(y_true, averaged(y_pred), sample_weight)

    # The state form too, so that count-based metrics (AUC, precision) score the ensemble's mean.
    return Metric(f"ensemble_{resolved.name}", per_example, resolved.finalize, batch_state, resolved.from_state)


def member_params(params, i):
    """Member ``i``'s params (or state) out of an :func:`Ensemble`'s stacked pytree.

    >>> import fnnet, jax
    >>> _, params = fnnet.Ensemble(fnnet.Dense(2), 3).init(jax.random.PRNGKey(0), (-1, 4))
    >>> fnnet.member_params(params, 1)['kernel'].shape
    (4, 2)
    """
    return jax.tree_util.tree_map(lambda leaf: leaf[i], params)

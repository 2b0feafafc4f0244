"""The jitted pieces of training: one train step, an epoch (or a chunk of it) as a
``lax.scan`` over steps, and padded evaluation and prediction batches.

Everything here is pure; :mod:`fnnet.training.loop` drives it. A :class:`Program` holds
the compiled functions for one (model, loss, metrics, optimizer, mesh) combination and
is kept on the model (``model.memo``), so fitting the same model again (cross-validation
folds, benchmarks) does not compile again, and the compiled programs go with the model.

Exactness, as Keras reports it: a step's loss is the :class:`~fnnet.losses.Loss` with its
``reduction`` and the batch's ``sample_weight`` (default ``'sum_over_batch_size'``:
Σ w·l / N); the epoch's loss is the mean of the batch losses weighted by batch size (Keras's
loss tracker), so the last partial batch (run as its own step with its true size, never
padded: BatchNorm must not see padding rows) weighs exactly its share. Metrics are carried
as mergeable states (:meth:`fnnet.metrics.Metric.state`, summed with
:func:`fnnet.metrics.merge_states`, fixed shapes, so they ride in the ``lax.scan`` carry),
turned into values once per epoch: AUC, precision, recall or R² over an epoch are those of
all its examples at once. As in Keras, ``metrics`` ignore ``sample_weight``. Evaluation pads
its last batch; padded rows have weight 0 and are left out of the loss's reduction.

Non-finite guard: the first step of an epoch whose loss is not finite is recorded (its
index and loss, two scalars in the carry), and a flag records whether any batch's ``x`` or
``y`` held a non-finite float (data that slipped past the host check); the loop reads both
once per epoch, so there is no host sync per step. The first jitted call of each epoch does not donate its
input, which therefore stays valid: on a bad step the loop replays the epoch from it up
to that step to recover the last finite params exactly, at no cost to healthy epochs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..core import as_layer
from . import sharding
from .losses import Loss, get_loss
from .metrics import Metric, get_metrics, merge_states
from .optimizers import freeze, get_optimizer


class Carry(NamedTuple):
    """What the train steps thread through an epoch (donated between jitted calls).

    ``stats`` is one float32 vector, so that the loop reads an epoch's results with one
    transfer: for each loss key (``Program.loss_keys``) the sum of batch loss × batch size,
    the number of examples, then the first step whose loss was not finite (-1 if none),
    that loss, and 1 if any batch's ``x`` or ``y`` held a non-finite float (else 0).
    ``metric_states``: one mergeable state per metric (``Program.metrics``).
    """

    params: object
    opt_state: object
    state: object
    stats: jax.Array
    metric_states: tuple
    step: jax.Array    # steps run this epoch


class EpochStats(NamedTuple):
    """An epoch's ``Carry.stats`` read on the host."""

    totals: dict
    count: float
    bad_step: int
    bad_loss: float
    bad_data: bool = False   # some batch's x or y held NaN or inf


class EpochData(NamedTuple):
    """The training data on device, the key every epoch's randomness derives from, and the
    per-example ``weight`` (sample and class weights; None: every example weighs 1)."""

    x: object
    y: object
    key: jax.Array
    weight: object = None


class LossTerm(NamedTuple):
    """One loss of the objective: its history ``key``, the :class:`~fnnet.losses.Loss`, its
    weight in the total, and ``select(y_true, y_pred) -> (y_true, y_pred)`` picking its output
    (None: the whole outputs)."""

    key: str
    loss: Loss
    weight: float = 1.0
    select: object = None


def _rows(tree, index):
    return jax.tree_util.tree_map(lambda a: a[index], tree)


def _holds_non_finite(tree):
    """A device bool: whether any floating leaf of ``tree`` holds NaN or inf (integer leaves cannot)."""
    flags = [~jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)
             if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
    return jnp.any(jnp.stack(flags)) if flags else jnp.asarray(False)


def _abstract(tree):
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), tree)


def epoch_keys(key, epoch):
    """``(shuffle_key, step_key)`` of an epoch: a pure function of the seed and the epoch number."""
    return jax.random.split(jax.random.fold_in(key, epoch))


def loss_of_rows(loss, y_true, y_pred, sample_weight=None, keep=None):
    """``loss(y_true, y_pred, sample_weight)`` over the rows where ``keep`` is True only, as
    if the batch held just those rows (padded evaluation rows are left out of the reduction;
    ``keep=None``: every row, exactly ``loss(...)``).

    >>> import fnnet, jax.numpy as jnp
    >>> mae = fnnet.get_loss('mae')
    >>> float(loss_of_rows(mae, jnp.zeros(3), jnp.array([1.0, 3.0, 100.0]), keep=jnp.array([True, True, False])))
    2.0
    """
    return loss(y_true, y_pred, sample_weight, rows=keep)


class Program:
    """The compiled functions of one training configuration (see :func:`program`)."""

    def __init__(self, model, loss, metrics, optimizer, frozen, mesh, loss_weights=None, weighted_metrics=()):
        self.model = as_layer(model)
        self.terms, plain = objective(self.model, loss, metrics, loss_weights)
        weighted = objective(self.model, loss, weighted_metrics, loss_weights)[1] if weighted_metrics else ()
        self.metrics = get_metrics(plain + _keras_weighted_names(weighted, {m.name for m in plain}, self.model))
        self.weighted = (False,) * len(plain) + (True,) * len(weighted)
        # One output (or the outputs as a whole): 'loss'; several: 'loss', then each output's.
        self.single = len(self.terms) == 1 and self.terms[0].key == "loss"
        self.loss_keys = ("loss",) if self.single else ("loss",) + tuple(t.key for t in self.terms)
        tx = get_optimizer(optimizer)
        if frozen:
            tx = freeze(tx, None, frozen)
        self.optimizer = tx
        self.mesh = mesh
        self.keys = self.loss_keys + tuple(m.name for m in self.metrics)
        self._zero_states = {}
        self.init_opt_state = jax.jit(self._init_opt_state)
        self.permutation = jax.jit(self._permutation, static_argnames=("n", "shuffle"))
        statics = ("batch_size", "num_steps", "remainder", "start", "shuffle")
        # Later calls of an epoch donate the carry; the first keeps its input (see above).
        self.run_steps = jax.jit(self._run_steps, donate_argnums=(0,), static_argnames=statics)
        self.run_steps_keep = jax.jit(self._run_steps, static_argnames=statics)
        self.values = jax.jit(self._values)
        self.evaluate_all = jax.jit(self._evaluate_all, static_argnames=("batch_size",))
        self.evaluate_batch = jax.jit(self._evaluate_batch)
        self.predict_batch = jax.jit(self._predict_batch)

    # ------------------------------------------------------------------ objective

    def _losses(self, y_true, y_pred, sample_weight, keep=None):
        """The batch's loss values, one per loss key (the total first)."""
        values = []
        for term in self.terms:
            t, p = (y_true, y_pred) if term.select is None else term.select(y_true, y_pred)
            values.append(loss_of_rows(term.loss, t, p, sample_weight, keep))
        if self.single:
            weight = self.terms[0].weight
            return values if weight == 1.0 else [weight * values[0]]
        return [sum(term.weight * v for term, v in zip(self.terms, values))] + values

    def _metric_states(self, y_true, y_pred, keep, weight=None):
        # Keras's `metrics` ignore sample_weight: `keep` (1 real row, 0 padding) is their weight;
        # `weighted_metrics` take sample_weight (times keep).
        if weight is not None and any(self.weighted):
            weight = jnp.asarray(weight, jnp.float32)
            weight = weight * keep.reshape(keep.shape + (1,) * (weight.ndim - 1))
        return tuple(m.state(y_true, y_pred, weight if w and weight is not None else keep)
                     for m, w in zip(self.metrics, self.weighted))

    def zero_states(self, params, state, x, y):
        """Zero metric states, shaped as the steps make them for batches like ``(x, y)``.

        Their shapes come from ``jax.eval_shape`` on one row (nothing runs), once per
        input shape; host numpy arrays, so the first jitted call of an epoch sees the same
        structure as the later ones and compiles once.
        """
        rows = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((1,) + tuple(jnp.shape(a)[1:]),
                                                                     jnp.result_type(a)), (x, y))
        leaves, structure = jax.tree_util.tree_flatten(rows)
        key = (structure, tuple((leaf.shape, str(leaf.dtype)) for leaf in leaves))
        if key not in self._zero_states:
            def states(params, state, xb, yb):
                y_pred, _ = self.model.apply_with_state(params, state, xb, train=False)
                return self._metric_states(yb, y_pred, jnp.ones(1, jnp.float32))

            self._zero_states[key] = jax.eval_shape(states, _abstract(params), _abstract(state), *rows)
        return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), self._zero_states[key])

    def _values(self, sums, metric_states):
        """The history values (float32, ``keys`` order) from loss sums ``[totals..., count, ...]``
        (anything after the count is ignored) and merged metric states."""
        k = len(self.loss_keys)
        values = [sums[i] / sums[k] for i in range(k)]
        for m, s in zip(self.metrics, metric_states):
            value = jnp.asarray(m.result(s), jnp.float32)
            if value.ndim:
                raise ValueError(f"metric {m.name!r} gives values of shape {value.shape}; fit and evaluate "
                                 "log one number per metric (e.g. R2Score(class_aggregation='uniform_average'))")
            values.append(value)
        return jnp.stack([jnp.asarray(v, jnp.float32) for v in values])

    # ------------------------------------------------------------------ training

    def _init_opt_state(self, params):
        return sharding.constrain_tree(self.optimizer.init(params), self.mesh)

    def start(self, params, opt_state, state, example=None) -> Carry:
        """A carry around the given trees, on the device(s), with cleared sums.

        ``example``: ``(x, y)`` shaped like the training data, for the metrics' zero states
        (without it, the epoch's first call makes them). No copies: the first jitted call of
        an epoch never donates its input, so the caller's arrays are never consumed. The
        sums start as numpy scalars shaped as run_steps returns them (its second call must
        not compile again); under a mesh everything is placed as run_steps returns it, for
        the same reason.
        """
        metric_states = None if example is None else self.zero_states(params, state, *example)
        carry = Carry(params, opt_state, state, self._cleared_stats(np), metric_states, np.int32(0))
        return sharding.put_params(carry, self.mesh)

    def _cleared_stats(self, xp):
        return xp.asarray([0.0] * (len(self.loss_keys) + 1) + [-1.0, 0.0, 0.0], dtype=xp.float32)

    def reset(self, carry: Carry, data: EpochData) -> Carry:
        """The carry at the start of an epoch: sums, metric states, counters and the guard record cleared."""
        if carry.metric_states is None:
            states = self.zero_states(carry.params, carry.state, data.x, data.y)
        else:
            states = jax.tree_util.tree_map(jnp.zeros_like, carry.metric_states)
        return carry._replace(stats=self._cleared_stats(jnp), metric_states=states, step=jnp.zeros((), jnp.int32))

    def read_stats(self, stats) -> EpochStats:
        """Host-side view of ``Carry.stats`` (a numpy array)."""
        k = len(self.loss_keys)
        return EpochStats(dict(zip(self.loss_keys, stats[:k].tolist())), float(stats[k]), int(stats[k + 1]),
                          float(stats[k + 2]), bool(stats[k + 3] > 0))

    def epoch_values(self, carry: Carry):
        """The epoch's history values (``keys`` order) on the device, from its carry."""
        return self.values(carry.stats, carry.metric_states)   # _values reads only the sums and count

    def _permutation(self, key, epoch, *, n, shuffle):
        shuffle_key, _ = epoch_keys(key, epoch)
        return jax.random.permutation(shuffle_key, n) if shuffle else jnp.arange(n)

    def train_step(self, carry: Carry, xb, yb, wb, rng, lr_scale) -> Carry:
        """One optimizer step on one batch (``wb``: its per-example weights or None), with
        the sums and metric states for the epoch's history."""
        xb, yb = sharding.constrain_batch(xb, self.mesh), sharding.constrain_batch(yb, self.mesh)
        if wb is not None:
            wb = sharding.constrain_batch(wb, self.mesh)

        def batch_loss(params):
            y_pred, new_state = self.model.apply_with_state(params, carry.state, xb, train=True, rng=rng)
            values = self._losses(yb, y_pred, wb)
            return values[0], (y_pred, new_state, values)

        (value, (y_pred, new_state, values)), grads = jax.value_and_grad(batch_loss, has_aux=True)(carry.params)
        updates, opt_state = self.optimizer.update(grads, carry.opt_state, carry.params)
        # The learning-rate multiplier of ReduceLROnPlateau; scaling the final updates is
        # scaling the learning rate for every optax optimizer without momentum.
        updates = jax.tree_util.tree_map(lambda u: u * lr_scale.astype(u.dtype), updates)
        params = sharding.constrain_tree(optax.apply_updates(carry.params, updates), self.mesh)
        opt_state = sharding.constrain_tree(opt_state, self.mesh)
        y_pred = jax.lax.stop_gradient(y_pred)
        rows = jax.tree_util.tree_leaves(yb)[0].shape[0]
        # Keras's loss tracker: the mean of batch losses weighted by batch size.
        sums = jnp.stack([jnp.asarray(v, jnp.float32) * rows for v in values] + [jnp.float32(rows)])
        states = merge_states(carry.metric_states, self._metric_states(yb, y_pred, jnp.ones(rows, jnp.float32), wb))
        # Only scalars here: selecting old params with jnp.where after a bad step made XLA
        # copy params and optimizer state every step (~30% of a step). The loop replays the
        # epoch up to the bad step instead, from the epoch's first, undonated input.
        k = len(self.loss_keys) + 1
        first_bad = (carry.stats[k] < 0) & ~jnp.isfinite(value)
        record = jnp.where(first_bad, jnp.stack([carry.step.astype(jnp.float32), value.astype(jnp.float32)]),
                           carry.stats[k:k + 2])
        bad_data = jnp.maximum(carry.stats[k + 2:], _holds_non_finite((xb, yb)).astype(jnp.float32))
        return Carry(params, opt_state, new_state, jnp.concatenate([carry.stats[:k] + sums, record, bad_data]),
                     states, carry.step + 1)

    def _run_steps(self, carry: Carry, data: EpochData, perm, epoch, lr_scale, *, batch_size, num_steps,
                   remainder, start, shuffle=True):
        """``num_steps`` full batches from ``carry.step`` on, as one ``lax.scan``; then, if
        ``remainder``, the epoch's last ``remainder`` rows as one more step.

        ``start``: the first call of an epoch (clears the epoch's sums). ``perm``: the
        epoch's row order, or None to draw it here (the whole epoch in one call).
        """
        if start:
            carry = self.reset(carry, data)
        if perm is None:
            n = jax.tree_util.tree_leaves(data.y)[0].shape[0]
            perm = self._permutation(data.key, epoch, n=n, shuffle=shuffle)
        _, step_key = epoch_keys(data.key, epoch)

        def batch(index):
            return _rows(data.x, index), _rows(data.y, index), _rows(data.weight, index)

        def step(c, _):
            index = jax.lax.dynamic_slice_in_dim(perm, c.step * batch_size, batch_size)
            rng = jax.random.fold_in(step_key, c.step)
            return self.train_step(c, *batch(index), rng, lr_scale), None

        if num_steps == 1:
            carry = step(carry, None)[0]
        elif num_steps > 1:
            carry = jax.lax.scan(step, carry, None, length=num_steps)[0]
        if remainder:
            index = perm[perm.shape[0] - remainder:]
            rng = jax.random.fold_in(step_key, carry.step)
            carry = self.train_step(carry, *batch(index), rng, lr_scale)
        return sharding.constrain_tree(carry, self.mesh)

    # --------------------------------------------------------------- evaluation

    def _batch_sums(self, params, state, xb, yb, keep, weight):
        """``(loss sums [totals..., count], metric states)`` of one padded batch: ``keep`` is 1
        on real rows and 0 on padding, ``weight`` the per-example weights (or None)."""
        xb, yb = sharding.constrain_batch(xb, self.mesh), sharding.constrain_batch(yb, self.mesh)
        y_pred, _ = self.model.apply_with_state(params, state, xb, train=False)
        rows = jnp.sum(keep).astype(jnp.float32)
        values = self._losses(yb, y_pred, weight, keep > 0)
        sums = jnp.stack([jnp.asarray(v, jnp.float32) * rows for v in values] + [rows])
        return sums, self._metric_states(yb, y_pred, keep, weight)

    def zero_sums(self, params, state, x, y):
        """The start of an evaluation's accumulator for batches like ``(x, y)``: ``(sums, states)``."""
        return np.zeros(len(self.loss_keys) + 1, np.float32), self.zero_states(params, state, x, y)

    def _evaluate_all(self, params, state, x, y, keep, weight, *, batch_size):
        """The history values over a padded data set on device (rows a multiple of
        ``batch_size``, ``keep`` 0 on padding rows), as one scan."""
        batches = keep.shape[0] // batch_size

        def split(a):
            return a.reshape((batches, batch_size) + a.shape[1:])

        def step(acc, batch):
            return self._evaluate_batch(acc, params, state, *batch), None

        xs = jax.tree_util.tree_map(split, (x, y, keep, weight))
        start = jax.tree_util.tree_map(jnp.asarray, self.zero_sums(params, state, x, y))
        return self._values(*jax.lax.scan(step, start, xs)[0])

    def _evaluate_batch(self, acc, params, state, xb, yb, keep, weight):
        sums, states = self._batch_sums(params, state, xb, yb, keep, weight)
        return acc[0] + sums, merge_states(acc[1], states)

    def _predict_batch(self, params, state, xb):
        xb = sharding.constrain_batch(xb, self.mesh)
        y_pred, _ = self.model.apply_with_state(params, state, xb, train=False)
        return y_pred


def _by_output(tree, names, what):
    """``tree`` (a dict by output name, a list in output order, or one array) as a dict by name."""
    if isinstance(tree, dict):
        unknown = [k for k in tree if k not in names]
        if unknown:
            raise ValueError(f"{what} has entries {unknown} that name no output; the outputs are {names}")
        return tree
    if isinstance(tree, (list, tuple)) and len(names) > 1:
        if len(tree) != len(names):
            raise ValueError(f"{what} holds {len(tree)} arrays but the model has {len(names)} outputs {names}")
        return dict(zip(names, tree))
    if len(names) == 1:
        return {names[0]: tree}
    raise ValueError(f"{what} must be a dict by output name or a list in output order {names}")


def objective(model, loss, metrics=(), loss_weights=None):
    """``(terms, metrics)`` for training: a tuple of :class:`LossTerm` and the resolved metrics.

    One loss (and metrics) for the model's outputs as a whole is one term keyed ``'loss'``.
    Given a dict of losses (``{'price': 'mse', 'kind': 'sparse_categorical_crossentropy'}``),
    ``loss_weights`` or a dict of metrics (``{'kind': ['accuracy']}``), the model must name
    its outputs (``fnnet.Model.output_names``, the producing layers' names, as Keras). Each
    output then has its term, reduced on its own (Keras's ``price_loss``), the total loss
    is their ``loss_weights``-weighted sum, and each output's metrics are keyed as Keras
    spells them (``kind_accuracy``), state functions included, so per-output AUC is exact.
    ``y`` may be a dict by output name or a list in output order.

    >>> import fnnet
    >>> x = fnnet.Input((3,))
    >>> h = fnnet.Dense(4)(x)
    >>> model = fnnet.Model(x, [fnnet.Dense(1, name='price')(h), fnnet.Dense(3, name='kind')(h)])
    >>> terms, metrics = objective(model, {'price': 'mse', 'kind': 'sparse_categorical_crossentropy'},
    ...                            {'kind': ['accuracy']}, {'price': 0.5, 'kind': 1.0})
    >>> [(t.key, t.weight) for t in terms], [m.name for m in metrics]
    ([('price_loss', 0.5), ('kind_loss', 1.0)], ['kind_accuracy'])
    """
    if not isinstance(loss, dict) and loss_weights is None and not isinstance(metrics, dict):
        loss = get_loss(loss)
        return (LossTerm("loss", loss),), get_metrics(metrics, loss)
    names = list(getattr(model, "output_names", None) or [])
    if not names:
        raise ValueError(f"losses, loss_weights or metrics by output name need a model that names its outputs "
                         f"(an fnnet.Model); {model.description} does not")
    losses = {k: get_loss(v) for k, v in _by_output(loss, names, "loss").items()} if isinstance(loss, dict) \
        else {n: get_loss(loss) for n in names}
    weights = {n: 1.0 for n in names} if loss_weights is None else \
        {n: float(_by_output(loss_weights, names, "loss_weights").get(n, 1.0)) for n in names}
    if isinstance(metrics, dict):
        wanted = _by_output(metrics, names, "metrics")
    else:
        wanted = {n: metrics for n in names} if metrics else {}

    def selector(name):
        def select(y_true, y_pred):
            return (_by_output(y_true, names, "y")[name], _by_output(y_pred, names, "the model's outputs")[name])

        return select

    outputs = [n for n in names if n in losses]
    key = (lambda n: f"{n}_loss") if len(names) > 1 else (lambda n: "loss")
    terms = tuple(LossTerm(key(n), losses[n], weights[n], selector(n)) for n in outputs)
    resolved = []
    for name in names:
        select = selector(name)
        for m in get_metrics(wanted.get(name, ()), losses.get(name)):
            resolved.append(_one_output_metric(f"{name}_{m.name}", m, select))
    return terms, get_metrics(resolved)


def _keras_weighted_names(weighted, taken, model):
    """``weighted`` metrics renamed as Keras names weighted metrics whose name is already taken:
    ``weighted_mae``, ``price_weighted_mae``."""
    outputs = list(getattr(model, "output_names", None) or [])
    renamed = []
    for m in weighted:
        if m.name in taken:
            output = next((o for o in outputs if m.name.startswith(o + "_")), None)
            name = f"weighted_{m.name}" if output is None else f"{output}_weighted_{m.name[len(output) + 1:]}"
            m = m._replace(name=name)
        renamed.append(m)
    return tuple(renamed)


def _one_output_metric(name, metric, select):
    """``metric`` applied to one output, both its forms (per-example values and states)."""
    per_example = None
    if metric.per_example is not None:
        def per_example(y_true, y_pred):
            return metric.per_example(*select(y_true, y_pred))

    def batch_state(y_true, y_pred, sample_weight):
        return metric.state(*select(y_true, y_pred), sample_weight)

    return Metric(name, per_example, metric.finalize, batch_state, metric.result)


def _hashable(value):
    # Lists of metric names become tuples; NamedTuples (a Metric) stay what they are.
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return tuple(_hashable(v) for v in value)
    return value


def _memo_key(value):
    # Per-output configurations are dicts ({'price': 'mse'}): keyed by their items, so that
    # fitting again with the same dicts reuses the compiled functions.
    if isinstance(value, dict):
        return ("dict",) + tuple((k, _memo_key(v)) for k, v in value.items())
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_memo_key(v) for v in value)
    return value


def program(model, loss="mse", metrics=(), optimizer="sgd", frozen=(), mesh=None, loss_weights=None,
            weighted_metrics=()) -> Program:
    """The :class:`Program` for a training configuration, kept on the model (:meth:`fnnet.Layer.memo`).

    Configurations given by names, or by the same callables and optax objects as before,
    reuse the compiled functions of an earlier call; they go when the model goes.

    >>> import fnnet
    >>> model = fnnet.Dense(1)
    >>> p = program(model, 'mse', ['mae'], 'adam')
    >>> p is program(model, 'mse', ['mae'], 'adam'), p.keys
    (True, ('loss', 'mae'))
    >>> x = fnnet.Input((2,))
    >>> graph = fnnet.Model(x, [fnnet.Dense(1, name='a')(x), fnnet.Dense(1, name='b')(x)])
    >>> q = program(graph, {'a': 'mse', 'b': 'mae'}, loss_weights={'a': 2.0, 'b': 1.0})
    >>> q is program(graph, {'a': 'mse', 'b': 'mae'}, loss_weights={'a': 2.0, 'b': 1.0}), q.keys
    (True, ('loss', 'a_loss', 'b_loss'))
    """
    model = as_layer(model)
    args = (loss, _hashable(metrics), optimizer, _hashable(frozen), mesh, _hashable(loss_weights),
            _hashable(weighted_metrics))
    key = _memo_key(args)
    try:
        hash(key)
    except TypeError:  # something unhashable: build without keeping it
        return Program(model, *args)
    return model.memo(("fnnet.training.program",) + key, lambda: Program(model, *args))

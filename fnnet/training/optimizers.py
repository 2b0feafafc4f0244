"""Optimizers: Keras names mapped to optax with Keras's defaults, and freezing params by path.

Any ``optax.GradientTransformation`` works wherever fnnet takes an optimizer. The Keras
names give optax's transformation with Keras 3's default hyper-parameters:

========== ==================================================================
name       optax equivalent
========== ==================================================================
adam       ``optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-7)``
adamw      ``optax.adamw(1e-3, b1=0.9, b2=0.999, eps=1e-7, weight_decay=0.004)``
sgd        ``optax.sgd(1e-2)`` (Keras: momentum 0)
rmsprop    ``optax.rmsprop(1e-3, decay=0.9, eps=1e-7)`` (eps inside the sqrt, as Keras)
adadelta   ``optax.adadelta(1e-3, rho=0.95, eps=1e-7)``
========== ==================================================================

One known difference: Keras's Adam adds ``epsilon`` to ``sqrt(v)`` before bias
correction, optax after; with eps = 1e-7 the updates differ only where ``sqrt(v)`` is
itself about 1e-7.
"""

from __future__ import annotations

import fnmatch

import jax
import optax

from ..io.checkpoint import keypath_str

KERAS_DEFAULTS: dict[str, dict] = {
    "adam": {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-7},
    "adamw": {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-7, "weight_decay": 0.004},
    "sgd": {"learning_rate": 1e-2, "momentum": None, "nesterov": False},
    "rmsprop": {"learning_rate": 1e-3, "decay": 0.9, "eps": 1e-7},
    "adadelta": {"learning_rate": 1e-3, "rho": 0.95, "eps": 1e-7},
}
_FACTORIES = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop,
              "adadelta": optax.adadelta}
# Keras's spelling of the same hyper-parameters.
_KERAS_ARG_NAMES = {"beta_1": "b1", "beta_2": "b2", "epsilon": "eps"}


def get_optimizer(optimizer, **hyperparams) -> optax.GradientTransformation:
    """An optax transformation from a Keras name (with Keras's defaults) or an optax object.

    ``hyperparams`` override the defaults, in optax's or Keras's spelling
    (``learning_rate``, ``b1``/``beta_1``, ``eps``/``epsilon``, ``momentum``, ``rho``;
    rmsprop's Keras ``rho`` is optax's ``decay``).

    >>> import fnnet, jax.numpy as jnp
    >>> opt = fnnet.get_optimizer('sgd', learning_rate=0.5)
    >>> updates, _ = opt.update({'w': jnp.array(2.0)}, opt.init({'w': jnp.array(0.0)}))
    >>> float(updates['w'])
    -1.0
    """
    if isinstance(optimizer, optax.GradientTransformation):
        if hyperparams:
            raise TypeError("hyper-parameters apply to optimizer names only; configure the optax object instead")
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in _FACTORIES:
        raise ValueError(f"optimizer must be an optax.GradientTransformation or one of the Keras names "
                         f"{sorted(_FACTORIES)}, got {optimizer!r}")
    name = optimizer.lower()
    args = dict(KERAS_DEFAULTS[name])
    for key, value in hyperparams.items():
        key = _KERAS_ARG_NAMES.get(key, key)
        if name == "rmsprop" and key == "rho":
            key = "decay"
        if name == "sgd" and key == "momentum" and not value:
            value = None
        if key not in args:
            raise TypeError(f"{name} takes {sorted(args)} (optax spelling), not {key!r}")
        args[key] = value
    return _FACTORIES[name](**args)


def _matches(path: str, selector: str) -> bool:
    return path == selector or path.startswith(selector + "/") or fnmatch.fnmatchcase(path, selector)


def trainable_labels(params, frozen=(), trainable=None):
    """A pytree like ``params`` with ``'trainable'`` or ``'frozen'`` at each leaf.

    ``frozen`` lists path selectors made of layer names, the keys of the params dicts: a
    path such as ``'dense'`` (everything under it), ``'encoder/dense_1/kernel'``, or a glob
    such as ``'*/bias'``. Layers are keyed Keras-style (``dense``, ``dense_1``, ... or their
    explicit ``name=``), so naming the layers to freeze makes the selector obvious.
    ``trainable`` is an optional
    predicate on the leaf path string; a leaf is frozen if a selector matches it or the
    predicate returns False. A selector that matches nothing is an error (a typo would
    otherwise train everything silently).

    >>> import fnnet, jax
    >>> model = fnnet.serial(fnnet.Dense(2, name='encoder'), fnnet.Relu, fnnet.Dense(1))
    >>> _, params = model.init(jax.random.PRNGKey(0), (None, 3))
    >>> fnnet.optimizers.trainable_labels(params, ['encoder'])
    {'dense': {'bias': 'trainable', 'kernel': 'trainable'}, 'encoder': {'bias': 'frozen', 'kernel': 'frozen'}}
    >>> fnnet.optimizers.trainable_labels(params, ['*/bias'])['dense']
    {'bias': 'frozen', 'kernel': 'trainable'}
    """
    if isinstance(frozen, str):
        frozen = [frozen]
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [keypath_str(p) for p, _ in flat]
    unused = [s for s in frozen if not any(_matches(p, s) for p in paths)]
    if unused:
        tops = sorted({p.split("/")[0] for p in paths})
        raise ValueError(f"frozen selectors {unused} match no parameter; top-level params are {tops} "
                         "(use layer names such as 'dense' or paths such as 'dense_1/kernel', or globs such as '*/bias')")
    labels = []
    for path in paths:
        is_frozen = any(_matches(path, s) for s in frozen) or (trainable is not None and not trainable(path))
        labels.append("frozen" if is_frozen else "trainable")
    return jax.tree_util.tree_unflatten(treedef, labels)


def freeze(optimizer, params=None, frozen=(), *, trainable=None) -> optax.GradientTransformation:
    """Wrap ``optimizer`` so that the selected params never change (optax masks).

    Frozen leaves get zero updates and no optimizer state (``optax.multi_transform``
    with ``optax.set_to_zero``); see :func:`trainable_labels` for the selectors. Given
    ``params``, the selectors are checked at once; otherwise when the optimizer is
    initialised. The labels are recomputed from the tree's paths, so the result works
    for any params with those paths.

    >>> import fnnet, jax, jax.numpy as jnp, optax
    >>> params = {'dense': {'kernel': jnp.ones(2)}, 'dense_1': {'kernel': jnp.ones(2)}}
    >>> opt = fnnet.freeze('sgd', params, ['dense'])
    >>> grads = jax.tree_util.tree_map(jnp.ones_like, params)
    >>> updates, _ = opt.update(grads, opt.init(params), params)
    >>> updates['dense']['kernel'].tolist(), updates['dense_1']['kernel'].tolist()
    ([0.0, 0.0], [-0.009999999776482582, -0.009999999776482582])
    """
    frozen = (frozen,) if isinstance(frozen, str) else tuple(frozen)
    if params is not None:
        trainable_labels(params, frozen, trainable)
    return optax.multi_transform({"trainable": get_optimizer(optimizer), "frozen": optax.set_to_zero()},
                                 lambda tree: trainable_labels(tree, frozen, trainable))

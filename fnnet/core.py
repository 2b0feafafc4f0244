"""The layer contract, shape inference and the internal call protocol.

A layer is a :class:`Layer`, a NamedTuple ``(init, apply)`` with stax's contract::

    init(rng, input_shape) -> (output_shape, params)
    apply(params, inputs, **kwargs) -> outputs

Behind the two public functions every fnnet layer has one richer, private protocol
that the combinators use to thread model state (BatchNorm statistics) and Keras-style
masks through a model:

    _init(rng, input_shape) -> (output_shape, params, state)
    _call(params, state, inputs, ctx) -> (outputs, new_state, out_mask)

``ctx`` is a :class:`Context` holding ``train``, ``rng``, the incoming ``mask`` and
any other keyword arguments. A raw stax ``(init_fun, apply_fun)`` pair is lifted into
this protocol by :func:`as_layer` (no state, mask passed on unchanged).

State is threaded explicitly and purely: ``apply(params, x, state=s, train=True)``
returns ``(y, new_state)`` whenever the ``state`` keyword is given (``None`` included);
without it ``apply`` returns ``y`` alone, exactly as stax does.
"""

from __future__ import annotations

import functools
import numbers
import re
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

Shape = tuple

# Two different stand-ins for unknown (-1) dimensions: a dimension of the output that
# differs between the two evaluations depends on an unknown input dimension.
_PROBE_SIZES = (2, 3)


class LayerError(ValueError, TypeError):
    """A layer failed at ``init`` or ``apply``; the message names its path in the model.

    ``path`` is a list such as ``['serial[2]', 'Dense(200)']``; ``detail`` says what
    was expected and what was found.

    >>> import fnnet, jax
    >>> mlp = fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(1))
    >>> _, params = mlp.init(jax.random.PRNGKey(0), (-1, 3))
    >>> try:
    ...     mlp.apply(params, jax.numpy.ones((2, 5)))
    ... except fnnet.LayerError as e:
    ...     print(e)
    serial[0]/Dense(4): expected inputs whose last dimension is 3, got shape (2, 5)
    """

    def __init__(self, path, detail):
        self.path = list(path)
        self.detail = detail
        super().__init__(str(self))

    def __str__(self):
        return f"{'/'.join(self.path)}: {self.detail}"

    def __reduce__(self):
        return (LayerError, (self.path, self.detail))


def _prefixed(error: LayerError, part: str) -> LayerError:
    error.path.insert(0, part)
    error.args = (str(error),)
    return error


class Context(NamedTuple):
    """What a layer's private ``_call`` receives besides params, state and inputs."""

    train: bool = False
    rng: Optional[jax.Array] = None
    mask: Any = None
    kwargs: dict = {}

    def replace(self, **changes) -> "Context":
        return self._replace(**changes)


class _LayerFields(NamedTuple):
    init: Callable
    apply: Callable


class Layer(_LayerFields):
    """A layer: the NamedTuple ``(init, apply)`` of stax's contract.

    It unpacks as ``init_fun, apply_fun = layer`` and also exposes ``.init`` and
    ``.apply``. ``.name`` is its display name (``'Dense(200)'``), ``.key`` the
    prefix of its params key inside combinators (``'dense'``). Calling a layer with
    no arguments returns it, so ``fnnet.Relu`` and ``fnnet.Relu()`` are the same layer.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> init_fun, apply_fun = fnnet.Dense(3)
    >>> out_shape, params = init_fun(jax.random.PRNGKey(0), (-1, 2))
    >>> out_shape, apply_fun(params, jnp.ones((5, 2))).shape
    ((-1, 3), (5, 3))
    """

    def __call__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(
                f"{self.name} is already a layer; calling it takes no arguments "
                "(use apply(params, inputs) to run it)")
        return self

    def __repr__(self):
        return f"<fnnet.Layer {self.name}>"

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other


def _snake(name: str) -> str:
    name = re.sub(r"\(.*", "", name)
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"[^0-9a-zA-Z_]", "_", name).lower() or "layer"


def make_layer(name: str, init_full: Callable, call: Callable, *, key: str | None = None,
               children: tuple = (), spec: tuple | None = None) -> Layer:
    """Build a :class:`Layer` from the private protocol (for layer and combinator authors).

    ``init_full(rng, input_shape) -> (output_shape, params, state)`` and
    ``call(params, state, inputs, ctx) -> (outputs, new_state, out_mask)``.
    ``children`` lists the sub-layers (for summaries and diagrams) as
    ``(params_key, layer)`` pairs; ``spec`` is ``(constructor_name, args, kwargs)``.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> def init_full(rng, shape):
    ...     return shape, {}, None
    >>> def call(params, state, x, ctx):
    ...     return 2 * x, state, ctx.mask
    >>> double = fnnet.make_layer('Double', init_full, call)
    >>> double.apply({}, jnp.ones(2)).tolist()
    [2.0, 2.0]
    """

    def init(rng, input_shape):
        out_shape, params, _ = init_full(rng, tuple(input_shape))
        return out_shape, params

    def apply(params, inputs, **kwargs):
        returns_state = "state" in kwargs
        state = kwargs.pop("state", None)
        ctx = Context(train=bool(kwargs.pop("train", False)), rng=kwargs.pop("rng", None),
                      mask=kwargs.pop("mask", None), kwargs=kwargs)
        outputs, new_state, _ = call(params, state, inputs, ctx)
        return (outputs, new_state) if returns_state else outputs

    layer = Layer(init, apply)
    layer.name = name
    layer.key = key or _snake(name)
    layer._init = init_full
    layer._call = call
    layer.children = tuple(children)
    layer.spec = spec
    return layer


def _python_ints(shape):
    # stax computes some shapes with numpy, giving np.int64 dimensions.
    if isinstance(shape, (tuple, list)) and all(isinstance(d, numbers.Integral) for d in shape):
        return tuple(int(d) for d in shape)
    if isinstance(shape, (tuple, list)):
        return type(shape)(_python_ints(s) for s in shape)
    return shape


def _lift_stax(pair) -> Layer:
    init_fun, apply_fun = pair
    name = getattr(init_fun, "__qualname__", "stax").split(".")[0]
    name = name if name not in ("<lambda>", "init_fun") else "stax"

    def init_full(rng, input_shape):
        out_shape, params = init_fun(rng, input_shape)
        return _python_ints(out_shape), params, None

    def call(params, state, inputs, ctx):
        kwargs = dict(ctx.kwargs)
        if ctx.rng is not None:
            kwargs["rng"] = ctx.rng
        return apply_fun(params, inputs, **kwargs), state, ctx.mask

    return make_layer(name, init_full, call, key="layer")


def as_layer(obj) -> Layer:
    """Return ``obj`` as an fnnet :class:`Layer`; raw stax ``(init, apply)`` pairs are lifted.

    >>> import fnnet
    >>> from jax.example_libraries import stax
    >>> fnnet.as_layer(stax.Dense(3)).name
    'Dense'
    """
    if isinstance(obj, Layer) and hasattr(obj, "_call"):
        return obj
    if isinstance(obj, tuple) and len(obj) == 2 and all(callable(f) for f in obj):
        return _lift_stax(obj)
    raise TypeError(f"expected a layer (an (init, apply) pair), got {type(obj).__name__}: {obj!r}")


def init_with_state(layer, rng, input_shape):
    """Initialise a model: ``(output_shape, params, state)``; ``state`` is None when stateless.

    >>> import fnnet, jax
    >>> model = fnnet.serial(fnnet.Dense(3), fnnet.BatchNorm())
    >>> shape, params, state = fnnet.init_with_state(model, jax.random.PRNGKey(0), (-1, 2))
    >>> sorted(state['batch_norm_1'])
    ['mean', 'var']
    """
    return as_layer(layer)._init(rng, tuple(input_shape))


def init_state(layer, input_shape):
    """The initial model state (e.g. BatchNorm running statistics) for ``input_shape``.

    >>> import fnnet
    >>> fnnet.init_state(fnnet.Dense(3), (-1, 2)) is None
    True
    """
    return init_with_state(layer, jax.random.PRNGKey(0), input_shape)[2]


def call_layer(layer, params, state, inputs, ctx: Context):
    """Run a layer through the private protocol: ``(outputs, new_state, out_mask)``.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> emb = fnnet.Embedding(10, 2, mask_zero=True)
    >>> _, params = emb.init(jax.random.PRNGKey(0), (-1, 3))
    >>> y, state, mask = fnnet.call_layer(emb, params, None, jnp.array([[4, 1, 0]]), fnnet.Context())
    >>> y.shape, state, mask.tolist()
    ((1, 3, 2), None, [[True, True, False]])
    """
    return as_layer(layer)._call(params, state, inputs, ctx)


# --------------------------------------------------------------------------- shapes

def _concretize(shape, size):
    return tuple(size if d == -1 else d for d in shape)


def _is_shape(shape) -> bool:
    return isinstance(shape, tuple) and all(isinstance(d, int) for d in shape)


def _structs(input_shape, dtype, size):
    if _is_shape(input_shape):
        return jax.ShapeDtypeStruct(_concretize(input_shape, size), dtype)
    dtypes = dtype if isinstance(dtype, (tuple, list)) else [dtype] * len(input_shape)
    return type(input_shape)(_structs(s, d, size) for s, d in zip(input_shape, dtypes))


def _merge_shapes(a, b):
    if isinstance(a, jax.ShapeDtypeStruct):
        return tuple(-1 if x != y else x for x, y in zip(a.shape, b.shape))
    return type(a)(_merge_shapes(x, y) for x, y in zip(a, b))


def output_shape(fn: Callable, input_shape, dtype=jnp.float32):
    """The output shape of ``fn(inputs)`` for an ``input_shape`` that may hold ``-1``.

    Uses ``jax.eval_shape`` twice with different stand-ins for the unknown dimensions,
    so nothing is computed and shapes never come from hand-written formulas. Input
    shapes may be nested tuples of shapes (for layers taking several inputs).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.output_shape(lambda x: x.reshape(x.shape[0], -1), (-1, 3, 4))
    (-1, 12)
    """
    outs = [jax.eval_shape(fn, _structs(tuple(input_shape) if _is_shape(tuple(input_shape))
                                        else input_shape, dtype, size))
            for size in _PROBE_SIZES]
    return _merge_shapes(*outs)


def shape_str(shape) -> str:
    """Render a shape (or nested shapes) the way fnnet's messages and summaries do.

    >>> import fnnet
    >>> fnnet.shape_str((-1, 78)), fnnet.shape_str(((-1, 4), (-1, 5)))
    ('(None, 78)', '[(None, 4), (None, 5)]')
    """
    if _is_shape(shape):
        return "(" + ", ".join("None" if d == -1 else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    return "[" + ", ".join(shape_str(s) for s in shape) + "]"


def _shape_of(x):
    if isinstance(x, (tuple, list, dict)):  # several inputs
        return jax.tree_util.tree_map(lambda a: tuple(jnp.shape(a)), x)
    return tuple(jnp.shape(x))


# ----------------------------------------------------------------------- leaf layers

def leaf(name: str, forward: Callable, init_params: Callable | None = None, *,
         init_state: Callable | None = None, input_dtype=jnp.float32,
         mask_fn: Callable | None = None, key: str | None = None,
         spec: tuple | None = None) -> Layer:
    """Build a layer from a forward function; its output shape comes from ``jax.eval_shape``.

    - ``init_params(rng, input_shape) -> params`` (default: no params, ``{}``).
    - ``forward(params, x, ctx) -> y``; a stateful layer (``init_state`` given) reads
      ``ctx.kwargs['state']`` and returns ``(y, new_state)``.
    - ``init_state(input_shape) -> state`` for stateful layers.
    - ``mask_fn(x, mask, ctx) -> out_mask``; default passes the incoming mask on.
    - ``input_dtype``: the dtype used for shape inference (ints for Embedding).

    Any ``ValueError``/``TypeError`` raised inside becomes a :class:`LayerError` naming
    this layer and the input shape it got.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> scale = fnnet.leaf('Scale', lambda p, x, ctx: p['s'] * x,
    ...                    lambda rng, shape: {'s': jnp.ones(shape[-1:])})
    >>> shape, params = scale.init(jax.random.PRNGKey(0), (-1, 3))
    >>> shape, params['s'].shape
    ((-1, 3), (3,))
    """
    init_params = init_params or (lambda rng, input_shape: {})

    def run(params, state, x, ctx):
        if init_state is None:
            return forward(params, x, ctx), None
        y, new_state = forward(params, x, ctx._replace(kwargs={**ctx.kwargs, "state": state}))
        return y, new_state

    def guarded(fn, where, shape):
        try:
            return fn()
        except LayerError as e:
            raise _prefixed(e, name) if e.path[:1] != [name] else e
        except (ValueError, TypeError) as e:
            detail = str(e)
            if str(tuple(shape)) not in detail:  # say what the layer got, once
                detail += f" (at {where}, input shape {shape_str(shape)})"
            raise LayerError([name], detail) from e

    def init_full(rng, input_shape):
        params = guarded(lambda: init_params(rng, input_shape), "init", input_shape)
        state = init_state(input_shape) if init_state is not None else None

        def probe(x):
            return run(params, state, x, Context())[0]

        out_shape = guarded(lambda: output_shape(probe, input_shape, input_dtype), "init", input_shape)
        return out_shape, params, state

    def call(params, state, x, ctx):
        y, new_state = guarded(lambda: run(params, state, x, ctx), "apply", _shape_of(x))
        if init_state is None or state is None:
            new_state = state
        mask = mask_fn(x, ctx.mask, ctx) if mask_fn is not None else ctx.mask
        return y, new_state, mask

    return make_layer(name, init_full, call, key=key, spec=spec)


def expect_last_dim(x, expected: int, what: str = "inputs"):
    """Raise a clear :class:`ValueError` unless ``x.shape[-1] == expected`` (for layer authors).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.expect_last_dim(jnp.ones((2, 3)), 4)
    Traceback (most recent call last):
    ValueError: expected inputs whose last dimension is 4, got shape (2, 3)
    """
    if jnp.ndim(x) == 0 or x.shape[-1] != expected:
        raise ValueError(f"expected {what} whose last dimension is {expected}, got shape {tuple(jnp.shape(x))}")


def registered(name: str | None = None):
    """Decorate a layer constructor so the layers it builds record ``(name, args, kwargs)``.

    The record (``layer.spec``) is what :func:`fnnet.to_spec` serialises; the
    constructor is added to the registry that :func:`fnnet.from_spec` reads.

    >>> import fnnet
    >>> @fnnet.registered('Twice')
    ... def Twice():
    ...     return fnnet.elementwise(lambda x: 2 * x)
    >>> Twice().spec
    ('Twice', (), {})
    """

    def decorate(constructor):
        ctor_name = name or constructor.__name__

        @functools.wraps(constructor)
        def build(*args, **kwargs):
            layer = constructor(*args, **kwargs)
            layer.spec = (ctor_name, args, kwargs)
            return layer

        LAYER_REGISTRY[ctor_name] = build
        return build

    return decorate


# name -> constructor, read by fnnet.spec.from_spec.
LAYER_REGISTRY: dict[str, Callable] = {}
# name -> layer instance for the parameterless singletons (fnnet.Relu, fnnet.Flatten, ...).
SINGLETONS: dict[str, Layer] = {}


def singleton(layer: Layer, name: str) -> Layer:
    """Register a ready-made layer (``fnnet.Relu``) under its public name, for specs.

    >>> import fnnet, jax.numpy as jnp
    >>> Double = fnnet.singleton(fnnet.leaf('Double', lambda p, x, ctx: 2 * x), 'Double')
    >>> Double.spec, Double() is Double
    (('Double', (), {}), True)
    """
    layer.spec = (name, (), {})
    SINGLETONS[name] = layer
    return layer

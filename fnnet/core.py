"""The layer protocol: one immutable :class:`Layer` value, one way to write a layer, one walker.

A layer keeps stax's contract and adds two fixed signatures for state::

    init(rng, input_shape)                 -> (output_shape, params)
    apply(params, inputs, **kwargs)        -> outputs
    init_with_state(rng, input_shape)      -> (output_shape, params, state)
    apply_with_state(params, state, inputs, *, train=False, rng=None, **kwargs) -> (outputs, new_state)

All four are derived from one public function that combinators thread through a model::

    call(params, state, inputs, *, mask=None, train=False, rng=None, **kwargs) -> (outputs, new_state, mask)

``mask`` is a Keras-style padding mask (``Embedding(mask_zero=True)`` makes one, recurrent
layers and pooling read it); a layer that does not touch masks passes it on unchanged.

Leaf layers are written with :func:`layer` (one function, params optional, state optional),
combinators with ``Layer(init_with_state, call, ...)``; both are plain values: equal only to
themselves, immutable, hashable by identity. :func:`walk` is the one traversal of a model
(with abstract shapes, nothing allocated) that summaries, diagrams, surgery, specs and the
Keras export share.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import numbers
import re
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

Shape = tuple

# Two different stand-ins for unknown (-1) dimensions: a dimension of the output that
# differs between the two evaluations depends on an unknown input dimension.
_PROBE_SIZES = (2, 3)


# ----------------------------------------------------------------------------- errors

class LayerError(ValueError, TypeError):
    """A layer failed at ``init`` or ``apply``; the message names its path in the model.

    ``path`` is a list such as ``['serial[2]', 'Dense(200)']``; ``detail`` says what
    was expected and what was found.

    >>> import fnnet, jax
    >>> mlp = fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(1))
    >>> _, params = mlp.init(jax.random.PRNGKey(0), (None, 3))
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


@contextlib.contextmanager
def error_path(*parts: str):
    """Name ``parts`` (outermost first) in any error raised inside, for combinator authors.

    A :class:`LayerError` gets the parts put in front of its path; another ``ValueError``
    or ``TypeError`` becomes a :class:`LayerError` at that path.

    >>> import fnnet
    >>> try:
    ...     with fnnet.error_path('serial[1]'):
    ...         raise fnnet.LayerError(['Dense(2)'], 'bad input')
    ... except fnnet.LayerError as e:
    ...     print(e)
    serial[1]/Dense(2): bad input
    """
    try:
        yield
    except LayerError as e:
        e.path[:0] = list(parts)
        e.args = (str(e),)
        raise
    except (ValueError, TypeError) as e:
        raise LayerError(list(parts), str(e)) from e


def split_rng(rng, n: int) -> list:
    """``n`` independent keys from ``rng``, or ``n`` Nones when there is no key (inference).

    >>> import fnnet, jax
    >>> len(fnnet.split_rng(jax.random.PRNGKey(0), 3)), fnnet.split_rng(None, 2)
    (3, [None, None])
    """
    return [None] * n if rng is None else list(jax.random.split(rng, n))


# ----------------------------------------------------------------------------- shapes

def _known(shape):
    """An input shape with Keras's ``None`` spelled as stax's ``-1``, as Python ints."""
    if isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, numbers.Integral) for d in shape):
        return tuple(-1 if d is None else int(d) for d in shape)
    if isinstance(shape, (tuple, list)):
        return type(shape)(_known(s) for s in shape)
    if isinstance(shape, dict):  # a model's inputs by name
        return {k: _known(s) for k, s in shape.items()}
    return shape


def _python_ints(shape):
    # stax computes some shapes with numpy, giving np.int64 dimensions.
    if isinstance(shape, (tuple, list)) and all(isinstance(d, numbers.Integral) for d in shape):
        return tuple(int(d) for d in shape)
    if isinstance(shape, (tuple, list)):
        return type(shape)(_python_ints(s) for s in shape)
    return shape


def _is_shape(shape) -> bool:
    return isinstance(shape, tuple) and all(isinstance(d, int) for d in shape)


def _structs(input_shape, dtype, size):
    if _is_shape(input_shape):
        return jax.ShapeDtypeStruct(tuple(size if d == -1 else d for d in input_shape), dtype)
    dtypes = dtype if isinstance(dtype, (tuple, list)) else [dtype] * len(input_shape)
    return type(input_shape)(_structs(s, d, size) for s, d in zip(input_shape, dtypes))


def _merge_shapes(a, b):
    if isinstance(a, jax.ShapeDtypeStruct):
        return tuple(-1 if x != y else x for x, y in zip(a.shape, b.shape))
    return type(a)(_merge_shapes(x, y) for x, y in zip(a, b))


def output_shape(fn: Callable, input_shape, dtype=jnp.float32):
    """The output shape of ``fn(inputs)`` for an ``input_shape`` that may hold ``-1``/``None``.

    Uses ``jax.eval_shape`` twice with different stand-ins for the unknown dimensions,
    so nothing is computed and shapes never come from hand-written formulas. Input
    shapes may be nested tuples of shapes (for layers taking several inputs).

    >>> import fnnet
    >>> fnnet.output_shape(lambda x: x.reshape(x.shape[0], -1), (None, 3, 4))
    (-1, 12)
    """
    input_shape = _known(tuple(input_shape))
    outs = [jax.eval_shape(fn, _structs(input_shape, dtype, size)) for size in _PROBE_SIZES]
    return _merge_shapes(*outs)


def shape_str(shape) -> str:
    """Render a shape (or nested shapes) the way fnnet's messages and summaries do.

    >>> import fnnet
    >>> fnnet.shape_str((-1, 78)), fnnet.shape_str(((-1, 4), (-1, 5)))
    ('(None, 78)', '[(None, 4), (None, 5)]')
    """
    shape = _known(shape)
    if _is_shape(shape):
        return "(" + ", ".join("None" if d == -1 else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k!r}: {shape_str(s)}" for k, s in shape.items()) + "}"
    if not isinstance(shape, (tuple, list)):
        return repr(shape)
    return "[" + ", ".join(shape_str(s) for s in shape) + "]"


def _shape_of(x):
    if isinstance(x, (tuple, list, dict)):  # several inputs
        return jax.tree_util.tree_map(lambda a: tuple(jnp.shape(a)), x)
    return tuple(jnp.shape(x))


def snake_case(name: str) -> str:
    """A type's default key, as Keras spells it: ``BatchNorm`` -> ``batch_norm``.

    >>> import fnnet
    >>> [fnnet.snake_case(n) for n in ('Dense', 'BatchNorm', 'SimpleRNN', 'Conv1DTranspose', 'serial')]
    ['dense', 'batch_norm', 'simple_rnn', 'conv1d_transpose', 'serial']
    """
    name = re.sub(r"\(.*", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^0-9a-zA-Z_]", "_", name).lower().strip("_") or "layer"


# ----------------------------------------------------------------------------- the layer

def is_empty(tree) -> bool:
    """No params (or no state): stax's ``()``, fnnet's ``{}``, or None. Such entries are not stored.

    >>> import fnnet
    >>> fnnet.is_empty(()), fnnet.is_empty({}), fnnet.is_empty(None), fnnet.is_empty({'kernel': 1})
    (True, True, True, False)
    """
    return tree is None or (isinstance(tree, (dict, tuple, list)) and len(tree) == 0)


# Set while walk() records a model's structure; None otherwise (a scoped hook, not a cache).
_RECORDER: contextvars.ContextVar = contextvars.ContextVar("fnnet_walk_recorder", default=None)

_FIELDS = ("init", "apply", "init_with_state", "apply_with_state", "call", "name", "children", "spec")


class Layer:
    """A layer: stax's ``(init, apply)`` pair, with state, masks and a name. Immutable.

    Build a combinator with ``Layer(init_with_state, call, name=..., children=...)``
    (leaf layers are simpler with :func:`layer`):

    - ``init_with_state(rng, input_shape) -> (output_shape, params, state)``; ``state``
      is None for stateless layers; ``input_shape`` may spell unknown sizes ``None`` or
      ``-1`` (it arrives as ``-1``).
    - ``call(params, state, inputs, *, mask, train, rng, **kwargs) -> (outputs, new_state,
      out_mask)``.

    From these the layer derives stax's ``init``/``apply`` and the two stateful
    signatures. ``apply`` always returns the outputs alone; ``apply_with_state`` always a
    pair. A layer unpacks as ``init_fun, apply_fun = layer``, so stax code takes it as is.

    Attributes (read-only): ``name`` (its default key in a parent: the explicit ``name=``
    or the snake_case of its type), ``children`` (``(key, layer)`` pairs: the key of the
    child's params inside this layer's, or None when the child's params are this layer's
    own), ``spec`` (``(constructor, args, kwargs)`` for :func:`fnnet.to_spec`, or None) and
    ``description`` (``Dense(4)``, used in errors and summaries).

    >>> import fnnet, jax, jax.numpy as jnp
    >>> init_fun, apply_fun = fnnet.Dense(3)
    >>> out_shape, params = init_fun(jax.random.PRNGKey(0), (None, 2))
    >>> out_shape, apply_fun(params, jnp.ones((5, 2))).shape
    ((-1, 3), (5, 3))
    >>> fnnet.Dense(3).name, fnnet.Dense(3, name='encoder').name
    ('dense', 'encoder')
    """

    __slots__ = _FIELDS + ("_type", "_explicit", "_inner", "_memo", "__weakref__")

    def __init__(self, init_with_state: Callable, call: Callable, *, name: str,
                 children: tuple = (), spec: tuple | None = None, key: str | None = None):
        # ``name`` is the type (``'Model'``); ``key`` an explicit key, as ``with_name`` gives.
        if key is not None:
            _check_key(key)
        self._build(init_with_state, call, type_name=name, name=key or snake_case(name), explicit=key is not None,
                    children=tuple(children), spec=spec)

    def _build(self, init_with_state, call, *, type_name, name, explicit, children, spec):
        me = self
        setter = object.__setattr__

        def init_with_state_(rng, input_shape):
            input_shape = _known(input_shape)
            recorder = _RECORDER.get()
            node = recorder.enter(me, input_shape) if recorder is not None else None
            try:
                with _labelled(me, "init", input_shape):
                    out_shape, params, state = init_with_state(rng, input_shape)
            finally:
                if recorder is not None:
                    recorder.leave()
            out_shape = _python_ints(out_shape)
            if node is not None:
                node.finish(out_shape, params, state)
            return out_shape, params, state

        def call_(params, state, inputs, *, mask=None, train=False, rng=None, **kwargs):
            if isinstance(train, jax.core.Tracer):
                raise LayerError([me.description], "train is traced (a jit argument); it chooses the layer's "
                                 "code, so make it static: jax.jit(model.apply, static_argnames='train')")
            with _labelled(me, "apply", inputs):
                return call(params, state, inputs, mask=mask, train=train, rng=rng, **kwargs)

        def init(rng, input_shape):
            out_shape, params, _ = init_with_state_(rng, input_shape)
            return out_shape, params

        def apply(params, inputs, **kwargs):
            if "state" in kwargs:
                raise TypeError(f"{me.description}: apply() takes no state and returns the outputs alone; "
                                "use apply_with_state(params, state, inputs, train=..., rng=...) -> "
                                "(outputs, new_state)")
            return call_(params, None, inputs, **kwargs)[0]

        def apply_with_state(params, state, inputs, *, train=False, rng=None, **kwargs):
            outputs, new_state, _ = call_(params, state, inputs, train=train, rng=rng, **kwargs)
            return outputs, new_state

        for field, value in (("init", init), ("apply", apply), ("init_with_state", init_with_state_),
                             ("apply_with_state", apply_with_state), ("call", call_), ("name", name),
                             ("children", children), ("spec", spec), ("_type", type_name),
                             ("_explicit", explicit)):
            setter(self, field, value)
        setter(self, "_inner", (init_with_state, call))  # what _replace re-wraps
        setter(self, "_memo", {})

    def __setattr__(self, attr, value):
        raise AttributeError(f"fnnet layers are immutable: cannot set {attr!r} on {self!r} "
                             "(build a new layer instead, e.g. layer.with_name('...'))")

    def __delattr__(self, attr):
        raise AttributeError(f"fnnet layers are immutable: cannot delete {attr!r}")

    # stax's contract: a layer is the pair (init, apply).
    def __iter__(self):
        return iter((self.init, self.apply))

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return (self.init, self.apply)[index]

    def __call__(self, *args, name: str | None = None, **kwargs):
        """``fnnet.Relu()`` is ``fnnet.Relu`` (stax's singletons); ``name=`` gives a renamed copy.

        Called on symbolic tensors (``fnnet.Input``), the layer records a node of a graph
        instead: the tensors' type carries the ``__fnnet_symbolic_call__`` hook that does it.
        """
        symbolic = next((leaf for leaf in jax.tree_util.tree_leaves((args, kwargs))
                         if hasattr(type(leaf), "__fnnet_symbolic_call__")), None)
        if symbolic is None and (args or kwargs):
            raise TypeError(f"{self.description} is already a layer; calling it takes no arguments "
                            "(use apply(params, inputs) to run it, or call it on fnnet.Input tensors "
                            "to build a graph)")
        layer = self if name is None else self.with_name(name)
        if symbolic is not None:
            return type(symbolic).__fnnet_symbolic_call__(layer, *args, **kwargs)
        return layer

    def __repr__(self):
        return f"<fnnet.Layer {self.name}: {self.description}>"

    @property
    def description(self) -> str:
        """The layer as its constructor call, without child layers: ``Dense(2, activation='softmax')``."""
        if not self.spec:
            return self._type
        ctor, args, kwargs = self.spec
        shown = [_arg_str(a) for a in args if not _is_layer_like(a)]
        shown += [f"{k}={_arg_str(v)}" for k, v in kwargs.items() if k != "name" and not _is_layer_like(v)]
        return f"{ctor}({', '.join(shown)})" if shown else ctor

    def memo(self, key, build: Callable):
        """``build()``, computed once per ``key`` and kept on this layer (e.g. compiled train steps).

        What it keeps lives and dies with the layer: no global cache keeps a model alive.

        >>> import fnnet
        >>> d = fnnet.Dense(2)
        >>> d.memo('answer', lambda: 42), d.memo('answer', lambda: 0)
        (42, 42)
        """
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def with_name(self, name: str) -> "Layer":
        """The same layer under the explicit key ``name`` (its params are unchanged).

        >>> import fnnet
        >>> fnnet.Relu.with_name('act').name, fnnet.Relu.name
        ('act', 'relu')
        """
        _check_key(name)
        spec = self.spec
        if spec is not None:
            spec = (spec[0], spec[1], {**spec[2], "name": name})
        return _replace(self, name=name, explicit=True, spec=spec)


def _check_key(name):
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w.-]*", name):
        raise ValueError(f"a layer name is a word of letters, digits, '_', '-', '.', got {name!r}")


def _replace(layer: Layer, **changes) -> Layer:
    """A copy of ``layer`` with some of (name, explicit, spec, type_name) changed."""
    new = object.__new__(Layer)
    fields = {"name": layer.name, "explicit": layer._explicit, "spec": layer.spec, "type_name": layer._type}
    fields.update(changes)
    # Re-wrap the same inner functions, so that errors and walks name the new value.
    new._build(*layer._inner, children=layer.children, **fields)
    return new


def _is_layer_like(value) -> bool:
    if isinstance(value, Layer):
        return True
    if isinstance(value, (tuple, list)) and value:
        return all(isinstance(v, Layer) for v in value) or (len(value) == 2 and all(callable(v) for v in value))
    return False


def _arg_str(value) -> str:
    if callable(value) and not isinstance(value, Layer):
        return getattr(value, "__name__", None) or getattr(getattr(value, "func", None), "__name__", "fn")
    return repr(value)


@contextlib.contextmanager
def _labelled(layer: Layer, where: str, inputs):
    """Errors raised by ``layer``'s own code name the layer (its children name themselves)."""
    try:
        yield
    except LayerError as e:
        # serial and parallel name their children's positions (``serial[2]``); any other
        # layer an error passes through names itself (``Bidirectional/forward/LSTM(2)``).
        if not (e.path and e.path[0].startswith(layer._type + "[")):
            e.path.insert(0, layer.description)
            e.args = (str(e),)
        raise
    except KeyError as e:
        raise LayerError([layer.description], f"no entry {e} in its params or state: use the params and state "
                         "that this model's init returned") from e
    except (ValueError, TypeError) as e:
        detail = str(e)
        try:
            shape = tuple(inputs) if where == "init" else _shape_of(inputs)
        except TypeError:
            shape = None
        if shape is not None and "shape" not in detail:  # say what the layer got, once
            detail += f" (at {where}, input shape {shape_str(shape)})"
        raise LayerError([layer.description], detail) from e


# ---------------------------------------------------------------- stax pairs, leaf layers

def _lift_stax(pair) -> Layer:
    init_fun, apply_fun = pair
    type_name = getattr(init_fun, "__qualname__", "stax").split(".")[0]
    type_name = type_name if type_name.isidentifier() and type_name != "init_fun" else "stax"

    def init_with_state(rng, input_shape):
        out_shape, params = init_fun(rng, input_shape)
        return out_shape, params, None

    def call(params, state, inputs, *, mask, train, rng, **kwargs):
        if rng is not None:
            kwargs["rng"] = rng
        # A parent stores no entry for stax's empty params: give stax its own ().
        params = () if isinstance(params, dict) and not params else params
        return apply_fun(params, inputs, **kwargs), None, mask

    return Layer(init_with_state, call, name=type_name)


def as_layer(obj) -> Layer:
    """Return ``obj`` as an fnnet :class:`Layer`; raw stax ``(init, apply)`` pairs are lifted.

    Inside a parent, a lifted stax layer's params stay stax's (positional tuples for a
    ``stax.serial``): names, freezing and surgery see such a block as one layer.

    >>> import fnnet
    >>> from jax.example_libraries import stax
    >>> fnnet.as_layer(stax.Dense(3)).name
    'dense'
    """
    if isinstance(obj, Layer):
        return obj
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(callable(f) for f in obj):
        return _lift_stax(obj)
    raise TypeError(f"expected a layer (an (init, apply) pair), got {type(obj).__name__}: {obj!r}")


def _declared_keywords(fn, n_positional: int):
    """The keyword names ``fn`` takes beyond its first positional ones; None if it takes ``**kwargs``."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature
        return frozenset()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    rest = [p for p in parameters if p.kind is not p.VAR_POSITIONAL][n_positional:]
    return frozenset(p.name for p in rest if p.kind is not p.POSITIONAL_ONLY)


def layer(name: str, apply: Callable, init: Callable | None = None, *, init_state: Callable | None = None,
          compute_mask: Callable | None = None, state_optional: bool = False, input_dtype=jnp.float32) -> Layer:
    """Write a layer in one call; its output shape is inferred with ``jax.eval_shape``.

    - ``init(rng, input_shape) -> params`` (default: no params, ``{}``).
    - stateless: ``apply(params, x, **declared) -> y``; stateful (``init_state`` given):
      ``apply(params, state, x, **declared) -> (y, new_state)``, with
      ``init_state(input_shape) -> state``. fnnet passes only the keywords ``apply``
      declares: ``train``, ``rng``, ``mask``, and any other keyword the caller gave.
    - ``compute_mask(x, mask) -> mask`` when the layer makes, changes or drops a mask
      (default: the incoming mask passes on).
    - ``state_optional``: the layer also runs without state (``apply``), receiving
      ``state=None``, as BatchNorm does with batch statistics. Otherwise a stateful layer
      run without state is an error that points to ``apply_with_state``.
    - ``input_dtype``: the dtype of the stand-in inputs that infer the output shape (e.g.
      ``jnp.int32`` for a layer that indexes with its inputs).

    ``name`` is the layer's type (``'Scale'``); its default key is the snake_case
    (``'scale'``). ``ValueError``/``TypeError`` raised inside become a
    :class:`LayerError` naming the layer's path and input shape.

    >>> import fnnet, jax, jax.numpy as jnp
    >>> scale = fnnet.layer('Scale', lambda p, x: p['s'] * x,
    ...                     lambda rng, shape: {'s': jnp.ones(shape[-1:])})
    >>> shape, params = scale.init(jax.random.PRNGKey(0), (None, 3))
    >>> shape, params['s'].shape, scale.name
    ((-1, 3), (3,), 'scale')
    """
    stateful = init_state is not None
    wanted = _declared_keywords(apply, 3 if stateful else 2)

    def run(params, state, x, keywords):
        if wanted is not None:
            keywords = {k: v for k, v in keywords.items() if k in wanted}
        if stateful:
            return apply(params, state, x, **keywords)
        return apply(params, x, **keywords), None

    def init_with_state(rng, input_shape):
        params = init(rng, input_shape) if init is not None else {}
        state = init_state(input_shape) if stateful else None
        probe = {"train": False, "rng": None, "mask": None}
        out_shape = output_shape(lambda x: run(params, state, x, probe)[0], input_shape, input_dtype)
        return out_shape, params, state

    def call(params, state, x, *, mask, train, rng, **kwargs):
        if stateful and state is None and not state_optional:
            raise ValueError("this layer keeps state, and none was given: run the model with "
                             "apply_with_state(params, state, inputs, train=...), state from init_with_state")
        y, new_state = run(params, state, x, {"train": train, "rng": rng, "mask": mask, **kwargs})
        out_mask = compute_mask(x, mask) if compute_mask is not None else mask
        return y, (new_state if stateful else None), out_mask

    return Layer(init_with_state, call, name=name)


def expect_last_dim(x, expected: int, what: str = "inputs"):
    """Raise a clear :class:`ValueError` unless ``x.shape[-1] == expected`` (for layer authors).

    >>> import fnnet, jax.numpy as jnp
    >>> fnnet.expect_last_dim(jnp.ones((2, 3)), 4)
    Traceback (most recent call last):
    ValueError: expected inputs whose last dimension is 4, got shape (2, 3)
    """
    if jnp.ndim(x) == 0 or x.shape[-1] != expected:
        raise ValueError(f"expected {what} whose last dimension is {expected}, got shape {tuple(jnp.shape(x))}")


def expect_positive_int(value, what: str):
    """Raise a clear :class:`ValueError` unless ``value`` is a whole number >= 1 (for constructors).

    >>> import fnnet
    >>> fnnet.expect_positive_int(0, 'Dense: units')
    Traceback (most recent call last):
    ValueError: Dense: units must be a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


# -------------------------------------------------------------------------- names

def child_keys(layers, where: str = "model") -> list:
    """The keys a combinator gives its children: explicit names first, then Keras's defaults.

    A default key is the layer's name, then ``_1``, ``_2``, ... for repeats, skipping the
    explicit names; two children with the same explicit name are a :class:`LayerError`.

    >>> import fnnet
    >>> fnnet.child_keys([fnnet.Dense(4), fnnet.Relu, fnnet.Dense(4), fnnet.Dense(1, name='dense')])
    ['dense_1', 'relu', 'dense_2', 'dense']
    """
    layers = [as_layer(child) for child in layers]
    first = {}
    for i, child in enumerate(layers):
        if child._explicit:
            if child.name in first:
                j = first[child.name]
                raise LayerError([where], f"two layers are named {child.name!r}: {where}[{j}] "
                                 f"({layers[j].description}) and {where}[{i}] ({child.description}); "
                                 "names within one combinator must differ")
            first[child.name] = i
    taken, counts, keys = set(first), {}, []
    for child in layers:
        if child._explicit:
            keys.append(child.name)
            continue
        n = counts.get(child.name, 0)
        key = child.name if n == 0 else f"{child.name}_{n}"
        while key in taken:
            n += 1
            key = f"{child.name}_{n}"
        counts[child.name] = n + 1
        taken.add(key)
        keys.append(key)
    return keys


# name -> constructor, read by fnnet.from_spec.
LAYER_REGISTRY: dict[str, Callable] = {}
# name -> layer instance for the parameterless singletons (fnnet.Relu, fnnet.Flatten, ...).
SINGLETONS: dict[str, Layer] = {}


def registered(type_name: str | None = None):
    """Decorate a layer constructor: it takes ``name=``, and its layers record their spec.

    The spec ``(type_name, args, kwargs)`` is what :func:`fnnet.to_spec` serialises; the
    constructor joins the registry that :func:`fnnet.from_spec` reads. The layers' type
    is ``type_name`` and their default key its snake_case.

    >>> import fnnet
    >>> @fnnet.registered('Twice')
    ... def Twice():
    ...     return fnnet.layer('Twice', lambda params, x: 2 * x)
    >>> Twice().spec, Twice(name='double').name
    (('Twice', (), {}), 'double')
    """

    def decorate(constructor):
        ctor_name = type_name or constructor.__name__

        @functools.wraps(constructor)
        def build(*args, name: str | None = None, **kwargs):
            built = as_layer(constructor(*args, **kwargs))
            renamed = _replace(built, type_name=ctor_name, name=snake_case(ctor_name), explicit=False,
                               spec=(ctor_name, args, kwargs))
            return renamed if name is None else renamed.with_name(name)

        signature = inspect.signature(constructor)
        if "name" not in signature.parameters:
            params = list(signature.parameters.values())
            at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
            params.insert(at, inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None))
            build.__signature__ = signature.replace(parameters=params)
        LAYER_REGISTRY[ctor_name] = build
        return build

    return decorate


def singleton(layer: Layer, type_name: str) -> Layer:
    """Register a ready-made layer (``fnnet.Relu``) under its public name, for specs.

    >>> import fnnet, jax.numpy as jnp
    >>> Double = fnnet.singleton(fnnet.layer('Double', lambda p, x: 2 * x), 'Double')
    >>> Double.spec, Double() is Double, Double.name
    (('Double', (), {}), True, 'double')
    """
    layer = _replace(as_layer(layer), type_name=type_name, spec=(type_name, (), {}))
    SINGLETONS[type_name] = layer
    return layer


# -------------------------------------------------------------------------- the walker

def _abstract(tree):
    def struct(leaf):
        return jax.ShapeDtypeStruct(jnp.shape(leaf), getattr(leaf, "dtype", None) or jnp.result_type(leaf))

    return jax.tree_util.tree_map(struct, tree)


class _Draft:
    __slots__ = ("layer", "input_shape", "output_shape", "params", "state", "kids")

    def __init__(self, layer, input_shape):
        self.layer, self.input_shape, self.kids = layer, input_shape, []
        self.output_shape = self.params = self.state = None

    def finish(self, output_shape, params, state):
        self.output_shape, self.params, self.state = output_shape, _abstract(params), _abstract(state)


class _Recorder:
    def __init__(self):
        self.stack, self.roots = [], []

    def enter(self, layer, input_shape):
        draft = _Draft(layer, input_shape)
        (self.stack[-1].kids if self.stack else self.roots).append(draft)
        self.stack.append(draft)
        return draft

    def leave(self):
        self.stack.pop()


class Node(NamedTuple):
    """One layer of a model as :func:`walk` sees it.

    ``key`` is its key in the parent's params (None at the root, or where the child's
    params are the parent's own); ``path`` the keys from the root (``('encoder', 'dense')``);
    ``params``/``state`` are ``jax.ShapeDtypeStruct`` trees (None in a walk without shapes).
    """

    layer: Layer
    key: Optional[str]
    path: tuple
    depth: int
    input_shape: Any
    output_shape: Any
    params: Any
    state: Any
    children: tuple

    def nodes(self):
        """This node and every node below it, parents first.

        >>> import fnnet
        >>> [n.layer.name for n in fnnet.walk(fnnet.serial(fnnet.Dense(2), fnnet.Relu), (None, 3)).nodes()]
        ['serial', 'dense', 'relu']
        """
        yield self
        for child in self.children:
            yield from child.nodes()


def _node_from_draft(draft, key, path, depth) -> Node:
    pairs = list(draft.layer.children)
    children = []
    for kid in draft.kids:
        match = next((i for i, (_, child) in enumerate(pairs) if child is kid.layer), None)
        # A child the parent built on the fly (shape_dependent) holds the parent's own params.
        kid_key = pairs.pop(match)[0] if match is not None else None
        kid_path = path + (kid_key,) if kid_key is not None else path
        children.append(_node_from_draft(kid, kid_key, kid_path, depth + 1))
    return Node(draft.layer, key, path, depth, draft.input_shape, draft.output_shape, draft.params, draft.state,
                tuple(children))


def _static_node(layer, key, path, depth) -> Node:
    children = tuple(_static_node(child, k, path + (k,) if k is not None else path, depth + 1)
                     for k, child in layer.children)
    return Node(layer, key, path, depth, None, None, None, None, children)


def _walk_model(model, input_shape, rng):
    model = as_layer(model)
    if input_shape is None:
        return _static_node(model, None, (), 0)
    recorder = _Recorder()
    token = _RECORDER.set(recorder)
    try:
        jax.eval_shape(lambda key: model.init_with_state(key, input_shape)[1:],
                       jax.random.PRNGKey(0) if rng is None else rng)
    finally:
        _RECORDER.reset(token)
    return _node_from_draft(recorder.roots[0], None, (), 0)


def walk(model, input_shape=None, rng=None) -> Node:
    """The model as a tree of :class:`Node`: every layer with its shapes, params and state.

    With ``input_shape``, ``init`` runs once under ``jax.eval_shape``, so nothing is
    allocated (a 2,000,000 x 256 embedding costs nothing); without it, the tree has the
    structure alone. Summaries, diagrams, surgery, specs and the Keras export all read
    models through this one function.

    >>> import fnnet
    >>> root = fnnet.walk(fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(1)), (None, 3))
    >>> [(n.key, n.output_shape, n.params and n.params['kernel'].shape) for n in root.children]
    [('dense', (-1, 4), (3, 4)), ('relu', (-1, 4), {}), ('dense_1', (-1, 1), (4, 1))]
    """
    if input_shape is not None and not isinstance(input_shape, dict):
        input_shape = tuple(input_shape)
    return _walk_model(model, None if input_shape is None else _known(input_shape), rng)

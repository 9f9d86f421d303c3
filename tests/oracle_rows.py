"""The op table of the JAX oracle: one row per op (or form of an op).

A row has a name, `apply(ops, *arrays, **params)` written once against a NumPy-like
adapter (see `oracle_programs`), and `draw(ctx, a) -> (args, params) | None`, which picks
the arguments (node `a`, possibly new inputs) and static parameters, or refuses where
the derivative does not exist. `requires` names the attribute of `autodiff.numpy` the row
needs: rows for ops the engine does not have yet stay off until it has them.

Kinks. Both engines share a maximum's cotangent equally among exact ties (max, min,
maximum, minimum), so exact ties are drawn on purpose (from copies of one value) and near
ties are refused: summation order may break a near tie differently in each engine.
Elsewhere the conventions differ at the kink (abs at 0, clip at a bound): those points
are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

import autodiff.numpy as anp

GAP = 1e-3  # how far inputs stay from a kink


@dataclass(frozen=True)
class Row:
    name: str
    apply: Callable
    draw: Callable
    requires: str = ""  # names in autodiff.numpy, separated by spaces
    supported: Callable[[], bool] = lambda: True  # a probe, for features of existing ops
    weight: int = 1  # examples drawn, in multiples of the test's default

    def available(self) -> bool:
        return all(_has(anp, name) for name in self.requires.split()) and self.supported()


def _has(module, dotted: str) -> bool:
    target = module
    for part in dotted.split("."):
        if not hasattr(target, part):
            return False
        target = getattr(target, part)
    return True


def _away(*distances) -> bool:
    return all(np.all(np.abs(d) > GAP) for d in distances)


def _no_near_ties(x, axis=None) -> bool:
    gap = np.max(x, axis=axis, keepdims=True) - x
    low = x - np.min(x, axis=axis, keepdims=True)
    return not np.any(((gap > 0) & (gap < GAP)) | ((low > 0) & (low < GAP)))


def _partner(ctx, a, same=False):
    """A second operand for `a`: a new input of a shape that broadcasts with it, or `a`."""
    shape = ctx.value(a).shape
    choice = ctx.draw(st.sampled_from(["a", "same", "broadcast"]))
    if choice == "a":
        return a
    if choice == "same" or same:
        return ctx.new(shape)
    from hypothesis.extra.numpy import mutually_broadcastable_shapes
    drawn = ctx.draw(mutually_broadcastable_shapes(num_shapes=1, base_shape=shape, max_side=3))
    return ctx.new(drawn.input_shapes[0])


# ---------------------------------------------------------------- elementwise

def _unary(name, domain=None, requires=None, check=None):
    """A unary row; `domain` maps any real input into the op's domain, with the same ops."""

    def apply(ops, x):
        return getattr(ops.m, name)(domain(ops, x) if domain else x)

    def draw(ctx, a):
        return None if check and not check(ctx.value(a)) else ((a,), {})

    return Row(name, apply, draw, requires=name if requires is None else requires)


def _positive(ops, x):
    return x * x + 0.5


def _exp_safe(x):
    return np.all(x < 4)


def _astype_draw(ctx, a):
    x = ctx.value(a)
    if ctx.draw(st.booleans()):
        return ((a,), {"dtype": "int64"}) if _away(x - np.round(x) - 0.5) else None
    return (a,), {"dtype": "float64"}


def _astype_apply(ops, x, dtype):
    # x plus its integer part: the integer part is a constant, the gradient is exactly 1.
    return x + x.astype(np.dtype(dtype))


ELEMENTWISE = [
    _unary("negative"), _unary("exp", check=_exp_safe), _unary("expm1", check=_exp_safe),
    _unary("log", _positive), _unary("log1p", lambda ops, x: x * x),
    _unary("sqrt", _positive), _unary("square"), _unary("reciprocal", _positive),
    _unary("abs", check=lambda x: _away(x)), _unary("sin"), _unary("cos"), _unary("tanh"),
    _unary("log2", _positive), _unary("log10", _positive), _unary("sinh", check=_exp_safe),
    _unary("cosh", check=_exp_safe), _unary("tan", check=lambda x: np.all(np.abs(x) < 1.2)),
    _unary("arctan"), _unary("copy"),
    Row("astype", _astype_apply, _astype_draw),
]


# ---------------------------------------------------------------- binary

def _binary(name, second=None, check=None, requires=None, first=None):
    """A binary row; `first`/`second` map their argument into the op's domain."""

    def apply(ops, x, y):
        return getattr(ops.m, name)(first(ops, x) if first else x,
                                    second(ops, y) if second else y)

    def draw(ctx, a):
        b = _partner(ctx, a)
        if check and not check(ctx.value(a), ctx.value(b)):
            return None
        return (a, b), {}

    return Row(name, apply, draw, requires=name if requires is None else requires)


def _tie_or_apart(x, y) -> bool:
    return not np.any((np.abs(x - y) > 0) & (np.abs(x - y) < GAP))


def _operator_apply(ops, x, y, symbol):
    return {"+": x + y, "-": x - y, "*": x * y, "/": x / (y * y + 0.5),
            "**": (x * x + 0.5) ** y}[symbol]


def _operator_draw(ctx, a):
    return (a, _partner(ctx, a)), {"symbol": ctx.draw(st.sampled_from(["+", "-", "*", "/", "**"]))}


def _where_apply(ops, x, y, mask):
    return ops.m.where(mask, x, y)


def _where_draw(ctx, a):
    b = _partner(ctx, a)
    shape = np.broadcast_shapes(ctx.value(a).shape, ctx.value(b).shape)
    return (a, b), {"mask": ctx.rng.random(shape) < 0.5}


def _relu_apply(ops, x, which):
    return getattr(ops.m, which)(x, 0.0)


BINARY = [
    _binary("add"), _binary("subtract"), _binary("multiply"),
    _binary("divide", _positive), _binary("power", first=_positive),
    _binary("maximum", check=_tie_or_apart), _binary("minimum", check=_tie_or_apart),
    _binary("arctan2", _positive),
    _binary("logaddexp"),
    Row("operators", _operator_apply, _operator_draw),
    Row("where", _where_apply, _where_draw),
    Row("relu", _relu_apply, lambda ctx, a: ((a,), {"which": ctx.draw(
        st.sampled_from(["maximum", "minimum"]))}) if _tie_or_apart(ctx.value(a), 0) else None),
]


def _clip_draw(ctx, a):
    x = ctx.value(a)
    if ctx.draw(st.booleans()):
        lo = _partner(ctx, a)
        span = _partner(ctx, lo, same=True)  # two partners of `a` may not broadcast together
        low, high = ctx.value(lo), ctx.value(lo) + ctx.value(span) ** 2 + 0.5
        return ((a, lo, span), {}) if _away(x - low, x - high) else None
    low = ctx.draw(st.floats(-1.5, 0.5))
    high = low + ctx.draw(st.floats(0.5, 2))
    return ((a,), {"low": low, "high": high}) if _away(x - low, x - high) else None


def _clip_apply(ops, x, *bounds, low=None, high=None):
    if bounds:  # traced bounds, low < high everywhere
        low, span = bounds
        return ops.m.clip(x, low, low + span * span + 0.5)
    return ops.m.clip(x, low, high)


# ---------------------------------------------------------------- reductions

def _axis(ctx, ndim, single=False):
    """None, an axis (maybe negative, maybe a NumPy integer) or a tuple of distinct axes."""
    if ndim == 0:
        return None
    kinds = ["one"] if single else ["none", "one", "tuple"]
    kind = ctx.draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "one":
        axis = ctx.draw(st.integers(-ndim, ndim - 1))
        if ctx.draw(st.booleans()):
            return np.int64(axis)
        return axis
    axes = ctx.draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(axis - ndim * ctx.draw(st.booleans()) for axis in axes)


def _reduction(name, check=None, method=False, requires=None, single=False, keepdims=True):
    def apply(ops, x, **kw):
        if name == "logsumexp":
            return ops.logsumexp(x, **kw)
        return getattr(x, name)(**kw) if method else getattr(ops.m, name)(x, **kw)

    def draw(ctx, a):
        x = ctx.value(a)
        kw = {"axis": _axis(ctx, x.ndim, single)}
        if keepdims:
            kw["keepdims"] = ctx.draw(st.booleans())
        if check and not check(x, kw["axis"]):
            return None
        return (a,), kw

    label = f"{name} method" if method else name
    return Row(label, apply, draw, requires=name if requires is None else requires)


def _spread(x, axis):
    # std's derivative does not exist where the values it reduces are all equal
    return np.all(np.std(x, axis=axis) > 0.1)


def _exact_axis(x, axis):
    return _no_near_ties(x, None if axis is None else (
        int(axis) if np.ndim(axis) == 0 else tuple(int(i) for i in axis)))


REDUCTIONS = [
    _reduction("sum"), _reduction("mean"), _reduction("sum", method=True),
    _reduction("max", _exact_axis), _reduction("min", _exact_axis),
    _reduction("max", _exact_axis, method=True), _reduction("logsumexp"),
    _reduction("var"), _reduction("std", _spread), _reduction("prod"),
    _reduction("cumsum", single=True, keepdims=False),
    _reduction("cumprod", single=True, keepdims=False),
    Row("clip", _clip_apply, _clip_draw),
]


def _ties_draw(ctx, a):
    # A tie between a value and a constant copy of it: the tie is exact in both engines only
    # for an input's value, and the copy takes a share of the cotangent only if the tied
    # entries share it.
    b = a if ctx.nodes[a].row is None else ctx.new(ctx.value(a).shape)
    which = ctx.draw(st.sampled_from(["max", "min", "maximum", "minimum"]))
    return (b,), {"which": which, "copy": ctx.value(b).copy()}


def _ties_apply(ops, x, which, copy):
    if which in ("maximum", "minimum"):
        return getattr(ops.m, which)(copy, x) + getattr(ops.m, which)(x, copy) * 2.0
    return getattr(ops.m, which)(ops.m.stack([copy, x, copy]), axis=0)


REDUCTIONS.append(Row("ties", _ties_apply, _ties_draw))

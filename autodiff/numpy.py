"""Differentiable NumPy: the ops, each followed by its vector-Jacobian product rule.

Use it as `import autodiff.numpy as anp` and write plain NumPy code with `anp` in place of
`np`. Ops follow NumPy's names and semantics (`axis`, `keepdims`, broadcasting). Array
data goes in positionally and is traced; settings such as `axis` are static.

A rule `rule(g, ans, *args, **params)` returns the cotangent of one argument given the
cotangent `g` of the result `ans`. Rules are written with these same ops, so the backward
pass can itself be differentiated. Rules keep the primal dtype: a float32 computation
stays float32 in both passes.

Sections: elementwise, binary (broadcasting), reductions, linear algebra, shapes and
indexing, stable composites, constants (not differentiable), and the Box operators.
"""

from __future__ import annotations

import builtins
import operator
from typing import Any

import numpy as np

from autodiff.core import Box, defvjp, defvjp_argnum, nondifferentiable, primitive, unbox
from autodiff.tree import tree_map

# ----------------------------------------------------------------------------- helpers


def _shape(x: Any) -> tuple:
    shape = getattr(x, "shape", None)
    return np.shape(x) if shape is None else shape


def _ndim(x: Any) -> int:
    return len(_shape(x))


def unbroadcast(g: Any, x: Any) -> Any:
    """Sum the cotangent `g` back down to the shape of the argument `x`, undoing NumPy
    broadcasting."""
    try:
        if g.shape == x.shape:  # the common case, checked first because it is hot
            return g
    except AttributeError:
        pass
    shape, g_shape = _shape(x), _shape(g)
    if g_shape == shape:
        return g
    lead = len(g_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g_shape[lead + i] != 1
    )
    if axes:
        g = sum(g, axis=axes)
    return reshape(g, shape)


def _expand_reduced(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """Broadcast the cotangent of a reduction over `axis` back to the shape of `x`."""
    shape = _shape(x)
    if not keepdims and axis is not None:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = tuple(a % len(shape) for a in axes)
        kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
        g = reshape(g, kept)
    elif not keepdims:
        g = reshape(g, (1,) * len(shape))
    return broadcast_to(g, shape)


def _reduced_count(x: Any, axis: Any) -> int:
    shape = _shape(x)
    if axis is None:
        return int(np.prod(shape, dtype=np.int64))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _method_first(function):
    """`function`, calling the ndarray method of the same name when given an ndarray: the
    methods are C code, while np.sum and friends first pass through Python wrappers that
    cost more than the work itself on small arrays."""
    name = function.__name__

    def raw(x, *args, **kwargs):
        if type(x) is np.ndarray:
            return getattr(x, name)(*args, **kwargs)
        return function(x, *args, **kwargs)

    raw.__name__ = name
    return raw


def _unsupported(op_name: str, **options: Any) -> None:
    """Refuse NumPy options an op does not support (those given as something other than None)."""
    for key, value in options.items():
        if value is not None:
            advice = " (traced arrays are immutable: use the returned array)" * (key == "out")
            raise TypeError(f"anp.{op_name} does not support the {key}= option{advice}")


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (None, an int or a sequence of ints, NumPy integers included) as a tuple of
    non-negative axes. The forward pass has already checked that they are in range."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        return tuple(operator.index(a) % builtins.max(ndim, 1) for a in axis)
    return (operator.index(axis) % builtins.max(ndim, 1),)


# ------------------------------------------------------------------------- elementwise

negative = primitive(np.negative)
defvjp(negative, lambda g, ans, x: negative(g))

exp = primitive(np.exp)
defvjp(exp, lambda g, ans, x: g * ans)

expm1 = primitive(np.expm1)
defvjp(expm1, lambda g, ans, x: g * (ans + 1))

log = primitive(np.log)
defvjp(log, lambda g, ans, x: g / x)

log1p = primitive(np.log1p)
defvjp(log1p, lambda g, ans, x: g / (x + 1))

sqrt = primitive(np.sqrt)
defvjp(sqrt, lambda g, ans, x: g * 0.5 / ans)

square = primitive(np.square)
defvjp(square, lambda g, ans, x: g * 2 * x)

reciprocal = primitive(np.reciprocal)
defvjp(reciprocal, lambda g, ans, x: -g * ans * ans)

abs = primitive(np.abs)  # NumPy's name, shadowing the builtin here
absolute = abs
defvjp(abs, lambda g, ans, x: g * sign(x))

sin = primitive(np.sin)
defvjp(sin, lambda g, ans, x: g * cos(x))

cos = primitive(np.cos)
defvjp(cos, lambda g, ans, x: -g * sin(x))

tanh = primitive(np.tanh)
defvjp(tanh, lambda g, ans, x: g * (1 - ans * ans))

# d/dx clip = 1 inside [a_min, a_max], 0 where the value was clipped.
clip = primitive(np.clip)
defvjp(clip, lambda g, ans, x, *bounds, **kw: where(ans == x, g, _zero(g)))


def _astype(x, dtype):
    return x.astype(dtype)


astype = primitive(_astype)
defvjp(astype, lambda g, ans, x, dtype: astype(g, _dtype(x)))


def _dtype(x: Any) -> np.dtype:
    return x.dtype if hasattr(x, "dtype") else np.result_type(x)


def _ufunc(ufunc: np.ufunc, arity: int):
    """`ufunc` restricted to what can be differentiated: no out=, where= or dtype=."""

    def check(name, out, where, dtype):
        _unsupported(name, out=out, where=None if where is True else where, dtype=dtype)

    if arity == 1:
        def raw(x, /, out=None, *, where=True, dtype=None):
            check(ufunc.__name__, out, where, dtype)
            return ufunc(x)
    else:
        def raw(x1, x2, /, out=None, *, where=True, dtype=None):
            check(ufunc.__name__, out, where, dtype)
            return ufunc(x1, x2)
    raw.__name__ = raw.__qualname__ = ufunc.__name__
    raw.__doc__ = f"np.{ufunc.__name__}, differentiable."
    return raw


_LOG_2, _LOG_10 = float(np.log(2)), float(np.log(10))  # Python floats keep float32 float32

log2 = primitive(_ufunc(np.log2, 1))
defvjp(log2, lambda g, ans, x, *options, **kw: g / (x * _LOG_2))

log10 = primitive(_ufunc(np.log10, 1))
defvjp(log10, lambda g, ans, x, *options, **kw: g / (x * _LOG_10))

sinh = primitive(_ufunc(np.sinh, 1))
defvjp(sinh, lambda g, ans, x, *options, **kw: g * cosh(x))

cosh = primitive(_ufunc(np.cosh, 1))
defvjp(cosh, lambda g, ans, x, *options, **kw: g * sinh(x))

tan = primitive(_ufunc(np.tan, 1))
defvjp(tan, lambda g, ans, x, *options, **kw: g * (1 + ans * ans))

arctan = primitive(_ufunc(np.arctan, 1))
defvjp(arctan, lambda g, ans, x, *options, **kw: g / (1 + x * x))


def _copy(a, order="K", subok=False):
    return np.copy(a, order=order, subok=subok)


copy = primitive(_copy)
copy.__name__ = "copy"
defvjp(copy, lambda g, ans, a, *options, **kw: g)


# ------------------------------------------------------------ binary (broadcasting)

add = primitive(np.add)
defvjp(
    add,
    lambda g, ans, x, y: unbroadcast(g, x),
    lambda g, ans, x, y: unbroadcast(g, y),
)

subtract = primitive(np.subtract)
defvjp(
    subtract,
    lambda g, ans, x, y: unbroadcast(g, x),
    lambda g, ans, x, y: unbroadcast(negative(g), y),
)

multiply = primitive(np.multiply)
defvjp(
    multiply,
    lambda g, ans, x, y: unbroadcast(g * y, x),
    lambda g, ans, x, y: unbroadcast(x * g, y),
)

divide = primitive(np.true_divide)
true_divide = divide
defvjp(
    divide,
    lambda g, ans, x, y: unbroadcast(g / y, x),
    # d(x/y)/dy = -x/y^2 = -ans/y
    lambda g, ans, x, y: unbroadcast(-g * ans / y, y),
)


def _log_where_positive(x):
    # d(x^y)/dy = x^y log x; where x <= 0 the real power is only defined for integer y,
    # and its derivative in y does not exist, so those entries contribute 0 instead of NaN.
    positive = greater(x, 0)
    return where(positive, log(where(positive, x, 1)), 0)


power = primitive(np.power)
defvjp(
    power,
    # d(x^y)/dx = y x^(y-1); where y == 0 it is 0, even at x == 0 where x^(y-1) is inf.
    lambda g, ans, x, y: unbroadcast(where(equal(y, 0), 0, g * y * x ** (y - 1)), x),
    lambda g, ans, x, y: unbroadcast(g * ans * _log_where_positive(x), y),
)


def _balanced_share(g, ans, x, y):
    # g goes where x won; where x and y tie, each gets half, so the shares still sum to g.
    x, y = unbox(x), unbox(y)
    wins = np.greater(x, y)
    ties = np.equal(x, y)
    if ties.any():
        return g * (wins + 0.5 * ties).astype(_dtype(ans))
    return g * wins


maximum = primitive(np.maximum)
defvjp(
    maximum,
    lambda g, ans, x, y: unbroadcast(_balanced_share(g, ans, x, y), x),
    lambda g, ans, x, y: unbroadcast(_balanced_share(g, ans, y, x), y),
)

minimum = primitive(np.minimum)
defvjp(
    minimum,
    lambda g, ans, x, y: unbroadcast(_balanced_share(g, ans, y, x), x),
    lambda g, ans, x, y: unbroadcast(_balanced_share(g, ans, x, y), y),
)

where = primitive(np.where)
defvjp(
    where,
    None,
    lambda g, ans, c, x, y: unbroadcast(where(c, g, _zero(g)), x),
    lambda g, ans, c, x, y: unbroadcast(where(c, _zero(g), g), y),
)

def _zero(g: Any) -> np.ndarray:
    # A 0-d zero of g's dtype: np.where is several times faster with it than with `0`.
    return np.zeros((), dtype=_dtype(g))


arctan2 = primitive(_ufunc(np.arctan2, 2))
# d atan2(y, x) = (x dy - y dx) / (x^2 + y^2)
defvjp(
    arctan2,
    lambda g, ans, y, x, *options, **kw: unbroadcast(g * x / (x * x + y * y), y),
    lambda g, ans, y, x, *options, **kw: unbroadcast(-g * y / (x * x + y * y), x),
)

logaddexp = primitive(_ufunc(np.logaddexp, 2))
# d log(e^x + e^y) / dx = e^(x - ans): at most 1, never overflows.
defvjp(
    logaddexp,
    lambda g, ans, x, y, *options, **kw: unbroadcast(g * exp(x - ans), x),
    lambda g, ans, x, y, *options, **kw: unbroadcast(g * exp(y - ans), y),
)


# ---------------------------------------------------------------------- reductions

sum = primitive(_method_first(np.sum))  # NumPy's name, shadowing the builtin here
defvjp(sum, lambda g, ans, x, axis=None, keepdims=False: _expand_reduced(g, x, axis, keepdims))

mean = primitive(_method_first(np.mean))
defvjp(
    mean,
    lambda g, ans, x, axis=None, keepdims=False: _expand_reduced(g, x, axis, keepdims)
    / _reduced_count(x, axis),
)


def _extremum_rule(g, ans, x, axis=None, keepdims=False):
    # Ties share the cotangent equally, so the gradient still sums to g.
    at_extremum = equal(x, _expand_reduced(ans, x, axis, keepdims)).astype(_dtype(x))
    ties = sum(at_extremum, axis=axis, keepdims=True)
    return _expand_reduced(g, x, axis, keepdims) * at_extremum / ties


max = primitive(_method_first(np.max))  # NumPy's name, shadowing the builtin here
amax = max
defvjp(max, _extremum_rule)

min = primitive(_method_first(np.min))  # NumPy's name, shadowing the builtin here
amin = min
defvjp(min, _extremum_rule)


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance, as NumPy computes it: mean squared deviation, divided by n - ddof."""
    deviation = x - mean(x, axis=axis, keepdims=True)
    n = _reduced_count(x, axis)
    return sum(deviation * deviation, axis=axis, keepdims=keepdims) / (n - ddof)


def std(x, axis=None, keepdims=False, ddof=0):
    """Standard deviation: the square root of `var`."""
    return sqrt(var(x, axis=axis, keepdims=keepdims, ddof=ddof))


def _prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    _unsupported("prod", dtype=dtype, out=out, initial=initial, where=where)
    return np.prod(a, axis=axis, keepdims=keepdims)


def _product_of_others(x: Any, axes: tuple[int, ...]) -> Any:
    """For each element of `x`, the product of the other elements of its slice over `axes`.

    Built from exclusive cumulative products from both ends, without division, so it is
    exact where some elements are 0 (the gradient of a product is then not ans / x)."""
    shape, nd = _shape(x), _ndim(x)
    rest = [i for i in range(nd) if i not in axes]
    order = rest + list(axes)
    moved = x if order == list(range(nd)) else transpose(x, tuple(order))
    n = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    if n == 0:
        return np.zeros(shape, dtype=_dtype(x))
    flat = reshape(moved, tuple(shape[i] for i in rest) + (n,))
    # a leading 1 is the product of nothing
    before = cumprod(_shifted(flat, "front", 1), axis=-1)
    after = flip(cumprod(_shifted(flip(flat, -1), "front", 1), axis=-1), -1)
    others = reshape(before * after, _shape(moved))
    return others if order == list(range(nd)) else transpose(others, tuple(np.argsort(order)))


def _prod_rule(g, ans, a, axis=None, dtype=None, out=None, keepdims=False, initial=None,
               where=None):
    axes = _axes(axis, _ndim(a))
    return _expand_reduced(g, a, axes, keepdims) * _product_of_others(a, axes)


prod = primitive(_prod)
prod.__name__ = "prod"
defvjp(prod, _prod_rule)


def _reverse_cumsum(g: Any, axis: int) -> Any:
    return flip(cumsum(flip(g, axis), axis), axis)


def _cumsum(a, axis=None, dtype=None, out=None):
    _unsupported("cumsum", dtype=dtype, out=out)
    return np.cumsum(a, axis=axis)


def _cumsum_rule(g, ans, a, axis=None, dtype=None, out=None):
    if axis is None:  # NumPy flattens first
        return reshape(_reverse_cumsum(g, 0), _shape(a))
    return _reverse_cumsum(g, axis)


cumsum = primitive(_cumsum)
cumsum.__name__ = "cumsum"
defvjp(cumsum, _cumsum_rule)


def _cumprod(a, axis=None, dtype=None, out=None):
    _unsupported("cumprod", dtype=dtype, out=out)
    return np.cumprod(a, axis=axis)


def _reverse_linear_scan(g, a):
    # s_j = g_j + a_j s_{j+1} along the last axis, s past the end being 0: a loop over the
    # axis, each step vectorised over the others.
    s = np.empty(np.broadcast_shapes(np.shape(g), np.shape(a)), dtype=np.result_type(g, a))
    carry = np.zeros(s.shape[:-1], dtype=s.dtype)
    for j in range(s.shape[-1] - 1, -1, -1):
        carry = g[..., j] + a[..., j] * carry
        s[..., j] = carry
    return s


def _shifted(x: Any, end: str, fill: float) -> Any:
    """`x` moved one place along the last axis, `fill` entering at the front or the back."""
    width = [(0, 0)] * (_ndim(x) - 1)
    if end == "front":
        return pad(x[..., :-1], width + [(1, 0)], constant_values=fill)
    return pad(x[..., 1:], width + [(0, 1)], constant_values=fill)


def _linear_scan(h: Any, a: Any) -> Any:
    """t_i = h_i + a_{i-1} t_{i-1} along the last axis: the transpose of the reverse scan."""
    return flip(reverse_linear_scan(flip(h, -1), _shifted(flip(a, -1), "back", 0)), -1)


reverse_linear_scan = primitive(_reverse_linear_scan)
reverse_linear_scan.__name__ = "reverse_linear_scan"
# s is linear in g with s = M(a) g; the cotangent of g is M(a)^T h, a forward scan t, and
# a_k scales s_{k+1} into s_k, so a_k gets t_k s_{k+1}.
defvjp(
    reverse_linear_scan,
    lambda g, ans, g_in, a: _linear_scan(g, a),
    lambda g, ans, g_in, a: _linear_scan(g, a) * _shifted(ans, "back", 0),
)


def _cumprod_vjp(g: Any, x: Any, axis: int) -> Any:
    # d ans_i / d x_j = prod_{k <= i, k != j} x_k for j <= i, so the cotangent of x_j is
    # (prod_{k < j} x_k) s_j with s_j = g_j + x_{j+1} s_{j+1}: no division, exact at zeros.
    x, g = moveaxis(x, axis, -1), moveaxis(g, axis, -1)
    before = cumprod(_shifted(x, "front", 1), axis=-1)
    return moveaxis(before * reverse_linear_scan(g, _shifted(x, "back", 0)), -1, axis)


def _cumprod_rule(g, ans, a, axis=None, dtype=None, out=None):
    if axis is None:  # NumPy flattens first
        return reshape(_cumprod_vjp(g, ravel(a), 0), _shape(a))
    return _cumprod_vjp(g, a, axis)


cumprod = primitive(_cumprod)
cumprod.__name__ = "cumprod"
defvjp(cumprod, _cumprod_rule)


# ------------------------------------------------------------------- linear algebra


def _matmul_rule_a(g, ans, a, b):
    a_ndim, b_ndim = _ndim(a), _ndim(b)
    if a_ndim == 2 and b_ndim == 2:  # the common case first: no broadcasting possible
        return matmul(g, transpose(b))
    if a_ndim == 1 and b_ndim == 1:
        return g * b
    if _ndim(b) == 1:  # (..., m, k) @ (k,) -> (..., m)
        return unbroadcast(expand_dims(g, -1) * b, a)
    if _ndim(a) == 1:  # (k,) @ (..., k, n) -> (..., n)
        return unbroadcast(matmul(b, expand_dims(g, -1))[..., 0], a)
    return unbroadcast(matmul(g, swapaxes(b, -1, -2)), a)


def _matmul_rule_b(g, ans, a, b):
    a_ndim, b_ndim = _ndim(a), _ndim(b)
    if a_ndim == 2 and b_ndim == 2:
        return matmul(transpose(a), g)
    if a_ndim == 1 and b_ndim == 1:
        return g * a
    if _ndim(b) == 1:
        return unbroadcast(matmul(swapaxes(a, -1, -2), expand_dims(g, -1))[..., 0], b)
    if _ndim(a) == 1:
        return unbroadcast(expand_dims(a, -1) * expand_dims(g, -2), b)
    return unbroadcast(matmul(swapaxes(a, -1, -2), g), b)


matmul = primitive(np.matmul)
defvjp(matmul, _matmul_rule_a, _matmul_rule_b)


def dot(a, b):
    """`np.dot` for scalars, vectors and matrices (use `matmul` or `einsum` beyond 2-D)."""
    if _ndim(a) == 0 or _ndim(b) == 0:
        return multiply(a, b)
    if _ndim(a) > 2 or _ndim(b) > 2:
        raise ValueError("anp.dot supports up to 2-D arguments; use anp.matmul or anp.einsum")
    return matmul(a, b)


transpose = primitive(_method_first(np.transpose))
defvjp(
    transpose,
    lambda g, ans, x, axes=None: transpose(g, None if axes is None else np.argsort(axes)),
)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_parts(subscripts: str, operands) -> tuple[list[str], str]:
    """The subscripts of each operand and of the output, with '...' written out as letters
    of its own: the ellipsis axes of all operands align from the right, as NumPy's do."""
    inputs, arrow, output = subscripts.replace(" ", "").partition("->")
    labels = inputs.split(",")
    if len(labels) != len(operands):
        raise ValueError(f"anp.einsum: {len(labels)} subscripts for {len(operands)} operands")
    for label in labels:
        bare = label.replace("...", "")
        if len(set(bare)) != len(bare):
            raise ValueError(f"anp.einsum: repeated index in {label!r} (a diagonal) is unsupported")
    spare = [c for c in _LETTERS if c not in subscripts]
    widths = [_ndim(op) - len(lab.replace("...", "")) if "..." in lab else 0
              for lab, op in zip(labels, operands)]
    width = builtins.max(widths, default=0)
    ellipsis = "".join(spare[:width])
    labels = [lab.replace("...", ellipsis[width - w:]) for lab, w in zip(labels, widths)]
    if arrow:
        return labels, output.replace("...", ellipsis)
    letters = "".join(labels)
    once = sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis)
    return labels, ellipsis + "".join(once)


def _einsum(subscripts, *operands):
    _einsum_parts(subscripts, operands)
    return np.einsum(subscripts, *operands)


def _einsum_rule(argnum, g, ans, subscripts, *operands):
    labels, output = _einsum_parts(subscripts, operands)
    mine = labels[argnum - 1]
    others = [(lab, op) for i, (lab, op) in enumerate(zip(labels, operands)) if i != argnum - 1]
    available = set(output).union(*[set(lab) for lab, _ in others])
    # Labels summed within this operand alone get the cotangent by broadcasting.
    kept = "".join(c for c in mine if c in available)
    spec = ",".join([output] + [lab for lab, _ in others]) + "->" + kept
    grad = einsum(spec, g, *[op for _, op in others])
    x = operands[argnum - 1]
    shape_kept = tuple(_shape(x)[mine.index(c)] if c in kept else 1 for c in mine)
    return broadcast_to(reshape(grad, shape_kept), _shape(x))


einsum = primitive(_einsum)
einsum.__name__ = "einsum"
defvjp_argnum(einsum, _einsum_rule)


def outer(a, b, out=None):
    """The outer product of `a` and `b`, both flattened: shape `(a.size, b.size)`."""
    _unsupported("outer", out=out)
    return multiply(reshape(ravel(a), (-1, 1)), reshape(ravel(b), (1, -1)))


def tensordot(a, b, axes=2):
    """Sum products over the last `axes` axes of `a` and the first of `b`, or over the
    axis pairs `axes = (axes_a, axes_b)`; computed as an `einsum`."""
    nd_a, nd_b = _ndim(a), _ndim(b)
    if isinstance(axes, (int, np.integer)):
        axes_a, axes_b = tuple(range(nd_a - int(axes), nd_a)), tuple(range(int(axes)))
    else:
        axes_a, axes_b = (_axes(ax, n) for ax, n in zip(axes, (nd_a, nd_b)))
    if len(axes_a) != len(axes_b):
        raise ValueError("anp.tensordot: the axes of a and b to sum over differ in number")
    labels_a = _LETTERS[:nd_a]
    fresh = iter(_LETTERS[nd_a:])
    summed = dict(zip(axes_b, (labels_a[i] for i in axes_a)))
    labels_b = "".join(summed[i] if i in summed else next(fresh) for i in range(nd_b))
    free_a = "".join(c for i, c in enumerate(labels_a) if i not in axes_a)
    free_b = "".join(c for i, c in enumerate(labels_b) if i not in axes_b)
    return einsum(f"{labels_a},{labels_b}->{free_a}{free_b}", a, b)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """The sum along a diagonal of `a` (see `diagonal`)."""
    _unsupported("trace", dtype=dtype, out=out)
    return sum(diagonal(a, offset, axis1, axis2), axis=-1)


# ----------------------------------------------------------------- shapes and indexing

reshape = primitive(_method_first(np.reshape))
defvjp(reshape, lambda g, ans, x, *shape, **kw: reshape(g, _shape(x)))

ravel = primitive(np.ravel)
defvjp(ravel, lambda g, ans, x: reshape(g, _shape(x)))

expand_dims = primitive(np.expand_dims)
defvjp(expand_dims, lambda g, ans, x, axis: reshape(g, _shape(x)))

squeeze = primitive(_method_first(np.squeeze))
defvjp(squeeze, lambda g, ans, x, axis=None: reshape(g, _shape(x)))

def _broadcast_to(x, shape):
    # A writable copy, made faster than np.broadcast_to makes its read-only view.
    if np.shape(x) == tuple(shape):
        return x
    out = np.empty(shape, dtype=_dtype(x))
    out[...] = x
    return out


broadcast_to = primitive(_broadcast_to)
broadcast_to.__name__ = "broadcast_to"
defvjp(broadcast_to, lambda g, ans, x, shape: unbroadcast(g, x))

moveaxis = primitive(np.moveaxis)
defvjp(moveaxis, lambda g, ans, x, source, destination: moveaxis(g, destination, source))

swapaxes = primitive(_method_first(np.swapaxes))
defvjp(swapaxes, lambda g, ans, x, axis1, axis2: swapaxes(g, axis1, axis2))


def _concatenate(*arrays, axis=0):
    return np.concatenate(arrays, axis=axis)


def _concatenate_rule(argnum, g, ans, *arrays, axis=0):
    axis = axis % _ndim(ans)
    start = builtins.sum(_shape(a)[axis] for a in arrays[:argnum])
    index = (slice(None),) * axis + (slice(start, start + _shape(arrays[argnum])[axis]),)
    return g[index]


_concatenate_op = primitive(_concatenate)
_concatenate_op.__name__ = "concatenate"
defvjp_argnum(_concatenate_op, _concatenate_rule)


def concatenate(arrays, axis=0):
    """Join a sequence of arrays along an existing axis."""
    return _concatenate_op(*arrays, axis=axis)


def _stack(*arrays, axis=0):
    return np.stack(arrays, axis=axis)


def _stack_rule(argnum, g, ans, *arrays, axis=0):
    axis = axis % _ndim(ans)
    return g[(slice(None),) * axis + (argnum,)]


_stack_op = primitive(_stack)
_stack_op.__name__ = "stack"
defvjp_argnum(_stack_op, _stack_rule)


def stack(arrays, axis=0):
    """Join a sequence of same-shaped arrays along a new axis."""
    return _stack_op(*arrays, axis=axis)


def _pad(x, pad_width, mode="constant", constant_values=0):
    if mode != "constant":
        raise ValueError("anp.pad supports mode='constant' only")
    return np.pad(x, pad_width, mode="constant", constant_values=constant_values)


def _pad_rule(g, ans, x, pad_width, mode="constant", constant_values=0):
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (_ndim(x), 2))
    return g[tuple(slice(int(lo), int(lo) + n) for (lo, _), n in zip(widths, _shape(x)))]


pad = primitive(_pad)
pad.__name__ = "pad"
defvjp(pad, _pad_rule)


def _getitem(x, index):
    return x[index]


def _is_basic_index(index) -> bool:
    # Slices, integers, None and Ellipsis select each element at most once, so the
    # cotangent can be assigned; integer arrays may repeat and must be accumulated.
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if isinstance(part, (np.ndarray, list)) and np.asarray(part).dtype != bool:
            return False
    return True


def _scatter_add(g, index, shape):
    result = np.zeros(shape, dtype=g.dtype)
    if _is_basic_index(index):
        result[index] = g
    else:
        np.add.at(result, index, g)
    return result


getitem = primitive(_getitem)
getitem.__name__ = "getitem"
scatter_add = primitive(_scatter_add)
scatter_add.__name__ = "scatter_add"
defvjp(getitem, lambda g, ans, x, index: scatter_add(g, index, _shape(x)))
defvjp(scatter_add, lambda g, ans, g_in, index, shape: getitem(g, index))


def _wrapped_indices(indices: Any, n: int, mode: str) -> np.ndarray:
    """`indices` as NumPy's take reads them under `mode`, for scattering back."""
    indices = np.asarray(indices)
    if mode == "wrap":
        return indices % builtins.max(n, 1)
    if mode == "clip":
        return np.clip(indices, 0, n - 1)
    return indices


def _take(a, indices, axis=None, out=None, mode="raise"):
    _unsupported("take", out=out)
    return np.take(a, indices, axis=axis, mode=mode)


def _untake(g, indices, axis, shape):
    # The transpose of take: each element of g is added where it was taken from.
    if axis is None:
        result = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=_dtype(g))
        np.add.at(result, indices, g)
        return result.reshape(shape)
    result = np.zeros(shape, dtype=_dtype(g))
    np.add.at(result, (slice(None),) * axis + (indices,), g)
    return result


def _take_rule(g, ans, a, indices, axis=None, out=None, mode="raise"):
    if axis is not None:
        axis = _axes(axis, _ndim(a))[0]
    n = _shape(a)[axis] if axis is not None else int(np.prod(_shape(a), dtype=np.int64))
    return untake(g, _wrapped_indices(indices, n, mode), axis, _shape(a))


take = primitive(_take)
take.__name__ = "take"
defvjp(take, _take_rule)
untake = primitive(_untake)
untake.__name__ = "untake"
defvjp(untake, lambda g, ans, g_in, indices, axis, shape: take(g, indices, axis=axis))


def _take_along_axis(arr, indices, axis=-1):
    return np.take_along_axis(arr, indices, axis=axis)


def _untake_along_axis(g, indices, axis, shape):
    # The transpose of take_along_axis: scatter-add g back along `axis`. Axes where arr
    # had size 1 and was broadcast against indices collect the sum over that axis.
    if axis is None:
        return _untake(g, indices, None, shape)
    index = []
    for d, n in enumerate(_shape(g)):
        if d == axis:
            index.append(indices)
            continue
        along = np.arange(n) if shape[d] == n else np.zeros(n, dtype=np.intp)
        index.append(along.reshape((1,) * d + (n,) + (1,) * (len(shape) - d - 1)))
    result = np.zeros(shape, dtype=_dtype(g))
    np.add.at(result, tuple(index), g)
    return result


def _take_along_axis_rule(g, ans, arr, indices, axis=-1):
    axis = None if axis is None else _axes(axis, _ndim(arr))[0]
    return untake_along_axis(g, np.asarray(indices), axis, _shape(arr))


take_along_axis = primitive(_take_along_axis)
take_along_axis.__name__ = "take_along_axis"
defvjp(take_along_axis, _take_along_axis_rule)
untake_along_axis = primitive(_untake_along_axis)
untake_along_axis.__name__ = "untake_along_axis"
defvjp(
    untake_along_axis,
    lambda g, ans, g_in, indices, axis, shape: take_along_axis(g, indices, axis=axis),
)


def repeat(a, repeats, axis=None):
    """Repeat each element of `a` (flattened when `axis` is None) `repeats` times: a take
    of each source index repeated, so the gradient sums over the copies."""
    n = int(np.prod(_shape(a), dtype=np.int64)) if axis is None else _shape(a)[axis]
    return take(a, np.repeat(np.arange(n), repeats), axis=axis)


def tile(A, reps):
    """`A` repeated `reps` times along each axis, as a broadcast between reshapes."""
    reps = tuple(np.atleast_1d(np.asarray(reps, dtype=np.int64)).tolist())
    nd = builtins.max(_ndim(A), len(reps))
    shape = (1,) * (nd - _ndim(A)) + tuple(_shape(A))
    reps = (1,) * (nd - len(reps)) + reps
    interleaved = [n for pair in zip((1,) * nd, shape) for n in pair]
    tiled = [n for pair in zip(reps, shape) for n in pair]
    result = broadcast_to(reshape(A, tuple(interleaved)), tuple(tiled))
    return reshape(result, tuple(r * n for r, n in zip(reps, shape)))


def _split_pieces(ary, indices_or_sections, axis, splitter):
    axis = _axes(axis, _ndim(ary))[0]
    positions = splitter(np.arange(_shape(ary)[axis]), indices_or_sections)
    pieces = []
    for p in positions:
        start, stop = (int(p[0]), int(p[-1]) + 1) if len(p) else (0, 0)
        pieces.append(ary[(slice(None),) * axis + (slice(start, stop),)])
    return pieces


def split(ary, indices_or_sections, axis=0):
    """A list of sub-arrays of `ary` along `axis`, as `np.split` cuts them (each a slice)."""
    return _split_pieces(ary, indices_or_sections, axis, np.split)


def array_split(ary, indices_or_sections, axis=0):
    """As `split`, but `indices_or_sections` need not divide the axis equally."""
    return _split_pieces(ary, indices_or_sections, axis, np.array_split)


def _atleast(x: Any, ndim: int) -> Any:
    if _ndim(x) >= ndim:
        return x
    if ndim == 1:
        return reshape(x, (1,))
    return reshape(x, (1,) * (2 - _ndim(x)) + tuple(_shape(x)))


def hstack(tup, *, dtype=None, casting="same_kind"):
    """Join arrays column-wise (1-D arrays end to end), as `np.hstack`."""
    _unsupported("hstack", dtype=dtype, casting=None if casting == "same_kind" else casting)
    arrays = [_atleast(a, 1) for a in tup]
    return concatenate(arrays, axis=0 if arrays and _ndim(arrays[0]) == 1 else 1)


def vstack(tup, *, dtype=None, casting="same_kind"):
    """Join arrays row-wise (1-D arrays become rows), as `np.vstack`."""
    _unsupported("vstack", dtype=dtype, casting=None if casting == "same_kind" else casting)
    return concatenate([_atleast(a, 2) for a in tup], axis=0)


flip = primitive(np.flip)
defvjp(flip, lambda g, ans, m, axis=None: flip(g, axis))


def _negated(shift: Any) -> Any:
    return tuple(-int(s) for s in shift) if isinstance(shift, (tuple, list)) else -shift


roll = primitive(np.roll)
defvjp(roll, lambda g, ans, a, shift, axis=None: roll(g, _negated(shift), axis))


def _undiagonal(g, offset, axis1, axis2, shape):
    # The transpose of diagonal: g written onto the diagonal of zeros of the input's shape.
    result = np.zeros(shape, dtype=_dtype(g))
    view = np.moveaxis(result, (axis1, axis2), (-2, -1))  # a writable view of result
    k = _shape(g)[-1]
    view[..., np.arange(k) + builtins.max(-offset, 0), np.arange(k) + builtins.max(offset, 0)] = g
    return result


diagonal = primitive(np.diagonal)
undiagonal = primitive(_undiagonal)
undiagonal.__name__ = "undiagonal"


def _diagonal_rule(g, ans, a, offset=0, axis1=0, axis2=1):
    axis1, axis2 = _axes((axis1, axis2), _ndim(a))
    return undiagonal(g, offset, axis1, axis2, _shape(a))


defvjp(diagonal, _diagonal_rule)
defvjp(undiagonal, lambda g, ans, g_in, offset, axis1, axis2, shape:
       diagonal(g, offset, axis1, axis2))

# tril/triu of a 1-D array broadcast it to a square first: unbroadcast sums it back.
tril = primitive(np.tril)
defvjp(tril, lambda g, ans, m, k=0: unbroadcast(tril(g, k), m))

triu = primitive(np.triu)
defvjp(triu, lambda g, ans, m, k=0: unbroadcast(triu(g, k), m))


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """`a` sorted along `axis` (flattened when None), as a gather by the stable argsort.

    The gradient follows the elements: the cotangent of each sorted position goes to the
    element that landed there. Equal elements keep their input order (the stable sort),
    so among ties the first in the input receives the first sorted position's cotangent,
    whatever `kind` says (the values are the same for every kind)."""
    _unsupported("sort", order=order)
    if axis is None:
        a, axis = ravel(a), -1
    permutation = np.argsort(unbox(a), axis=axis, kind="stable")
    return take_along_axis(a, permutation, axis=axis)


# -------------------------------------------------------------- stable composites


def _logsumexp(x, axis=None, keepdims=False):
    peak = np.max(x, axis=axis, keepdims=True)
    # An all -inf slice would give (-inf) - (-inf) = nan; its result is -inf either way.
    peak = np.where(np.isfinite(peak), peak, 0)
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer there
        total = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return total if keepdims else np.squeeze(total, axis=axis)


logsumexp = primitive(_logsumexp)
logsumexp.__name__ = "logsumexp"
# d logsumexp / dx = softmax(x) = exp(x - logsumexp(x))
defvjp(
    logsumexp,
    lambda g, ans, x, axis=None, keepdims=False: _expand_reduced(g, x, axis, keepdims)
    * exp(x - _expand_reduced(ans, x, axis, keepdims)),
)

# ------------------------------------------------- constants (nothing is recorded)

sign = nondifferentiable(np.sign)
floor = nondifferentiable(np.floor)
ceil = nondifferentiable(np.ceil)
round = nondifferentiable(np.round)  # NumPy's name, shadowing the builtin here
argmax = nondifferentiable(np.argmax)
argmin = nondifferentiable(np.argmin)
argsort = nondifferentiable(np.argsort)
equal = nondifferentiable(np.equal)
not_equal = nondifferentiable(np.not_equal)
less = nondifferentiable(np.less)
less_equal = nondifferentiable(np.less_equal)
greater = nondifferentiable(np.greater)
greater_equal = nondifferentiable(np.greater_equal)
logical_and = nondifferentiable(np.logical_and)
logical_or = nondifferentiable(np.logical_or)
logical_not = nondifferentiable(np.logical_not)
isfinite = nondifferentiable(np.isfinite)
isnan = nondifferentiable(np.isnan)
isinf = nondifferentiable(np.isinf)
zeros_like = nondifferentiable(np.zeros_like)
ones_like = nondifferentiable(np.ones_like)
full_like = nondifferentiable(np.full_like)
shape = nondifferentiable(np.shape)
ndim = nondifferentiable(np.ndim)
size = nondifferentiable(np.size)
allclose = nondifferentiable(np.allclose)
nonzero = nondifferentiable(np.nonzero)

zeros = np.zeros
ones = np.ones
full = np.full
empty = np.empty
eye = np.eye
arange = np.arange
linspace = np.linspace
float16, float32, float64 = np.float16, np.float32, np.float64
int32, int64, bool_ = np.int32, np.int64, np.bool_
newaxis = np.newaxis
pi, e, inf, nan = np.pi, np.e, np.inf, np.nan


def _contains_box(x: Any) -> bool:
    if type(x) is Box:
        return True
    return isinstance(x, (list, tuple)) and builtins.any(_contains_box(item) for item in x)


def array(obj: Any, dtype: Any = None) -> Any:
    """`np.array`, except that a (nested) list holding traced values is stacked, traced."""
    if _contains_box(obj):
        result = obj if type(obj) is Box else stack([array(item) for item in obj])
        return result if dtype is None else astype(result, dtype)
    return np.array(obj, dtype=dtype)


def asarray(obj: Any, dtype: Any = None) -> Any:
    """`np.asarray`; a traced array is returned as it is (cast if `dtype` differs)."""
    if _contains_box(obj):
        result = array(obj)
        if dtype is not None and np.dtype(dtype) != _dtype(result):
            result = astype(result, dtype)
        return result
    return np.asarray(obj, dtype=dtype)


def stop_gradient(x: Any) -> Any:
    """`x` (a pytree of arrays) as constants: its value passes, no gradient flows back
    through it, at any order of differentiation."""
    return tree_map(unbox, x)


# ------------------------------------------------------------------ Box operators

_BINARY = {
    "add": add, "sub": subtract, "mul": multiply, "truediv": divide, "pow": power,
    "matmul": matmul,
}


def _binary_methods(name: str, op) -> None:
    setattr(Box, f"__{name}__", op)  # a plain function: self becomes its first argument
    setattr(Box, f"__r{name}__", lambda self, other: op(other, self))


for _name, _op in _BINARY.items():
    _binary_methods(_name, _op)

Box.__neg__ = negative
Box.__pos__ = lambda self: self
Box.__abs__ = lambda self: abs(self)
Box.__eq__ = equal
Box.__ne__ = not_equal
Box.__lt__ = less
Box.__le__ = less_equal
Box.__gt__ = greater
Box.__ge__ = greater_equal
Box.__hash__ = object.__hash__
Box.__getitem__ = getitem
Box.__len__ = lambda self: len(self.value)
Box.__bool__ = lambda self: bool(self.value)
Box.shape = property(lambda self: _shape(self.value))
Box.ndim = property(lambda self: _ndim(self.value))
Box.size = property(lambda self: int(np.prod(_shape(self.value), dtype=np.int64)))
Box.dtype = property(lambda self: _dtype(self.value))
Box.T = property(lambda self: transpose(self))
Box.sum = lambda self, axis=None, keepdims=False: sum(self, axis=axis, keepdims=keepdims)
Box.mean = lambda self, axis=None, keepdims=False: mean(self, axis=axis, keepdims=keepdims)
Box.max = lambda self, axis=None, keepdims=False: max(self, axis=axis, keepdims=keepdims)
Box.min = lambda self, axis=None, keepdims=False: min(self, axis=axis, keepdims=keepdims)
Box.var = lambda self, axis=None, keepdims=False, ddof=0: var(self, axis, keepdims, ddof)
Box.std = lambda self, axis=None, keepdims=False, ddof=0: std(self, axis, keepdims, ddof)
Box.ravel = lambda self: ravel(self)
Box.flatten = lambda self: ravel(self)
Box.squeeze = lambda self, axis=None: squeeze(self, axis)
Box.dot = lambda self, other: dot(self, other)
Box.astype = lambda self, dtype: astype(self, dtype)
Box.argmax = lambda self, axis=None: argmax(self, axis=axis)
Box.argmin = lambda self, axis=None: argmin(self, axis=axis)


def _reshape_method(self, *shape, **kw):
    return reshape(self, shape[0] if len(shape) == 1 else shape, **kw)


def _transpose_method(self, *axes):
    if not axes or axes == (None,):
        return transpose(self)
    return transpose(self, axes[0] if len(axes) == 1 else axes)


Box.reshape = _reshape_method
Box.transpose = _transpose_method

_UFUNC_OPERATORS = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: divide,
    np.power: power, np.matmul: matmul, np.equal: equal, np.not_equal: not_equal,
    np.less: less, np.less_equal: less_equal, np.greater: greater,
    np.greater_equal: greater_equal,
}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    # `ndarray * box` reaches here through np.multiply: route the operators to their
    # traced versions; anything else would silently drop the gradient, so refuse it.
    if "out" in kwargs:
        raise TypeError(
            "autodiff: in-place operation on an array with a traced value "
            f"(np.{ufunc.__name__} with out=); traced arrays are immutable: write "
            "`x = x + y` instead of `x += y`"
        )
    op = _UFUNC_OPERATORS.get(ufunc)
    if method == "__call__" and op is not None and not kwargs:
        return op(*inputs)
    raise TypeError(
        f"autodiff: np.{ufunc.__name__} was called on a traced value; NumPy cannot "
        f"differentiate it. Use autodiff.numpy instead (import autodiff.numpy as anp; "
        f"anp.{ufunc.__name__}(...))"
    )


def _array_function(self, func, types, args, kwargs):
    raise TypeError(
        f"autodiff: np.{func.__name__} was called on a traced value; NumPy cannot "
        f"differentiate it. Use autodiff.numpy instead (import autodiff.numpy as anp; "
        f"anp.{func.__name__}(...))"
    )


def _array(self, dtype=None, copy=None):
    raise TypeError(
        "autodiff: a traced value cannot be converted to a NumPy array inside a function "
        "being differentiated; use autodiff.numpy ops on it (import autodiff.numpy as anp)"
    )


def _setitem(self, index, value):
    raise TypeError(
        "autodiff: traced arrays are immutable, so item assignment is not supported; "
        "build the result with anp.where, anp.concatenate or anp.stack instead"
    )


def _in_place(name: str):
    def refuse(self, other):
        raise TypeError(
            f"autodiff: in-place operator {name} on a traced array; traced arrays are "
            f"immutable: write `x = x {name[:-1]} y` instead of `x {name} y`"
        )

    return refuse


for _name, _symbol in [("iadd", "+="), ("isub", "-="), ("imul", "*="), ("itruediv", "/="),
                       ("ipow", "**="), ("imatmul", "@=")]:
    setattr(Box, f"__{_name}__", _in_place(_symbol))

Box.__array_ufunc__ = _array_ufunc
Box.__array_function__ = _array_function
Box.__array__ = _array
Box.__setitem__ = _setitem


def _to_python_number(self):
    raise TypeError(
        "autodiff: a traced value cannot become a Python number or be stored into a NumPy "
        "array inside a function being differentiated (the gradient would be lost); keep "
        "it as an array and use autodiff.numpy ops"
    )


Box.__float__ = _to_python_number
Box.__int__ = _to_python_number
Box.__complex__ = _to_python_number


# ndarray's reading methods; NumPy's in-place `sort` is refused. (`x.trace()` cannot be one:
# Box.trace is the trace recording the box; write anp.trace(x).)


def _prod_method(self, axis=None, dtype=None, out=None, keepdims=False, initial=None,
                 where=None):
    return prod(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims, initial=initial,
                where=where)


def _clip_method(self, min=None, max=None, out=None):
    _unsupported("clip", out=out)
    return clip(self, min, max)


def _sort_method(self, axis=-1, kind=None, order=None):
    raise TypeError(
        "autodiff: x.sort() sorts in place and traced arrays are immutable; "
        "write x = anp.sort(x) instead"
    )


Box.prod = _prod_method
Box.clip = _clip_method
Box.sort = _sort_method
Box.copy = lambda self, order="C": copy(self, order=order)
Box.cumsum = lambda self, axis=None, dtype=None, out=None: cumsum(self, axis, dtype, out)
Box.cumprod = lambda self, axis=None, dtype=None, out=None: cumprod(self, axis, dtype, out)
Box.repeat = lambda self, repeats, axis=None: repeat(self, repeats, axis)
Box.take = lambda self, indices, axis=None, out=None, mode="raise": take(
    self, indices, axis=axis, out=out, mode=mode)
Box.diagonal = lambda self, offset=0, axis1=0, axis2=1: diagonal(self, offset, axis1, axis2)
Box.swapaxes = lambda self, axis1, axis2: swapaxes(self, axis1, axis2)
Box.argsort = lambda self, axis=-1, kind=None, order=None: argsort(self, axis, kind, order)
# Not anp.any/anp.all: those names would shadow the builtins throughout this module.
Box.any = lambda self, *args, **kwargs: np.any(unbox(self), *args, **kwargs)
Box.all = lambda self, *args, **kwargs: np.all(unbox(self), *args, **kwargs)
Box.nonzero = lambda self: nonzero(self)
Box.round = lambda self, decimals=0: round(self, decimals)

# linalg's ops are built on the ones above, so it is imported last.
from autodiff import linalg  # noqa: E402, F401  (anp.linalg)

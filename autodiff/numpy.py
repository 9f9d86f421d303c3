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
import functools
import operator
from typing import Any

import numpy as np

try:
    from numpy.exceptions import AxisError
except ImportError:  # NumPy before 1.25
    from numpy import AxisError

from autodiff import parallel
from autodiff.core import (
    Box,
    defvjp,
    defvjp_argnum,
    nondifferentiable,
    primitive,
    unbox,
)
from autodiff.core import dtype_of as _dtype
from autodiff.core import read_only as _read_only
from autodiff.core import shape_of as _shape
from autodiff.settings import refuse_given as _refuse
from autodiff.tree import tree_map

# ----------------------------------------------------------------------------- helpers


def _ndim(x: Any) -> int:
    ndim = getattr(x, "ndim", None)  # an array's or a Box's
    return len(np.shape(x)) if ndim is None else ndim


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (None, an int-like, possibly negative, or a sequence of them) as non-negative
    ints in the order given (pairs such as tensordot's keep their order); None means every
    axis. An axis out of range is NumPy's AxisError, never wrapped around (a 0-d array
    takes 0 and -1, as NumPy's reductions do)."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    size = builtins.max(ndim, 1)
    result = []
    for a in axes:
        a = operator.index(a)
        if not -size <= a < size:
            raise AxisError(a, ndim)
        result.append(a % size)
    return tuple(result)


def unbroadcast(g: Any, x: Any) -> Any:
    """Sum the cotangent `g` back down to the shape of the argument `x`, undoing NumPy
    broadcasting."""
    try:
        # the common case, checked first because it is hot
        if g.shape == x.shape and (g.dtype is x.dtype or g.dtype == x.dtype):
            return g
    except AttributeError:
        pass
    shape, g_shape = _shape(x), _shape(g)
    if g_shape != shape:
        lead = len(g_shape) - len(shape)
        if lead > 0 and shape and g_shape[lead:] == shape:  # leading axes only: no reshape
            g = sum(g, axis=tuple(range(lead)))
        else:
            axes = tuple(range(lead)) + tuple(
                lead + i for i, n in enumerate(shape) if n == 1 and g_shape[lead + i] != 1
            )
            if axes:
                g = sum(g, axis=axes)
            g = reshape(g, shape)
    # A float64 constant (e.g. log(2.0) in the rule of 2.0 ** x) must not promote the
    # cotangent of a float32 argument: cotangents keep their argument's dtype.
    dtype = getattr(x, "dtype", None)
    if dtype is not None and dtype.kind == "f" and _dtype(g) != dtype:
        g = astype(g, dtype)
    return g


def _expand_reduced(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """Broadcast the cotangent of a reduction over `axis` back to the shape of `x`."""
    shape = _shape(x)
    if not keepdims and axis is not None:  # put back the reduced axes, as 1s
        axes = _axes(axis, len(shape))
        g = reshape(g, tuple(1 if i in axes else n for i, n in enumerate(shape)))
    return broadcast_to(g, shape)  # a 0-d g (axis None) broadcasts as it is


def _reduced_count(x: Any, axis: Any) -> int:
    shape = _shape(x)
    return int(np.prod([shape[a] for a in _axes(axis, len(shape))], dtype=np.int64))


def _divide_by_count(total: Any, count: int) -> Any:
    # In float16 a count above 65,504 is inf, and total / inf is 0: divide in float32.
    if _dtype(total) == np.float16:
        return astype(astype(total, np.float32) / count, np.float16)
    return total / count


def _method_first(function):
    """`function`, calling the ndarray method of the same name when given an ndarray: the
    methods are C code, while np.sum and friends first pass through Python wrappers that
    cost more than the work itself on small arrays. The ndarray methods take the same
    arguments as the functions, less the array."""
    name = function.__name__

    @functools.wraps(function)
    def raw(a, *args, **kwargs):
        if type(a) is np.ndarray:
            return getattr(a, name)(*args, **kwargs)
        return function(a, *args, **kwargs)

    return raw


def _traced(*trees: Any) -> bool:
    return builtins.any(_contains_box(tree) for tree in trees)


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


def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None, **kwargs):
    """`np.clip`, as `minimum(maximum(a, a_min), a_max)` when traced (as JAX does it), so
    that traced and broadcasting bounds get their gradients too."""
    low = a_min if min is None else min
    high = a_max if max is None else max
    if not _traced(a, low, high):
        return np.clip(a, low, high, out=out, **kwargs)
    _refuse("clip", out=out, **kwargs)
    if low is not None:
        a = maximum(a, low)
    return a if high is None else minimum(a, high)


def _astype(x, dtype, /, *, copy=True, device=None):
    if isinstance(x, (np.ndarray, np.generic)):
        return x.astype(dtype, copy=copy)
    return np.astype(np.asarray(x), dtype, copy=copy, device=device)


_astype_op = primitive(_astype)
_astype_op.__name__ = "astype"
defvjp(_astype_op, lambda g, ans, x, dtype, copy=True, device=None: astype(g, _dtype(x)))


def astype(x, dtype, /, *, copy=True, device=None):
    """`x` cast to `dtype`. Only a cast to a float dtype carries a gradient: a traced value
    cast to an integer or bool is a constant (its derivative is 0, as for `floor`)."""
    if type(x) is Box and np.dtype(dtype).kind != "f":
        if np.dtype(dtype).kind == "c":
            raise TypeError("autodiff: complex numbers are not supported; cast to a float dtype")
        return _astype(unbox(x), dtype, copy=copy)
    return _astype_op(x, dtype, copy=copy, device=device)


_LOG_2, _LOG_10 = float(np.log(2)), float(np.log(10))  # Python floats keep float32 float32

log2 = primitive(np.log2)
defvjp(log2, lambda g, ans, x: g / (x * _LOG_2))

log10 = primitive(np.log10)
defvjp(log10, lambda g, ans, x: g / (x * _LOG_10))

sinh = primitive(np.sinh)
defvjp(sinh, lambda g, ans, x: g * cosh(x))

cosh = primitive(np.cosh)
defvjp(cosh, lambda g, ans, x: g * sinh(x))

tan = primitive(np.tan)
defvjp(tan, lambda g, ans, x: g * (1 + ans * ans))

arctan = primitive(np.arctan)
defvjp(arctan, lambda g, ans, x: g / (1 + x * x))

copy = primitive(np.copy)
# The copy's memory order does not change its values, so the cotangent passes as it is.
defvjp(copy, lambda g, ans, a, order="K", subok=False: g)


# ------------------------------------------------------------ binary (broadcasting)

# The rules of the ops that broadcast (here and below) return cotangents in the result's
# shape: the sweep sums them down to each argument's shape (and casts them to its dtype)
# with unbroadcast, their `fit`, only where the shapes or dtypes differ, and so makes no
# call on every other step.
def _passed_on(g, ans, x, y):
    # d(x + y)/dx = d(x + y)/dy = 1: both arguments get the cotangent as it is.
    return g


add = primitive(np.add)
defvjp(add, _passed_on, _passed_on, fit=unbroadcast)

subtract = primitive(np.subtract)
defvjp(
    subtract,
    lambda g, ans, x, y: g,
    lambda g, ans, x, y: -g,
    fit=unbroadcast,
)

multiply = primitive(np.multiply)
defvjp(
    multiply,
    lambda g, ans, x, y: g * y,
    lambda g, ans, x, y: x * g,
    fit=unbroadcast,
)

divide = primitive(np.true_divide)
true_divide = divide
defvjp(
    divide,
    lambda g, ans, x, y: g / y,
    # d(x/y)/dy = -x/y^2 = -ans/y
    lambda g, ans, x, y: -g * ans / y,
    fit=unbroadcast,
)


def _log_where_positive(x, dtype):
    # d(x^y)/dy = x^y log x; where x <= 0 the real power is only defined for integer y,
    # and its derivative in y does not exist, so those entries contribute 0 instead of NaN.
    # A constant base (2.0 in 2.0 ** x) is a float64: its log is cast to the result's dtype.
    positive = greater(x, 0)
    logs = _where_op(positive, log(_where_op(positive, x, 1)), 0)
    return logs if _dtype(logs) == dtype else astype(logs, dtype)


def _power_rule_x(g, ans, x, y):
    # d(x^y)/dx = y x^(y-1); where y == 0 it is 0, even at x == 0 where x^(y-1) is inf.
    # x is replaced by 1 there before the power, so that the branch `where` does not
    # select stays finite and its (zero) cotangent cannot become 0 * inf = NaN.
    zero = equal(y, 0)
    safe_x = _where_op(zero, 1, x) if builtins.any(np.ravel(zero)) else x
    return _where_op(zero, 0, g * y * safe_x ** (y - 1))


power = primitive(np.power)
defvjp(
    power,
    _power_rule_x,
    lambda g, ans, x, y: g * ans * _log_where_positive(x, _dtype(ans)),
    fit=unbroadcast,
)


def _balanced_share(g, ans, x, y):
    # g goes where x won; where x and y tie, each gets half, so the shares still sum to g.
    x = unbox(x) if type(x) is Box else x
    y = unbox(y) if type(y) is Box else y
    wins = np.greater(x, y)
    ties = np.equal(x, y)
    if ties.any():
        return g * (wins + 0.5 * ties).astype(_dtype(ans))
    return g * wins


maximum = primitive(np.maximum)
defvjp(
    maximum,
    lambda g, ans, x, y: _balanced_share(g, ans, x, y),
    lambda g, ans, x, y: _balanced_share(g, ans, y, x),
    fit=unbroadcast,
)

minimum = primitive(np.minimum)
defvjp(
    minimum,
    lambda g, ans, x, y: _balanced_share(g, ans, y, x),
    lambda g, ans, x, y: _balanced_share(g, ans, x, y),
    fit=unbroadcast,
)

_where_op = primitive(np.where)  # the op of where(condition, x, y)
defvjp(
    _where_op,
    None,
    lambda g, ans, c, x, y: _where_op(c, g, _zero(g)),
    lambda g, ans, c, x, y: _where_op(c, _zero(g), g),
    fit=unbroadcast,
)


_NOT_GIVEN = object()


def where(condition, x=_NOT_GIVEN, y=_NOT_GIVEN, /):
    """`x` where `condition` holds, `y` elsewhere; with the condition alone, the indices
    where it holds (`np.nonzero`), constants."""
    if x is _NOT_GIVEN and y is _NOT_GIVEN:
        return np.where(unbox(condition))
    if x is _NOT_GIVEN or y is _NOT_GIVEN:
        raise ValueError("either both or neither of x and y should be given")
    return _where_op(condition, x, y)


def _zero(g: Any) -> np.ndarray:
    # A 0-d zero of g's dtype: np.where is several times faster with it than with `0`.
    # One per dtype, read-only, made once.
    dtype = _dtype(g)
    zero = _ZEROS.get(dtype)
    if zero is None:
        zero = _ZEROS[dtype] = np.zeros((), dtype=dtype)
        zero.flags.writeable = False
    return zero


_ZEROS: dict = {}


arctan2 = primitive(np.arctan2)
# d atan2(y, x) = (x dy - y dx) / (x^2 + y^2)
defvjp(
    arctan2,
    lambda g, ans, y, x: g * x / (x * x + y * y),
    lambda g, ans, y, x: -g * y / (x * x + y * y),
    fit=unbroadcast,
)

logaddexp = primitive(np.logaddexp)
# d log(e^x + e^y) / dx = e^(x - ans): at most 1, never overflows.
defvjp(
    logaddexp,
    lambda g, ans, x, y: g * exp(x - ans),
    lambda g, ans, x, y: g * exp(y - ans),
    fit=unbroadcast,
)


# ---------------------------------------------------------------------- reductions

sum = primitive(_method_first(np.sum))  # NumPy's name, shadowing the builtin here
defvjp(sum, lambda g, ans, x, axis=None, keepdims=False: _expand_reduced(g, x, axis, keepdims))

mean = primitive(_method_first(np.mean))
defvjp(
    mean,
    lambda g, ans, x, axis=None, keepdims=False: _divide_by_count(
        _expand_reduced(g, x, axis, keepdims), _reduced_count(x, axis)),
)


_mean_op = mean  # for functions whose `mean=` setting hides the op


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


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Variance, as NumPy computes it: mean squared deviation, divided by n - ddof."""
    if not _traced(a, where, mean):
        return np.var(a, axis, dtype, out, ddof, keepdims, **_given(where=where, mean=mean,
                                                                   correction=correction))
    _refuse("var", dtype=dtype, out=out, where=where, mean=mean)
    if correction is not None and ddof != 0:
        raise ValueError("ddof and correction can't be provided simultaneously.")
    ddof = ddof if correction is None else correction
    deviation = a - _mean_op(a, axis=axis, keepdims=True)
    n = _reduced_count(a, axis)
    return _divide_by_count(sum(deviation * deviation, axis=axis, keepdims=keepdims), n - ddof)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Standard deviation: the square root of `var`. Where the variance is 0 (one value, or
    equal values) the derivative is taken as 0, as HIPS autograd and PyTorch do, not as
    sqrt's 1 / 0 times var's 0 = NaN."""
    if not _traced(a, where, mean):
        return np.std(a, axis, dtype, out, ddof, keepdims, **_given(where=where, mean=mean,
                                                                   correction=correction))
    v = var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean, correction=correction)
    positive = greater(v, 0)
    return _where_op(positive, sqrt(_where_op(positive, v, 1)), 0)


def _given(**settings: Any) -> dict:
    return {name: value for name, value in settings.items() if value is not None}


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


def _prod_rule(g, ans, a, axis=None, keepdims=False):
    if _ndim(a) == 0:  # the product of the one entry (NumPy takes axis 0 or -1 here)
        return reshape(g, ())
    axes = _axes(axis, _ndim(a))
    return _expand_reduced(g, a, axes, keepdims) * _product_of_others(a, axes)


prod = primitive(_method_first(np.prod))
defvjp(prod, _prod_rule)


def _reverse_cumsum(g: Any, axis: int) -> Any:
    return flip(cumsum(flip(g, axis), axis), axis)


def _cumsum_rule(g, ans, a, axis=None):
    if axis is None or _ndim(a) == 0:  # NumPy flattens first (a 0-d a to one entry)
        return reshape(_reverse_cumsum(g, 0), _shape(a))
    return _reverse_cumsum(g, axis)


cumsum = primitive(np.cumsum)
defvjp(cumsum, _cumsum_rule)


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


def _cumprod_rule(g, ans, a, axis=None):
    if axis is None or _ndim(a) == 0:  # NumPy flattens first (a 0-d a to one entry)
        return reshape(_cumprod_vjp(g, ravel(a), 0), _shape(a))
    return _cumprod_vjp(g, a, axis)


cumprod = primitive(np.cumprod)
defvjp(cumprod, _cumprod_rule)


# ------------------------------------------------------------------- linear algebra


def _transposed(x: Any) -> Any:
    # `x.T` of an array costs no op call; `_product` then multiplies arrays directly.
    return x.T if type(x) is np.ndarray else transpose(x)


def _product(x: Any, y: Any) -> Any:
    # Arrays: parallel.matmul at once (it shares out large products), no op call; traced
    # values (higher-order derivatives): the matmul op, recorded on the tape.
    if type(x) is np.ndarray and type(y) is np.ndarray:
        return parallel.matmul(x, y)
    return matmul(x, y)


def _matmul_rule_a(g, ans, a, b):
    # The common case first, without calls: 2-D arrays (g and b 2-D: so is a).
    if type(g) is np.ndarray and type(b) is np.ndarray and g.ndim == 2 and b.ndim == 2:
        return parallel.matmul(g, b.T)
    a_ndim, b_ndim = _ndim(a), _ndim(b)
    if a_ndim == 2 and b_ndim == 2:  # no broadcasting possible
        return _product(g, _transposed(b))
    if a_ndim == 1 and b_ndim == 1:
        return g * b
    if _ndim(b) == 1:  # (..., m, k) @ (k,) -> (..., m)
        return unbroadcast(expand_dims(g, -1) * b, a)
    if _ndim(a) == 1:  # (k,) @ (..., k, n) -> (..., n)
        return unbroadcast(matmul(b, expand_dims(g, -1))[..., 0], a)
    return unbroadcast(matmul(g, swapaxes(b, -1, -2)), a)


def _matmul_rule_b(g, ans, a, b):
    # The common case first, without calls: 2-D arrays (a and g 2-D: so is b).
    if type(g) is np.ndarray and type(a) is np.ndarray and g.ndim == 2 and a.ndim == 2:
        return parallel.matmul(a.T, g)
    a_ndim, b_ndim = _ndim(a), _ndim(b)
    if a_ndim == 2 and b_ndim == 2:
        return _product(_transposed(a), g)
    if a_ndim == 1 and b_ndim == 1:
        return g * a
    if _ndim(b) == 1:
        return unbroadcast(matmul(swapaxes(a, -1, -2), expand_dims(g, -1))[..., 0], b)
    if _ndim(a) == 1:
        return unbroadcast(expand_dims(a, -1) * expand_dims(g, -2), b)
    return unbroadcast(matmul(swapaxes(a, -1, -2), g), b)


matmul = primitive(parallel.matmul)
defvjp(matmul, _matmul_rule_a, _matmul_rule_b)


def dot(a, b, out=None):
    """`np.dot` for scalars, vectors and matrices (use `matmul` or `einsum` beyond 2-D)."""
    if not _traced(a, b):
        return np.dot(a, b, out)
    _refuse("dot", out=out)
    if _ndim(a) == 0 or _ndim(b) == 0:
        return multiply(a, b)
    if _ndim(a) > 2 or _ndim(b) > 2:
        raise ValueError("anp.dot supports up to 2-D arguments; use anp.matmul or anp.einsum")
    return matmul(a, b)


def _transpose(a, axes=None):
    return a.transpose(axes) if type(a) is np.ndarray else np.transpose(a, axes)


def _inverse_permutation(axes, ndim: int) -> tuple[int, ...]:
    # Negative axes count from the end: normalize before inverting.
    return tuple(int(i) for i in np.argsort([operator.index(a) % ndim for a in np.ravel(axes)]))


transpose = primitive(_transpose)
transpose.__name__ = "transpose"
defvjp(
    transpose,
    lambda g, ans, x, axes=None: transpose(
        g, None if axes is None else _inverse_permutation(axes, _ndim(x))),
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
    grad = _einsum_op(spec, g, *[op for _, op in others])
    x = operands[argnum - 1]
    x_shape = _shape(x)
    # A label of size 1 here that another operand broadcasts to size n: sum it back.
    broadcast = tuple(i for i, c in enumerate(kept)
                      if x_shape[mine.index(c)] == 1 and _shape(grad)[i] != 1)
    if broadcast:
        grad = sum(grad, axis=broadcast, keepdims=True)
    # A label of size 1 in every other operand but n here: the cotangent broadcasts.
    shape_kept = tuple(_shape(grad)[kept.index(c)] if c in kept else 1 for c in mine)
    return broadcast_to(reshape(grad, shape_kept), x_shape)


_einsum_op = primitive(_einsum)
_einsum_op.__name__ = "einsum"
defvjp_argnum(_einsum_op, _einsum_rule)


def _sublist(labels) -> str:
    return "".join("..." if label is Ellipsis else _LETTERS[operator.index(label)]
                   for label in labels)


def _interleaved(args: tuple) -> tuple[str, tuple]:
    """`einsum(a, [0, 1], b, [1, 2], [0, 2])` as `("ab,bc->ac", (a, b))`."""
    operands, sublists = args[0::2], args[1::2]
    output = None
    if len(args) % 2:  # a trailing output sublist
        operands, output = operands[:-1], args[-1]
    spec = ",".join(_sublist(s) for s in sublists)
    return (spec if output is None else spec + "->" + _sublist(output)), operands


def einsum(*operands, out=None, optimize=False, **kwargs):
    """`np.einsum`, in the subscripts form or the interleaved (sublist) form, with any
    number of operands and '...'; each axis labelled at most once per operand (no
    diagonals such as 'ii->i' on traced values)."""
    if not _traced(operands):
        return np.einsum(*operands, out=out, optimize=optimize, **kwargs)
    _refuse("einsum", out=out, **kwargs)
    if isinstance(operands[0], str):
        return _einsum_op(*operands)
    subscripts, arrays = _interleaved(operands)
    return _einsum_op(subscripts, *arrays)


def outer(a, b, out=None):
    """The outer product of `a` and `b`, both flattened: shape `(a.size, b.size)`."""
    if not _traced(a, b):
        return np.outer(a, b, out)
    _refuse("outer", out=out)
    return multiply(reshape(ravel(a), (-1, 1)), reshape(ravel(b), (1, -1)))


def tensordot(a, b, axes=2):
    """Sum products over the last `axes` axes of `a` and the first of `b`, or over the
    axis pairs `axes = (axes_a, axes_b)`; computed as an `einsum`."""
    nd_a, nd_b = _ndim(a), _ndim(b)
    if isinstance(axes, (int, np.integer)):
        count = int(axes)
        if not 0 <= count <= builtins.min(nd_a, nd_b):
            raise ValueError(f"anp.tensordot: axes={count} must be between 0 and the smaller "
                             f"rank, {builtins.min(nd_a, nd_b)} (the ranks are {nd_a} and {nd_b})")
        axes_a, axes_b = tuple(range(nd_a - count, nd_a)), tuple(range(count))
    else:
        axes_a, axes_b = (_axes(ax, n) for ax, n in zip(axes, (nd_a, nd_b)))
    if len(axes_a) != len(axes_b):
        raise ValueError("anp.tensordot: the axes of a and b to sum over differ in number")
    if len(set(axes_a)) < len(axes_a) or len(set(axes_b)) < len(axes_b):
        raise ValueError(f"anp.tensordot: an axis is named twice in axes={axes!r}")
    labels_a = _LETTERS[:nd_a]
    fresh = iter(_LETTERS[nd_a:])
    summed = dict(zip(axes_b, (labels_a[i] for i in axes_a)))
    labels_b = "".join(summed[i] if i in summed else next(fresh) for i in range(nd_b))
    free_a = "".join(c for i, c in enumerate(labels_a) if i not in axes_a)
    free_b = "".join(c for i, c in enumerate(labels_b) if i not in axes_b)
    return einsum(f"{labels_a},{labels_b}->{free_a}{free_b}", a, b)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """The sum along a diagonal of `a` (see `diagonal`)."""
    if not _traced(a):
        return np.trace(a, offset, axis1, axis2, dtype, out)
    _refuse("trace", dtype=dtype, out=out)
    return sum(diagonal(a, offset, axis1, axis2), axis=-1)


# ----------------------------------------------------------------- shapes and indexing

def _reshape(a, /, shape=None, order="C", *, copy=None):
    if type(a) is np.ndarray:
        if order == "C" and copy is None:
            return a.reshape(shape)  # positional: the common call, made cheaply
        return a.reshape(shape, order=order, copy=copy)
    return np.reshape(a, shape, order=order, copy=copy)


def _index_order(x: Any, order: str) -> str:
    """The order ('C' or 'F') in which `order` reads the elements of `x`."""
    order = order.upper() if isinstance(order, str) else order
    if order in ("C", "F", None):
        return order or "C"
    flags = np.asarray(unbox(x)).flags
    if order == "A" or (order == "K" and (flags.c_contiguous or flags.f_contiguous)):
        return "F" if flags.f_contiguous and not flags.c_contiguous else "C"
    raise ValueError(
        f"autodiff: order={order!r} on a traced array that is neither C- nor F-contiguous "
        "reads it in memory order, which has no gradient rule here; use order='C' or 'F'"
    )


reshape = primitive(_reshape)
reshape.__name__ = "reshape"
# The cotangent is read back in the order in which the forward pass read the elements.
defvjp(reshape, lambda g, ans, x, shape=None, order="C", copy=None: reshape(
    g, _shape(x), order=_index_order(x, order)))

ravel = primitive(np.ravel)
defvjp(ravel, lambda g, ans, x, order="C": reshape(g, _shape(x), order=_index_order(x, order)))

expand_dims = primitive(np.expand_dims)
defvjp(expand_dims, lambda g, ans, x, axis: reshape(g, _shape(x)))

squeeze = primitive(_method_first(np.squeeze))
defvjp(squeeze, lambda g, ans, x, axis=None: reshape(g, _shape(x)))

def _broadcast_to(array, shape, subok=False):
    # A writable copy, made faster than np.broadcast_to makes its read-only view.
    if type(shape) is not tuple:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if _shape(array) == shape:
        return array
    out = np.empty(shape, dtype=_dtype(array))
    out[...] = array
    return out


broadcast_to = primitive(_broadcast_to)
broadcast_to.__name__ = "broadcast_to"
defvjp(broadcast_to, lambda g, ans, x, shape, subok=False: unbroadcast(g, x))

moveaxis = primitive(np.moveaxis)
defvjp(moveaxis, lambda g, ans, x, source, destination: moveaxis(g, destination, source))

def _swapaxes(a, axis1, axis2):
    return a.swapaxes(axis1, axis2) if type(a) is np.ndarray else np.swapaxes(a, axis1, axis2)


swapaxes = primitive(_swapaxes)
swapaxes.__name__ = "swapaxes"
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


def concatenate(arrays, /, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """Join a sequence of arrays along an existing axis (axis=None: flattened first)."""
    if not _traced(arrays):
        return np.concatenate(arrays, axis, out, dtype=dtype, casting=casting)
    _refuse("concatenate", out=out, dtype=dtype)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    return _concatenate_op(*arrays, axis=operator.index(axis))


def _stack(*arrays, axis=0):
    return np.stack(arrays, axis=axis)


def _stack_rule(argnum, g, ans, *arrays, axis=0):
    axis = axis % _ndim(ans)
    return g[(slice(None),) * axis + (argnum,)]


_stack_op = primitive(_stack)
_stack_op.__name__ = "stack"
defvjp_argnum(_stack_op, _stack_rule)


def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """Join a sequence of same-shaped arrays along a new axis."""
    if not _traced(arrays):
        return np.stack(arrays, axis, out, dtype=dtype, casting=casting)
    _refuse("stack", out=out, dtype=dtype)
    return _stack_op(*arrays, axis=operator.index(axis))


def _pad(array, pad_width, mode="constant", **kwargs):
    if mode != "constant" or kwargs.keys() - {"constant_values"}:
        raise ValueError("anp.pad supports mode='constant' (and constant_values=) only")
    return np.pad(array, pad_width, mode="constant", **kwargs)


def _pad_rule(g, ans, x, pad_width, mode="constant", constant_values=0):
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (_ndim(x), 2))
    return g[tuple(slice(int(lo), int(lo) + n) for (lo, _), n in zip(widths, _shape(x)))]


pad = primitive(_pad)
pad.__name__ = "pad"
defvjp(pad, _pad_rule)


def _getitem(x, index):
    return x[index]


def _is_basic_index(index) -> bool:
    # Slices, integers, None, Ellipsis and boolean masks select each element at most
    # once, so the cotangent can be assigned; integer arrays, lists and tuples inside an
    # index (x[:, (0, 0)]) may repeat positions and must be accumulated.
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if isinstance(part, (np.ndarray, list, tuple)) and np.asarray(part).dtype != bool:
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


def _untake(g, indices, axis, shape):
    # The transpose of take: each element of g is added where it was taken from.
    if axis is None:
        result = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=_dtype(g))
        np.add.at(result, indices, g)
        return result.reshape(shape)
    result = np.zeros(shape, dtype=_dtype(g))
    np.add.at(result, (slice(None),) * axis + (indices,), g)
    return result


def _take_rule(g, ans, a, indices, axis=None, mode="raise"):
    if axis is not None:
        axis = _axes(axis, _ndim(a))[0]
    n = _shape(a)[axis] if axis is not None else int(np.prod(_shape(a), dtype=np.int64))
    return untake(g, _wrapped_indices(indices, n, mode), axis, _shape(a))


take = primitive(np.take)
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
    if axis is None:
        n = int(np.prod(_shape(a), dtype=np.int64))
    else:
        n = _shape(a)[_axes(axis, _ndim(a))[0]]  # NumPy's AxisError when out of range
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
    if not _traced(tup):
        return np.hstack(tup, dtype=dtype, casting=casting)
    _refuse("hstack", dtype=dtype, casting=None if casting == "same_kind" else casting)
    arrays = [_atleast(a, 1) for a in tup]
    return concatenate(arrays, axis=0 if arrays and _ndim(arrays[0]) == 1 else 1)


def vstack(tup, *, dtype=None, casting="same_kind"):
    """Join arrays row-wise (1-D arrays become rows), as `np.vstack`."""
    if not _traced(tup):
        return np.vstack(tup, dtype=dtype, casting=casting)
    _refuse("vstack", dtype=dtype, casting=None if casting == "same_kind" else casting)
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
    if not _traced(a):
        return np.sort(a, axis, kind, order, **_given(stable=stable))
    _refuse("sort", order=order)
    if axis is None:
        a, axis = ravel(a), -1
    permutation = np.argsort(unbox(a), axis=axis, kind="stable")
    return take_along_axis(a, permutation, axis=axis)


# -------------------------------------------------------------- stable composites


def _logsumexp(x, axis=None, keepdims=False):
    peak = np.asarray(x).max(axis=axis, keepdims=True, initial=-np.inf)  # -inf if empty
    finite = np.isfinite(peak)
    if finite.all():  # each sum of exps is then at least 1 (the peak's own)
        total = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    else:
        # An all -inf slice would give (-inf) - (-inf) = nan; its result is -inf either way.
        peak = np.where(finite, peak, 0)
        with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer there
            total = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return total if keepdims else np.squeeze(total, axis=axis)


logsumexp = primitive(_logsumexp)
logsumexp.__name__ = "logsumexp"


def _logsumexp_rule(g, ans, x, axis=None, keepdims=False):
    # d logsumexp / dx = softmax(x) = exp(x - ans), divided by its own sum: that is 1 but
    # for the rounding of a huge ans (in float32, 1e7 + log 2 is 1e7 + 1, and the shares
    # would be e^-1 instead of 1/2), an error common to the slice, which the division
    # cancels. Analytically the division is by 1, so higher derivatives are softmax's.
    exps = exp(x - _expand_reduced(ans, x, axis, keepdims))
    return _expand_reduced(g, x, axis, keepdims) * (exps / sum(exps, axis=axis, keepdims=True))


defvjp(logsumexp, _logsumexp_rule)


def _log_softmax(x, axis=-1):
    # Shifted by the slice's largest entry, a constant that cancels: no overflow, and no
    # digits of log(n) lost to the rounding of a huge logsumexp (x - logsumexp(x) with
    # float32 logits of 1e7 is -1 in each of two equal entries, not -log 2).
    x = np.asarray(x)
    shifted = x - x.max(axis=axis, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _log_softmax_rule(g, ans, x, axis=-1):
    # d log_softmax: g - softmax(x) sum(g). The shares exp(ans) are divided by their own
    # sum (1 but for rounding), as logsumexp's rule does.
    shares = exp(ans)
    return g - sum(g, axis=axis, keepdims=True) * (shares / sum(shares, axis=axis,
                                                                 keepdims=True))


log_softmax = primitive(_log_softmax)
log_softmax.__name__ = "log_softmax"
defvjp(log_softmax, _log_softmax_rule)

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
shape = nondifferentiable(np.shape)
ndim = nondifferentiable(np.ndim)
size = nondifferentiable(np.size)
allclose = nondifferentiable(np.allclose)
nonzero = nondifferentiable(np.nonzero)

zeros = np.zeros
ones = np.ones


def full(shape, fill_value, dtype=None, order="C", *, device=None, like=None):
    """np.full; a traced `fill_value` is differentiated (each entry's cotangent flows
    back to it, summed)."""
    if not _traced(fill_value):
        return np.full(shape, fill_value, dtype, order, device=device, like=like)
    _refuse("full", device=device, like=like)
    return broadcast_to(fill_value if dtype is None else astype(fill_value, dtype), shape)


def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    """np.full_like; a traced `fill_value` is differentiated as in `full` (the values of
    `a` are never: only its shape and dtype are read)."""
    if not _traced(fill_value):
        return np.full_like(unbox(a), fill_value, dtype, order, subok, shape, device=device)
    _refuse("full_like", device=device)
    dtype = _dtype(a) if dtype is None else dtype
    return broadcast_to(astype(fill_value, dtype), _shape(a) if shape is None else shape)


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


def array(object, dtype=None, *, copy=True, order="K", subok=False, ndmin=0, ndmax=0,
          like=None):
    """`np.array`, except that a (nested) list holding traced values is stacked, traced."""
    if not _contains_box(object):
        # Only the settings given are passed on, so that older NumPys without ndmax work.
        settings = {"copy": copy, "order": order, "subok": subok, "ndmin": ndmin,
                    "ndmax": ndmax, "like": like}
        defaults = {"copy": True, "order": "K", "subok": False, "ndmin": 0, "ndmax": 0,
                    "like": None}
        return np.array(object, dtype, **{k: v for k, v in settings.items()
                                          if v is not defaults[k] and v != defaults[k]})
    if order not in ("K", "A", "C") or ndmin or ndmax or like is not None:
        raise TypeError("autodiff: anp.array of traced values takes dtype= and copy= only")
    result = object if type(object) is Box else stack([array(item) for item in object])
    return result if dtype is None else astype(result, dtype)


def asarray(a, dtype=None, order=None, *, device=None, copy=None, like=None):
    """`np.asarray`; a traced array is returned as it is (cast if `dtype` differs)."""
    if not _contains_box(a):
        return np.asarray(a, dtype, order, **_given(device=device, copy=copy, like=like))
    result = array(a)
    if dtype is not None and np.dtype(dtype) != _dtype(result):
        result = astype(result, dtype)
    return result


def stop_gradient(x: Any) -> Any:
    """`x` (a pytree of arrays) as constants: its value passes, no gradient flows back
    through it, at any order of differentiation. A traced array comes back as a read-only
    view: the tape still reads that memory, so writing into it would change the gradient
    (`.copy()` it to get an array of your own)."""
    return _constant(x) if type(x) is Box else tree_map(_constant, x)


def _constant(x: Any) -> Any:
    return _read_only(unbox(x)) if type(x) is Box else x


# ------------------------------------------------------------------ Box operators
# Python's operators on a Box are attached here, by setattr, so that `x @ w + b` in user
# code records matmul and add on the tape: __add__ __radd__ __sub__ __rsub__ __mul__
# __rmul__ __truediv__ __rtruediv__ __pow__ __rpow__ __matmul__ __rmatmul__ (from
# _BINARY), __neg__ __pos__ __abs__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__
# __getitem__ __len__ __iter__ __bool__ and `shape`; __setitem__ refuses with advice.
# NumPy's ufuncs refuse a Box (`__array_ufunc__ = None`), so `ndarray + box` falls back to
# Box.__radd__, and `np.tanh(box)`, `ndarray += box` raise instead of losing the gradient.
# Augmented operators (`total += term`) are not defined: Python then rebinds the name to
# `total + term`, which is all they can mean for an immutable traced value.

_BINARY = {
    "add": add, "sub": subtract, "mul": multiply, "truediv": divide, "pow": power,
    "matmul": matmul,
}


def _binary_methods(name: str, op) -> None:
    setattr(Box, f"__{name}__", op)  # a plain function: self becomes its first argument
    setattr(Box, f"__r{name}__", lambda self, other: op(other, self))


for _name, _op in _BINARY.items():
    _binary_methods(_name, _op)


def _refusal(what: str, advice: str):
    """A Box method that refuses `what` with a TypeError saying to write `advice` instead."""

    def refuse(self, *args, **kwargs):
        raise TypeError(f"autodiff: {what} is not supported on a traced value; {advice}")

    refuse.__name__ = f"refuse {what}"
    return refuse


_TO_NUMBER = (
    "it would become a constant and lose its gradient: keep it an array and use "
    "autodiff.numpy ops; to read the number (for logging), return it as aux "
    "(value_and_grad(f, has_aux=True)) and convert it outside"
)
_FLOOR = "write anp.floor(x / y), a constant: its derivative is 0"
_MOD = "write x - y * anp.floor(x / y), whose derivative in x is 1"
for _name, _what, _advice in [
    ("floordiv", "floor division (//)", _FLOOR), ("rfloordiv", "floor division (//)", _FLOOR),
    ("mod", "the remainder (%)", _MOD), ("rmod", "the remainder (%)", _MOD),
    ("divmod", "divmod", f"{_FLOOR}; for the remainder {_MOD[6:]}"),
    ("rdivmod", "divmod", f"{_FLOOR}; for the remainder {_MOD[6:]}"),
    ("float", "float()", _TO_NUMBER), ("int", "int()", _TO_NUMBER),
    ("complex", "complex()", _TO_NUMBER), ("index", "use as an index", _TO_NUMBER),
    ("array", "conversion to a NumPy array (np.asarray, or storing it into one, as in "
     "a[0] = x)", "build arrays with anp.array, anp.stack, anp.concatenate or anp.where"),
    ("setitem", "item assignment (x[i] = v)", "traced arrays are immutable: build the "
     "result with anp.where, anp.concatenate or anp.stack"),
]:
    setattr(Box, f"__{_name}__", _refusal(_what, _advice))
Box.item = _refusal("x.item()", _TO_NUMBER)
Box.tolist = _refusal("x.tolist()", _TO_NUMBER)
Box.__array_ufunc__ = None


def _array_function(self, func, types, args, kwargs):
    raise TypeError(
        f"autodiff: np.{func.__name__} was called on a traced value; NumPy cannot "
        f"differentiate it. Use autodiff.numpy instead (import autodiff.numpy as anp; "
        f"anp.{func.__name__}(...))"
    )


Box.__array_function__ = _array_function


def _len(self) -> int:
    if _ndim(self.value) == 0:
        raise TypeError("len() of a 0-d traced array")
    return len(self.value)


def _iter(self):
    if _ndim(self.value) == 0:
        raise TypeError("iteration over a 0-d traced array")
    return (self[i] for i in range(len(self.value)))


def _bool(self) -> bool:
    # Control flow on a traced scalar is fine (reverse mode records what ran); an array
    # of several values has no single truth value.
    if np.size(self.value) != 1:
        raise ValueError(
            "autodiff: the truth value of a traced array with more than one element is "
            "ambiguous; write (x > 0).any() or (x > 0).all() (comparisons give plain arrays)"
        )
    return bool(self.value)


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
Box.__len__ = _len
Box.__iter__ = _iter
Box.__bool__ = _bool
Box.shape = property(lambda self: _shape(self.value))
Box.ndim = property(lambda self: _ndim(self.value))
Box.size = property(lambda self: int(np.prod(_shape(self.value), dtype=np.int64)))
Box.dtype = property(lambda self: _dtype(self.value))
Box.T = property(lambda self: transpose(self))
Box.mT = property(lambda self: swapaxes(self, -1, -2))
# Traced values are real (complex ones are refused), so these are the value itself.
Box.real = property(lambda self: self)
Box.conj = Box.conjugate = lambda self: self
Box.flat = property(_refusal(
    "x.flat", "its items would be constants: write anp.ravel(x) (or x.ravel()) instead"))
# The methods take what the ndarray methods take: the function's arguments less the array.
Box.sum = lambda self, *args, **kwargs: sum(self, *args, **kwargs)
Box.mean = lambda self, *args, **kwargs: mean(self, *args, **kwargs)
Box.max = lambda self, *args, **kwargs: max(self, *args, **kwargs)
Box.min = lambda self, *args, **kwargs: min(self, *args, **kwargs)
Box.var = lambda self, *args, **kwargs: var(self, *args, **kwargs)
Box.std = lambda self, *args, **kwargs: std(self, *args, **kwargs)
Box.ravel = lambda self, order="C": ravel(self, order)
Box.flatten = lambda self, order="C": ravel(self, order)
Box.squeeze = lambda self, axis=None: squeeze(self, axis)
Box.swapaxes = lambda self, axis1, axis2: swapaxes(self, axis1, axis2)
Box.dot = lambda self, b, out=None: dot(self, b, out)
Box.astype = lambda self, dtype, order="K", casting="unsafe", subok=True, copy=True: astype(
    self, dtype, copy=copy)
Box.argmax = lambda self, *args, **kwargs: argmax(self, *args, **kwargs)
Box.argmin = lambda self, *args, **kwargs: argmin(self, *args, **kwargs)


def _reshape_method(self, *shape, order="C", copy=None):
    return reshape(self, shape[0] if len(shape) == 1 else shape, order=order, copy=copy)


def _transpose_method(self, *axes):
    if not axes or axes == (None,):
        return transpose(self)
    return transpose(self, axes[0] if len(axes) == 1 else axes)


Box.reshape = _reshape_method
Box.transpose = _transpose_method

# ndarray's reading methods; NumPy's in-place `sort` is refused. (`x.trace()` cannot be one:
# Box.trace is the trace recording the box; write anp.trace(x).)


def _prod_method(self, axis=None, dtype=None, out=None, keepdims=False, initial=None,
                 where=None):
    return prod(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims, initial=initial,
                where=where)


def _clip_method(self, min=None, max=None, out=None):
    return clip(self, min, max, out)


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
Box.argsort = lambda self, axis=-1, kind=None, order=None: argsort(self, axis, kind, order)
# Not anp.any/anp.all: those names would shadow the builtins throughout this module.
Box.any = lambda self, *args, **kwargs: np.any(unbox(self), *args, **kwargs)
Box.all = lambda self, *args, **kwargs: np.all(unbox(self), *args, **kwargs)
Box.nonzero = lambda self: nonzero(self)
Box.round = lambda self, decimals=0: round(self, decimals)
# Python's round(x) as NumPy's: a constant array (its derivative is 0 almost everywhere).
Box.__round__ = lambda self, ndigits=None: round(self, ndigits or 0)

# linalg's ops are built on the ones above, so it is imported last.
from autodiff import linalg  # noqa: E402, F401  (anp.linalg)

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
from typing import Any

import numpy as np

from autodiff.core import Box, defvjp, defvjp_argnum, nondifferentiable, primitive, unbox

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


def _einsum_parts(subscripts: str, count: int) -> tuple[list[str], str]:
    if "..." in subscripts:
        raise ValueError("anp.einsum does not support '...'; write the axes out")
    inputs, arrow, output = subscripts.replace(" ", "").partition("->")
    labels = inputs.split(",")
    if not arrow:
        letters = "".join(labels)
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if len(labels) != count or count not in (1, 2):
        raise ValueError("anp.einsum supports one or two operands, one subscript each")
    for label in labels:
        if len(set(label)) != len(label):
            raise ValueError(f"anp.einsum: repeated index in {label!r} (a diagonal) is unsupported")
    return labels, output


def _einsum(subscripts, *operands):
    _einsum_parts(subscripts, len(operands))
    return np.einsum(subscripts, *operands)


def _einsum_rule(argnum, g, ans, subscripts, *operands):
    labels, output = _einsum_parts(subscripts, len(operands))
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


# ------------------------------------------------------------------ Box operators
# Python's operators on a Box are attached here, by setattr, so that `x @ w + b` in user
# code records matmul and add on the tape: __add__ __radd__ __sub__ __rsub__ __mul__
# __rmul__ __truediv__ __rtruediv__ __pow__ __rpow__ __matmul__ __rmatmul__ (from
# _BINARY), __neg__ __pos__ __abs__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__
# __getitem__ __len__ __bool__ and `shape`; the in-place ones (__iadd__ ... __imatmul__)
# refuse with a TypeError, as does __setitem__.

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

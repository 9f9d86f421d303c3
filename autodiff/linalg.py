"""Differentiable `numpy.linalg`: norm, inv, solve, det, slogdet (as `anp.linalg`).

Each op has NumPy's signature and semantics, stacked matrices included (the last two axes
are the matrix). Rules are written with `autodiff.numpy` ops, so they differentiate to
any order. Conventions where the derivative does not exist:
- `norm` at 0 (2-norm, p-norms, 'fro'): the gradient is 0, a subgradient, as for `abs`;
  derivatives of second and higher order at 0 are those of that subgradient expression.
- `inv`, `solve` of a singular matrix: NumPy's LinAlgError, from the forward pass; the
  gradient of `det`, `slogdet` there: a LinAlgError saying so (the gradient of `det` is
  then the adjugate, which is not computed).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from autodiff import numpy as anp
from autodiff.core import defvjp, dtype_of, primitive, shape_of, unbox

__all__ = ["SlogdetResult", "det", "inv", "norm", "slogdet", "solve"]


def _mT(x: Any) -> Any:
    return anp.swapaxes(x, -1, -2)


def _as_matrix(x: Any) -> Any:
    """A cotangent of shape (...) as (..., 1, 1), to scale stacked matrices."""
    return anp.expand_dims(anp.expand_dims(x, -1), -1)


# ------------------------------------------------------------------------------ norm


def _pnorm(x, p, axis, keepdims):
    if p == 2:
        return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))
    return np.sum(np.abs(x) ** p, axis=axis, keepdims=keepdims) ** (1.0 / p)


def _pnorm_rule(g, ans, x, p, axis, keepdims):
    if not keepdims:  # give g and ans back their reduced axes, as size 1
        g, ans = anp.expand_dims(g, axis), anp.expand_dims(ans, axis)
    # ans is 0 only where the whole slice of x is 0: dividing by 1 there gives gradient 0.
    safe = anp.where(anp.equal(ans, 0), np.ones((), dtype=dtype_of(ans)), ans)
    if p == 2:
        return g * x / safe  # d |x|_2 = x / |x|_2
    # d |x|_p = sign(x) (|x| / |x|_p)^(p - 1), 0 where x is 0. There the power's base is
    # replaced by 1 (the result is masked to 0 anyway): for 1 < p < 2 the power's own
    # derivative at 0 is infinite, and 0 * inf would turn the second derivative NaN
    # through |x|_p, in every entry.
    zero = anp.equal(x, 0)
    ratio = anp.where(zero, np.ones((), dtype=dtype_of(ans)), anp.abs(x) / safe)
    return g * anp.where(zero, np.zeros((), dtype=dtype_of(ans)),
                         anp.sign(x) * ratio ** (p - 1))


pnorm = primitive(_pnorm)
pnorm.__name__ = "pnorm"
defvjp(pnorm, _pnorm_rule)


def _vector_norm(x: Any, ord: Any, axis: tuple, keepdims: bool) -> Any:
    if ord is None or ord == 2:
        return pnorm(x, 2, axis, keepdims)
    if isinstance(ord, str):
        raise ValueError(f"anp.linalg.norm: invalid norm order {ord!r} for vectors")
    if ord == np.inf:
        return anp.max(anp.abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return anp.min(anp.abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:  # the count of non-zeros: piecewise constant, so a constant
        count = np.sum(unbox(x) != 0, axis=axis, keepdims=keepdims)
        return count.astype(dtype_of(unbox(x)))
    if ord == 1:
        return anp.sum(anp.abs(x), axis=axis, keepdims=keepdims)
    if ord > 1:
        return pnorm(x, float(ord), axis, keepdims)
    raise ValueError(
        f"anp.linalg.norm: ord={ord} is not supported for vectors (its gradient is infinite "
        "at zeros); use None, 0, 1, 2, inf, -inf or a p > 1"
    )


def _matrix_norm(x: Any, ord: Any, axis: tuple, keepdims: bool) -> Any:
    rows, cols = axis
    if ord is None or ord == "fro":
        return pnorm(x, 2, axis, keepdims)
    if ord in (1, -1, np.inf, -np.inf):
        # 1: the largest column sum of |x|; inf: the largest row sum (- : the smallest).
        summed, over = (rows, cols) if ord in (1, -1) else (cols, rows)
        pick = anp.max if ord > 0 else anp.min
        result = pick(anp.sum(anp.abs(x), axis=summed, keepdims=True), axis=over, keepdims=True)
        return result if keepdims else anp.squeeze(result, axis=axis)
    if ord in (2, -2, "nuc"):
        raise ValueError(
            f"anp.linalg.norm: ord={ord!r} for matrices needs singular values, which are not "
            "differentiable here; use 'fro', 1, -1, inf or -inf"
        )
    raise ValueError(f"anp.linalg.norm: invalid norm order {ord!r} for matrices")


def norm(x, ord=None, axis=None, keepdims=False):
    """The vector or matrix norm of `x`, as `np.linalg.norm`.

    Vectors (`axis` an int, or `x` 1-D): `ord` None or 2, 1, inf, -inf, 0, or p > 1.
    Matrices (`axis` a pair, or `x` 2-D with `ord` given): None or 'fro', 1, -1, inf, -inf.
    `axis=None` with `ord=None` is the 2-norm of all the elements. At 0 the gradient is 0.
    """
    nd = len(shape_of(x))
    if axis is None:
        if ord is None:
            return pnorm(x, 2, tuple(range(nd)), keepdims)
        if nd not in (1, 2):
            raise ValueError("anp.linalg.norm: ord needs a 1-D or 2-D x, or an axis")
        axis = tuple(range(nd))
    axes = anp._axes(axis, nd)  # NumPy's AxisError for an axis out of range
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) == 2 and axes[0] != axes[1]:
        return _matrix_norm(x, ord, axes, keepdims)
    raise ValueError(f"anp.linalg.norm: axis must name one or two distinct axes, not {axis!r}")


# ----------------------------------------------------------- inverse, solve, determinants

inv = primitive(np.linalg.inv)
# d inv(a) = -inv(a) da inv(a)
defvjp(inv, lambda g, ans, a: -(_mT(ans) @ g @ _mT(ans)))


def _solve_transposed(a: Any, g: Any, vector: bool) -> Any:
    """inv(a)^T g, with g a (stack of) vector(s) when b was a vector."""
    if vector:
        return solve(_mT(a), anp.expand_dims(g, -1))[..., 0]
    return solve(_mT(a), g)


def _solve_rule_a(g, ans, a, b):
    # x = inv(a) b, so da gets -inv(a)^T g x^T
    vector = len(shape_of(b)) == 1
    gb = _solve_transposed(a, g, vector)
    if vector:
        return anp.unbroadcast(-anp.expand_dims(gb, -1) * anp.expand_dims(ans, -2), a)
    return anp.unbroadcast(-(gb @ _mT(ans)), a)


def _solve_rule_b(g, ans, a, b):
    return anp.unbroadcast(_solve_transposed(a, g, len(shape_of(b)) == 1), b)


solve = primitive(np.linalg.solve)
defvjp(solve, _solve_rule_a, _solve_rule_b)

def _inverse_in_rule(a: Any, name: str) -> Any:
    """inv(a) for the rule of `name`, or an error that says which gradient needed it."""
    try:
        return inv(a)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(
            f"autodiff: the gradient of {name} needs the inverse of the matrix, which is "
            "singular: the gradient there (for det, the adjugate) is not computed. Keep the "
            "matrix away from singular (e.g. add a small multiple of the identity)"
        ) from None


det = primitive(np.linalg.det)
# d det(a) = det(a) tr(inv(a) da)
defvjp(det, lambda g, ans, a: _as_matrix(g * ans) * _mT(_inverse_in_rule(a, "det")))


def _logabsdet(a):
    return np.linalg.slogdet(a)[1]


logabsdet = primitive(_logabsdet)
logabsdet.__name__ = "logabsdet"
# d log|det(a)| = tr(inv(a) da)
defvjp(logabsdet, lambda g, ans, a: _as_matrix(g) * _mT(_inverse_in_rule(a, "slogdet")))


class SlogdetResult(NamedTuple):
    """The sign of the determinant (a constant) and the log of its absolute value."""

    sign: Any
    logabsdet: Any


def slogdet(a):
    """The sign and log absolute value of the determinant, as `np.linalg.slogdet`.

    Only `logabsdet` is differentiable: the sign is piecewise constant."""
    return SlogdetResult(np.linalg.slogdet(unbox(a))[0], logabsdet(a))

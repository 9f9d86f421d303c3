"""Forward mode from reverse mode: jvp, and hvp (Hessian-vector products).

Neither records tangents alongside values: both are built from reverse passes, which is
exact because a vjp is linear in its cotangent. They nest with the other transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autodiff import numpy as anp
from autodiff.core import dtype_of
from autodiff.transforms import _differentiable, _zeros_like, grad, vjp
from autodiff.tree import tree_flatten, tree_unflatten


def _argument_tuples(primals: Any, tangents: Any, name: str) -> tuple[tuple, tuple]:
    """`primals` and `tangents` as tuples of arguments, or a TypeError: an array would
    otherwise be taken apart along its first axis, one argument per row."""
    for what, given in (("primals", primals), ("tangents", tangents)):
        if not isinstance(given, (tuple, list)):
            raise TypeError(
                f"{name}: {what} must be a tuple or list with one entry per argument of the "
                f"function, got a {type(given).__name__}; write {name}(f, (x,), (v,)) for "
                "one argument"
            )
    return tuple(primals), tuple(tangents)


def _check_tangents(primals: tuple, tangents: tuple, name: str) -> None:
    for argnum, primal in enumerate(primals):  # float primals, refused in `name`'s words
        for leaf in tree_flatten(primal)[0]:
            _differentiable(leaf, name, argnum)
    p_leaves, p_def = tree_flatten(primals)
    t_leaves, t_def = tree_flatten(tangents)
    if p_def != t_def:
        raise ValueError(f"{name}: tangents have structure {t_def!r}, primals {p_def!r}")
    for p, t in zip(p_leaves, t_leaves):
        if np.shape(anp.unbox(p)) != np.shape(anp.unbox(t)):
            raise ValueError(
                f"{name}: a tangent of shape {np.shape(anp.unbox(t))} for a primal of shape "
                f"{np.shape(anp.unbox(p))}; each tangent must have its primal's shape"
            )
        if dtype_of(t).kind not in "biuf":
            raise TypeError(
                f"{name}: a tangent has dtype {dtype_of(t)}; complex numbers are not "
                "supported: pass real tangents"
            )


def jvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: `(fun(*primals), J tangents)`, as `jax.jvp`.

    `primals` and `tangents` are tuples (or lists) of the same structure, one entry per
    argument of `fun`. Built from two reverse passes: `u -> J^T u` (the vjp) is linear in
    `u`, so its own vjp, taken at any `u` (zeros here) with cotangent `tangents`, is
    `J tangents`. Costs about three times `fun`'s evaluation; nests with the other transforms.
    """
    primals, tangents = _argument_tuples(primals, tangents, "jvp")
    _check_tangents(primals, tangents, "jvp")
    out, vjp_fn = vjp(fun, *primals)
    # Integer and bool outputs (an argmax, a count) are constants: their tangents are
    # zeros, and only the float outputs' cotangents are differentiated.
    out_leaves, out_def = tree_flatten(out)
    floats = [dtype_of(leaf).kind == "f" for leaf in out_leaves]

    def vjp_of_floats(*float_cotangents: Any) -> tuple:
        given = iter(float_cotangents)
        cotangents = [next(given) if is_float else _zeros_like(leaf)
                      for leaf, is_float in zip(out_leaves, floats)]
        return vjp_fn(tree_unflatten(out_def, cotangents))

    zeros = [_zeros_like(leaf) for leaf, is_float in zip(out_leaves, floats) if is_float]
    _, transpose_fn = vjp(vjp_of_floats, *zeros)
    float_tangents = iter(transpose_fn(tangents))
    tangents_out = [next(float_tangents) if is_float else _zeros_like(leaf)
                    for leaf, is_float in zip(out_leaves, floats)]
    return out, tree_unflatten(out_def, tangents_out)


def hvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
    """The Hessian-vector product of scalar-valued `fun`, without forming the Hessian.

    The derivative of `grad(fun)` (with respect to argument 0) along `tangents`, which is
    what JAX writes as `jvp(grad(fun), primals, tangents)[1]`; it has the structure of
    `primals[0]`. Computed reverse-over-reverse: by the symmetry of the Hessian it is the
    gradient with respect to argument 0 of `sum_j <grad_j fun, tangents[j]>`.
    """
    primals, tangents = _argument_tuples(primals, tangents, "hvp")
    _check_tangents(primals, tangents, "hvp")
    every = tuple(range(len(primals)))

    def along_tangents(*args: Any) -> Any:
        grads = grad(fun, argnums=every)(*args)
        total = 0.0
        for g, t in zip(tree_flatten(grads)[0], tree_flatten(tangents)[0]):
            total = total + anp.sum(g * t)
        return total

    return grad(along_tangents, argnums=0)(*primals)

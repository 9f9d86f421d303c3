"""check_grads: reverse-mode derivatives against central differences.

Each differentiable (floating-point) input leaf is checked on its own along a random
direction `v`, with a random output cotangent `u`: reverse mode gives `<vjp(u), v>`,
central differences give `<u, (f(x + eps v) - f(x - eps v)) / (2 eps)>`. Checking leaf by
leaf lets a failure name the argument and the leaf that is wrong. Order 2 also checks the
vjp itself, as a function of the inputs, the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autodiff.core import dtype_of, unbox
from autodiff.transforms import vjp
from autodiff.tree import tree_flatten, tree_map, tree_unflatten


def _is_float(leaf: Any) -> bool:
    return np.issubdtype(dtype_of(unbox(leaf)), np.floating)


def _random_like(rng: np.random.Generator, leaf: Any) -> np.ndarray:
    return rng.standard_normal(np.shape(leaf)).astype(np.result_type(leaf))


def _inner(a: Any, b: Any) -> float:
    leaves_a, _ = tree_flatten(a)
    leaves_b, _ = tree_flatten(b)
    return float(sum(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64))
                     for x, y in zip(leaves_a, leaves_b) if _is_float(x)))


def _vjp_of_float_leaves(fun: Callable, args: tuple):
    """vjp of `fun` in the float leaves of `args` only (vjp refuses integer inputs); the
    cotangents come back as one list over all leaves, None where a leaf is not float."""
    leaves, treedef = tree_flatten(args)
    floats = [k for k, leaf in enumerate(leaves) if _is_float(leaf)]

    def of_floats(*chosen: Any) -> Any:
        moved = list(leaves)
        for k, value in zip(floats, chosen):
            moved[k] = value
        return fun(*tree_unflatten(treedef, moved))

    out, vjp_fn = vjp(of_floats, *[leaves[k] for k in floats])

    def all_leaves(cotangent: Any) -> list:
        result: list = [None] * len(leaves)
        for k, g in zip(floats, vjp_fn(cotangent)):
            result[k] = g
        return result

    return out, all_leaves


def check_grads(
    fun: Callable,
    args: Any,
    order: int = 1,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    rng: np.random.Generator | None = None,
) -> None:
    """Raise AssertionError unless reverse mode agrees with central differences.

    `args` is the tuple of positional arguments (a single non-tuple argument is allowed);
    its float leaves are checked, and a call with none (or with no float output) is a
    TypeError rather than a check of nothing. Use float64 inputs: in float32 central
    differences are too coarse to compare.
    """
    args = args if isinstance(args, tuple) else (args,)
    rng = np.random.default_rng(0) if rng is None else rng
    name = getattr(fun, "__name__", repr(fun))
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"check_grads({name}): order must be an integer >= 1, got {order!r}")
    if not any(_is_float(leaf) for leaf in tree_flatten(args)[0]):
        raise TypeError(
            f"check_grads({name}): no float input to differentiate, so nothing would be "
            "checked; pass float64 arrays"
        )
    out, vjp_fn = _vjp_of_float_leaves(fun, args)
    if not any(_is_float(leaf) for leaf in tree_flatten(out)[0]):
        raise TypeError(
            f"check_grads({name}): the function returns no float output, so there is no "
            "derivative to check"
        )
    cotangent = tree_map(lambda o: _random_like(rng, o) if _is_float(o) else np.zeros_like(o), out)
    reverse_leaves = vjp_fn(cotangent)
    leaves, treedef = tree_flatten(args)
    for k, leaf in enumerate(leaves):
        if not _is_float(leaf):
            continue
        direction = _random_like(rng, leaf)

        def along(t: float, k=k, direction=direction) -> Any:
            moved = list(leaves)
            moved[k] = leaves[k] + t * direction
            return fun(*tree_unflatten(treedef, moved))

        numeric = _inner(cotangent, tree_map(lambda a, b: (a - b) / (2 * eps),
                                              along(eps), along(-eps)))
        analytic = _inner(reverse_leaves[k], direction)
        if not np.isclose(analytic, numeric, rtol=rtol, atol=atol):
            raise AssertionError(
                f"check_grads({name}, order {order}): the derivative along a random direction "
                f"of input leaf {k} (shape {np.shape(leaf)}, dtype {np.result_type(leaf)}) "
                f"is {analytic:.10g} by reverse mode but {numeric:.10g} by central differences "
                f"(abs diff {abs(analytic - numeric):.3g}, rtol {rtol}, atol {atol})"
            )
    if order > 1:
        def vjp_of_fun(*primals: Any) -> Any:
            return _vjp_of_float_leaves(fun, primals)[1](cotangent)

        vjp_of_fun.__name__ = f"vjp({name})"
        check_grads(vjp_of_fun, args, order - 1, eps, rtol, atol, rng)

"""checkpoint: differentiate through a function without keeping its intermediates.

The function runs once on plain values and is recorded as one tape entry; the backward
pass runs it again, traced, to get its vjp. Memory for time: the tape holds arguments and
results only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from autodiff import numpy as anp
from autodiff.core import Box, defvjp_argnum, primitive
from autodiff.transforms import _leaf_dtype, vjp
from autodiff.tree import tree_flatten, tree_unflatten


def checkpoint(fun: Callable) -> Callable:
    """`fun`, but differentiating through it keeps none of its intermediate values.

    Under a transform, the checkpointed function runs `fun` on plain values and records a
    single tape entry; the backward pass runs `fun` again, traced, to get its vjp. So the
    tape holds `fun`'s arguments and results only, at the cost of a second forward pass;
    gradients are the same as `fun`'s, to every order. Arguments and results may be
    pytrees. Only the positional arguments are differentiated through: `fun` must not
    use a traced value it closes over or takes by keyword (either raises a TypeError).
    """

    @functools.wraps(fun)
    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            if any(type(leaf) is Box for leaf in tree_flatten(value)[0]):
                raise TypeError(
                    f"checkpoint({getattr(fun, '__name__', 'fun')}): the keyword argument "
                    f"{name!r} is traced; pass it positionally to differentiate through it"
                )
        leaves, treedef = tree_flatten(args)
        traced = [k for k, leaf in enumerate(leaves) if type(leaf) is Box]
        if not traced:
            return fun(*args, **kwargs)

        def call(*values: Any) -> Any:
            full = list(leaves)
            for k, value in zip(traced, values):
                full[k] = value
            return fun(*tree_unflatten(treedef, full), **kwargs)

        out_def: list = []  # the output structure, found by the first run

        def run(*values: Any) -> Any:  # the primitive's NumPy function: plain values only
            out_leaves, structure = tree_flatten(call(*values))
            if any(type(leaf) is Box for leaf in out_leaves):
                raise TypeError(
                    f"checkpoint({getattr(fun, '__name__', 'fun')}): the function uses a "
                    "traced value it closes over; pass that value as an argument instead"
                )
            out_def[:] = [structure, [(np.shape(leaf), _leaf_dtype(leaf)) for leaf in out_leaves]]
            return _packed(out_leaves, np)

        # One recomputation serves every argument of a tape entry: its cotangents wait
        # here, keyed by (g, *values), each dropped once handed out, so none outlive the sweep.
        cache: list = [(), []]

        def rule(argnum: int, g: Any, ans: Any, *values: Any) -> Any:
            key, cotangents = cache
            fresh = len(key) == len(values) + 1 and all(a is b for a, b in zip(key, (g, *values)))
            if not fresh or cotangents[argnum] is None:
                _, vjp_fn = vjp(lambda *v: _packed(tree_flatten(call(*v))[0], anp), *values)
                cotangents = list(vjp_fn(g))
                cache[:] = [(g, *values), cotangents]
            result, cotangents[argnum] = cotangents[argnum], None
            if all(c is None for c in cotangents):
                cache[:] = [(), []]
            return result

        op = primitive(run)
        op.__name__ = f"checkpoint({getattr(fun, '__name__', 'fun')})"
        defvjp_argnum(op, rule)
        packed = op(*[leaves[k] for k in traced])
        return _unpacked(packed, *out_def)

    return checkpointed


def _packed(leaves: list, module: Any) -> Any:
    """One array from the output leaves: the leaf itself, or all raveled and joined."""
    if len(leaves) == 1:
        return leaves[0]
    return module.concatenate([module.ravel(leaf) for leaf in leaves])


def _unpacked(packed: Any, structure: Any, leaf_types: list) -> Any:
    """The output pytree back from `_packed`, from each leaf's (shape, dtype)."""
    if len(leaf_types) == 1:
        return tree_unflatten(structure, [packed])
    leaves, start = [], 0
    for shape, dtype in leaf_types:
        size = int(np.prod(shape, dtype=np.int64))
        leaf = anp.reshape(packed[start:start + size], shape)
        leaves.append(leaf if _leaf_dtype(leaf) == dtype else anp.astype(leaf, dtype))
        start += size
    return tree_unflatten(structure, leaves)

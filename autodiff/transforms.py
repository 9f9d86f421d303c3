"""Reverse-mode transforms: vjp, grad, value_and_grad, jacobian, hessian.

Each transform boxes the leaves of the differentiated arguments in a fresh `Trace`, runs
the function, and sweeps the tape backwards. Arguments and results are pytrees; the
gradient of an argument always has that argument's structure, shapes and dtypes, with
zeros for leaves the output does not depend on. Transforms nest: the inner one's
backward pass is recorded by the outer one's trace. Forward mode (jvp, hvp) is in
`autodiff.forward`, built on these; checkpoint is in `autodiff.remat`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autodiff import numpy as anp
from autodiff.core import Box, Trace, backward, dtype_of, read_only, value_at
from autodiff.tree import LEAF, tree_flatten, tree_map, tree_unflatten


def _leaf_dtype(leaf: Any) -> np.dtype:
    return dtype_of(leaf)  # a Box has the dtype of its value


def _zeros_like(leaf: Any) -> np.ndarray:
    return np.zeros(np.shape(anp.unbox(leaf)), dtype=_leaf_dtype(leaf))


def _match_leaf(cotangent: Any, leaf: Any) -> Any:
    """The cotangent of `leaf` in its shape and dtype (zeros where it is None)."""
    if cotangent is None:
        return _zeros_like(leaf)
    if type(cotangent) is np.ndarray and type(leaf) is np.ndarray and (
            cotangent.dtype is leaf.dtype):  # the common case, first
        return cotangent
    dtype = _leaf_dtype(leaf)
    found = _leaf_dtype(cotangent)
    if found is not dtype and found != dtype:
        return anp.astype(cotangent, dtype)
    return cotangent


def _differentiable(leaf: Any, name: str, argnum: int) -> Any:
    """`leaf` as an array ready to be traced, or a TypeError saying what to pass instead."""
    if type(leaf) is Box:
        value_at(leaf, None)  # an error for a box of a finished transform
    value = anp.unbox(leaf)
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        if not isinstance(value, (bool, int, float, complex)):
            raise TypeError(
                f"{name}: argument {argnum} holds a {type(value).__name__}, which cannot be "
                "differentiated; pass float arrays, or leave it out of argnums"
            )
        leaf = value = np.asarray(value)  # rules then compute in NumPy, never in Python
        dtype = value.dtype
    if dtype.kind != "f":
        if dtype.kind == "c":
            raise TypeError(
                f"{name}: argument {argnum} is complex ({dtype}); complex numbers are not "
                "supported: differentiate the real and imaginary parts as separate float arrays"
            )
        raise TypeError(
            f"{name} differentiates float inputs only, but argument {argnum} has dtype "
            f"{dtype}; pass floats (e.g. np.asarray(x, dtype=float)), or leave it out of argnums"
        )
    return leaf


def _box_args(trace: Trace, args: Sequence[Any], argnums: tuple[int, ...], name: str):
    """Box the leaves of `args[i]` for i in argnums; returns new args and, per argnum,
    its leaves, structure and boxes."""
    args = list(args)
    boxed = []
    for i in argnums:
        arg = args[i]
        if type(arg) is np.ndarray and arg.dtype.kind == "f":  # one float array: the common case
            box = args[i] = trace.new_input(arg)
            boxed.append(([arg], LEAF, [box]))
            continue
        leaves, treedef = tree_flatten(arg)
        leaves = [leaf if type(leaf) is np.ndarray and leaf.dtype.kind == "f"
                  else _differentiable(leaf, name, i) for leaf in leaves]
        boxes = trace.new_inputs(leaves)
        boxed.append((leaves, treedef, boxes))
        args[i] = tree_unflatten(treedef, boxes)
    return args, boxed


def _result_leaf(cotangent: Any, leaf: Any, taken: set) -> Any:
    """The gradient of `leaf` as returned to the caller: in its shape and dtype, and never
    sharing memory with a block in `taken` (the ids of the arrays the caller passed in
    and of the gradients already returned: a rule may hand back the very array it was
    given, as an identity or a reshape view, and add's rule gives both arguments the one
    cotangent). Its own block is added to `taken`."""
    cotangent = _match_leaf(cotangent, leaf)
    if type(cotangent) is np.ndarray:
        root = cotangent
        while isinstance(root.base, np.ndarray):
            root = root.base
        if id(root) in taken:
            cotangent = root = cotangent.copy()
        taken.add(id(root))
    return cotangent


def _caller_arrays(trees: Sequence[Any]) -> set:
    """The ids of the memory blocks (the arrays that own them) of every array in `trees`:
    the arguments, the cotangents given to vjp."""
    ids = set()
    for tree in trees:
        for leaf in (tree,) if type(tree) is np.ndarray else tree_flatten(tree)[0]:
            if type(leaf) is np.ndarray:
                while isinstance(leaf.base, np.ndarray):
                    leaf = leaf.base
                ids.add(id(leaf))
    return ids


def _cotangents(trace: Trace, boxed, seeds, callers: set) -> list:
    """One gradient pytree per boxed argument, from `(tape index, cotangent)` seeds; no
    two of them, and none with an array of `callers` (ids, see `_caller_arrays`), share
    memory. `callers` is a set of this call's own: the gradients' ids are added to it."""
    inputs = [box.index for _, _, boxes in boxed for box in boxes]
    flat = backward(trace, seeds, inputs) if seeds else [None] * len(inputs)
    grads, position = [], 0
    for leaves, treedef, _ in boxed:
        if treedef is LEAF:  # one array: the common case, without the slice and the list
            grads.append(_returned(flat[position], leaves[0], callers))
            position += 1
            continue
        part = flat[position:position + len(leaves)]
        position += len(leaves)
        results = [_returned(c, x, callers) for c, x in zip(part, leaves)]
        grads.append(tree_unflatten(treedef, results))
    return grads


def _returned(cotangent: Any, leaf: Any, taken: set) -> Any:
    # An array of its own memory and the leaf's type and dtype, not taken, is returned
    # as it is: the common case is tested here, without a call.
    if (type(cotangent) is np.ndarray and cotangent.base is None and type(leaf) is np.ndarray
            and cotangent.dtype is leaf.dtype and id(cotangent) not in taken):
        taken.add(id(cotangent))
        return cotangent
    return _result_leaf(cotangent, leaf, taken)


def _check_argnums(argnums: Any, name: str) -> tuple[tuple[int, ...], bool]:
    """argnums as a tuple of ints, and whether a single int (not a tuple) was given."""
    single = not isinstance(argnums, (tuple, list))
    nums = (argnums,) if single else tuple(argnums)
    try:
        if not nums or any(isinstance(n, (bool, np.bool_)) for n in nums):
            raise TypeError
        nums = tuple(operator.index(n) for n in nums)
    except TypeError:
        raise TypeError(
            f"{name}: argnums must be an int or a non-empty tuple of ints, got {argnums!r}"
        ) from None
    return nums, single


def _resolve_argnums(nums: tuple[int, ...], count: int, name: str) -> tuple[int, ...]:
    for n in nums:
        if not -count <= n < count:
            raise TypeError(
                f"{name}: argnums {n} is out of range for {count} positional arguments"
            )
    return tuple(n % count for n in nums)


def _per_argnum(grads: list, unique: tuple[int, ...], nums: tuple[int, ...]) -> tuple:
    """One gradient per requested argnum; a repeated argnum gets its own copy."""
    out, seen = [], set()
    for n in nums:
        g = grads[unique.index(n)]
        out.append(tree_map(_copy_array, g) if n in seen else g)
        seen.add(n)
    return tuple(out)


def _copy_array(leaf: Any) -> Any:
    return leaf.copy() if type(leaf) is np.ndarray else leaf


def vjp(fun: Callable, *args: Any, has_aux: bool = False) -> tuple:
    """Run `fun(*args)`; return its output and `vjp_fn(cotangent) -> tuple of cotangents`.

    `cotangent` has the structure, shapes and (real) dtypes of the output; the result has
    one entry per argument, each with that argument's structure. `vjp_fn` may be called
    many times. With `has_aux`, `fun` returns `(output, aux)` and vjp returns
    `(output, vjp_fn, aux)`.

    The tape that `vjp_fn` sweeps must not change in between: the arrays of `args` are
    copied before `fun` runs, and the output and aux arrays `fun` computed come back
    read-only (`.copy()` them to write).
    """
    trace = Trace()
    held = tuple(tree_map(_own_copy, arg) for arg in args)
    boxed_args, boxed = _box_args(trace, held, tuple(range(len(args))), "vjp")
    try:
        out = fun(*boxed_args)
    finally:
        trace.done = True  # nothing more is recorded: the sweeps only read the tape
    if has_aux:
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError("with has_aux=True the function must return a pair (value, aux)")
        out, aux = out
    out_leaves, out_def = tree_flatten(out)
    out_value = tree_unflatten(out_def, [_taped_value(leaf, trace) for leaf in out_leaves])
    callers = _caller_arrays(args) | _caller_arrays(held)

    def vjp_fn(cotangent: Any) -> tuple:
        ct_leaves, ct_def = tree_flatten(cotangent)
        if ct_def != out_def:
            raise ValueError(f"vjp: the cotangent has structure {ct_def!r}, the output {out_def!r}")
        seeds = [
            (leaf.index, _checked_cotangent(ct, leaf.value, k))
            for k, (leaf, ct) in enumerate(zip(out_leaves, ct_leaves))
            if type(leaf) is Box and leaf.trace is trace
        ]
        return tuple(_cotangents(trace, boxed, seeds, callers | _caller_arrays((cotangent,))))

    if has_aux:
        return out_value, vjp_fn, tree_map(lambda leaf: _taped_value(leaf, trace), aux)
    return out_value, vjp_fn


def _own_copy(leaf: Any) -> Any:
    return leaf.copy() if type(leaf) is np.ndarray else leaf


def _taped_value(leaf: Any, trace: Trace) -> Any:
    """The value of an output leaf; a read-only view where it is an array on the tape
    (the rules read it: writing into it would change the gradients)."""
    value = value_at(leaf, trace)
    return read_only(value) if type(leaf) is Box and leaf.trace is trace else value


def _checked_cotangent(ct: Any, out: Any, k: int) -> Any:
    """The cotangent of output leaf `k`, in the output's shape and dtype, or a clear error."""
    out_shape, ct_shape = np.shape(anp.unbox(out)), np.shape(anp.unbox(ct))
    if ct_shape != out_shape:
        raise ValueError(
            f"vjp: the cotangent of output leaf {k} has shape {ct_shape}, but the output has "
            f"shape {out_shape}; pass one cotangent entry per output entry"
        )
    dtype, found = _leaf_dtype(out), _leaf_dtype(ct)
    if found.kind not in "biuf":
        raise TypeError(
            f"vjp: the cotangent of output leaf {k} has dtype {found}; pass a real array "
            f"of the output's dtype ({dtype})"
        )
    if found != dtype:
        return anp.astype(ct, dtype) if type(ct) is Box else np.asarray(ct, dtype=dtype)
    return ct


def _scalar_seed(out: Any, trace: Trace, name: str) -> list:
    """The seed of the sweep for a scalar output: its cotangent 1; a clear error for an
    output that is not a float scalar."""
    if type(out) is Box and out.trace is trace:  # the common case, first
        value = out.value
        # a float 0-d array or NumPy scalar
        if getattr(value, "shape", None) == () and value.dtype.kind == "f":
            return [(out.index, np.array(1, dtype=value.dtype))]
    value = value_at(out, trace)
    shape = getattr(value, "shape", None)
    if shape is None:
        shape = np.shape(value) if isinstance(value, (int, float, complex, np.generic)) else None
    if shape != ():
        what = f"an output of shape {shape}" if shape is not None else f"a {type(value).__name__}"
        raise TypeError(
            f"{name} needs a function that returns a scalar, but it returned {what}; "
            "reduce it (e.g. anp.sum or anp.mean), or use vjp or jacobian for non-scalar outputs"
        )
    dtype = _leaf_dtype(value)
    if dtype.kind != "f":  # a count or a comparison: no gradient, not a zero one
        raise TypeError(
            f"{name} needs a function that returns a float scalar, but it returned {dtype}; "
            "an integer or boolean output has no gradient: return the float it is computed "
            "from (e.g. anp.sum(x) rather than anp.sum(x) > 0)"
        )
    if type(out) is not Box or out.trace is not trace:
        return []  # the output does not depend on the arguments
    return [(out.index, np.array(1, dtype=dtype))]


def value_and_grad(
    fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable:
    """`fun`'s value and its gradient with respect to the argument(s) `argnums`.

    `fun` must return a scalar, or `(scalar, aux)` when `has_aux` is true; the transformed
    function then returns `((value, aux), grads)`. With a tuple of argnums the gradients
    come back as a tuple. The differentiated arguments must hold floats.
    """
    nums, single = _check_argnums(argnums, "grad")

    resolved: dict = {}  # argument count -> (argnums as given, without repeats)

    def value_and_grad_fun(*args: Any, **kwargs: Any):
        if len(args) not in resolved:
            wanted = _resolve_argnums(nums, len(args), "grad")
            resolved[len(args)] = wanted, tuple(dict.fromkeys(wanted))
        wanted, unique = resolved[len(args)]
        trace = Trace()
        boxed_args, boxed = _box_args(trace, args, unique, "grad")
        try:
            out = fun(*boxed_args, **kwargs)
        finally:
            trace.done = True  # nothing more is recorded: the sweep only reads the tape
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError("with has_aux=True the function must return a pair (value, aux)")
            out, aux = out
        seeds = _scalar_seed(out, trace, "grad")
        # The boxed arguments were flattened already: only the others are flattened here.
        trees = [leaf for leaves, _, _ in boxed for leaf in leaves]
        if len(unique) < len(args):
            trees += [a for i, a in enumerate(args) if i not in unique]
        callers = _caller_arrays(trees)
        grads = _cotangents(trace, boxed, seeds, callers)
        grads = tuple(grads) if unique == wanted else _per_argnum(grads, unique, wanted)
        grads = grads[0] if single else grads
        value = value_at(out, trace)
        if has_aux:
            return (value, tree_map(lambda leaf: value_at(leaf, trace), aux)), grads
        return value, grads

    value_and_grad_fun.__name__ = f"value_and_grad({getattr(fun, '__name__', 'fun')})"
    return value_and_grad_fun


def grad(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The gradient of scalar-valued `fun` with respect to the argument(s) `argnums`.

    >>> grad(lambda x: anp.sum(x ** 2))(np.array([1.0, 2.0]))
    array([2., 4.])
    """
    value_and_grad_fun = value_and_grad(fun, argnums)

    def grad_fun(*args: Any, **kwargs: Any):
        return value_and_grad_fun(*args, **kwargs)[1]

    grad_fun.__name__ = f"grad({getattr(fun, '__name__', 'fun')})"
    return grad_fun


def jacobian(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Jacobian of `fun` with respect to argument `argnums`, by one vjp per output element.

    For an array output of shape `out` and an argument leaf of shape `in`, the result has
    shape `out + in`; pytree outputs and arguments give nested pytrees (outputs outside).
    """

    checked, single = _check_argnums(argnums, "jacobian")

    def jacobian_fun(*args: Any, **kwargs: Any):  # keyword arguments: not differentiated
        wanted = _resolve_argnums(checked, len(args), "jacobian")
        nums = tuple(dict.fromkeys(wanted))

        def partial_fun(*chosen):
            full = list(args)
            for i, value in zip(nums, chosen):
                full[i] = value
            return fun(*full, **kwargs)

        chosen = [args[i] for i in nums]
        for i, arg in zip(nums, chosen):
            for leaf in tree_flatten(arg)[0]:
                _differentiable(leaf, "jacobian", i)
        out, vjp_fn = vjp(partial_fun, *chosen)
        out_leaves, out_def = tree_flatten(out)
        per_output = []
        for k, leaf in enumerate(out_leaves):
            leaf_shape = np.shape(anp.unbox(leaf))
            rows = []
            for flat_index in range(int(np.prod(leaf_shape, dtype=np.int64))):
                seed = [np.zeros(np.shape(anp.unbox(o)), dtype=_leaf_dtype(o)) for o in out_leaves]
                seed[k].flat[flat_index] = 1
                rows.append(vjp_fn(tree_unflatten(out_def, seed)))
            blocks = _per_argnum(list(_stack_rows(rows, leaf_shape, chosen)), nums, wanted)
            per_output.append(blocks[0] if single else blocks)
        return tree_unflatten(out_def, per_output)

    return jacobian_fun


def _stack_rows(rows: list, out_shape: tuple, chosen_args: list) -> tuple:
    """Turn one vjp per output element into Jacobian blocks of shape out_shape + leaf shape."""
    blocks = []
    for position, arg in enumerate(chosen_args):
        leaves, treedef = tree_flatten(arg)
        per_leaf = []
        for j, leaf in enumerate(leaves):
            leaf_shape = np.shape(anp.unbox(leaf))
            entries = [tree_flatten(row[position])[0][j] for row in rows]
            if entries:
                block = anp.reshape(anp.stack(entries), out_shape + leaf_shape)
            else:
                block = np.zeros(out_shape + leaf_shape, dtype=_leaf_dtype(leaf))
            per_leaf.append(block)
        blocks.append(tree_unflatten(treedef, per_leaf))
    return tuple(blocks)


def hessian(fun: Callable, argnums: int = 0) -> Callable:
    """The Hessian of scalar-valued `fun`: the Jacobian of its gradient."""
    return jacobian(grad(fun, argnums), argnums)

"""Rows of the JAX oracle's op table: linear algebra, shapes, indexing, joining.

See `oracle_rows` for what a row is. Index expressions are drawn as data (integers,
slices with any step, None, Ellipsis, boolean masks, integer arrays, lists and tuples
with repeated positions) and applied with `ops.index`.
"""

from __future__ import annotations

import string

import numpy as np
from hypothesis import strategies as st
from oracle_rows import Row, _away, _no_near_ties, _partner

import autodiff.numpy as anp

# ---------------------------------------------------------------- linear algebra


def _matmul_draw(ctx, a):
    shape = ctx.value(a).shape
    if not shape:
        return None
    k, n = shape[-1], ctx.draw(st.integers(1, 3))
    kind = ctx.draw(st.sampled_from(["vector", "matrix", "batch", "self"]))
    if kind == "self":
        return ((a, a), {"form": "self"}) if len(shape) >= 2 else None
    if kind == "vector":
        b_shape = (k,)
    elif kind == "matrix":
        b_shape = (k, n)
    else:
        batch = shape[:-2] if len(shape) > 2 else (ctx.draw(st.integers(1, 2)),)
        b_shape = tuple(ctx.draw(st.sampled_from([1, m])) for m in batch) + (k, n)
    form = ctx.draw(st.sampled_from(["matmul", "@", "dot", "right"]))
    if form == "dot" and (len(shape) > 2 or len(b_shape) > 2):
        form = "matmul"
    if form == "right":  # the node as the right operand: (n, shape[-2]) @ a
        return ((a, ctx.new((n, shape[-2]))), {"form": form}) if len(shape) == 2 else None
    return (a, ctx.new(b_shape)), {"form": form}


def _matmul_apply(ops, x, y, form):
    if form == "self":
        return ops.m.matmul(x, ops.m.swapaxes(x, -1, -2))
    if form == "@":
        return x @ y
    if form == "right":
        return ops.m.matmul(y, x)
    return getattr(ops.m, form)(x, y)


def _einsum_draw(ctx, a, operands=1):
    """A spec over node `a` and `operands` new inputs sharing some of its labels."""
    shape = ctx.value(a).shape
    letters = iter(string.ascii_lowercase)
    mine = "".join(next(letters) for _ in shape)
    sizes = dict(zip(mine, shape))
    if operands == 1 and ctx.draw(st.booleans()):  # one operand: a permutation and a sum
        out = ctx.draw(st.permutations(mine))[:ctx.draw(st.integers(0, len(mine)))]
        return (a,), {"spec": f"{mine}->{''.join(out)}"}
    specs, args = [mine], [a]
    for _ in range(operands):
        shared = [c for c in sizes if ctx.draw(st.booleans())]
        fresh = [next(letters) for _ in range(ctx.draw(st.integers(0, 2)))]
        theirs = "".join(ctx.draw(st.permutations(shared + fresh)))
        b_shape = []
        for c in theirs:
            size = sizes.setdefault(c, ctx.draw(st.integers(1, 3)))
            if c in mine and ctx.draw(st.booleans()):
                size = 1  # NumPy and JAX broadcast a size-1 axis against its label's size
            b_shape.append(size)
        specs.append(theirs)
        args.append(ctx.new(tuple(b_shape)))
    union = sorted(set("".join(specs)))
    out = "".join(ctx.draw(st.permutations(union))[:ctx.draw(st.integers(0, len(union)))])
    spec = ",".join(specs) + (f"->{out}" if ctx.draw(st.booleans()) else "")
    return tuple(args), {"spec": spec}


def _einsum_ellipsis_draw(ctx, a):
    shape = ctx.value(a).shape
    if not shape:
        return None
    return (a, ctx.new((shape[-1], ctx.draw(st.integers(1, 3))))), {"spec": "...i,ij->...j"}


def _einsum_accepts(spec: str, *shapes) -> bool:
    try:
        anp.einsum(spec, *[np.ones(shape) for shape in shapes])
    except ValueError:
        return False
    return True


def _einsum_apply(ops, *operands, spec):
    return ops.m.einsum(spec, *operands)


def _matrix_draw(ctx, a):
    # Any (stack of) matrices: the rows make it square and well conditioned themselves.
    return ((a,), {}) if ctx.value(a).ndim >= 2 else None


def _tensordot_draw(ctx, a):
    """`a` against a new operand whose leading axes match some of `a`'s, as an int (the
    last axes of `a`) or as pairs of axes in any order."""
    shape = ctx.value(a).shape
    if ctx.draw(st.booleans()):
        k = ctx.draw(st.integers(0, min(len(shape), 2)))
        fresh = tuple(ctx.draw(st.lists(st.integers(1, 3), max_size=1)))
        return (a, ctx.new(shape[len(shape) - k:] + fresh)), {"axes": k}
    mine = ctx.draw(st.permutations(range(len(shape))))[:ctx.draw(st.integers(0, len(shape)))]
    theirs = ctx.draw(st.permutations(range(len(mine))))
    b_shape = [0] * len(mine)
    for i, j in zip(mine, theirs):
        b_shape[j] = shape[i]
    axes = ([i - len(shape) * ctx.draw(st.booleans()) for i in mine], list(theirs))
    return (a, ctx.new(tuple(b_shape))), {"axes": axes}


def _norm_draw(ctx, a):
    """A vector norm along one axis or a matrix norm over two, away from their kinks: the
    norm at 0, ties of the largest (smallest) |x|, zeros of x for ord 1."""
    x = ctx.value(a)
    if x.ndim == 0:
        return None
    if x.ndim >= 2 and ctx.draw(st.booleans()):
        axis = tuple(ctx.draw(st.permutations(range(x.ndim)))[:2])
        ord = ctx.draw(st.sampled_from([None, "fro", 1, -1, np.inf, -np.inf]))
        sums = np.sum(np.abs(x), axis=axis[0] if ord in (1, -1) else axis[1], keepdims=True)
        ok = _away(x) and _no_near_ties(sums, axis) if ord not in (None, "fro") else True
    else:
        axis = ctx.draw(st.integers(-x.ndim, x.ndim - 1))
        ord = ctx.draw(st.sampled_from([None, 1, 2, 3, 2.5, np.inf, -np.inf]))
        ok = _away(x) and (ord not in (np.inf, -np.inf) or _no_near_ties(np.abs(x), axis))
    if not ok or not np.all(np.linalg.norm(x, axis=axis) > 0.1):
        return None
    return (a,), {"ord": ord, "axis": axis, "keepdims": ctx.draw(st.booleans())}


def _norm_apply(ops, x, ord, axis, keepdims):
    return ops.m.linalg.norm(x, ord, axis, keepdims)


def _linalg(name, make=lambda ops, x: x):
    def apply(ops, x):
        return getattr(ops.m.linalg, name)(make(ops, x))

    return Row(f"linalg.{name}", apply, _matrix_draw, requires=f"linalg.{name}")


def _well_conditioned(ops, x):
    # x x^T + I, with I the size of x x^T (x need not be square): symmetric positive
    # definite, eigenvalues at least 1
    return ops.m.matmul(x, ops.m.swapaxes(x, -1, -2)) + ops.m.eye(x.shape[-2])


LINEAR_ALGEBRA = [
    Row("matmul", _matmul_apply, _matmul_draw),
    Row("einsum", _einsum_apply, _einsum_draw, weight=2),
    Row("einsum 3 operands", _einsum_apply, lambda ctx, a: _einsum_draw(ctx, a, operands=2),
        supported=lambda: _einsum_accepts("i,ij,j->", (2,), (2, 3), (3,))),
    Row("einsum ...", _einsum_apply, _einsum_ellipsis_draw,
        supported=lambda: _einsum_accepts("...i,ij->...j", (2, 2), (2, 3))),
    _linalg("inv", _well_conditioned), _linalg("det", _well_conditioned),
    Row("linalg.slogdet", lambda ops, x: ops.m.linalg.slogdet(_well_conditioned(ops, x))[1],
        _matrix_draw, requires="linalg.slogdet"),
    Row("linalg.norm", lambda ops, x: ops.m.linalg.norm(x), lambda ctx, a: (
        (a,), {}) if np.any(np.abs(ctx.value(a)) > 0.1) else None, requires="linalg.norm"),
    Row("linalg.solve", lambda ops, x, y: ops.m.linalg.solve(_well_conditioned(ops, x), y),
        lambda ctx, a: ((a, ctx.new(ctx.value(a).shape)), {}) if _matrix_draw(ctx, a) else None,
        requires="linalg.solve"),
    Row("trace", lambda ops, x: ops.m.trace(x), lambda ctx, a: (
        (a,), {}) if ctx.value(a).ndim >= 2 else None, requires="trace"),
    Row("outer", lambda ops, x, y: ops.m.outer(x, y), lambda ctx, a: (
        (a, _partner(ctx, a)), {}), requires="outer"),
    Row("tensordot", lambda ops, x, y, axes: ops.m.tensordot(x, y, axes), _tensordot_draw,
        requires="tensordot"),
    Row("linalg.norm ord", _norm_apply, _norm_draw, requires="linalg.norm", weight=2),
]


# ---------------------------------------------------------------- shapes


def _transpose_draw(ctx, a):
    ndim = ctx.value(a).ndim
    form = ctx.draw(st.sampled_from(["function", "method", "function", "method", "T", "none"]))
    if form in ("T", "none"):
        return (a,), {"form": form, "axes": None}
    if ndim < 2:
        return None
    axes = [i - ndim * ctx.draw(st.booleans()) for i in ctx.draw(st.permutations(range(ndim)))]
    return (a,), {"form": form, "axes": tuple(axes)}


def _transpose_apply(ops, x, form, axes):
    if form == "T":
        return x.T
    if form == "method":
        return x.transpose(*axes)
    return ops.m.transpose(x, axes)


def _factor(ctx, size):
    """A random shape with `size` elements, maybe with a -1 and some 1s."""
    dims, rest = [], size
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23):
        while rest % p == 0:
            rest //= p
            if dims and ctx.draw(st.booleans()):
                dims[ctx.draw(st.integers(0, len(dims) - 1))] *= p
            else:
                dims.append(p)
    dims += [1] * ctx.draw(st.integers(0, 1))
    dims = list(ctx.draw(st.permutations(dims)))
    if dims and ctx.draw(st.booleans()):
        dims[ctx.draw(st.integers(0, len(dims) - 1))] = -1
    return tuple(dims)


def _order(ctx):
    # None: the keyword left out (the default, C order)
    return ctx.draw(st.sampled_from(["C", "F", None]))


def _reshape_draw(ctx, a):
    x = ctx.value(a)
    form = ctx.draw(st.sampled_from(["reshape", "method", "ravel"]))
    shape = _factor(ctx, x.size) if form != "ravel" else None
    return (a,), {"form": form, "shape": shape, "order": _order(ctx)}


def _reshape_apply(ops, x, form, shape, order):
    kw = {} if order is None else {"order": order}
    if form == "ravel":
        return ops.m.ravel(x, **kw)
    if form == "method":
        return x.reshape(shape, **kw)
    return ops.m.reshape(x, shape, **kw)


def _axes_draw(ctx, a, which):
    ndim = ctx.value(a).ndim
    if which == "expand_dims":
        return (a,), {"which": which, "args": (ctx.draw(st.integers(-ndim - 1, ndim)),)}
    if which == "squeeze":
        ones = [i for i, n in enumerate(ctx.value(a).shape) if n == 1]
        axis = ctx.draw(st.sampled_from(ones)) - ndim * ctx.draw(st.booleans()) if ones else None
        return (a,), {"which": which, "args": (axis,)}
    if ndim == 0:
        return None
    axes = st.integers(-ndim, ndim - 1)
    return (a,), {"which": which, "args": (ctx.draw(axes), ctx.draw(axes))}


def _axes_apply(ops, x, which, args):
    return getattr(ops.m, which)(x, *args)


def _axes_row(which):
    return Row(which, _axes_apply, lambda ctx, a: _axes_draw(ctx, a, which))


def _broadcast_draw(ctx, a):
    shape = ctx.value(a).shape
    lead = tuple(ctx.draw(st.lists(st.integers(1, 3), max_size=1)))
    grown = tuple(ctx.draw(st.integers(1, 3)) if n == 1 else n for n in shape)
    return (a,), {"shape": lead + grown}


def _pad_draw(ctx, a):
    widths = tuple((ctx.draw(st.integers(0, 2)), ctx.draw(st.integers(0, 2)))
                   for _ in ctx.value(a).shape)
    return ((a,), {"widths": widths}) if widths else None


def _distinct(x, axis):
    # sort's derivative is a permutation, ambiguous between (nearly) equal values
    ordered = np.sort(x, axis=axis)
    return np.all(np.abs(np.diff(ordered, axis=axis)) > 1e-3)


def _axis_row(name, extra=lambda ctx, x: {}, check=lambda x, axis: True):
    """A row for `name(x, axis=..., **extra)` with one (maybe negative) axis."""

    def draw(ctx, a):
        x = ctx.value(a)
        if x.ndim == 0:
            return None
        axis = ctx.draw(st.integers(-x.ndim, x.ndim - 1))
        return ((a,), {"axis": axis, **extra(ctx, x)}) if check(x, axis) else None

    return Row(name, lambda ops, x, **kw: getattr(ops.m, name)(x, **kw), draw, requires=name)


SHAPES = [
    Row("transpose", _transpose_apply, _transpose_draw, weight=4),
    Row("reshape", _reshape_apply, _reshape_draw, weight=2),
    _axes_row("moveaxis"), _axes_row("swapaxes"), _axes_row("expand_dims"),
    _axes_row("squeeze"),
    Row("broadcast_to", lambda ops, x, shape: ops.m.broadcast_to(x, shape), _broadcast_draw),
    Row("pad", lambda ops, x, widths: ops.m.pad(x, widths), _pad_draw),
    _axis_row("flip"),
    _axis_row("roll", lambda ctx, x: {"shift": ctx.draw(st.integers(-3, 3))}),
    _axis_row("repeat", lambda ctx, x: {"repeats": ctx.draw(st.integers(1, 2))}),
    _axis_row("sort", check=_distinct),
    Row("tile", lambda ops, x, reps: ops.m.tile(x, reps), lambda ctx, a: ((a,), {"reps": tuple(
        ctx.draw(st.lists(st.integers(1, 2), min_size=1, max_size=2)))}), requires="tile"),
    Row("diagonal", lambda ops, x, offset: ops.m.diagonal(x, offset), lambda ctx, a: (
        (a,), {"offset": ctx.draw(st.integers(-1, 1))}) if ctx.value(a).ndim >= 2 else None,
        requires="diagonal"),
    Row("tril", lambda ops, x, k: ops.m.tril(x, k) + ops.m.triu(x, k + 1) * 3.0,
        lambda ctx, a: ((a,), {"k": ctx.draw(st.integers(-1, 1))})
        if ctx.value(a).ndim >= 2 else None, requires="tril triu"),
]


# ---------------------------------------------------------------- indexing


def _basic_part(ctx, n):
    if ctx.draw(st.booleans()):
        return ctx.draw(st.integers(-n, n - 1))
    step = ctx.draw(st.sampled_from([None, 1, 2, -1, -2]))
    bound = st.one_of(st.none(), st.integers(-n - 1, n))
    return slice(ctx.draw(bound), ctx.draw(bound), step)


def _sequence_part(ctx, n, length):
    """Positions along an axis of size n, with repeats and negatives, in one of the forms."""
    positions = [ctx.draw(st.integers(-n, n - 1)) for _ in range(length)]
    form = ctx.draw(st.sampled_from(["array", "list", "tuple"]))
    if form == "array":
        return np.array(positions)
    return list(positions) if form == "list" else tuple(positions)


def _index_draw(ctx, a):
    shape = ctx.value(a).shape
    kind = ctx.draw(st.sampled_from(["basic", "advanced", "advanced", "mask"]))
    parts: list = []
    start = 0
    if kind == "mask" and shape:
        k = ctx.draw(st.integers(1, len(shape)))
        mask = ctx.rng.random(shape[:k]) < 0.6
        mask.flat[ctx.draw(st.integers(0, mask.size - 1))] = True
        parts.append(mask)
        start = k
    length = ctx.draw(st.integers(1, 4))
    first = len(parts)  # a mask is one part for several axes: the Ellipsis goes after it
    for n in shape[start:]:
        advanced = kind == "advanced" and ctx.draw(st.booleans())
        parts.append(_sequence_part(ctx, n, length) if advanced else _basic_part(ctx, n))
    if parts and ctx.draw(st.booleans()):  # an Ellipsis in place of a run of full slices
        lo = ctx.draw(st.integers(first, len(parts)))
        hi = ctx.draw(st.integers(lo, len(parts)))
        parts[lo:hi] = [Ellipsis]
    for _ in range(ctx.draw(st.integers(0, 2))):
        parts.insert(ctx.draw(st.integers(0, len(parts))), None)
    if not parts:
        parts = [Ellipsis]
    return (a,), {"index": tuple(parts)}


def _index_apply(ops, x, index):
    return ops.index(x, index)


def _take_draw(ctx, a):
    x = ctx.value(a)
    if x.ndim == 0:
        return None
    axis = ctx.draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[axis]
    if ctx.draw(st.booleans()):
        positions = np.array([ctx.draw(st.integers(-n, n - 1)) for _ in range(3)])
        return (a,), {"which": "take", "positions": positions, "axis": axis}
    shape = list(x.shape)
    shape[axis] = ctx.draw(st.integers(1, 3))
    positions = ctx.rng.integers(0, n, size=shape)
    return (a,), {"which": "take_along_axis", "positions": positions, "axis": axis}


def _take_apply(ops, x, which, positions, axis):
    return getattr(ops.m, which)(x, positions, axis=axis)


# ---------------------------------------------------------------- joining


def _join_draw(ctx, a):
    shape = ctx.value(a).shape
    which = ctx.draw(st.sampled_from(
        [w for w in ("concatenate", "stack", "hstack", "vstack", "split") if hasattr(anp, w)]))
    if which == "stack":
        axis = ctx.draw(st.integers(-len(shape) - 1, len(shape)))
        return (a, ctx.new(shape), a), {"which": which, "axis": axis}
    if which == "concatenate" and ctx.draw(st.booleans()):
        return (a, ctx.new(ctx.draw(st.lists(st.integers(1, 3), max_size=2)))), {
            "which": which, "axis": None}
    if not shape:
        return None
    axis = {"hstack": 1 if len(shape) > 1 else 0, "vstack": 0}.get(
        which, ctx.draw(st.integers(-len(shape), len(shape) - 1)))
    if which == "split":
        return ((a,), {"which": which, "axis": axis}) if shape[axis] % 2 == 0 else None
    other = list(shape)
    other[axis] = ctx.draw(st.integers(1, 3))
    return (ctx.new(tuple(other)), a, a), {"which": which, "axis": axis}


def _join_apply(ops, *arrays, which, axis):
    if which == "split":  # both halves, recombined unequally so each matters
        first, second = ops.m.split(arrays[0], 2, axis=axis)
        return first * 2.0 - second
    if which in ("hstack", "vstack"):
        return getattr(ops.m, which)(list(arrays))
    return getattr(ops.m, which)(list(arrays), axis=axis)


INDEXING = [
    Row("index", _index_apply, _index_draw, weight=5),
    Row("take", _take_apply, _take_draw, requires="take take_along_axis"),
    Row("join", _join_apply, _join_draw, weight=2),
]

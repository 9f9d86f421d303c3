"""Convolution, pooling and flatten layers for images.

Shapes: images are `(batch, channels, height, width)` (NCHW) by default and convolution
kernels `(out_channels, in_channels, kh, kw)` (OIHW). Every layer is a plain function of
arrays that works on traced values, so `grad` sees through it.

How the convolution is differentiated. `conv2d` is not one opaque primitive but

    cols = im2col(x)                                    # (C*kh*kw, batch*H_out*W_out), a copy
    out  = kernel_product(reshape(w, (O, C*kh*kw)), cols)  # one large BLAS matmul

so the rules it needs are a matrix product's (`kernel_product` is one, with its own rule
for the kernels' cotangent; see its notes), plus one pair of linear primitives that are
each other's transposes: `im2col` (gather the patches) and `col2im` (scatter-add them
back). The x-cotangent comes out as `col2im(w^T @ g)`, a transposed convolution, and the
w-cotangent as `(cols @ g^T)^T`, a correlation of g with x; both are built from ops with
rules of their own, so derivatives of any order work. A side effect
that pays off: the w-cotangent reuses the `cols` the forward pass already built (it is
on the tape) instead of gathering the patches a second time.

Layout. `im2col` orders its rows channel-major, `(C, kh, kw)`, so that all three
products (forward, x- and w-cotangent) are single 2-D matmuls with no batch loop. Its
copies, and col2im's adds, go one kernel offset (i, j) at a time, each a strided view of
the whole image stack: NumPy's cost is then set by the length of the innermost
contiguous run of those views. In NCHW that run is one image row (W_out values), so
most of the time goes to loop overhead. Layers can also take `layout="CHWN"`, images
as `(channels, height, width, batch)`: the batch is innermost, each run is W_out * batch
values (batch values for strided windows), and im2col, col2im and pooling all run two
to three times faster (measured on a (32, 14, 14, 128) stack). The matmul's output,
`(O, H_out, W_out, batch)`, is already CHWN, so a stack of CHWN layers never transposes
its activations; `nets.cnn` works this way and converts only at the ends.

dtypes: float32 in, float32 out, in both passes; nothing here upcasts.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

import autodiff.numpy as anp
from autodiff import parallel
from autodiff.core import defvjp, primitive, unbox

LAYOUTS = ("NCHW", "CHWN")

# ------------------------------------------------------------------ validation


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _out_size(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


def _check_images(name: str, x: Any, layout: str) -> tuple[int, int, int, int]:
    """(batch, channels, height, width) of `x`, whatever its layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"{name}: layout must be one of {LAYOUTS}, got {layout!r}")
    shape = anp.shape(x)
    if len(shape) != 4:
        axes = "batch, channels, height, width" if layout == "NCHW" else \
            "channels, height, width, batch"
        raise ValueError(
            f"{name} needs images of shape ({axes}) for layout {layout}, got shape {shape};"
            " reshape flat (batch, 784) MNIST rows with x.reshape(-1, 1, 28, 28)"
        )
    if layout == "NCHW":
        return shape
    c, h, w, n = shape
    return n, c, h, w


def _spatial(layout: str) -> tuple[int, int]:
    """The (height, width) axes of images in `layout`."""
    return (2, 3) if layout == "NCHW" else (1, 2)


def _window_views(x: np.ndarray, kh: int, kw: int, stride: int, spatial: tuple[int, int]):
    """(i, j, view) for each offset in a kh x kw window: the strided view of `x` that
    holds entry (i, j) of every window, windows every `stride` pixels along `spatial`."""
    a, b = spatial
    rows = (x.shape[a] - kh) // stride * stride + 1
    cols = (x.shape[b] - kw) // stride * stride + 1
    index = [slice(None)] * x.ndim
    for i in range(kh):
        for j in range(kw):
            index[a] = slice(i, i + rows, stride)
            index[b] = slice(j, j + cols, stride)
            yield i, j, x[tuple(index)]


# ---------------------------------------------------------------- im2col / col2im
#
# Both work on channel-major stacks: (C, batch, H, W) for NCHW images (the transposition
# rides along with the copy that pads), (C, H, W, batch) for CHWN ones, which already are.


def _padded(x: np.ndarray, padding: int, spatial: tuple[int, int]) -> np.ndarray:
    if padding == 0:
        return x
    pad = [(0, 0)] * x.ndim
    pad[spatial[0]] = pad[spatial[1]] = (padding, padding)
    xp = np.zeros([n + sum(p) for n, p in zip(x.shape, pad)], dtype=x.dtype)
    inner = [slice(None)] * x.ndim
    for axis in spatial:
        inner[axis] = slice(padding, padding + x.shape[axis])
    xp[tuple(inner)] = x
    return xp


def _im2col(x: np.ndarray, *, kh: int, kw: int, stride: int, padding: int,
            layout: str = "NCHW") -> np.ndarray:
    """Patches of `x` as columns: (C*kh*kw, positions), rows ordered (C, kh, kw).

    Positions are ordered (batch, H_out, W_out) for NCHW and (H_out, W_out, batch) for CHWN.
    """
    spatial = _spatial(layout)
    stack = x.transpose(1, 0, 2, 3) if layout == "NCHW" else x
    xp = _padded(stack, padding, spatial)
    cols = None
    for i, j, view in _window_views(xp, kh, kw, stride, spatial):
        if cols is None:
            cols = np.empty((view.shape[0], kh, kw, *view.shape[1:]), dtype=x.dtype)
        cols[:, i, j] = view
    return cols.reshape(cols.shape[0] * kh * kw, -1)


def _col2im(cols: np.ndarray, *, x_shape: tuple, kh: int, kw: int, stride: int,
            padding: int, layout: str = "NCHW") -> np.ndarray:
    """The transpose of `_im2col`: add each column entry back where it was taken from."""
    spatial = _spatial(layout)
    stack_shape = list((x_shape[1], x_shape[0], *x_shape[2:]) if layout == "NCHW" else x_shape)
    for axis in spatial:
        stack_shape[axis] += 2 * padding
    xp = np.zeros(stack_shape, dtype=cols.dtype)
    blocks = None
    for i, j, view in _window_views(xp, kh, kw, stride, spatial):
        if blocks is None:
            blocks = cols.reshape(view.shape[0], kh, kw, *view.shape[1:])
        view += blocks[:, i, j]
    inner = [slice(None)] * 4
    for axis in spatial:
        inner[axis] = slice(padding, xp.shape[axis] - padding)
    stack = xp[tuple(inner)]
    return _swap_batch_channels(stack) if layout == "NCHW" else np.ascontiguousarray(stack)


def _swap_batch_channels(x: np.ndarray) -> np.ndarray:
    """(A, B, H, W) -> (B, A, H, W) as a C-contiguous copy (moves whole rows)."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3))


swap_batch_channels = primitive(_swap_batch_channels)
swap_batch_channels.__name__ = "swap_batch_channels"
# A permutation that is its own inverse: its transpose is itself.
defvjp(swap_batch_channels, lambda g, ans, x: swap_batch_channels(g))

im2col = primitive(_im2col)
im2col.__name__ = "im2col"
col2im = primitive(_col2im)
col2im.__name__ = "col2im"
# Both are linear and each is the other's transpose, so each one's rule is the other.
defvjp(im2col, lambda g, ans, x, **conv: col2im(g, x_shape=anp.shape(x), **conv))
defvjp(col2im, lambda g, ans, cols, x_shape, **conv: im2col(g, **conv))


def _permuted(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, axes))


permuted = primitive(_permuted)
permuted.__name__ = "permuted"
# A contiguous copy, unlike anp.transpose's view: later elementwise ops that mix memory
# orders run several times slower.
defvjp(permuted, lambda g, ans, x, axes: permuted(g, tuple(int(a) for a in np.argsort(axes))))


def to_layout(x: Any, source: str, target: str) -> Any:
    """Images `x` in layout `source` as a contiguous array in layout `target` (see LAYOUTS)."""
    for layout in (source, target):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if source == target:
        return x
    return permuted(x, (1, 2, 3, 0) if source == "NCHW" else (3, 0, 1, 2))


# ------------------------------------------------------------------- convolution
#
# The kernels' cotangent g @ cols^T is a sum over every position (every pixel of every
# image) into a small (O, C*kh*kw) matrix. OpenBLAS computes that sum as (cols @ g^T)^T
# 1.7 times as fast with its AVX-512 kernels (0.68 ms instead of 1.15 ms for O=32, C=16,
# 3x3, 12544 positions) and 1.1 times with its AVX2 ones: the same products, only the
# operand it packs as the long one differs. So the product has a rule of its own.


def _kernel_product(w: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return parallel.matmul(w, cols)


def _kernel_product_rule_w(g, ans, w, cols):
    return anp.transpose(anp.matmul(cols, anp.transpose(g)))


def _kernel_product_rule_cols(g, ans, w, cols):
    return anp.matmul(anp.transpose(w), g)


kernel_product = primitive(_kernel_product)
kernel_product.__name__ = "kernel_product"
defvjp(kernel_product, _kernel_product_rule_w, _kernel_product_rule_cols)


def conv2d(x: Any, w: Any, stride: int = 1, padding: int = 0, layout: str = "NCHW") -> Any:
    """Cross-correlation of images `x` (batch, C_in, H, W) with kernels `w` (C_out, C_in, kh, kw).

    Returns (batch, C_out, H_out, W_out) with H_out = (H + 2*padding - kh) // stride + 1
    (likewise W_out): zero padding on every side, the same stride in both directions. No
    bias: add one with `out + b.reshape(1, -1, 1, 1)`. With `layout="CHWN"` images are
    (C, H, W, batch) on both sides (bias: `b.reshape(-1, 1, 1, 1)`), the faster layout
    for stacks of layers (see the module notes).
    """
    stride = _check_int("conv2d: stride", stride, 1)
    padding = _check_int("conv2d: padding", padding, 0)
    n, c, h, wd = _check_images("conv2d", x, layout)
    w_shape = anp.shape(w)
    if len(w_shape) != 4:
        raise ValueError(
            "conv2d needs kernels of shape (out_channels, in_channels, kh, kw), "
            f"got shape {w_shape}"
        )
    out_c, in_c, kh, kw = w_shape
    if in_c != c:
        raise ValueError(
            f"conv2d: the images have {c} channels but the kernels expect {in_c} "
            f"(x shape {anp.shape(x)} in layout {layout}, w shape {w_shape})"
        )
    if kh > h + 2 * padding or kw > wd + 2 * padding:
        raise ValueError(
            f"conv2d: kernel {kh}x{kw} is larger than the padded image "
            f"{h + 2 * padding}x{wd + 2 * padding}; use a smaller kernel or more padding"
        )
    h_out, w_out = _out_size(h, kh, stride, padding), _out_size(wd, kw, stride, padding)
    cols = im2col(x, kh=kh, kw=kw, stride=stride, padding=padding, layout=layout)
    out = kernel_product(anp.reshape(w, (out_c, in_c * kh * kw)), cols)  # (O, positions)
    if layout == "CHWN":
        return anp.reshape(out, (out_c, h_out, w_out, n))
    return swap_batch_channels(anp.reshape(out, (out_c, n, h_out, w_out)))


# ------------------------------------------------------------------------ pooling
#
# A window entry (i, j) of every window at once is a strided view of the images (see
# `_window_views`), shaped like the output. Pooling works on these size*size views with
# whole-array elementwise ops: NumPy reduces over two small strided window axes, or
# broadcasts against them, several times slower.
#
# Both poolings are linear maps of their input once the window weights are fixed (the
# max pool's weights mark each window's maximum, and are constant almost everywhere):
# `pool_gather` takes weighted window sums, `pool_scatter` spreads values back with the
# same weights. They are each other's transposes, so each is the other's rule and every
# order of derivative is available.


def _pool_shape(name: str, x: Any, size: int, stride: int, layout: str) -> None:
    _, _, h, w = _check_images(name, x, layout)
    if size > h or size > w:
        raise ValueError(f"{name}: window {size}x{size} is larger than the image {h}x{w}")


def _pool_views(x: np.ndarray, size: int, stride: int, layout: str):
    return _window_views(x, size, size, stride, _spatial(layout))


def _pool_gather(x: np.ndarray, weights: Any, *, size: int, stride: int,
                 layout: str = "NCHW") -> np.ndarray:
    """sum over offsets (i, j) of weights[i][j] * (entry (i, j) of each window of x).

    `weights[i][j]` is a scalar or an array shaped like the output, in x's dtype.
    """
    out = None
    for i, j, view in _pool_views(x, size, stride, layout):
        term = weights[i][j] * view
        out = term if out is None else np.add(out, term, out=out)
    return out


def _pool_scatter(g: np.ndarray, weights: Any, *, x_shape: tuple, size: int, stride: int,
                  layout: str = "NCHW") -> np.ndarray:
    """The transpose of `_pool_gather`: an image of `x_shape` where each window entry
    (i, j) receives weights[i][j] * g (summed where windows overlap)."""
    h, w = (x_shape[axis] for axis in _spatial(layout))
    tiled = size == stride and h % size == 0 and w % size == 0
    # In g's memory order: elementwise ops that mix memory orders are several times slower.
    new = np.empty_like if tiled else np.zeros_like
    out = new(g, shape=x_shape)
    for i, j, view in _pool_views(out, size, stride, layout):
        if size <= stride:  # windows do not overlap: each pixel is written at most once
            np.multiply(weights[i][j], g, out=view)
        else:
            view += weights[i][j] * g
    return out


pool_gather = primitive(_pool_gather)
pool_gather.__name__ = "pool_gather"
pool_scatter = primitive(_pool_scatter)
pool_scatter.__name__ = "pool_scatter"
defvjp(pool_gather, lambda g, ans, x, weights, **pool: pool_scatter(
    g, weights, x_shape=anp.shape(x), **pool), None)
defvjp(pool_scatter, lambda g, ans, g_in, weights, x_shape, **pool: pool_gather(
    g, weights, **pool), None)


def _max_pool2d(x: np.ndarray, *, size: int, stride: int, layout: str = "NCHW") -> np.ndarray:
    out = None
    for _, _, view in _pool_views(x, size, stride, layout):
        out = view.copy(order="K") if out is None else np.maximum(out, view, out=out)
    return out


def _max_pool2d_rule(g, ans, x, *, size, stride, layout="NCHW"):
    # Ties share: each of the k tied maxima of a window gets g/k, so the window's shares
    # still sum to g (as for anp.max). Blank image regions tie everywhere, so this path
    # must be fast too: the masks stay boolean (a quarter of the memory traffic) and g is
    # divided once by the tie counts instead of every mask by them. The masks are
    # constants (the max is piecewise linear), so the rule is linear in g and its own
    # derivative is pool_gather's rule.
    x_value, ans_value = unbox(x), unbox(ans)
    hits = [[None] * size for _ in range(size)]
    ties = None
    for i, j, view in _pool_views(x_value, size, stride, layout):
        hit = hits[i][j] = np.equal(view, ans_value)
        ties = hit.astype(np.uint8) if ties is None else np.add(ties, hit, out=ties)
    if ties.max() > 1:
        g = g / ties.astype(ans_value.dtype)
    return pool_scatter(g, hits, x_shape=anp.shape(x), size=size, stride=stride,
                        layout=layout)


_max_pool2d_op = primitive(_max_pool2d)
_max_pool2d_op.__name__ = "max_pool2d"
defvjp(_max_pool2d_op, _max_pool2d_rule)


def max_pool2d(x: Any, size: int = 2, stride: int = 2, layout: str = "NCHW") -> Any:
    """Maximum over `size` x `size` windows every `stride` pixels: (batch, C, H_out, W_out).

    H_out = (H - size) // stride + 1: rows and columns that no window covers are dropped.
    Gradient: where a window's maximum is tied, the tied entries share the cotangent
    equally (it still sums to g), as `anp.max` does. `layout="CHWN"` takes and returns
    (C, H, W, batch) images.
    """
    size = _check_int("max_pool2d: size", size, 1)
    stride = _check_int("max_pool2d: stride", stride, 1)
    _pool_shape("max_pool2d", x, size, stride, layout)
    return _max_pool2d_op(x, size=size, stride=stride, layout=layout)


def avg_pool2d(x: Any, size: int = 2, stride: int = 2, layout: str = "NCHW") -> Any:
    """Mean over `size` x `size` windows every `stride` pixels: (batch, C, H_out, W_out).

    Sizes and layouts as for `max_pool2d`; every entry of a window gets 1/size^2 of its
    cotangent.
    """
    size = _check_int("avg_pool2d: size", size, 1)
    stride = _check_int("avg_pool2d: stride", stride, 1)
    _pool_shape("avg_pool2d", x, size, stride, layout)
    dtype = np.asarray(unbox(x)).dtype
    if dtype.kind != "f":  # ints average to floats
        dtype = np.result_type(dtype, np.float32)
    weights = np.full((size, size), 1.0 / (size * size), dtype=dtype)
    return pool_gather(x, weights, size=size, stride=stride, layout=layout)


# ------------------------------------------------------------------------ flatten


def flatten(x: Any) -> Any:
    """(batch, ...) -> (batch, features): the layout dense layers expect."""
    shape = anp.shape(x)
    if len(shape) < 1:
        raise ValueError("flatten needs an array with a batch axis, got a scalar")
    return anp.reshape(x, (shape[0], -1))

"""Convolution, pooling, flatten and dropout layers for NCHW images.

Shapes: images are `(batch, channels, height, width)` (NCHW) and convolution kernels
`(out_channels, in_channels, kh, kw)` (OIHW). Every layer is a plain function of arrays
that works on traced values, so `grad` sees through it.

How the convolution is differentiated. `conv2d` is not one opaque primitive but

    cols = im2col(x)                         # (C*kh*kw, batch*H_out*W_out), a copy
    out  = reshape(w, (O, C*kh*kw)) @ cols    # one large BLAS matmul

so the rules it needs are matmul's, which exist already, plus one pair of linear
primitives that are each other's transposes: `im2col` (gather the patches) and `col2im`
(scatter-add them back). The x-cotangent comes out as `col2im(w^T @ g)`, a transposed
convolution, and the w-cotangent as `g @ cols^T`, a correlation of g with x; both are
built from ops with rules of their own, so derivatives of any order work. A side effect
that pays off: the w-cotangent reuses the `cols` the forward pass already built (it is
on the tape) instead of gathering the patches a second time.

Layout. `im2col` orders its columns channel-major, `(C, kh, kw, batch, H_out, W_out)`:
every copy it makes moves contiguous image rows, and all three products (forward, x- and
w-cotangent) are single 2-D matmuls with no batch loop. The product comes out as
`(O, batch, H_out, W_out)` and is copied to C-contiguous NCHW (`swap_batch_channels`,
which moves whole rows): left as a transposed view, every later elementwise op would mix
memory orders (np.where, for one, writes C order), which measured several times slower.

dtypes: float32 in, float32 out, in both passes; nothing here upcasts.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import autodiff.numpy as anp
from autodiff.core import defvjp, primitive, unbox

# ------------------------------------------------------------------ validation


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _out_size(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


def _check_images(name: str, x: Any) -> tuple[int, int, int, int]:
    shape = anp.shape(x)
    if len(shape) != 4:
        raise ValueError(
            f"{name} needs images of shape (batch, channels, height, width), got shape "
            f"{shape}; reshape flat (batch, 784) MNIST rows with x.reshape(-1, 1, 28, 28)"
        )
    return shape


# ---------------------------------------------------------------- im2col / col2im


def _im2col(x: np.ndarray, *, kh: int, kw: int, stride: int, padding: int) -> np.ndarray:
    """Patches of `x` (batch, C, H, W) as columns: (C*kh*kw, batch*H_out*W_out)."""
    n, c, h, w = x.shape
    p, s = padding, stride
    # Channel-major and padded in one copy; the patch copy below then moves whole rows.
    xp = np.zeros((c, n, h + 2 * p, w + 2 * p), dtype=x.dtype)
    xp[:, :, p:p + h, p:p + w] = x.transpose(1, 0, 2, 3)
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
    h_out, w_out = windows.shape[2:4]
    cols = np.ascontiguousarray(windows.transpose(0, 4, 5, 1, 2, 3))
    return cols.reshape(c * kh * kw, n * h_out * w_out)


def _col2im(cols: np.ndarray, *, x_shape: tuple, kh: int, kw: int, stride: int,
            padding: int) -> np.ndarray:
    """The transpose of `_im2col`: add each column entry back where it was taken from."""
    n, c, h, w = x_shape
    p, s = padding, stride
    h_out, w_out = _out_size(h, kh, s, p), _out_size(w, kw, s, p)
    cols = cols.reshape(c, kh, kw, n, h_out, w_out)
    xp = np.zeros((c, n, h + 2 * p, w + 2 * p), dtype=cols.dtype)
    # kh*kw big strided adds instead of np.add.at over every pixel: a few loop turns,
    # each a vectorised add of a whole (C, batch, H_out, W_out) block.
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s] += cols[:, i, j]
    return _swap_batch_channels(xp[:, :, p:p + h, p:p + w])


def _swap_batch_channels(x: np.ndarray) -> np.ndarray:
    """(A, B, H, W) -> (B, A, H, W) as a C-contiguous copy (moves whole image rows)."""
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
defvjp(im2col, lambda g, ans, x, kh, kw, stride, padding: col2im(
    g, x_shape=anp.shape(x), kh=kh, kw=kw, stride=stride, padding=padding))
defvjp(col2im, lambda g, ans, cols, x_shape, kh, kw, stride, padding: im2col(
    g, kh=kh, kw=kw, stride=stride, padding=padding))


# ------------------------------------------------------------------- convolution


def conv2d(x: Any, w: Any, stride: int = 1, padding: int = 0) -> Any:
    """Cross-correlation of images `x` (batch, C_in, H, W) with kernels `w` (C_out, C_in, kh, kw).

    Returns (batch, C_out, H_out, W_out) with H_out = (H + 2*padding - kh) // stride + 1
    (likewise W_out): zero padding on every side, the same stride in both directions. No
    bias: add one with `out + b.reshape(1, -1, 1, 1)`.
    """
    stride = _check_int("conv2d: stride", stride, 1)
    padding = _check_int("conv2d: padding", padding, 0)
    n, c, h, wd = _check_images("conv2d", x)
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
            f"(x shape {(n, c, h, wd)}, w shape {w_shape})"
        )
    if kh > h + 2 * padding or kw > wd + 2 * padding:
        raise ValueError(
            f"conv2d: kernel {kh}x{kw} is larger than the padded image "
            f"{h + 2 * padding}x{wd + 2 * padding}; use a smaller kernel or more padding"
        )
    h_out, w_out = _out_size(h, kh, stride, padding), _out_size(wd, kw, stride, padding)
    cols = im2col(x, kh=kh, kw=kw, stride=stride, padding=padding)
    out = anp.matmul(anp.reshape(w, (out_c, in_c * kh * kw)), cols)  # (O, batch*H_out*W_out)
    return swap_batch_channels(anp.reshape(out, (out_c, n, h_out, w_out)))


# ------------------------------------------------------------------------ pooling
#
# A window entry (i, j) of every window at once is a strided view of the image, shape
# (batch, C, H_out, W_out) (see `_offsets`). Pooling works on these size*size views with
# whole-array elementwise ops: NumPy reduces over two small strided window axes, or
# broadcasts against them, several times slower.
#
# Both poolings are linear maps of their input once the window weights are fixed (the
# max pool's weights mark each window's maximum, and are constant almost everywhere):
# `pool_gather` takes weighted window sums, `pool_scatter` spreads values back with the
# same weights. They are each other's transposes, so each is the other's rule and every
# order of derivative is available.


def _pool_shape(name: str, x: Any, size: int, stride: int) -> tuple[int, int]:
    _, _, h, w = _check_images(name, x)
    if size > h or size > w:
        raise ValueError(f"{name}: window {size}x{size} is larger than the image {h}x{w}")
    return (h - size) // stride + 1, (w - size) // stride + 1


def _offsets(x: np.ndarray, size: int, stride: int):
    """(i, j, view) for each window offset: the view of `x` (batch, C, H_out, W_out)
    holding entry (i, j) of every window."""
    _, _, h, w = x.shape
    rows = (h - size) // stride * stride + 1
    cols = (w - size) // stride * stride + 1
    for i in range(size):
        for j in range(size):
            yield i, j, x[:, :, i:i + rows:stride, j:j + cols:stride]


def _pool_gather(x: np.ndarray, weights: Any, *, size: int, stride: int) -> np.ndarray:
    """sum over offsets (i, j) of weights[i][j] * (entry (i, j) of each window of x).

    `weights[i][j]` is a scalar or a (batch, C, H_out, W_out) array, in x's dtype.
    """
    out = None
    for i, j, view in _offsets(x, size, stride):
        term = weights[i][j] * view
        out = term if out is None else np.add(out, term, out=out)
    return out


def _pool_scatter(g: np.ndarray, weights: Any, *, x_shape: tuple, size: int,
                  stride: int) -> np.ndarray:
    """The transpose of `_pool_gather`: an image of `x_shape` where each window entry
    (i, j) receives weights[i][j] * g (summed where windows overlap)."""
    _, _, h, w = x_shape
    tiled = size == stride and h % size == 0 and w % size == 0
    # In g's memory order: elementwise ops that mix memory orders are several times slower.
    new = np.empty_like if tiled else np.zeros_like
    out = new(g, shape=x_shape)
    for i, j, view in _offsets(out, size, stride):
        if size <= stride:  # windows do not overlap: each pixel is written at most once
            np.multiply(weights[i][j], g, out=view)
        else:
            view += weights[i][j] * g
    return out


pool_gather = primitive(_pool_gather)
pool_gather.__name__ = "pool_gather"
pool_scatter = primitive(_pool_scatter)
pool_scatter.__name__ = "pool_scatter"
defvjp(pool_gather, lambda g, ans, x, weights, size, stride: pool_scatter(
    g, weights, x_shape=anp.shape(x), size=size, stride=stride), None)
defvjp(pool_scatter, lambda g, ans, g_in, weights, x_shape, size, stride: pool_gather(
    g, weights, size=size, stride=stride), None)


def _max_pool2d(x: np.ndarray, *, size: int, stride: int) -> np.ndarray:
    out = None
    for _, _, view in _offsets(x, size, stride):
        out = view.copy(order="K") if out is None else np.maximum(out, view, out=out)
    return out


def _max_pool2d_rule(g, ans, x, *, size, stride):
    # Ties share: each of the k tied maxima of a window gets g/k, so the window's shares
    # still sum to g (as for anp.max). Blank image regions tie everywhere, so this path
    # must be fast too: the masks stay boolean (a quarter of the memory traffic) and g is
    # divided once by the tie counts instead of every mask by them. The masks are
    # constants (the max is piecewise linear), so the rule is linear in g and its own
    # derivative is pool_gather's rule.
    x_value, ans_value = unbox(x), unbox(ans)
    hits = [[None] * size for _ in range(size)]
    ties = None
    for i, j, view in _offsets(x_value, size, stride):
        hit = hits[i][j] = np.equal(view, ans_value)
        ties = hit.astype(np.uint8) if ties is None else np.add(ties, hit, out=ties)
    if ties.max() > 1:
        g = g / ties.astype(ans_value.dtype)
    return pool_scatter(g, hits, x_shape=anp.shape(x), size=size, stride=stride)


_max_pool2d_op = primitive(_max_pool2d)
_max_pool2d_op.__name__ = "max_pool2d"
defvjp(_max_pool2d_op, _max_pool2d_rule)


def max_pool2d(x: Any, size: int = 2, stride: int = 2) -> Any:
    """Maximum over `size` x `size` windows every `stride` pixels: (batch, C, H_out, W_out).

    H_out = (H - size) // stride + 1: rows and columns that no window covers are dropped.
    Gradient: where a window's maximum is tied, the tied entries share the cotangent
    equally (it still sums to g), as `anp.max` does.
    """
    size = _check_int("max_pool2d: size", size, 1)
    stride = _check_int("max_pool2d: stride", stride, 1)
    _pool_shape("max_pool2d", x, size, stride)
    return _max_pool2d_op(x, size=size, stride=stride)


def avg_pool2d(x: Any, size: int = 2, stride: int = 2) -> Any:
    """Mean over `size` x `size` windows every `stride` pixels: (batch, C, H_out, W_out).

    Sizes as for `max_pool2d`; every entry of a window gets 1/size^2 of its cotangent.
    """
    size = _check_int("avg_pool2d: size", size, 1)
    stride = _check_int("avg_pool2d: stride", stride, 1)
    _pool_shape("avg_pool2d", x, size, stride)
    dtype = np.result_type(np.asarray(unbox(x)).dtype, np.float32)  # ints average to floats
    weights = np.full((size, size), 1.0 / (size * size), dtype=dtype)
    return pool_gather(x, weights, size=size, stride=stride)


# -------------------------------------------------------------- flatten, dropout


def flatten(x: Any) -> Any:
    """(batch, ...) -> (batch, features): the layout dense layers expect."""
    shape = anp.shape(x)
    if len(shape) < 1:
        raise ValueError("flatten needs an array with a batch axis, got a scalar")
    return anp.reshape(x, (shape[0], -1))


def dropout(x: Any, rate: float, rng: np.random.Generator | None, train: bool) -> Any:
    """Inverted dropout: zero each entry with probability `rate`, scale the rest by 1/(1-rate).

    The scaling keeps the expected value of every entry, so at evaluation (`train`
    False) the layer is the identity and needs no rescaling. The mask comes from `rng`
    alone: the same generator state gives the same mask.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    if not train or rate == 0.0:
        return x
    if not isinstance(rng, np.random.Generator):
        raise ValueError("dropout with train=True needs rng, a np.random.Generator")
    dtype = np.asarray(unbox(x)).dtype
    keep = rng.random(anp.shape(x)) >= rate
    # The mask is a constant: the gradient flows through the kept entries, scaled alike.
    return x * (keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate)))

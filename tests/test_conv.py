"""autodiff.conv: convolution and pooling against plain loops, gradients against central
differences, dtypes, and the errors bad shapes get."""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays_in

import autodiff.numpy as anp
from autodiff import check_grads, grad
from autodiff.conv import avg_pool2d, conv2d, flatten, max_pool2d, to_layout
from autodiff.core import Trace, backward

# ------------------------------------------------------------ loop references


def conv_loops(x, w, stride, padding):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out = (h + 2 * padding - kh) // stride + 1
    w_out = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, h_out, w_out))
    for b in range(n):
        for k in range(o):
            for i in range(h_out):
                for j in range(w_out):
                    patch = xp[b, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[b, k, i, j] = np.sum(patch * w[k])
    return out


def pool_loops(x, size, stride, reduce):
    n, c, h, w = x.shape
    h_out, w_out = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.zeros((n, c, h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            window = x[:, :, i * stride:i * stride + size, j * stride:j * stride + size]
            out[:, :, i, j] = reduce(window, axis=(2, 3))
    return out


# ------------------------------------------------------------------ strategies


@st.composite
def conv_cases(draw):
    """(x, w, stride, padding): batch 1-2, channels 1-3, sides 3-7, kernel 1-3."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(3, 7)), draw(st.integers(3, 7))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 2))
    x = draw(arrays_in((n, c, h, w), -2, 2))
    kernels = draw(arrays_in((o, c, kh, kw), -2, 2))
    return x, kernels, stride, padding


@st.composite
def pool_cases(draw):
    """(x, size, stride) with distinct, well separated values: no tied maxima, so central
    differences never straddle a switch of the maximum."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(3, 7)), draw(st.integers(3, 7))
    size, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.linspace(-3, 3, n * c * h * w)
    x = np.random.default_rng(seed).permutation(values).reshape(n, c, h, w)
    return x, size, stride


# --------------------------------------------------------------- convolution


@given(conv_cases())
def test_conv2d_matches_loops_and_central_differences(case):
    x, w, stride, padding = case
    out = conv2d(x, w, stride=stride, padding=padding)
    np.testing.assert_allclose(out, conv_loops(x, w, stride, padding), rtol=1e-10, atol=1e-12)
    check_grads(lambda x, w: conv2d(x, w, stride=stride, padding=padding), (x, w))


def chwn(x):
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0))


def nchw(x):
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2))


@given(conv_cases())
def test_chwn_conv2d_matches_loops_and_central_differences(case):
    x, w, stride, padding = case
    out = conv2d(chwn(x), w, stride=stride, padding=padding, layout="CHWN")
    np.testing.assert_allclose(nchw(out), conv_loops(x, w, stride, padding), rtol=1e-10,
                               atol=1e-12)
    check_grads(lambda x, w: conv2d(x, w, stride=stride, padding=padding, layout="CHWN"),
                (chwn(x), w))


def test_stacked_chwn_layers_second_order():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 6, 6))
    w1, w2 = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((2, 3, 2, 2))

    def stack(x, w1, w2):
        h = conv2d(to_layout(x, "NCHW", "CHWN"), w1, padding=1, layout="CHWN")
        h = avg_pool2d(h, 2, 2, layout="CHWN")
        return to_layout(conv2d(h, w2, stride=2, padding=1, layout="CHWN"), "CHWN", "NCHW")

    check_grads(stack, (x, w1, w2), order=2)


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0), (2, 2)])
def test_conv2d_second_order(stride, padding):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2))
    check_grads(lambda x, w: conv2d(x, w, stride=stride, padding=padding), (x, w), order=2)


def test_conv2d_third_order_of_a_scalar():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 1, 4, 4)), rng.standard_normal((2, 1, 2, 2))
    check_grads(lambda x, w: anp.sum(conv2d(x, w, padding=1) ** 2), (x, w), order=3)


# ------------------------------------------------------------------- pooling


@given(pool_cases())
def test_max_pool2d_matches_loops_and_central_differences(case):
    x, size, stride = case
    if size > min(x.shape[2:]):
        with pytest.raises(ValueError, match="larger than the image"):
            max_pool2d(x, size, stride)
        return
    np.testing.assert_array_equal(max_pool2d(x, size, stride), pool_loops(x, size, stride, np.max))
    check_grads(lambda x: max_pool2d(x, size, stride), (x,))


@given(pool_cases())
def test_avg_pool2d_matches_loops_and_central_differences(case):
    x, size, stride = case
    if size > min(x.shape[2:]):
        return
    np.testing.assert_allclose(avg_pool2d(x, size, stride), pool_loops(x, size, stride, np.mean),
                               rtol=1e-12, atol=1e-12)
    check_grads(lambda x: avg_pool2d(x, size, stride), (x,))


@given(pool_cases())
def test_chwn_pooling_matches_loops_and_central_differences(case):
    x, size, stride = case
    if size > min(x.shape[2:]):
        return
    for pool, reduce in ((max_pool2d, np.max), (avg_pool2d, np.mean)):
        out = pool(chwn(x), size, stride, layout="CHWN")
        np.testing.assert_allclose(nchw(out), pool_loops(x, size, stride, reduce),
                                   rtol=1e-12, atol=1e-12)
        check_grads(functools.partial(pool, size=size, stride=stride, layout="CHWN"), (chwn(x),))


@pytest.mark.parametrize("size,stride", [(2, 2), (3, 1), (2, 3)])
def test_pooling_second_order(size, stride):
    x = np.random.default_rng(2).permutation(np.linspace(-2, 2, 2 * 2 * 6 * 5)).reshape(2, 2, 6, 5)
    check_grads(lambda x: max_pool2d(x, size, stride) ** 2, (x,), order=2)
    check_grads(lambda x: avg_pool2d(x, size, stride) ** 2, (x,), order=2)


def test_max_pool2d_ties_share_the_cotangent():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = 1.0  # one window with a single maximum, three windows of 4 tied zeros
    g = grad(lambda x: anp.sum(max_pool2d(x)))(x)
    expected = np.full((4, 4), 0.25)
    expected[:2, :2] = [[1.0, 0.0], [0.0, 0.0]]
    np.testing.assert_array_equal(g[0, 0], expected)
    g = grad(lambda x: anp.sum(max_pool2d(x, layout="CHWN")))(chwn(x))
    np.testing.assert_array_equal(g[0, :, :, 0], expected)
    # Overlapping windows: each window's shares still sum to its cotangent.
    g = grad(lambda x: anp.sum(max_pool2d(x, 3, 1)))(np.zeros((1, 1, 4, 4)))
    assert g.sum() == pytest.approx(4.0)


def test_pooling_drops_rows_and_columns_no_window_covers():
    x = np.arange(2 * 5 * 7, dtype=np.float64).reshape(1, 2, 5, 7)
    assert max_pool2d(x).shape == (1, 2, 2, 3)
    g = grad(lambda x: anp.sum(max_pool2d(x)))(x)
    assert g[..., 4, :].sum() == 0 and g[..., :, 6].sum() == 0
    assert g.sum() == 12


# ------------------------------------------------------------------- dtypes


def raw_cotangents(fun, *args):
    """The cotangents exactly as the rules produced them, before grad casts to the
    arguments' dtypes: a silent upcast inside a rule would show here."""
    trace = Trace()
    boxes = [trace.new_input(a) for a in args]
    out = fun(*boxes)
    seed = np.ones(out.value.shape, dtype=out.value.dtype)
    return backward(trace, [(out.index, seed)], [b.index for b in boxes])


def test_float32_stays_float32_in_both_passes():
    rng = np.random.default_rng(3)
    x = rng.random((2, 3, 8, 8), dtype=np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    assert conv2d(x, w, padding=1).dtype == np.float32
    assert max_pool2d(x).dtype == np.float32 and avg_pool2d(x, 3, 1).dtype == np.float32
    layers = {
        "conv2d": lambda x, w: conv2d(x, w, stride=2, padding=1),
        "max_pool2d": lambda x, w: max_pool2d(conv2d(x, w, padding=1)),
        "avg_pool2d": lambda x, w: avg_pool2d(conv2d(x, w), 3, 1),
    }
    for name, fun in layers.items():
        for cotangent in raw_cotangents(fun, x, w):
            assert cotangent.dtype == np.float32, name


# ------------------------------------------------------------------ flatten


def test_flatten():
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(flatten(x), x.reshape(2, 12))
    check_grads(flatten, (x,), order=2)


# -------------------------------------------------------------------- errors


@pytest.mark.parametrize("call,message", [
    (lambda: conv2d(np.ones((1, 5, 5)), np.ones((2, 1, 3, 3))), r"\(batch, channels"),
    (lambda: conv2d(np.ones((1, 1, 5, 5)), np.ones((2, 3, 3))), "kernels of shape"),
    (lambda: conv2d(np.ones((1, 2, 5, 5)), np.ones((2, 3, 3, 3))), "2 channels .* expect 3"),
    (lambda: conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))), "larger than the padded"),
    (lambda: conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=0), "stride"),
    (lambda: conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding=-1), "padding"),
    (lambda: conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding=1.5), "padding"),
    (lambda: conv2d(np.ones((1, 5, 5)), np.ones((2, 1, 3, 3)), layout="CHWN"),
     r"\(channels, height, width, batch"),
    (lambda: conv2d(np.ones((2, 5, 5, 1)), np.ones((2, 1, 3, 3)), layout="CHWN"),
     "2 channels .* expect 1"),
    (lambda: conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), layout="NHWC"), "layout"),
    (lambda: max_pool2d(np.ones((1, 1, 4, 4)), layout="nchw"), "layout"),
    (lambda: to_layout(np.ones((1, 1, 4, 4)), "NCHW", "NHWC"), "layout"),
    (lambda: max_pool2d(np.ones((1, 1, 2, 2)), 3), "larger than the image"),
    (lambda: max_pool2d(np.ones((4, 4)), 2), r"\(batch, channels"),
    (lambda: avg_pool2d(np.ones((1, 1, 4, 4)), 2, 0), "stride"),
])
def test_bad_shapes_and_settings_raise_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("layer", ["conv NCHW", "conv CHWN", "max_pool2d", "avg_pool2d"])
def test_forward_over_reverse(layer):
    """jvp of grad against hvp (reverse over reverse): forward over reverse differentiates
    the backward pass in its cotangent, so col2im's and the pooling scatters' own rules run
    on traced values."""
    from autodiff import hvp, jvp

    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 2, 2))
    calls = {
        "conv NCHW": lambda x, w: conv2d(x, w, stride=1, padding=1),
        "conv CHWN": lambda x, w: conv2d(to_layout(x, "NCHW", "CHWN"), w, padding=1,
                                         layout="CHWN"),
        "max_pool2d": lambda x, w: max_pool2d(x * w[0, 0, 0, 0], 2, 1),
        "avg_pool2d": lambda x, w: avg_pool2d(x * w[0, 0, 0, 0], 2, 1),
    }

    def f(x, w):
        return anp.sum(anp.sin(calls[layer](x, w)))

    tangents = (rng.standard_normal(x.shape), rng.standard_normal(w.shape))
    np.testing.assert_allclose(jvp(grad(f), (x, w), tangents)[1], hvp(f, (x, w), tangents),
                               rtol=1e-9, atol=1e-12)

"""The engine against an adversarial user: each class of input that once gave a silently
wrong gradient or an obscure error, checked beyond a single example. Every gradient is
right (central differences and a closed form) or the call fails with a clear message."""

import warnings
from collections import OrderedDict, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import arrays_in

import autodiff.numpy as anp
from autodiff import (
    check_grads,
    grad,
    hessian,
    hvp,
    jacobian,
    jvp,
    tree_flatten,
    value_and_grad,
    vjp,
)

rng = np.random.default_rng(0)


# ------------------------------------------------------------------- indexing


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_sequences_inside_an_index_accumulate_repeated_positions(data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    positions = st.lists(st.integers(-shape[1], shape[1] - 1), min_size=1, max_size=5)
    picked = data.draw(positions)
    container = data.draw(st.sampled_from([tuple, list, np.array]))
    index = data.draw(st.sampled_from([
        (slice(None), container(picked)),
        (Ellipsis, container(picked)) if len(shape) == 2 else (0, container(picked)),
        (container([p % shape[0] for p in picked]), container(picked)),
    ]))
    x = rng.standard_normal(shape)
    weights = rng.standard_normal(np.shape(x[index]))
    expected = np.zeros(shape)
    np.add.at(expected, index, weights)
    g = grad(lambda x: anp.sum(x[index] * weights))(x)
    np.testing.assert_allclose(g, expected)


def test_repeated_tuple_positions_count_twice():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(grad(lambda x: anp.sum(x[:, (0, 0)]))(x),
                                  [[2, 0, 0], [2, 0, 0]])
    np.testing.assert_array_equal(grad(lambda x: anp.sum(x[(0, 0), (1, 1)]))(x),
                                  [[0, 2, 0], [0, 0, 0]])
    np.testing.assert_array_equal(grad(lambda x: anp.sum(x[[1, 1, 1]]))(x),
                                  [[0, 0, 0], [3, 3, 3]])
    check_grads(lambda x: x[:, (2, 0, 2)] ** 2, (x,), order=2)


# ------------------------------------------------------- axes, orders, shapes

permutations = st.integers(1, 4).flatmap(
    lambda n: st.permutations(range(n)).flatmap(
        lambda p: st.tuples(st.just(n), st.tuples(*[st.sampled_from([a, a - n]) for a in p]))))


@given(permutations)
@settings(max_examples=30, deadline=None)
def test_transpose_with_negative_axes_in_every_form(case):
    n, axes = case
    x = rng.standard_normal((2, 3, 4, 5)[:n])
    weights = rng.standard_normal(np.transpose(x, axes).shape)
    expected = np.transpose(weights, np.argsort([a % n for a in axes]))
    forms = [lambda x: anp.transpose(x, axes), lambda x: anp.transpose(x, axes=axes),
             lambda x: x.transpose(axes), lambda x: x.transpose(*axes)]
    for form in forms:
        np.testing.assert_array_equal(form(x), np.transpose(x, axes))
        g = grad(lambda x, form=form: anp.sum(form(x) * weights))(x)
        np.testing.assert_allclose(g, expected)


@given(order=st.sampled_from(["C", "F", "A"]), fortran=st.booleans(),
       shape=st.sampled_from([(6, 2), (3, 4), (2, 2, 3), (12,)]))
@settings(max_examples=30, deadline=None)
def test_reshape_and_ravel_follow_their_order(order, fortran, shape):
    x = rng.standard_normal((3, 4))
    x = np.asfortranarray(x) if fortran else x
    weights = rng.standard_normal(shape)
    cases = [
        (lambda x: anp.reshape(x, shape, order=order), weights),
        (lambda x: x.reshape(shape, order=order), weights),
        (lambda x: x.reshape(*shape, order=order), weights),
        (lambda x: anp.ravel(x, order=order), weights.ravel()),
        (lambda x: x.ravel(order), weights.ravel()),
        (lambda x: x.flatten(order=order), weights.ravel()),
    ]
    for fn, w in cases:
        np.testing.assert_array_equal(fn(x), np.reshape(x, w.shape, order=order))
        g = grad(lambda x, fn=fn, w=w: anp.sum(fn(x) * w))(x)
        # The element read k-th from x gets the k-th weight, in the same reading order.
        np.testing.assert_allclose(g, np.reshape(w, x.shape, order=_read_order(order, x)))


def _read_order(order, x):
    if order == "A":
        return "F" if x.flags.f_contiguous and not x.flags.c_contiguous else "C"
    return order


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_reductions_take_every_integer_like_axis(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    ndim = len(shape)
    axis_int = st.integers(-ndim, ndim - 1)
    wrap = st.sampled_from([int, np.int64, np.int32, np.intp])
    axis = data.draw(st.one_of(
        st.tuples(axis_int, wrap).map(lambda p: p[1](p[0])),
        st.lists(axis_int, min_size=1, max_size=ndim, unique_by=lambda a: a % ndim)
        .map(lambda axes: tuple(np.int64(a) for a in axes)),
    ))
    keepdims = data.draw(st.booleans())
    x = rng.permutation(np.prod(shape)).reshape(shape) + rng.uniform(0, 0.1, shape)
    for name in ("sum", "mean", "max", "min", "var", "std", "logsumexp"):
        op = getattr(anp, name)
        if name == "std" and np.prod([shape[a] for a in np.atleast_1d(axis)]) == 1:
            continue  # covered by the test of the std of one value
        got = op(x, axis=axis, keepdims=keepdims)
        if name != "logsumexp":
            np.testing.assert_allclose(got, getattr(np, name)(x, axis=axis, keepdims=keepdims))
        check_grads(lambda x, op=op: op(x, axis=axis, keepdims=keepdims), (x,))


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "std"])
def test_reduction_settings_are_supported_or_refused_up_front(name):
    x = rng.standard_normal((3, 4))
    op = getattr(anp, name)
    # Positional settings as NumPy takes them, and defaults passed explicitly.
    check_grads(lambda x: op(x, 1, None, None) if name in ("sum", "mean", "var", "std")
                else op(x, 1, None), (x,))
    check_grads(lambda x: op(x, axis=-1, out=None, keepdims=True), (x,))
    refused = {"dtype": np.float32, "where": x > 0, "initial": 0.0}
    for setting, value in refused.items():
        if name in ("max", "min") and setting == "dtype":
            continue  # NumPy's max takes no dtype
        if name in ("var", "std", "mean") and setting == "initial":
            continue
        def f(x, setting=setting, value=value):
            return op(x, **{setting: value})

        with pytest.raises(TypeError, match=f"{setting}="):
            grad(lambda x: anp.sum(f(x)))(x)
    with pytest.raises(TypeError, match="out=.*losing its gradient"):
        grad(lambda x: anp.sum(op(x, out=np.zeros(()))))(x)
    # On plain arrays the settings work as in NumPy.
    extra = {"initial": -np.inf if name == "max" else np.inf} if name in ("max", "min") else {}
    np.testing.assert_allclose(op(x, axis=0, where=x > -10, keepdims=True, **extra),
                               getattr(np, name)(x, axis=0, where=x > -10, keepdims=True, **extra))


def test_concatenate_with_axis_none_and_negative_axes():
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((4,))
    np.testing.assert_array_equal(anp.concatenate([a, b], axis=None),
                                  np.concatenate([a, b], axis=None))
    check_grads(lambda a, b: anp.concatenate([a, b], axis=None), (a, b), order=2)
    check_grads(lambda a: anp.concatenate((a, a * 2), axis=np.int64(-1)), (a,))
    check_grads(lambda a: anp.stack((a, a * 2), axis=np.int64(-1)), (a,))


@pytest.mark.parametrize("spec,shapes", [
    ("ij,jk->ik", ((2, 1), (3, 4))), ("ij,jk->ik", ((2, 3), (1, 4))),
    ("ij,ij->i", ((2, 1), (2, 3))), ("ij,ij->ij", ((1, 3), (2, 1))),
    ("bij,bjk->bik", ((1, 2, 3), (4, 3, 2))), ("ij,kj->ikj", ((2, 1), (3, 4))),
])
def test_einsum_broadcasts_size_one_axes(spec, shapes):
    a, b = (rng.standard_normal(s) for s in shapes)
    np.testing.assert_allclose(anp.einsum(spec, a, b), np.einsum(spec, a, b))
    check_grads(lambda a, b: anp.einsum(spec, a, b), (a, b), order=2)


def test_einsum_interleaved_form():
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    np.testing.assert_array_equal(anp.einsum(a, [0, 1], [1, 0]), np.einsum(a, [0, 1], [1, 0]))
    np.testing.assert_allclose(anp.einsum(a, [0, 1], b, [1, 2]), np.einsum(a, [0, 1], b, [1, 2]))
    check_grads(lambda a: anp.einsum(a, [0, 1], [1, 0]), (a,), order=2)
    check_grads(lambda a, b: anp.einsum(a, [0, 1], b, [1, 2], [2, 0]), (a, b), order=2)
    check_grads(lambda a, b: anp.einsum(a, [0, 1], b, [1, 2]), (a, b))


# ---------------------------------------------------------------- clip, astype


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_clip_differentiates_traced_and_broadcasting_bounds(data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
    x, lo, hi = (data.draw(arrays_in(s, -3, 3)) for s in shapes.input_shapes)
    hi = np.abs(hi) + 0.5
    lo = -np.abs(lo) - 0.5
    # Keep every value away from its bounds, where the derivative jumps.
    x = np.where(np.abs(x - lo) < 0.1, lo - 0.2, x)
    x = np.where(np.abs(x - hi) < 0.1, hi + 0.2, x)
    np.testing.assert_allclose(anp.clip(x, lo, hi), np.clip(x, lo, hi))
    gx, glo, ghi = grad(lambda x, lo, hi: anp.sum(anp.clip(x, lo, hi)), argnums=(0, 1, 2))(
        x, lo, hi)
    out = np.broadcast_shapes(x.shape, lo.shape, hi.shape)
    inside = np.broadcast_to((x >= lo) & (x <= hi), out)
    below, above = np.broadcast_to(x < lo, out), np.broadcast_to(x > hi, out)

    def summed(mask, like):
        lead = mask.ndim - like.ndim
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(like.shape) if n == 1)
        return mask.sum(axis=axes).reshape(like.shape)

    np.testing.assert_allclose(gx, summed(inside, x))
    np.testing.assert_allclose(glo, summed(below, lo))
    np.testing.assert_allclose(ghi, summed(above, hi))
    check_grads(lambda x, lo, hi: anp.clip(x, lo, hi), (x, lo, hi))
    check_grads(lambda x, hi: anp.clip(x, a_min=None, a_max=hi), (x, hi))
    check_grads(lambda x, lo: anp.clip(x, min=lo), (x, lo))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, bool, "int16"])
def test_a_cast_to_integer_or_bool_has_zero_derivative(dtype):
    x = np.array([0.5, 1.7, 2.2])
    g = grad(lambda x: anp.sum(x.astype(dtype) * 1.0))(x)
    np.testing.assert_array_equal(g, np.zeros(3))
    g = grad(lambda x: anp.sum(anp.astype(x, dtype) * x))(x)
    np.testing.assert_array_equal(g, x.astype(dtype))  # only the product rule's other half
    check_grads(lambda x: x.astype(np.float64) * x.astype("float64"), (x,))


# ------------------------------------------------------ 0-d values, conversions


def test_iterating_or_taking_len_of_a_traced_scalar_raises_like_numpy():
    with pytest.raises(TypeError, match="iteration over a 0-d"):
        grad(lambda x: sum(v for v in x))(np.array(2.0))
    with pytest.raises(TypeError, match="0-d"):
        grad(lambda x: x * len(x))(np.array(2.0))
    with pytest.raises(TypeError, match="iteration over a 0-d"):
        grad(lambda x: anp.sum(x) * list(x[0])[0])(np.ones(2))
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(grad(lambda x: sum(v * v for v in x))(x), 2 * x)
    g = grad(lambda m: sum(anp.sum(row) * i for i, row in enumerate(m)))(np.ones((3, 2)))
    np.testing.assert_array_equal(g, [[0, 0], [1, 1], [2, 2]])


@pytest.mark.parametrize("name,fn,advice", [
    ("//", lambda x: x // 2, "anp.floor"), ("r//", lambda x: 2 // x, "anp.floor"),
    ("%", lambda x: x % 2, "anp.floor"), ("r%", lambda x: 2.0 % x, "anp.floor"),
    ("divmod", lambda x: divmod(x, 2)[0], "anp.floor"),
    ("//=", lambda x: _augmented_floordiv(x), "anp.floor"),
    ("item", lambda x: x[0].item(), "aux"), ("float", lambda x: float(x[0]), "aux"),
    ("int", lambda x: int(x[0]), "aux"), ("tolist", lambda x: x.tolist(), "aux"),
    ("setitem", lambda x: _assign(x), "anp.where"),
    ("store", lambda x: _store(x), "anp.stack"),
    ("bool of many", lambda x: x * 2 if x else x, r"\.any\(\)"),
])
def test_what_cannot_be_traced_says_what_to_write_instead(name, fn, advice):
    with pytest.raises((TypeError, ValueError), match=advice):
        grad(lambda x: anp.sum(fn(x)))(np.array([1.0, 2.0]))


def _augmented_floordiv(x):
    x //= 2
    return x


def _assign(x):
    x[0] = 0.0
    return x


def _store(x):
    a = np.zeros(2)
    a[:1] = x[:1]
    return a


def test_control_flow_on_a_traced_scalar_still_works():
    def f(x):
        return x * x if x > 0 and bool(x) else -x

    assert grad(f)(3.0) == 6.0 and grad(f)(-2.0) == -1.0


# ------------------------------------------------------------------- argnums


def test_argnums_accepts_integer_likes_and_repeats():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])

    def f(x, y):
        return anp.sum(x * y * y)

    np.testing.assert_array_equal(grad(f, argnums=np.int64(1))(x, y), 2 * x * y)
    np.testing.assert_array_equal(grad(f, argnums=np.int32(-2))(x, y), y * y)
    gx, gx_again, gy = grad(f, argnums=(0, 0, 1))(x, y)
    np.testing.assert_array_equal(gx, y * y)
    np.testing.assert_array_equal(gx_again, y * y)
    assert gx is not gx_again and type(gx) is np.ndarray
    np.testing.assert_array_equal(gy, 2 * x * y)
    (value, _), (g0, g1) = value_and_grad(lambda x: (anp.sum(x * x), 0), argnums=[0, -1],
                                          has_aux=True)(x)
    np.testing.assert_array_equal(g0, 2 * x)
    np.testing.assert_array_equal(g1, 2 * x)
    j = jacobian(lambda x, y: x * y, argnums=(1, 1))(x, y)
    np.testing.assert_array_equal(j[0], np.diag(x))
    np.testing.assert_array_equal(j[1], np.diag(x))


@pytest.mark.parametrize("argnums", [1.0, "x", (0, 1.5), (), True, None, [0, "y"]])
def test_argnums_of_the_wrong_type_is_a_clear_type_error(argnums):
    for transform in (grad, value_and_grad, jacobian):
        with pytest.raises(TypeError, match="argnums must be an int"):
            transform(lambda x: anp.sum(x), argnums=argnums)


def test_argnums_out_of_range():
    with pytest.raises(TypeError, match="out of range"):
        grad(lambda x: anp.sum(x), argnums=1)(np.ones(2))


# ------------------------------------------------------- dtypes of the inputs


@pytest.mark.parametrize("value", [np.array([1, 2]), 3, True, np.int32(4), np.array([True]),
                                   np.arange(3, dtype=np.uint8)])
def test_integer_inputs_are_refused_with_advice(value):
    for transform in (grad, lambda f: (lambda x: value_and_grad(f)(x)), jacobian, hessian):
        with pytest.raises(TypeError, match="pass floats"):
            transform(lambda x: anp.sum(x * 1.0))(value)
    with pytest.raises(TypeError, match="pass floats"):
        vjp(lambda x: x * 1.0, value)
    with pytest.raises(TypeError, match="pass floats"):
        grad(lambda p: anp.sum(p["w"] * 1.0))({"w": value})
    # Not differentiated, an integer argument is fine.
    g = grad(lambda x, n: anp.sum(x) * anp.sum(n), argnums=0)(np.ones(2), value)
    np.testing.assert_array_equal(g, np.full(2, np.sum(value)))


@pytest.mark.parametrize("value", ["text", object(), [np.ones(2), "name"]])
def test_non_numeric_differentiated_arguments_are_refused(value):
    with pytest.raises(TypeError, match="cannot be differentiated"):
        grad(lambda x: 1.0)(value)


def test_float16_mean_and_var_over_many_elements():
    n = 70_000  # the count itself overflows float16 (max 65,504)
    x = np.ones(n, np.float16)
    g = grad(anp.mean)(x)
    assert g.dtype == np.float16
    np.testing.assert_allclose(g.astype(np.float64), 1 / n, rtol=1e-2)
    np.testing.assert_allclose(grad(lambda x: anp.mean(x, axis=0))(x).astype(float), 1 / n,
                               rtol=1e-2)
    x = np.linspace(-1, 1, n).astype(np.float16)
    g = grad(anp.var)(x).astype(np.float64)
    np.testing.assert_allclose(g, 2 * (x.astype(np.float64) - x.astype(np.float64).mean()) / n,
                               rtol=2e-2, atol=1e-7)


# ----------------------------------------------------------- vjp's cotangent


def test_vjp_checks_the_cotangent():
    _, vjp_fn = vjp(lambda x: x * 2, np.ones(3))
    for wrong in (np.ones((2, 3)), np.ones(1), np.ones((3, 1)), 1.0):
        with pytest.raises(ValueError, match="shape"):
            vjp_fn(wrong)
    for wrong in (np.ones(3) * 1j, np.array(["a", "b", "c"]), np.array([None] * 3)):
        with pytest.raises(TypeError, match="dtype"):
            vjp_fn(wrong)
    _, vjp_fn = vjp(lambda x: {"a": x, "b": anp.sum(x)}, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="leaf 1 has shape"):
        vjp_fn({"a": np.ones(3), "b": np.ones(2)})
    (g,) = vjp_fn({"a": np.ones(3, np.int64), "b": 2.0})  # real numbers are cast
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [3.0, 3.0, 3.0])


# ---------------------------------------------------------- no aliasing


@pytest.mark.parametrize("fn", [
    lambda x: x, lambda x: x + 0.0, lambda x: anp.reshape(x, (2, 2)), lambda x: x.T,
    lambda x: anp.broadcast_to(x, (2, 2)), lambda x: anp.squeeze(x), lambda x: x[...],
])
def test_returned_gradients_never_share_memory_with_the_caller(fn):
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    out, vjp_fn = vjp(fn, x)
    seed = np.ones(np.shape(out))
    (g,) = vjp_fn(seed)
    assert not np.shares_memory(g, seed) and not np.shares_memory(g, x)
    g[...] = 7.0  # writing into the gradient leaves the caller's arrays alone
    np.testing.assert_array_equal(seed, 1.0)
    np.testing.assert_array_equal(x, [[1.0, 2.0], [3.0, 4.0]])

    from autodiff import defvjp, primitive

    @primitive
    def returns_its_input_as_gradient(x, y):
        return x * 1.0

    defvjp(returns_its_input_as_gradient, lambda g, ans, x, y: y)
    y = np.ones(3)
    _, grads = value_and_grad(lambda x, y: anp.sum(returns_its_input_as_gradient(x, y)))(
        np.ones(3), y)
    assert not np.shares_memory(grads, y)


@pytest.mark.parametrize("fn", [
    lambda p: anp.sum(p["u"] + p["w"]),  # add gives both arguments the one cotangent
    lambda p: anp.sum(p["u"] - (-p["w"])),
    lambda p: anp.sum(anp.reshape(p["u"], (2, 1)) + anp.reshape(p["w"], (2, 1))),
    lambda p: anp.sum(p["u"] + p["w"] + p["u"]),
])
def test_returned_gradients_never_share_memory_with_each_other(fn):
    params = {"u": np.array([1.0, 2.0]), "w": np.array([3.0, 4.0])}
    expected = {k: v.copy() for k, v in grad(fn)(params).items()}
    g = grad(fn)(params)
    assert not np.shares_memory(g["u"], g["w"])
    for key in g:  # scaling each gradient in place, as an optimizer may
        g[key] *= 0.1
    for key in g:
        np.testing.assert_allclose(g[key], 0.1 * expected[key])

    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    gx, gy = grad(lambda x, y: anp.sum(x + y), argnums=(0, 1))(x, y)
    assert not np.shares_memory(gx, gy)
    _, vjp_fn = vjp(lambda x, y: x + y, x, y)
    seed = np.ones(2)
    gx, gy = vjp_fn(seed)
    assert not np.shares_memory(gx, gy) and not np.shares_memory(gx, seed)


# ------------------------------------------------------------------- pytrees


def test_ordered_and_default_dicts_keep_their_type_and_order():
    params = OrderedDict([("w", np.array(2.0)), ("b", np.array(3.0))])
    g = grad(lambda p: p["w"] * p["b"] ** 2)(params)
    assert type(g) is OrderedDict and list(g) == ["w", "b"]
    np.testing.assert_allclose([g["w"], g["b"]], [9.0, 12.0])
    leaves, _ = tree_flatten(params)
    assert [float(v) for v in leaves] == [2.0, 3.0]  # its own order, not sorted

    params = defaultdict(list, {"w": np.array(2.0)})
    g = grad(lambda p: p["w"] ** 2)(params)
    assert type(g) is defaultdict and g.default_factory is list and g["w"] == 4.0


def test_mixed_key_types_give_a_clear_error():
    with pytest.raises(TypeError, match="keys of types int, str"):
        grad(lambda p: p[1] * p["a"])({1: 1.0, "a": 2.0})


# ------------------------------------------------------------------ complex


@pytest.mark.parametrize("fn,arg", [
    (lambda x: x * (1 + 0.2j), 1.0), (lambda x: anp.abs(x * 1j), 1.0),
    (lambda x: anp.sum(anp.sqrt(x - 2.0 + 0j)), np.ones(3)),
    (lambda x: anp.sum(x.astype(complex)), np.ones(2)),
    (lambda x: anp.sum(anp.exp(x * np.array([1j, 1]))).real, np.ones(2)),
    (anp.abs, 1.1 + 1.2j), (lambda x: anp.sum(x), np.ones(2) + 1j),
    (lambda x: anp.sum(x), np.ones(2, np.complex64)),
])
def test_complex_numbers_are_refused(fn, arg):
    with pytest.raises(TypeError, match="complex"):
        grad(fn)(arg)


def test_complex_constants_off_the_trace_are_plain_numpy():
    assert anp.abs(3 + 4j) == 5.0
    np.testing.assert_array_equal(anp.exp(np.array([0j])), [1 + 0j])


# ------------------------------------------------- Python numbers, 0 * inf


def test_rules_compute_in_numpy_for_python_scalars():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sqrt'(0) is inf, as in JAX
        assert grad(lambda x: anp.power(x, 0.0))(0.0) == 0.0
        assert grad(lambda x: x ** 0.5)(0.0) == np.inf
        assert grad(lambda x: x ** 0.0)(0.0) == 0.0
        assert grad(lambda x: x ** 2)(0.0) == 0.0
        assert grad(lambda x: anp.power(x, -1.0) * 0.0 + 1.0)(2.0) == 0.0
        np.testing.assert_allclose(grad(lambda x: x ** 1.5)(0.0), 0.0)


def test_no_nan_where_the_derivative_is_zero():
    assert grad(anp.std)(3.5) == 0.0
    assert grad(anp.std)(np.array([3.5])) == 0.0
    np.testing.assert_array_equal(grad(anp.std)(np.full(4, 2.0)), np.zeros(4))
    g = grad(lambda x: anp.sum(anp.std(x, axis=1)))(rng.standard_normal((3, 1)))
    np.testing.assert_array_equal(g, np.zeros((3, 1)))
    g = grad(lambda x: anp.sum(anp.std(x, axis=0, ddof=0, keepdims=True)))(np.ones((1, 4)))
    np.testing.assert_array_equal(g, np.zeros((1, 4)))
    np.testing.assert_array_equal(hessian(anp.std)(np.ones(3)), np.zeros((3, 3)))
    # Away from 0 the std is differentiated as before.
    check_grads(lambda x: anp.std(x, axis=1), (rng.standard_normal((3, 4)),), order=2)
    # power(x, 0) is 1: every derivative is 0, also at 0 and through the branch `where`
    # did not select.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        def summed_grad(h):
            return lambda x: anp.sum(grad(h)(x))

        def f(x):
            return anp.sum(anp.power(x, 0.0))

        for x in (np.array(0.0), 0.0, np.zeros(3)):
            for order in (f, summed_grad(f), summed_grad(summed_grad(f))):
                np.testing.assert_array_equal(grad(order)(x), np.zeros(np.shape(x)))
        np.testing.assert_array_equal(
            hessian(lambda x: anp.sum(x ** np.array([0.0, 2.0])))(np.zeros(2)),
            [[0.0, 0.0], [0.0, 2.0]])


# ------------------------------------------------------------ refusals, not wrong answers


@pytest.mark.parametrize("fn", [
    lambda a: anp.sum(a).astype(int), lambda a: anp.sum(a) > 0, lambda a: 0,
    lambda a: anp.sum(a > 1.5),
])
def test_grad_of_an_integer_or_boolean_output_is_refused(fn):
    # Such an output has no gradient: a zero one would hide the mistake.
    with pytest.raises(TypeError, match="returns a float scalar, but it returned (int|bool)"):
        grad(fn)(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(grad(lambda a: 0.0)(np.array([1.0, 2.0])), [0.0, 0.0])


@pytest.mark.parametrize("transform", [jvp, hvp])
def test_jvp_and_hvp_take_tuples_of_arguments_only(transform):
    # An array would be taken apart along its first axis, one argument per row.
    x = np.ones((1, 3))
    for primals, tangents in ((x, x), (3.0, 1.0), ((x,), x)):
        with pytest.raises(TypeError, match="must be a tuple or list with one entry per"):
            transform(lambda a: anp.sum(a ** 3), primals, tangents)
    result = transform(lambda a: anp.sum(a ** 3), [x], [x])
    np.testing.assert_allclose(result[1] if transform is jvp else result,
                               9.0 if transform is jvp else 6 * x)


@pytest.mark.parametrize("call", [
    lambda x: anp.linalg.norm(x, axis=5), lambda x: anp.linalg.norm(x, 1, axis=(1, 2)),
    lambda x: anp.tensordot(x, x, ([3], [0])), lambda x: anp.split(x, 2, axis=3),
    lambda x: anp.repeat(x, 2, axis=3), lambda x: anp.sum(x, axis=-3),
    lambda x: anp.linalg.norm(x[0], axis=1),
])
def test_an_axis_out_of_range_is_numpys_axis_error_not_wrapped(call):
    x = np.arange(1.0, 5.0).reshape(2, 2)
    with pytest.raises(np.exceptions.AxisError):
        call(x)
    with pytest.raises(np.exceptions.AxisError):
        grad(lambda x: anp.sum(call(x)))(x)


@pytest.mark.parametrize("axes", [3, -1, ([0, 0], [0, 1])])
def test_tensordot_refuses_axes_it_cannot_sum_over(axes):
    x = np.arange(1.0, 5.0).reshape(2, 2)
    with pytest.raises(ValueError, match="anp.tensordot"):
        anp.tensordot(x, x, axes)


def test_stop_gradient_hands_out_the_taped_array_read_only():
    # The tape still reads that memory: writing into it would change the gradient.
    def f(x):
        y = anp.exp(x)
        held = anp.stop_gradient(y)
        held *= 0.0
        return anp.sum(y)

    with pytest.raises(ValueError, match="read-only"):
        grad(f)(np.array([0.0, 1.0]))
    mine = grad(lambda x: anp.sum(x * anp.stop_gradient(x).copy()))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(mine, [1.0, 2.0])
    plain = np.ones(2)
    assert anp.stop_gradient(plain) is plain  # an untraced array passes as it is


@pytest.mark.parametrize("fn", [anp.linalg.det, lambda a: anp.linalg.slogdet(a)[1]])
def test_the_gradient_at_a_singular_matrix_says_why_it_fails(fn):
    with pytest.raises(np.linalg.LinAlgError, match="gradient of (det|slogdet).*singular"):
        grad(fn)(np.ones((2, 2)))


def test_the_hessian_of_a_p_norm_stays_finite_next_to_a_zero_entry():
    # For 1 < p < 2 the power in the rule has an infinite derivative at 0; it must not
    # spread NaN through the norm to every entry. The norm of (a, b, 0) is that of (a, b).
    x = np.array([1.0, 2.0, 0.0])
    h = hessian(lambda a: anp.linalg.norm(a, ord=1.5))(x)
    assert np.all(np.isfinite(h))
    np.testing.assert_allclose(h[:2, :2], hessian(lambda a: anp.linalg.norm(a, ord=1.5))(x[:2]))
    np.testing.assert_array_equal(h[2], 0.0)
    np.testing.assert_array_equal(h[:, 2], 0.0)
    check_grads(lambda a: anp.linalg.norm(a, ord=1.7), np.array([0.3, -2.0, 1.1]), order=2)


@pytest.mark.parametrize("fn", [
    lambda x: anp.sum(anp.cumsum(x, axis=0)) * x, lambda x: anp.sum(anp.cumprod(x, axis=0)) * x,
    lambda x: anp.prod(x, axis=0) * x, lambda x: anp.prod(x, axis=-1, keepdims=True) * x,
])
def test_a_0d_array_along_axis_0_differentiates_as_numpy_computes_it(fn):
    # NumPy takes axis 0 of a 0-d array as its one entry: d(x * x) = 2x, d2 = 2.
    x = np.array(2.0)
    assert grad(fn)(x) == 4.0 and hessian(fn)(x) == 2.0


def test_jvp_refuses_integer_primals_in_its_own_words():
    with pytest.raises(TypeError, match="jvp differentiates float inputs only"):
        jvp(lambda a: a * a, (np.array([1, 2]),), (np.ones(2),))


def test_where_with_the_condition_alone_gives_its_indices_as_numpy_does():
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(grad(lambda x: anp.sum(x[anp.where(x > 0)]))(x), [1, 0, 1])
    np.testing.assert_array_equal(grad(lambda x: anp.sum(x[anp.where(x)]))(x), [1, 1, 1])
    (indices,) = grad(lambda x: anp.sum(x) + 0 * len(anp.where(x > 0)[0]), argnums=(0,))(x)
    np.testing.assert_array_equal(indices, [1, 1, 1])
    with pytest.raises(ValueError, match="both or neither"):
        anp.where(x > 0, x)


def test_a_traced_value_kept_past_its_transform_is_refused_not_a_zero_gradient():
    x = np.array([1.5, -2.0])
    kept = []

    def f(x):
        def inner(y):
            z = y * x
            kept.append(z)  # kept past grad(inner): it has no gradient in f
            return anp.sum(z)

        grad(inner)(x)
        return anp.sum(kept[-1] * x)

    for transform in (grad, value_and_grad):
        with pytest.raises(TypeError, match="transform that has already returned"):
            transform(f)(x)

    cache = {}

    def cached(x):  # a value memoised by an earlier call, used alone or with a live one
        if "twice" not in cache:
            cache["twice"] = x * 2
        return anp.sum(cache["twice"] * x) + anp.sum(cache["twice"])

    np.testing.assert_array_equal(grad(cached)(x), 4 * x + 2)
    with pytest.raises(TypeError, match="transform that has already returned"):
        grad(cached)(x)
    escaped = []
    vjp(lambda v: escaped.append(v * v) or v, x)
    with pytest.raises(TypeError, match="transform that has already returned"):
        grad(lambda v: anp.sum(escaped[0] * v))(x)
    with pytest.raises(TypeError, match="transform that has already returned"):
        grad(lambda v: anp.sum(v * v))(escaped[0])  # passed in as an argument

    constants = []

    def f_kept_as_a_constant(x):
        def inner(y):
            z = y * x
            constants.append(anp.stop_gradient(z))
            return anp.sum(z)

        grad(inner)(x)
        return anp.sum(constants[-1] * x)

    np.testing.assert_allclose(grad(f_kept_as_a_constant)(x), x * x)


def test_vjp_keeps_its_tape_safe_from_the_callers_writes():
    # vjp_fn sweeps the tape later: the output its rules read comes back read-only, and
    # the arguments are copied, so writing into either changes no gradient.
    x = np.array([0.5, 1.0])
    y, vjp_fn = vjp(anp.exp, x)
    with pytest.raises(ValueError, match="read-only"):
        y -= 1.0
    np.testing.assert_allclose(vjp_fn(np.ones(2))[0], np.exp(x))
    x2 = np.array([1.0, 2.0])
    _, vjp_fn = vjp(lambda v: v * v, x2)
    x2[0] = 10.0
    np.testing.assert_array_equal(vjp_fn(np.ones(2))[0], [2.0, 4.0])
    _, vjp_fn, aux = vjp(lambda v: (anp.sum(anp.tanh(v)), anp.tanh(v)), x, has_aux=True)
    assert not aux.flags.writeable
    (g,) = vjp_fn(np.array(1.0))
    g[...] = 0.0  # the gradient is the caller's own
    np.testing.assert_allclose(vjp_fn(np.array(1.0))[0], 1 - np.tanh(x) ** 2)


@pytest.mark.parametrize("make", [
    lambda x: anp.full_like(x, x[0]), lambda x: anp.full((3,), x[0]),
    lambda x: anp.full_like(x, x[0] * 2, shape=(2, 3)), lambda x: anp.full((2, 3), x),
])
def test_a_traced_fill_value_is_differentiated_not_dropped(make):
    x = np.array([0.3, -0.8, 1.1])
    fn = lambda x: anp.sum(make(x) * x)  # noqa: E731
    check_grads(fn, x, order=2)
    assert make(x.astype(np.float32)).dtype == np.float32
    assert grad(fn)(x.astype(np.float32)).dtype == np.float32


def test_the_ndarray_attributes_and_calls_that_numpy_users_reach_for():
    from autodiff import conv

    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(grad(lambda x: anp.sum(x.mT @ x))(x),
                               grad(lambda x: anp.sum(anp.swapaxes(x, -1, -2) @ x))(x))
    np.testing.assert_allclose(grad(lambda x: anp.sum(x.real * x.conj()))(x), 2 * x)
    np.testing.assert_allclose(grad(lambda x: anp.sum(round(x) * x))(x), np.round(x))
    with pytest.raises(TypeError, match=r"x\.flat .*anp\.ravel"):
        grad(lambda x: x.flat[0])(x)
    with pytest.raises(ValueError, match="ddof and correction"):
        grad(lambda x: anp.var(x, ddof=1, correction=1))(x)
    # keyword arguments pass through jacobian and hessian, undifferentiated
    np.testing.assert_allclose(hessian(lambda v, s=1.0: anp.sum(v ** 3) * s)(x[0], s=2.0),
                               np.diag(12 * x[0]))
    np.testing.assert_allclose(jacobian(lambda v, s=1.0: v * s)(x[0], s=3.0), 3 * np.eye(2))
    (value, aux), g = value_and_grad(lambda v: [anp.sum(v), "aux"], has_aux=True)(x)
    assert value == 10.0 and aux == "aux"
    images = np.ones((1, 1, 4, 4), np.float16)
    assert conv.avg_pool2d(images).dtype == np.float16
    assert grad(lambda v: anp.sum(conv.avg_pool2d(v)))(images).dtype == np.float16


def test_jvp_of_a_function_with_integer_outputs_gives_them_zero_tangents():
    x = np.array([0.3, -0.8, 1.1])
    (doubled, index), (tangent, index_tangent) = jvp(
        lambda v: (v * 2, anp.argmax(v)), (x,), (x,))
    np.testing.assert_allclose(tangent, 2 * x)
    assert index == 2 and index_tangent == 0
    _, tangents = jvp(lambda v: {"s": anp.sum(v), "mask": v > 0}, (x,), (np.ones(3),))
    assert tangents["s"] == 3.0 and not tangents["mask"].any()


def test_checkpoint_refuses_a_traced_keyword_argument_saying_so():
    from autodiff import checkpoint

    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="keyword argument 'b' is traced; pass it positionally"):
        grad(lambda x: anp.sum(checkpoint(lambda a, b=None: a * b)(x, b=x)))(x)
    np.testing.assert_array_equal(
        grad(lambda x: anp.sum(checkpoint(lambda a, b=None: a * b)(x, b=3.0)))(x), [3.0, 3.0])


def test_logsumexp_of_an_empty_slice_is_minus_infinity():
    for dtype in (np.float64, np.float32):
        empty = np.zeros((0, 3), dtype)
        result = anp.logsumexp(empty, axis=0)
        assert result.dtype == dtype and np.all(result == -np.inf)
        assert grad(lambda v: anp.sum(anp.logsumexp(v, axis=1)))(empty).shape == (0, 3)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e7), (np.float64, 1e17),
                                          (np.float32, -1e4), (np.float16, 1e3)])
def test_log_softmax_and_its_gradient_keep_log_n_at_any_magnitude(dtype, scale):
    from nets.activations import log_softmax, softmax
    from nets.costs import cross_entropy

    logits = np.full((1, 3), scale, dtype)  # three equal logits: each class has 1/3
    np.testing.assert_allclose(log_softmax(logits), np.full((1, 3), -np.log(3)), rtol=1e-3)
    np.testing.assert_allclose(softmax(logits).sum(), 1.0, rtol=1e-3)
    targets = np.eye(3, dtype=dtype)[:1]
    loss, g = value_and_grad(cross_entropy)(logits, targets)
    np.testing.assert_allclose(loss, np.log(3), rtol=1e-3)
    np.testing.assert_allclose(g, [[-2 / 3, 1 / 3, 1 / 3]], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(grad(lambda v: anp.logsumexp(v))(logits[0]), np.full(3, 1 / 3),
                               rtol=1e-3)
    assert g.dtype == dtype


def test_softplus_and_log_sigmoid_have_their_second_derivative_at_0():
    from nets.activations import log_sigmoid, softplus

    assert hessian(softplus)(0.0) == 0.25 and hessian(log_sigmoid)(0.0) == -0.25
    assert grad(softplus)(0.0) == 0.5
    check_grads(softplus, np.array([-30.0, -1.0, 0.0, 2.0, 40.0]), order=3)
    assert softplus(np.float32(1e4)) == np.float32(1e4) and softplus(np.float32(-1e4)) == 0.0


def test_check_grads_refuses_to_check_nothing():
    with pytest.raises(TypeError, match="no float input"):
        check_grads(lambda z: anp.sum(z), np.array([1, 2]))
    with pytest.raises(TypeError, match="no float output"):
        check_grads(lambda z: anp.argmax(z), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="order must be an integer >= 1"):
        check_grads(anp.sin, np.array([1.0, 2.0]), order=0)

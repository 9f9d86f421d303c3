"""The engine's structure: transforms, pytrees, higher order, dtypes and the edge cases
that other engines' bug trackers are full of."""

import gc
import weakref
from collections import namedtuple

import numpy as np
import pytest
from rule_spies import spy_on_every_rule

import autodiff.numpy as anp
from autodiff import (
    check_grads,
    defvjp,
    grad,
    hessian,
    jacobian,
    primitive,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_unflatten,
    value_and_grad,
    vjp,
)
from autodiff.core import Box

Pair = namedtuple("Pair", "first second")
rng = np.random.default_rng(0)


# ------------------------------------------------------------------------ pytrees


def test_tree_round_trip_keeps_every_container():
    tree = {"b": [1, (2, Pair(3, None))], "a": {"z": 4, "y": [5]}, "c": None}
    leaves, treedef = tree_flatten(tree)
    assert leaves == [5, 4, 1, 2, 3]  # dict children in sorted key order
    rebuilt = tree_unflatten(treedef, leaves)
    assert rebuilt == tree
    assert isinstance(rebuilt["b"][1][1], Pair) and isinstance(rebuilt["b"][1], tuple)
    assert tree_leaves(tree) == leaves


def test_tree_map_over_several_trees_and_mismatch():
    a = {"w": np.ones(2), "b": [1.0, 2.0]}
    b = {"w": np.full(2, 3.0), "b": [10.0, 20.0]}
    summed = tree_map(lambda x, y: x + y, a, b)
    np.testing.assert_array_equal(summed["w"], [4.0, 4.0])
    assert summed["b"] == [11.0, 22.0]
    with pytest.raises(ValueError, match="structure"):
        tree_map(lambda x, y: x + y, a, {"w": np.ones(2), "b": [1.0]})
    with pytest.raises(ValueError, match="structure"):
        tree_map(lambda x, y: x + y, [1, 2], (1, 2))


def test_gradient_has_the_structure_shapes_and_dtypes_of_the_argument():
    params = {
        "layers": [{"w": rng.standard_normal((3, 2)).astype(np.float32),
                    "b": np.zeros(2, np.float32)}],
        "scale": Pair(np.float64(2.0), np.ones(3)),
        "nothing": None,
    }

    def loss(p, x):
        h = anp.tanh(x @ p["layers"][0]["w"] + p["layers"][0]["b"])
        return anp.sum(h * h) * p["scale"].first

    g = grad(loss)(params, np.ones((4, 3), np.float32))
    assert tree_flatten(g)[1] == tree_flatten(params)[1]
    for got, want in zip(tree_leaves(g), tree_leaves(params)):
        assert np.shape(got) == np.shape(want)
        assert np.result_type(got) == np.result_type(want)
    np.testing.assert_array_equal(g["scale"].second, np.zeros(3))  # unused leaf


# ------------------------------------------------------------------- transforms


def test_value_and_grad_argnums_and_aux():
    def f(x, y, z):
        return anp.sum(x * y) + z, {"product": x * y}

    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    (value, aux), (gx, gz) = value_and_grad(f, argnums=(0, 2), has_aux=True)(x, y, 5.0)
    assert value == 16.0
    np.testing.assert_array_equal(aux["product"], [3.0, 8.0])
    assert isinstance(aux["product"], np.ndarray)
    np.testing.assert_array_equal(gx, y)
    assert gz == 1.0
    gy = grad(lambda x, y: anp.sum(x * y), argnums=1)(x, y)
    np.testing.assert_array_equal(gy, x)
    assert isinstance(grad(lambda x, y: anp.sum(x * y), argnums=(1,))(x, y), tuple)


def test_non_scalar_output_is_a_type_error():
    with pytest.raises(TypeError, match="scalar"):
        grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(TypeError, match="scalar"):
        grad(lambda x: [anp.sum(x)])(np.ones(3))
    with pytest.raises(TypeError, match="pair"):
        value_and_grad(lambda x: anp.sum(x), has_aux=True)(np.ones(3))


def test_output_independent_of_input_gives_zeros():
    x = np.ones((2, 3), np.float32)
    g = grad(lambda x: np.float32(3.0))(x)
    assert g.shape == (2, 3) and g.dtype == np.float32 and not g.any()
    g = grad(lambda x, y: anp.sum(y), argnums=0)(x, np.ones(2))
    assert g.shape == (2, 3) and not g.any()


def test_vjp_can_be_swept_many_times():
    x = rng.standard_normal(3)
    out, vjp_fn = vjp(lambda x: anp.sin(x) * 2, x)
    np.testing.assert_allclose(out, np.sin(x) * 2)
    (first,) = vjp_fn(np.ones(3))
    (second,) = vjp_fn(np.ones(3))
    (scaled,) = vjp_fn(np.full(3, 2.0))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(scaled, 2 * first)
    np.testing.assert_allclose(first, 2 * np.cos(x))


def test_grad_twice_gives_the_same_answer():
    x = rng.standard_normal(4)
    f = grad(lambda x: anp.sum(anp.exp(x) * x))
    np.testing.assert_array_equal(f(x), f(x))


def test_jacobian_and_hessian():
    x = rng.standard_normal(3)
    a = rng.standard_normal((2, 3))
    np.testing.assert_allclose(jacobian(lambda x: anp.tanh(a @ x))(x),
                               (1 - np.tanh(a @ x) ** 2)[:, None] * a)
    h = hessian(lambda x: anp.sum(x ** 3) + x[0] * x[1])(x)
    expected = np.diag(6 * x)
    expected[0, 1] = expected[1, 0] = 1.0
    np.testing.assert_allclose(h, expected)
    jac = jacobian(lambda w: {"out": w["a"] * 2}, argnums=0)({"a": np.ones(2)})
    np.testing.assert_array_equal(jac["out"]["a"], 2 * np.eye(2))


# ------------------------------------------------------------------ higher order


def test_grad_of_grad():
    d3 = grad(grad(grad(lambda x: anp.sin(x) * x)))
    x = 0.7
    np.testing.assert_allclose(d3(x), -3 * np.sin(x) - x * np.cos(x))


def test_nested_grad_does_not_confuse_perturbations():
    # d/dx [ x * (d/dy x*y) ] = d/dx x^2 = 2x; confusing the two traces gives x or 3x.
    def outer(x):
        return x * grad(lambda y: x * y)(1.0)

    assert grad(outer)(3.0) == 6.0
    # d/dx of x * d/dy (x + y) = d/dx x = 1
    assert grad(lambda x: x * grad(lambda y: x + y)(2.0))(5.0) == 1.0


def test_grad_of_a_function_that_calls_grad_on_arrays():
    def energy(w):
        inner = grad(lambda v: anp.sum(anp.tanh(v) * w))(w)
        return anp.sum(inner * inner)

    check_grads(energy, (rng.standard_normal(4),))


def test_hessian_vector_product_through_vjp():
    x = rng.standard_normal(3)
    v = rng.standard_normal(3)
    hvp = grad(lambda x: anp.sum(grad(lambda x: anp.sum(anp.exp(x) * x[0]))(x) * v))(x)
    h = hessian(lambda x: anp.sum(anp.exp(x) * x[0]))(x)
    np.testing.assert_allclose(hvp, h @ v)


# -------------------------------------------------------------- structural cases


def test_fan_out_and_leaf_used_twice():
    x = np.array([1.0, 2.0, 3.0])
    g = grad(lambda x: anp.sum(x * x + x))(x)
    np.testing.assert_allclose(g, 2 * x + 1)

    def fan_out(x):
        y = anp.sin(x)
        return anp.sum(y * y + anp.exp(y) + y)

    check_grads(fan_out, (x,))


def test_constants_closed_over_are_not_differentiated():
    c = np.array([2.0, 3.0])
    g = grad(lambda x: anp.sum(x * c + c ** 2))(np.ones(2))
    np.testing.assert_array_equal(g, c)


def test_accumulated_cotangents_never_alias():
    # add's rule returns the very array it was given; in-place accumulation would make the
    # two branches share and double-count it.
    x = np.array([1.0, 2.0])

    def f(x):
        a = x + 0.0
        b = a + 0.0
        return anp.sum(a + b + a * 0.0)

    np.testing.assert_array_equal(grad(f)(x), [2.0, 2.0])
    _, vjp_fn = vjp(lambda x: (x + 0.0) + (x + 0.0), x)
    seed = np.ones(2)
    vjp_fn(seed)
    np.testing.assert_array_equal(seed, [1.0, 1.0])  # the seed was not modified


def test_a_chain_of_100000_ops_needs_no_recursion():
    def chain(x):
        for _ in range(100_000):
            x = x * 1.0
        return anp.sum(x)

    np.testing.assert_array_equal(grad(chain)(np.ones(2)), [1.0, 1.0])


def test_the_tape_is_freed_when_the_call_returns():
    seen = []

    def f(x):
        big = anp.exp(x)  # a Box holding a large intermediate
        seen.append(weakref.ref(big.value))
        return anp.sum(big)

    grad(f)(np.ones(100_000))
    gc.collect()
    assert seen[0]() is None


def test_numpy_on_a_box_fails_loudly_with_advice():
    # NumPy's ufuncs refuse a Box outright (__array_ufunc__ = None); its other functions
    # and conversions say which autodiff.numpy op to use.
    with pytest.raises(TypeError, match="Box.*ufuncs"):
        grad(lambda x: anp.sum(np.tanh(x)))(np.ones(2))
    with pytest.raises(TypeError, match="anp.sum"):
        grad(lambda x: np.sum(x))(np.ones(2))
    with pytest.raises(TypeError, match="autodiff.numpy|anp.array"):
        grad(lambda x: anp.sum(np.asarray(x)))(np.ones(2))


def test_ndarray_on_the_left_reaches_the_reflected_operators():
    x = np.array([0.5, 2.0])
    c = np.array([3.0, 1.5])

    def f(x):
        return anp.sum((c + x) * (c - x) / (c / x) + c ** x + (c @ x) + np.float64(2.0) * x)

    value = np.sum((c + x) * (c - x) / (c / x) + c ** x + (c @ x) + 2.0 * x)
    np.testing.assert_allclose(f(x), value)
    check_grads(f, (x,))
    assert isinstance(vjp(lambda x: c * x, x)[1](np.ones(2))[0], np.ndarray)
    from autodiff.core import Trace

    box = Trace().new_input(x)
    for result in (c + box, c - box, c * box, c / box, c ** box, c @ box, np.float32(2) * box):
        assert isinstance(result, Box)


def test_item_assignment_and_real_in_place_updates_fail_loudly():
    def assign(x):
        x[0] = 1.0
        return anp.sum(x)

    def into_an_array(x):
        total = np.zeros(2)
        total += x
        return anp.sum(total)

    def with_out(x):
        return anp.sum(anp.exp(x, out=np.zeros(2)))

    def store_into_an_array(x):
        a = np.zeros(2)
        a[:1] = x[:1]
        return anp.sum(a)

    with pytest.raises(TypeError, match="immutable.*anp.where"):
        grad(assign)(np.ones(2))
    with pytest.raises(TypeError, match="Box"):
        grad(into_an_array)(np.ones(2))
    with pytest.raises(TypeError, match="out=.*losing its gradient"):
        grad(with_out)(np.ones(2))
    with pytest.raises(TypeError, match="out=.*losing its gradient"):
        grad(lambda x: anp.sum(x, out=np.zeros(())))(np.ones(2))
    with pytest.raises(TypeError, match="anp.stack"):
        grad(store_into_an_array)(np.ones(2))


def test_augmented_operators_rebind_a_traced_name():
    def f(x):
        total = 0.0
        for v in x:
            total += v * v
        y = x * 1.0
        y -= 1.0
        y *= x
        y /= 2.0
        y **= 2.0
        w = y[:2]
        w @= np.array([[1.0, 0.0], [0.0, 1.0]])
        return total + anp.sum(y) + anp.sum(w)

    x = np.array([0.5, 1.5, -2.0])
    q = ((x - 1) * x / 2) ** 2
    expected = np.sum(x * x) + np.sum(q) + np.sum(q[:2])
    np.testing.assert_allclose(f(x), expected)
    check_grads(f, (x,))
    original = x.copy()
    grad(f)(x)
    np.testing.assert_array_equal(x, original)  # nothing was mutated


def test_a_wrong_rule_is_reported_with_the_op_name():
    @primitive
    def badly_shaped(x):
        return x * 2

    defvjp(badly_shaped, lambda g, ans, x: anp.sum(g))
    with pytest.raises(ValueError, match="badly_shaped.*shape"):
        grad(lambda x: anp.sum(badly_shaped(x)))(np.ones(3))


def test_an_op_without_rules_refuses_traced_input():
    @primitive
    def no_rules(x):
        return x

    assert no_rules(3.0) == 3.0
    with pytest.raises(TypeError, match="no gradient rules"):
        grad(lambda x: no_rules(x))(1.0)


def test_a_traced_argument_without_a_rule_is_refused_not_left_out():
    # Leaving such an argument out of the sweep would be a wrong gradient: f(a, a) = a^2
    # would give a where 2a is right.
    @primitive
    def times(a, b, scale=1.0):
        return a * b * scale

    defvjp(times, lambda g, ans, a, b, scale=1.0: g * b * scale)  # none for b

    @primitive
    def product3(a, b, c):
        return a * b * c

    defvjp(product3, lambda g, ans, a, b, c: g * b * c, lambda g, ans, a, b, c: g * a * c)

    @primitive
    def sine(x):
        return np.sin(x)

    defvjp(sine)  # no rules at all

    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    calls = [
        lambda: grad(lambda a, b: anp.sum(times(a, b)), argnums=(0, 1))(a, b),  # two boxes
        lambda: grad(lambda a: anp.sum(times(a, a)))(a),
        lambda: grad(lambda b: anp.sum(times(a, b)))(b),  # a constant first
        lambda: grad(lambda a, b: anp.sum(times(a, b, scale=2.0)), argnums=(0, 1))(a, b),
        lambda: grad(lambda a: anp.sum(times(a, 2.0 * a, 3.0)))(a),
        lambda: grad(lambda a: anp.sum(product3(a, a, a)))(a),
        lambda: grad(lambda a: anp.sum(sine(a)))(a),
        # b traced by an outer grad only: a setting of the inner call all the same
        lambda: grad(lambda b: anp.sum(grad(lambda a: anp.sum(times(a, b)))(a)))(b),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"got a traced value as argument [012]( \(\w+\))?, "
                                            "where it has no gradient rule"):
            call()
    # Where the argument is a constant, the op is differentiable as declared.
    assert np.array_equal(grad(lambda a: anp.sum(times(a, b)))(a), b)
    assert np.array_equal(grad(lambda a: anp.sum(times(a, b, 2.0)))(a), 2 * b)


def test_check_grads_catches_a_wrong_rule():
    @primitive
    def wrong_sin(x):
        return np.sin(x)

    defvjp(wrong_sin, lambda g, ans, x: g * anp.sin(x))  # should be cos
    with pytest.raises(AssertionError, match="leaf 0.*reverse mode.*central differences"):
        check_grads(lambda x: wrong_sin(x), (np.array([0.3, 1.2]),))
    check_grads(lambda x: anp.sin(x), (np.array([0.3, 1.2]),))


# --------------------------------------------------------------- dtypes, stability


def test_float32_stays_float32_in_both_passes(monkeypatch):
    seen = spy_on_every_rule(monkeypatch)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    x = rng.standard_normal((4, 5)).astype(np.float32)

    def loss(w):
        logits = x @ w
        h = anp.maximum(logits, 0.0) * 0.5 + anp.tanh(logits) / 3 + logits ** 2
        h = h + 2.0 ** logits + 1.5 * h - anp.clip(h, -1.0, 1.0)
        h = h + anp.where(h > 0, anp.sqrt(anp.abs(h) + 1), anp.exp(h)) / (1 + h * h)
        h = anp.concatenate([h, anp.einsum("ij,j->ij", h, np.ones(3, np.float32))], axis=1)
        h = anp.reshape(anp.transpose(h), (-1, 4)).T[:, ::2] + anp.log1p(h[:, :3] ** 2)
        return (anp.mean(anp.logsumexp(h, axis=1) - h[:, 0]) + anp.var(h) + anp.std(h)
                + anp.sum(anp.max(h, axis=0)) + anp.mean(anp.power(anp.abs(h) + 1, 1.5)))

    value, g = value_and_grad(loss)(w)
    assert value.dtype == np.float32 and g.dtype == np.float32
    assert len({name for name, _, _ in seen}) > 15  # many ops ran their rules
    wrong = [(name, g, out) for name, g, out in seen if g != np.float32 or out != np.float32]
    assert wrong == [], "cotangents left float32"
    # Second order, through rules that themselves run on the tape.
    seen.clear()
    hessian(lambda w: loss(w.reshape(5, 3)))(w.ravel())
    wrong = [(name, g, out) for name, g, out in seen if g != np.float32 or out != np.float32]
    assert seen and wrong == [], "cotangents left float32 in the second order"


def test_logsumexp_is_stable_for_huge_inputs():
    x = np.array([1e4, 1e4 - 1.0, -1e4])
    np.testing.assert_allclose(anp.logsumexp(x), 1e4 + np.log1p(np.exp(-1.0)))
    g = grad(lambda x: anp.logsumexp(x))(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g.sum(), 1.0)
    assert anp.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf


@pytest.mark.parametrize("reduce", [anp.max, anp.min])
def test_gradient_of_max_with_ties_sums_to_the_cotangent(reduce):
    x = np.array([[3.0, 1.0, 3.0, 3.0], [0.0, 0.0, -1.0, 2.0]])
    g = grad(lambda x: anp.sum(reduce(x, axis=1) * np.array([6.0, 5.0])))(x)
    np.testing.assert_allclose(g.sum(axis=1), [6.0, 5.0])
    g = grad(lambda x: anp.maximum(x, 0.0).sum())(np.array([0.0, 1.0, -1.0]))
    np.testing.assert_allclose(g, [0.5, 1.0, 0.0])


# A traced op with one or two arguments is recorded on a fast path when its other operand
# is a Python float or int, and on the general one for every other kind of constant: the
# two must agree, on either side, to second order.
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "power", "maximum",
                                  "minimum", "arctan2", "logaddexp"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_a_constant_operand_of_any_kind_gives_the_same_gradients(name, side):
    op = getattr(anp, name)
    x = np.array([0.7, 1.3, 2.5, 2.9])

    def gradients(constant):
        def f(x):
            return anp.sum(op(x, constant) if side == "right" else op(constant, x))

        value, first = value_and_grad(f)(x)
        second = grad(lambda x: anp.sum(grad(f)(x) * x))(x)
        return value, first, second

    expected = gradients(np.full(4, 2.5))  # an array constant: the general path
    # Away from the kinks of maximum and minimum (x holds 2.5, not 2.2):
    check_grads(lambda x: anp.sum(op(x, 2.2) if side == "right" else op(2.2, x)), (x,),
                order=2)
    kinds = [2.5, np.float64(2.5), np.array(2.5)]
    for constant in kinds:
        for got, want in zip(gradients(constant), expected):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    whole = gradients(2)  # an int: the fast path too; 2.5 is one of x's values, 2 is not
    for got, want in zip(whole, gradients(np.full(4, 2))):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [np.array([[1.0, 2.0, 3.0]]),  # the same shape as x
                                   np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])])  # rows
def test_the_sweep_fits_cotangents_of_broadcasting_ops_to_their_arguments(monkeypatch, scale):
    # Float32 values times a float64 array: the product is float64, and so is the rule's
    # cotangent for the float32 factor, in the product's (broadcast) shape. The sweep must
    # hand tanh's rule, upstream, a float32 cotangent of tanh's shape.
    seen = spy_on_every_rule(monkeypatch)
    x = np.array([[0.5, -1.0, 2.0]], np.float32)

    def f(x):
        return anp.sum(anp.tanh(x) * scale)

    g = grad(f)(x)
    assert g.dtype == np.float32 and g.shape == (1, 3)
    expected = (1 - np.tanh(x.astype(np.float64)) ** 2) * scale.sum(axis=0)
    np.testing.assert_allclose(g, expected, rtol=1e-6)
    into_tanh = [incoming for name, incoming, _ in seen if name == "tanh"]
    assert into_tanh == [np.float32]


def test_a_rule_of_the_wrong_shape_is_an_error_even_for_an_op_that_broadcasts():
    op = primitive(lambda x, y: x * y)
    defvjp(op, lambda g, ans, x, y: np.ones(5), None, fit=anp.unbroadcast)
    with pytest.raises(ValueError, match=r"gradient rule of <lambda> returned shape \(5,\)"):
        grad(lambda x: anp.sum(op(x, np.ones(3))))(np.ones(3))

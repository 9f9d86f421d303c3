"""What the op table cannot show for the less common ops: zeros in products, ties in sort,
norms at 0, refused settings, float32 in both passes for every op, the Box methods,
stop_gradient, and the helper ops that only serve as transposes in rules."""


import numpy as np
import pytest
from rule_spies import every_op, spy_on_every_rule
from test_ops import BINARY, ELEMENTWISE, REDUCTIONS, SPECIAL, STRUCTURAL, _structural_args

import autodiff.numpy as anp
from autodiff import check_grads, grad, hessian, tree_leaves
from autodiff.core import Box, Trace, backward, value_at

# ---------------------------------------------------------------- products with zeros

ZEROS = [np.array([0.0, 2.0, 3.0]), np.array([0.0, 0.0, 3.0]), np.array([0.0, 0.0, 0.0]),
         np.array([[1.5, 0.0, -2.0], [0.0, 0.0, 0.5]]), np.array([[0.0, 1.0], [2.0, 0.0]])]


@pytest.mark.parametrize("x", ZEROS, ids=str)
@pytest.mark.parametrize("axis", [None, 0, -1])
def test_products_with_zeros_differentiate_to_third_order(x, axis):
    for f in (lambda x: anp.prod(x, axis=axis), lambda x: anp.cumprod(x, axis=axis)):
        weights = np.arange(1.0, 1 + np.size(f(x))).reshape(np.shape(f(x)))
        g = grad(lambda x, f=f, weights=weights: anp.sum(f(x) * weights))(x)
        assert np.all(np.isfinite(g))
        check_grads(f, (x,), order=3)


def test_product_gradient_at_zeros_is_the_product_of_the_others():
    np.testing.assert_array_equal(grad(anp.prod)(np.array([0.0, 2.0, 3.0])), [6.0, 0.0, 0.0])
    np.testing.assert_array_equal(grad(anp.prod)(np.array([0.0, 0.0, 3.0])), [0.0, 0.0, 0.0])
    # d2 prod / dx_i dx_j is the product of the elements other than i and j
    np.testing.assert_array_equal(hessian(anp.prod)(np.array([0.0, 2.0, 3.0])),
                                  [[0, 3, 2], [3, 0, 0], [2, 0, 0]])
    # cumprod([0, 2, 3]) = [0, 0, 0]: only x_0's derivative survives, 1 + 2 + 2 * 3
    np.testing.assert_array_equal(grad(lambda x: anp.sum(anp.cumprod(x)))(np.array([0., 2, 3])),
                                  [9.0, 0.0, 0.0])


def test_reverse_linear_scan_against_its_definition():
    rng = np.random.default_rng(0)
    g, a = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    expected = np.zeros_like(g)
    for row in range(2):
        carry = 0.0
        for j in range(4, -1, -1):
            carry = expected[row, j] = g[row, j] + a[row, j] * carry
    np.testing.assert_allclose(anp.reverse_linear_scan(g, a), expected)
    check_grads(anp.reverse_linear_scan, (g, a), order=3)


# -------------------------------------------------------- the transposes used in rules


def _inner(a, b):
    return float(np.sum(np.asarray(a) * np.asarray(b)))


TRANSPOSE_CASES = [
    (lambda x: anp.take(x, np.array([[2, 0], [2, 2]]), axis=1),
     lambda g: anp.untake(g, np.array([[2, 0], [2, 2]]), 1, (2, 3)), (2, 3)),
    (lambda x: anp.take(x, np.array([5, 0, 5])),
     lambda g: anp.untake(g, np.array([5, 0, 5]), None, (2, 3)), (2, 3)),
    (lambda x: anp.take_along_axis(x, np.array([[1, 1], [0, 2]]), axis=1),
     lambda g: anp.untake_along_axis(g, np.array([[1, 1], [0, 2]]), 1, (2, 3)), (2, 3)),
    (lambda x: anp.take_along_axis(x, np.array([[0, 0], [1, 0], [1, 1]]), axis=1),
     lambda g: anp.untake_along_axis(g, np.array([[0, 0], [1, 0], [1, 1]]), 1, (1, 2)), (1, 2)),
    (lambda x: anp.diagonal(x, 1, 0, 2), lambda g: anp.undiagonal(g, 1, 0, 2, (3, 2, 4)),
     (3, 2, 4)),
    (lambda x: anp.diagonal(x, -2), lambda g: anp.undiagonal(g, -2, 0, 1, (4, 3)), (4, 3)),
]


@pytest.mark.parametrize("forward,backward,shape", TRANSPOSE_CASES)
def test_scatter_ops_are_the_transposes_of_their_gathers(forward, backward, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(np.shape(forward(x)))
    assert np.isclose(_inner(forward(x), g), _inner(x, backward(g)))
    check_grads(backward, (g,), order=2)


# ---------------------------------------------------------------------- sort ties


def test_sort_sends_tied_cotangents_in_input_order():
    # sort([1, 1, 0]) = [0, 1, 1] with the first 1 (input index 0) in sorted position 1
    x = np.array([1.0, 1.0, 0.0])
    g = grad(lambda x: anp.sum(anp.sort(x) * np.array([10.0, 20.0, 30.0])))(x)
    np.testing.assert_array_equal(g, [20.0, 30.0, 10.0])
    g = grad(lambda x: anp.sum(anp.sort(x, kind="quicksort") * np.array([10.0, 20.0, 30.0])))(x)
    np.testing.assert_array_equal(g, [20.0, 30.0, 10.0])


# --------------------------------------------------------------------- norms at 0


@pytest.mark.parametrize("ord,axis", [(None, None), (2, None), (1, None), (np.inf, None),
                                      (-np.inf, None), (3, None), ("fro", (0, 1)),
                                      (None, 1), (2, 0), (1, (0, 1)), (np.inf, (0, 1))])
def test_norm_gradient_at_zero_is_zero(ord, axis):
    x = np.zeros((2, 3))
    if axis is None and ord is not None:
        x = np.zeros(3)
    g = grad(lambda x: anp.sum(anp.linalg.norm(x, ord, axis)))(x)
    np.testing.assert_array_equal(g, np.zeros_like(x))
    # a zero slice beside non-zero ones: its gradient is 0, the others' are the usual
    y = np.vstack([np.zeros(3), [3.0, -4.0, 0.0]])
    g = grad(lambda y: anp.sum(anp.linalg.norm(y, axis=1)))(y)
    np.testing.assert_allclose(g, [[0, 0, 0], [0.6, -0.8, 0]])


def test_norm_refuses_orders_it_cannot_differentiate():
    with pytest.raises(ValueError, match="singular values"):
        anp.linalg.norm(np.eye(2), 2)
    with pytest.raises(ValueError, match="singular values"):
        anp.linalg.norm(np.eye(2), "nuc")
    with pytest.raises(ValueError, match="not supported for vectors"):
        anp.linalg.norm(np.ones(3), 0.5)
    with pytest.raises(ValueError, match="invalid norm order"):
        anp.linalg.norm(np.ones(3), "fro")
    with pytest.raises(ValueError, match="axis"):
        anp.linalg.norm(np.ones((2, 2, 2)), axis=(0, 1, 2))


def test_det_of_a_singular_matrix_fails_clearly():
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(np.linalg.LinAlgError):
        grad(anp.linalg.det)(singular)


def test_slogdet_returns_sign_and_log():
    a = np.array([[0.0, 2.0], [1.0, 0.5]])  # det = -2
    sign, log = anp.linalg.slogdet(a)
    assert sign == -1.0 and np.isclose(log, np.log(2.0))
    np.testing.assert_allclose(grad(lambda a: anp.linalg.slogdet(a).logabsdet)(a),
                               np.linalg.inv(a).T)


# ------------------------------------------------------------------- refusals

@pytest.mark.parametrize("name", ["log2", "log10", "sinh", "cosh", "tan", "arctan"])
def test_ufunc_settings_are_refused_on_traced_values(name):
    op, x = getattr(anp, name), np.array([0.5, 0.75])
    with pytest.raises(TypeError, match="out=.*losing its gradient"):
        grad(lambda x: anp.sum(op(x, np.empty(2))))(x)
    with pytest.raises(TypeError, match="does not support where="):
        grad(lambda x: anp.sum(op(x, where=np.array([True, False]))))(x)
    with pytest.raises(TypeError, match="does not support dtype="):
        grad(lambda x: anp.sum(op(x, dtype=np.float32)))(x)
    # On plain arrays they work as in NumPy.
    out = np.empty(2)
    assert op(x, out) is out
    np.testing.assert_array_equal(out, getattr(np, name)(x))


@pytest.mark.parametrize("call,option", [
    (lambda x: anp.prod(x, out=np.empty(())), "out"),
    (lambda x: anp.prod(x, dtype=np.float32), "dtype"),
    (lambda x: anp.prod(x, initial=2.0), "initial"),
    (lambda x: anp.prod(x, where=x > 0), "where"),
    (lambda x: anp.cumsum(x, 0, np.float32), "dtype"),
    (lambda x: anp.cumprod(x, out=np.empty(3)), "out"),
    (lambda x: anp.take(x, [0], out=np.empty(1)), "out"),
    (lambda x: anp.outer(x, x, np.empty((3, 3))), "out"),
    (lambda x: anp.trace(anp.outer(x, x), dtype=np.float32), "dtype"),
    (lambda x: anp.hstack([x, x], dtype=np.float32), "dtype"),
    (lambda x: anp.vstack([x, x], casting="unsafe"), "casting"),
    (lambda x: anp.sort(x, order="a"), "order"),
    (lambda x: anp.arctan2(x, x, np.empty(3)), "out"),
    (lambda x: x.clip(0.0, 1.0, np.empty(3)), "out"),
])
def test_unsupported_settings_are_refused_up_front(call, option):
    """Refused on traced values, before anything runs, with the one message of the engine;
    on plain arrays the op is NumPy's (sort's order= needs a structured array there)."""
    x = np.array([1.0, 2.0, 3.0])
    message = "out=.*losing its gradient" if option == "out" else f"does not support {option}="
    with pytest.raises(TypeError, match=message):
        grad(lambda x: anp.sum(call(x)))(x)
    if option != "order":
        call(x)


# ------------------------------------------------------------ float32, both passes


def _raw_vjp(fun, args):
    """fun's outputs and the cotangents of args for all-ones seeds, as the sweep returns
    them: not cast to the inputs' dtype afterwards, as grad and vjp do."""
    trace = Trace()
    boxes = [trace.new_input(a) for a in args]
    outs = tree_leaves(fun(*boxes))
    seeds = [(out.index, np.ones(anp.shape(out), dtype=np.float32))
             for out in outs if type(out) is Box and out.trace is trace]
    cotangents = backward(trace, seeds, [box.index for box in boxes]) if seeds else []
    return [value_at(out, trace) for out in outs], [c for c in cotangents if c is not None]


def _sum_of_cotangents(fun):
    def second(*args):
        total = np.float32(0)
        for cotangent in _raw_vjp(fun, args)[1]:
            total = total + anp.sum(cotangent)
        return total
    return second


def _call_of(op):
    def call(*args):
        if op.call is not None:
            return op.call(anp, *args)
        if op.kind == "reduction":
            return getattr(anp, op.name)(*args, axis=0)
        return getattr(anp, op.name)(*args)
    return call


def _float32_cases() -> list:
    """(name, function, float32 arguments) for every row of the op table and of SPECIAL."""
    cases = []
    for op in ELEMENTWISE + BINARY + REDUCTIONS + STRUCTURAL:
        if op.kind == "structural":
            args = _structural_args(op, 0, np.float32)
        else:
            rng = np.random.default_rng(0)
            args = tuple(rng.uniform(op.low, op.high, (2, 3)).astype(np.float32)
                         for _ in range(op.arity))
        call = _call_of(op)
        if op.name == "astype":  # the row casts to float64; here the cast keeps float32
            call = lambda x: anp.astype(x, np.float32)  # noqa: E731
        cases.append((op.name, call, args))
    for name, rows in SPECIAL.items():
        # These rows make float64 on purpose: unbroadcast to a float64 argument, asarray
        # with dtype=float64, array with a Python float in the list (as np.array does).
        if name in ("unbroadcast", "asarray", "array"):
            continue
        for call, _, args in rows:
            cases.append((name, lambda *a, call=call: call(anp, *a),
                          tuple(np.asarray(a, np.float32) for a in args)))
    for gather, scatter, shape in TRANSPOSE_CASES:
        g = np.ones(np.shape(gather(np.ones(shape))), np.float32)
        cases.append(("transpose of a gather", scatter, (g,)))
    return cases


def test_float32_stays_float32_in_both_passes_for_every_op(monkeypatch):
    """Every cotangent on the tape, into and out of every rule, at first and second order,
    is float32 for float32 inputs; and every op with rules has had its rules run."""
    seen = spy_on_every_rule(monkeypatch)
    for name, fun, args in _float32_cases():
        for level in (fun, _sum_of_cotangents(fun)):
            outs, cotangents = _raw_vjp(level, args)
            assert all(np.asarray(out).dtype == np.float32 for out in outs), name
            assert all(np.asarray(c).dtype == np.float32 for c in cotangents), name
    wrong = {(name, str(g), str(out)) for name, g, out in seen
             if g != np.float32 or out != np.float32}
    assert wrong == set(), "cotangents left float32"
    ran = {name for name, _, _ in seen}
    assert {op.__name__ for op in every_op().values()} - ran == set(), "rules never spied on"


# ----------------------------------------------------------------- Box methods

METHODS = {
    "prod": lambda x: x.prod(axis=1), "prod keepdims": lambda x: x.prod(0, keepdims=True),
    "clip": lambda x: x.clip(-1.0, 1.0), "clip keywords": lambda x: x.clip(min=-0.5),
    "copy": lambda x: x.copy(), "flatten": lambda x: x.flatten(),
    "cumsum": lambda x: x.cumsum(axis=0), "cumprod": lambda x: x.cumprod(1),
    "repeat": lambda x: x.repeat(2, axis=1), "take": lambda x: x.take([0, 0, 2], axis=1),
    "diagonal": lambda x: x.diagonal(1), "swapaxes": lambda x: x.swapaxes(0, 1),
    "squeeze": lambda x: x[None].squeeze(0),
}


@pytest.mark.parametrize("name", METHODS)
def test_box_methods(name):
    x = np.random.default_rng(2).uniform(-2, 2, (3, 4))
    x = np.where(np.abs(np.abs(x) - 1) < 0.05, 0.5, x)  # away from clip's kinks
    x = np.where(np.abs(x + 0.5) < 0.05, 0.0, x)
    method = METHODS[name]
    np.testing.assert_allclose(method(Trace().new_input(x)).value, method(x))
    check_grads(method, (x,), order=2)


def test_box_methods_that_give_constants():
    x = np.array([[0.5, -1.0, 0.0], [2.0, 0.0, 1.5]])
    box = Trace().new_input(x)
    for name in ("any", "all", "argsort", "nonzero", "round"):
        result, expected = getattr(box, name)(), getattr(x, name)()
        assert not any(type(r) is Box for r in tree_leaves(result)), name
        for r, e in zip(tree_leaves(result), tree_leaves(expected)):
            np.testing.assert_array_equal(r, e)
    assert box.any(axis=0).tolist() == [True, True, True]
    with pytest.raises(TypeError, match="anp.sort"):
        box.sort()


# --------------------------------------------------------------- stop_gradient


def test_stop_gradient_passes_the_value_and_no_gradient():
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(anp.stop_gradient(x), x)
    np.testing.assert_array_equal(grad(lambda x: anp.sum(anp.stop_gradient(x) ** 2))(x), 0 * x)
    # x * sg(x): the derivative treats the second factor as a constant, at every order
    np.testing.assert_array_equal(grad(lambda x: anp.sum(x * anp.stop_gradient(x)))(x), x)
    np.testing.assert_array_equal(
        hessian(lambda x: anp.sum(x ** 2 * anp.stop_gradient(x)))(x), np.diag(2 * x))
    inner = grad(lambda y: anp.sum(y * anp.stop_gradient(y) ** 2))
    np.testing.assert_array_equal(grad(lambda x: anp.sum(inner(x)))(x), 0 * x)
    tree = anp.stop_gradient({"a": x, "b": [x]})
    assert set(tree) == {"a", "b"} and tree["b"][0] is x

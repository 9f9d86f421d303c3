"""Every differentiable op: forward values equal NumPy's, gradients match central differences.

One table, OPS, lists each op with the domain its inputs are drawn from. A coverage test
fails when autodiff.numpy gains an op without a row here.
"""

import importlib
import inspect
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import arrays_in, away_from, small_shapes

import autodiff.numpy as anp
from autodiff import check_grads, tree_leaves
from autodiff.core import Box


@dataclass
class Op:
    """How to test one op: its arity, its input domain and how to call it."""

    name: str
    arity: int = 1
    low: float = -3.0
    high: float = 3.0
    avoid: tuple = ()  # points where the op is not differentiable
    call: object = None  # (module, args) -> result; default module.name(*args)
    reference: object = None  # NumPy reference when np.<name> is not it
    kind: str = "elementwise"  # elementwise | binary | reduction | special
    order2: bool = False
    extra: dict = field(default_factory=dict)


def _domain(op, values):
    values = np.clip(values, op.low, op.high)
    return away_from(values, op.avoid, 0.05) if op.avoid else values


ELEMENTWISE = [
    Op("negative", order2=True), Op("exp", order2=True), Op("expm1"),
    Op("log", low=0.2, high=5, order2=True), Op("log1p", low=-0.5, high=5),
    Op("sqrt", low=0.2, high=5), Op("square", order2=True), Op("reciprocal", low=0.3, high=3),
    Op("abs", avoid=(0.0,)), Op("sin", order2=True), Op("cos"), Op("tanh", order2=True),
    Op("clip", avoid=(-1.0, 1.0), call=lambda m, x: m.clip(x, -1.0, 1.0),
       reference=lambda x: np.clip(x, -1.0, 1.0)),
    Op("astype", call=lambda m, x: m.astype(x, np.float64) if m is anp else x.astype(np.float64),
       reference=lambda x: x.astype(np.float64)),
    Op("log2", low=0.2, high=5, order2=True), Op("log10", low=0.2, high=5, order2=True),
    Op("sinh", order2=True), Op("cosh", order2=True), Op("tan", low=-1.3, high=1.3, order2=True),
    Op("arctan", order2=True), Op("copy", order2=True),
]
BINARY = [
    Op("add", 2, order2=True), Op("subtract", 2), Op("multiply", 2, order2=True),
    Op("divide", 2, low=0.3, high=3), Op("power", 2, low=0.3, high=2, order2=True),
    Op("maximum", 2), Op("minimum", 2),
    Op("where", 2, call=lambda m, x, y: m.where(x > y, x, y),
       reference=lambda x, y: np.where(x > y, x, y)),
    Op("true_divide", 2, low=0.3, high=3, reference=np.true_divide),
    Op("arctan2", 2, low=0.3, high=3, order2=True),  # x > 0: away from the branch cut
    Op("logaddexp", 2, low=-30, high=30, order2=True),
]
REDUCTIONS = [
    Op("sum", kind="reduction", order2=True), Op("mean", kind="reduction"),
    Op("max", kind="reduction"), Op("min", kind="reduction"),
    Op("var", kind="reduction"), Op("std", kind="reduction", low=-3, high=3),
    Op("logsumexp", kind="reduction", order2=True,
       reference=lambda x, axis=None, keepdims=False: np.log(
           np.sum(np.exp(x), axis=axis, keepdims=keepdims))),
    Op("prod", kind="reduction", low=-2, high=2, order2=True),
]
ALIASES = {"amax": "max", "amin": "min", "absolute": "abs", "true_divide": "divide"}


def _conditioned(x):
    """A random matrix in [-1, 1] made well conditioned, in its own dtype."""
    return x + 3 * np.eye(x.shape[-1], dtype=x.dtype)


def _case(name, call, *shapes, low=-2.0, high=2.0, reference=None):
    """A row of STRUCTURAL: `call(module, *args)` on arrays of `shapes` drawn in [low, high]."""
    return Op(name, len(shapes), low, high, call=call, reference=reference, kind="structural",
              order2=True, extra={"shapes": shapes})


# Ops with structure (axes, indices, several operands): values against NumPy's namesake
# (the same call with `np` for `anp`) and gradients to second order.
STRUCTURAL = [
    _case("cumsum", lambda m, x: m.cumsum(x, axis=1), (3, 4)),
    _case("cumsum", lambda m, x: m.cumsum(x), (2, 3)),
    _case("cumsum", lambda m, x: m.cumsum(x, -1), (2, 3)),
    _case("cumprod", lambda m, x: m.cumprod(x, axis=0), (3, 4)),
    _case("cumprod", lambda m, x: m.cumprod(x), (2, 3)),
    _case("cumprod", lambda m, x: m.cumprod(x, 2), (2, 2, 3)),
    _case("take", lambda m, x: m.take(x, [2, 0, 2], axis=1), (3, 4)),
    _case("take", lambda m, x: m.take(x, [[0, 5], [5, 11]]), (3, 4)),
    _case("take", lambda m, x: m.take(x, [-1, 7, 1], axis=0, mode="wrap"), (3, 2)),
    _case("take", lambda m, x: m.take(x, [5, -2, 0], -1, None, "clip"), (2, 3)),
    _case("take_along_axis",
          lambda m, x: m.take_along_axis(x, np.array([[0, 2, 2], [1, 0, 1]]), axis=1), (2, 4)),
    _case("take_along_axis",
          lambda m, x: m.take_along_axis(x, np.zeros((3, 2), dtype=int) + [0, 3], 1), (1, 4)),
    _case("take_along_axis",
          lambda m, x: m.take_along_axis(x, np.array([1, 5, 1]), axis=None), (2, 3)),
    _case("take_along_axis",
          lambda m, x: m.take_along_axis(x, np.array([[2], [0], [2]]), axis=0), (3, 2)),
    _case("repeat", lambda m, x: m.repeat(x, 2, axis=0), (2, 3)),
    _case("repeat", lambda m, x: m.repeat(x, [1, 0, 3], axis=1), (2, 3)),
    _case("repeat", lambda m, x: m.repeat(x, 2), (2, 2)),
    _case("tile", lambda m, x: m.tile(x, (2, 1, 3)), (2, 3)),
    _case("tile", lambda m, x: m.tile(x, 2), (3,)),
    _case("split", lambda m, x: m.split(x, 3, axis=1), (2, 6)),
    _case("split", lambda m, x: m.split(x, [1, 3]), (5, 2)),
    _case("array_split", lambda m, x: m.array_split(x, 3, axis=-1), (2, 7)),
    _case("hstack", lambda m, x, y: m.hstack([x, y]), (2, 3), (2, 1)),
    _case("hstack", lambda m, x, y: m.hstack((x, y)), (3,), (2,)),
    _case("vstack", lambda m, x, y: m.vstack([x, y]), (2, 3), (3,)),
    _case("flip", lambda m, x: m.flip(x, 1), (3, 4)),
    _case("flip", lambda m, x: m.flip(x), (2, 3)),
    _case("flip", lambda m, x: m.flip(x, axis=(0, 2)), (2, 3, 2)),
    _case("roll", lambda m, x: m.roll(x, 2, axis=1), (3, 4)),
    _case("roll", lambda m, x: m.roll(x, -3), (2, 3)),
    _case("roll", lambda m, x: m.roll(x, (1, 2), axis=(0, 1)), (3, 4)),
    _case("outer", lambda m, x, y: m.outer(x, y), (3,), (2, 2)),
    _case("tensordot", lambda m, x, y: m.tensordot(x, y), (2, 3, 4), (3, 4, 2)),
    _case("tensordot", lambda m, x, y: m.tensordot(x, y, 1), (2, 3), (3, 4)),
    _case("tensordot", lambda m, x, y: m.tensordot(x, y, axes=([1, 0], [0, 1])),
          (3, 2, 4), (2, 3, 5)),
    _case("tensordot", lambda m, x, y: m.tensordot(x, y, axes=0), (2,), (3,)),
    _case("trace", lambda m, x: m.trace(x), (3, 3)),
    _case("trace", lambda m, x: m.trace(x, 1, 1, 2), (2, 3, 4)),
    _case("trace", lambda m, x: m.trace(x, offset=-1), (3, 4)),
    _case("diagonal", lambda m, x: m.diagonal(x), (3, 4)),
    _case("diagonal", lambda m, x: m.diagonal(x, 1, 2, 0), (3, 2, 4)),
    _case("diagonal", lambda m, x: m.diagonal(x, offset=-1, axis1=-1, axis2=-2), (4, 3)),
    _case("tril", lambda m, x: m.tril(x), (3, 4)),
    _case("tril", lambda m, x: m.tril(x, -1), (2, 3, 3)),
    _case("triu", lambda m, x: m.triu(x, k=1), (3, 4)),
    _case("triu", lambda m, x: m.triu(x), (3,)),
    _case("sort", lambda m, x: m.sort(x), (3, 4)),
    _case("sort", lambda m, x: m.sort(x, axis=0), (3, 4)),
    _case("sort", lambda m, x: m.sort(x, None), (2, 3)),
    _case("einsum", lambda m, x, y, z: m.einsum("ij,jk,kl->il", x, y, z), (2, 3), (3, 4), (4, 2)),
    _case("einsum", lambda m, x, y, z: m.einsum("i,i,i", x, y, z), (3,), (3,), (3,)),
    _case("einsum", lambda m, x, y: m.einsum("...ij,...jk->...ik", x, y), (2, 3, 4), (2, 4, 2)),
    _case("einsum", lambda m, x, y, z: m.einsum("...ij,jk,k->...i", x, y, z),
          (2, 2, 3, 4), (4, 5), (5,)),
    _case("einsum", lambda m, x, y: m.einsum("...i,i", x, y), (2, 3), (3,)),
    _case("einsum", lambda m, x, y: m.einsum("i...,...", x, y), (3, 2), (2,)),
    _case("einsum", lambda m, x: m.einsum("...ji", x), (2, 3, 4)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x), (4,)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x), (2, 3, 2)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, keepdims=True), (3, 2)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, 1), (4,)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, np.inf), (4,)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, -np.inf), (4,)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, 3), (4,)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, 2.5, axis=0), (4, 2)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, 0), (4,)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, 2, axis=1, keepdims=True), (3, 4)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, axis=-1), (3, 4)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, "fro"), (3, 4)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, "fro", (0, 2), True), (2, 3, 4)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, 1), (3, 4)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, -1, axis=(2, 1)), (2, 3, 4)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, np.inf), (3, 4)),
    _case("linalg.norm", lambda m, x: m.linalg.norm(x, -np.inf, axis=(0, 1)), (3, 4, 2)),
    _case("linalg.inv", lambda m, x: m.linalg.inv(_conditioned(x)), (3, 3), low=-1, high=1),
    _case("linalg.inv", lambda m, x: m.linalg.inv(_conditioned(x)), (2, 3, 3), low=-1, high=1),
    _case("linalg.solve", lambda m, a, b: m.linalg.solve(_conditioned(a), b), (3, 3), (3,),
          low=-1, high=1),
    _case("linalg.solve", lambda m, a, b: m.linalg.solve(_conditioned(a), b), (3, 3), (3, 2),
          low=-1, high=1),
    _case("linalg.solve", lambda m, a, b: m.linalg.solve(_conditioned(a), b), (2, 3, 3), (3, 2),
          low=-1, high=1),
    _case("linalg.solve", lambda m, a, b: m.linalg.solve(_conditioned(a), b), (3, 3), (2, 3, 4),
          low=-1, high=1),
    _case("linalg.solve", lambda m, a, b: m.linalg.solve(_conditioned(a), b), (2, 3, 3), (3,),
          low=-1, high=1),
    _case("linalg.det", lambda m, x: m.linalg.det(x), (3, 3)),
    _case("linalg.det", lambda m, x: m.linalg.det(x), (2, 2, 2)),
    _case("linalg.slogdet", lambda m, x: m.linalg.slogdet(x)[1], (3, 3)),
    _case("linalg.slogdet", lambda m, x: tuple(m.linalg.slogdet(x)), (2, 3, 3)),
]
# Ops that only undo another op in a rule, each tested as the exact transpose of that op.
TRANSPOSES = {
    "untake": "take", "untake_along_axis": "take_along_axis", "undiagonal": "diagonal",
    "reverse_linear_scan": "cumprod",
}
# Ops whose gradient is by design not the derivative of their value (so neither central
# differences nor NumPy can check them), each with the test that pins its behaviour.
OWN_TESTS = {
    "stop_gradient": ("test_new_ops", "test_stop_gradient_passes_the_value_and_no_gradient"),
}
BY_NAME = {op.name: op for op in ELEMENTWISE + BINARY + REDUCTIONS + STRUCTURAL}


def _random(*shapes, seed=11):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s) for s in shapes)


# Ops with their own calling conventions: each row is (call, reference, arguments). The
# call takes the module (anp or np) first; the reference is NumPy's answer when np
# itself is not (None: call(np, ...)). Every case is checked to second order.
SPECIAL = {
    "matmul": [(lambda m, a, b: m.matmul(a, b), None, _random((2, 3), (3, 4)))],
    # log_softmax along the last axis or another, against the textbook expression
    "log_softmax": [
        (lambda m, x: anp.log_softmax(x), lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True)),
         _random((3, 4))),
        (lambda m, x: anp.log_softmax(x, axis=0),
         lambda x: x - np.log(np.exp(x).sum(0, keepdims=True)), _random((3, 4))),
    ],
    # differentiable in the fill value, which may broadcast
    "full": [(lambda m, v: m.full((2, 3), v), None, _random((3,)))],
    # (a traced `a` only lends its shape and dtype)
    "full_like": [(lambda m, v: m.full_like(m.stack([v, v]), v[::-1]), None, _random((3,)))],
    "dot": [(lambda m, a, b: m.dot(a, b), None, _random((2, 3), (3,)))],
    "transpose": [(lambda m, x: m.transpose(x, (1, -1, 0)), None, _random((2, 3, 4)))],
    "einsum": [(lambda m, a, b: m.einsum("ij,jk->ki", a, b), None, _random((2, 3), (3, 4)))],
    "reshape": [(lambda m, x: m.reshape(x, (3, -1)), None, _random((2, 3)))],
    "ravel": [(lambda m, x: m.ravel(x), None, _random((2, 3)))],
    "expand_dims": [(lambda m, x: m.expand_dims(x, (0, -1)), None, _random((2, 3)))],
    "squeeze": [(lambda m, x: m.squeeze(x, 1), None, _random((2, 1, 3)))],
    "broadcast_to": [(lambda m, x: m.broadcast_to(x, (4, 2, 3)), None, _random((2, 1)))],
    "concatenate": [(lambda m, a, b: m.concatenate((a, b), axis=1), None,
                     _random((2, 1), (2, 3)))],
    "stack": [(lambda m, a, b: m.stack([a, b], axis=-1), None, _random((2, 3), (2, 3)))],
    "moveaxis": [(lambda m, x: m.moveaxis(x, 0, -1), None, _random((2, 3, 4)))],
    "swapaxes": [(lambda m, x: m.swapaxes(x, 0, 2), None, _random((2, 3, 4)))],
    "pad": [(lambda m, x: m.pad(x, ((1, 0), (2, 1))), None, _random((2, 3)))],
    "getitem": [(lambda m, x: anp.getitem(x, (slice(None), [0, 0, 2])),
                 lambda x: x[:, [0, 0, 2]], _random((2, 3)))],
    "scatter_add": [(lambda m, g: anp.scatter_add(g, (slice(None), [0, 0, 2]), (2, 3)),
                     lambda g: _np_scatter_add(g, (slice(None), [0, 0, 2]), (2, 3)),
                     _random((2, 3)))],
    "unbroadcast": [(lambda m, g: anp.unbroadcast(g, np.ones((3, 1))),
                     lambda g: g.sum(axis=0).sum(axis=-1, keepdims=True), _random((2, 3, 4)))],
    "array": [(lambda m, a: m.array([a[0] * 2, a[1], 3.0]), None, _random((2,)))],
    "asarray": [(lambda m, a: m.asarray(a, np.float64) * 2, None, _random((2,)))],
}


def _np_scatter_add(g, index, shape):
    out = np.zeros(shape)
    np.add.at(out, index, g)
    return out


def _call(op, module, *args, **kw):
    if op.call is not None:
        return op.call(module, *args, **kw)
    return getattr(module, op.name)(*args, **kw)


def _reference(op, *args, **kw):
    if op.reference is not None:
        return op.reference(*args, **kw)
    return getattr(np, op.name)(*args, **kw)


def _differentiable_ops() -> dict:
    """Every public op of autodiff.numpy with a gradient: primitives with rules, and the
    functions written in the module (composites such as var, wrappers such as clip)."""
    return {
        name: value for name, value in vars(anp).items()
        if not name.startswith("_") and callable(value) and not isinstance(value, type)
        and (getattr(value, "vjp_rules", None) is not None
             or getattr(value, "__module__", "") == "autodiff.numpy")
    }


def test_every_differentiable_op_has_a_test_of_its_own():
    ops = _differentiable_ops()
    for alias, name in ALIASES.items():
        assert ops.pop(alias) is getattr(anp, name), f"{alias} is not the same op as {name}"
    untested = set(ops) - set(BY_NAME) - set(SPECIAL) - set(TRANSPOSES) - set(OWN_TESTS)
    for module, test in OWN_TESTS.values():
        assert callable(getattr(importlib.import_module(module), test, None)), test
    assert untested == set(), "add a row to the op table (or SPECIAL) for these ops"
    assert all(SPECIAL[name] for name in SPECIAL)


@pytest.mark.parametrize("name", SPECIAL)
def test_special_ops(name):
    for call, reference, args in SPECIAL[name]:
        expected = call(np, *args) if reference is None else reference(*args)
        np.testing.assert_allclose(call(anp, *args), expected, rtol=1e-12)
        check_grads(lambda *a, call=call: call(anp, *a), args, order=2)


def test_every_linalg_op_has_a_row():
    # The primitives under them, pnorm and logabsdet, are exercised by these rows.
    ops = set(anp.linalg.__all__) - {"SlogdetResult"}
    assert ops == {name.removeprefix("linalg.") for name in BY_NAME if name.startswith("linalg.")}


# ------------------------------------------------------------------ elementwise


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda op: op.name)
@given(data=st.data())
def test_elementwise(op, data):
    shape = data.draw(small_shapes)
    x = _domain(op, data.draw(arrays_in(shape, op.low, op.high)))
    np.testing.assert_allclose(_call(op, anp, x), _reference(op, x), rtol=1e-12)
    check_grads(lambda x: _call(op, anp, x), (x,))


@pytest.mark.parametrize("op", [op for op in ELEMENTWISE if op.order2], ids=lambda op: op.name)
def test_elementwise_second_order(op):
    x = _domain(op, np.random.default_rng(1).uniform(op.low, op.high, (3, 2)))
    check_grads(lambda x: _call(op, anp, x), (x,), order=2)


# ----------------------------------------------------------- binary, broadcasting


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.name)
@given(data=st.data())
def test_binary_broadcasting(op, data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    x, y = (data.draw(arrays_in(s, op.low, op.high)) for s in shapes.input_shapes)
    if op.name in ("maximum", "minimum", "where"):
        y = y + 0.05 * np.sign(y - x + 1e-9) * (np.abs(x - y) < 0.05)  # keep off the kink
    np.testing.assert_allclose(_call(op, anp, x, y), _reference(op, x, y), rtol=1e-12)
    check_grads(lambda x, y: _call(op, anp, x, y), (x, y))


@pytest.mark.parametrize("op", [op for op in BINARY if op.order2], ids=lambda op: op.name)
def test_binary_second_order(op):
    rng = np.random.default_rng(2)
    x, y = rng.uniform(op.low, op.high, (2, 3)), rng.uniform(op.low, op.high, (3,))
    check_grads(lambda x, y: _call(op, anp, x, y), (x, y), order=2)


def test_scalar_operands_keep_working():
    x = np.linspace(0.5, 2.0, 5)
    check_grads(lambda x: 2.0 ** x + x ** 3 - 1 / x, (x,), order=2)


# ----------------------------------------------------------------- reductions


@pytest.mark.parametrize("op", REDUCTIONS, ids=lambda op: op.name)
@given(data=st.data())
def test_reduction(op, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = data.draw(arrays_in(shape, op.low, op.high))
    if op.name in ("max", "min", "std"):
        # Well-separated distinct values: max and min have no ties, std is never 0.
        ranks = np.argsort(np.argsort(x.ravel(), kind="stable")).reshape(shape)
        x = ranks * 0.5 + x * 0.01
    axis = data.draw(st.one_of(
        st.none(), st.integers(-len(shape), len(shape) - 1),
        st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True)
        .map(tuple),
    ))
    keepdims = data.draw(st.booleans())
    kw = {"axis": axis, "keepdims": keepdims}
    if op.name == "std":  # the std of one value is 0, where its derivative does not exist
        assume(x.size // np.sum(np.ones(shape), axis=axis, keepdims=True).size > 1)
    np.testing.assert_allclose(_call(op, anp, x, **kw), _reference(op, x, **kw),
                               rtol=1e-10, atol=1e-12)
    check_grads(lambda x: _call(op, anp, x, **kw), (x,))


@pytest.mark.parametrize("op", [op for op in REDUCTIONS if op.order2], ids=lambda op: op.name)
def test_reduction_second_order(op):
    x = np.random.default_rng(3).standard_normal((3, 4))
    check_grads(lambda x: _call(op, anp, x, axis=1), (x,), order=2)


# ------------------------------------------------------------ linear algebra

MATMUL_SHAPES = [
    ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2)),
    ((3,), (5, 3, 2)), ((5, 2, 3), (3,)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes):
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal(s) for s in shapes)
    np.testing.assert_allclose(anp.matmul(a, b), np.matmul(a, b))
    check_grads(anp.matmul, (a, b), order=2)


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((), (3,))])
def test_dot(shapes):
    rng = np.random.default_rng(5)
    a, b = (rng.standard_normal(s) for s in shapes)
    np.testing.assert_allclose(anp.dot(a, b), np.dot(a, b))
    check_grads(anp.dot, (a, b))


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (0, 2, 1)])
def test_transpose(axes):
    x = np.random.default_rng(6).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(anp.transpose(x, axes), np.transpose(x, axes))
    check_grads(lambda x: anp.transpose(x, axes), (x,))
    check_grads(lambda x: x.T, (x,))


@pytest.mark.parametrize("spec,shapes", [
    ("ij,jk->ik", ((2, 3), (3, 4))), ("ij,kj->ik", ((2, 3), (4, 3))),
    ("bij,bjk->bik", ((5, 2, 3), (5, 3, 2))), ("i,i->", ((3,), (3,))),
    ("i,j->ij", ((3,), (2,))), ("ij,j->i", ((2, 3), (3,))), ("ij,jk", ((2, 3), (3, 4))),
    ("ij,k->k", ((2, 3), (4,))), ("ij->ji", ((2, 3),)), ("ijk->j", ((2, 3, 4),)),
])
def test_einsum(spec, shapes):
    rng = np.random.default_rng(7)
    operands = [rng.standard_normal(s) for s in shapes]
    np.testing.assert_allclose(anp.einsum(spec, *operands), np.einsum(spec, *operands))
    check_grads(lambda *ops: anp.einsum(spec, *ops), tuple(operands), order=2)


def test_einsum_rejects_what_it_cannot_differentiate():
    from autodiff import grad

    with pytest.raises(ValueError, match="repeated index"):
        grad(lambda x: anp.sum(anp.einsum("ii->i", x)))(np.eye(3))
    np.testing.assert_array_equal(anp.einsum("ii->i", np.eye(3)), np.ones(3))  # as NumPy
    with pytest.raises(ValueError, match="2 subscripts for 3 operands"):
        grad(lambda x: anp.sum(anp.einsum("i,i->", x, x, x)))(np.ones(3))


# -------------------------------------------------------- shapes and indexing

SHAPE_CASES = {
    "reshape": (lambda m, x: m.reshape(x, (4, 3)), (2, 6)),
    "reshape -1": (lambda m, x: m.reshape(x, (-1,)), (2, 3, 2)),
    "ravel": (lambda m, x: m.ravel(x), (3, 4)),
    "expand_dims": (lambda m, x: m.expand_dims(x, 1), (3, 4)),
    "squeeze": (lambda m, x: m.squeeze(x), (3, 1, 4)),
    "squeeze axis": (lambda m, x: m.squeeze(x, axis=1), (3, 1, 1)),
    "broadcast_to": (lambda m, x: m.broadcast_to(x, (2, 3, 4)), (3, 1)),
    "moveaxis": (lambda m, x: m.moveaxis(x, 0, -1), (2, 3, 4)),
    "swapaxes": (lambda m, x: m.swapaxes(x, 0, 2), (2, 3, 4)),
    "pad": (lambda m, x: m.pad(x, ((1, 2), (0, 3))), (2, 3)),
    "pad scalar width": (lambda m, x: m.pad(x, 1), (2, 3)),
    "slice": (lambda m, x: x[1:, ::2], (3, 4)),
    "int and ellipsis": (lambda m, x: x[..., 1], (2, 3, 4)),
    "newaxis": (lambda m, x: x[None, :, 0], (3, 4)),
    "repeated indices": (lambda m, x: x[np.array([0, 2, 0, 0])], (3, 2)),
    "index list": (lambda m, x: x[[1, 1, 0], [0, 0, 2]], (3, 4)),
    "boolean mask": (lambda m, x: x[np.array([[True, False, True], [False, True, True]])],
                     (2, 3)),
    "negative step": (lambda m, x: x[::-1, 1:3], (4, 4)),
}


@pytest.mark.parametrize("name", SHAPE_CASES)
def test_shapes_and_indexing(name):
    fn, shape = SHAPE_CASES[name]
    x = np.random.default_rng(8).standard_normal(shape)
    np.testing.assert_array_equal(fn(anp, x), fn(np, x))
    check_grads(lambda x: fn(anp, x), (x,), order=2)


def test_repeated_indices_accumulate():
    from autodiff import grad

    x = np.arange(3.0)
    g = grad(lambda x: anp.sum(x[np.array([0, 0, 0, 2])]))(x)
    np.testing.assert_array_equal(g, [3.0, 0.0, 1.0])


@pytest.mark.parametrize("index", [(slice(None), [0, 0, 2]), (slice(1, None), 1),
                                   np.array([[True, False, True], [False, True, True]])],
                         ids=["repeated", "basic", "mask"])
def test_indexing_to_third_order_and_forward_over_reverse(index):
    # The rule of getitem is a scatter, whose rule is a getitem again. That rule is itself
    # differentiated only where the scatter's cotangent is traced: forward over reverse
    # (jvp of grad) transposes the backward pass of grad, scatter included.
    from autodiff import grad, hessian, jvp

    rng = np.random.default_rng(3)
    x, t = rng.uniform(0.5, 1.5, (2, 3)), rng.standard_normal((2, 3))

    def f(x):
        return anp.sum(anp.sin(x[index]) * x[index] ** 2)

    check_grads(f, (x,), order=3)
    expected = np.tensordot(hessian(f)(x), t, axes=2)
    np.testing.assert_allclose(jvp(grad(f), (x,), (t,))[1], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis):
    rng = np.random.default_rng(9)
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    np.testing.assert_array_equal(anp.concatenate([a, b, c], axis=axis),
                                  np.concatenate([a, b, c], axis=axis))
    np.testing.assert_array_equal(anp.stack([a, b, c], axis=axis), np.stack([a, b, c], axis=axis))
    check_grads(lambda a, b, c: anp.concatenate([a, b, c], axis=axis), (a, b, c), order=2)
    check_grads(lambda a, b, c: anp.stack([a, b, c], axis=axis), (a, b, c))


def test_concatenate_of_unequal_sizes():
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((2, 1)), rng.standard_normal((2, 4))
    check_grads(lambda a, b: anp.concatenate((a, b), axis=1), (a, b))


def test_array_of_traced_values_is_differentiable():
    check_grads(lambda x: anp.array([x[0] * 2, x[1] ** 2, 3.0]), (np.array([1.0, 2.0]),))
    check_grads(lambda x: anp.asarray(x, np.float64) * 2, (np.array([1.0, 2.0]),))


# ----------------------------------------------------- Box methods and operators


@given(data=st.data())
@settings(max_examples=10)
def test_box_methods_and_operators(data):
    x = data.draw(arrays_in((3, 4), -2, 2))
    y = data.draw(arrays_in((4,), 0.5, 2))

    def f(m, x):
        out = (x + y) * (y - x) / (1 + x * x) + 2 * x - (-x) + x ** 2 + y / (3 + x)
        out = out @ np.array([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.7], [0.2, 0.1]]) + 1.0
        apart = out + np.array([0.0, 100.0]) + 1000.0 * np.arange(3)[:, None]  # no ties
        return (out.sum(axis=0) + out.mean() + apart.max(axis=1).sum() + apart.min()
                + out.reshape(6).sum() + out.reshape((2, 3)).transpose().sum()
                + out.T.sum() + out.astype(np.float64).sum() + (1 - out).sum())

    np.testing.assert_allclose(f(anp, x), f(np, x))
    check_grads(lambda x: f(anp, x), (x,))


def test_box_attributes():
    from autodiff.core import Trace

    x = np.ones((3, 4), np.float32)
    box = Trace().new_input(x)
    assert box.shape == (3, 4) and box.ndim == 2 and box.size == 12
    assert box.dtype == np.float32 and len(box) == 3
    assert isinstance(box > 0, np.ndarray) and (box > 0).all()
    assert isinstance(box.argmax(), np.integer | int)
    assert isinstance(box + 1, Box) and isinstance(1 + box, Box)
    assert isinstance(np.ones(4, np.float32) * box, Box)
    assert isinstance(np.float32(2) * box, Box)


def test_nondifferentiable_ops_pass_plain_values():
    from autodiff.core import Trace

    box = Trace().new_input(np.array([-1.5, 0.0, 2.5]))
    for name in ("sign", "floor", "round", "argmax", "argmin", "zeros_like", "ones_like",
                 "shape", "ndim", "isfinite"):
        result = getattr(anp, name)(box)
        assert not isinstance(result, Box), name
        np.testing.assert_array_equal(result, getattr(np, name)(box.value))
    for name in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"):
        assert not isinstance(getattr(anp, name)(box, 0.0), Box)


# ------------------------------------------------ NumPy's calling conventions


def _numpy_namesakes() -> list:
    """(name, anp function, NumPy function) for every public anp callable whose NumPy
    namesake exposes a signature."""
    pairs = []
    for ours, theirs, prefix in ((anp, np, ""), (anp.linalg, np.linalg, "linalg.")):
        for name, value in sorted(vars(ours).items()):
            if name.startswith("_") or not callable(value) or isinstance(value, type):
                continue
            try:
                inspect.signature(getattr(theirs, name))
            except (AttributeError, TypeError, ValueError):
                continue
            pairs.append((prefix + name, value, getattr(theirs, name)))
    return pairs


def test_namesakes_are_found():
    names = {name for name, _, _ in _numpy_namesakes()}
    assert {"sum", "transpose", "reshape", "swapaxes", "einsum", "clip", "var", "exp",
            "concatenate", "array", "log2", "prod", "take", "linalg.norm", "linalg.solve"} <= names


@pytest.mark.parametrize("name,ours,theirs", _numpy_namesakes(), ids=lambda v: str(v)[:20])
def test_signature_matches_numpy(name, ours, theirs):
    """The same parameter names and kinds (positional-only, keyword-only...) as NumPy."""
    def shape(function):
        return [(p.name, p.kind) for p in inspect.signature(function).parameters.values()]

    assert shape(ours) == shape(theirs)


# name, positional example arguments (the first is the traced array), settings
KEYWORD_CASES = [
    ("transpose", ((2, 3, 4),), {"axes": (1, -1, 0)}),
    ("swapaxes", ((2, 3),), {"axis1": 0, "axis2": -1}),
    ("reshape", ((2, 3),), {"shape": (3, 2), "order": "F"}),
    ("ravel", ((2, 3),), {"order": "F"}),
    ("moveaxis", ((2, 3, 4),), {"source": 0, "destination": -1}),
    ("expand_dims", ((2, 3),), {"axis": 1}),
    ("squeeze", ((2, 1, 3),), {"axis": 1}),
    ("broadcast_to", ((3, 1),), {"shape": (2, 3, 4)}),
    ("sum", ((2, 3),), {"axis": 1, "keepdims": True}),
    ("mean", ((2, 3),), {"axis": -1}),
    ("max", ((2, 3),), {"axis": 0, "keepdims": True}),
    ("min", ((2, 3),), {"axis": (0, 1)}),
    ("var", ((2, 3),), {"axis": 1, "ddof": 1}),
    ("std", ((2, 3),), {"axis": 0, "keepdims": True}),
    ("pad", ((2, 3),), {"pad_width": 1, "constant_values": 0.5}),
    ("clip", ((2, 3),), {"a_min": -0.5, "a_max": 0.5}),
    ("clip", ((2, 3),), {"min": -0.5}),
    ("power", ((2, 3), (3,)), {}),
    ("where", ((2, 3), (2, 3)), {}),
]


@pytest.mark.parametrize("name,shapes,settings", KEYWORD_CASES, ids=lambda v: str(v))
def test_positional_and_keyword_forms_as_numpy_takes_them(name, shapes, settings):
    """Each op called with its settings by keyword and, where NumPy allows it, by
    position, on plain and traced arrays: NumPy's values, right gradients."""
    args = list(_random(*shapes, seed=12))
    if name == "power":
        args[0] = np.abs(args[0]) + 0.5
    if name == "where":
        args = [args[0] > 0, *args]
    if name in ("max", "min", "clip"):
        args[0] = args[0] + 0.1 * np.sign(args[0] + 0.5 - 1e-9)  # away from ties and bounds
    parameters = inspect.signature(getattr(np, name)).parameters
    positional = [p.name for p in parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    forms = [(args, settings)]
    given = positional[len(args):]
    if set(settings) <= set(positional) and all(
            n in settings for n in given[:len(settings)]):
        forms.append((args + [settings[n] for n in given[:len(settings)]], {}))
    traced = 1 if name == "where" else 0
    for form_args, form_settings in forms:
        expected = getattr(np, name)(*form_args, **form_settings)

        def f(x, form_args=form_args, form_settings=form_settings):
            full = list(form_args)
            full[traced] = x
            return getattr(anp, name)(*full, **form_settings)

        np.testing.assert_allclose(f(form_args[traced]), expected)
        check_grads(f, (form_args[traced],), order=2)


# ------------------------------------------------------ ops with structure (STRUCTURAL)


def _structural_args(op, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(op.low, op.high, shape).astype(dtype) for shape in op.extra["shapes"])


def _assert_trees_close(actual, expected, **tolerances):
    actual_leaves, expected_leaves = tree_leaves(actual), tree_leaves(expected)
    assert len(actual_leaves) == len(expected_leaves)
    for a, e in zip(actual_leaves, expected_leaves):
        assert np.shape(a) == np.shape(e)
        np.testing.assert_allclose(a, e, **tolerances)


@pytest.mark.parametrize("index", range(len(STRUCTURAL)),
                         ids=[f"{op.name}-{i}" for i, op in enumerate(STRUCTURAL)])
@pytest.mark.parametrize("seed", [0, 1])
def test_structural(index, seed):
    op = STRUCTURAL[index]
    args = _structural_args(op, seed)
    _assert_trees_close(op.call(anp, *args), op.call(np, *args), rtol=1e-12, atol=1e-12)
    check_grads(lambda *args: op.call(anp, *args), args, order=2)


@pytest.mark.parametrize("index", range(len(STRUCTURAL)),
                         ids=[f"{op.name}-{i}" for i, op in enumerate(STRUCTURAL)])
def test_structural_forward_over_reverse(index):
    """jvp of grad against hvp (reverse over reverse): forward over reverse transposes the
    backward pass, so every rule that ran in it (the scatters that transpose the gathers
    included) is differentiated in its cotangent."""
    from autodiff import grad, hvp, jvp

    op = STRUCTURAL[index]
    args = _structural_args(op, 0)
    tangents = tuple(np.random.default_rng(5).standard_normal(np.shape(a)) for a in args)

    def f(*args):
        total = 0.0
        for leaf in tree_leaves(op.call(anp, *args)):
            total = total + anp.sum(anp.sin(leaf))
        return total

    forward = jvp(grad(f), args, tangents)[1]
    np.testing.assert_allclose(forward, hvp(f, args, tangents), rtol=1e-9, atol=1e-12)

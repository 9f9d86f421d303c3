"""Differential tests against JAX: random programs, run by both engines, in float64.

Hypothesis draws programs (compositions of the rows of the op table in `oracle_rows` and
`oracle_shape_rows`: broadcasting, random axes, transposes, reshapes in C and F order,
index expressions, joins...). Each program is data, interpreted once with
`autodiff.numpy` and once with `jax.numpy`; the values, the gradient of a scalar of the
output, a vjp, the Jacobian and the Hessian must agree to tight tolerances. JAX is the
reference because its API is the one the engine follows.
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_programs import AnpOps, jax_ops, programs, run
from oracle_rows import BINARY, ELEMENTWISE, REDUCTIONS
from oracle_shape_rows import INDEXING, LINEAR_ALGEBRA, SHAPES

import autodiff.numpy as anp
from autodiff import grad, jacobian, vjp

# Each program is compiled once by XLA: its optimizations cost more than they save here.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 "
                      "--xla_llvm_disable_expensive_passes=true")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
jax = pytest.importorskip("jax", reason="the JAX oracle needs jax (pip install '.[test]')")
JAX = jax_ops()
jnp = JAX.m

ROWS = [row for row in ELEMENTWISE + BINARY + REDUCTIONS + LINEAR_ALGEBRA + SHAPES + INDEXING
        if row.available()]
BY_NAME = {row.name: row for row in ROWS}
RTOL, ATOL = 1e-9, 1e-10
EXAMPLES_PER_ROW = 6
HESSIAN_SIZE = 12  # inputs up to this many elements in all also get their Hessian


def _scalar(m, out, weights):
    # A nonlinear scalar: the cotangent reaching each op then depends on the inputs, so
    # the Hessian sees rules whose own derivative is wrong.
    return m.sum(weights * m.sin(out))


def _ours(program, inputs, weights, cotangent, order2):
    def f(*xs):
        return run(program, AnpOps, xs, BY_NAME)

    def s(*xs):
        return _scalar(anp, f(*xs), weights)

    nums = tuple(range(len(inputs)))
    out, pull = vjp(f, *inputs)
    answers = {"value": out, "grad": grad(s, nums)(*inputs), "vjp": pull(cotangent),
               "jacobian": jacobian(f, nums)(*inputs)}
    if order2:
        answers["hessian"] = jacobian(grad(s, nums), nums)(*inputs)
    return answers


def _theirs(program, inputs, weights, cotangent, order2):
    def f(*xs):
        return run(program, JAX, xs, BY_NAME)

    def s(*xs):
        return _scalar(jnp, f(*xs), weights)

    nums = tuple(range(len(inputs)))

    def everything(*xs):
        out, pull = jax.vjp(f, *xs)
        answers = {"value": out, "grad": jax.grad(s, nums)(*xs), "vjp": pull(cotangent),
                   "jacobian": jax.jacrev(f, nums)(*xs)}
        if order2:
            answers["hessian"] = jax.hessian(s, nums)(*xs)
        return answers

    return jax.jit(everything)(*inputs)


def _assert_close(ours, theirs, what):
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs), what
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _assert_close(a, b, f"{what}[{i}]")
        return
    theirs = np.asarray(theirs)
    assert np.shape(ours) == theirs.shape, f"{what}: shape {np.shape(ours)}, JAX {theirs.shape}"
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64), theirs, rtol=RTOL,
                               atol=ATOL, err_msg=what)


def check_against_jax(program, inputs):
    """Compare every answer of both engines on `program` at `inputs`."""
    rng = np.random.default_rng(len(program.nodes))
    out = np.asarray(run(program, AnpOps, inputs, BY_NAME))
    weights, cotangent = rng.standard_normal(out.shape), rng.standard_normal(out.shape)
    order2 = sum(x.size for x in inputs) <= HESSIAN_SIZE
    theirs = _theirs(program, inputs, weights, cotangent, order2)
    ours = _ours(program, inputs, weights, cotangent, order2)
    for key, expected in theirs.items():
        _assert_close(ours[key], expected, f"{key} of\n{program!r}")


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_each_op_against_jax(row):
    # Rows with many forms (index expressions, joins) get more examples.
    @settings(max_examples=EXAMPLES_PER_ROW * row.weight)
    @given(data=st.data())
    def check(data):
        program, inputs = data.draw(programs(ROWS, required=row, max_steps=2))
        check_against_jax(program, inputs)

    check()


@settings(max_examples=40)
@given(data=st.data())
def test_random_programs_against_jax(data):
    program, inputs = data.draw(programs(ROWS, max_steps=5))
    check_against_jax(program, inputs)

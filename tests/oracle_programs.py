"""Random array programs, written once as data and run by any NumPy-like module.

A `Program` is a list of nodes in execution order. A node is either a new input (an
array of a given shape) or one call of a row of the op table (`tests/oracle_rows.py`)
on earlier nodes, with static parameters (axes, shapes, index expressions). The same
program is interpreted with NumPy (to draw it: each step is checked on concrete values),
with `autodiff.numpy`, and with `jax.numpy`; only the small adapters below differ.

Programs are drawn step by step on concrete values, so a row can refuse a step where its
derivative does not exist (a kink, a near tie) or where a value leaves a sane range: the
derivatives are then compared where both engines must agree exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import autodiff.numpy as anp

MAX_SIZE = 24  # elements per value: jacobians and hessians stay cheap
LIMIT = 1e4  # values beyond this are refused: products of exponentials overflow


# ---------------------------------------------------------------- the adapters


def _numpy_logsumexp(x, axis=None, keepdims=False):
    peak = np.max(x, axis=axis, keepdims=True)
    total = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return total if keepdims else np.squeeze(total, axis=axis)


class NumpyOps:
    """Plain NumPy: draws programs and gives the reference values while drawing."""

    m = np
    logsumexp = staticmethod(_numpy_logsumexp)

    @staticmethod
    def index(x, index):
        return x[index]


class AnpOps:
    """The engine under test. Index expressions are passed exactly as written."""

    m = anp
    logsumexp = staticmethod(anp.logsumexp)

    @staticmethod
    def index(x, index):
        return x[index]


def _jax_index_part(part):
    # JAX refuses Python sequences inside an index; NumPy reads them as integer arrays,
    # which is the meaning both sides must agree on.
    return np.asarray(part) if isinstance(part, (list, tuple)) else part


def jax_ops():
    """The reference: `jax.numpy` in float64 (imported here: the oracle's only user)."""
    import jax
    import jax.numpy as jnp
    import jax.scipy.special

    jax.config.update("jax_enable_x64", True)

    class JaxOps:
        m = jnp
        logsumexp = staticmethod(jax.scipy.special.logsumexp)

        @staticmethod
        def index(x, index):
            return x[tuple(_jax_index_part(part) for part in index)]

    return JaxOps


# ---------------------------------------------------------------- the programs


@dataclass(frozen=True)
class Node:
    """`row` applied to the nodes `args` with keyword `params`; row None: input `params['k']`."""

    row: str | None
    args: tuple[int, ...] = ()
    params: dict = field(default_factory=dict)


@dataclass
class Program:
    nodes: list[Node]
    shapes: list[tuple]  # of the inputs, in order

    def __repr__(self) -> str:
        lines = []
        for i, node in enumerate(self.nodes):
            if node.row is None:
                k = node.params["k"]
                lines.append(f"v{i} = input {k} of shape {self.shapes[k]}")
            else:
                args = ", ".join(f"v{a}" for a in node.args)
                params = "".join(f", {k}={v!r}" for k, v in node.params.items())
                lines.append(f"v{i} = {node.row}({args}{params})")
        return "Program:\n  " + "\n  ".join(lines)


def run(program: Program, ops: Any, inputs: Sequence[Any], rows: dict) -> Any:
    """The value of the program's last node, computed with the adapter `ops`."""
    values: list[Any] = []
    for node in program.nodes:
        if node.row is None:
            values.append(inputs[node.params["k"]])
        else:
            values.append(rows[node.row].apply(ops, *[values[a] for a in node.args],
                                                **node.params))
    return values[-1]


class Context:
    """What a row's `draw` sees: hypothesis draws, concrete values, new inputs."""

    def __init__(self, draw: Callable, rng: np.random.Generator) -> None:
        self.draw = draw
        self.rng = rng
        self.nodes: list[Node] = []
        self.values: list[np.ndarray] = []
        self.shapes: list[tuple] = []

    def new(self, shape: tuple) -> int:
        """Add an input of `shape` (standard normal values); returns its node index."""
        shape = tuple(int(n) for n in shape)
        self.shapes.append(shape)
        self.nodes.append(Node(None, (), {"k": len(self.shapes) - 1}))
        self.values.append(self.rng.standard_normal(shape))
        return len(self.nodes) - 1

    def value(self, i: int) -> np.ndarray:
        return self.values[i]

    def try_step(self, row: Any, a: int) -> bool:
        """Append one call of `row` on node `a` (and what it adds); False if it refused."""
        mark = (len(self.nodes), len(self.shapes))
        drawn = row.draw(self, a)
        result = None
        if drawn is not None:
            args, params = drawn
            try:
                with np.errstate(all="raise"):
                    result = np.asarray(row.apply(NumpyOps, *[self.values[i] for i in args],
                                                  **params))
            except (ValueError, IndexError, TypeError, FloatingPointError):
                result = None
        if result is None or not _sane(result):
            del self.nodes[mark[0]:], self.values[mark[0]:], self.shapes[mark[1]:]
            return False
        self.nodes.append(Node(row.name, tuple(args), params))
        self.values.append(result)
        return True


def _sane(value: np.ndarray) -> bool:
    return (np.issubdtype(value.dtype, np.floating) and 0 < value.size <= MAX_SIZE
            and value.ndim <= 4 and bool(np.all(np.abs(value) < LIMIT)))


# Mostly 2 or 3 axes: transposes, matrix products and index expressions need them.
input_shapes = st.sampled_from([0, 1, 2, 2, 3, 3]).flatmap(
    lambda ndim: st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim).map(tuple))


@st.composite
def programs(draw, rows: Sequence[Any], required: Any = None, max_steps: int = 3) -> Program:
    """A program of 1..max_steps calls of `rows` (`required` among them, if given)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ctx = Context(draw, rng)
    ctx.new(draw(input_shapes))
    steps = draw(st.integers(1, max_steps))
    required_at = draw(st.integers(0, steps - 1)) if required is not None else -1
    for step in range(steps):
        row = required if step == required_at else draw(st.sampled_from(rows))
        last = len(ctx.nodes) - 1
        a = draw(st.sampled_from(sorted({last, draw(st.integers(0, last))})))
        done = ctx.try_step(row, a) or ctx.try_step(row, last)
        if row is required:
            assume(done)
    assume(ctx.nodes[-1].row is not None)
    return Program(ctx.nodes, ctx.shapes), [ctx.values[i] for i, node in
                                            enumerate(ctx.nodes) if node.row is None]

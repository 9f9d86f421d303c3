"""A view of the tape, for learning what reverse mode records.

`print_tape(f, *args)` runs `f` once with every array leaf of `args` traced, the way
`grad` does, and prints each tape entry: its index, the op and which entries (or
constants) it was applied to, and the shape and dtype of its result. `to_dot(f, *args)`
returns the same graph as Graphviz DOT text (`dot -Tsvg`). Nothing is differentiated.

Only the op, parents, result, arguments and settings of a tape entry are read here (see
`autodiff.core` for what an entry holds), never the rules.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from autodiff.core import Trace, unbox
from autodiff.tree import tree_flatten, tree_paths, tree_unflatten


def _describe(value: Any) -> str:
    value = unbox(value)
    return f"{np.result_type(value)} {tuple(np.shape(value))}"


def _constant(value: Any) -> str:
    value = unbox(value)
    return repr(np.asarray(value).item()) if np.ndim(value) == 0 else f"const {_describe(value)}"


def _leaf_name(arg_name: str, path: tuple) -> str:
    return arg_name + "".join(f"[{key!r}]" for key in path)


def _record(f: Callable, args: tuple) -> tuple[list[tuple], dict[int, str]]:
    """Run `f(*args)` on a fresh trace; returns the tape and a name for each input entry."""
    try:
        arg_names = list(inspect.signature(f).parameters)
    except (TypeError, ValueError):
        arg_names = []
    trace = Trace()
    boxed_args, names = [], {}
    for position, arg in enumerate(args):
        leaves, treedef = tree_flatten(arg)
        arg_name = arg_names[position] if position < len(arg_names) else f"arg{position}"
        boxes = [trace.new_input(leaf) for leaf in leaves]
        for path, box in zip(tree_paths(treedef), boxes):
            names[box.index] = _leaf_name(arg_name, path)
        boxed_args.append(tree_unflatten(treedef, boxes))
    try:
        f(*boxed_args)
    finally:
        trace.done = True
    return trace.tape, names


def _operands(entry: tuple) -> list[str]:
    """`t3` for a traced argument (tape entry 3); a constant as its value when it is a
    scalar, else as `const dtype (shape)`."""
    _, _, parents, _, args, params, _ = entry
    traced = dict(parents)
    operands = [f"t{traced[i]}" if i in traced else _constant(arg) for i, arg in enumerate(args)]
    return operands + [f"{key}={value!r}" for key, value in params.items()]


def tape_lines(f: Callable, *args: Any) -> list[str]:
    """One line per tape entry of `f(*args)`: `t2 = matmul(t0, t1)  float64 (2, 4)`."""
    tape, names = _record(f, args)
    rows = []
    for index, entry in enumerate(tape):
        op = entry[0]
        what = f"input {names[index]}" if op is None else \
            f"{op.__name__}({', '.join(_operands(entry))})"
        rows.append((f"t{index} = {what}", _describe(entry[3])))
    width = max((len(left) for left, _ in rows), default=0)
    return [f"{left:<{width}}  {right}" for left, right in rows]


def print_tape(f: Callable, *args: Any) -> None:
    """Print the tape `f(*args)` records, one op per line with its result's dtype and shape."""
    print("\n".join(tape_lines(f, *args)))


def to_dot(f: Callable, *args: Any) -> str:
    """The tape of `f(*args)` as a Graphviz DOT digraph: one node per entry, edges from the
    entries each op read; inputs are boxes, constants are not drawn."""
    tape, names = _record(f, args)
    lines = ["digraph tape {", "  rankdir=LR;", '  node [fontname="monospace"];']
    for index, entry in enumerate(tape):
        op, parents = entry[0], entry[2]
        label = names[index] if op is None else op.__name__
        shape = "box" if op is None else "ellipse"
        text = f"t{index}: {label}\\n{_describe(entry[3])}".replace('"', '\\"')
        lines.append(f'  t{index} [label="{text}", shape={shape}];')
        lines.extend(f"  t{parent} -> t{index};" for _, parent in parents)
    lines.append("}")
    return "\n".join(lines) + "\n"

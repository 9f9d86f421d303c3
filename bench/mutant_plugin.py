"""Wrong VJP rules on purpose: a pytest plugin that installs one mutant before the tests run.

`bench/mutate_rules.py` runs the test suite once per mutant with
`-p mutant_plugin` and `AUTODIFF_MUTANT=module:name:argnum:kind` in the environment
(argnum `*` for an op whose single rule takes the argnum). Source files are never
edited: the op's rule is replaced in memory, in the test process only.

This module is also where rules are read and written (`get_rules`, `set_rules`): ops keep
them in `op.vjp_rules` (a tuple with a rule or None per positional argument, or one
callable `rule(argnum, g, ans, *args, **params)` for variadic ops) or, in older engines,
in the one-element list `op.rules_of`.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np

KINDS = ("zero", "doubled", "negated", "wrong-argument", "nondifferentiable", "first-tie")
MUTANT_VARIABLE = "AUTODIFF_MUTANT"


# ------------------------------------------------------------------- rule storage


def is_primitive(value: Any) -> bool:
    return callable(value) and (hasattr(value, "vjp_rules") or hasattr(value, "rules_of"))


def get_rules(op: Any) -> Any:
    """The op's rules: a tuple (one per argument), a callable of the argnum, or None."""
    if hasattr(op, "vjp_rules"):
        return op.vjp_rules
    return op.rules_of[0]


def set_rules(op: Any, rules: Any) -> None:
    if hasattr(op, "vjp_rules"):
        op.vjp_rules = rules
    else:
        op.rules_of[0] = rules


# ------------------------------------------------------------------- the mutants


def _unbox(x: Any) -> Any:
    from autodiff.core import unbox

    if isinstance(x, (list, tuple)):
        return type(x)(_unbox(item) for item in x)
    return unbox(x)


def _transposed(c: Any) -> Any:
    import autodiff.numpy as anp

    return anp.reshape(anp.transpose(c), anp.shape(c))


def _first_extremum(g, ans, x, axis=None, keepdims=False):
    # The whole cotangent to the first of tied extrema (flat order within each slice).
    import autodiff.numpy as anp

    xv = np.asarray(_unbox(x))
    axes = tuple(range(xv.ndim)) if axis is None else tuple(
        int(a) % xv.ndim for a in np.atleast_1d(axis))
    kept = tuple(1 if i in axes else n for i, n in enumerate(xv.shape))
    hit = np.equal(xv, np.reshape(_unbox(ans), kept))
    rest = [i for i in range(xv.ndim) if i not in axes]
    order = rest + list(axes)
    rows = int(np.prod([xv.shape[i] for i in rest], dtype=np.int64))
    moved = np.transpose(hit, order).reshape(rows, -1)
    first = np.zeros_like(moved)
    first[np.arange(rows), np.argmax(moved, axis=1)] = True
    first = first.reshape([xv.shape[i] for i in order])
    first = np.transpose(first, np.argsort(order)).astype(xv.dtype)
    return anp.broadcast_to(anp.reshape(g, kept), xv.shape) * first


def _first_wins(mine: int) -> Callable:
    # maximum/minimum with the whole cotangent of a tie to the first argument
    def rule(g, ans, x, y):
        import autodiff.numpy as anp

        args = (x, y)
        won = np.equal(_unbox(args[mine]), _unbox(ans))
        if mine == 1:
            won &= np.not_equal(_unbox(x), _unbox(ans))
        full = g * np.broadcast_to(won, np.shape(_unbox(ans))).astype(np.result_type(_unbox(g)))
        return anp.unbroadcast(full, args[mine])

    return rule


def mutate(rule: Callable, kind: str, other: Callable | None = None) -> Callable | None:
    """`rule` made wrong in the way `kind` says; None where that kind does not apply.

    A mutant keeps the signature of the rule it replaces (functools.wraps): the engine
    reads from it which settings reach the rule, so a mutant with `**k` would change what
    the op accepts rather than its gradient."""
    if kind == "wrong-argument" and other is not None:
        # The other argument's rule, unless it is this very rule (add's): no mutant then.
        return None if other is rule else other
    bodies = {
        "zero": lambda *a, **k: rule(*a, **k) * 0.0,
        "doubled": lambda *a, **k: rule(*a, **k) * 2.0,
        "negated": lambda *a, **k: -rule(*a, **k),
        "wrong-argument": lambda *a, **k: _transposed(rule(*a, **k)),
        # right values, but constants to any outer trace
        "nondifferentiable": lambda *a, **k: rule(*_unbox(a), **k),
    }
    body = bodies.get(kind)
    return None if body is None else functools.wraps(rule)(body)


def mutant_rules(op: Any, name: str, argnum: str, kind: str) -> Any:
    """The op's rules with the one at `argnum` replaced by its `kind` mutant (None: n/a)."""
    rules = get_rules(op)
    if argnum == "*":  # one variadic rule rule(argnum, g, ...)
        if kind == "first-tie":
            return None
        if kind == "wrong-argument":
            @functools.wraps(rules)
            def shifted(i, *a, **k):
                # the rule of the next traced argument (the same one if it is alone)
                try:
                    return rules(i + 1, *a, **k)
                except (IndexError, ValueError):
                    return _transposed(rules(i, *a, **k))
            return shifted
        return mutate(rules, kind)
    i = int(argnum)
    rule = rules[i]
    if kind == "first-tie":
        base = name.rsplit(":", 1)[-1]
        if base in ("max", "min", "amax", "amin"):
            new = _first_extremum
        elif base in ("maximum", "minimum") and len(rules) == 2:
            new = _first_wins(i)
        else:
            return None
    else:
        others = [r for j, r in enumerate(rules) if j != i and r is not None]
        new = mutate(rule, kind, others[0] if others else None)
        if new is None:
            return None
    return tuple(new if j == i else r for j, r in enumerate(rules))


def find_op(key: str) -> Any:
    module, name = key.split(":")
    return getattr(importlib.import_module(module), name)


def install(spec: str) -> None:
    """Install the mutant `module:name:argnum:kind`."""
    module, name, argnum, kind = spec.split(":")
    op = find_op(f"{module}:{name}")
    rules = mutant_rules(op, f"{module}:{name}", argnum, kind)
    if rules is None:
        raise SystemExit(f"mutant {spec} does not apply")
    set_rules(op, rules)


def pytest_configure(config) -> None:
    spec = os.environ.get(MUTANT_VARIABLE)
    if spec:
        install(spec)

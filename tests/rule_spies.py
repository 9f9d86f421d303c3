"""A spy on every VJP rule of the engine: which rules ran, with which cotangent dtypes."""

import functools

import numpy as np

import autodiff.numpy as anp
from autodiff import linalg


def every_op() -> dict:
    """Every op with rules in autodiff.numpy and autodiff.linalg, private helpers included
    (rules often run through them), each once."""
    ops = {}
    for module in (anp, linalg):
        for op in vars(module).values():
            if getattr(op, "vjp_rules", None) is not None:
                ops[id(op)] = op
    return ops


def spy_on_every_rule(monkeypatch) -> list:
    """Wrap every rule of every op so that it records (op name, dtype of the incoming
    cotangent, dtype of the cotangent it returns)."""
    seen = []

    # functools.wraps keeps each rule's signature: the settings a rule names are the ones
    # an op accepts on traced values.
    def spy(name, rule):
        @functools.wraps(rule)
        def spying(g, ans, *args, **params):
            result = rule(g, ans, *args, **params)
            seen.append((name, anp.unbox(g).dtype, np.result_type(anp.unbox(result))))
            return result
        return spying

    def spy_argnum(name, rule):
        @functools.wraps(rule)
        def spying(argnum, g, ans, *args, **params):
            result = rule(argnum, g, ans, *args, **params)
            seen.append((name, anp.unbox(g).dtype, np.result_type(anp.unbox(result))))
            return result
        return spying

    for op in every_op().values():
        rules = op.vjp_rules
        if type(rules) is tuple:
            wrapped = tuple(None if r is None else spy(op.__name__, r) for r in rules)
        else:
            wrapped = spy_argnum(op.__name__, rules)
        monkeypatch.setattr(op, "vjp_rules", wrapped)
    return seen

"""How an op's settings reach its rules, whatever form the caller used.

Ops follow NumPy's signatures, so a setting such as `axis` may come positionally
(`anp.sum(x, 1)`) or by keyword (`anp.sum(x, axis=1)`). Only the leading positional
arguments that have rules are data; when an op is traced, the settings after them are
passed by keyword under the names of the op's signature, so each rule sees one form.
A setting that no rule names (`dtype=`, `where=`, `out=`...) is refused before anything
runs, instead of being silently ignored by the backward pass.
"""

from __future__ import annotations

import builtins
import functools
import inspect
from collections.abc import Callable
from typing import Any


def settings_by_keyword(op: Callable, rules: Any, args: list, params: dict):
    """Pass settings given positionally (`anp.sum(x, 1)`) by keyword, as rules expect them,
    and refuse up front a setting the rules cannot differentiate (`out=`, `dtype=`...).
    `args` are the op's arguments."""
    if type(rules) is tuple and len(args) > len(rules):
        names, positional_only = _parameters(op.raw)
        data = builtins.max(len(rules), positional_only) if names else len(args)
        extra = dict(zip(names[data:], args[data:]))
        if len(extra) < len(args) - data or extra.keys() & params.keys():
            raise TypeError(f"autodiff: {op.__name__} got too many or repeated arguments")
        args, params = args[:data], {**extra, **params}
    accepted = _rule_keywords(rules)
    if accepted is not None and params.keys() <= accepted and "out" not in params:
        return args, params  # every setting is one the rules take: the common case
    for name, value in params.items():
        if value is not None and (name == "out" or (accepted is not None and name not in accepted)):
            raise refusal(op.__name__, name)
    if accepted is not None:  # settings left at None are NumPy's defaults: drop them
        params = {name: value for name, value in params.items() if name in accepted}
    return args, params


_ADVICE = {
    "dtype": "cast with .astype instead",
    "where": "select with anp.where instead",
}


def refusal(op_name: str, setting: str) -> TypeError:
    """The one error for a setting given to `op_name` on traced values that it cannot
    differentiate: `out=` would lose the gradient, the others have no rule."""
    if setting == "out":
        return TypeError(
            f"autodiff: {op_name}(..., out=) would write a traced value into an array, "
            f"losing its gradient; write `y = {op_name}(...)` instead"
        )
    advice = _ADVICE.get(setting, "leave it out")
    return TypeError(f"autodiff: {op_name} does not support {setting}= on traced values; {advice}")


def refuse_given(op_name: str, **settings: Any) -> None:
    """Refuse, on traced values, each of `settings` given as something other than None."""
    for setting, value in settings.items():
        if value is not None:
            raise refusal(op_name, setting)


def argument_name(fn: Callable, argnum: int) -> str | None:
    """The name of `fn`'s positional parameter number `argnum`, or None."""
    names, _ = _parameters(fn)
    return names[argnum] if argnum < len(names) else None


@functools.cache
def _parameters(fn: Callable) -> tuple[tuple, int]:
    """The names of `fn`'s parameters that can be given positionally, and how many of
    them are positional-only (those stay positional)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature: nothing can be named
        return (), 0
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return (tuple(p.name for p in positional),
            builtins.sum(p.kind is p.POSITIONAL_ONLY for p in positional))


@functools.cache
def _rule_keywords(rules: Any) -> frozenset | None:
    """The settings the rules accept by name; None when a rule takes any (`**params`)."""
    if type(rules) is not tuple:
        rules = (rules,)
    names: set = set()
    for rule in rules:
        if rule is None:
            continue
        for parameter in _signature(rule).parameters.values():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                return None
            names.add(parameter.name)
    return frozenset(names)


@functools.cache
def _signature(fn: Callable) -> inspect.Signature:
    return inspect.signature(fn)

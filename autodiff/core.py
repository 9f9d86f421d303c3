"""The tape and the reverse sweep. This module knows no particular operation.

A `Trace` is one differentiation in progress: a level (an increasing integer) and a tape,
the list of operations recorded while the function ran. Execution order is already a
topological order, so the backward pass walks the list in reverse: no toposort, no
recursion, and a chain of any length works.

Values being differentiated are wrapped in a `Box` that points at its trace and at the
tape entry that produced it. A `primitive` unwraps the boxes of the innermost (highest
level) trace among its arguments, computes on what is inside, and records one tape entry.
What is inside may itself be a box of an outer trace: the primitive is then applied again
one level down, which is how `grad(grad(f))` records the inner backward pass on the outer
tape without the two ever being confused.

Invariants:
- a tape entry is `(op, rules, parents, ans, args, params, calling)`: `parents` pairs each
  traced argument position with the tape index of the entry that produced it, `rules` are
  the op's `vjp_rules` when it ran, one per data argument (a variadic op's single rule
  bound to each position; settings after the data have none), `calling` says how the
  sweep calls them (see `_traced_call`); inputs are entries whose op is None;
- no complex value is ever recorded: complex numbers are refused, not half-differentiated;
- cotangents are summed out of place (`a + b`): a rule may return the very array it was
  given, so an in-place sum could corrupt another cotangent;
- every rule's result is checked against its argument's shape and dtype: where they
  differ, the op's `fit` (summing broadcast axes, casting) makes them agree, or a shape
  error names the op.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autodiff.settings import argument_name, settings_by_keyword

_levels = itertools.count(1)
_NO_PARAMS: dict = {}  # the settings of every input entry (tape entries are never changed)


class Trace:
    """One reverse-mode differentiation in progress: its level and its tape. `done` once
    the differentiated function has returned: its boxes may no longer be used."""

    __slots__ = ("level", "tape", "done")

    def __init__(self) -> None:
        self.level = next(_levels)
        self.tape: list[tuple] = []
        self.done = False

    def new_input(self, value: Any) -> Box:
        """Box `value` as an input of this trace (a tape entry with no parents)."""
        tape = self.tape
        tape.append((None, None, (), value, (), _NO_PARAMS, 0))
        box = _new(Box)  # as Box(value, self, index), without a call to __init__
        box.value, box.trace, box.index = value, self, len(tape) - 1
        return box

    def new_inputs(self, values: Sequence[Any]) -> list[Box]:
        """Box each of `values` as an input of this trace, in order."""
        return [self.new_input(value) for value in values]


class Box:
    """A value being differentiated: `value`, the `trace` recording it, its tape `index`.

    Arithmetic, indexing and the usual array attributes are attached by
    `autodiff.numpy`, so that boxes can stand in for arrays inside user code.
    """

    __slots__ = ("value", "trace", "index")

    def __init__(self, value: Any, trace: Trace, index: int) -> None:
        self.value = value
        self.trace = trace
        self.index = index

    def __repr__(self) -> str:
        return f"Box(level={self.trace.level}, value={self.value!r})"


def primitive(raw_fn: Callable) -> Callable:
    """Make `raw_fn` (a function on NumPy arrays) differentiable in its positional arguments.

    Give it rules with `defvjp`; they live in `op.vjp_rules`, read at every call, and
    `op.raw` is `raw_fn`. Called with no boxes among its arguments, the op calls `raw_fn`
    (directly for one or two arguments and no settings), so code that is not being
    differentiated pays little more than a type check per argument.
    """

    @functools.wraps(raw_fn)
    def op(x=_ABSENT, y=_ABSENT, /, *more, **params):
        # The hot path of every traced op: each line here costs on every call. The
        # commonest calls are recorded here, without the general loops of _recorded: one or
        # two arguments, boxes of one trace with plain values inside, constants that are
        # Python floats or ints (data, not settings, when the op has a rule for each
        # argument; real, so the result is real), no settings, one rule per argument (a
        # variadic op takes the general path). The two leading arguments are named so that
        # these calls need no tuple of arguments; every other call returns early.
        if more or params or x is _ABSENT:
            return _recorded(op, () if x is _ABSENT else (x,) if y is _ABSENT else (x, y, *more),
                             params)
        if y is _ABSENT:
            if type(x) is not Box:
                return raw_fn(x)  # nothing traced
            trace, x_value, rules = x.trace, x.value, op.vjp_rules
            if type(x_value) is Box or type(rules) is not tuple or not rules:
                return _recorded(op, (x,), params)
            parents, values, ans, calling = ((0, x.index),), (x_value,), raw_fn(x_value), 1
        else:
            if type(x) is Box:
                trace, x_value = x.trace, x.value
                if type(y) is Box:
                    y_value = y.value
                    if y.trace is not trace or type(x_value) is Box or type(y_value) is Box:
                        return _recorded(op, (x, y), params)
                    parents = ((0, x.index), (1, y.index))
                elif (type(y) is float or type(y) is int) and type(x_value) is not Box:
                    y_value, parents = y, ((0, x.index),)
                else:
                    return _recorded(op, (x, y), params)
            elif type(y) is not Box:
                return raw_fn(x, y)  # nothing traced
            elif (type(x) is float or type(x) is int) and type(y.value) is not Box:
                trace, x_value, y_value, parents = y.trace, x, y.value, ((1, y.index),)
            else:
                return _recorded(op, (x, y), params)
            rules = op.vjp_rules
            if type(rules) is not tuple or len(rules) < 2:
                return _recorded(op, (x, y), params)  # variadic, no rules, or a setting
            values, ans, calling = (x_value, y_value), raw_fn(x_value, y_value), 2
        tape = trace.tape  # as _recorded records, spelled out here to save a call
        tape.append((op, rules, parents, ans, values, params, calling))
        box = _new(Box)  # as Box(ans, trace, index), without a call to __init__
        box.value, box.trace, box.index = ans, trace, len(tape) - 1
        return box

    op.raw = raw_fn
    op.vjp_rules = None
    op.fit = None
    return op


_new = object.__new__
_ABSENT = object()  # an argument not given


def _recorded(op: Callable, args: tuple, params: dict) -> Any:
    """`op(*args, **params)` by the general path: boxed and recorded on the innermost trace
    among `args`, or `op.raw`'s plain result when nothing is traced."""
    trace = None
    for arg in args:
        if type(arg) is Box:
            if arg.trace.done:  # mixed with another trace's boxes: see _escaped_error
                raise _escaped_error()
            if trace is None or arg.trace.level > trace.level:
                trace = arg.trace
    if trace is None:
        return op.raw(*args, **params) if params else op.raw(*args)
    entry = _traced_call(op, trace, args, params)
    tape = trace.tape
    tape.append(entry)
    box = _new(Box)
    box.value, box.trace, box.index = entry[3], trace, len(tape) - 1
    return box


def _traced_call(op: Callable, trace: Trace, args: tuple, params: dict) -> tuple:
    """Call `op` on the values inside the boxes of `trace` among `args`; returns its tape
    entry, settings passed by keyword, a variadic op's rule told each argument's
    position."""
    rules = op.vjp_rules
    if rules is None:
        raise TypeError(
            f"autodiff: {op.__name__} has no gradient rules; give it some with defvjp, "
            "or call it on constants only"
        )
    values = list(args)
    parents = []
    nested = constants = False
    argnum = 0
    for arg in args:
        if type(arg) is not Box:
            constants = True
        elif arg.trace is trace:
            value = values[argnum] = arg.value
            parents.append((argnum, arg.index))
            if type(value) is Box:
                nested = True
        else:
            nested = True
        argnum += 1
    # Arguments past the rules are settings, passed on by keyword: only then, or with
    # keyword settings, do they need sorting out. A traced value there, of this trace or
    # an outer one, would have no gradient (the sweep could only leave it out): refused.
    if type(rules) is tuple and len(args) > len(rules):
        for argnum in range(len(rules), len(args)):
            if type(args[argnum]) is Box:
                raise _traced_setting(op, argnum)
        values, params = settings_by_keyword(op, rules, values, params)
    elif params:
        values, params = settings_by_keyword(op, rules, values, params)
    if type(rules) is not tuple:  # variadic: `rule(argnum, g, ans, *args, **params)`
        rules = tuple(functools.partial(rules, argnum) for argnum in range(len(values)))
    # How the sweep calls the rules (the entry's `calling`): 1 or 2, `rule(g, ans, *args)`
    # with that many arguments spelled out (cheaper than the unpacking); 0,
    # `rule(g, ans, *args, **params)`.
    calling = 0 if params or len(values) > 2 else len(values)
    if nested:
        return op, rules, parents, op(*values, **params), values, params, calling
    ans = op.raw(*values, **params) if params else op.raw(*values)
    # Traced values are real (inputs are checked), so a complex result can only come
    # from a complex constant among the arguments.
    if constants:
        try:
            complex_result = ans.dtype.kind == "c"
        except AttributeError:  # a Python number
            complex_result = isinstance(ans, complex)
        if complex_result:
            raise TypeError(
                f"autodiff: {op.__name__} produced a complex value from a traced one; "
                "complex numbers are not supported: differentiate the real and imaginary "
                "parts as separate float arrays"
            )
    return op, rules, parents, ans, values, params, calling


def _traced_setting(op: Callable, argnum: int) -> TypeError:
    name = argument_name(op.raw, argnum)
    return TypeError(
        f"autodiff: {op.__name__} got a traced value as argument {argnum}"
        f"{f' ({name})' if name else ''}, where it has no gradient rule: a setting takes a "
        "constant; for data, give the op a rule there with defvjp (None where it is not "
        "differentiable)"
    )


def defvjp(op: Callable, *rules: Callable | None, fit: Callable | None = None) -> None:
    """Give `op` one VJP rule per positional argument (`None`: not differentiable there).

    A rule is `rule(g, ans, *args, **params) -> cotangent of that argument`, where `g` is
    the cotangent of the output `ans`. Rules are written with `autodiff.numpy` ops so that
    they can themselves be differentiated. Settings reach rules by keyword, named as in
    the op's signature; a setting no rule names is refused on traced values. Positional
    arguments after the rules are settings: a traced value there is refused too, as it
    would have no gradient.

    The sweep checks every rule's result against its argument's shape and dtype. With
    `fit(cotangent, arg)`, a result that differs is passed through it (an op that
    broadcasts gives `autodiff.numpy.unbroadcast`, so its rules may return the cotangent
    in the result's shape); without it, a result of another shape is an error.
    """
    op.vjp_rules = tuple(rules)
    op.fit = fit


def defvjp_argnum(op: Callable, rule: Callable) -> None:
    """Give a variadic `op` a single rule `rule(argnum, g, ans, *args, **params)`."""
    op.vjp_rules = rule


def nondifferentiable(raw_fn: Callable) -> Callable:
    """Wrap `raw_fn` so it sees plain values: its result is a constant, nothing is recorded."""

    @functools.wraps(raw_fn)
    def op(*args, **params):
        if len(args) == 2 and not params and type(args[0]) is Box:  # a comparison: x > 0
            x, y = args
            return raw_fn(unbox(x), unbox(y) if type(y) is Box else y)
        for arg in args:
            if type(arg) is Box:
                return raw_fn(*[unbox(a) if type(a) is Box else a for a in args], **params)
        return raw_fn(*args, **params) if params else raw_fn(*args)

    op.raw = raw_fn
    return op


def unbox(x: Any) -> Any:
    """The plain value inside `x`, through every level of boxing."""
    while type(x) is Box:
        x = x.value
    return x


def read_only(value: Any) -> Any:
    """A read-only view of an array a tape holds (its rules read that memory: writing
    into it would change the gradients); anything else as it is."""
    if type(value) is np.ndarray:
        value = value.view()
        value.flags.writeable = False
    return value


def value_at(x: Any, trace: Trace) -> Any:
    """`x` with the boxing of `trace` removed (boxes of outer traces are kept); an error
    for a box of a finished trace."""
    if type(x) is Box:
        if x.trace is trace:
            return x.value
        if x.trace.done:
            raise _escaped_error()
    return x


def _escaped_error() -> TypeError:
    """The error for a box of a finished transform. Such a box was kept past the call of
    the function being differentiated (in a list, a global, a closure): recorded on a
    tape that no sweep will read again, it has no gradient, so using it would give a
    wrong one. Ops on it alone are still recorded, on the dead tape: the error comes
    when it meets a live trace's boxes, or leaves a transform as an output."""
    return TypeError(
        "autodiff: a traced value of a transform that has already returned (a grad, vjp "
        "or jacobian of an inner function) was used: it was kept past that call, in a "
        "list, a global or a closure, where it has no gradient. Return it from that "
        "function instead (has_aux=True), or keep anp.stop_gradient of it"
    )


def shape_of(x: Any) -> tuple:
    """The shape of an array, a Box or a Python number."""
    shape = getattr(x, "shape", None)
    return np.shape(x) if shape is None else shape


def dtype_of(x: Any) -> np.dtype:
    """The dtype of an array, a Box or a Python number (as NumPy would make it)."""
    dtype = getattr(x, "dtype", None)
    return np.result_type(x) if dtype is None else dtype


def _shape_error(op: Callable, argnum: int, cotangent: Any, arg: Any) -> ValueError:
    return ValueError(
        f"autodiff: the gradient rule of {op.__name__} returned shape {shape_of(cotangent)} "
        f"for argument {argnum}, whose shape is {shape_of(arg)}"
    )


def _fitted(op: Callable, argnum: int, cotangent: Any, arg: Any) -> Any:
    """A rule's result in its argument's shape and dtype where the op says how (its `fit`:
    for an op that broadcasts, the sum over the broadcast axes); a result of any other
    shape is the rule's error."""
    fit = getattr(op, "fit", None)
    if fit is not None:
        try:
            fitted = fit(cotangent, arg)
        except ValueError:  # shapes that do not broadcast to each other
            raise _shape_error(op, argnum, cotangent, arg) from None
        if shape_of(fitted) == shape_of(arg):
            return fitted
    if shape_of(cotangent) != shape_of(arg):
        raise _shape_error(op, argnum, cotangent, arg)
    return cotangent


def backward(trace: Trace, seeds: Sequence[tuple[int, Any]], inputs: Sequence[int]) -> list:
    """Sweep the tape in reverse from `(tape index, cotangent)` seeds.

    Returns the cotangent of each input index, or None where the output did not depend on
    it. The tape is left untouched, so a vjp may be swept several times.
    """
    tape = trace.tape
    cotangents: list[Any] = [None] * len(tape)
    last = 0
    for index, g in seeds:
        cotangents[index] = g if cotangents[index] is None else cotangents[index] + g
        last = max(last, index)
    for index in range(last, -1, -1):
        g = cotangents[index]
        if g is None:
            continue
        op, rules, parents, ans, args, params, calling = tape[index]
        if op is None:
            continue  # an input: its cotangent is a result
        cotangents[index] = None  # no longer needed: free it as the sweep goes
        for argnum, parent in parents:
            rule = rules[argnum]  # every traced argument has one (see _traced_call)
            if rule is None:
                continue  # not differentiable in this argument: a constant
            if calling == 2:
                cotangent = rule(g, ans, args[0], args[1])
            elif calling == 1:
                cotangent = rule(g, ans, args[0])
            else:
                cotangent = rule(g, ans, *args, **params)
            arg = args[argnum]
            try:
                fits = cotangent.shape == arg.shape and cotangent.dtype is arg.dtype
            except AttributeError:  # a Python scalar
                fits = False
            if not fits:
                cotangent = _fitted(op, argnum, cotangent, arg)
            cotangents[parent] = cotangent if cotangents[parent] is None else (
                cotangents[parent] + cotangent)
    return [cotangents[i] for i in inputs]

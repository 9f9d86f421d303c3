"""Optimizers as `(init, update)` pairs over parameter pytrees.

`state = init(params)`; `params, state = update(params, grads, state, lr)`. The state
is a pytree of arrays holding the step count, so it can be checkpointed like parameters.
Updates are pure: new arrays, nothing mutated. Everything keeps the parameters' dtype.
Weight decay is decoupled (AdamW style): `w -= lr * weight_decay * w` on every leaf whose
name is "w" (biases are not decayed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from autodiff import tree_flatten, tree_map, tree_unflatten
from nets.errors import ConfigError


class Optimizer(NamedTuple):
    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any, float], tuple[Any, Any]]


def _decay_mask(params: Any) -> Any:
    """True for leaves stored under the key "w" (weights), False elsewhere (biases)."""
    if isinstance(params, dict):
        return {k: (True if k == "w" and not isinstance(v, (dict, list, tuple)) else
                    _decay_mask(v)) for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return type(params)(_decay_mask(v) for v in params)
    return False


def _decayed(params: Any, lr: float, weight_decay: float) -> Any:
    if not weight_decay:
        return params
    return tree_map(lambda p, m: p - (lr * weight_decay) * p if m else p,
                    params, _decay_mask(params))


def _cast(value: float, like: np.ndarray) -> Any:
    return like.dtype.type(value)


def sgd(weight_decay: float = 0.0) -> Optimizer:
    """Plain gradient descent: p <- p - lr * g."""

    def init(params: Any) -> dict:
        return {"step": np.zeros((), np.int64)}

    def update(params, grads, state, lr):
        params = _decayed(params, lr, weight_decay)
        new = tree_map(lambda p, g: p - _cast(lr, p) * g, params, grads)
        return new, {"step": state["step"] + 1}

    return Optimizer(init, update)


def momentum(beta: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0) -> Optimizer:
    """Heavy-ball momentum: v <- beta v + g; p <- p - lr v (Nesterov: p - lr (g + beta v))."""

    def init(params: Any) -> dict:
        return {"step": np.zeros((), np.int64), "velocity": tree_map(np.zeros_like, params)}

    def update(params, grads, state, lr):
        params = _decayed(params, lr, weight_decay)
        velocity = tree_map(lambda v, g: _cast(beta, v) * v + g, state["velocity"], grads)
        if nesterov:
            step = tree_map(lambda v, g: g + _cast(beta, v) * v, velocity, grads)
        else:
            step = velocity
        new = tree_map(lambda p, s: p - _cast(lr, p) * s, params, step)
        return new, {"step": state["step"] + 1, "velocity": velocity}

    return Optimizer(init, update)


def adam(
    beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0
) -> Optimizer:
    """Adam (Kingma and Ba), with bias-corrected moment estimates, in the paper's own
    efficient form (end of its section 2, and TensorFlow's): both corrections go into the
    step size, lr sqrt(1 - beta2^t) / (1 - beta1^t), and eps is added to sqrt(v) before
    the correction. So eps acts as eps / sqrt(1 - beta2^t) would in the textbook form
    (PyTorch's): larger in the first steps (about 3e-7 at step 1 for 1e-8), the same
    once t is large. The two agree wherever sqrt(v) is well above eps."""

    def init(params: Any) -> dict:
        return {"step": np.zeros((), np.int64),
                "m": tree_map(np.zeros_like, params), "v": tree_map(np.zeros_like, params)}

    def update(params, grads, state, lr):
        params = _decayed(params, lr, weight_decay)
        step = int(state["step"]) + 1
        # Folding both bias corrections into the step size saves two passes over the arrays
        # (and makes eps act on the uncorrected sqrt(v): see the docstring).
        scale = lr * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        leaves_p, treedef = tree_flatten(params)
        leaves = list(zip(leaves_p, tree_flatten(grads)[0], tree_flatten(state["m"])[0],
                          tree_flatten(state["v"])[0]))
        new_p, new_m, new_v = [], [], []
        for p, g, m, v in leaves:
            t = p.dtype.type
            # Each line writes into an array made for it: fewer passes over memory than the
            # textbook expressions, the inputs are never modified, and a 0-d leaf stays an
            # array (NumPy's arithmetic on one gives a scalar, which out= cannot take).
            out_m = np.multiply(m, t(beta1), out=np.empty_like(m))
            out_m += t(1 - beta1) * g
            out_v = np.multiply(v, t(beta2), out=np.empty_like(v))
            out_v += t(1 - beta2) * (g * g)
            delta = np.sqrt(out_v, out=np.empty_like(out_v))
            delta += t(eps)
            np.divide(out_m, delta, out=delta)
            delta *= t(scale)
            new_p.append(np.subtract(p, delta, out=delta))
            new_m.append(out_m)
            new_v.append(out_v)
        return tree_unflatten(treedef, new_p), {
            "step": np.asarray(step, np.int64),
            "m": tree_unflatten(treedef, new_m),
            "v": tree_unflatten(treedef, new_v),
        }

    return Optimizer(init, update)


def nesterov(weight_decay: float = 0.0) -> Optimizer:
    """Momentum with the Nesterov look-ahead."""
    return momentum(nesterov=True, weight_decay=weight_decay)


OPTIMIZERS = {"sgd": sgd, "momentum": momentum, "nesterov": nesterov, "adam": adam}


def make_optimizer(name: str, weight_decay: float = 0.0) -> Optimizer:
    """The optimizer called `name` (sgd, momentum, nesterov, adam)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    if weight_decay < 0:
        raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")
    return OPTIMIZERS[name](weight_decay=weight_decay)


# ------------------------------------------------------------------- schedules

SCHEDULES = ("constant", "step", "cosine")


def learning_rate(
    schedule: str, base: float, epoch: float, epochs: int, step_every: int = 0,
    gamma: float = 0.1,
) -> float:
    """The learning rate `epoch` epochs into a run of `epochs` (0-based; fractions are
    steps inside an epoch: the training loop asks once per step).

    constant: base. step: base * gamma ** (whole epochs // step_every) (step_every defaults
    to a third of the run). cosine: from base down towards 0 over the run, half a cosine
    period, a little lower at every step.
    """
    if schedule == "constant":
        return base
    if schedule == "step":
        every = step_every or max(1, math.ceil(epochs / 3))
        return base * gamma ** (int(epoch) // every)
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")

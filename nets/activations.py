"""Activation functions, compositions of engine ops (log_softmax is one of them).

All work on any shape and keep the input dtype. `softmax` and `log_softmax` act along
the last axis. Every function here is stable for inputs of any magnitude.
"""

from __future__ import annotations

from typing import Any

import autodiff.numpy as anp


def relu(x: Any) -> Any:
    """max(x, 0); its gradient is 1 where x > 0, 0 where x < 0 and 1/2 at exactly 0."""
    return anp.maximum(x, 0)


def sigmoid(x: Any) -> Any:
    """1 / (1 + e^-x), computed as (tanh(x/2) + 1) / 2, which cannot overflow for any x."""
    return 0.5 * (anp.tanh(0.5 * x) + 1)


def softplus(x: Any) -> Any:
    """log(1 + e^x) = log(e^0 + e^x), as logaddexp(x, 0): no overflow for any x, and its
    derivatives (sigmoid, then sigmoid (1 - sigmoid)) are right at 0 too."""
    return anp.logaddexp(x, 0.0)


def log_sigmoid(x: Any) -> Any:
    """log(sigmoid(x)) = -softplus(-x): finite where sigmoid(x) rounds to 0."""
    return -softplus(-x)


def tanh(x: Any) -> Any:
    """The hyperbolic tangent."""
    return anp.tanh(x)


def log_softmax(x: Any) -> Any:
    """log(softmax(x)) along the last axis: the engine's `log_softmax` op, which shifts
    each row by its largest entry (no overflow, no log(0), no digits of log(n) lost to a
    huge logsumexp) and has a rule of its own (one tape entry, not four)."""
    return anp.log_softmax(x, axis=-1)


def softmax(x: Any) -> Any:
    """Probabilities along the last axis; each row sums to 1."""
    return anp.exp(log_softmax(x))


ACTIVATIONS = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh}

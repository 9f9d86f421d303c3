"""Cost functions: `cost(logits, targets) -> scalar`, the mean over the batch.

`logits` is (batch, classes), the network's raw outputs; `targets` is (batch, classes),
one-hot. Any function with this signature can be passed to the training loop, so a new
cost needs no other change. Costs are looked up by name in `COSTS`; `PREDICTIONS` says how
each turns logits into class probabilities for reporting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import autodiff.numpy as anp
from nets.activations import log_sigmoid, log_softmax, sigmoid, softmax


def cross_entropy(logits: Any, targets: Any) -> Any:
    """Categorical cross-entropy of softmax(logits): -mean_n sum_k y_nk log p_nk.

    Its gradient with respect to the logits is (softmax(logits) - targets) / batch.
    """
    return -anp.sum(targets * log_softmax(logits)) / logits.shape[0]


def mse(logits: Any, targets: Any) -> Any:
    """The original notebook's cost: sigmoid outputs, squared error summed over the classes,
    averaged over the examples."""
    error = sigmoid(logits) - targets
    return anp.sum(error * error) / logits.shape[0]


COSTS: dict[str, Callable[[Any, Any], Any]] = {"cross-entropy": cross_entropy, "mse": mse}

def sigmoid_shares(logits: Any) -> Any:
    """The sigmoid outputs divided by their sum along the last axis, computed in log space
    as softmax(log_sigmoid(logits)): rows whose sigmoids all round to 0 still sum to 1."""
    return softmax(log_sigmoid(logits))


# How each cost's logits become the probabilities reported to users: softmax for
# cross-entropy; for mse the sigmoid outputs, normalised so they sum to one.
PREDICTIONS: dict[str, Callable[[Any], Any]] = {"cross-entropy": softmax, "mse": sigmoid_shares}

"""The multi-layer perceptron: parameters as data, the network as a function.

Params are a list with one dict per layer, `{"w": (fan_in, fan_out), "b": (fan_out,)}`.
`mlp(params, x)` maps `(batch, sizes[0])` inputs to `(batch, sizes[-1])` logits: the
activation after every layer but the last, which the cost function interprets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nets.activations import ACTIVATIONS
from nets.errors import ConfigError

INITS = ("he", "xavier", "normal")


def init_mlp(
    rng: np.random.Generator,
    sizes: Sequence[int],
    init: str = "he",
    scale: float = 0.01,
    dtype: Any = np.float32,
) -> list[dict[str, np.ndarray]]:
    """Random weights and zero biases for layer sizes like `[784, 256, 128, 10]`.

    `init`: "he" (N(0, 2/fan_in), for ReLU), "xavier" (N(0, 2/(fan_in + fan_out)), for
    tanh and sigmoid) or "normal" (N(0, 1) * scale; the original notebook used 0.01).
    The sizes are not checked here: `nets.config.Settings.check` does that, once.
    """
    sizes = [int(n) for n in sizes]
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        if init == "he":
            std = np.sqrt(2.0 / fan_in)
        elif init == "xavier":
            std = np.sqrt(2.0 / (fan_in + fan_out))
        else:
            std = scale
        w = rng.standard_normal((fan_in, fan_out)) * std
        params.append({"w": w.astype(dtype), "b": np.zeros(fan_out, dtype=dtype)})
    return params


def layer_sizes(params: list[dict[str, Any]]) -> list[int]:
    """The sizes `[inputs, hidden..., outputs]` that `params` was built with."""
    return [params[0]["w"].shape[0]] + [layer["w"].shape[1] for layer in params]


def mlp(params: list[dict[str, Any]], x: Any, activation: str = "relu") -> Any:
    """Logits `(batch, outputs)` for inputs `x` of shape `(batch, inputs)`."""
    # This reads as plain NumPy, and it is, until training: inside value_and_grad each
    # params leaf is an autodiff Box, so `@` and `+` below call Box.__matmul__ and
    # Box.__add__ (attached in autodiff/numpy.py, "Box operators"), which record each
    # op on the tape; the activations record theirs through autodiff.numpy.
    act = ACTIVATIONS[activation]
    for layer in params[:-1]:
        x = act(x @ layer["w"] + layer["b"])
    last = params[-1]
    return x @ last["w"] + last["b"]

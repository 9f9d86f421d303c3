"""The model kinds train.py knows, described by JSON-able configs so that a saved model can
be rebuilt from its metadata alone.

A `Model` pairs a config with `apply(params, x) -> logits`, where `x` is (batch, features)
float and the logits are (batch, classes). `init(rng)` draws fresh parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autodiff import tree_flatten
from nets.activations import ACTIVATIONS
from nets.errors import ConfigError
from nets.mlp import check_sizes, init_mlp, mlp

MODEL_KINDS = ("mlp", "cnn")


@dataclass(frozen=True)
class Model:
    """A model kind with its settings: `config` is what the metadata stores."""

    kind: str
    config: dict
    apply: Callable[[Any, Any], Any]
    init: Callable[[np.random.Generator], Any]

    @property
    def input_size(self) -> int:
        return int(self.config["input_size"])

    @property
    def num_classes(self) -> int:
        return int(self.config["num_classes"])


def make_mlp(
    layer_sizes: list[int], activation: str = "relu", init: str = "he", init_scale: float = 0.01
) -> Model:
    """An MLP with the given layer sizes, hidden activation and initialisation."""
    sizes = check_sizes(layer_sizes)
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    config = {"layer_sizes": sizes, "activation": activation, "init": init,
              "init_scale": init_scale, "input_size": sizes[0], "num_classes": sizes[-1]}

    def apply(params: Any, x: Any) -> Any:
        return mlp(params, x, activation)

    def init_params(rng: np.random.Generator) -> Any:
        return init_mlp(rng, sizes, init=init, scale=init_scale)

    return Model("mlp", config, apply, init_params)


def make_cnn(
    input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
    channels: tuple[int, ...] = (32, 64), hidden: int = 128, kernel_size: int = 3,
) -> Model:
    """The convolutional network of nets.cnn for images of `input_shape` (C, H, W)."""
    from nets.cnn import cnn, init_cnn

    settings = {"input_shape": [int(n) for n in input_shape], "num_classes": int(num_classes),
                "channels": [int(c) for c in channels], "hidden": int(hidden),
                "kernel_size": int(kernel_size)}
    config = {**settings, "input_size": int(np.prod(input_shape))}

    def apply(params: Any, x: Any) -> Any:
        return cnn(params, x)

    def init_params(rng: np.random.Generator) -> Any:
        return init_cnn(rng, **{**settings, "input_shape": tuple(settings["input_shape"])})

    return Model("cnn", config, apply, init_params)


def model_from_config(kind: str, config: dict) -> Model:
    """Rebuild a model from the kind and config stored in a model file's metadata."""
    if kind == "mlp":
        return make_mlp(config["layer_sizes"], config.get("activation", "relu"),
                        config.get("init", "he"), config.get("init_scale", 0.01))
    if kind == "cnn":
        return make_cnn(config["input_shape"], config["num_classes"], config["channels"],
                        config["hidden"], config["kernel_size"])
    raise ConfigError(f"unknown model kind {kind!r}; this program knows {', '.join(MODEL_KINDS)}")


def check_params(model: Model, params: Any) -> None:
    """Raise ConfigError unless `params` has exactly the structure, shapes and float dtypes
    that `model` builds."""
    expected_leaves, expected_def = tree_flatten(model.init(np.random.default_rng(0)))
    leaves, treedef = tree_flatten(params)
    if treedef != expected_def:
        raise ConfigError(f"the parameters are laid out as {treedef!r}, but a {model.kind} "
                          f"with these settings has {expected_def!r}")
    for position, (leaf, want) in enumerate(zip(leaves, expected_leaves)):
        if not isinstance(leaf, np.ndarray) or leaf.shape != want.shape or leaf.dtype.kind != "f":
            shape = getattr(leaf, "shape", type(leaf).__name__)
            raise ConfigError(f"parameter {position} has shape {shape}, but a {model.kind} with "
                              f"these settings needs a float array of shape {want.shape}")
        if not np.all(np.isfinite(leaf)):
            raise ConfigError(f"parameter {position} contains NaN or infinite values")

"""The model kinds: build a network from the settings and check parameters against it.

A `Model` pairs `apply(params, x) -> logits`, where `x` is (batch, features) float and the
logits are (batch, classes), with `init(rng)`, which draws fresh parameters. `build_model`
makes one from a `nets.config.Settings` and the data's image shape and class count: that
is all a model file needs to store to rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from autodiff import tree_flatten
from autodiff.tree import tree_paths
from nets.errors import ConfigError
from nets.mlp import init_mlp, mlp

if TYPE_CHECKING:
    from nets.config import Settings

MODEL_KINDS = ("mlp", "cnn")


@dataclass(frozen=True)
class Model:
    """A network of one kind with its sizes fixed."""

    kind: str
    apply: Callable[[Any, Any], Any]
    init: Callable[[np.random.Generator], Any]
    input_size: int
    num_classes: int


def make_mlp(
    layer_sizes: list[int], activation: str = "relu", init: str = "he", init_scale: float = 0.01
) -> Model:
    """An MLP with the given layer sizes, hidden activation and initialisation."""
    sizes = [int(n) for n in layer_sizes]

    def apply(params: Any, x: Any) -> Any:
        return mlp(params, x, activation)

    def init_params(rng: np.random.Generator) -> Any:
        return init_mlp(rng, sizes, init=init, scale=init_scale)

    return Model("mlp", apply, init_params, sizes[0], sizes[-1])


def make_cnn(input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10) -> Model:
    """The convolutional network of nets.cnn for images of `input_shape` (C, H, W)."""
    from nets.cnn import cnn, init_cnn

    def init_params(rng: np.random.Generator) -> Any:
        return init_cnn(rng, input_shape=tuple(input_shape), num_classes=num_classes)

    return Model("cnn", cnn, init_params, int(np.prod(input_shape)), int(num_classes))


def build_model(settings: Settings, image_shape: tuple[int, ...] = (28, 28),
                num_classes: int = 10) -> Model:
    """The model `settings` describe, for images of `image_shape` (H, W) and `num_classes`."""
    if settings.model == "cnn":
        return make_cnn((1, *image_shape), num_classes)
    return make_mlp(list(settings.layers), settings.activation, settings.init,
                    settings.init_scale)


def check_params(model: Model, params: Any) -> None:
    """Raise ConfigError unless `params` has exactly the structure, shapes and float dtypes
    that `model` builds, with finite values: the one structural check of loaded params."""
    expected_leaves, expected_def = tree_flatten(model.init(np.random.default_rng(0)))
    leaves, treedef = tree_flatten(params)
    if treedef != expected_def:
        raise ConfigError(f"the parameters are laid out as {treedef!r}, but a {model.kind} "
                          f"with these settings has {expected_def!r}")
    for path, leaf, want in zip(tree_paths(treedef), leaves, expected_leaves):
        where = "/".join(map(str, path))
        if not isinstance(leaf, np.ndarray) or leaf.shape != want.shape or leaf.dtype.kind != "f":
            shape = getattr(leaf, "shape", type(leaf).__name__)
            raise ConfigError(f"parameter {where} has shape {shape}, but a {model.kind} with "
                              f"these settings needs a float array of shape {want.shape}")
        if not np.all(np.isfinite(leaf)):
            raise ConfigError(f"parameter {where} contains NaN or infinite values")

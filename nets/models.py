"""The model kinds: build a network from the settings and check parameters against it.

A `Model` pairs `apply(params, x) -> logits`, where `x` is (batch, features) float and the
logits are (batch, classes), with `init(rng)`, which draws fresh parameters, and
`shapes()`, the same pytree with zero-memory stand-ins (`np.broadcast_to`) for the arrays:
what `check_params` compares a loaded file against, so that a file declaring a huge
network is refused before anything of that size is allocated. `training_memory` estimates
what training a configuration takes, for the same reason. `build_model`
makes one from a `nets.config.Settings` and the data's image shape and class count: that
is all a model file needs to store to rebuild it. `shard_rows` says how to cut a
training batch into shards whose gradients are computed on separate threads.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from autodiff import parallel, tree_flatten
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
    shapes: Callable[[], Any]


def _stand_in(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of `shape` that takes no memory: the stand-in for a parameter."""
    return np.broadcast_to(np.float32(0), shape)


def mlp_shapes(sizes: list[int]) -> list[dict[str, np.ndarray]]:
    """`init_mlp`'s pytree, with stand-ins for the arrays."""
    return [{"w": _stand_in((a, b)), "b": _stand_in((b,))} for a, b in zip(sizes, sizes[1:])]


def cnn_shapes(input_shape: tuple[int, int, int], num_classes: int,
               channels: tuple[int, ...] = (32, 64), hidden: int = 128,
               kernel_size: int = 3) -> dict[str, list[dict[str, np.ndarray]]]:
    """`nets.cnn.init_cnn`'s pytree, with stand-ins."""
    from nets.cnn import POOL

    in_c, h, w = input_shape
    if min(h, w) < POOL ** len(channels):
        raise ConfigError(f"a {h}x{w} image is too small for {len(channels)} 2x2 poolings")
    conv = []
    for out_c in channels:
        conv.append({"w": _stand_in((out_c, in_c, kernel_size, kernel_size)),
                     "b": _stand_in((out_c,))})
        in_c, h, w = out_c, h // POOL, w // POOL
    dense = [(in_c * h * w, hidden), (hidden, num_classes)]
    return {"conv": conv, "dense": [{"w": _stand_in((a, b)), "b": _stand_in((b,))}
                                    for a, b in dense]}


def make_mlp(
    layer_sizes: list[int], activation: str = "relu", init: str = "he", init_scale: float = 0.01
) -> Model:
    """An MLP with the given layer sizes, hidden activation and initialisation."""
    sizes = [int(n) for n in layer_sizes]

    def apply(params: Any, x: Any) -> Any:
        return mlp(params, x, activation)

    def init_params(rng: np.random.Generator) -> Any:
        return init_mlp(rng, sizes, init=init, scale=init_scale)

    return Model("mlp", apply, init_params, sizes[0], sizes[-1], lambda: mlp_shapes(sizes))


def make_cnn(input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
             channels: tuple[int, ...] = (32, 64)) -> Model:
    """The convolutional network of nets.cnn for images of `input_shape` (C, H, W), one
    conv block per entry of `channels` (its output channels)."""
    from nets.cnn import cnn, init_cnn

    channels = tuple(int(c) for c in channels)

    def init_params(rng: np.random.Generator) -> Any:
        return init_cnn(rng, input_shape=tuple(input_shape), num_classes=num_classes,
                        channels=channels)

    return Model("cnn", cnn, init_params, int(np.prod(input_shape)), int(num_classes),
                 lambda: cnn_shapes(tuple(input_shape), int(num_classes), channels))


def build_model(settings: Settings, image_shape: tuple[int, ...] = (28, 28),
                num_classes: int = 10) -> Model:
    """The model `settings` describe, for images of `image_shape` (H, W) and `num_classes`."""
    if settings.model == "cnn":
        return make_cnn((1, *image_shape), num_classes, settings.channels)
    return make_mlp(list(settings.layers), settings.activation, settings.init,
                    settings.init_scale)


def check_params(model: Model, params: Any) -> None:
    """Raise ConfigError unless `params` has exactly the structure, shapes and float dtypes
    that `model` builds, with finite values: the one structural check of loaded params."""
    expected_leaves, expected_def = tree_flatten(model.shapes())
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


# Forward passes over many examples (validation, test, saved models) go in batches of
# this many rows, shared out among the engine's threads: measured on two cores, the
# CNN's logits for 10,000 images took 0.35 s in batches of 2,000 and 0.23 s in batches
# of 128; the MLP's 0.026 s and 0.022 s.
EVAL_BATCH = 128


def logits_in_batches(apply: Callable[[Any, Any], Any], params: Any, x: np.ndarray,
                      num_classes: int, batch: int = EVAL_BATCH) -> np.ndarray:
    """`apply(params, x)` as one (n, num_classes) array, computed `batch` rows at a time
    on the engine's threads (autodiff.parallel.run)."""
    parts = parallel.run([functools.partial(apply, params, x[i:i + batch])
                          for i in range(0, len(x), batch)])
    if not parts:
        return np.zeros((0, num_classes), dtype=x.dtype)
    return np.concatenate([np.asarray(part) for part in parts])


# Floats kept per example and layer output while training: the forward value, the
# gradient flowing back, and the optimizer's temporaries (measured: see training_memory).
_ACTIVATION_COPIES = 4
# Copies of the parameters while training: params, gradients, Adam's two moments, the
# new params of the update and the best params of early stopping.
_PARAMETER_COPIES = 6


def activation_floats(settings: Settings, image_shape: tuple[int, int],
                      num_classes: int) -> int:
    """Floats one example's forward pass keeps for the backward one: every layer's output
    and, for the CNN, each convolution's im2col matrix. From the sizes alone."""
    if settings.model != "cnn":
        return sum(settings.layers)
    from nets.cnn import POOL

    shapes = build_model(settings, image_shape, num_classes).shapes()
    c, h, w = 1, *image_shape
    floats = c * h * w
    for layer in shapes["conv"]:
        out_c, in_c, k, _ = layer["w"].shape
        floats += in_c * k * k * h * w + out_c * h * w  # im2col columns, conv output
        c, h, w = out_c, h // POOL, w // POOL
        floats += c * h * w
    return floats + sum(layer["w"].shape[1] for layer in shapes["dense"])


def training_memory(settings: Settings, image_shape: tuple[int, int], num_classes: int,
                    examples: int) -> dict[str, int]:
    """An upper estimate of the bytes training takes: {"parameters", "activations"}.

    Computed from the sizes alone (nothing is allocated), so that a configuration that
    cannot fit (`--layers 784,100000000,10`, the CNN with a full batch of 55,000 images)
    is refused in one line before it starts: `activation_floats` per example, times
    _ACTIVATION_COPIES; float32 throughout.
    """
    batch = settings.batch_size or examples
    model = build_model(settings, image_shape, num_classes)
    count = sum(int(np.prod(leaf.shape, dtype=object)) for leaf in tree_flatten(model.shapes())[0])
    per_example = activation_floats(settings, image_shape, num_classes)
    evaluated = min(EVAL_BATCH, examples)  # validation and test batches, forward only
    return {"parameters": 4 * _PARAMETER_COPIES * count,
            "activations": 4 * per_example * max(_ACTIVATION_COPIES * batch, evaluated)}


# A training batch's gradient is computed shard by shard (nets.training.train), this many
# shards whatever the thread count, so that the bits never depend on it. Measured on two
# cores (`python bench/shards.py`, and with SHARD_COUNT changed), a CNN step on 128
# images took 11.7 ms as two shards on two threads, 13.1 ms as four and 14.7 ms as
# eight (each shard pays the tape's Python bookkeeping again), and 15.7 ms whole with
# the large products shared out.
SHARD_COUNT = 2


def shard_rows(settings: Settings, examples: int) -> int:
    """The most rows a shard of a training batch holds: a full batch makes SHARD_COUNT
    shards. From the sizes alone, so a run resumed anywhere cuts its batches the same
    way."""
    batch = settings.batch_size or examples
    return max(1, math.ceil(batch / SHARD_COUNT))

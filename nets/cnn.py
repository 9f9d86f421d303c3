"""A small convolutional network for digits: parameters as data, the network as a function.

Architecture (for the defaults): conv 3x3, 32 channels (padding 1) -> relu -> max pool 2
-> conv 3x3, 64 -> relu -> max pool 2 -> flatten -> dense 128 -> relu ->
dense 10 logits.

Params are a dict `{"conv": [{"w": (C_out, C_in, k, k), "b": (C_out,)}, ...],
"dense": [{"w": (fan_in, fan_out), "b": (fan_out,)}, ...]}`: the dense layers use the
MLP's layout. `cnn_config` reads the architecture back from the shapes, for the layer
summary and for error messages that name the image size the params were built for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import autodiff.numpy as anp
from autodiff.conv import conv2d, flatten, max_pool2d, to_layout
from nets.activations import relu
from nets.errors import ConfigError

POOL = 2  # every conv block ends with a 2x2 max pool, stride 2


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def init_cnn(
    rng: np.random.Generator,
    input_shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    channels: Sequence[int] = (32, 64),
    hidden: int = 128,
    kernel_size: int = 3,
    dtype: Any = np.float32,
) -> dict[str, list[dict[str, np.ndarray]]]:
    """He-initialised weights (N(0, 2/fan_in), for ReLU) and zero biases.

    `input_shape` is (channels, height, width); each entry of `channels` adds one conv
    block (conv `kernel_size` x `kernel_size` with "same" padding, relu, 2x2 max pool).
    `kernel_size` must be odd so that "same" padding exists.
    """
    if len(input_shape) != 3:
        raise ConfigError(f"input_shape must be (channels, height, width), got {input_shape!r}")
    in_c, h, w = (_positive_int("input_shape entries", v) for v in input_shape)
    channels = [_positive_int("channels", c) for c in channels]
    hidden = _positive_int("hidden", hidden)
    num_classes = _positive_int("num_classes", num_classes)
    k = _positive_int("kernel_size", kernel_size)
    if k % 2 == 0:
        raise ConfigError(f"kernel_size must be odd (for 'same' padding), got {k}")
    if min(h, w) < POOL ** len(channels):
        raise ConfigError(
            f"a {h}x{w} image is too small for {len(channels)} 2x2 poolings; "
            "use fewer conv blocks"
        )

    def dense(fan_in: int, fan_out: int) -> dict[str, np.ndarray]:
        weight = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        return {"w": weight.astype(dtype), "b": np.zeros(fan_out, dtype=dtype)}

    conv = []
    for out_c in channels:
        fan_in = in_c * k * k
        weight = rng.standard_normal((out_c, in_c, k, k)) * np.sqrt(2.0 / fan_in)
        conv.append({"w": weight.astype(dtype), "b": np.zeros(out_c, dtype=dtype)})
        in_c, h, w = out_c, h // POOL, w // POOL
    flat = in_c * h * w
    return {"conv": conv, "dense": [dense(flat, hidden), dense(hidden, num_classes)]}


def _check_params(params: Any) -> None:
    if not (isinstance(params, dict) and params.get("conv") and params.get("dense")):
        raise ConfigError(
            "CNN params must be a dict with non-empty 'conv' and 'dense' lists (see init_cnn)"
        )


def cnn_config(params: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The `init_cnn` keyword arguments that give params of these shapes (JSON-ready).

    The image size is not stored in any shape exactly: the first dense layer only knows
    the pooled feature map. It is read back as the smallest square image that pools down
    to that map, which is 28x28 for MNIST; the params also accept inputs up to
    2**len(conv) - 1 pixels larger, which pool to the same map.
    """
    _check_params(params)
    conv, dense = params["conv"], params["dense"]
    channels = [int(anp.shape(layer["w"])[0]) for layer in conv]
    in_c, kernel_size = int(anp.shape(conv[0]["w"])[1]), int(anp.shape(conv[0]["w"])[-1])
    pooled = anp.shape(dense[0]["w"])[0] // channels[-1]
    side = math.isqrt(pooled)
    if side * side != pooled or side * side * channels[-1] != anp.shape(dense[0]["w"])[0]:
        raise ConfigError(
            f"cannot read the image size back: {anp.shape(dense[0]['w'])[0]} features after "
            f"{channels[-1]} channels is not a square feature map"
        )
    return {
        "input_shape": [in_c, side * POOL ** len(conv), side * POOL ** len(conv)],
        "num_classes": int(anp.shape(dense[-1]["w"])[1]),
        "channels": channels,
        "hidden": int(anp.shape(dense[0]["w"])[1]),
        "kernel_size": kernel_size,
    }


def cnn_layer_summary(params: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One JSON-ready dict per layer: its kind, settings, output shape and parameter count.

    Output shapes are for the image size `cnn_config` reads back (per image, no batch).
    """
    config = cnn_config(params)
    c, h, w = config["input_shape"]
    layers: list[dict[str, Any]] = []
    for layer in params["conv"]:
        out_c, _, k, _ = anp.shape(layer["w"])
        c = int(out_c)
        layers.append({"layer": "conv2d", "kernel": int(k), "padding": int(k) // 2,
                       "output_shape": [c, h, w], "params": _count(layer)})
        layers.append({"layer": "relu", "output_shape": [c, h, w], "params": 0})
        h, w = h // POOL, w // POOL
        layers.append({"layer": "max_pool2d", "size": POOL, "stride": POOL,
                       "output_shape": [c, h, w], "params": 0})
    layers.append({"layer": "flatten", "output_shape": [c * h * w], "params": 0})
    for i, layer in enumerate(params["dense"]):
        width = int(anp.shape(layer["w"])[1])
        layers.append({"layer": "dense", "output_shape": [width], "params": _count(layer)})
        if i < len(params["dense"]) - 1:
            layers.append({"layer": "relu", "output_shape": [width], "params": 0})
    return layers


def _count(layer: dict[str, Any]) -> int:
    return int(sum(np.prod(anp.shape(v), dtype=np.int64) for v in layer.values()))


def _as_images(params: dict[str, list[dict[str, Any]]], x: Any) -> Any:
    """(batch, C*H*W) rows or (batch, C, H, W) images -> (batch, C, H, W), square if flat."""
    shape = anp.shape(x)
    in_c = anp.shape(params["conv"][0]["w"])[1]
    if len(shape) == 4:
        return x
    if len(shape) == 2 and shape[1] % in_c == 0:
        side = math.isqrt(shape[1] // in_c)
        if side * side * in_c == shape[1]:
            return anp.reshape(x, (shape[0], in_c, side, side))
    raise ValueError(
        f"cnn needs inputs of shape (batch, {in_c}, height, width), or flat rows of "
        f"{in_c} square images such as (batch, 784); got shape {shape}"
    )


def cnn(params: dict[str, list[dict[str, Any]]], x: Any) -> Any:
    """Logits (batch, num_classes) for images x: (batch, 784) or (batch, 1, 28, 28) in [0, 1]."""
    _check_params(params)
    # The conv blocks run batch-last, (C, H, W, batch): the fast layout (see autodiff.conv).
    x = to_layout(_as_images(params, x), "NCHW", "CHWN")
    for layer in params["conv"]:
        w = layer["w"]
        x = conv2d(x, w, padding=anp.shape(w)[-1] // 2, layout="CHWN")
        x = max_pool2d(x, POOL, POOL, layout="CHWN")
        # relu(pool(x + b)) == pool(relu(x + b)): relu is monotone and b is constant over
        # a window. Pooling first runs the bias and relu on a quarter of the values.
        x = relu(x + anp.reshape(layer["b"], (-1, 1, 1, 1)))
    x = flatten(to_layout(x, "CHWN", "NCHW"))  # dense layers read (batch, C*H*W) rows
    fan_in = anp.shape(params["dense"][0]["w"])[0]
    if anp.shape(x)[1] != fan_in:
        raise ValueError(
            f"the conv blocks give {anp.shape(x)[1]} features per image but the first dense "
            f"layer expects {fan_in}: the images are not the size these params were built for "
            f"({cnn_config(params)['input_shape']})"
        )
    for layer in params["dense"][:-1]:
        x = relu(x @ layer["w"] + layer["b"])
    last = params["dense"][-1]
    return x @ last["w"] + last["b"]


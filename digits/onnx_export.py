"""Export a trained model to ONNX, the file format ONNX Runtime and most frameworks read.

The exported graph stands alone and computes what `TrainedModel.predict_proba` computes:

    image          float32 (N, H, W): pixels scaled 0-1 (the IDX bytes / 255); N is dynamic
    probabilities  float32 (N, classes): the softmax of the logits for cross-entropy models;
                   for mse models the sigmoid outputs divided by their sum, computed as
                   `nets.costs.PREDICTIONS` does: softmax(log_sigmoid(logits))

Only standard operators appear (opset 17): Sub and Div for the model's normalisation (left
out when it is the identity), Flatten and Gemm for dense layers (our weights are (fan_in,
fan_out), so Gemm needs no transposition), Conv, Relu and MaxPool in NCHW for the CNN. Our
CNN pools before it adds the bias and applies relu; the graph uses the usual order (conv +
bias, relu, pool), which gives the very same numbers: a max commutes with adding a
constant and with the monotone relu, in rounded arithmetic too. The mse probabilities go
through log-sigmoid = -Softplus(-z) and Softmax, the stable form: a row whose sigmoid
outputs all round to 0 still gets finite probabilities that sum to 1.

The architecture is read from the parameter shapes; the model's settings give the
activation and cost, its metadata the normalisation, image size and the descriptive
`metadata_props`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from digits.files import atomic_write, write_error
from digits.modelfile import TrainedModel
from nets.cnn import POOL
from nets.errors import CheckpointError, ConfigError

OPSET = 17  # 13 or later: Softmax normalises along one axis only
IR_VERSION = 8  # the IR version of opset 17; ONNX Runtime reads it from 1.13 on
INPUT, OUTPUT = "image", "probabilities"
ACTIVATION_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
COSTS = ("cross-entropy", "mse")
CONTRACT = (f"{INPUT}: float32 (N, height, width), pixels scaled 0-1 (IDX bytes / 255); "
            f"{OUTPUT}: float32 (N, classes), each row sums to 1")


def require_onnx() -> Any:
    """The onnx module, or ConfigError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install '.[onnx]'") from None
    return onnx


class _Graph:
    """Nodes and initializers in the order they are added, with generated tensor names."""

    def __init__(self, onnx: Any) -> None:
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.nodes: list = []
        self.initializers: list = []

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def weights(self, name: str, array: Any) -> str:
        return self.const(name, np.ascontiguousarray(array, dtype=np.float32))

    def add(self, op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        output = output or f"{op.lower()}_{len(self.nodes)}"
        self.nodes.append(self.helper.make_node(op, inputs, [output], **attrs))
        return output


def _normalise(g: _Graph, image: str, normalisation: dict) -> str:
    """(image - mean) / std, as `TrainedModel.logits` does; nothing for mean 0, std 1."""
    mean, std = float(normalisation["mean"]), float(normalisation["std"])
    x = image
    if mean != 0.0:
        x = g.add("Sub", [x, g.weights("pixel_mean", np.float32(mean))])
    if std != 1.0:
        x = g.add("Div", [x, g.weights("pixel_std", np.float32(std))])
    return x


def _dense(g: _Graph, x: str, layers: list[dict], activation_op: str) -> str:
    """Gemm per layer; the activation after every layer but the last (the logits)."""
    for i, layer in enumerate(layers):
        x = g.add("Gemm", [x, g.weights(f"dense{i}.w", layer["w"]),
                           g.weights(f"dense{i}.b", layer["b"])])
        if i < len(layers) - 1:
            x = g.add(activation_op, [x])
    return x


def _mlp(g: _Graph, x: str, params: list[dict], activation: str) -> str:
    if activation not in ACTIVATION_OPS:
        raise ConfigError(f"cannot export the activation {activation!r}; ONNX export knows "
                          f"{', '.join(ACTIVATION_OPS)}")
    rows = g.add("Flatten", [x], axis=1)  # (N, H*W), the rows the MLP reads
    return _dense(g, rows, params, ACTIVATION_OPS[activation])


def _cnn(g: _Graph, x: str, params: dict) -> str:
    if params["conv"][0]["w"].shape[1] != 1:
        raise ConfigError("ONNX export takes grayscale images: the CNN must have 1 input channel")
    x = g.add("Unsqueeze", [x, g.const("channel_axis", np.array([1], np.int64))])
    for i, layer in enumerate(params["conv"]):
        k = int(layer["w"].shape[-1])
        x = g.add("Conv", [x, g.weights(f"conv{i}.w", layer["w"]),
                           g.weights(f"conv{i}.b", layer["b"])],
                  kernel_shape=[k, k], pads=[k // 2] * 4, strides=[1, 1])
        x = g.add("MaxPool", [g.add("Relu", [x])], kernel_shape=[POOL, POOL],
                  strides=[POOL, POOL])
    rows = g.add("Flatten", [x], axis=1)  # (N, C*H*W) in NCHW order, as nets.cnn flattens
    return _dense(g, rows, params["dense"], "Relu")


def _probabilities(g: _Graph, logits: str, cost: str) -> str:
    if cost == "cross-entropy":
        return g.add("Softmax", [logits], OUTPUT, axis=-1)
    if cost == "mse":  # softmax(log_sigmoid(z)), log_sigmoid(z) = -softplus(-z)
        log_sigmoid = g.add("Neg", [g.add("Softplus", [g.add("Neg", [logits])])])
        return g.add("Softmax", [log_sigmoid], OUTPUT, axis=-1)
    raise ConfigError(f"cannot export a model trained with the cost {cost!r}; ONNX export "
                      f"knows {', '.join(COSTS)}")


def _layers_text(model: TrainedModel) -> str:
    if model.kind == "mlp":
        return "-".join(map(str, model.settings.layers))
    convs = [f"conv {w.shape[-1]}x{w.shape[-1]} {w.shape[0]}, relu, max pool {POOL}"
             for w in (layer["w"] for layer in model.params["conv"])]
    dense = [f"dense {layer['w'].shape[1]}" for layer in model.params["dense"]]
    return ", ".join(convs + [", relu, ".join(dense)])


def _metadata(model: TrainedModel, activation: str) -> dict[str, str]:
    meta = model.meta
    props = {"model": model.kind, "layers": _layers_text(model), "activation": activation,
             "cost": model.settings.cost, "dataset": str(meta.get("dataset", "unknown")),
             "contract": CONTRACT, "class_names": json.dumps(model.class_names),
             "version": str(meta.get("versions", {}).get("digits-from-scratch", "unknown"))}
    if meta.get("test_accuracy") is not None:
        props["test_accuracy"] = f"{float(meta['test_accuracy']):.6f}"
    return props


def model_to_onnx(model: TrainedModel) -> Any:
    """The ONNX ModelProto of a trained model (`digits.modelfile.load_model`). ConfigError
    for a model ONNX export does not know, or without the onnx package."""
    onnx = require_onnx()
    if model.kind not in ("mlp", "cnn"):
        raise ConfigError(f"cannot export a model of kind {model.kind!r}; ONNX export knows "
                          "mlp, cnn")
    height, width = (int(n) for n in model.meta["image_shape"])
    activation = model.settings.activation if model.kind == "mlp" else "relu"  # the CNN's
    g = _Graph(onnx)
    x = _normalise(g, INPUT, model.meta["normalisation"])
    logits = _mlp(g, x, model.params, activation) if model.kind == "mlp" else \
        _cnn(g, x, model.params)
    probabilities = _probabilities(g, logits, model.settings.cost)
    helper, float32 = onnx.helper, onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, f"digits-{model.kind}",
        [helper.make_tensor_value_info(INPUT, float32, ["N", height, width])],
        [helper.make_tensor_value_info(probabilities, float32,
                                       ["N", model.network.num_classes])],
        initializer=g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="digits-from-scratch",
                              doc_string=CONTRACT)
    props = _metadata(model, activation)
    helper.set_model_props(proto, props)
    proto.producer_version = props["version"]
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: TrainedModel, path: str | os.PathLike) -> None:
    """Write the model as an ONNX file at `path`, atomically (see `model_to_onnx`).

    Raises ConfigError for a model ONNX export does not know and CheckpointError when the
    file cannot be written; a previous file at `path` is then unchanged.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"cannot write {path}: it is a directory; give a file name "
                              "such as model.onnx")
    data = model_to_onnx(model).SerializeToString()
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as error:
        raise CheckpointError(write_error(path, error)) from None

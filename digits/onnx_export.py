"""Export a trained model to ONNX, the file format ONNX Runtime and most frameworks read.

The exported graph stands alone and computes what our engine computes:

    image          float32 (N, H, W): pixels scaled 0-1 (the IDX bytes / 255); N is dynamic
    probabilities  float32 (N, classes): the softmax of the logits for cross-entropy models;
                   for mse models the sigmoid outputs divided by their sum, as
                   `nets.costs.PREDICTIONS` reports them

Only standard operators appear (opset 17): Flatten and Gemm for dense layers (our weights
are (fan_in, fan_out), so Gemm needs no transposition), Conv, Relu and MaxPool in NCHW for
the CNN. Our CNN runs batch-last (CHWN) and pools before it adds the bias and applies relu;
the graph uses the usual order (conv + bias, relu, pool), which gives the very same numbers:
a max commutes with adding a constant and with the monotone relu, in rounded arithmetic too.
Dropout is the identity at inference and is left out. The "divide-255" normalisation is the
input contract itself (pixels 0-1), so the graph needs no node for it.

The numbers agree to float32 rounding (about 1e-7). One place magnifies it: an mse model's
probabilities divide each sigmoid output by the row's sum, so where a row's outputs sum to
S the rounding of each output (about 1e-7, ours and ONNX Runtime's alike) becomes about
1e-6 / S; in rows where the model sees no digit at all the two may differ visibly.

The architecture is read from the parameter shapes; `meta` (a model file's metadata) gives
the activation, cost, normalisation and image size, and the descriptive `metadata_props`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from nets.checkpoint import _atomic_write  # the project's one atomic, fsynced file writer
from nets.errors import CheckpointError, ConfigError

OPSET = 17  # 13 or later: Softmax normalises along one axis only
IR_VERSION = 8  # the IR version of opset 17; ONNX Runtime reads it from 1.13 on
INPUT, OUTPUT = "image", "probabilities"
NORMALISATION = "divide-255"
ACTIVATION_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
COSTS = ("cross-entropy", "mse")
CONTRACT = (f"{INPUT}: float32 (N, height, width), pixels scaled 0-1 (IDX bytes / 255); "
            f"{OUTPUT}: float32 (N, classes), each row sums to 1")
POOL = 2  # every conv block of nets.cnn ends with a 2x2 max pool, stride 2


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


def _dense(g: _Graph, x: str, layers: list[dict], activation_op: str, prefix: str) -> str:
    """Gemm per layer; the activation after every layer but the last (the logits)."""
    for i, layer in enumerate(layers):
        x = g.add("Gemm", [x, g.weights(f"{prefix}{i}.w", layer["w"]),
                           g.weights(f"{prefix}{i}.b", layer["b"])])
        if i < len(layers) - 1:
            x = g.add(activation_op, [x])
    return x


def _mlp(g: _Graph, image: str, params: list[dict], activation: str) -> str:
    if activation not in ACTIVATION_OPS:
        raise ConfigError(f"cannot export the activation {activation!r}; ONNX export knows "
                          f"{', '.join(ACTIVATION_OPS)}")
    rows = g.add("Flatten", [image], axis=1)  # (N, H*W), the rows the MLP reads
    return _dense(g, rows, params, ACTIVATION_OPS[activation], "dense")


def _cnn(g: _Graph, image: str, params: dict) -> str:
    if params["conv"][0]["w"].shape[1] != 1:
        raise ConfigError("ONNX export takes grayscale images: the CNN must have 1 input channel")
    x = g.add("Unsqueeze", [image, g.const("channel_axis", np.array([1], np.int64))])
    for i, layer in enumerate(params["conv"]):
        k = int(layer["w"].shape[-1])
        x = g.add("Conv", [x, g.weights(f"conv{i}.w", layer["w"]),
                           g.weights(f"conv{i}.b", layer["b"])],
                  kernel_shape=[k, k], pads=[k // 2] * 4, strides=[1, 1])
        x = g.add("MaxPool", [g.add("Relu", [x])], kernel_shape=[POOL, POOL],
                  strides=[POOL, POOL])
    rows = g.add("Flatten", [x], axis=1)  # (N, C*H*W) in NCHW order, as nets.cnn flattens
    return _dense(g, rows, params["dense"], "Relu", "dense")


def _probabilities(g: _Graph, logits: str, cost: str) -> str:
    if cost == "cross-entropy":
        return g.add("Softmax", [logits], OUTPUT, axis=-1)
    if cost == "mse":
        outputs = g.add("Sigmoid", [logits])
        axis = g.const("class_axis", np.array([-1], np.int64))
        return g.add("Div", [outputs, g.add("ReduceSum", [outputs, axis], keepdims=1)], OUTPUT)
    raise ConfigError(f"cannot export a model trained with the cost {cost!r}; ONNX export "
                      f"knows {', '.join(COSTS)}")


def _layers_text(kind: str, params: Any) -> str:
    if kind == "mlp":
        return "-".join(str(n) for n in [params[0]["w"].shape[0]]
                        + [layer["w"].shape[1] for layer in params])
    convs = [f"conv {w.shape[-1]}x{w.shape[-1]} {w.shape[0]}, relu, max pool {POOL}"
             for w in (layer["w"] for layer in params["conv"])]
    dense = [f"dense {layer['w'].shape[1]}" for layer in params["dense"]]
    return ", ".join(convs + [", relu, ".join(dense)])


def _metadata(kind: str, params: Any, activation: str, meta: dict) -> dict[str, str]:
    props = {"model": kind, "layers": _layers_text(kind, params), "activation": activation,
             "cost": meta["cost"], "dataset": str(meta.get("dataset", "unknown")),
             "contract": CONTRACT,
             "version": str(meta.get("versions", {}).get("digits-from-scratch", "unknown"))}
    if meta.get("test_accuracy") is not None:
        props["test_accuracy"] = f"{float(meta['test_accuracy']):.6f}"
    if meta.get("class_names"):
        props["class_names"] = json.dumps(list(meta["class_names"]))
    return props


def model_to_onnx(kind: str, params: Any, meta: dict) -> Any:
    """The ONNX ModelProto of a model: `kind` "mlp" or "cnn", its params pytree (as nets.mlp
    and nets.cnn lay them out) and its file's metadata (cost, activation, normalisation,
    image_shape; dataset, test_accuracy, class_names and versions when present)."""
    onnx = require_onnx()
    if kind not in ("mlp", "cnn"):
        raise ConfigError(f"cannot export a model of kind {kind!r}; ONNX export knows mlp, cnn")
    if meta.get("normalisation", NORMALISATION) != NORMALISATION:
        raise ConfigError(f"cannot export a model trained on inputs scaled "
                          f"{meta['normalisation']!r}; ONNX export knows {NORMALISATION!r}")
    height, width = (int(n) for n in meta.get("image_shape", (28, 28)))
    activation = meta.get("activation", "relu") if kind == "mlp" else "relu"  # the CNN's
    g = _Graph(onnx)
    if kind == "mlp":
        logits = _mlp(g, INPUT, params, activation)
    else:
        logits = _cnn(g, INPUT, params)
    probabilities = _probabilities(g, logits, meta.get("cost"))
    classes = int((params if kind == "mlp" else params["dense"])[-1]["w"].shape[1])
    helper, float32 = onnx.helper, onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, f"digits-{kind}",
        [helper.make_tensor_value_info(INPUT, float32, ["N", height, width])],
        [helper.make_tensor_value_info(probabilities, float32, ["N", classes])],
        initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="digits-from-scratch",
                              doc_string=CONTRACT)
    props = _metadata(kind, params, activation, meta)
    helper.set_model_props(model, props)
    model.producer_version = props["version"]
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(kind: str, params: Any, meta: dict, path: str | os.PathLike) -> None:
    """Write the model as an ONNX file at `path`, atomically (see `model_to_onnx`).

    Raises ConfigError for a model ONNX export does not know and CheckpointError when the
    file cannot be written; a previous file at `path` is then unchanged.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"cannot write {path}: it is a directory; give a file name "
                              "such as model.onnx")
    data = model_to_onnx(kind, params, meta).SerializeToString()
    _atomic_write(path, lambda f: f.write(data))

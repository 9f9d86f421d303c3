"""Model files and training checkpoints: what they hold, the one loader, the one check.

Both are `digits.archive` files. A model file (kind "model") holds `{"params": params}`
and the metadata

    {"settings": Settings.to_json(),      # how it was built and trained (nets.config)
     "dataset": "mnist", "class_names": [...], "image_shape": [28, 28],
     "normalisation": {"mean": 0.0, "std": 1.0},   # inputs are (pixels / 255 - mean) / std
     "test_accuracy": ..., "test_loss": ..., "history": [...], "versions": {...}, ...}

A checkpoint (kind "checkpoint") holds `{"params", "opt_state", "best_params"}` and the
rest of the `TrainState` plus the run (`{"settings": ..., "data_dir": ..., "data":
{"fingerprint", "image_shape", "num_classes", "examples"}}`) as metadata, so that a
resumed run continues bit for bit, on the same data. A checkpoint names no file to write:
a resumed run writes where its user says.

`load_model` and `load_checkpoint` check every metadata field and the arrays against the
settings in one place, `digits.schema`, before anything is built from them. What
`load_model` returns, `TrainedModel`, is the model API of the project: the web app, the
ONNX export and `train.py` all use it.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from autodiff import tree_leaves
from digits import archive
from digits.datasets import Dataset
from digits.files import make_parent
from digits.schema import check_checkpoint, check_model
from nets.cnn import cnn_layer_summary
from nets.config import Settings
from nets.costs import COSTS, PREDICTIONS
from nets.errors import CheckpointError, ConfigError
from nets.inputs import one_hot, prepare_images
from nets.metrics import accuracy, confusion_matrix
from nets.models import Model, logits_in_batches
from nets.training import TrainState

VERSION = "0.1.0"
PIXELS = {"mean": 0.0, "std": 1.0}  # the normalisation of every model this program trains


def versions() -> dict[str, str]:
    """The versions of what made a file, for its metadata."""
    return {"digits-from-scratch": VERSION, "numpy": np.__version__,
            "python": platform.python_version()}


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained network with what is needed to use it.

    `kind` is "mlp" or "cnn"; `params` the parameter pytree; `settings` the
    `nets.config.Settings` it was trained with; `meta` the file's metadata (dataset,
    class_names, image_shape, normalisation, test_accuracy when known, history, versions).
    """

    kind: str
    params: Any
    settings: Settings
    meta: dict
    network: Model
    source: str = "the model"  # where it came from, for messages

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def num_params(self) -> int:
        return int(sum(np.size(leaf) for leaf in tree_leaves(self.params)))

    def check_fits(self, data: str, input_size: int, num_classes: int) -> None:
        """CheckpointError unless the model takes `input_size` pixels and `num_classes`."""
        if (input_size, num_classes) != (self.network.input_size, self.network.num_classes):
            raise CheckpointError(
                f"{self.source} expects {self.network.input_size} inputs and "
                f"{self.network.num_classes} classes, but {data} has {input_size} and "
                f"{num_classes}; use a model trained on this data")

    def logits(self, images: np.ndarray) -> np.ndarray:
        """(N, classes) float32 logits for images (N, 28, 28) or (N, 784): pixels in [0, 1],
        IDX bytes / 255. The model's normalisation is applied here."""
        x = np.asarray(images, dtype=np.float32)
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.network.input_size:
            raise ConfigError(f"{self.source} takes images of {self.network.input_size} "
                              f"pixels, got {x.shape[1]}")
        norm = self.meta["normalisation"]
        x = (x - np.float32(norm["mean"])) / np.float32(norm["std"])
        return logits_in_batches(self.network.apply, self.params, x, self.network.num_classes)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, classes) float32 probabilities: softmax for cross-entropy models, sigmoid
        outputs scaled to sum to 1 for MSE models."""
        to_probabilities = PREDICTIONS[self.settings.cost]
        return np.asarray(to_probabilities(self.logits(images)), dtype=np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N,) int class indices."""
        return np.argmax(self.logits(images), axis=1)

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
        """The mean cost, the accuracy and the logits on labelled images (as for `logits`)."""
        logits = self.logits(images)
        targets = one_hot(np.asarray(labels, np.int64), self.network.num_classes)
        loss = float(COSTS[self.settings.cost](logits, targets))
        return loss, accuracy(np.argmax(logits, axis=1), labels), logits

    def test(self, dataset: Dataset) -> tuple[float, float, np.ndarray, np.ndarray]:
        """On a dataset's test images: the mean cost, the accuracy, the confusion matrix
        (rows: true class) and the probabilities (n, classes). CheckpointError when the
        model does not fit the dataset."""
        self.check_fits(dataset.name, dataset.test_images[0].size, dataset.num_classes)
        labels = dataset.test_labels.astype(np.int64)
        loss, accuracy, logits = self.evaluate(prepare_images(dataset.test_images), labels)
        matrix = confusion_matrix(np.argmax(logits, axis=1), labels, dataset.num_classes)
        probabilities = PREDICTIONS[self.settings.cost](logits)
        return loss, accuracy, matrix, np.asarray(probabilities, dtype=np.float32)

    def summary(self) -> str:
        """Layers, parameter count, dataset and test accuracy, one line each."""
        s = self.settings
        if self.kind == "cnn":
            layers = [f"  {layer['layer']:<10} -> {tuple(layer['output_shape'])}  "
                      f"{layer['params']:,} params" for layer in cnn_layer_summary(self.params)]
        else:
            layers = [f"  dense {a} -> {b}" + (f", {s.activation}" if i < len(s.layers) - 2
                                                 else "")
                      for i, (a, b) in enumerate(zip(s.layers[:-1], s.layers[1:]))]
        measured = self.meta.get("test_accuracy")
        tested = f"{100 * measured:.2f}%" if measured is not None else "not measured"
        return "\n".join([f"{self.kind}, cost {s.cost}", *layers,
                          f"parameters: {self.num_params:,}",
                          f"dataset: {self.meta['dataset']}", f"test accuracy: {tested}"])


def save_model(path: str | os.PathLike, params: Any, settings: Settings, meta: dict) -> None:
    """Write a model file (and its directory): `params` trained with `settings`; `meta` holds
    at least the dataset, class_names and image_shape (normalisation and versions are
    filled in)."""
    meta = {"normalisation": PIXELS, "versions": versions(), **meta,
            "settings": settings.to_json(), "kind": "model"}
    check_model(params, meta, f"cannot save {os.fspath(path)}", "this is a bug")
    make_parent(path)
    archive.save(path, {"params": params}, meta)


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Read a model file and check it (`digits.schema.check_model`); CheckpointError, naming
    the file and the problem, for anything else."""
    path = os.fspath(path)
    tree, meta = archive.load(path)
    if meta["kind"] != "model":
        raise CheckpointError(
            f"{path} is a {meta['kind']!r} file, not a model; give a model file saved by train.py"
        )
    if not (isinstance(tree, dict) and set(tree) == {"params"}):
        raise CheckpointError(f"{path} is damaged: a model file holds exactly one 'params' tree")
    settings, network = check_model(tree["params"], meta, path)
    return TrainedModel(settings.model, tree["params"], settings, dict(meta), network,
                        f"model {path}")


# ------------------------------------------------------------------------- checkpoints

# The TrainState fields stored as JSON; the three pytrees go into the archive's arrays.
_TREES = ("params", "opt_state", "best_params")
_FIELDS = tuple(f.name for f in fields(TrainState) if f.name not in _TREES + ("stop_reason",))


def save_checkpoint(path: str | os.PathLike, state: TrainState, run: dict) -> None:
    """Write the training state and the run (settings and file paths) to `path` (and its
    directory)."""
    values = {name: getattr(state, name) for name in _FIELDS}
    if not np.isfinite(state.best_val_loss):
        values["best_val_loss"] = None
    make_parent(path)
    archive.save(path, {name: getattr(state, name) for name in _TREES},
                 {"kind": "checkpoint", "run": run, "state": values})


def load_checkpoint(path: str | os.PathLike) -> tuple[TrainState, dict]:
    """The state and run `save_checkpoint` wrote; CheckpointError for any other file."""
    path = os.fspath(path)
    tree, meta = archive.load(path)
    if meta.get("kind") != "checkpoint":
        raise CheckpointError(f"{path} is not a training checkpoint (it is a "
                              f"{meta.get('kind')!r} file); resume from a .checkpoint.npz file")
    values, run = check_checkpoint(tree, meta, path)
    return TrainState(**values), run

"""Testing a saved model: which data it is tested on, and the numbers.

A model knows its dataset (its metadata says "mnist" or "fashion-mnist"). It is tested on
that dataset's test set; a `--dataset` the user gives explicitly that is not the model's is
refused, since the classes would not mean the same things. `dataset_line` says which
dataset is used and why; `photo_note` warns that a model of clothes names clothes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digits.datasets import Dataset
from digits.modelfile import TrainedModel
from nets.errors import ConfigError
from nets.inputs import prepare_images
from nets.metrics import confusion_matrix

NAMES = {"mnist": "MNIST (handwritten digits)", "fashion-mnist": "Fashion-MNIST (clothes)"}


def model_dataset(model: TrainedModel, given: str | None, source: str) -> str:
    """The dataset to test `model` on: its own; ConfigError when `given` (an explicit
    --dataset) names another."""
    own = model.meta["dataset"]
    if given is not None and given != own:
        raise ConfigError(f"{source} is a {NAMES.get(own, own)} model, but --dataset {given} "
                          f"was given; its classes mean nothing on {given}. Drop --dataset "
                          f"(it is tested on {own}), or load a model trained on {given}")
    return own


def dataset_line(model: TrainedModel, given: str | None, source: str) -> str:
    """Which test set is used, and why."""
    own = model.meta["dataset"]
    why = "as --dataset says" if given else "the dataset the model was trained on"
    return f"{source}: a {NAMES.get(own, own)} model; testing on the {own} test set ({why})"


def photo_note(model: TrainedModel, source: str) -> str | None:
    """A warning for photos given to a model that does not classify digits."""
    own = model.meta["dataset"]
    if own == "mnist":
        return None
    return (f"note: {source} is a {NAMES.get(own, own)} model: it names one of "
            f"{', '.join(model.class_names)}, not digits")


@dataclass(frozen=True)
class Evaluation:
    """The test-set results: mean cost, accuracy, confusion matrix (rows: true class),
    the inputs as the model saw them, labels and probabilities."""

    loss: float
    accuracy: float
    matrix: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def correct(self) -> int:
        return int(np.trace(self.matrix))


def evaluate_model(model: TrainedModel, dataset: Dataset) -> Evaluation:
    """Test `model` on the test set of `dataset` (checked to fit it first)."""
    model.check_fits(dataset.name, dataset.test_images[0].size, dataset.num_classes)
    images, labels = prepare_images(dataset.test_images), dataset.test_labels.astype(np.int64)
    loss, accuracy, logits = model.evaluate(images, labels)
    matrix = confusion_matrix(np.argmax(logits, axis=1), labels, dataset.num_classes)
    return Evaluation(loss, accuracy, matrix, labels, model.predict_proba(images))

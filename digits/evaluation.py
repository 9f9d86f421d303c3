"""Which data a saved model is tested on, and what its answers mean.

A model knows its dataset (its metadata says "mnist" or "fashion-mnist"). It is tested on
that dataset's test set; a `--dataset` the user gives explicitly that is not the model's is
refused, since the classes would not mean the same things. `dataset_line` says which
dataset is used and why; `photo_note` warns that a model of clothes names clothes.
"""

from __future__ import annotations

from digits.modelfile import TrainedModel
from nets.errors import ConfigError

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


def photo_note(model: TrainedModel, given: str | None, source: str) -> str | None:
    """A warning for photos given to a model that does not classify digits; ConfigError
    for a model that cannot read 28x28 photos, or an explicit --dataset not its own."""
    own = model_dataset(model, given, source)
    model.check_fits("28x28 digit images", 784, model.network.num_classes)
    if own == "mnist":
        return None
    return (f"note: {source} is a {NAMES.get(own, own)} model: it names one of "
            f"{', '.join(model.class_names)}, not digits")

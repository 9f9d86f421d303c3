"""nets.config: the one settings object, its recipes, its check, its JSON form."""

import dataclasses
import json

import pytest

from nets.config import CHOICES, CNN, EARLIER_CNN_CHANNELS, MLP, RECIPES, SEED, Settings
from nets.errors import ConfigError


def test_recipes_are_settings_and_pass_the_check():
    assert RECIPES == {"mlp": MLP, "cnn": CNN, "seed": SEED}
    for recipe in RECIPES.values():
        assert isinstance(recipe, Settings) and recipe.check() is recipe
    assert MLP == Settings(shift=1, batch_size=256, lr=2e-3)
    assert MLP.layers == (784, 256, 128, 10)
    assert CNN.batch_size == 128 and CNN.lr == 3e-3
    assert CNN.model == "cnn" and CNN.layers == () and CNN.channels and CNN.shift >= 1
    assert MLP.channels == () and SEED.channels == ()
    assert (SEED.layers, SEED.cost, SEED.optimizer, SEED.batch_size, SEED.lr, SEED.init,
            SEED.init_scale, SEED.epochs, SEED.schedule) == (
        (784, 100, 64, 28, 10), "mse", "sgd", 0, 0.1, "normal", 0.01, 300, "constant")


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        MLP.lr = 1.0


@pytest.mark.parametrize("recipe", list(RECIPES.values()))
def test_json_round_trip(recipe):
    text = json.dumps(recipe.to_json())
    assert Settings.from_json(json.loads(text)) == recipe


@pytest.mark.parametrize("data, words", [
    ([], "not a description"),
    ({"learning_rate": 0.1}, "not a description"),
    ({"layers": "784,10"}, "layers must be a list"),
    ({"lr": -1.0}, "--lr"),
    ({"cost": "hinge"}, "unknown cost 'hinge'"),
])
def test_from_json_refuses_what_is_not_settings(data, words):
    with pytest.raises(ConfigError, match=words):
        Settings.from_json(data)


@pytest.mark.parametrize("changes, words", [
    ({"model": "transformer"}, "--model: unknown model"),
    ({"dataset": "cifar"}, "--dataset: unknown dataset"),
    ({"activation": "gelu"}, "--activation"),
    ({"init_scale": 0.0}, "--init-scale"),
    ({"weight_decay": float("nan")}, "--weight-decay"),
    ({"shift": -1}, "--shift"),
    ({"val_size": -1}, "--val-size"),
    ({"seed": 1.5}, "--seed"),
    ({"epochs": True}, "--epochs"),
    ({"layers": (784,)}, "--layers"),
    ({"layers": (784, 0, 10)}, "--layers"),
    ({"model": "cnn"}, "--layers describes an MLP"),
    ({"model": "cnn", "layers": ()}, "--channels: the cnn needs"),
    ({"model": "cnn", "layers": (), "channels": (16, 0)}, "--channels: the cnn needs"),
    ({"channels": (16, 32)}, "--channels describes the cnn"),
    ({"patience": 2, "val_size": 0}, "--patience .* --val-size"),
])
def test_check_names_the_setting(changes, words):
    with pytest.raises(ConfigError, match=words):
        dataclasses.replace(MLP, **changes).check()


def test_check_against_the_data():
    MLP.check(input_size=784, num_classes=10, examples=256)
    with pytest.raises(ConfigError, match="784 input pixels and the last the 10 classes"):
        dataclasses.replace(MLP, layers=(100, 10)).check(input_size=784, num_classes=10)
    with pytest.raises(ConfigError, match="batch size 256 is larger than the 255"):
        MLP.check(examples=255)
    CNN.check(input_size=784, num_classes=10)  # the cnn has no sizes to fit


def test_every_choice_is_checked():
    for name, choices in CHOICES.items():
        for choice in choices:
            dataclasses.replace(CNN if name == "model" and choice == "cnn" else MLP,
                                **{name: choice}).check()


@pytest.mark.parametrize("sizes", [[784], [784, 0, 10], [784, -3, 10], [784, 2.5, 10]])
def test_bad_layer_sizes(sizes):
    with pytest.raises(ConfigError, match="--layers: needs at least two positive integer"):
        Settings(layers=tuple(sizes)).check()


def test_a_cnn_file_from_before_channels_were_a_setting_reads_as_those_channels():
    stored = {k: v for k, v in CNN.to_json().items() if k != "channels"}
    assert Settings.from_json(stored).channels == EARLIER_CNN_CHANNELS == (32, 64)
    assert Settings.from_json(MLP.to_json()).channels == ()
    with pytest.raises(ConfigError, match="channels must be a list"):
        Settings.from_json({**CNN.to_json(), "channels": "16,32"})

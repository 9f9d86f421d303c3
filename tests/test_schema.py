"""digits.schema: every field of model files and checkpoints checked in one place."""

import copy
import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from digits.modelfile import PIXELS
from digits.schema import check_checkpoint, check_model
from nets.config import CNN, MLP
from nets.errors import CheckpointError
from nets.mlp import init_mlp
from nets.models import build_model
from nets.training import init_state

SETTINGS = dataclasses.replace(MLP, layers=(4, 3, 2), batch_size=2, val_size=2, epochs=3)
ENTRY = {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.5, "val_loss": 0.4,
         "val_accuracy": 0.6, "lr": 0.001, "seconds": 0.1}


def model_meta(**changes):
    return {"kind": "model", "settings": SETTINGS.to_json(), "dataset": "mnist",
            "class_names": ["a", "b"], "image_shape": [2, 2], "normalisation": dict(PIXELS),
            "history": [ENTRY], "test_accuracy": 0.5, "test_loss": 0.7,
            "stop_reason": "completed", "best_epoch": 1, "versions": {"numpy": "2"}, **changes}


PARAMS = init_mlp(np.random.default_rng(0), [4, 3, 2])


def test_a_good_model_passes():
    settings, network = check_model(PARAMS, model_meta(), "m.npz")
    assert settings == SETTINGS and network.num_classes == 2


@pytest.mark.parametrize("changes, words", [
    ({"class_names": 7}, "class_names"), ({"class_names": ["a", "b", "c"]}, "3 classes"),
    ({"class_names": ["a", ""]}, "class_names"), ({"history": "oops"}, "history"),
    ({"history": [{**ENTRY, "epoch": 2}]}, "history[0].epoch"),
    ({"history": [{**ENTRY, "val_accuracy": 1.5}]}, "val_accuracy"),
    ({"image_shape": [360, 360.0]}, "image_shape"), ({"image_shape": [0, 4]}, "image_shape"),
    ({"dataset": "fashion-mnist"}, "dataset"), ({"test_accuracy": "99%"}, "test_accuracy"),
    ({"test_loss": float("nan")}, "test_loss"), ({"normalisation": {"mean": 0}}, "normal"),
    ({"stop_reason": "bored"}, "stop_reason"), ({"best_epoch": True}, "best_epoch"),
    ({"versions": {"numpy": 2}}, "versions"), ({"source": None}, "source"),
    ({"settings": {**SETTINGS.to_json(), "lr": "0.1"}}, "--lr"),
    ({"settings": {**SETTINGS.to_json(), "epochs": "1"}}, "--epochs"),
    ({"settings": {**SETTINGS.to_json(), "layers": [4, 5, 2]}}, "shape"),
    ({"settings": "mlp"}, "settings"),
])
def test_each_bad_field_is_one_line_naming_it(changes, words):
    with pytest.raises(CheckpointError) as caught:
        check_model(PARAMS, model_meta(**changes), "m.npz")
    message = str(caught.value)
    assert message.startswith("m.npz: ") and "\n" not in message and words in message


def test_a_cnn_declaring_huge_images_is_refused_before_building():
    params = build_model(CNN).init(np.random.default_rng(0))
    meta = model_meta(settings=CNN.to_json(), image_shape=[360, 360],
                      class_names=[str(i) for i in range(10)])
    with pytest.raises(CheckpointError, match="do not fit the settings"):
        check_model(params, meta, "cnn.npz")
    with pytest.raises(CheckpointError, match="image_shape"):
        check_model(params, {**meta, "image_shape": [100_000, 100_000]}, "cnn.npz")


FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20),
                         st.floats(allow_nan=True), st.text(max_size=4),
                         st.lists(st.integers(-2, 40), max_size=3),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@given(key=st.sampled_from(sorted(model_meta())), value=FIELD_VALUES)
def test_any_model_field_passes_or_fails_in_one_line(key, value):
    meta = {**model_meta(), key: value}
    try:
        check_model(PARAMS, meta, "m.npz")
    except CheckpointError as error:
        assert "\n" not in str(error)


def checkpoint(**state_changes):
    state = dataclasses.replace(init_state(PARAMS, SETTINGS), epoch=1, step=1, total_steps=5,
                                history=[ENTRY])
    values = {k: getattr(state, k) for k in (
        "rng_state", "epoch", "step", "total_steps", "loss_sum", "hits", "seen", "history",
        "best_val_loss", "best_epoch", "bad_epochs", "first_loss")}
    values["best_val_loss"] = None
    tree = {"params": PARAMS, "opt_state": None, "best_params": None}
    run = {"settings": SETTINGS.to_json(), "data_dir": None,
           "data": {"fingerprint": "a" * 64, "image_shape": [2, 2], "num_classes": 2,
                    "examples": 10}}
    return tree, {"kind": "checkpoint", "run": run, "state": {**values, **state_changes}}


def test_a_good_checkpoint_passes():
    tree, meta = checkpoint()
    values, run = check_checkpoint(tree, meta, "c.npz")
    assert values["epoch"] == 1 and values["best_val_loss"] == np.inf
    assert run["data"]["num_classes"] == 2


@pytest.mark.parametrize("state_changes, words", [
    ({"epoch": "1"}, "state.epoch"), ({"epoch": 4}, "state.epoch"),
    ({"step": 5}, "state.step"), ({"total_steps": 4}, "state.total_steps"),
    ({"hits": 3, "seen": 2}, "state.hits"), ({"history": []}, "one entry per"),
    ({"rng_state": {"bit_generator": "PCG64"}}, "rng_state"),
    ({"best_epoch": 2}, "best_epoch"), ({"loss_sum": float("inf")}, "loss_sum"),
])
def test_bad_state_fields(state_changes, words):
    tree, meta = checkpoint(**state_changes)
    with pytest.raises(CheckpointError, match=words):
        check_checkpoint(tree, meta, "c.npz")


def test_opt_state_and_best_params_must_fit():
    tree, meta = checkpoint()
    adam = build_model(SETTINGS).init(np.random.default_rng(1))
    with pytest.raises(CheckpointError, match="opt_state"):
        check_checkpoint({**tree, "opt_state": {"step": np.zeros(())}}, meta, "c.npz")
    with pytest.raises(CheckpointError, match="best_params"):
        check_checkpoint({**tree, "best_params": adam[:1]}, meta, "c.npz")
    bad = copy.deepcopy(meta)
    bad["run"]["settings"]["layers"] = [4, 5, 2]
    with pytest.raises(CheckpointError, match="shape"):
        check_checkpoint(tree, bad, "c.npz")

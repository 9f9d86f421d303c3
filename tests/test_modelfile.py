"""digits.modelfile: model files and checkpoints, the one loader, TrainedModel."""

import dataclasses

import numpy as np
import pytest
from test_archive import assert_same_tree, small_params
from test_archive import load_model as load_params
from test_archive import save_model as save_params

from autodiff import tree_leaves
from digits import load_model as exported_load_model
from digits.archive import save
from digits.datasets import Dataset
from digits.modelfile import (
    TrainedModel,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from nets.activations import sigmoid, softmax
from nets.cnn import cnn, init_cnn
from nets.config import CNN, MLP
from nets.errors import CheckpointError, ConfigError, NetsError
from nets.mlp import init_mlp, mlp
from nets.training import init_state

DIGITS = {"dataset": "mnist", "class_names": [str(i) for i in range(10)],
          "image_shape": [28, 28]}
SMALL = dataclasses.replace(MLP, layers=(784, 8, 10))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)


def saved(tmp_path, settings=SMALL, params=None, **meta):
    if params is None:
        params = init_mlp(np.random.default_rng(1), settings.layers)
    path = tmp_path / "m.npz"
    save_model(path, params, settings, {**DIGITS, **meta})
    return load_model(path), params


def test_load_model_is_exported_by_the_package():
    assert exported_load_model is load_model


def test_a_trained_model_has_what_it_was_saved_with(tmp_path):
    model, params = saved(tmp_path, test_accuracy=0.5)
    assert isinstance(model, TrainedModel) and model.kind == "mlp"
    assert model.settings == SMALL and model.meta["test_accuracy"] == 0.5
    assert model.meta["normalisation"] == {"mean": 0.0, "std": 1.0}
    assert set(model.meta["versions"]) == {"digits-from-scratch", "numpy", "python"}
    for a, b in zip(tree_leaves(model.params), tree_leaves(params)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert model.num_params == 784 * 8 + 8 + 8 * 10 + 10


def test_logits_probabilities_and_predictions(tmp_path, images):
    model, params = saved(tmp_path)
    logits = model.logits(images)
    np.testing.assert_array_equal(logits, mlp(params, images.reshape(5, 784)))
    np.testing.assert_array_equal(model.logits(images.reshape(5, 784)), logits)
    proba = model.predict_proba(images)
    assert proba.dtype == np.float32 and proba.shape == (5, 10)
    np.testing.assert_allclose(proba, softmax(logits), rtol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert model.predict(images).tolist() == np.argmax(logits, axis=1).tolist()
    with pytest.raises(ConfigError, match="784 pixels, got 100"):
        model.logits(np.zeros((2, 10, 10)))


def test_test_gives_loss_accuracy_confusions_and_probabilities(tmp_path):
    model, params = saved(tmp_path)
    rng = np.random.default_rng(2)
    dataset = Dataset("mnist", rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
                      rng.integers(0, 10, 6, dtype=np.uint8),
                      rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
                      rng.integers(0, 10, 40, dtype=np.uint8), tuple(DIGITS["class_names"]))
    loss, accuracy, matrix, probabilities = model.test(dataset)
    images = dataset.test_images.reshape(40, 784) / np.float32(255)
    want = np.argmax(mlp(params, images), axis=1)
    assert accuracy == np.mean(want == dataset.test_labels)
    assert matrix.sum() == 40 and np.trace(matrix) == np.sum(want == dataset.test_labels)
    assert matrix[dataset.test_labels[0], want[0]] >= 1
    np.testing.assert_allclose(probabilities, model.predict_proba(dataset.test_images / 255.0),
                               rtol=1e-6)
    assert loss == pytest.approx(model.evaluate(images, dataset.test_labels)[0])


def test_mse_models_report_normalised_sigmoid_outputs(tmp_path, images):
    model, _ = saved(tmp_path, dataclasses.replace(SMALL, cost="mse"))
    outputs = sigmoid(model.logits(images))
    np.testing.assert_allclose(model.predict_proba(images),
                               outputs / outputs.sum(axis=1, keepdims=True), rtol=1e-6)


def test_the_normalisation_is_applied_inside(tmp_path, images):
    model, params = saved(tmp_path, normalisation={"mean": 0.5, "std": 2.0})
    np.testing.assert_allclose(model.logits(images),
                               mlp(params, (images.reshape(5, 784) - 0.5) / 2.0), rtol=1e-6)


def test_a_cnn_round_trips_and_is_checked(tmp_path, images):
    params = init_cnn(np.random.default_rng(2), channels=CNN.channels)
    model, _ = saved(tmp_path, CNN, params)
    assert model.kind == "cnn"
    np.testing.assert_allclose(model.logits(images), cnn(params, images.reshape(5, 784)),
                               rtol=1e-5)
    bad = init_cnn(np.random.default_rng(2), channels=CNN.channels, hidden=64)
    with pytest.raises(CheckpointError, match="parameter dense/0/b has shape"):
        save_model(tmp_path / "bad.npz", bad, CNN, DIGITS)


def test_summary_names_layers_parameters_dataset_and_accuracy(tmp_path):
    model, _ = saved(tmp_path, test_accuracy=0.9876)
    text = model.summary()
    assert "dense 784 -> 8, relu" in text and "dense 8 -> 10" in text
    assert f"{model.num_params:,}" in text and "mnist" in text and "98.76%" in text
    cnn_model, _ = saved(tmp_path, CNN, init_cnn(np.random.default_rng(0), channels=CNN.channels))
    assert "conv2d" in cnn_model.summary() and "not measured" in cnn_model.summary()


def test_check_fits_names_the_model_and_the_data(tmp_path):
    model, _ = saved(tmp_path)
    model.check_fits("mnist", 784, 10)
    with pytest.raises(CheckpointError, match=r"model .*m\.npz expects 784 inputs and 10 "
                                              "classes, but small has 196 and 10"):
        model.check_fits("small", 196, 10)


TINY_RUN = dataclasses.replace(MLP, layers=(4, 3, 2), batch_size=2, val_size=2, epochs=3)


def entry(epoch):
    return {"epoch": epoch, "train_loss": 0.5, "train_accuracy": 0.5, "val_loss": None,
            "val_accuracy": None, "lr": 0.001, "seconds": 0.1}


def tiny_checkpoint(**changes):
    """A consistent checkpoint of a 4-3-2 MLP on 10 examples (8 to train: 4 steps an epoch)."""
    params = init_mlp(np.random.default_rng(3), [4, 3, 2])
    state = dataclasses.replace(init_state(params, TINY_RUN), epoch=2, step=1, total_steps=9,
                                first_loss=2.5, history=[entry(1), entry(2)], **changes)
    run = {"settings": TINY_RUN.to_json(), "data_dir": None,
           "data": {"fingerprint": "0" * 64, "image_shape": [2, 2], "num_classes": 2,
                    "examples": 10}}
    return state, run


def test_checkpoints_round_trip_the_training_state(tmp_path):
    state, run = tiny_checkpoint()
    save_checkpoint(tmp_path / "c.npz", state, run)
    got, got_run = load_checkpoint(tmp_path / "c.npz")
    assert got_run == run and got.opt_state is None and got.best_params is None
    assert (got.epoch, got.step, got.first_loss, got.history) == (2, 1, 2.5, state.history)
    assert got.best_val_loss == np.inf and got.rng_state == state.rng_state
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(saved(tmp_path)[0].source.split(" ", 1)[1])


# ------------------------------------------------- structural checks on reading and saving
# (archive-level helpers: save_model/load_model of MLP params as the archive tests use them)



@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "good.npz"
    save_params(path, small_params(), {})
    return path


def test_save_model_load_model(tmp_path):
    params = small_params(sizes=(5, 4, 3, 2))
    path = tmp_path / "m.npz"
    save_params(str(path), params, {"accuracy": np.float64(0.9), "epochs": np.int64(2)})
    got, meta = load_params(path, expect_input_size=5, expect_classes=2)
    assert_same_tree(params, got)
    assert meta["settings"]["layers"] == [5, 4, 3, 2] and meta["kind"] == "model"
    assert meta["accuracy"] == 0.9 and meta["epochs"] == 2


def model_meta(layers, **extra):
    return {"kind": "model", "settings": dataclasses.replace(MLP, layers=layers).to_json(),
            "dataset": "mnist", "class_names": [str(i) for i in range(layers[-1])],
            "image_shape": [28, 28], "normalisation": {"mean": 0.0, "std": 1.0}, **extra}


def test_shapes_disagreeing_with_the_settings(tmp_path):
    path = tmp_path / "m.npz"
    params = small_params()
    save(path, {"params": params}, model_meta((4, 5, 2)))
    with pytest.raises(CheckpointError, match=r"parameter 0/b has shape \(3,\).*\(5,\)"):
        load_params(path)
    save(path, {"params": params[:1]}, model_meta((4, 3, 2)))
    with pytest.raises(CheckpointError, match="laid out as"):
        load_params(path)
    save(path, {"params": params}, {**model_meta((4, 3, 2)), "settings": {"layers": 3}})
    with pytest.raises(CheckpointError, match="layers must be a list"):
        load_params(path)
    save(path, {"params": params, "extra": None}, model_meta((4, 3, 2)))
    with pytest.raises(CheckpointError, match="exactly one 'params'"):
        load_params(path)
    save(path, {"params": [{"w": params[0]["w"]}]}, model_meta((4, 3)))
    with pytest.raises(CheckpointError, match="laid out as"):
        load_params(path)


def test_non_finite_weights_and_wrong_kind(tmp_path):
    params = small_params()
    params[1]["b"][0] = np.nan
    save(tmp_path / "m.npz", {"params": params}, model_meta((4, 3, 2)))
    with pytest.raises(CheckpointError, match="parameter 1/b contains NaN"):
        load_params(tmp_path / "m.npz")
    save(tmp_path / "c.npz", {"params": small_params()}, {"kind": "checkpoint"})
    with pytest.raises(CheckpointError, match="'checkpoint' file, not a model"):
        load_params(tmp_path / "c.npz")


def test_expected_sizes(model_file):
    with pytest.raises(CheckpointError, match="expects 4 inputs and 2 classes, but the data "
                                              "has 784"):
        load_params(model_file, expect_input_size=784)
    with pytest.raises(CheckpointError, match="but the data has 4 and 10"):
        load_params(model_file, expect_classes=10)
    assert load_params(model_file, expect_input_size=4, expect_classes=2)[1]["settings"][
        "layers"] == [4, 3, 2]


def test_save_model_checks_shapes_and_reports_unwritable_dirs(tmp_path):
    settings = dataclasses.replace(MLP, layers=(4, 3, 5))
    with pytest.raises(CheckpointError, match="parameter 1/b has shape"):
        save_model(tmp_path / "m.npz", small_params(), settings, {
            "dataset": "mnist", "class_names": list("abcde"), "image_shape": [28, 28]})
    save_params(tmp_path / "new-directory" / "m.npz", small_params(), {})  # made on the way
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NetsError, match="a-file"):
        save_params(tmp_path / "a-file" / "m.npz", small_params(), {})

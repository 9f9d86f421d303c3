"""train.py through `train.main([...])`, in-process, on small fake IDX files.

Every run passes --data-dir (nothing is downloaded) and --save into tmp_path. One test
trains briefly on the real MNIST copy as a regression guard.
"""

import dataclasses
import json
import os
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli
from idx_helpers import FILE_NAMES, fake_mnist, write_fake_mnist, write_idx

import train
from digits.modelfile import load_model, save_model
from nets.config import CNN, MLP
from nets.errors import CheckpointError, ConfigError, DataError

N_TRAIN, N_TEST, VAL = 320, 60, 50  # 270 to train: a default batch (256) fits
TINY = ["--layers", "784,16,10", "--epochs", "1", "--val-size", str(VAL), "--quiet"]
HISTORY_KEYS = {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"}


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    monkeypatch.delenv("DIGITS_DEBUG", raising=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("fake-mnist")
    write_fake_mnist(directory, N_TRAIN, N_TEST, np.random.default_rng(1))
    return directory


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Path:
    """A model trained once for the tests that load one."""
    path = tmp_path_factory.mktemp("model") / "m.npz"
    code = train.main(["--data-dir", str(data_dir), "--save", str(path), *TINY,
                       "--epochs", "2", "--lr", "0.01"])
    assert code == 0
    return path


def assert_one_error_line(err: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def assert_usage_error(code, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and lines[0].endswith(" (see --help)")
    for word in words:
        assert word in lines[0], (word, lines[0])


def model_accuracy(path: Path, data_dir: Path) -> float:
    """The saved model's accuracy on the fake test set, computed without train.py."""
    arrays = fake_mnist(N_TRAIN, N_TEST, np.random.default_rng(1))
    predicted = load_model(path).predict(arrays["test_images"] / np.float32(255))
    return float(np.mean(predicted == arrays["test_labels"]))


# ------------------------------------------------------------------------- training


def test_training_run_saves_a_model_and_a_report(capsys, tmp_path, data_dir):
    model, report = tmp_path / "out" / "m.npz", tmp_path / "r.json"
    code, out, err = cli(capsys, "--data-dir", data_dir, "--layers", "784,16,10",
                         "--epochs", "2", "--val-size", VAL, "--save", model,
                         "--report", report, "--quiet")
    assert code == 0, err
    loaded = load_model(model)
    assert [p["w"].shape for p in loaded.params] == [(784, 16), (16, 10)]
    assert loaded.settings.layers == (784, 16, 10) and loaded.meta["kind"] == "model"

    saved = json.loads(report.read_text())
    assert saved["test_accuracy"] == pytest.approx(model_accuracy(model, data_dir))
    assert np.isfinite(saved["test_loss"]) and saved["test_loss"] > 0
    assert len(saved["epochs"]) == 2
    for entry in saved["epochs"]:
        assert HISTORY_KEYS <= set(entry)
        assert all(isinstance(entry[key], float) for key in HISTORY_KEYS)
    assert saved["config"]["settings"]["layers"] == [784, 16, 10]
    assert saved["config"]["settings"]["epochs"] == 2
    assert saved["config"]["settings"]["val_size"] == VAL
    # Quiet: only the result line.
    assert out.strip().splitlines() == [out.strip()] and out.startswith("test accuracy")


def test_training_prints_one_line_per_epoch_and_the_accuracy(capsys, tmp_path, data_dir):
    model = tmp_path / "m.npz"
    code, out, err = cli(capsys, "--data-dir", data_dir, "--layers", "784,16,10",
                         "--epochs", "3", "--val-size", VAL, "--save", model)
    assert code == 0, err
    lines = out.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/3", "2/3", "3/3"]
    assert all("train loss" in line and "val loss" in line for line in epoch_lines)
    accuracy = [line for line in lines if line.startswith("test accuracy")]
    assert len(accuracy) == 1
    assert f"{100 * model_accuracy(model, data_dir):.2f}%" in accuracy[0]
    assert str(model) in out


def test_seed_recipe(capsys, tmp_path, data_dir):
    model = tmp_path / "seed.npz"
    code, _, err = cli(capsys, "--data-dir", data_dir, "--recipe", "seed", "--epochs", "2",
                       "--val-size", VAL, "--save", model, "--quiet")
    assert code == 0, err
    loaded = load_model(model)
    assert loaded.settings.layers == (784, 100, 64, 28, 10)
    assert [p["w"].shape for p in loaded.params] == [(784, 100), (100, 64), (64, 28), (28, 10)]
    config = loaded.settings
    assert config.cost == "mse" and config.activation == "relu" and config.init == "normal"
    assert config.optimizer == "sgd" and config.batch_size == 0
    assert config.lr == 0.1 and config.schedule == "constant" and config.epochs == 2
    assert len(loaded.meta["history"]) == 2


@pytest.mark.parametrize("options", [
    ["--cost", "mse"],
    ["--optimizer", "sgd", "--lr", "0.1"],
    ["--optimizer", "momentum", "--lr", "0.05"],
    ["--optimizer", "nesterov", "--lr", "0.05"],
    ["--schedule", "step"],
    ["--schedule", "cosine"],
    ["--schedule", "constant"],
    ["--activation", "tanh"],
    ["--activation", "sigmoid"],
    ["--init", "xavier"],
    ["--init", "normal", "--init-scale", "0.05"],
    ["--batch-size", "0"],
    ["--weight-decay", "0.01"],
    ["--patience", "1", "--epochs", "2"],
    ["--val-size", "0"],
])
def test_options_train(capsys, tmp_path, data_dir, options):
    model = tmp_path / "m.npz"
    code, out, err = cli(capsys, "--data-dir", data_dir, "--save", model, *TINY, *options)
    assert code == 0, err
    loaded = load_model(model)
    meta, settings = loaded.meta, loaded.settings
    given = dict(zip(options[::2], options[1::2]))
    recorded = {"--cost": settings.cost, "--activation": settings.activation,
                "--init": settings.init, "--optimizer": settings.optimizer,
                "--schedule": settings.schedule}
    for flag, value in given.items():
        if flag in recorded:
            assert recorded[flag] == value
    assert np.isfinite(meta["test_loss"]) and "test accuracy" in out


# ------------------------------------------------------------------------ evaluation


def confusion_counts(out: str) -> np.ndarray:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    rows = lines[start + 2:start + 12]
    return np.array([[int(n) for n in row.split()[1:11]] for row in rows])


def test_evaluate_prints_accuracy_and_confusion_matrix(capsys, tmp_path, data_dir, trained):
    report = tmp_path / "eval.json"
    code, out, err = cli(capsys, "--load", trained, "--evaluate", "--data-dir", data_dir,
                         "--report", report)
    assert code == 0, err
    matrix = confusion_counts(out)
    assert matrix.shape == (10, 10) and matrix.sum() == N_TEST
    arrays = fake_mnist(N_TRAIN, N_TEST, np.random.default_rng(1))
    assert np.array_equal(matrix.sum(axis=1), np.bincount(arrays["test_labels"], minlength=10))
    accuracy = model_accuracy(trained, data_dir)
    assert f"test accuracy {100 * accuracy:.2f}%" in out
    assert f"({np.trace(matrix)}/{N_TEST})" in out
    assert np.trace(matrix) == round(accuracy * N_TEST)
    saved = json.loads(report.read_text())
    assert saved["test_accuracy"] == pytest.approx(accuracy)
    assert len(saved["epochs"]) == 2 and HISTORY_KEYS <= set(saved["epochs"][0])
    assert saved["config"]["settings"]["layers"] == [784, 16, 10]


# ---------------------------------------------------------------- argument errors


@pytest.mark.parametrize("options, words", [
    (["--layers", "784,0,10"], ["--layers", "positive"]),
    (["--layers", "784,-16,10"], ["--layers", "positive"]),
    (["--layers=-784,16,10"], ["--layers", "positive"]),
    (["--layers", "784"], ["--layers", "two"]),
    (["--layers", "784,ten"], ["--layers", "integers"]),
    (["--lr", "0"], ["--lr", "positive"]),
    (["--lr", "-1"], ["--lr"]),
    (["--lr", "nan"], ["--lr", "positive"]),
    (["--lr", "fast"], ["--lr"]),
    (["--batch-size", "-1"], ["--batch-size", "at least 0"]),
    (["--epochs", "0"], ["--epochs", "at least 1"]),
    (["--epochs", "1.5"], ["--epochs", "invalid int value"]),
    (["--val-size", "-5"], ["--val-size"]),
    (["--cost", "hinge"], ["--cost", "hinge"]),
    (["--optimizer", "adagrad"], ["--optimizer", "adagrad"]),
    (["--activation", "gelu"], ["--activation", "gelu"]),
    (["--schedule", "linear"], ["--schedule", "linear"]),
    (["--init", "zeros"], ["--init", "zeros"]),
    (["--weight-decay", "-0.1"], ["--weight-decay"]),
    (["--predict", "a.png"], ["--predict", "--load"]),
    (["--evaluate"], ["--evaluate", "--load"]),
    (["--serve"], ["--serve", "--load"]),
    (["--export-onnx", "m.onnx"], ["--export-onnx", "--load"]),
    (["--serve", "--port", "http"], ["--port", "invalid int value"]),
    (["--model", "cnn", "--layers", "784,10"], ["--layers", "cnn"]),
    (["--channels", "8,16"], ["--channels", "cnn"]),
    (["--model", "cnn", "--channels", "8,0"], ["--channels", "positive"]),
    (["--patience", "2", "--val-size", "0"], ["--patience", "--val-size"]),
])
def test_bad_arguments_are_usage_errors(capsys, tmp_path, data_dir, options, words):
    code, out, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz",
                         *options)
    assert_usage_error(code, err, *words)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("layers", ["100,16,10", "784,16,9", "784,16,11", "10,784"])
def test_layers_that_do_not_fit_the_data(capsys, tmp_path, data_dir, layers):
    # Whether the sizes fit depends on the data, so this is found after loading it.
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *TINY,
                       "--layers", layers)
    assert code == 1
    assert_one_error_line(err, f"--layers {layers}", "784 input pixels", "10 classes")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("batch_size", [N_TRAIN - VAL + 1, 10**6])
def test_batch_size_larger_than_the_data(capsys, tmp_path, data_dir, batch_size):
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *TINY,
                       "--batch-size", batch_size)
    assert code == 1
    assert_one_error_line(err, f"batch size {batch_size}", f"{N_TRAIN - VAL} training")


def test_batch_size_equal_to_the_data_is_fine(capsys, tmp_path, data_dir):
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *TINY,
                       "--batch-size", N_TRAIN - VAL)
    assert code == 0, err


def test_val_size_larger_than_the_data(capsys, tmp_path, data_dir):
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *TINY,
                       "--val-size", N_TRAIN)
    assert code == 1
    assert_one_error_line(err, "validation size", str(N_TRAIN))


def test_load_without_an_action(capsys, tmp_path, data_dir, trained):
    code, _, err = cli(capsys, "--data-dir", data_dir, "--load", trained)
    assert code == 1
    assert_one_error_line(err, "--evaluate", "--predict")


# -------------------------------------------------------------------- data errors


def missing_dir(root: Path) -> Path:
    return root / "missing"


def empty_dir(root: Path) -> Path:
    root.mkdir()
    return root


def a_file(root: Path) -> Path:
    root.write_text("not a directory")
    return root


def truncated_gzip(root: Path) -> Path:
    write_fake_mnist(root, 40, 20)
    path = root / FILE_NAMES[0]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return root


@pytest.mark.parametrize("make, words", [
    (missing_dir, ["does not exist"]),
    (empty_dir, ["is empty", FILE_NAMES[0]]),
    (a_file, ["is a file, not a directory"]),
    (truncated_gzip, ["truncated", FILE_NAMES[0]]),
])
def test_data_errors_end_in_one_line(capsys, tmp_path, make, words):
    target = make(tmp_path / "data")
    argv = ["--data-dir", target, "--save", tmp_path / "m.npz", *TINY]
    code, _, err = cli(capsys, *argv)
    assert code == 1
    assert_one_error_line(err, str(target), *words)
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(DataError, match=words[0]):
        train.main([str(a) for a in argv] + ["--debug"])


def test_debug_environment_variable_shows_the_exception(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITS_DEBUG", "1")
    with pytest.raises(DataError, match="does not exist"):
        train.main(["--data-dir", str(tmp_path / "nowhere"), "--save", str(tmp_path / "m.npz")])


def test_evaluate_with_a_data_error(capsys, tmp_path, trained):
    code, _, err = cli(capsys, "--load", trained, "--evaluate", "--data-dir", tmp_path)
    assert code == 1
    assert_one_error_line(err, "is empty")


# ------------------------------------------------------------------- model errors


def rewrite_meta(src: Path, dst: Path, change) -> Path:
    """Copy a model file, passing its meta.json header through `change`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "meta.json":
                header = json.loads(data)
                change(header)
                data = json.dumps(header).encode()
            zout.writestr(info.filename, data)
    return dst


class MakesMarker:
    """Unpickling this creates the directory `path`: proof that a file was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def pickle_npy(marker: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([MakesMarker(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_the_pickle_marker_works(tmp_path):
    # The marker would show an unpickling: check it does, with pickle allowed.
    np.savez(tmp_path / "p.npz", w=np.array([MakesMarker(tmp_path / "proof")], dtype=object),
             allow_pickle=True)
    np.load(tmp_path / "p.npz", allow_pickle=True)["w"]
    assert (tmp_path / "proof").is_dir()
    pickle.loads(pickle.dumps(MakesMarker(tmp_path / "proof2")))
    assert (tmp_path / "proof2").is_dir()


def pickled_plain_npz(tmp_path: Path, trained: Path, marker: Path) -> Path:
    path = tmp_path / "pickled.npz"
    np.savez(path, w=np.array([MakesMarker(marker)], dtype=object), allow_pickle=True)
    return path


def _with_pickled_weights(trained: Path, path: Path, marker: Path, claimed_dtype: str) -> Path:
    """A copy of a real model whose first weight member is a pickled object array, with
    meta.json listing that member as `claimed_dtype`."""
    with zipfile.ZipFile(trained) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "params/0/w.npy":
                data = pickle_npy(marker)
            elif info.filename == "meta.json":
                header = json.loads(data)
                header["arrays"]["params/0/w"] = {"shape": [1], "dtype": claimed_dtype}
                data = json.dumps(header).encode()
            zout.writestr(info.filename, data)
    return path


def pickled_model(tmp_path: Path, trained: Path, marker: Path) -> Path:
    """meta.json honestly lists the member as an object array."""
    return _with_pickled_weights(trained, tmp_path / "pickled-model.npz", marker, "|O")


def pickled_member_only(tmp_path: Path, trained: Path, marker: Path) -> Path:
    """meta.json claims float32: only the member's own .npy header says object."""
    return _with_pickled_weights(trained, tmp_path / "pickled-member.npz", marker, "<f4")


@pytest.mark.parametrize("make", [pickled_plain_npz, pickled_model, pickled_member_only])
@pytest.mark.parametrize("action", [["--evaluate"], ["--predict", "digit.png"]])
def test_pickle_in_a_model_file_is_refused_unread(capsys, tmp_path, data_dir, trained, make,
                                                  action):
    marker = tmp_path / "unpickled"
    path = make(tmp_path, trained, marker)
    code, _, err = cli(capsys, "--load", path, *action, "--data-dir", data_dir)
    assert code == 1
    assert_one_error_line(err, str(path))
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("change, words", [
    (lambda h: h["meta"]["settings"].update(layers=[784, 32, 10]), ["rebuild", "shape"]),
    (lambda h: h["meta"]["settings"].update(layers=[784, 16, 16, 10]), ["rebuild"]),
    (lambda h: h["meta"].pop("settings"), []),
    (lambda h: h["meta"]["settings"].update(cost="hinge"), ["hinge"]),
    (lambda h: h["meta"]["settings"].update(activation="gelu"), ["gelu"]),
    (lambda h: h["meta"]["settings"].update(model="transformer"), ["transformer"]),
    (lambda h: h["meta"].update(normalisation="divide-255"), ["normalisation"]),
    (lambda h: h.update(kind="checkpoint"), ["not a model"]),
])
def test_model_with_mismatched_metadata(capsys, tmp_path, data_dir, trained, change, words):
    path = rewrite_meta(trained, tmp_path / "bad.npz", change)
    code, _, err = cli(capsys, "--load", path, "--evaluate", "--data-dir", data_dir)
    assert code == 1
    assert_one_error_line(err, str(path), *words)
    with pytest.raises(CheckpointError):
        train.main(["--load", str(path), "--evaluate", "--data-dir", str(data_dir), "--debug"])


@pytest.mark.parametrize("content", [b"just some text\n", b"", b"PK\x03\x04broken"])
def test_load_of_a_file_that_is_not_a_model(capsys, tmp_path, data_dir, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    code, _, err = cli(capsys, "--load", path, "--evaluate", "--data-dir", data_dir)
    assert code == 1
    assert_one_error_line(err, str(path))


def test_load_of_a_missing_model(capsys, tmp_path, data_dir):
    code, _, err = cli(capsys, "--load", tmp_path / "none.npz", "--evaluate",
                       "--data-dir", data_dir)
    assert code == 1
    assert_one_error_line(err, "none.npz", "no such")


def test_load_of_a_training_checkpoint(capsys, tmp_path, data_dir):
    checkpoint = tmp_path / "c.npz"
    assert cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz",
               "--checkpoint", checkpoint, *TINY)[0] == 0
    code, _, err = cli(capsys, "--load", checkpoint, "--evaluate", "--data-dir", data_dir)
    assert code == 1
    assert_one_error_line(err, str(checkpoint), "checkpoint")


@pytest.fixture(scope="module")
def small_images_dir(tmp_path_factory) -> Path:
    """Fake data of 14x14 images."""
    directory = tmp_path_factory.mktemp("fake-14x14")
    arrays = fake_mnist(N_TRAIN, N_TEST, np.random.default_rng(2), image_shape=(14, 14))
    fields = ("train_images", "train_labels", "test_images", "test_labels")
    for name, field in zip(FILE_NAMES, fields):
        write_idx(directory / name, arrays[field])
    return directory


def test_model_whose_input_size_differs_from_the_data(capsys, trained, small_images_dir):
    code, _, err = cli(capsys, "--load", trained, "--evaluate", "--data-dir", small_images_dir)
    assert code == 1
    assert_one_error_line(err, str(trained), "784 inputs", "196")


def test_model_for_other_inputs_on_mnist_shaped_data(capsys, tmp_path, data_dir,
                                                     small_images_dir):
    model = tmp_path / "small.npz"
    code, _, err = cli(capsys, "--data-dir", small_images_dir, "--save", model, *TINY,
                       "--layers", "196,16,10")
    assert code == 0, err
    assert load_model(model).meta["image_shape"] == [14, 14]
    code, _, err = cli(capsys, "--load", model, "--evaluate", "--data-dir", data_dir)
    assert code == 1
    assert_one_error_line(err, "196 inputs", "784")


def test_model_with_a_different_number_of_classes(capsys, tmp_path, data_dir):
    path = tmp_path / "eleven.npz"
    params = [{"w": np.zeros((784, 11), np.float32), "b": np.zeros(11, np.float32)}]
    save_model(path, params, replace(MLP, layers=(784, 11), cost="mse"), {
        "dataset": "mnist", "class_names": [str(i) for i in range(11)], "image_shape": [28, 28]})
    code, _, err = cli(capsys, "--load", path, "--evaluate", "--data-dir", data_dir)
    assert code == 1
    assert_one_error_line(err, "11 classes")


def test_error_types_are_the_projects_own(tmp_path, data_dir):
    with pytest.raises(ConfigError, match="does not fit"):
        train.main(["--data-dir", str(data_dir), "--save", str(tmp_path / "m.npz"), *TINY,
                    "--layers", "100,10", "--debug"])


# ------------------------------------------------------------------- real MNIST


def test_real_mnist_trains_well_above_chance(capsys, tmp_path, mnist_dir):
    report = tmp_path / "r.json"
    code, _, err = cli(capsys, "--data-dir", mnist_dir, "--layers", "784,32,10",
                       "--epochs", "1", "--batch-size", "256", "--val-size", "1000",
                       "--save", tmp_path / "m.npz", "--report", report,
                       "--quiet")
    assert code == 0, err
    saved = json.loads(report.read_text())
    assert saved["test_accuracy"] > 0.80, saved["test_accuracy"]
    assert saved["epochs"][0]["val_accuracy"] > 0.80


# ------------------------------------------------------------- flags, help, divergence


def test_layers_with_commas_or_spaces(capsys, tmp_path, data_dir):
    for name, layers in (("commas.npz", ["784,16,10"]), ("spaces.npz", ["784", "16", "10"])):
        code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / name,
                           "--epochs", "1", "--val-size", VAL, "--quiet", "--layers", *layers)
        assert code == 0, err
    a, b = load_model(tmp_path / "commas.npz"), load_model(tmp_path / "spaces.npz")
    assert a.settings == b.settings and a.settings.layers == (784, 16, 10)


def test_help_shows_each_default_once(capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "default: " not in text
    for flag, default in (("--epochs EPOCHS", f"10; cnn {CNN.epochs}"),
                          ("--lr LR", f"{MLP.lr}; cnn {CNN.lr}"),
                          ("--batch-size SIZE", f"{MLP.batch_size}; cnn {CNN.batch_size}"),
                          ("--layers LAYERS", "784,256,128,10"),
                          ("--channels CHANNELS", None)):
        section = text.rsplit(flag, 1)[1].split(" --", 1)[0]  # the help line, not the usage
        if default is None:  # no mlp default: only the cnn's
            assert "(default" not in section and \
                f"(cnn {','.join(map(str, CNN.channels))})" in section, section
        else:
            assert section.count("(default") == 1 and f"(default {default})" in section, section


@pytest.mark.parametrize("argv, suggestion", [
    (["--lrr", "0.1"], "--lr"), (["--optimiser=sgd"], "--optimizer"),
    (["--epochs", "1", "--bach-size", "8"], "--batch-size"), (["--layer", "784", "10", "--sed"],
                                                              "--seed")])
def test_an_unknown_flag_gets_a_did_you_mean(capsys, argv, suggestion):
    code, out, err = cli(capsys, *argv)
    assert_usage_error(code, err, f"did you mean {suggestion}?")
    assert out == ""


def test_an_unknown_word_without_a_close_flag_gets_no_guess(capsys):
    for argv in (["--xyzzy"], ["stray"]):
        code, _, err = cli(capsys, *argv)
        assert_usage_error(code, err, "unrecognized arguments: " + argv[0])
        assert "did you mean" not in err


def test_a_loss_that_explodes_stops_like_nan_and_saves_nothing(capsys, tmp_path, data_dir):
    model = tmp_path / "m.npz"
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", model, *TINY,
                       "--lr", "1e6", "--optimizer", "sgd", "--batch-size", "16")
    assert code == 1
    assert_one_error_line(err, "training diverged", "--lr")
    assert not model.exists()


def test_the_cnn_trains_saves_and_evaluates(capsys, tmp_path, data_dir):
    model = tmp_path / "cnn.npz"
    code, out, err = cli(capsys, "--data-dir", data_dir, "--save", model, "--model", "cnn",
                         "--epochs", "1", "--val-size", VAL, "--batch-size", "50", "--quiet")
    assert code == 0, err
    loaded = load_model(model)
    assert loaded.kind == "cnn" and loaded.settings == dataclasses.replace(
        CNN, epochs=1, val_size=VAL, batch_size=50)
    assert f"{100 * model_accuracy(model, data_dir):.2f}%" in out
    code, out, err = cli(capsys, "--load", model, "--evaluate", "--data-dir", data_dir)
    assert code == 0, err
    assert confusion_counts(out).sum() == N_TEST


def test_the_cnn_takes_its_conv_blocks_from_channels(capsys, tmp_path, data_dir):
    model = tmp_path / "cnn.npz"
    code, out, err = cli(capsys, "--data-dir", data_dir, "--save", model, "--model", "cnn",
                         "--channels", "4", "6", "2", "--epochs", "1", "--val-size", VAL,
                         "--quiet")
    assert code == 0, err
    loaded = load_model(model)
    assert loaded.settings.channels == (4, 6, 2)
    assert [layer["w"].shape[0] for layer in loaded.params["conv"]] == [4, 6, 2]

"""ONNX export: ONNX Runtime, running the exported graph, computes what our engine computes.

Models are trained briefly on 1,000 real MNIST images until they classify at least 75% of
300 test images, so that their weights are far from their initialisation and their
probabilities far from uniform; ONNX Runtime and our engine are compared on those images.
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cli_helpers import cli
from idx_helpers import write_fake_mnist

import train
from digits.onnx_export import IR_VERSION, OPSET, export_onnx, model_to_onnx
from nets.activations import sigmoid
from nets.checkpoint import save_model
from nets.costs import COSTS, PREDICTIONS
from nets.data import load_dataset, prepare_images
from nets.errors import CheckpointError, ConfigError
from nets.models import make_cnn, make_mlp
from nets.training import TrainConfig, evaluate, init_state, split
from nets.training import train as train_loop

N_TRAIN, N_TEST = 1000, 300
CASES = [("mlp", activation, cost) for activation in ("relu", "sigmoid", "tanh")
         for cost in COSTS] + [("cnn", "relu", cost) for cost in COSTS]


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    dataset = load_dataset("mnist", mnist_dir, progress=False)
    return (prepare_images(dataset.train_images[:N_TRAIN]),
            dataset.train_labels[:N_TRAIN].astype(np.int64),
            dataset.test_images[:N_TEST].astype(np.float32) / np.float32(255),
            dataset.test_labels[:N_TEST].astype(np.int64))


@pytest.fixture(scope="module")
def trained(mnist):
    """(kind, activation, cost) -> (model, params, meta), each trained once, on demand."""
    cache = {}

    def get(kind, activation, cost):
        if (kind, activation, cost) not in cache:
            cache[kind, activation, cost] = _train(mnist, kind, activation, cost)
        return cache[kind, activation, cost]

    return get


def _train(mnist, kind, activation, cost):
    train_x, train_labels, test_images, test_labels = mnist
    init = "he" if activation == "relu" else "xavier"
    model = (make_mlp([784, 32, 16, 10], activation, init) if kind == "mlp"
             else make_cnn(channels=(8, 16), hidden=32))
    config = TrainConfig(epochs=15, batch_size=20, lr=3e-3)
    data = split(train_x, train_labels, 0, 10, image_shape=(28, 28))
    state = train_loop(init_state(model.init(np.random.default_rng(0)), config), model.apply,
                       COSTS[cost], data, config)
    _, accuracy, _ = evaluate(model.apply, state.params, COSTS[cost],
                              test_images.reshape(N_TEST, -1), test_labels, 10)
    assert accuracy > 0.75, f"{kind} {activation} {cost} learnt too little: {accuracy}"
    meta = {**model.config, "model": kind, "cost": cost, "dataset": "mnist",
            "normalisation": "divide-255", "image_shape": [28, 28], "test_accuracy": accuracy,
            "class_names": [str(i) for i in range(10)],
            "versions": {"digits-from-scratch": train.VERSION}}
    return model, state.params, meta


def engine_probabilities(model, params, cost, images):
    return np.asarray(PREDICTIONS[cost](model.apply(params, images.reshape(len(images), -1))))


def run_onnx(path_or_bytes, images):
    session = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"image": images})
    return probabilities


@pytest.mark.parametrize("kind, activation, cost", CASES)
def test_onnx_runtime_matches_the_engine(tmp_path, mnist, trained, kind, activation, cost):
    model, params, meta = trained(kind, activation, cost)
    images = mnist[2]
    path = tmp_path / "model.onnx"
    export_onnx(kind, params, meta, path)
    logits = np.asarray(model.apply(params, images.reshape(N_TEST, -1)))
    ours = np.asarray(PREDICTIONS[cost](logits))
    theirs = run_onnx(str(path), images)
    assert theirs.dtype == np.float32 and theirs.shape == (N_TEST, 10)
    rows = well_conditioned(logits, cost)
    assert rows.mean() > 0.75
    np.testing.assert_allclose(theirs[rows], ours[rows], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(theirs.argmax(axis=1), logits.argmax(axis=1))


def well_conditioned(logits, cost):
    """The rows whose probabilities both implementations compute to about 1e-6.

    An mse model's probabilities are its sigmoid outputs divided by their sum. Each output
    carries an absolute rounding error of about 1e-7, in our engine (sigmoid through tanh)
    and in ONNX Runtime alike, so in a row whose outputs sum to S the probabilities are
    only good to about 1e-6 / S. Rows with S below 0.05, where the model sees no digit,
    are compared by their argmax only."""
    if cost == "cross-entropy":
        return np.ones(len(logits), dtype=bool)
    return np.asarray(sigmoid(logits)).sum(axis=1) >= 0.05


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_the_batch_size_is_dynamic(mnist, trained, kind):
    model, params, meta = trained(kind, "relu", "cross-entropy")
    proto = model_to_onnx(kind, params, meta)
    (dim, *_) = proto.graph.input[0].type.tensor_type.shape.dim
    assert dim.dim_param == "N"
    for n in (1, 300):
        images = mnist[2][:n]
        probabilities = run_onnx(proto.SerializeToString(), images)
        assert probabilities.shape == (n, 10)
        np.testing.assert_allclose(
            probabilities, engine_probabilities(model, params, "cross-entropy", images),
            rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_the_file_passes_the_full_check(tmp_path, trained, kind):
    _, params, meta = trained(kind, "relu", "mse")
    path = tmp_path / "model.onnx"
    export_onnx(kind, params, meta, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == IR_VERSION and OPSET >= 13
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    (image,), (output,) = proto.graph.input, proto.graph.output
    assert image.name == "image" and output.name == "probabilities"
    float32 = onnx.TensorProto.FLOAT
    assert image.type.tensor_type.elem_type == output.type.tensor_type.elem_type == float32
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == ["N", 28, 28]
    assert [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim] == ["N", 10]


def test_the_metadata_goes_into_metadata_props(trained):
    _, params, meta = trained("mlp", "tanh", "mse")
    props = {p.key: p.value for p in model_to_onnx("mlp", params, meta).metadata_props}
    assert props["model"] == "mlp" and props["layers"] == "784-32-16-10"
    assert props["activation"] == "tanh" and props["cost"] == "mse"
    assert props["dataset"] == "mnist" and props["version"] == train.VERSION
    assert float(props["test_accuracy"]) == pytest.approx(meta["test_accuracy"], abs=1e-6)
    _, params, meta = trained("cnn", "relu", "cross-entropy")
    props = {p.key: p.value for p in model_to_onnx("cnn", params, meta).metadata_props}
    assert props["layers"] == ("conv 3x3 8, relu, max pool 2, conv 3x3 16, relu, max pool 2, "
                               "dense 32, relu, dense 10")


# ------------------------------------------------------------------------------ errors


def random_mlp():
    model = make_mlp([784, 8, 10])
    return model.init(np.random.default_rng(0)), {**model.config, "cost": "cross-entropy"}


@pytest.mark.parametrize("kind, change, words", [
    ("rnn", {}, "kind 'rnn'"),
    ("mlp", {"activation": "softplus"}, "activation 'softplus'"),
    ("mlp", {"cost": "hinge"}, "cost 'hinge'"),
    ("mlp", {"normalisation": "standardise"}, "scaled 'standardise'"),
])
def test_models_it_cannot_export(tmp_path, kind, change, words):
    params, meta = random_mlp()
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ConfigError, match=words):
        export_onnx(kind, params, {**meta, **change}, path)
    assert path.read_bytes() == b"previous"


def test_without_the_onnx_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    params, meta = random_mlp()
    with pytest.raises(ConfigError, match=r"pip install '\.\[onnx\]'"):
        export_onnx("mlp", params, meta, tmp_path / "m.onnx")


@pytest.mark.parametrize("where, words", [
    (lambda tmp: tmp, "is a directory"),
    (lambda tmp: tmp / "missing" / "m.onnx", "No such file or directory"),
])
def test_paths_it_cannot_write(tmp_path, where, words):
    params, meta = random_mlp()
    with pytest.raises(CheckpointError, match=words):
        export_onnx("mlp", params, meta, where(tmp_path))


def test_a_read_only_directory(tmp_path):
    params, meta = random_mlp()
    tmp_path.chmod(0o555)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("this user (root) may write into read-only directories")
        with pytest.raises(CheckpointError, match="Permission denied"):
            export_onnx("mlp", params, meta, tmp_path / "m.onnx")
        assert list(tmp_path.iterdir()) == []
    finally:
        tmp_path.chmod(0o755)


# ------------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fake-mnist")
    write_fake_mnist(directory, 120, 40, np.random.default_rng(1))
    return directory


@pytest.mark.parametrize("model", [["--layers", "784,16,10"], ["--model", "cnn"]])
def test_export_from_the_command_line(capsys, tmp_path, data_dir, model):
    saved, out = tmp_path / "m.npz", tmp_path / "m.onnx"
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", saved, *model, "--epochs",
                       "1", "--val-size", "20", "--batch-size", "20", "--quiet")
    assert code == 0, err
    code, stdout, err = cli(capsys, "--load", saved, "--export-onnx", out, "--evaluate",
                            "--data-dir", data_dir)
    assert code == 0, err
    assert f"exported to {out}" in stdout and "test accuracy" in stdout  # both actions ran
    loaded, params, meta = train.load_model_file(str(saved))
    images = np.random.default_rng(2).random((7, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(run_onnx(str(out), images),
                               engine_probabilities(loaded, params, meta["cost"], images),
                               rtol=0, atol=1e-5)


def test_command_line_errors(capsys, tmp_path):
    code, _, err = cli(capsys, "--export-onnx", tmp_path / "m.onnx")
    assert code == 2 and "--export-onnx needs a model: add --load MODEL" in err
    params, meta = random_mlp()
    saved = tmp_path / "m.npz"
    save_model(saved, params, meta)
    code, _, err = cli(capsys, "--load", saved, "--export-onnx", tmp_path / "no" / "m.onnx")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: cannot write")

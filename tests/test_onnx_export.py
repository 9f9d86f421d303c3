"""ONNX export: ONNX Runtime, running the exported graph, computes what our engine computes.

Models are trained briefly on 1,000 real MNIST images until they classify at least 75% of
300 test images, so that their weights are far from their initialisation and their
probabilities far from uniform; ONNX Runtime and our engine are compared on those images.
"""

import dataclasses
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cli_helpers import cli
from idx_helpers import write_fake_mnist

from digits.datasets import load_dataset
from digits.modelfile import PIXELS, VERSION, TrainedModel, load_model, save_model, versions
from digits.onnx_export import IR_VERSION, OPSET, export_onnx, model_to_onnx
from nets.activations import sigmoid
from nets.cnn import init_cnn
from nets.config import CNN, MLP
from nets.costs import COSTS
from nets.errors import CheckpointError, ConfigError
from nets.inputs import prepare_images
from nets.models import build_model
from nets.training import init_state, split
from nets.training import train as train_loop

N_TRAIN, N_TEST = 1000, 300
CLASSES = [str(i) for i in range(10)]
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
def trained(mnist, tmp_path_factory):
    """(kind, activation, cost) -> TrainedModel, each trained once, on demand, and loaded
    back from its model file."""
    cache = {}

    def get(kind, activation, cost):
        if (kind, activation, cost) not in cache:
            path = tmp_path_factory.mktemp("onnx") / "model.npz"
            cache[kind, activation, cost] = _train(mnist, path, kind, activation, cost)
        return cache[kind, activation, cost]

    return get


def _train(mnist, path, kind, activation, cost):
    """An MLP goes through a model file; the CNN is a smaller one than the program trains
    (8 and 16 channels, 32 hidden units), which the export reads from its shapes alike."""
    train_x, train_labels, test_images, test_labels = mnist
    settings = dataclasses.replace(
        MLP, layers=(784, 32, 16, 10), activation=activation,
        init="he" if activation == "relu" else "xavier") if kind == "mlp" else CNN
    settings = dataclasses.replace(settings, cost=cost, batch_size=20, lr=3e-3, val_size=0,
                                   epochs=15 if kind == "mlp" else 5, shift=0,
                                   schedule="constant")
    network = build_model(settings)
    rng = np.random.default_rng(0)
    params = network.init(rng) if kind == "mlp" else init_cnn(rng, channels=(8, 16), hidden=32)
    data = split(train_x, train_labels, 0, 10, image_shape=(28, 28))
    params = train_loop(init_state(params, settings), network.apply, COSTS[cost], data,
                        settings).params
    meta = {"dataset": "mnist", "class_names": CLASSES, "image_shape": [28, 28]}
    if kind == "mlp":
        save_model(path, params, settings, meta)
        model = load_model(path)
    else:
        model = TrainedModel("cnn", params, settings, {**meta, "normalisation": PIXELS,
                                                       "versions": versions()}, network)
    _, accuracy, _ = model.evaluate(test_images, test_labels)
    assert accuracy > 0.75, f"{kind} {activation} {cost} learnt too little: {accuracy}"
    return dataclasses.replace(model, meta={**model.meta, "test_accuracy": accuracy})


def run_onnx(path_or_bytes, images):
    session = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"image": images})
    return probabilities


@pytest.mark.parametrize("kind, activation, cost", CASES)
def test_onnx_runtime_matches_the_engine(tmp_path, mnist, trained, kind, activation, cost):
    model = trained(kind, activation, cost)
    images = mnist[2]
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    ours = model.predict_proba(images)
    theirs = run_onnx(str(path), images)
    assert theirs.dtype == np.float32 and theirs.shape == (N_TEST, 10)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(theirs.argmax(axis=1), model.predict(images))


def test_mse_rows_where_every_sigmoid_rounds_to_zero(tmp_path, mnist, trained):
    # Lowering the last biases drives every logit so far below 0 that the float32 sigmoid
    # outputs are all 0 (dividing them by their sum would give NaN), yet both
    # implementations give the same finite probabilities.
    model = trained("mlp", "relu", "mse")
    last = model.params[-1]
    model = dataclasses.replace(model, params=[*model.params[:-1],
                                               {"w": last["w"], "b": last["b"] - 40}])
    images = mnist[2]
    assert np.all(sigmoid(model.logits(images)) == 0)
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    ours, theirs = model.predict_proba(images), run_onnx(str(path), images)
    assert np.all(np.isfinite(ours)) and np.all(np.isfinite(theirs))
    np.testing.assert_allclose(theirs.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(theirs.argmax(axis=1), model.predict(images))


def test_the_normalisation_is_inside_the_graph(tmp_path, mnist, trained):
    model = trained("mlp", "relu", "cross-entropy")
    model = dataclasses.replace(
        model, meta={**model.meta, "normalisation": {"mean": 0.1307, "std": 0.3081}})
    images = mnist[2][:50]
    ops = {node.op_type for node in model_to_onnx(model).graph.node}
    assert {"Sub", "Div"} <= ops
    export_onnx(model, tmp_path / "model.onnx")
    np.testing.assert_allclose(run_onnx(str(tmp_path / "model.onnx"), images),
                               model.predict_proba(images), rtol=0, atol=1e-5)
    plain = {node.op_type for node in model_to_onnx(trained("mlp", "relu", "mse")).graph.node}
    assert not {"Sub", "Div"} & plain


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_the_batch_size_is_dynamic(mnist, trained, kind):
    model = trained(kind, "relu", "cross-entropy")
    proto = model_to_onnx(model)
    (dim, *_) = proto.graph.input[0].type.tensor_type.shape.dim
    assert dim.dim_param == "N"
    for n in (1, 300):
        images = mnist[2][:n]
        probabilities = run_onnx(proto.SerializeToString(), images)
        assert probabilities.shape == (n, 10)
        np.testing.assert_allclose(probabilities, model.predict_proba(images), rtol=0,
                                   atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_the_file_passes_the_full_check(tmp_path, trained, kind):
    path = tmp_path / "model.onnx"
    export_onnx(trained(kind, "relu", "mse"), path)
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
    model = trained("mlp", "tanh", "mse")
    props = {p.key: p.value for p in model_to_onnx(model).metadata_props}
    assert props["model"] == "mlp" and props["layers"] == "784-32-16-10"
    assert props["activation"] == "tanh" and props["cost"] == "mse"
    assert props["dataset"] == "mnist" and props["version"] == VERSION
    assert props["class_names"] == '["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]'
    assert float(props["test_accuracy"]) == pytest.approx(model.meta["test_accuracy"],
                                                           abs=1e-6)
    props = {p.key: p.value for p in model_to_onnx(trained("cnn", "relu", "cross-entropy"))
             .metadata_props}
    assert props["layers"] == ("conv 3x3 8, relu, max pool 2, conv 3x3 16, relu, max pool 2, "
                               "dense 32, relu, dense 10")


# ------------------------------------------------------------------------------ errors


@pytest.fixture(scope="module")
def random_mlp(tmp_path_factory):
    """A freshly initialised 784-8-10 MLP, as load_model gives it."""
    settings = dataclasses.replace(MLP, layers=(784, 8, 10))
    path = tmp_path_factory.mktemp("random") / "m.npz"
    save_model(path, build_model(settings).init(np.random.default_rng(0)), settings,
               {"dataset": "mnist", "class_names": CLASSES, "image_shape": [28, 28]})
    return load_model(path)


@pytest.mark.parametrize("change, words", [
    ({"kind": "rnn"}, "kind 'rnn'"),
    ({"activation": "softplus"}, "activation 'softplus'"),
    ({"cost": "hinge"}, "cost 'hinge'"),
])
def test_models_it_cannot_export(tmp_path, random_mlp, change, words):
    model = random_mlp
    if "kind" in change:
        model = dataclasses.replace(model, kind=change["kind"])
    else:  # settings no program could save: replace() does not check them
        model = dataclasses.replace(model, settings=dataclasses.replace(model.settings, **change))
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ConfigError, match=words):
        export_onnx(model, path)
    assert path.read_bytes() == b"previous"


def test_without_the_onnx_package(monkeypatch, tmp_path, random_mlp):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install '\.\[onnx\]'"):
        export_onnx(random_mlp, tmp_path / "m.onnx")


@pytest.mark.parametrize("where, words", [
    (lambda tmp: tmp, "is a directory"),
    (lambda tmp: tmp / "missing" / "m.onnx", "No such file or directory"),
])
def test_paths_it_cannot_write(tmp_path, random_mlp, where, words):
    with pytest.raises(CheckpointError, match=words):
        export_onnx(random_mlp, where(tmp_path))


def test_a_read_only_directory(tmp_path, random_mlp):
    tmp_path.chmod(0o555)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("this user (root) may write into read-only directories")
        with pytest.raises(CheckpointError, match="Permission denied"):
            export_onnx(random_mlp, tmp_path / "m.onnx")
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
    images = np.random.default_rng(2).random((7, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(run_onnx(str(out), images),
                               load_model(saved).predict_proba(images), rtol=0, atol=1e-5)


def test_command_line_errors(capsys, tmp_path, random_mlp):
    code, _, err = cli(capsys, "--export-onnx", tmp_path / "m.onnx")
    assert code == 2 and "--export-onnx needs --load MODEL" in err
    saved = tmp_path / "m.npz"
    save_model(saved, random_mlp.params, random_mlp.settings, random_mlp.meta)
    code, _, err = cli(capsys, "--load", saved, "--export-onnx", tmp_path / "no" / "m.onnx")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: cannot write")

"""bench/versus_pytorch.py and its PyTorch twin (bench/torch_twin.py): the PyTorch side
computes what ours does (logits, gradients, optimizer steps, whole training steps on the
same batches), and settings it does not match are refused. Skipped without PyTorch, which
is not a dependency of the project."""

import sys
from dataclasses import make_dataclass, replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0 "
                    "--index-url https://download.pytorch.org/whl/cpu): the head-to-head "
                    "benchmark is optional")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import torch_twin  # noqa: E402
import versus_pytorch  # noqa: E402

from nets.cnn import cnn, init_cnn  # noqa: E402
from nets.config import CNN, MLP, Settings  # noqa: E402
from nets.errors import ConfigError  # noqa: E402
from nets.models import build_model  # noqa: E402

TIGHT = 1e-12  # float64: the two sides differ only by rounding


def with_biases(params, rng, dtype):
    """Non-zero biases, so that a bias copied to the wrong place shows."""
    layers = params["conv"] + params["dense"] if isinstance(params, dict) else params
    for layer in layers:
        layer["b"] = (rng.standard_normal(layer["b"].shape) * 0.1).astype(dtype)
    return params


def small_mlp(rng, dtype=np.float64, activation="relu"):
    settings = replace(MLP, layers=(20, 7, 5, 3), activation=activation)
    network = build_model(settings)
    params = [{k: v.astype(dtype) for k, v in layer.items()} for layer in network.init(rng)]
    return settings, network.apply, with_biases(params, rng, dtype)


def small_cnn(rng, dtype=np.float64, side=12, kernel_size=3):
    params = init_cnn(rng, input_shape=(1, side, side), num_classes=3, channels=(3, 4),
                      hidden=6, kernel_size=kernel_size, dtype=dtype)
    return CNN, cnn, with_biases(params, rng, dtype)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("cost", ["cross-entropy", "mse"])
def test_mlp_forward_and_gradients_match(activation, cost):
    rng = np.random.default_rng(1)
    settings, apply, params = small_mlp(rng, activation=activation)
    settings = replace(settings, cost=cost)
    x, labels = rng.standard_normal((16, 20)), rng.integers(0, 3, 16)
    model = torch_twin.torch_model(settings, params)
    assert torch_twin.forward_gap(apply, params, model, x) < TIGHT
    assert torch_twin.gradient_gap(settings, apply, params, model, x, labels, 3) < TIGHT


# 12x12 images pool to a 3x3 map: a flatten in another order than (C, H, W) shows.
@pytest.mark.parametrize("side, kernel_size", [(12, 3), (12, 5), (8, 3)])
def test_cnn_forward_and_gradients_match(side, kernel_size):
    rng = np.random.default_rng(2)
    settings, apply, params = small_cnn(rng, side=side, kernel_size=kernel_size)
    x, labels = rng.random((16, side * side)), rng.integers(0, 3, 16)
    model = torch_twin.torch_model(settings, params)
    assert torch_twin.forward_gap(apply, params, model, x) < TIGHT
    assert torch_twin.gradient_gap(settings, apply, params, model, x, labels, 3) < TIGHT


def test_float32_forward_matches_to_the_bench_tolerance():
    rng = np.random.default_rng(3)
    for (settings, apply, params), inputs in ((small_mlp(rng, np.float32), 20),
                                              (small_cnn(rng, np.float32), 12 * 12)):
        x = rng.random((16, inputs)).astype(np.float32)
        model = torch_twin.torch_model(settings, params)
        assert torch_twin.forward_gap(apply, params, model, x) < versus_pytorch.FORWARD_TOLERANCE


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum", "nesterov"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_optimizer_steps_match(optimizer, weight_decay):
    rng = np.random.default_rng(4)
    settings, _, params = small_mlp(rng)
    settings = replace(settings, optimizer=optimizer, weight_decay=weight_decay)
    # Gradients near Adam's eps: where it is added decides the step.
    grads = [[{k: rng.standard_normal(v.shape) * scale for k, v in layer.items()}
              for layer in params] for scale in (1e-7, 1e-8, 1.0, 1e-8)]
    assert torch_twin.update_gap(settings, params, grads, [1e-2, 5e-3, 2e-2, 1e-3]) < TIGHT


def test_settings_it_does_not_match_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match="patience 2"):
        torch_twin.check_mapped(replace(MLP, patience=2))
    wider = make_dataclass("Wider", [("dropout", float, 0.5)], bases=(Settings,), frozen=True)
    with pytest.raises(ConfigError, match="setting.s. dropout;"):
        torch_twin.check_mapped(wider())
    monkeypatch.delitem(torch_twin.MAPPING, "shift")
    with pytest.raises(ConfigError, match="setting.s. shift;"):
        torch_twin.check_mapped(MLP)


def test_learning_rates_are_read_from_the_training_loop():
    settings = replace(MLP, epochs=3, batch_size=10, lr=0.5)
    rates = versus_pytorch.learning_rates(settings, examples=25)
    assert [len(epoch) for epoch in rates] == [3, 3, 3]
    flat = [lr for epoch in rates for lr in epoch]
    assert flat[0] == 0.5 and 0 < flat[-1] < 0.5
    assert all(a >= b for a, b in zip(flat, flat[1:]))  # cosine: never up
    constant = versus_pytorch.learning_rates(replace(settings, schedule="constant"), 25)
    assert constant == [[0.5] * 3] * 3


def drift(log, initial):
    """How far the two sides ended apart, relative to how far ours moved."""
    def distance(a, b):
        leaves = [(x[k], y[k]) for x, y in zip(torch_twin._our_layers(a),
                                                torch_twin._our_layers(b)) for k in "wb"]
        return np.sqrt(sum(float(np.sum((x - y) ** 2.0)) for x, y in leaves))
    return distance(log["ours_params"], log["pytorch_params"]) / \
        distance(log["ours_params"], initial)


def quick_run(settings, mnist_dir, monkeypatch):
    """versus_pytorch.run on --quick data, from initial parameters with non-zero biases
    (with zero biases, blank image regions give pre-activations of exactly 0 in the CNN,
    where our relu's gradient is 1/2 and PyTorch's 0); returns (log, initial params)."""
    def build(*args):
        network = build_model(*args)
        return replace(network, init=lambda rng: with_biases(network.init(rng), rng,
                                                             np.float32))
    monkeypatch.setattr(versus_pytorch, "build_model", build)
    data, test = versus_pytorch.load_split(settings, mnist_dir, quick=True)
    initial = build(settings, data.image_shape, data.num_classes).init(
        np.random.default_rng(settings.seed))
    return versus_pytorch.run(settings, data, test), initial


@pytest.mark.parametrize("settings", [replace(MLP, epochs=2, weight_decay=0.01),
                                      replace(CNN, epochs=2)], ids=["mlp", "cnn"])
def test_both_sides_train_alike(settings, mnist_dir, monkeypatch):
    """Same batches, shifts, learning rates and updates: after 8 steps the two sides'
    parameters are far closer to each other than to where they started."""
    log, initial = quick_run(settings, mnist_dir, monkeypatch)
    assert len(log["ours"]) == len(log["pytorch"]) == 2
    assert drift(log, initial) < 1e-2
    for (_, ours), (_, theirs) in zip(log["ours"], log["pytorch"]):
        assert abs(ours - theirs) <= 0.004  # at most 2 of the 500 validation images


def test_quick_command(mnist_dir, capsys):
    args = versus_pytorch.parse_args(["--recipe", "mlp", "--quick", "--data-dir",
                                      str(mnist_dir), "--target", "0.5"])
    assert versus_pytorch.main(args) == 0
    out = capsys.readouterr().out
    assert "recipe mlp: 784-256-128-10 relu" in out and "2 epochs" in out
    assert "median epoch: ours" in out and "ours / PyTorch" in out
    assert "to 50.00% validation accuracy: ours" in out
    assert "not reached" not in out

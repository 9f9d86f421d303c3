"""nets.costs: the exact gradient identities, stability, user costs."""

import numpy as np
import pytest

import autodiff.numpy as anp
from autodiff import check_grads, grad, value_and_grad
from nets.activations import softmax
from nets.costs import COSTS, PREDICTIONS, cross_entropy, mse
from nets.mlp import init_mlp, mlp

rng = np.random.default_rng(0)



def test_cross_entropy_gradient_is_softmax_minus_targets_over_batch():
    logits = rng.standard_normal((6, 10))
    targets = np.eye(10)[rng.integers(0, 10, 6)]
    g = grad(cross_entropy)(logits, targets)
    np.testing.assert_allclose(g, (softmax(logits) - targets) / 6, atol=1e-15)


def test_cross_entropy_value_and_stability():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]], np.float32)
    targets = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    value = cross_entropy(logits, targets)
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, np.log(3) / 2, rtol=1e-6)


def test_mse_is_the_notebooks_cost():
    logits = rng.standard_normal((5, 10))
    targets = np.eye(10)[rng.integers(0, 10, 5)]
    outputs = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(mse(logits, targets),
                               np.sum((outputs - targets) ** 2) / 5, rtol=1e-12)
    check_grads(mse, (logits, targets))


@pytest.mark.parametrize("name", sorted(COSTS))
def test_predictions_are_probabilities(name):
    p = PREDICTIONS[name](rng.standard_normal((4, 10)))
    np.testing.assert_allclose(np.sum(p, axis=1), 1.0)
    assert np.all(p >= 0)


def test_mse_probabilities_are_the_sigmoid_outputs_shared_out():
    logits = rng.standard_normal((6, 10)) * 4
    outputs = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(PREDICTIONS["mse"](logits),
                               outputs / outputs.sum(axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mse_probabilities_survive_extreme_logits(dtype):
    # Every sigmoid rounds to 0 at -200; dividing them by their sum gave 0 / 0 = NaN.
    logits = np.array([np.full(10, -200.0), np.r_[-200.0, np.full(9, -230.0)],
                       np.full(10, 200.0)], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = PREDICTIONS["mse"](logits)
    assert p.dtype == dtype and np.all(np.isfinite(p))
    rtol = 1e-5 if dtype == np.float32 else 1e-12  # float32 spacing at 200 is 1.5e-5
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=rtol)
    np.testing.assert_allclose(p[[0, 2]], 0.1, rtol=rtol)
    assert p[1, 0] > 0.999  # e^30 times each other class's share


def test_a_user_cost_is_just_a_function():
    def hinge(logits, targets):
        margins = anp.maximum(1 + logits - anp.sum(logits * targets, axis=1, keepdims=True), 0)
        return anp.sum(margins * (1 - targets)) / logits.shape[0]

    params = init_mlp(rng, [4, 8, 3])
    x, targets = rng.standard_normal((16, 4)), np.eye(3)[rng.integers(0, 3, 16)]
    loss, g = value_and_grad(lambda p: hinge(mlp(p, x), targets))(params)
    assert np.isfinite(loss) and len(g) == 2

"""Activations, costs, the MLP, optimizers, schedules and metrics."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays_in

import autodiff.numpy as anp
from autodiff import check_grads, grad, tree_leaves, value_and_grad
from nets.activations import log_softmax, relu, sigmoid, softmax, tanh
from nets.config import Settings
from nets.costs import COSTS, PREDICTIONS, cross_entropy, mse
from nets.errors import ConfigError
from nets.metrics import accuracy, confusion_matrix, precision_recall
from nets.mlp import init_mlp, layer_sizes, mlp
from nets.optimizers import OPTIMIZERS, adam, learning_rate, make_optimizer, momentum, sgd

rng = np.random.default_rng(0)


# ------------------------------------------------------------------ activations


@given(x=arrays_in((3, 5), -50, 50))
def test_softmax_rows_sum_to_one_and_log_softmax_matches(x):
    p = softmax(x)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    shifted = x - x.max(axis=-1, keepdims=True)
    reference = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(log_softmax(x), reference, atol=1e-12)


def test_activations_are_stable_for_huge_inputs():
    x = np.array([[-1e4, 0.0, 1e4]], np.float32)
    for f in (sigmoid, tanh, softmax, log_softmax, relu):
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out = f(x)
        assert np.all(np.isfinite(out)) and out.dtype == np.float32, f.__name__
    np.testing.assert_allclose(sigmoid(np.array([-1e4, 0.0, 1e4])), [0.0, 0.5, 1.0])
    assert np.all(np.isfinite(grad(lambda x: anp.sum(sigmoid(x)))(np.array([-1e4, 1e4]))))


def test_sigmoid_matches_its_definition():
    x = np.linspace(-20, 20, 101)
    np.testing.assert_allclose(sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("f", [sigmoid, tanh, softmax, log_softmax])
def test_activation_gradients(f):
    check_grads(lambda x: f(x), (rng.standard_normal((3, 4)),), order=2)


def test_relu_gradient_is_the_step_function():
    x = np.array([-2.0, -0.5, 0.5, 3.0])
    np.testing.assert_array_equal(grad(lambda x: anp.sum(relu(x)))(x), [0, 0, 1, 1])


# ------------------------------------------------------------------------ costs


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


def test_a_user_cost_is_just_a_function():
    def hinge(logits, targets):
        margins = anp.maximum(1 + logits - anp.sum(logits * targets, axis=1, keepdims=True), 0)
        return anp.sum(margins * (1 - targets)) / logits.shape[0]

    params = init_mlp(rng, [4, 8, 3])
    x, targets = rng.standard_normal((16, 4)), np.eye(3)[rng.integers(0, 3, 16)]
    loss, g = value_and_grad(lambda p: hinge(mlp(p, x), targets))(params)
    assert np.isfinite(loss) and len(g) == 2


# -------------------------------------------------------------------------- MLP


@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5))
def test_init_mlp_any_layer_sizes(sizes):
    params = init_mlp(np.random.default_rng(1), sizes)
    assert layer_sizes(params) == sizes
    for layer in params:
        assert layer["w"].dtype == np.float32 and not layer["b"].any()
    assert mlp(params, np.ones((3, sizes[0]), np.float32)).shape == (3, sizes[-1])


def test_init_scales():
    big = [784, 1000, 10]
    he = init_mlp(np.random.default_rng(0), big, "he")[0]["w"]
    xavier = init_mlp(np.random.default_rng(0), big, "xavier")[0]["w"]
    normal = init_mlp(np.random.default_rng(0), big, "normal", scale=0.01)[0]["w"]
    np.testing.assert_allclose(he.std(), np.sqrt(2 / 784), rtol=0.02)
    np.testing.assert_allclose(xavier.std(), np.sqrt(2 / 1784), rtol=0.02)
    np.testing.assert_allclose(normal.std(), 0.01, rtol=0.02)


@pytest.mark.parametrize("sizes", [[784], [784, 0, 10], [784, -3, 10], [784, 2.5, 10]])
def test_bad_layer_sizes(sizes):
    with pytest.raises(ConfigError, match="--layers: needs at least two positive integer"):
        Settings(layers=tuple(sizes)).check()


def test_mlp_gradients_in_float64():
    params = init_mlp(rng, [5, 4, 3], dtype=np.float64)
    x = rng.standard_normal((6, 5))
    targets = np.eye(3)[rng.integers(0, 3, 6)]
    for activation in ("tanh", "sigmoid"):
        check_grads(lambda p, a=activation: cross_entropy(mlp(p, x, a), targets), (params,))
    check_grads(lambda p: mse(mlp(p, x, "tanh"), targets), (params,))


def test_mlp_training_stays_float32():
    params = init_mlp(rng, [8, 6, 3])
    x = rng.standard_normal((5, 8)).astype(np.float32)
    targets = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
    for cost in COSTS.values():
        loss, g = value_and_grad(lambda p, c=cost: c(mlp(p, x), targets))(params)
        assert loss.dtype == np.float32
        assert all(leaf.dtype == np.float32 for leaf in tree_leaves(g))
        for name in OPTIMIZERS:
            opt = make_optimizer(name, weight_decay=1e-4)
            new, state = opt.update(params, g, opt.init(params), 1e-2)
            assert all(leaf.dtype == np.float32 for leaf in tree_leaves(new)), name


# ------------------------------------------------------------------- optimizers


def _quadratic_descent(opt, lr, steps=300):
    target = np.array([3.0, -2.0])
    params = {"w": np.zeros(2)}
    loss = grad(lambda p: anp.sum((p["w"] - target) ** 2))
    state = opt.init(params)
    for _ in range(steps):
        params, state = opt.update(params, loss(params), state, lr)
    return params["w"], state


@pytest.mark.parametrize("name,lr", [("sgd", 0.1), ("momentum", 0.05), ("nesterov", 0.05),
                                     ("adam", 0.1)])
def test_optimizers_find_the_minimum(name, lr):
    w, state = _quadratic_descent(make_optimizer(name), lr)
    np.testing.assert_allclose(w, [3.0, -2.0], atol=1e-3)
    assert int(state["step"]) == 300


def test_sgd_step_is_exact():
    params = {"w": np.array([1.0, 2.0])}
    new, _ = sgd().update(params, {"w": np.array([0.5, -1.0])}, sgd().init(params), 0.1)
    np.testing.assert_allclose(new["w"], [0.95, 2.1])
    np.testing.assert_array_equal(params["w"], [1.0, 2.0])  # inputs untouched


def test_adam_first_step_is_lr_times_sign():
    # With bias correction, Adam's first step is lr * g / (|g| + eps), about lr * sign(g).
    params = [{"w": np.array([1.0, 1.0]), "b": np.array([0.0])}]
    grads = [{"w": np.array([0.3, -4.0]), "b": np.array([2.0])}]
    opt = adam()
    new, _ = opt.update(params, grads, opt.init(params), 0.01)
    np.testing.assert_allclose(new[0]["w"], [0.99, 1.01], rtol=1e-6)
    np.testing.assert_allclose(new[0]["b"], [-0.01], rtol=1e-6)


def test_momentum_accumulates_velocity():
    params = {"w": np.array([0.0])}
    opt = momentum(beta=0.5)
    state = opt.init(params)
    g = {"w": np.array([1.0])}
    params, state = opt.update(params, g, state, 1.0)
    params, state = opt.update(params, g, state, 1.0)
    np.testing.assert_allclose(params["w"], [-(1.0 + 1.5)])


def test_weight_decay_shrinks_weights_not_biases():
    params = [{"w": np.array([1.0]), "b": np.array([1.0])}]
    zero = [{"w": np.array([0.0]), "b": np.array([0.0])}]
    opt = make_optimizer("sgd", weight_decay=0.5)
    new, _ = opt.update(params, zero, opt.init(params), 0.1)
    np.testing.assert_allclose(new[0]["w"], [0.95])
    np.testing.assert_allclose(new[0]["b"], [1.0])


def test_unknown_optimizer_and_negative_decay():
    with pytest.raises(ConfigError, match="unknown optimizer"):
        make_optimizer("rmsprop")
    with pytest.raises(ConfigError, match="weight decay"):
        make_optimizer("adam", weight_decay=-1)


def test_schedules():
    assert learning_rate("constant", 0.1, 5, 10) == 0.1
    assert [learning_rate("step", 1.0, e, 9) for e in (0, 2, 3, 6, 8)] == \
        pytest.approx([1.0, 1.0, 0.1, 0.01, 0.01])
    cosine = [learning_rate("cosine", 1.0, e, 4) for e in range(4)]
    assert cosine[0] == 1.0 and cosine == sorted(cosine, reverse=True) and cosine[-1] > 0
    with pytest.raises(ConfigError, match="schedule"):
        learning_rate("linear", 0.1, 0, 1)


# ---------------------------------------------------------------------- metrics


def test_accuracy_and_confusion_matrix():
    labels = np.array([0, 1, 2, 2, 1, 0])
    predicted = np.array([0, 2, 2, 2, 1, 1])
    assert accuracy(predicted, labels) == pytest.approx(4 / 6)
    matrix = confusion_matrix(predicted, labels, 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 1], [0, 0, 2]])
    assert matrix.sum() == len(labels) and np.trace(matrix) == 4
    precision, recall = precision_recall(matrix)
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])


def test_precision_of_a_class_never_predicted_is_nan():
    precision, recall = precision_recall(confusion_matrix([0, 0], [0, 1], 2))
    assert np.isnan(precision[1]) and recall[1] == 0.0
    with pytest.raises(ValueError, match="shapes"):
        accuracy(np.zeros(3), np.zeros(2))

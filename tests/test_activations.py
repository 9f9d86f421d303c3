"""nets.activations: values, stability and gradients."""

import numpy as np
import pytest
from hypothesis import given
from strategies import arrays_in

import autodiff.numpy as anp
from autodiff import check_grads, grad
from nets.activations import log_sigmoid, log_softmax, relu, sigmoid, softmax, softplus, tanh

rng = np.random.default_rng(0)



@given(x=arrays_in((3, 5), -50, 50))
def test_softmax_rows_sum_to_one_and_log_softmax_matches(x):
    p = softmax(x)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    shifted = x - x.max(axis=-1, keepdims=True)
    reference = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(log_softmax(x), reference, atol=1e-12)


def test_activations_are_stable_for_huge_inputs():
    x = np.array([[-1e4, 0.0, 1e4]], np.float32)
    for f in (sigmoid, tanh, softmax, log_softmax, relu, softplus, log_sigmoid):
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out = f(x)
        assert np.all(np.isfinite(out)) and out.dtype == np.float32, f.__name__
    np.testing.assert_allclose(sigmoid(np.array([-1e4, 0.0, 1e4])), [0.0, 0.5, 1.0])
    assert np.all(np.isfinite(grad(lambda x: anp.sum(sigmoid(x)))(np.array([-1e4, 1e4]))))


def test_sigmoid_matches_its_definition():
    x = np.linspace(-20, 20, 101)
    np.testing.assert_allclose(sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-12, atol=1e-15)


def test_log_sigmoid_matches_its_definition_and_stays_finite():
    x = np.linspace(-30, 30, 121)
    np.testing.assert_allclose(log_sigmoid(x), np.log(1 / (1 + np.exp(-x))), rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(softplus(x), np.log1p(np.exp(x)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(log_sigmoid(np.array([-1e4, -200.0, 1e4])), [-1e4, -200, 0])


@pytest.mark.parametrize("f", [sigmoid, tanh, softmax, log_softmax, softplus, log_sigmoid])
def test_activation_gradients(f):
    check_grads(lambda x: f(x), (rng.standard_normal((3, 4)),), order=2)


def test_relu_gradient_is_the_step_function():
    x = np.array([-2.0, -0.5, 0.5, 3.0])
    np.testing.assert_array_equal(grad(lambda x: anp.sum(relu(x)))(x), [0, 0, 1, 1])

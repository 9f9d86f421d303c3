"""nets.cnn: the network against loops, its gradients, its layer summary, bad inputs."""

import json

import numpy as np
import pytest
from test_conv import conv_loops, pool_loops

import autodiff.numpy as anp
from autodiff import check_grads, grad
from nets.cnn import cnn, cnn_config, cnn_layer_summary, init_cnn


def test_cnn_shapes_and_flat_inputs():
    rng = np.random.default_rng(4)
    params = init_cnn(rng)
    assert [layer["w"].shape for layer in params["conv"]] == [(32, 1, 3, 3), (64, 32, 3, 3)]
    assert [layer["w"].shape for layer in params["dense"]] == [(3136, 128), (128, 10)]
    x = rng.random((3, 784), dtype=np.float32)
    logits = cnn(params, x)
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    np.testing.assert_array_equal(logits, cnn(params, x.reshape(3, 1, 28, 28)))


def test_cnn_computes_the_documented_network():
    """Against loops in NCHW: the internal layout must not change what saved params mean
    (dense rows follow the NCHW flattening of the last feature map)."""
    rng = np.random.default_rng(6)
    params = init_cnn(rng, input_shape=(1, 8, 8), num_classes=3, channels=(2, 3), hidden=4,
                      dtype=np.float64)
    for group in params.values():
        for layer in group:
            layer["b"] = rng.standard_normal(layer["b"].shape)
    x = rng.random((2, 1, 8, 8))
    h = x
    for layer in params["conv"]:
        h = conv_loops(h, layer["w"], 1, 1) + layer["b"].reshape(1, -1, 1, 1)
        h = pool_loops(np.maximum(h, 0), 2, 2, np.max)
    h = np.maximum(h.reshape(2, -1) @ params["dense"][0]["w"] + params["dense"][0]["b"], 0)
    expected = h @ params["dense"][1]["w"] + params["dense"][1]["b"]
    np.testing.assert_allclose(cnn(params, x), expected, rtol=1e-12, atol=1e-12)


def test_cnn_end_to_end_gradients():
    rng = np.random.default_rng(5)
    params = init_cnn(rng, input_shape=(1, 8, 8), num_classes=3, channels=(2, 3), hidden=4,
                      dtype=np.float64)
    for group in params.values():  # nonzero biases, so their gradients are exercised
        for layer in group:
            layer["b"] = rng.standard_normal(layer["b"].shape)
    x = rng.random((2, 1, 8, 8))
    check_grads(lambda p, x: cnn(p, x), (params, x), order=2)


def test_cnn_config_round_trips_through_init():
    rng = np.random.default_rng(6)
    for kwargs in [{}, {"input_shape": (3, 16, 16), "channels": (4, 5, 6), "hidden": 7,
                        "num_classes": 2, "kernel_size": 5}]:
        params = init_cnn(rng, **kwargs)
        config = cnn_config(params)
        rebuilt = init_cnn(rng, **config)
        shapes = [[{k: v.shape for k, v in layer.items()} for layer in params[g]]
                  for g in ("conv", "dense")]
        assert shapes == [[{k: v.shape for k, v in layer.items()} for layer in rebuilt[g]]
                          for g in ("conv", "dense")]
        assert cnn_config(rebuilt) == config
        json.dumps(config)
    assert cnn_config(init_cnn(rng)) == {"input_shape": [1, 28, 28], "num_classes": 10,
                                         "channels": [32, 64], "hidden": 128, "kernel_size": 3}


def test_cnn_layer_summary():
    summary = cnn_layer_summary(init_cnn(np.random.default_rng(7)))
    json.dumps(summary)
    assert [layer["layer"] for layer in summary] == [
        "conv2d", "relu", "max_pool2d", "conv2d", "relu", "max_pool2d", "flatten",
        "dense", "relu", "dense"]
    assert summary[2]["output_shape"] == [32, 14, 14]
    assert summary[6]["output_shape"] == [3136]
    assert sum(layer["params"] for layer in summary) == 320 + 18496 + 401536 + 1290


def test_float32_stays_float32_in_both_passes():
    rng = np.random.default_rng(3)
    x = rng.random((2, 1, 8, 8), dtype=np.float32)
    params = init_cnn(rng, input_shape=(1, 8, 8), channels=(2, 3), hidden=5, num_classes=4)
    logits = cnn(params, x)
    assert logits.dtype == np.float32
    grads = grad(lambda p: anp.sum(cnn(p, x)))(params)
    assert all(leaf.dtype == np.float32 for group in grads.values() for layer in group
               for leaf in layer.values())


@pytest.mark.parametrize("call,message", [
    (lambda: cnn(init_cnn(np.random.default_rng(0)), np.ones((2, 700))), "flat rows"),
    (lambda: cnn(init_cnn(np.random.default_rng(0)), np.ones((2, 1, 20, 20))), "not the size"),
])
def test_bad_inputs_raise_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()

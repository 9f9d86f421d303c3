"""The whole idea on one screen: a two-layer network learns MNIST by gradient descent.

    python examples/minimal_mlp.py      # EXAMPLES_QUICK=1: 100 steps instead of 3,000
"""
import os

import numpy as np

import autodiff.numpy as anp
from autodiff import value_and_grad
from digits.datasets import load_dataset

mnist = load_dataset("mnist")  # $MNIST_DIR, else downloaded once into the cache
x_train = mnist.train_images.reshape(-1, 784).astype(np.float32) / 255
y_train = np.eye(10, dtype=np.float32)[mnist.train_labels]  # one-hot targets
x_test = mnist.test_images.reshape(-1, 784).astype(np.float32) / 255

rng = np.random.default_rng(0)
params = [{"w": (rng.standard_normal((m, n)) * np.sqrt(2 / m)).astype(np.float32),
           "b": np.zeros(n, np.float32)} for m, n in [(784, 128), (128, 10)]]

def predict(params, x):  # (batch, 784) -> logits (batch, 10)
    hidden = anp.maximum(x @ params[0]["w"] + params[0]["b"], 0)  # ReLU
    return hidden @ params[1]["w"] + params[1]["b"]

def loss(params, x, y):  # cross-entropy: -mean log softmax(logits)[true class]
    logits = predict(params, x)
    log_probs = logits - anp.logsumexp(logits, axis=1, keepdims=True)
    return -anp.sum(y * log_probs) / len(x)

loss_and_grads = value_and_grad(loss)  # a new function: (loss, d loss / d params)
steps = 100 if os.environ.get("EXAMPLES_QUICK") else 3000
for step in range(steps + 1):
    batch = rng.integers(0, len(x_train), 128)  # 128 random training images
    value, grads = loss_and_grads(params, x_train[batch], y_train[batch])
    params = [{k: p[k] - 0.1 * g[k] for k in p} for p, g in zip(params, grads)]  # SGD
    if step % (steps // 5) == 0:
        print(f"step {step:4d}  loss {value:.3f}")

accuracy = np.mean(np.argmax(predict(params, x_test), axis=1) == mnist.test_labels)
print(f"test accuracy {100 * accuracy:.2f}%")

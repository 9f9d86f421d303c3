"""A cost of your own through the project's training loop: label smoothing.

A cost is any function `cost(logits, one_hot_targets) -> scalar` written with
`autodiff.numpy`; `nets.training.train` differentiates whatever it is given.

    python examples/custom_cost.py      # EXAMPLES_QUICK=1: 10,000 images, 1 epoch
"""
import os
from dataclasses import replace

import numpy as np

import autodiff.numpy as anp
from digits.datasets import load_dataset
from nets.activations import log_softmax
from nets.config import MLP
from nets.inputs import prepare_images
from nets.mlp import init_mlp, mlp
from nets.training import evaluate, init_state, split, train


def smoothed_cross_entropy(logits, targets, smoothing=0.1):
    """Cross-entropy against targets moved 10% of the way towards uniform: 0.91 for the
    true class, 0.01 for the others, so the network is not pushed to infinite logits."""
    targets = targets * (1 - smoothing) + smoothing / targets.shape[1]
    return -anp.sum(targets * log_softmax(logits)) / logits.shape[0]


quick = bool(os.environ.get("EXAMPLES_QUICK"))
mnist = load_dataset("mnist")
count = 10_000 if quick else len(mnist.train_images)
data = split(prepare_images(mnist.train_images[:count]), mnist.train_labels[:count].astype(int),
             val_size=1000 if quick else 5000, num_classes=10, image_shape=(28, 28))
settings = replace(MLP, layers=(784, 256, 10), epochs=1 if quick else 3)
params = init_mlp(np.random.default_rng(0), settings.layers)
state = train(init_state(params, settings), mlp, smoothed_cross_entropy, data, settings,
              on_epoch=lambda s: print(f"epoch {s.epoch}  val accuracy "
                                       f"{100 * s.history[-1]['val_accuracy']:.2f}%"))
test_x, test_labels = prepare_images(mnist.test_images), mnist.test_labels.astype(int)
_, accuracy, _ = evaluate(mlp, state.params, smoothed_cross_entropy, test_x, test_labels, 10)
print(f"test accuracy {100 * accuracy:.2f}%")

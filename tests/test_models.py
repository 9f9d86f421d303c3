"""nets.models: parameter shapes without allocation, the structural check, the memory a
configuration needs."""

import dataclasses
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autodiff import tree_flatten
from nets.config import CNN, MLP
from nets.errors import ConfigError
from nets.models import build_model, check_params, training_memory


@given(sizes=st.lists(st.integers(1, 40), min_size=2, max_size=5))
def test_mlp_shapes_match_init(sizes):
    model = build_model(dataclasses.replace(MLP, layers=tuple(sizes)))
    assert_same_layout(model.shapes(), model.init(np.random.default_rng(0)))


@given(side=st.integers(4, 40), classes=st.integers(1, 12))
def test_cnn_shapes_match_init(side, classes):
    model = build_model(CNN, (side, side), classes)
    assert_same_layout(model.shapes(), model.init(np.random.default_rng(0)))


def assert_same_layout(a, b):
    (leaves_a, def_a), (leaves_b, def_b) = tree_flatten(a), tree_flatten(b)
    assert def_a == def_b
    assert [x.shape for x in leaves_a] == [y.shape for y in leaves_b]


def test_checking_a_huge_declared_network_allocates_nothing():
    # What a 457-byte CNN file declaring 360x360 images, or an MLP with 10^8 hidden units,
    # would make the old check build before comparing.
    tracemalloc.start()
    for model in (build_model(CNN, (360, 360), 10),
                  build_model(dataclasses.replace(MLP, layers=(784, 100_000_000, 10)))):
        with pytest.raises(ConfigError, match="shape|laid out"):
            check_params(model, build_model(CNN if model.kind == "cnn" else MLP).init(
                np.random.default_rng(0)))
    assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
    tracemalloc.stop()


def test_too_small_images_for_the_cnn():
    with pytest.raises(ConfigError, match="too small"):
        build_model(CNN, (3, 3), 10).shapes()


def test_training_memory_grows_with_what_it_should():
    base = training_memory(MLP, (28, 28), 10, 55000)
    wide = training_memory(dataclasses.replace(MLP, layers=(784, 100_000_000, 10)), (28, 28),
                           10, 55000)
    assert wide["parameters"] > 10**12 > base["parameters"]
    full = training_memory(dataclasses.replace(CNN, batch_size=0), (28, 28), 10, 55000)
    assert full["activations"] > 20 * 2**30 > training_memory(CNN, (28, 28), 10, 55000)[
        "activations"]


@pytest.mark.parametrize("settings, examples", [
    (dataclasses.replace(MLP, layers=(784, 512, 256, 10), batch_size=512), 2048),
    (dataclasses.replace(CNN, batch_size=64, shift=0), 256),
])
@pytest.mark.parametrize("sharded", [False, True])
def test_the_estimate_bounds_what_training_takes(settings, examples, sharded):
    from autodiff import parallel
    from nets.costs import COSTS
    from nets.models import shard_rows
    from nets.training import init_state, split, train

    rng = np.random.default_rng(0)
    data = split(rng.random((examples, 784), dtype=np.float32), np.arange(examples) % 10, 0,
                 10, image_shape=(28, 28))
    settings = dataclasses.replace(settings, epochs=1, val_size=0)
    model = build_model(settings)
    state = init_state(model.init(rng), settings)
    rows = shard_rows(settings, examples) if sharded else 0
    parallel.set_threads(2 if sharded else 1)  # shards side by side, as train.py runs them
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        train(state, model.apply, COSTS[settings.cost], data, settings, shard_rows=rows)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        parallel.set_threads(1)
    estimate = sum(training_memory(settings, (28, 28), 10, examples).values())
    assert peak <= estimate <= 4 * peak


def test_a_batch_makes_two_shards_whatever_the_model():
    from dataclasses import replace

    from nets.config import CNN, MLP, SEED
    from nets.models import SHARD_COUNT, shard_rows

    assert SHARD_COUNT == 2
    assert shard_rows(MLP, 55000) == 128 and shard_rows(CNN, 55000) == 64
    assert shard_rows(SEED, 55000) == 27500  # full batch
    assert shard_rows(replace(MLP, batch_size=1), 55000) == 1
    assert shard_rows(replace(MLP, batch_size=7), 55000) == 4

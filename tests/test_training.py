"""The training loop of nets/training.py, called directly on small learnable fake data."""

import dataclasses
import math

import numpy as np
import pytest
from idx_helpers import fake_mnist

from autodiff import helper, parallel, tree_leaves
from digits.modelfile import load_checkpoint, save_checkpoint
from nets import training
from nets.augment import random_shift
from nets.config import Settings
from nets.costs import COSTS
from nets.errors import ConfigError, TrainingDiverged
from nets.inputs import prepare_images
from nets.models import make_mlp
from nets.training import (
    EXPLODED,
    Split,
    _check_finite,
    _loss_and_logits,
    init_state,
    split,
    train,
)

SIZES = [784, 16, 10]
HISTORY_KEYS = {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"}


def make_settings(**settings) -> Settings:
    """Settings for these tests: a constant learning rate unless they say otherwise."""
    return Settings(**{"schedule": "constant", **settings})


@pytest.fixture(scope="module")
def data() -> Split:
    """150 training and 50 validation examples of the fake digits."""
    arrays = fake_mnist(200, 10, np.random.default_rng(0))
    x = prepare_images(arrays["train_images"])
    return split(x, arrays["train_labels"].astype(np.int64), 50, 10, seed=0)


def run(data, config, *, init_seed=0, state=None, sizes=SIZES, **hooks):
    model = make_mlp(sizes)
    if state is None:
        state = init_state(model.init(np.random.default_rng(init_seed)), config)
    return train(state, model.apply, COSTS["cross-entropy"], data, config, **hooks)


def run_record(data, config) -> dict:
    """What a checkpoint of `run(data, config)` stores about its run (train.py's form)."""
    settings = dataclasses.replace(config, layers=tuple(SIZES), val_size=len(data.val_x))
    return {"settings": settings.to_json(), "data_dir": None,
            "data": {"fingerprint": "0" * 64, "image_shape": [28, 28], "num_classes": 10,
                     "examples": len(data.train_x) + len(data.val_x)}}


def leaves(tree):
    return [np.asarray(leaf) for leaf in tree_leaves(tree)]


def same_tree(a, b) -> bool:
    """Bit-for-bit equality of two pytrees: same leaves, dtypes, shapes and values."""
    a, b = leaves(a), leaves(b)
    return len(a) == len(b) and all(
        x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


def stop_after(steps: int):
    """A should_stop callback that asks to stop after `steps` steps."""
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= steps

    return should_stop


# ------------------------------------------------------------------------ learning


def test_loss_decreases_and_history_has_one_entry_per_epoch(data):
    config = make_settings(epochs=3, batch_size=32, lr=1e-2, optimizer="adam")
    state = run(data, config)
    history = state.history
    assert len(history) == 3 and state.epoch == 3 and state.stop_reason == "completed"
    assert [entry["epoch"] for entry in history] == [1, 2, 3]
    for entry in history:
        assert HISTORY_KEYS <= set(entry)
        assert all(math.isfinite(entry[key]) for key in HISTORY_KEYS)
        assert 0 <= entry["train_accuracy"] <= 1 and 0 <= entry["val_accuracy"] <= 1
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]


def test_without_validation_data_val_entries_are_none(data):
    no_val = Split(data.train_x, data.train_labels, data.val_x[:0], data.val_labels[:0], 10)
    state = run(no_val, make_settings(epochs=1, batch_size=32, lr=1e-2))
    assert state.history[0]["val_loss"] is None and state.history[0]["val_accuracy"] is None


@pytest.mark.parametrize("batch_size, steps_per_epoch", [(0, 1), (32, 5), (150, 1)])
def test_steps_per_epoch(data, batch_size, steps_per_epoch):
    assert len(data.train_x) == 150
    steps = []
    config = make_settings(epochs=3, batch_size=batch_size, lr=1e-2)
    state = run(data, config, on_step=lambda s: steps.append((s.epoch, s.step)))
    expected = [(e, k) for e in range(3) for k in range(1, steps_per_epoch + 1)]
    assert steps == expected
    assert state.total_steps == 3 * steps_per_epoch


def test_full_batch_sees_every_example_once_per_step(data):
    seen = []
    run(data, make_settings(epochs=2, batch_size=0, lr=1e-2), on_step=lambda s: seen.append(s.seen))
    assert seen == [len(data.train_x)] * 2


# ------------------------------------------------------------------ early stopping


@pytest.fixture(scope="module")
def misleading(data) -> Split:
    """Validation labels shifted by one: the better the net learns, the worse val loss gets,
    so validation loss is best early and then rises."""
    return Split(data.train_x, data.train_labels, data.train_x[:50],
                 (data.train_labels[:50] + 1) % 10, 10)


def test_early_stopping_stops_and_restores_the_best_params(misleading):
    snapshots = {}

    def on_epoch(s):
        snapshots[s.epoch] = [leaf.copy() for leaf in leaves(s.params)]

    config = make_settings(epochs=20, batch_size=32, lr=1e-2, patience=2)
    state = run(misleading, config, on_epoch=on_epoch)
    val_losses = [entry["val_loss"] for entry in state.history]
    best = int(np.argmin(val_losses)) + 1
    assert state.stop_reason == "early stopping"
    assert len(state.history) == best + 2 < 20
    assert state.best_epoch == best
    assert all(np.array_equal(a, b) for a, b in zip(leaves(state.params), snapshots[best]))
    last = snapshots[len(state.history)]
    assert not all(np.array_equal(a, b) for a, b in zip(leaves(state.params), last))


def test_patience_zero_never_stops_and_keeps_the_last_params(misleading):
    snapshots = {}
    config = make_settings(epochs=4, batch_size=32, lr=1e-2, patience=0)
    state = run(misleading, config,
                on_epoch=lambda s: snapshots.update({s.epoch: leaves(s.params)}))
    assert state.stop_reason == "completed" and len(state.history) == 4
    assert np.argmin([entry["val_loss"] for entry in state.history]) < 3
    assert all(np.array_equal(a, b) for a, b in zip(leaves(state.params), snapshots[4]))


# -------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_params(data):
    config = make_settings(epochs=2, batch_size=32, lr=1e-2, seed=3)
    assert same_tree(run(data, config, init_seed=3).params, run(data, config, init_seed=3).params)


def test_different_seed_gives_different_params(data):
    # Same initial parameters: only the shuffling seed differs.
    a = run(data, make_settings(epochs=1, batch_size=32, lr=1e-2, seed=1)).params
    b = run(data, make_settings(epochs=1, batch_size=32, lr=1e-2, seed=2)).params
    assert not any(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))


# ---------------------------------------------------------------------- resumption


@pytest.mark.parametrize("optimizer, patience, stop_at", [
    ("adam", 0, 8),        # step 3 of epoch 2 (5 steps per epoch)
    ("momentum", 1, 1),    # after the very first step
    ("adam", 2, 5),        # after the last step of an epoch, before its end-of-epoch work
    ("sgd", 0, 13),        # inside the last epoch
])
@pytest.mark.parametrize("through_checkpoint", [False, True])
def test_resuming_mid_epoch_is_bit_for_bit(data, tmp_path, optimizer, patience, stop_at,
                                           through_checkpoint):
    config = make_settings(epochs=3, batch_size=32, lr=1e-2, optimizer=optimizer,
                         patience=patience, schedule="cosine", seed=5)
    uninterrupted = run(data, config)

    stopped = run(data, config, should_stop=stop_after(stop_at))
    assert stopped.stop_reason == "interrupted"
    assert stopped.epoch * 5 + stopped.step == stop_at
    assert not same_tree(stopped.params, uninterrupted.params)
    if through_checkpoint:
        save_checkpoint(str(tmp_path / "c.npz"), stopped, run_record(data, config))
        stopped, _ = load_checkpoint(str(tmp_path / "c.npz"))
    resumed = run(data, config, state=stopped)

    assert resumed.stop_reason == "completed"
    assert same_tree(resumed.params, uninterrupted.params)
    assert same_tree(resumed.opt_state, uninterrupted.opt_state)
    assert resumed.total_steps == uninterrupted.total_steps == 15
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in resumed.history]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"}
                     for e in uninterrupted.history]


def test_resuming_twice_in_a_row_is_bit_for_bit(data, tmp_path):
    config = make_settings(epochs=2, batch_size=32, lr=1e-2)
    uninterrupted = run(data, config)
    state = None
    for part in range(3):
        state = run(data, config, state=state, should_stop=stop_after(3))
        save_checkpoint(str(tmp_path / f"{part}.npz"), state, run_record(data, config))
        state, _ = load_checkpoint(str(tmp_path / f"{part}.npz"))
    assert state.epoch * 5 + state.step == 9
    assert same_tree(run(data, config, state=state).params, uninterrupted.params)


# ---------------------------------------------------------------------- divergence


def test_huge_learning_rate_raises_training_diverged(data):
    completed = []
    config = make_settings(epochs=3, batch_size=32, lr=1e10, optimizer="sgd")
    with pytest.raises(TrainingDiverged) as info:
        run(data, config, on_step=lambda s: completed.append(s))
    last = completed[-1] if completed else None
    epoch, step = (last.epoch + 1, last.step + 1) if last else (1, 1)
    message = str(info.value)
    assert f"epoch {epoch}, step {step}" in message
    assert "smaller learning rate" in message and "--lr" in message
    assert any(word in message.lower() for word in ("nan", "inf", "exploded"))
    # The state handed to callbacks before the failure is still a finite one.
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves(last.params))


def test_a_loss_that_explodes_without_overflowing_counts_as_divergence(data):
    # sgd at lr 1e3: every step overshoots and the loss climbs, finite for a while.
    losses = []
    settings = make_settings(epochs=3, batch_size=32, lr=1e3, optimizer="sgd")
    with pytest.raises(TrainingDiverged, match="loss exploded") as info:
        run(data, settings, on_step=lambda s: losses.append(s.loss_sum / s.seen))
    assert np.isfinite(losses).all()
    value = float(str(info.value).split("exploded to ")[1].split(" ")[0])
    assert np.isfinite(value) and value > EXPLODED * losses[0]
    assert "smaller learning rate" in str(info.value)


def test_divergence_at_an_epoch_end_is_caught_before_it_is_recorded(data):
    # Full batch: the only step of epoch 1 has a finite loss, but its update makes the
    # outputs overflow; the validation loss at the end of the epoch is the first to notice.
    recorded = []
    config = make_settings(epochs=3, batch_size=0, lr=1e10, optimizer="sgd")
    with pytest.raises(TrainingDiverged) as info:
        run(data, config, on_epoch=lambda s: recorded.append(s.history[-1]))
    assert all(math.isfinite(entry["val_loss"]) for entry in recorded)
    assert f"epoch {len(recorded) + 1}, step 1" in str(info.value)
    assert "smaller learning rate" in str(info.value)


def test_divergence_of_the_last_update_without_validation_data(data):
    # Huge output weights: the loss (~1e30) is still finite in float32, but the first
    # layer's gradient is ~1e30 too and lr * gradient overflows in the only update.
    no_val = Split(data.train_x, data.train_labels, data.val_x[:0], data.val_labels[:0], 10)
    config = make_settings(epochs=1, batch_size=0, lr=1e10, optimizer="sgd")
    params = make_mlp(SIZES).init(np.random.default_rng(0))
    params[1]["w"] = params[1]["w"] * np.float32(1e30)
    with pytest.raises(TrainingDiverged, match=r"parameters .*epoch 1, step 1"):
        run(no_val, config, state=init_state(params, config))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_huge_finite_gradients_are_not_divergence_and_one_nan_or_inf_is(bad):
    # Gradients of 3e38, near the largest float32 (3.4e38), whose sum would overflow, are
    # still finite; a single NaN or inf among thousands of ordinary entries is caught.
    state = init_state({"w": np.zeros(4, np.float32)}, make_settings())
    huge = {"w": np.full(4, 3e38, np.float32), "b": np.ones(3000, np.float32)}
    _check_finite(np.float32(1.0), huge, state, 0.1)
    one_bad = {"w": huge["w"], "b": huge["b"].copy()}
    one_bad["b"][1234] = bad
    with pytest.raises(TrainingDiverged, match="gradient became NaN or inf"):
        _check_finite(np.float32(1.0), one_bad, state, 0.1)


def test_divergence_prints_no_numpy_warnings(data, recwarn):
    with pytest.raises(TrainingDiverged):
        run(data, make_settings(epochs=3, batch_size=32, lr=1e10, optimizer="sgd"))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize("settings, words", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": -3}, "epochs"),
    ({"batch_size": -1}, "batch size"),
    ({"batch_size": 151}, "larger than the 150"),
    ({"lr": 0.0}, "learning rate"),
    ({"lr": -1e-3}, "learning rate"),
    ({"lr": float("nan")}, "learning rate"),
    ({"lr": float("inf")}, "learning rate"),
    ({"optimizer": "adagrad"}, "unknown optimizer"),
    ({"schedule": "linear"}, "unknown schedule"),
    ({"patience": -1}, "patience"),
    ({"weight_decay": -0.1}, "weight decay"),
])
def test_config_check_rejects(settings, words, data):
    settings = make_settings(**settings)
    with pytest.raises(ConfigError, match=words):
        settings.check(examples=150)
    with pytest.raises(ConfigError, match=words):  # train checks before the first step
        run(data, settings)


@pytest.mark.parametrize("settings", [
    {"batch_size": 0}, {"batch_size": 150}, {"epochs": 1}, {"optimizer": "nesterov"},
    {"schedule": "step"}, {"lr": 1e-8},
])
def test_config_check_accepts(settings):
    make_settings(**settings).check(examples=150)


# ---------------------------------------------------------------------------- split


def test_split_sizes_disjoint_and_complete():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    labels = np.arange(20) % 10
    parts = split(x, labels, 6, 10, seed=1)
    assert parts.train_x.shape == (14, 2) and parts.val_x.shape == (6, 2)
    assert len(parts.train_labels) == 14 and len(parts.val_labels) == 6
    train_ids, val_ids = set(parts.train_x[:, 0]), set(parts.val_x[:, 0])
    assert not train_ids & val_ids and train_ids | val_ids == set(x[:, 0])
    # Labels stay with their images.
    assert np.array_equal(parts.train_labels, (parts.train_x[:, 0] // 2).astype(int) % 10)
    assert parts.num_classes == 10


def test_split_is_deterministic_and_seeded():
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    labels = np.zeros(100, np.int64)
    a, b = split(x, labels, 30, 10, seed=4), split(x, labels, 30, 10, seed=4)
    assert np.array_equal(a.val_x, b.val_x) and np.array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.val_x, split(x, labels, 30, 10, seed=5).val_x)
    # Shuffled, not the first 30.
    assert not np.array_equal(np.sort(a.val_x[:, 0]), np.arange(30))


def test_split_with_no_validation():
    x = np.ones((5, 3), np.float32)
    parts = split(x, np.zeros(5, np.int64), 0, 10)
    assert len(parts.train_x) == 5 and len(parts.val_x) == 0


@pytest.mark.parametrize("val_size", [-1, 20, 21])
def test_split_rejects_val_size_out_of_range(val_size):
    with pytest.raises(ConfigError, match="validation size"):
        split(np.ones((20, 2), np.float32), np.zeros(20, np.int64), val_size, 10)


# -------------------------------------------------------------------- augmentation


def test_random_shift_moves_each_image_without_changing_it():
    x = np.zeros((50, 49), np.float32)
    x[:, 24] = 1.0  # the centre pixel of a 7x7 image
    out = random_shift(x, np.random.default_rng(0), (7, 7), 2)
    positions = np.argwhere(out.reshape(50, 7, 7))[:, 1:]
    assert out.sum() == 50 and len(positions) == 50  # every dot kept, exactly once
    offsets = positions - 3
    assert np.abs(offsets).max() == 2 and len({tuple(o) for o in offsets}) > 10
    assert out.dtype == np.float32
    np.testing.assert_array_equal(random_shift(x, np.random.default_rng(0), (7, 7), 0), x)


@pytest.mark.parametrize("shape, max_shift", [((7, 7), 2), ((5, 9), 1), ((28, 28), 3)])
def test_random_shift_moves_whole_images_by_the_drawn_offsets(shape, max_shift):
    """Output pixel (r, c) is input pixel (r + dy - s, c + dx - s), zero outside the image,
    with dy and dx the draws of the same generator: written here block by block."""
    h, w = shape
    x = np.random.default_rng(1).random((30, h * w)).astype(np.float32) + 1
    out = random_shift(x, np.random.default_rng(7), shape, max_shift)
    draws = np.random.default_rng(7)
    dy, dx = (draws.integers(0, 2 * max_shift + 1, size=30) for _ in range(2))
    for image, moved, down, right in zip(x, out, dy - max_shift, dx - max_shift):
        expected = np.zeros((h, w), np.float32)
        image = image.reshape(h, w)
        expected[max(0, -down):h - max(0, down), max(0, -right):w - max(0, right)] = \
            image[max(0, down):h - max(0, -down), max(0, right):w - max(0, -right)]
        np.testing.assert_array_equal(moved.reshape(h, w), expected)


def test_shift_changes_training_and_resumes_bit_for_bit(tmp_path):
    arrays = fake_mnist(200, 10, np.random.default_rng(0))
    images = split(prepare_images(arrays["train_images"]),
                   arrays["train_labels"].astype(np.int64), 50, 10, seed=0,
                   image_shape=(28, 28))
    config = make_settings(epochs=2, batch_size=32, lr=1e-2, shift=2, seed=3)
    shifted = run(images, config)
    assert not same_tree(shifted.params, run(images, make_settings(
        epochs=2, batch_size=32, lr=1e-2, seed=3)).params)
    stopped = run(images, config, should_stop=stop_after(7))
    save_checkpoint(str(tmp_path / "c.npz"), stopped, run_record(images, config))
    stopped, _ = load_checkpoint(str(tmp_path / "c.npz"))
    assert same_tree(run(images, config, state=stopped).params, shifted.params)


def test_shift_needs_image_rows(data):
    with pytest.raises(ConfigError, match="image"):
        run(data, make_settings(epochs=1, batch_size=32, shift=1))


# ------------------------------------------------------------------------- shards


@pytest.fixture
def two_threads():
    """The engine's threads on for one test (shards then run on two threads)."""
    parallel.set_threads(2)
    yield
    parallel.set_threads(1)


@pytest.mark.parametrize("rows, shard_rows", [(150, 64), (88, 35), (37, 5), (2, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sharded_step_is_the_whole_batch_step(rows, shard_rows, dtype, two_threads):
    """Unequal shards too: each shard's mean weighs by its rows, so the sum is the batch's
    mean loss and gradient; the logits come back in the batch's order."""
    rng = np.random.default_rng(rows)
    model = make_mlp(SIZES)
    params = [{k: v.astype(dtype) for k, v in layer.items()} for layer in model.init(rng)]
    x = rng.random((rows, 784)).astype(dtype)
    targets = np.eye(10, dtype=dtype)[rng.integers(0, 10, rows)]
    for cost in COSTS.values():
        (loss, logits), grads = _loss_and_logits(model.apply, cost)(params, x, targets)
        (s_loss, s_logits), s_grads = _loss_and_logits(model.apply, cost, shard_rows)(
            params, x, targets)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert s_loss.dtype == dtype and np.isclose(s_loss, loss, rtol=tol, atol=0)
        np.testing.assert_allclose(s_logits, logits, rtol=tol, atol=tol)
        for mine, whole in zip(leaves(s_grads), leaves(grads)):
            assert mine.dtype == dtype
            np.testing.assert_allclose(mine, whole, rtol=tol, atol=tol * np.abs(whole).max())


def test_sharded_cnn_step_is_the_whole_batch_step(two_threads):
    from nets.cnn import cnn, init_cnn

    rng = np.random.default_rng(1)
    params = init_cnn(rng, channels=(4, 8), hidden=16)
    x = rng.random((45, 784), dtype=np.float32)
    targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 45)]
    (loss, _), grads = _loss_and_logits(cnn, COSTS["cross-entropy"])(params, x, targets)
    (s_loss, _), s_grads = _loss_and_logits(cnn, COSTS["cross-entropy"], 16)(params, x, targets)
    assert np.isclose(s_loss, loss, rtol=1e-5)
    for mine, whole in zip(leaves(s_grads), leaves(grads)):
        np.testing.assert_allclose(mine, whole, rtol=1e-4, atol=1e-5 * np.abs(whole).max())


def run_on_two_threads(data, config, **hooks):
    """`run` with the engine's threads on (and so, where fork exists, helper trials)."""
    parallel.set_threads(2)
    try:
        return run(data, config, **hooks)
    finally:
        parallel.set_threads(1)


def recorded_helpers(monkeypatch) -> tuple[list, list]:
    """The helper processes training makes, and the example arguments of each."""
    made, examples, make = [], [], helper.HelperProcess

    def record(fun, args, result):
        examples.append(args)
        made.append(make(fun, args, result))
        return made[-1]

    monkeypatch.setattr(helper, "HelperProcess", record)
    return made, examples


def test_shards_give_the_same_bits_on_one_thread_or_two(data):
    config = make_settings(epochs=2, batch_size=32, lr=1e-2, seed=4)
    one = run(data, config, shard_rows=10)
    two = run_on_two_threads(data, config, shard_rows=10)
    assert same_tree(one.params, two.params) and same_tree(one.opt_state, two.opt_state)
    assert one.history == [dict(e, seconds=o["seconds"]) for e, o in
                           zip(two.history, one.history)]
    assert not same_tree(one.params, run(data, config).params)  # shards do change rounding


@pytest.mark.skipif(not helper.available(), reason="helper processes need fork")
@pytest.mark.parametrize("faster", [True, False])
def test_steps_shared_with_a_helper_process_give_the_same_bits(data, monkeypatch, faster):
    """The first trial starts a helper process; it is kept, and takes the steps and later
    trials, when its steps are faster, and ended after two slower trials; the run ends it.
    Either way the results are one thread's bits."""
    config = make_settings(epochs=3, batch_size=32, lr=1e-2, seed=4)
    one = run(data, config, shard_rows=10)
    monkeypatch.setattr(training, "TRIAL_STEPS", 1)
    monkeypatch.setattr(training, "RETRY_STEPS", 2)
    monkeypatch.setattr(training, "_helper_is_faster", lambda timed: faster)
    monkeypatch.setattr(helper, "LEAST_WAIT", 30.0)  # these steps are shorter than a wake-up
    made, _ = recorded_helpers(monkeypatch)
    ways = []
    monkeypatch.setattr(training._ShardedStep, "_trial_step", _spied(ways))
    two = run_on_two_threads(data, config, shard_rows=10)
    assert same_tree(one.params, two.params) and same_tree(one.opt_state, two.opt_state)
    assert len(made) == 1 and made[0].pid == 0  # ended
    # 15 steps: a trial of 4 (a warm-up and one timed step each way), then a trial of 2
    # after every 2 steps while the helper lives (the last one cut short by the end).
    first = [("threads", False), ("threads", True), ("helper", False), ("helper", True)]
    again = [("threads", True), ("helper", True)]
    if faster:
        assert ways == first + again * 2 + again[:1]
        assert made[0].calls == 15 - 2 - 3  # each step but the trials' thread steps
    else:
        assert ways == first + [("threads", True), ("helper", True)]  # then ended
        assert made[0].calls == 3


@pytest.mark.skipif(not helper.available(), reason="helper processes need fork")
def test_the_helper_is_made_for_full_shards_not_an_epochs_smaller_last_batch(data,
                                                                              monkeypatch):
    """Its shared memory is sized for its example: one from the 22-row last batch of an
    epoch (150 rows in batches of 64: shards of 16 rows, then of 11) would leave every
    full shard too large for it."""
    monkeypatch.setattr(training, "TRIAL_STEPS", 2)  # step 3, the 22 rows, precedes it
    monkeypatch.setattr(training, "_helper_is_faster", lambda timed: True)
    monkeypatch.setattr(helper, "LEAST_WAIT", 30.0)
    made, examples = recorded_helpers(monkeypatch)
    run_on_two_threads(data, make_settings(epochs=3, batch_size=64, lr=1e-2), shard_rows=20)
    assert [len(args[1]) for args in examples] == [16]  # after step 4 (full), not step 3
    assert made[0].calls == 9 - 3 - 1  # every step but the trial's thread steps and the
    # helper's warm-up, which ran on the threads while there was no helper yet


def test_a_helper_that_cannot_be_made_leaves_the_steps_on_the_threads(data, monkeypatch):
    def no_fork(*args):
        raise OSError("Cannot allocate memory")

    config = make_settings(epochs=2, batch_size=32, lr=1e-2, seed=4)
    one = run(data, config, shard_rows=10)
    monkeypatch.setattr(training, "TRIAL_STEPS", 1)
    monkeypatch.setattr(helper, "HelperProcess", no_fork)
    assert same_tree(one.params, run_on_two_threads(data, config, shard_rows=10).params)


def _spied(ways: list):
    trial_step = training._ShardedStep._trial_step

    def spy(self, way, counts, *args):
        ways.append((way, counts))
        return trial_step(self, way, counts, *args)

    return spy


def test_resuming_a_sharded_run_is_bit_for_bit(data, two_threads):
    config = make_settings(epochs=2, batch_size=32, lr=1e-2, schedule="cosine")
    uninterrupted = run(data, config, shard_rows=12)
    stopped = run(data, config, shard_rows=12, should_stop=stop_after(6))
    assert same_tree(run(data, config, state=stopped, shard_rows=12).params,
                     uninterrupted.params)


def test_sharded_divergence_is_caught_without_warnings_from_the_threads(data, recwarn,
                                                                        two_threads):
    with pytest.raises(TrainingDiverged):
        run(data, make_settings(epochs=3, batch_size=32, lr=1e10, optimizer="sgd"),
            shard_rows=8)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "8"])
def test_shard_rows_is_checked(data, bad):
    with pytest.raises(ValueError, match="shard_rows"):
        run(data, make_settings(epochs=1, batch_size=32), shard_rows=bad)

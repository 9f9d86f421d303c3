"""The training loop: minibatch gradient descent on any model, cost and optimizer.

`train` takes a `TrainState` and returns the next one; everything the loop needs to carry
on later (parameters, optimizer state, the shuffling RNG's state at the start of the
epoch, the position inside the epoch, history, early-stopping bookkeeping) lives in that
state, so a run stopped after any step and resumed from its checkpoint ends with the
same parameters, bit for bit, as one that never stopped.

The test set is never seen here: validation comes from the training set (`split`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from autodiff import helper, parallel, tree_leaves, tree_map, value_and_grad
from nets.augment import random_shift
from nets.config import Settings
from nets.errors import ConfigError, TrainingDiverged
from nets.inputs import one_hot
from nets.metrics import accuracy
from nets.models import EVAL_BATCH, logits_in_batches
from nets.optimizers import learning_rate, make_optimizer

Apply = Callable[[Any, Any], Any]
Cost = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Split:
    """Training and validation data: inputs (n, features) float32, labels (n,) int."""

    train_x: np.ndarray
    train_labels: np.ndarray
    val_x: np.ndarray
    val_labels: np.ndarray
    num_classes: int
    image_shape: tuple[int, int] | None = None  # (height, width) when the rows are images


def split(
    x: np.ndarray, labels: np.ndarray, val_size: int, num_classes: int, seed: int = 0,
    image_shape: tuple[int, int] | None = None,
) -> Split:
    """Hold out `val_size` examples, chosen by a seeded permutation, for validation."""
    if not 0 <= val_size < len(x):
        raise ConfigError(
            f"validation size must be between 0 and {len(x) - 1} (the training set has "
            f"{len(x)} examples), got {val_size}"
        )
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:val_size], order[val_size:]
    return Split(x[train], labels[train], x[val], labels[val], num_classes, image_shape)


@dataclass
class TrainState:
    """Everything needed to continue training after the last completed step."""

    params: Any
    opt_state: Any  # None until the first step, which initialises it
    rng_state: dict  # the shuffling RNG at the start of `epoch`
    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed inside the current epoch
    total_steps: int = 0
    loss_sum: float = 0.0  # running training loss and hits of the current epoch
    hits: int = 0
    seen: int = 0
    history: list = field(default_factory=list)
    best_params: Any = None
    best_val_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    first_loss: float | None = None  # the first step's loss, the yardstick of divergence
    stop_reason: str = ""  # "", "completed", "early stopping", "interrupted"


def init_state(params: Any, settings: Settings) -> TrainState:
    """The state before the first step."""
    rng = np.random.default_rng(settings.seed)
    return TrainState(params=params, opt_state=None, rng_state=rng.bit_generator.state)


def evaluate(
    apply: Apply, params: Any, cost: Cost, x: np.ndarray, labels: np.ndarray,
    num_classes: int, batch_size: int = EVAL_BATCH,
) -> tuple[float, float, np.ndarray]:
    """Mean cost, accuracy and the logits (n, classes) of `params` on a dataset."""
    logits = logits_in_batches(apply, params, x, num_classes, batch_size)
    loss = float(cost(logits, one_hot(labels, num_classes, logits.dtype)))
    return loss, accuracy(np.argmax(logits, axis=1), labels), logits


def _loss_and_logits(apply: Apply, cost: Cost, shard_rows: int = 0) -> Callable:
    """step(params, x, targets) -> ((loss, logits), grads), in shards of at most
    `shard_rows` rows when that is positive (see `train`); `step.close()` ends the helper
    process it may have made."""
    def loss(params, x, targets):
        logits = apply(params, x)
        return cost(logits, targets), logits

    whole = value_and_grad(loss, has_aux=True)

    def weighted_loss(params, x, targets, weight):
        # The weight multiplies the loss on the tape: the backward pass scales the 0-d
        # seed, and the gradients come out weighted with no pass over them, on the
        # shard's thread. The caller is left only the sums.
        logits = apply(params, x)
        return cost(logits, targets) * weight, logits

    return _ShardedStep(whole, value_and_grad(weighted_loss, has_aux=True), shard_rows)


# Whether a helper process pays for itself depends on the model and on the machine's load.
# On 2 cores it made a CNN step (two shards of 64 images) 10% faster than two threads did
# (8.4 ms against 9.3 ms, bench/shards.py), but 7% slower with another process keeping one
# core busy, and the default MLP's steps (two shards of 128 rows) about 10% slower: its
# parameters and gradients go through shared memory every step, for less work.
# So the steps are timed both ways, TRIAL_STEPS each, first after one step of warm-up
# each way (the helper's first step pays for its fork), then every RETRY_STEPS steps while
# the helper lives, and the faster way by median step time is used until the next trial.
# A helper that loses two trials in a row is ended. The results are the same bits
# whichever way a step went.
TRIAL_STEPS = 6
RETRY_STEPS = 200
LOSSES_TO_END = 2


def _helper_is_faster(timed: dict[str, list[float]]) -> bool:
    """Whether a trial's helper steps took less time than its thread steps (medians)."""
    return bool(np.median(timed["helper"]) < np.median(timed["threads"]))


def _trial(first: bool) -> list[tuple[str, bool]]:
    """The steps of a trial: (way, whether its time counts)."""
    warm_up = [False] if first else []
    return [("threads", counts) for counts in warm_up + [True] * TRIAL_STEPS] + \
        [("helper", counts) for counts in warm_up + [True] * TRIAL_STEPS]


class _ShardedStep:
    """A batch's loss, logits and gradients from those of its shards, shared out with the
    engine's threads (autodiff.parallel.run) or, when the threads are on and fork exists,
    with a helper process (autodiff.helper), which does not share the interpreter lock
    as threads do: whichever the last trial found faster (see TRIAL_STEPS)."""

    def __init__(self, whole: Callable, shard: Callable, shard_rows: int) -> None:
        self.whole, self.shard, self.shard_rows = whole, shard, shard_rows
        self.helper: helper.HelperProcess | None = None
        self.use_helper = False
        # The steps a trial still has to take, the seconds its steps took, its outcomes.
        self.plan: list[tuple[str, bool]] = []
        if parallel.thread_count() > 1 and helper.available():
            self.plan = _trial(first=True)
        self.timed: dict[str, list[float]] = {"threads": [], "helper": []}
        self.since_trial = self.losses = 0
        self.largest_shard = 0  # the most rows a step's last shard has had

    def __call__(self, params: Any, x: np.ndarray, targets: np.ndarray) -> tuple:
        n = len(x)
        shards = parallel.blocks(n, math.ceil(n / self.shard_rows)) if self.shard_rows else []
        if len(shards) < 2:
            return self.whole(params, x, targets)
        # The batch's mean is the shards' means weighted by their rows, summed in order.
        calls = [(params, x[cut], targets[cut], (cut.stop - cut.start) / n) for cut in shards]
        self.largest_shard = max(self.largest_shard, len(calls[-1][1]))
        trial = bool(self.plan)
        way, counts = self.plan.pop(0) if trial else \
            ("helper" if self.use_helper else "threads", False)
        started = time.perf_counter()
        if way == "helper":
            results = helper.call_all(self.helper, self.shard, calls)
        else:
            results = parallel.run([functools.partial(self.shard, *call) for call in calls])
        if trial:
            self._trial_step(way, counts, time.perf_counter() - started, calls[-1], results[-1])
        elif self.helper is not None:
            self.since_trial += 1
            if self.since_trial == RETRY_STEPS:
                self.plan = _trial(first=False)
        loss = _sum([result[0][0] for result in results])
        logits = np.concatenate([result[0][1] for result in results])
        grads = tree_map(lambda *parts: _sum(parts), *[result[1] for result in results])
        return (loss, logits), grads

    def _trial_step(self, way: str, counts: bool, seconds: float, call: tuple,
                    result: Any) -> None:
        """Record a step of a trial; start the helper before its first step (this step's
        last shard is its example); at the trial's end, choose the faster way."""
        if counts:
            self.timed[way].append(seconds)
        # The helper's shared memory is sized for its example: a shard as large as any so
        # far, not one of the smaller last batch of an epoch.
        full = len(call[1]) >= self.largest_shard
        if self.plan and self.plan[0][0] == "helper" and self.helper is None and full:
            try:
                self.helper = helper.HelperProcess(self.shard, call, result)
            except OSError:  # no fork here, or no memory for one: threads it is
                self.plan = []
                return
        if self.plan:
            return
        self.use_helper = _helper_is_faster(self.timed)
        self.losses = 0 if self.use_helper else self.losses + 1
        self.timed = {"threads": [], "helper": []}
        self.since_trial = 0
        if self.losses >= LOSSES_TO_END:
            self.close()

    def close(self) -> None:
        if self.helper is not None:
            self.helper.close()
            self.helper = None


def _sum(values: Any) -> Any:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


# Overflow is how divergence starts; the finiteness checks report it as one clear
# TrainingDiverged instead of a screenful of NumPy warnings.
@np.errstate(over="ignore", invalid="ignore")
def train(
    state: TrainState,
    apply: Apply,
    cost: Cost,
    data: Split,
    settings: Settings,
    *,
    on_step: Callable[[TrainState], None] | None = None,
    on_epoch: Callable[[TrainState], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    shard_rows: int = 0,
) -> TrainState:
    """Train from `state` until `settings.epochs` epochs are done, early stopping, or
    `should_stop()` is true after a step. Returns the final state (the best parameters
    restored when early stopping is on and validation data exists).

    `on_step` is called after every step, `on_epoch` after every epoch (once the epoch's
    history entry is written): a progress bar and per-epoch checkpoints hook in there.
    Raises TrainingDiverged, before touching the state, when the loss or the gradients
    stop being finite, or at an epoch's end the parameters or the validation loss.

    With `shard_rows` > 0, each batch is cut into equal shards of at most that many rows
    (nets.models.shard_rows chooses it), whose gradients are computed on the engine's
    threads (autodiff.parallel.run), or shared with a helper process when that is faster
    (see TRIAL_STEPS), and averaged, weighted by their rows. That is the
    batch's gradient, up to rounding, when the cost is a mean over examples of a model
    that treats each row on its own, as every cost and model in nets is; it is not for a
    cost that sums, or a model that mixes rows. The cut depends on the batch size and
    `shard_rows` only, so the results do not depend on how many threads there are, or on
    which way a step went. A helper process ends with the call.
    """
    settings.check(examples=len(data.train_x))
    if isinstance(shard_rows, bool) or not isinstance(shard_rows, int) or shard_rows < 0:
        raise ValueError(f"shard_rows must be an integer >= 0 (0: no shards), got {shard_rows!r}")
    optimizer = make_optimizer(settings.optimizer, settings.weight_decay)
    if state.opt_state is None:
        state = replace(state, opt_state=optimizer.init(state.params))
    step_fn = _loss_and_logits(apply, cost, shard_rows)
    try:
        return _epochs(state, step_fn, optimizer, apply, cost, data, settings,
                       on_step, on_epoch, should_stop)
    finally:
        step_fn.close()  # its helper process, if it made one


def _epochs(state: TrainState, step_fn: Callable, optimizer: Any, apply: Apply, cost: Cost,
            data: Split, settings: Settings, on_step: Callable | None,
            on_epoch: Callable | None, should_stop: Callable | None) -> TrainState:
    """`train`'s loop, from its state and step function."""
    n = len(data.train_x)
    batch = settings.batch_size or n
    steps_per_epoch = math.ceil(n / batch)
    state = replace(state, stop_reason="")
    epoch_start = time.perf_counter()
    while state.epoch < settings.epochs:
        rng = np.random.default_rng()
        rng.bit_generator.state = state.rng_state
        order = rng.permutation(n) if batch < n else np.arange(n)
        while state.step < steps_per_epoch:
            lr = learning_rate(settings.schedule, settings.lr,
                               state.epoch + state.step / steps_per_epoch, settings.epochs)
            index = order[state.step * batch:(state.step + 1) * batch]
            x, labels = data.train_x[index], data.train_labels[index]
            if settings.shift:
                x = _augment(x, data, settings, state.total_steps)
            targets = one_hot(labels, data.num_classes, x.dtype)
            (loss, logits), grads = step_fn(state.params, x, targets)
            _check_finite(loss, grads, state, lr)
            if state.first_loss is None:
                state = replace(state, first_loss=float(loss))
            params, opt_state = optimizer.update(state.params, grads, state.opt_state, lr)
            state = replace(
                state, params=params, opt_state=opt_state, step=state.step + 1,
                total_steps=state.total_steps + 1,
                loss_sum=state.loss_sum + float(loss) * len(index),
                hits=state.hits + int(np.sum(np.argmax(logits, axis=1) == labels)),
                seen=state.seen + len(index),
            )
            if on_step is not None:
                on_step(state)
            if should_stop is not None and should_stop():
                return replace(state, stop_reason="interrupted")
        seconds = time.perf_counter() - epoch_start
        state = _end_epoch(state, rng, apply, cost, data, settings, seconds)
        epoch_start = time.perf_counter()
        if on_epoch is not None:
            on_epoch(state)
        if state.stop_reason:
            break
    return _finish(state)


def _augment(x: np.ndarray, data: Split, settings: Settings, step: int) -> np.ndarray:
    # Seeded by (seed, step), so a resumed run draws the same shifts without saving state.
    if data.image_shape is None:
        raise ConfigError("shift needs images: the data has no image shape")
    rng = np.random.default_rng((settings.seed, step))
    return random_shift(x, rng, data.image_shape, settings.shift)


# A loss this many times the first step's has not been reached by any run that went on to
# learn: the steps overshoot, and the loss climbs until it overflows (sgd at --lr 1e6
# reaches 3.5e28 before NaN). Stopping here says so at once, in the words NaN gets.
EXPLODED = 1e3


def _check_finite(loss: Any, grads: Any, state: TrainState, lr: float) -> None:
    value = float(loss)
    exploded = state.first_loss is not None and value > EXPLODED * max(state.first_loss, 1e-3)
    if math.isfinite(value) and not exploded and \
            all(np.all(np.isfinite(g)) for g in tree_leaves(grads)):
        return
    if exploded:
        what = f"loss exploded to {value:.3g} ({EXPLODED:g} times the first step's)"
    elif not math.isfinite(value):
        what = f"loss became {value}"
    else:
        what = "gradient became NaN or inf"
    raise TrainingDiverged(
        f"training diverged: the {what} "
        f"at epoch {state.epoch + 1}, step {state.step + 1} (learning rate {lr:g}); "
        "try a smaller learning rate (--lr)"
    )


def _check_epoch_end(state: TrainState, val_loss: float | None, lr: float) -> None:
    """The epoch's last update can overflow the parameters, or make them so large that the
    outputs overflow, with no later step to notice; the history and checkpoint (JSON) must
    not record such an epoch either."""
    if not all(np.all(np.isfinite(p)) for p in tree_leaves(state.params)):
        what = "parameters became NaN or inf"
    elif val_loss is not None and not math.isfinite(val_loss):
        what = f"validation loss became {val_loss}"
    else:
        return
    raise TrainingDiverged(
        f"training diverged: the {what} at epoch {state.epoch + 1}, step {state.step} "
        f"(learning rate {lr:g}); try a smaller learning rate (--lr)"
    )


def _end_epoch(
    state: TrainState, rng: np.random.Generator, apply: Apply, cost: Cost,
    data: Split, settings: Settings, seconds: float,
) -> TrainState:
    entry = {
        "epoch": state.epoch + 1,
        "train_loss": state.loss_sum / max(state.seen, 1),
        "train_accuracy": state.hits / max(state.seen, 1),
        "val_loss": None,
        "val_accuracy": None,
        "lr": learning_rate(settings.schedule, settings.lr, state.epoch, settings.epochs),
        "seconds": seconds,
    }
    if len(data.val_x):
        entry["val_loss"], entry["val_accuracy"], _ = evaluate(
            apply, state.params, cost, data.val_x, data.val_labels, data.num_classes)
    _check_epoch_end(state, entry["val_loss"], entry["lr"])
    state = replace(state, epoch=state.epoch + 1, step=0, loss_sum=0.0, hits=0, seen=0,
                    rng_state=rng.bit_generator.state, history=state.history + [entry])
    state = _track_best(state, entry["val_loss"], settings.patience)
    if not state.stop_reason and state.epoch >= settings.epochs:
        state = replace(state, stop_reason="completed")
    return state


def _track_best(state: TrainState, val_loss: float | None, patience: int) -> TrainState:
    """Early-stopping bookkeeping after an epoch; keeps the best parameters only when
    early stopping is on."""
    if val_loss is None:
        return state
    if val_loss < state.best_val_loss:
        return replace(state, best_val_loss=val_loss, best_epoch=state.epoch, bad_epochs=0,
                       best_params=state.params if patience else None)
    bad_epochs = state.bad_epochs + 1
    stop = "early stopping" if patience and bad_epochs >= patience else ""
    return replace(state, bad_epochs=bad_epochs, stop_reason=stop)


def _finish(state: TrainState) -> TrainState:
    """Restore the best parameters when early stopping kept track of them."""
    if state.best_params is not None and state.best_epoch != state.epoch:
        return replace(state, params=state.best_params)
    return state

"""A training run on disk: data in, a checkpoint after every few epochs, a model file out.

`start_run` is what `python train.py` does once its flags are read (the settings, a
checkpoint to resume, every output path checked), `run_training` the rest: check that a
resumed run has the same data (the checkpoint stores its SHA-256) and that the settings fit
in memory, build the network, train (`nets.training.train`) with a progress bar, write
checkpoints, stop cleanly on the first Ctrl-C, SIGTERM or SIGHUP (`StopOnSignal`), measure
the test set once, and save the model file. A checkpoint stores the settings and the data's
fingerprint, never a path to write: a resumed run writes where its user says.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from digits.datasets import Dataset
from digits.limits import check_memory
from digits.modelfile import TrainedModel, load_checkpoint, load_model, save_checkpoint, save_model
from digits.outputs import Files
from nets.config import Settings
from nets.costs import COSTS
from nets.errors import CheckpointError, ConfigError, RunInterrupted, TrainingDiverged
from nets.inputs import prepare_images
from nets.models import build_model, shard_rows, training_memory
from nets.training import TrainState, evaluate, init_state, split, train

# The signals that stop a run cleanly: Ctrl-C, `kill`/`docker stop`/batch schedulers, and a
# closed terminal. The exit code is 128 + the signal's number, as a shell reports it.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class StopOnSignal:
    """The first SIGINT (Ctrl-C), SIGTERM or SIGHUP asks the training loop to stop after
    the current step; a second one interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        for signum in STOP_SIGNALS:
            try:
                self.previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: stopping after this step (Ctrl-C again to abort at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)

    def __call__(self) -> bool:
        return self.signum is not None


def start_run(name: str, settings: Settings, *, save: str | None, checkpoint: str | None,
              resume_from: str | None, epochs: int | None, data_dir: str | None, every: int,
              no_checkpoint: bool = False, overwrite: bool = False,
              ) -> tuple[Settings, Files, TrainState | None, dict | None]:
    """Everything a run needs before its data is loaded: (settings, files, the state to
    continue from or None, the checkpoint's run or None). Reads the checkpoint when
    resuming; checks every output path (`Files.check`) so that nothing fails after the
    last epoch and no earlier model or checkpoint is replaced unless `overwrite`."""
    state = stored = None
    if resume_from is not None:
        state, settings, stored = resume(resume_from, epochs)
        data_dir = data_dir if data_dir is not None else stored.get("data_dir")
    files = Files.chosen(name, save, checkpoint, data_dir, every, resume=resume_from,
                         no_checkpoint=no_checkpoint)
    files.check(overwrite)
    return settings, files, state, stored


def run_training(settings: Settings, dataset: Dataset, files: Files, *,
                 state: TrainState | None = None, stored: dict | None = None,
                 progress: bool = True, on_epoch: Callable[[dict], None] = lambda entry: None,
                 ) -> tuple[TrainedModel, TrainState]:
    """Train (or carry on from `state`, whose checkpoint's run is `stored`), checkpointing
    as `files` says, and save the model. Returns (the saved model, the final state).

    Raises RunInterrupted (after writing the checkpoint of the last step) when a signal
    stopped the run, ConfigError when the data is not the checkpoint's or the settings
    need more memory than there is, TrainingDiverged naming the last good checkpoint, and
    CheckpointError saying how to recover when the model cannot be written.
    """
    train_x = prepare_images(dataset.train_images)
    image_shape = tuple(dataset.train_images.shape[1:])
    if stored is not None:
        check_same_data(stored["data"], dataset, files.resumed)
    settings.check(input_size=train_x.shape[1], num_classes=dataset.num_classes)
    data = split(train_x, dataset.train_labels.astype(np.int64), settings.val_size,
                 dataset.num_classes, seed=settings.seed, image_shape=image_shape)
    settings.check(examples=len(data.train_x))
    check_training_memory(settings, image_shape, dataset.num_classes, len(data.train_x))
    network = build_model(settings, image_shape, dataset.num_classes)
    cost = COSTS[settings.cost]
    if state is None:
        state = init_state(network.init(np.random.default_rng(settings.seed)), settings)
    run = {"settings": settings.to_json(),
           "data_dir": os.path.abspath(files.data_dir) if files.data_dir else None,
           "data": {"fingerprint": dataset.fingerprint, "image_shape": list(image_shape),
                    "num_classes": dataset.num_classes, "examples": len(train_x)}}
    saved = {"epoch": None}

    def checkpoint(s: TrainState) -> None:
        on_epoch(s.history[-1])
        if files.checkpoint is not None and (s.epoch % files.every == 0 or s.stop_reason):
            save_checkpoint(files.checkpoint, s, run)
            saved["epoch"] = s.epoch

    with StopOnSignal() as stop, _ProgressBar(len(data.train_x), settings, progress) as bar:
        try:
            state = train(state, network.apply, cost, data, settings, on_step=bar.step,
                          on_epoch=checkpoint, should_stop=stop,
                          shard_rows=shard_rows(settings, len(data.train_x)))
        except TrainingDiverged as error:
            kept = (f"the last good checkpoint (epoch {saved['epoch']}) is kept at "
                    f"{files.checkpoint}" if saved["epoch"] is not None
                    else "no checkpoint was written")
            raise TrainingDiverged(f"{error}; {kept}") from None
        if state.stop_reason == "interrupted":
            if files.checkpoint is not None:
                save_checkpoint(files.checkpoint, state, run)
            raise RunInterrupted(interrupted_message(state, files.checkpoint, stop.signum),
                                 128 + (stop.signum or signal.SIGINT))
        # Still under StopOnSignal: a signal now lets the model file be written whole.
        with np.errstate(over="ignore", invalid="ignore"):  # reported just below instead
            test_loss, test_accuracy, _ = evaluate(
                network.apply, state.params, cost, prepare_images(dataset.test_images),
                dataset.test_labels.astype(np.int64), dataset.num_classes)
        if not np.isfinite(test_loss):
            # Without validation data nothing looked at the final model's outputs; one that
            # overflows is of no use (and its metadata would not even be valid JSON).
            raise TrainingDiverged(
                f"training diverged: the test loss is {test_loss} after epoch {state.epoch} "
                f"({state.total_steps} steps); try a smaller learning rate (--lr)")
        try:
            save_model(files.save, state.params, settings, {
                "dataset": dataset.name, "class_names": list(dataset.class_names),
                "image_shape": list(image_shape), "history": state.history,
                "test_accuracy": test_accuracy, "test_loss": test_loss,
                "stop_reason": state.stop_reason, "best_epoch": state.best_epoch})
        except (CheckpointError, ConfigError) as error:
            raise CheckpointError(f"{error}; {recovery(files)}") from None
    return load_model(files.save), state


def recovery(files: Files) -> str:
    """How to get the model of a finished run whose model file could not be written."""
    if files.checkpoint is None:
        return "no checkpoint was kept (--no-checkpoint): the run must be repeated"
    return (f"the finished run's checkpoint is kept at {files.checkpoint}; write the model "
            f"with: python train.py --resume {files.checkpoint} --save OTHER.npz")


def check_same_data(data: dict, dataset: Dataset, checkpoint: str | None) -> None:
    """ConfigError unless `dataset` is the data the checkpoint's run trained on."""
    if data["fingerprint"] != dataset.fingerprint:
        raise ConfigError(
            f"the training data differs from the data the checkpoint {checkpoint} was trained "
            f"on ({len(dataset.train_labels)} {dataset.name} images now, {data['examples']} "
            "then, with other contents); resume with the same data (--data-dir), or start a "
            "new run")


def check_training_memory(settings: Settings, image_shape: tuple, num_classes: int,
                          examples: int) -> None:
    """ConfigError, naming the setting, when training needs more memory than allowed."""
    need = training_memory(settings, image_shape, num_classes, examples)
    if need["parameters"] >= need["activations"]:
        what = f"the {settings.model} {','.join(map(str, settings.layers)) or ''}".rstrip() + \
            " (its parameters, gradients and optimizer state)"
        hint = "use smaller --layers"
    else:
        batch = settings.batch_size or examples
        what = (f"--batch-size {settings.batch_size} ({batch} images per step"
                f"{', the full batch' if not settings.batch_size else ''}) with the "
                f"{settings.model}")
        hint = "use a smaller --batch-size, such as 128"
    check_memory(sum(need.values()), what, hint)


def interrupted_message(state: TrainState, checkpoint: str | None, signum: int | None) -> str:
    """What to tell a user whose run a signal stopped: where the checkpoint is, how to
    resume."""
    name = "Ctrl-C" if signum in (None, signal.SIGINT) else signal.Signals(signum).name
    where = f"interrupted by {name} at epoch {state.epoch + 1}, step {state.step}"
    if checkpoint is None:
        return f"{where}: no checkpoint was written (--no-checkpoint)"
    return (f"{where}: checkpoint saved to {checkpoint}\n"
            f"resume with: python train.py --resume {checkpoint}")


class _ProgressBar:
    """A tqdm bar per epoch (none for tiny epochs or when progress is off)."""

    def __init__(self, examples: int, settings: Settings, enabled: bool) -> None:
        self.steps = -(-examples // (settings.batch_size or examples))
        self.enabled = enabled and self.steps >= 5
        self.bar: Any = None

    def step(self, s: TrainState) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.steps, initial=s.step - 1, desc=f"epoch {s.epoch + 1}",
                            leave=False, unit="batch", dynamic_ncols=True)
        self.bar.update(1)
        if s.step == self.steps:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def resume(path: str, epochs: int | None = None) -> tuple[TrainState, Settings, dict]:
    """The state, settings (with `epochs` when given) and run stored in checkpoint `path`."""
    state, run = load_checkpoint(path)  # checked there, settings included
    if epochs is not None and epochs < state.epoch:
        raise ConfigError(f"--epochs {epochs}: the checkpoint {path} has already done "
                          f"{state.epoch} epochs; give at least that many")
    settings = Settings.from_json(run["settings"])
    return state, replace(settings, **({"epochs": epochs} if epochs else {})).check(), run

"""A training run on disk: data in, a checkpoint after every few epochs, a model file out.

`run_training` is what `python train.py` does once its flags are read: load the dataset,
build the network from the settings, train (`nets.training.train`) with a progress bar,
write checkpoints, stop cleanly on the first Ctrl-C (`StopOnSignal`), measure the test
set once, and save the model file. A checkpoint stores the settings and the file paths,
so `--resume` rebuilds the same run from it alone.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from digits.datasets import Dataset
from digits.modelfile import TrainedModel, load_checkpoint, load_model, save_checkpoint, save_model
from nets.config import Settings
from nets.costs import COSTS
from nets.errors import CheckpointError, ConfigError, TrainingDiverged
from nets.inputs import prepare_images
from nets.models import build_model
from nets.training import TrainState, evaluate, init_state, split, train


class StopOnSignal:
    """The first Ctrl-C asks the training loop to stop after the current step; a second one
    interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def __enter__(self) -> StopOnSignal:
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self.previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: stopping after this step (Ctrl-C again to abort at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def __call__(self) -> bool:
        return self.requested


@dataclass(frozen=True)
class Files:
    """Where a run writes: the model, its checkpoint (every `every` epochs), the data's
    directory (None: the usual places, see digits.datasets)."""

    save: str
    checkpoint: str
    data_dir: str | None = None
    every: int = 1

    @classmethod
    def chosen(cls, name: str, save: str | None, checkpoint: str | None,
               data_dir: str | None, every: int) -> Files:
        """The files given, or the defaults: models/NAME.npz and the checkpoint beside it."""
        save = save or str(Path("models") / f"{name}.npz")
        checkpoint = checkpoint or str(
            Path(save).with_name(Path(save).name.removesuffix(".npz") + ".checkpoint.npz"))
        return cls(save, checkpoint, data_dir, every)

    def run(self, settings: Settings) -> dict:
        """What a checkpoint stores to rebuild the run; absolute paths, so that a resume
        from elsewhere finds the same files."""
        absolute = {k: os.path.abspath(v) if v else v
                    for k, v in (("save", self.save), ("data_dir", self.data_dir))}
        return {"settings": settings.to_json(), **absolute}


def run_training(settings: Settings, dataset: Dataset, files: Files, *,
                 state: TrainState | None = None, progress: bool = True,
                 on_epoch: Callable[[dict], None] = lambda entry: None,
                 ) -> tuple[TrainedModel | None, TrainState]:
    """Train (or carry on from `state`), checkpointing as `files` says, and save the model.

    Returns (the saved model, the final state), or (None, the state) when Ctrl-C stopped
    the run (its checkpoint is then written). Raises TrainingDiverged naming the last good
    checkpoint.
    """
    train_x = prepare_images(dataset.train_images)
    image_shape = tuple(dataset.train_images.shape[1:])
    settings.check(input_size=train_x.shape[1], num_classes=dataset.num_classes)
    data = split(train_x, dataset.train_labels.astype(np.int64), settings.val_size,
                 dataset.num_classes, seed=settings.seed, image_shape=image_shape)
    settings.check(examples=len(data.train_x))
    network = build_model(settings, image_shape, dataset.num_classes)
    cost = COSTS[settings.cost]
    if state is None:
        state = init_state(network.init(np.random.default_rng(settings.seed)), settings)
    run = files.run(settings)
    saved = {"epoch": None}

    def checkpoint(s: TrainState) -> None:
        on_epoch(s.history[-1])
        if s.epoch % files.every == 0 or s.stop_reason:
            save_checkpoint(files.checkpoint, s, run)
            saved["epoch"] = s.epoch

    with StopOnSignal() as stop, _ProgressBar(len(data.train_x), settings, progress) as bar:
        try:
            state = train(state, network.apply, cost, data, settings, on_step=bar.step,
                          on_epoch=checkpoint, should_stop=stop)
        except TrainingDiverged as error:
            kept = (f"the last good checkpoint (epoch {saved['epoch']}) is kept at "
                    f"{files.checkpoint}" if saved["epoch"] is not None
                    else "no checkpoint was written")
            raise TrainingDiverged(f"{error}; {kept}") from None
    if state.stop_reason == "interrupted":
        save_checkpoint(files.checkpoint, state, run)
        return None, state
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
    save_model(files.save, state.params, settings, {
        "dataset": dataset.name, "class_names": list(dataset.class_names),
        "image_shape": list(image_shape), "history": state.history,
        "test_accuracy": test_accuracy, "test_loss": test_loss,
        "stop_reason": state.stop_reason, "best_epoch": state.best_epoch})
    return load_model(files.save), state


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
    state, run = load_checkpoint(path)
    try:
        settings = Settings.from_json(run["settings"])
        return state, replace(settings, **({"epochs": epochs} if epochs else {})).check(), run
    except (KeyError, ConfigError) as error:
        raise CheckpointError(f"{path} holds no usable settings ({error})") from None

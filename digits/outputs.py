"""Where a training run writes, decided by its user, checked before the first epoch.

`Files.chosen` picks the paths: the model (`--save`, default `models/DATASET-MODEL.npz`),
its checkpoint (`--checkpoint`, default beside the model, `.checkpoint.npz`; none with
`--no-checkpoint`). A resumed run writes its checkpoint back where it came from and its
model to `--save` or beside the checkpoint (`X.checkpoint.npz` -> `X.npz`): never to a path
read from a file, which someone else may have written.

`Files.check` refuses, in one line and before any training, what would fail or destroy:
empty paths, paths that are directories, devices or FIFOs (`digits.files.refuse_special`),
directories that take no new file, the model and checkpoint at one path, and a model or
checkpoint that already exists, unless the user passed `--overwrite` (an earlier run's
checkpoint is how that run resumes; the message says how).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from digits.files import check_writable, check_writable_directory
from nets.errors import ConfigError

CHECKPOINT_SUFFIX = ".checkpoint.npz"


@dataclass(frozen=True)
class Files:
    """Where a run writes: the model, its checkpoint (None: no checkpoints) every `every`
    epochs, and the data's directory (None: the usual places, see digits.datasets)."""

    save: str
    checkpoint: str | None
    data_dir: str | None = None
    every: int = 1
    resumed: str | None = None  # the checkpoint this run continues, which it may replace

    @classmethod
    def chosen(cls, name: str, save: str | None, checkpoint: str | None,
               data_dir: str | None, every: int, *, resume: str | None = None,
               no_checkpoint: bool = False) -> Files:
        """The files given, or the defaults: models/NAME.npz (a resumed run: beside its
        checkpoint) and the checkpoint beside the model (a resumed run: its own)."""
        if resume is not None:
            save = save if save is not None else beside(resume)
            checkpoint = checkpoint if checkpoint is not None else resume
        if save is None:
            save = str(Path("models") / f"{name}.npz")
        if checkpoint is None and save.strip():
            checkpoint = str(Path(save).with_name(Path(save).name.removesuffix(".npz")
                                                  + CHECKPOINT_SUFFIX))
        return cls(save, None if no_checkpoint else checkpoint, data_dir, every, resume)

    def check(self, overwrite: bool) -> None:
        """ConfigError, before training, for a path that cannot be written or would destroy
        an earlier model or checkpoint (unless `overwrite`)."""
        check_writable(self.save, "--save")
        if self.checkpoint is not None:
            check_writable(self.checkpoint, "--checkpoint")
            if _same(self.save, self.checkpoint):
                raise ConfigError(f"--save and --checkpoint are the same file {self.save}; "
                                  "give them different paths")
        if overwrite:
            return
        if self.checkpoint is not None and os.path.exists(self.checkpoint) and \
                not (self.resumed and _same(self.checkpoint, self.resumed)):
            raise ConfigError(
                f"{self.checkpoint} already exists (an earlier run's checkpoint); continue "
                f"that run with: python train.py --resume {self.checkpoint}, or add --overwrite "
                "to start again and replace it")
        if os.path.exists(self.save):
            raise ConfigError(f"{self.save} already exists (an earlier model); give another "
                              "--save, or add --overwrite to replace it")


def beside(checkpoint: str) -> str:
    """The model path of a resumed run: X.checkpoint.npz -> X.npz, else X.model.npz."""
    path = Path(checkpoint)
    stem = path.name.removesuffix(CHECKPOINT_SUFFIX) if path.name.endswith(CHECKPOINT_SUFFIX) \
        else path.name.removesuffix(".npz") + ".model"
    return str(path.with_name(stem + ".npz"))


def check_outputs(report: str | None, plots: str | None, show_input: str | None = None) -> None:
    """ConfigError now for a --report, --plots or --show-input that could not be written
    at the end."""
    if report is not None:
        check_writable(report, "--report")
    if plots is not None:
        check_writable_directory(plots, "--plots")
    if show_input is not None:
        check_writable_directory(show_input, "--show-input")


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)

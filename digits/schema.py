"""What model files and checkpoints may hold: every metadata field checked in one place.

A file can be edited, crafted or damaged: `check_model` and `check_checkpoint` look at each
field's type and range, and at the agreement between the settings and the arrays, before
anything is built from them. Sizes are compared through `nets.models.check_params`, which
uses zero-memory stand-ins, so a file that declares a huge network is refused before any
of it is allocated. Every problem is one `CheckpointError` line naming the file and the
field; nothing else escapes.

Model metadata (kind "model"):
    settings        Settings.to_json(), valid (nets.config)
    dataset         one of nets.config.DATASETS, the same as settings.dataset
    class_names     non-empty strings, one per class of the network
    image_shape     [height, width], each 1..MAX_SIDE
    normalisation   {"mean": finite, "std": finite > 0}
    history         (optional) per-epoch entries, see `_check_history`
    test_accuracy   (optional) null or 0..1;   test_loss (optional) null or finite >= 0
    stop_reason     (optional) one of STOP_REASONS;   best_epoch (optional) int >= -1
    versions, source (optional) strings
Checkpoint metadata (kind "checkpoint"):
    run             {"settings": ..., "data_dir": null or str, "data": {"fingerprint":
                     64 hex digits, "image_shape": [h, w], "num_classes": int, "examples":
                     int}}; nothing in it is a path the program writes to
    state           the TrainState fields, see `_check_state`
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from autodiff import tree_flatten
from nets.config import Settings
from nets.errors import CheckpointError, ConfigError
from nets.models import Model, build_model, check_params
from nets.optimizers import make_optimizer

MAX_SIDE = 1024  # pixels per side of the images a model or checkpoint may describe
MAX_CLASSES = 10_000
STOP_REASONS = ("", "completed", "early stopping", "interrupted")


class _Bad(Exception):
    """A field that fails its check; turned into one CheckpointError naming the file."""


LOAD_HINT = "the file was edited or damaged; re-create it with train.py"


def check_model(params: Any, meta: dict, path: str, hint: str = LOAD_HINT,
                ) -> tuple[Settings, Model]:
    """The settings and network a model file's metadata describes, checked against its
    params; CheckpointError '`path`: problem; `hint`' otherwise."""
    try:
        settings = _settings(meta.get("settings"))
        if meta.get("dataset") != settings.dataset:
            raise _Bad(f"dataset must be {settings.dataset!r} (the settings' dataset), got "
                       f"{meta.get('dataset')!r:.60}")
        shape = _image_shape(meta.get("image_shape"), "image_shape")
        names = meta.get("class_names")
        if not (isinstance(names, list) and 1 <= len(names) <= MAX_CLASSES and
                all(isinstance(n, str) and 0 < len(n) <= 100 for n in names)):
            raise _Bad(f"class_names must be a list of class names, got {names!r:.60}")
        network = _network(settings, shape, len(names), params, "the params")
        norm = meta.get("normalisation")
        if not (isinstance(norm, dict) and set(norm) == {"mean", "std"} and
                _is_number(norm["mean"]) and _is_number(norm["std"]) and norm["std"] > 0):
            raise _Bad(f"normalisation must be {{'mean': m, 'std': s > 0}}, got {norm!r:.60}")
        _optional(meta, "history", lambda h: _check_history(h, "history"))
        _optional(meta, "test_accuracy", lambda v: _fraction(v, "test_accuracy", none=True))
        _optional(meta, "test_loss", lambda v: _number(v, "test_loss", low=0, none=True))
        _optional(meta, "stop_reason", lambda v: _choice(v, "stop_reason", STOP_REASONS))
        _optional(meta, "best_epoch", lambda v: _integer(v, "best_epoch", -1))
        _optional(meta, "source", lambda v: _string(v, "source"))
        _optional(meta, "versions", lambda v: [_string(x, "versions") for x in
                                               (_dict(v, "versions").values())])
        return settings, network
    except _Bad as error:
        raise CheckpointError(f"{path}: {error}; {hint}") from None


def check_checkpoint(tree: Any, meta: dict, path: str) -> tuple[dict, dict]:
    """The state fields and the run a checkpoint holds, checked against each other and
    its arrays; CheckpointError otherwise. Returns (state fields with the trees, run)."""
    try:
        if not (isinstance(tree, dict) and set(tree) == {"params", "opt_state", "best_params"}):
            raise _Bad("the arrays must be the trees params, opt_state and best_params")
        run = _dict(meta.get("run"), "run")
        settings = _settings(run.get("settings"))
        if "data" not in run:
            raise _Bad("it has no fingerprint of its data (an older version of this program "
                       "wrote it)")
        data = _dict(run["data"], "run.data")
        if not (isinstance(data.get("fingerprint"), str) and
                re.fullmatch(r"[0-9a-f]{64}", data["fingerprint"])):
            raise _Bad("run.data.fingerprint must be 64 hex digits (SHA-256 of the data)")
        shape = _image_shape(data.get("image_shape"), "run.data.image_shape")
        classes = _integer(data.get("num_classes"), "run.data.num_classes", 1, MAX_CLASSES)
        examples = _integer(data.get("examples"), "run.data.examples", 1)
        if run.get("data_dir") is not None:
            _string(run["data_dir"], "run.data_dir")
        if settings.model == "mlp" and settings.layers[0] != shape[0] * shape[1]:
            raise _Bad(f"the settings' layers {','.join(map(str, settings.layers))} do not "
                       f"take the {shape[0]}x{shape[1]} images of run.data")
        _network(settings, shape, classes, tree["params"], "the params")
        if tree["best_params"] is not None:
            _network(settings, shape, classes, tree["best_params"], "best_params")
        values = _check_state(_dict(meta.get("state"), "state"), settings, examples)
        _check_opt_state(tree["opt_state"], tree["params"], settings)
        return {**values, **tree}, run
    except _Bad as error:
        raise CheckpointError(f"{path}: {error}; the checkpoint was edited or damaged, start "
                              "a new run") from None


_STATE_FIELDS = ("rng_state", "epoch", "step", "total_steps", "loss_sum", "hits", "seen",
                 "history", "best_val_loss", "best_epoch", "bad_epochs", "first_loss")


def _check_state(state: dict, settings: Settings, examples: int) -> dict:
    if set(state) != set(_STATE_FIELDS):
        raise _Bad(f"state must hold exactly {', '.join(_STATE_FIELDS)}")
    train = examples - settings.val_size
    batch = settings.batch_size or train
    steps = math.ceil(train / batch) if train > 0 and batch > 0 else 0
    epoch = _integer(state["epoch"], "state.epoch", 0, settings.epochs)
    step = _integer(state["step"], "state.step", 0, steps)
    _integer(state["total_steps"], "state.total_steps", epoch * steps + step,
             epoch * steps + step)
    seen = _integer(state["seen"], "state.seen", 0, max(train, 0))
    _integer(state["hits"], "state.hits", 0, seen)
    _number(state["loss_sum"], "state.loss_sum", low=0)
    if len(_check_history(state["history"], "state.history")) != epoch:
        raise _Bad(f"state.history must have one entry per completed epoch ({epoch})")
    _integer(state["best_epoch"], "state.best_epoch", -1, epoch)
    _integer(state["bad_epochs"], "state.bad_epochs", 0, epoch)
    _number(state["best_val_loss"], "state.best_val_loss", none=True)
    _number(state["first_loss"], "state.first_loss", none=True)
    try:
        np.random.default_rng().bit_generator.state = state["rng_state"]
    except (TypeError, ValueError, KeyError, OverflowError):
        raise _Bad("state.rng_state is not the state of numpy's PCG64 generator") from None
    values = dict(state)
    if values["best_val_loss"] is None:
        values["best_val_loss"] = math.inf
    return values


def _check_opt_state(opt_state: Any, params: Any, settings: Settings) -> None:
    if opt_state is None:
        return
    want_leaves, want_def = tree_flatten(make_optimizer(settings.optimizer).init(params))
    leaves, treedef = tree_flatten(opt_state)
    if treedef != want_def or any(
            np.shape(a) != np.shape(b) or np.asarray(a).dtype.kind != np.asarray(b).dtype.kind
            for a, b in zip(leaves, want_leaves)):
        raise _Bad(f"opt_state does not fit {settings.optimizer}'s state for these params")


def _check_history(history: Any, name: str) -> list:
    if not isinstance(history, list):
        raise _Bad(f"{name} must be a list of epochs, got {history!r:.60}")
    for i, entry in enumerate(history):
        where = f"{name}[{i}]"
        entry = _dict(entry, where)
        if _integer(entry.get("epoch"), f"{where}.epoch", 1) != i + 1:
            raise _Bad(f"{where}.epoch must be {i + 1}")
        _number(entry.get("train_loss"), f"{where}.train_loss", low=0)
        _fraction(entry.get("train_accuracy"), f"{where}.train_accuracy")
        _number(entry.get("val_loss"), f"{where}.val_loss", low=0, none=True)
        _fraction(entry.get("val_accuracy"), f"{where}.val_accuracy", none=True)
        _number(entry.get("lr"), f"{where}.lr", low=0)
        _number(entry.get("seconds"), f"{where}.seconds", low=0)
    return history


def _settings(data: Any) -> Settings:
    try:
        return Settings.from_json(data)
    except (ConfigError, TypeError) as error:
        raise _Bad(f"settings: {error}") from None


def _network(settings: Settings, shape: tuple[int, int], classes: int, params: Any,
             what: str) -> Model:
    if settings.model == "mlp" and settings.layers[-1] != classes:
        raise _Bad(f"the settings' layers {','.join(map(str, settings.layers))} do not end "
                   f"in the {classes} classes")
    try:
        network = build_model(settings, shape, classes)
        check_params(network, params)
    except ConfigError as error:
        raise _Bad(f"{what} do not fit the settings ({error}); the metadata does not "
                   "describe a model this program can rebuild") from None
    return network


def _image_shape(value: Any, name: str) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and
            all(type(n) is int and 1 <= n <= MAX_SIDE for n in value)):
        raise _Bad(f"{name} must be [height, width] of 1 to {MAX_SIDE} pixels, "
                   f"got {value!r:.60}")
    return value[0], value[1]


def _optional(meta: dict, key: str, check: Any) -> None:
    if key in meta:
        check(meta[key])


def _dict(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(f"{name} must be an object, got {value!r:.60}")
    return value


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{name} must be a string, got {value!r:.60}")
    return value


def _choice(value: Any, name: str, choices: tuple) -> Any:
    if value not in choices:
        raise _Bad(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r:.60}")
    return value


def _integer(value: Any, name: str, low: int, high: int | None = None) -> int:
    if type(value) is not int or value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f"at least {low}"
        raise _Bad(f"{name} must be an integer {span}, got {value!r:.60}")
    return value


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _number(value: Any, name: str, low: float | None = None, none: bool = False) -> None:
    if value is None and none:
        return
    if not _is_number(value) or (low is not None and value < low):
        bound = f" of at least {low}" if low is not None else ""
        raise _Bad(f"{name} must be a finite number{bound}, got {value!r:.60}")


def _fraction(value: Any, name: str, none: bool = False) -> None:
    if value is None and none:
        return
    if not (_is_number(value) and 0 <= value <= 1):
        raise _Bad(f"{name} must be a number from 0 to 1, got {value!r:.60}")

"""Train, evaluate and use handwritten-digit classifiers built on our own autodiff engine.

    python train.py                          # train the default MLP on MNIST and save it
    python train.py --model cnn              # the convolutional network
    python train.py --recipe seed            # the original notebook's recipe, exactly
    python train.py --load M --evaluate      # test a saved model
    python train.py --load M --predict a.png # classify your own digit photos
    python train.py --resume CHECKPOINT      # carry on after an interruption

This file only turns arguments into calls and results into output; the work is in nets/.
Errors a user can cause end in one message and a non-zero exit code; set --debug (or
DIGITS_DEBUG=1) to see the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nets import checkpoint
from nets.allocator import keep_freed_memory
from nets.costs import COSTS, PREDICTIONS
from nets.data import NORMALISATION, Dataset, load_dataset, prepare_images
from nets.errors import CheckpointError, ConfigError, NetsError, TrainingDiverged
from nets.metrics import confusion_matrix, precision_recall
from nets.mlp import INITS
from nets.models import MODEL_KINDS, Model, check_params, make_cnn, make_mlp, model_from_config
from nets.optimizers import OPTIMIZERS, SCHEDULES
from nets.training import Split, TrainConfig, TrainState, evaluate, init_state, split, train

VERSION = "0.1.0"
EXIT_INTERRUPTED = 130
DEFAULT_LAYERS = "784,256,128,10"

# The original notebook: 784-100-64-28-10, ReLU hidden layers, sigmoid outputs with mean
# squared error, full-batch gradient descent at 0.1, weights N(0, 1) * 0.01, zero biases.
SEED_RECIPE = {
    "layers": "784,100,64,28,10", "activation": "relu", "cost": "mse", "optimizer": "sgd",
    "batch_size": 0, "lr": 0.1, "init": "normal", "init_scale": 0.01, "epochs": 300,
    "schedule": "constant", "model": "mlp",
}
DEFAULTS = {
    "dataset": "mnist", "model": "mlp", "layers": DEFAULT_LAYERS, "activation": "relu",
    "cost": "cross-entropy", "optimizer": "adam", "lr": 1e-3, "batch_size": 128, "epochs": 10,
    "seed": 0, "val_size": 5000, "init": "he", "init_scale": 0.01, "schedule": "cosine",
    "patience": 0, "weight_decay": 0.0, "checkpoint_every": 1, "host": "127.0.0.1", "port": 8000,
}
# Random shifts of up to 2 pixels keep the CNN from memorising the training set (without
# them it reaches 100% training accuracy and about 99.2% on the test set).
CNN_SHIFT = 2
# Settings a checkpoint fixes: resuming with different ones would not continue the same run.
FIXED_BY_CHECKPOINT = ("dataset", "model", "layers", "activation", "cost", "optimizer", "lr",
                       "batch_size", "seed", "val_size", "init", "init_scale", "schedule",
                       "patience", "weight_decay", "recipe", "shift")


# ------------------------------------------------------------------------- arguments


def _positive_float(text: str) -> float:
    value = float(text)
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _layers(text: str) -> list[int]:
    try:
        # "-" separates only between digits (784-100-10), so a minus sign stays a sign and
        # "784,-16,10" is refused below instead of read as 784,16,10.
        parts = re.split(r",|(?<=\d)-(?=\d)", text)
        sizes = [int(part) for part in parts if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers like {DEFAULT_LAYERS}, got {text!r}") from None
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(
            f"needs at least two positive sizes (inputs, ..., classes), got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train and use handwritten-digit classifiers written from scratch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=None,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=("mnist", "fashion-mnist"),
                      help="dataset (default mnist)")
    data.add_argument("--data-dir", metavar="DIR",
                      help="directory holding the four IDX files (else $MNIST_DIR, else the "
                           "download cache)")
    data.add_argument("--val-size", type=_int_at_least(0), metavar="N",
                      help="training images held out for validation (default 5000)")

    model = parser.add_argument_group("model")
    model.add_argument("--recipe", choices=("seed",),
                       help="'seed': the original notebook's network and training, exactly")
    model.add_argument("--model", choices=MODEL_KINDS, help="network kind (default mlp)")
    model.add_argument("--layers", type=_layers, metavar="SIZES",
                       help=f"MLP layer sizes, inputs first (default {DEFAULT_LAYERS})")
    model.add_argument("--activation", choices=("relu", "sigmoid", "tanh"),
                       help="hidden activation (default relu)")
    model.add_argument("--init", choices=INITS, help="weight initialisation (default he)")
    model.add_argument("--init-scale", type=_positive_float, metavar="S",
                       help="std of --init normal (default 0.01)")
    model.add_argument("--cost", choices=tuple(COSTS), help="cost function (default cross-entropy)")

    training = parser.add_argument_group("training")
    training.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help="(default adam)")
    training.add_argument("--lr", type=_positive_float, help="learning rate (default 0.001)")
    training.add_argument("--schedule", choices=SCHEDULES,
                          help="learning-rate schedule (default cosine)")
    training.add_argument("--batch-size", type=_int_at_least(0), metavar="N",
                          help="minibatch size; 0 for full-batch gradient descent (default 128)")
    training.add_argument("--epochs", type=_int_at_least(1), metavar="N", help="(default 10)")
    training.add_argument("--weight-decay", type=_non_negative_float, metavar="WD",
                          help="decoupled weight decay (default 0)")
    training.add_argument("--patience", type=_int_at_least(0), metavar="N",
                          help="stop after N epochs without a better validation loss and "
                               "restore the best parameters; 0 never stops early (default 0)")
    training.add_argument("--shift", type=_int_at_least(0), metavar="PIXELS",
                          help="augment: move training images randomly by up to PIXELS in "
                               "each direction (default 2 for the cnn, 0 for the mlp)")
    training.add_argument("--seed", type=int, help="seed for initialisation, split and "
                                                   "shuffling (default 0)")

    files = parser.add_argument_group("files")
    files.add_argument("--save", metavar="PATH",
                       help="where to save the trained model (default models/DATASET-MODEL.npz)")
    files.add_argument("--load", metavar="PATH", help="a saved model to evaluate or use")
    files.add_argument("--checkpoint", metavar="PATH",
                       help="training checkpoint file (default: the --save path with "
                            ".checkpoint.npz)")
    files.add_argument("--checkpoint-every", type=_int_at_least(1), metavar="N",
                       help="write the checkpoint every N epochs (default 1)")
    files.add_argument("--resume", metavar="CHECKPOINT",
                       help="continue the interrupted run saved in CHECKPOINT")
    files.add_argument("--import-notebook", metavar="PICKLE",
                       help="convert the original notebook's pickled parameters to a model "
                            "(with --save)")

    use = parser.add_argument_group("using a model")
    use.add_argument("--evaluate", action="store_true",
                     help="test the --load model: accuracy, per-class precision and recall, "
                          "confusion matrix")
    use.add_argument("--predict", nargs="+", metavar="IMAGE",
                     help="classify your own digit images (PNG/JPEG) with the --load model")
    use.add_argument("--show-input", metavar="DIR",
                     help="with --predict: save the 28x28 image the network saw")
    use.add_argument("--plots", metavar="DIR", help="write PNG plots to DIR")
    use.add_argument("--serve", action="store_true",
                     help="serve the --load model as a local web app: draw digits, upload photos")
    use.add_argument("--host", help="with --serve: address to bind (default 127.0.0.1)")
    use.add_argument("--port", type=_int_at_least(1), help="with --serve: port (default 8000)")

    out = parser.add_argument_group("output")
    out.add_argument("--report", metavar="FILE", help="write a JSON report of the run")
    out.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    out.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Fill defaults (the seed recipe's when asked), and reject combinations that cannot work."""
    given = {k for k, v in vars(args).items() if v is not None and v is not False}
    if args.resume and given & set(FIXED_BY_CHECKPOINT):
        parser.error(
            "--resume continues a run with the settings stored in its checkpoint; drop "
            + ", ".join("--" + k.replace("_", "-")
                        for k in sorted(given & set(FIXED_BY_CHECKPOINT)))
        )
    base = {**DEFAULTS, **(SEED_RECIPE if args.recipe == "seed" else {})}
    if args.resume:  # the checkpoint supplies these
        base = {k: v for k, v in base.items() if k not in FIXED_BY_CHECKPOINT + ("epochs",)}
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.shift is None and not args.resume:
        args.shift = CNN_SHIFT if args.model == "cnn" else 0
    if isinstance(args.layers, str):
        args.layers = _layers(args.layers)
    if args.predict and not args.load:
        parser.error("--predict needs a model: add --load MODEL")
    if args.serve and not args.load:
        parser.error("--serve needs a model: add --load MODEL")
    if given & {"host", "port"} and not args.serve:
        parser.error("--host and --port go with --serve")
    if args.evaluate and not (args.load or args.import_notebook):
        parser.error("--evaluate needs a model: add --load MODEL")
    if args.show_input and not args.predict:
        parser.error("--show-input goes with --predict")
    if args.import_notebook and not args.save:
        parser.error("--import-notebook needs --save PATH for the converted model")
    if args.load and args.resume:
        parser.error("use either --load (a finished model) or --resume (a checkpoint)")
    if not args.resume and args.patience and args.val_size == 0:
        parser.error("--patience stops on the validation loss: it needs --val-size above 0")
    if args.model == "cnn" and "layers" in given:
        parser.error("--layers describes an MLP; the cnn has a fixed architecture")
    return args


# ---------------------------------------------------------------------------- output


class Console:
    """Where messages go: stdout for results, stderr for errors; nothing when quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def result(self, message: str) -> None:
        print(message, flush=True)


def _epoch_line(entry: dict, epochs: int) -> str:
    val = ""
    if entry["val_loss"] is not None:
        val = f"  val loss {entry['val_loss']:.4f} acc {100 * entry['val_accuracy']:.2f}%"
    return (f"epoch {entry['epoch']:>3}/{epochs}  train loss {entry['train_loss']:.4f} "
            f"acc {100 * entry['train_accuracy']:.2f}%{val}  {entry['seconds']:.1f}s")


def _confusion_table(matrix: np.ndarray, class_names: list[str]) -> str:
    precision, recall = precision_recall(matrix)
    width = max(5, *(len(str(n)) for n in matrix.ravel()))
    labels = [name[:width] for name in class_names]
    lines = ["confusion matrix (rows: true class, columns: predicted class)",
             " " * 12 + " ".join(f"{label:>{width}}" for label in labels)
             + "   precision  recall"]
    for i, row in enumerate(matrix):
        cells = " ".join(f"{n:>{width}}" for n in row)
        lines.append(f"{class_names[i][:11]:>11} {cells}   {_pct(precision[i]):>9} "
                     f"{_pct(recall[i]):>7}")
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.2f}%"


# ------------------------------------------------------------------------ the commands


def _versions() -> dict:
    return {"digits-from-scratch": VERSION, "numpy": np.__version__,
            "python": platform.python_version()}


def _load_data(args: argparse.Namespace, console: Console) -> Dataset:
    started = time.perf_counter()
    dataset = load_dataset(args.dataset, args.data_dir, progress=not args.quiet)
    console.info(f"loaded {args.dataset}: {len(dataset.train_images)} training and "
                 f"{len(dataset.test_images)} test images ({time.perf_counter() - started:.1f}s)")
    return dataset


def _inputs(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    return prepare_images(dataset.train_images), prepare_images(dataset.test_images)


def _model_from_args(args: argparse.Namespace, input_size: int, num_classes: int,
                     image_shape: tuple) -> Model:
    if args.model == "cnn":
        return make_cnn(input_shape=(1, *image_shape), num_classes=num_classes)
    sizes = list(args.layers)
    if sizes[0] != input_size or sizes[-1] != num_classes:
        raise ConfigError(
            f"--layers {','.join(map(str, sizes))} does not fit {args.dataset}: the first "
            f"size must be the {input_size} input pixels and the last the {num_classes} classes"
        )
    return make_mlp(sizes, args.activation, args.init, args.init_scale)


def _model_meta(model: Model, args: argparse.Namespace, dataset: Dataset) -> dict:
    return {
        "model": model.kind, **model.config, "cost": args.cost, "dataset": args.dataset,
        "class_names": list(dataset.class_names), "normalisation": NORMALISATION,
        "image_shape": list(dataset.train_images.shape[1:]), "versions": _versions(),
    }


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       optimizer=args.optimizer, weight_decay=args.weight_decay,
                       schedule=args.schedule, patience=args.patience, seed=args.seed,
                       shift=args.shift)


def _default_save(args: argparse.Namespace) -> str:
    name = "seed-recipe" if args.recipe == "seed" else args.model
    return str(Path("models") / f"{args.dataset}-{name}.npz")


def _checkpoint_path(args: argparse.Namespace) -> str:
    if args.checkpoint:
        return args.checkpoint
    if args.resume:
        return args.resume
    save = Path(args.save)
    return str(save.with_name(save.name.removesuffix(".npz") + ".checkpoint.npz"))


# Checkpoints hold the parameters and optimizer state as arrays, and the rest of the
# training state plus every setting needed to rebuild the run as JSON metadata.
_STATE_FIELDS = ("epoch", "step", "total_steps", "loss_sum", "hits", "seen", "history",
                 "best_epoch", "bad_epochs", "rng_state")


def save_checkpoint(path: str, state: TrainState, run: dict) -> None:
    fields = {name: getattr(state, name) for name in _STATE_FIELDS}
    fields["best_val_loss"] = state.best_val_loss if np.isfinite(state.best_val_loss) else None
    tree = {"params": state.params, "opt_state": state.opt_state,
            "best_params": state.best_params}
    _ensure_parent(path)
    checkpoint.save(path, tree, {"kind": "checkpoint", "run": run, "state": fields})


def load_checkpoint(path: str) -> tuple[TrainState, dict]:
    tree, meta = checkpoint.load(path)
    if meta.get("kind") != "checkpoint":
        raise CheckpointError(f"{path} is not a training checkpoint (it is a "
                              f"{meta.get('kind')!r} file); resume from a .checkpoint.npz file")
    try:
        fields = dict(meta["state"])
        run = meta["run"]
        best = fields.pop("best_val_loss")
        state = TrainState(params=tree["params"], opt_state=tree["opt_state"],
                           best_params=tree["best_params"],
                           best_val_loss=np.inf if best is None else best, **fields)
        np.random.default_rng().bit_generator.state = state.rng_state
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} is damaged or from another program ({error!r}); "
                              "start a new run") from None
    return state, run


def _ensure_dir(directory: str | Path) -> None:
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the directory {directory}: {error.strerror}") from None


def _ensure_parent(path: str) -> None:
    _ensure_dir(Path(path).parent)


class StopOnSignal:
    """The first Ctrl-C asks the training loop to stop after the current step; a second one
    interrupts at once."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.requested = False
        self.previous = None

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


def run_training(args: argparse.Namespace, console: Console) -> int:
    state: TrainState | None = None
    if args.resume:
        state, run = load_checkpoint(args.resume)
        for key, value in run["args"].items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
        console.info(f"resuming {args.resume}: epoch {state.epoch + 1}, step {state.step}")
    args.save = args.save or _default_save(args)
    ckpt_path = _checkpoint_path(args)
    dataset = _load_data(args, console)
    train_x, test_x = _inputs(dataset)
    labels = dataset.train_labels.astype(np.int64)
    model = _model_from_args(args, train_x.shape[1], dataset.num_classes,
                             dataset.train_images.shape[1:])
    data = split(train_x, labels, args.val_size, dataset.num_classes, seed=args.seed,
                 image_shape=tuple(dataset.train_images.shape[1:]))
    config = _train_config(args)
    config.check(len(data.train_x))
    cost = COSTS[args.cost]
    if state is None:
        params = model.init(np.random.default_rng(args.seed))
        state = init_state(params, config)
    # data_dir too, so that the printed "--resume CHECKPOINT" finds the same files; unlike
    # the fixed settings it may be given again when the files have moved.
    run = {"args": {k: getattr(args, k)
                    for k in FIXED_BY_CHECKPOINT + ("epochs", "save", "data_dir")}}
    for key in ("save", "data_dir"):  # absolute, so a resume from elsewhere finds them
        if run["args"][key]:
            run["args"][key] = os.path.abspath(run["args"][key])
    result = _train_loop(state, model, cost, data, config, args, console, ckpt_path, run)
    if result is None:
        return EXIT_INTERRUPTED
    state = result
    with np.errstate(over="ignore", invalid="ignore"):  # reported just below instead
        test_loss, test_accuracy, _ = evaluate(model.apply, state.params, cost, test_x,
                                               dataset.test_labels.astype(np.int64),
                                               dataset.num_classes)
    if not np.isfinite(test_loss):
        # Without validation data nothing looked at the final model's outputs; one that
        # overflows is of no use (and its metadata would not even be valid JSON).
        raise TrainingDiverged(
            f"training diverged: the test loss is {test_loss} after epoch {state.epoch} "
            f"({state.total_steps} steps); try a smaller learning rate (--lr)")
    meta = {**_model_meta(model, args, dataset), "history": state.history,
            "train_config": asdict(config), "val_size": args.val_size,
            "test_accuracy": test_accuracy, "test_loss": test_loss}
    _ensure_parent(args.save)
    checkpoint.save(args.save, {"params": state.params}, {**meta, "kind": "model"})
    stopped = f" (early stopping: best epoch {state.best_epoch})" \
        if state.stop_reason == "early stopping" else ""
    console.result(f"test accuracy {100 * test_accuracy:.2f}%  test loss {test_loss:.4f}"
                   f"{stopped}")
    console.info(f"model saved to {args.save}")
    if args.report:
        _write_report(args.report, test_accuracy, test_loss, state.history, meta)
    if args.plots:
        from nets.plots import plot_learning_curves

        _ensure_dir(args.plots)
        path = plot_learning_curves(state.history, Path(args.plots) / "learning_curves.png")
        console.info(f"learning curves written to {path}")
    return 0


def _train_loop(state: TrainState, model: Model, cost: Any, data: Split, config: TrainConfig,
                args: argparse.Namespace, console: Console, ckpt_path: str,
                run: dict) -> TrainState | None:
    """Train with progress output, periodic checkpoints and a clean stop on Ctrl-C.
    Returns None when interrupted (after saving a checkpoint)."""
    from tqdm import tqdm

    batch = config.batch_size or len(data.train_x)
    steps = -(-len(data.train_x) // batch)
    bar = None
    last_saved = {"epoch": None}

    def on_step(s: TrainState) -> None:
        nonlocal bar
        if args.quiet or steps < 5:
            return
        if bar is None:
            bar = tqdm(total=steps, initial=s.step - 1, desc=f"epoch {s.epoch + 1}",
                       leave=False, unit="batch", dynamic_ncols=True)
        bar.update(1)
        if s.step == steps:
            bar.close()
            bar = None

    def on_epoch(s: TrainState) -> None:
        console.info(_epoch_line(s.history[-1], config.epochs))
        if s.epoch % args.checkpoint_every == 0 or s.stop_reason:
            save_checkpoint(ckpt_path, s, run)
            last_saved["epoch"] = s.epoch

    with StopOnSignal(console) as stop:
        try:
            state = train(state, model.apply, cost, data, config, on_step=on_step,
                          on_epoch=on_epoch, should_stop=stop)
        except TrainingDiverged as error:
            kept = (f"the last good checkpoint (epoch {last_saved['epoch']}) is kept at "
                    f"{ckpt_path}" if last_saved["epoch"] is not None
                    else "no checkpoint was written")
            raise TrainingDiverged(f"{error}; {kept}") from None
        finally:
            if bar is not None:
                bar.close()
    if state.stop_reason == "interrupted":
        save_checkpoint(ckpt_path, state, run)
        print(f"interrupted at epoch {state.epoch + 1}, step {state.step}: checkpoint saved to "
              f"{ckpt_path}\nresume with: python train.py --resume {ckpt_path}",
              file=sys.stderr, flush=True)
        return None
    return state


def _write_report(path: str, test_accuracy: float, test_loss: float, history: list,
                  meta: dict) -> None:
    report = {"test_accuracy": test_accuracy, "test_loss": test_loss,
              "epochs": history, "config": {k: v for k, v in meta.items() if k != "history"}}
    _ensure_parent(path)
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


def load_model_file(path: str) -> tuple[Model, Any, dict]:
    tree_params, meta = checkpoint.load_model(path)
    try:
        model = model_from_config(meta.get("model", "mlp"), meta)
        check_params(model, tree_params)
        cost = meta["cost"]
        if cost not in COSTS:
            raise ConfigError(f"it was trained with an unknown cost {cost!r}")
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise CheckpointError(f"{path}: the metadata does not describe a model this program "
                              f"can rebuild ({error})") from None
    return model, tree_params, meta


def run_evaluation(args: argparse.Namespace, console: Console) -> int:
    model, params, meta = load_model_file(args.load)
    args.dataset = meta.get("dataset", args.dataset)
    dataset = _load_data(args, console)
    _, test_x = _inputs(dataset)
    if test_x.shape[1] != model.input_size or dataset.num_classes != model.num_classes:
        raise CheckpointError(
            f"model {args.load} expects {model.input_size} inputs and {model.num_classes} "
            f"classes, but {args.dataset} has {test_x.shape[1]} and {dataset.num_classes}; "
            "use a model trained on this data")
    labels = dataset.test_labels.astype(np.int64)
    cost = COSTS[meta["cost"]]
    test_loss, test_accuracy, logits = evaluate(model.apply, params, cost, test_x, labels,
                                                dataset.num_classes)
    predicted = np.argmax(logits, axis=1)
    matrix = confusion_matrix(predicted, labels, dataset.num_classes)
    names = list(meta.get("class_names") or dataset.class_names)
    console.result(f"{args.load}: test accuracy {100 * test_accuracy:.2f}% "
                   f"({int(np.sum(predicted == labels))}/{len(labels)}), test loss {test_loss:.4f}")
    console.result(_confusion_table(matrix, names))
    if args.report:
        _write_report(args.report, test_accuracy, test_loss, meta.get("history", []), meta)
    if args.plots:
        _evaluation_plots(args.plots, meta, matrix, names, dataset, logits, labels, console)
    return 0


def _evaluation_plots(directory: str, meta: dict, matrix: np.ndarray, names: list,
                      dataset: Dataset, logits: np.ndarray, labels: np.ndarray,
                      console: Console) -> None:
    from nets.plots import plot_confident_mistakes, plot_confusion_matrix, plot_learning_curves

    out = Path(directory)
    _ensure_dir(out)
    written = []
    if meta.get("history"):
        written.append(plot_learning_curves(meta["history"], out / "learning_curves.png"))
    written.append(plot_confusion_matrix(matrix, names, out / "confusion_matrix.png"))
    probabilities = np.asarray(PREDICTIONS[meta["cost"]](logits))
    predicted = np.argmax(probabilities, axis=1)
    written.append(plot_confident_mistakes(
        dataset.test_images, labels, predicted, probabilities.max(axis=1), names,
        out / "confident_mistakes.png"))
    for path in written:
        console.info(f"wrote {path}")


def load_trained_model(path: str) -> Any:
    """A model file -> an object with `kind`, `meta` and `predict_proba(images (N, 28, 28)
    float in [0, 1]) -> (N, classes) float32`, for reading photos and serving."""
    from types import SimpleNamespace

    model, params, meta = load_model_file(path)
    if meta.get("normalisation", NORMALISATION) != NORMALISATION or model.input_size != 784:
        raise CheckpointError(f"{path} was not trained on 28x28 digit images scaled "
                              f"{NORMALISATION}; reading photos needs such a model")

    def predict_proba(images: np.ndarray) -> np.ndarray:
        logits = model.apply(params, np.asarray(images, np.float32).reshape(len(images), -1))
        return np.asarray(PREDICTIONS[meta["cost"]](logits), dtype=np.float32)

    return SimpleNamespace(kind=model.kind, meta=meta, predict_proba=predict_proba)


def _number_line(path: str, readings: list, names: list[str]) -> str:
    """One digit: its top 3, as always; several: the number and each digit's confidence.
    Unsure digits are marked with '?' and explained on a line of their own."""
    from digits.segment import LOW_CONFIDENCE

    unsure = any(r.unsure for r in readings)
    note = f"\n  ? = unsure: confidence below {LOW_CONFIDENCE:.0%}" if unsure else ""
    if len(readings) == 1:
        p = readings[0].probabilities
        top = np.argsort(p)[::-1][:3]
        ranked = ", ".join(f"{names[k]} {100 * p[k]:.1f}%" for k in top)
        mark = "?" if readings[0].unsure else ""
        return f"{path}: {names[top[0]]}{mark}   (top 3: {ranked}){note}"
    each = ", ".join(f"{names[r.digit]}{'?' if r.unsure else ''} {100 * r.confidence:.1f}%"
                     for r in readings)
    return f"{path}: {''.join(names[r.digit] for r in readings)}  ({each}){note}"


def run_prediction(args: argparse.Namespace, console: Console) -> int:
    from nets.errors import ImageError
    from nets.images import load_image, save_input_image

    try:
        from digits.segment import read_number
    except ImportError as error:
        raise ImageError(f"reading photos needs {error.name}: pip install '.[image]'") from None

    model = load_trained_model(args.load)
    names = list(model.meta.get("class_names") or [str(i) for i in range(10)])
    if args.show_input:
        _ensure_dir(args.show_input)
    failures = 0
    for path in args.predict:
        try:
            readings = read_number(load_image(path), model.predict_proba)
            console.result(_number_line(path, readings, names))
            for i, reading in enumerate(readings if args.show_input else []):
                suffix = f".input-{i + 1}.png" if len(readings) > 1 else ".input.png"
                out = save_input_image(reading.image, Path(args.show_input) /
                                       (Path(path).stem + suffix))
                console.info(f"  the network saw {out}")
        except ImageError as error:
            failures += 1
            print(f"{path}: error: {error}", file=sys.stderr, flush=True)
    return 1 if failures else 0


def run_serve(args: argparse.Namespace) -> int:
    try:
        from digits.serve import serve
    except ImportError as error:
        raise ConfigError(f"the web app needs {error.name}: pip install '.[serve,image]'") \
            from None

    serve(load_trained_model(args.load), args.host, args.port)
    return 0


def run_import(args: argparse.Namespace, console: Console) -> int:
    from nets.notebook import load_notebook_params

    params, sizes = load_notebook_params(args.import_notebook)
    model = make_mlp(sizes, "relu", "normal", 0.01)
    meta = {"model": "mlp", **model.config, "cost": "mse", "dataset": "mnist",
            "class_names": [str(i) for i in range(10)], "normalisation": NORMALISATION,
            "image_shape": [28, 28], "versions": _versions(), "history": [],
            "source": f"imported from {Path(args.import_notebook).name}"}
    _ensure_parent(args.save)
    checkpoint.save_model(args.save, params, meta)
    console.result(f"imported {args.import_notebook} ({'-'.join(map(str, sizes))}, sigmoid "
                   f"outputs, MSE) to {args.save}")
    if args.evaluate:
        args.load = args.save
        return run_evaluation(args, console)
    return 0


def run(args: argparse.Namespace) -> int:
    console = Console(args.quiet)
    if args.plots:
        from nets.plots import require_matplotlib

        require_matplotlib()
    if args.predict or args.serve:
        from nets.images import require_pillow

        require_pillow()
    if args.import_notebook:
        return run_import(args, console)
    if args.predict:
        return run_prediction(args, console)
    if args.serve:
        return run_serve(args)
    if args.evaluate:
        return run_evaluation(args, console)
    if args.load:
        raise ConfigError("--load needs something to do with the model: --evaluate, --predict or "
                          "--serve")
    return run_training(args, console)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = resolve(parser.parse_args(argv), parser)
    debug = args.debug or os.environ.get("DIGITS_DEBUG") == "1"
    keep_freed_memory()  # no page faults for reused arrays: see nets/allocator.py
    try:
        return run(args)
    except NetsError as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print("\ninterrupted; nothing was saved by this step", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

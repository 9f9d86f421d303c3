"""Train, evaluate and use handwritten-digit classifiers built on our own autodiff engine.

This file only parses flags into one `nets.config.Settings`, calls one function per action
(train, evaluate, predict, import) and prints. Errors a user can cause end in one message
and a non-zero exit code; --debug (or DIGITS_DEBUG=1) shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from digits.allocator import keep_freed_memory
from digits.datasets import load_dataset
from digits.modelfile import load_model
from digits.reports import confusion_table, epoch_line, write_report
from digits.runs import Files, ensure_parent, resume, run_training
from nets.activations import ACTIVATIONS
from nets.config import DATASETS, RECIPES, Settings
from nets.costs import COSTS
from nets.errors import ConfigError, NetsError
from nets.inputs import prepare_images
from nets.metrics import confusion_matrix
from nets.mlp import INITS
from nets.models import MODEL_KINDS
from nets.optimizers import OPTIMIZERS, SCHEDULES

EXIT_INTERRUPTED = 130
SETTINGS = tuple(f.name for f in fields(Settings))


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def _layers(text: str) -> tuple[int, ...]:
    # "-" separates only between digits (784-100-10), so a minus sign stays a sign and
    # "784,-16,10" reaches the check instead of being read as 784,16,10.
    try:
        return tuple(int(p) for p in re.split(r"[,\s]|(?<=\d)-(?=\d)", text) if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be integers like 784,256,10, got {text!r}") \
            from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    d, cnn = RECIPES["mlp"], RECIPES["cnn"]
    p = Parser(prog="train.py", description="Train and use handwritten-digit classifiers "
               "written from scratch. Each setting's default is the mlp recipe's.")
    g = p.add_argument_group("settings (with --resume, only --epochs may be given)")
    g.add_argument("--recipe", choices=tuple(RECIPES), help="start from a recipe; 'seed': the "
                   "original notebook's network and training (default mlp, or cnn with --model)")
    for name, kind, help_ in (
            ("dataset", DATASETS, ""), ("model", MODEL_KINDS, "network kind"),
            ("layers", _layers, "MLP sizes, inputs first: 784,256,10 or 784 256 10"),
            ("activation", tuple(ACTIVATIONS), "hidden activation"),
            ("init", INITS, "weight initialisation"), ("init_scale", float, "std of normal"),
            ("cost", tuple(COSTS), ""), ("optimizer", tuple(OPTIMIZERS), ""),
            ("lr", float, "learning rate"), ("schedule", SCHEDULES, "learning-rate schedule"),
            ("batch_size", _integer, "minibatch size; 0: full batch"), ("epochs", _integer, ""),
            ("weight_decay", float, "decoupled weight decay"),
            ("patience", _integer, "stop after N epochs without a better validation loss, "
                                   "restoring the best parameters; 0: never"),
            ("shift", _integer, f"move training images by up to N pixels (cnn: {cnn.shift})"),
            ("seed", _integer, "seed of initialisation, split and shuffling"),
            ("val_size", _integer, "training images held out for validation")):
        default = getattr(d, name)
        default = ",".join(map(str, default)) if name == "layers" else default
        options = {"choices": kind} if isinstance(kind, tuple) else \
            {"type": kind, "metavar": name.split("_")[-1].upper()}
        g.add_argument("--" + name.replace("_", "-"), **options,
                       nargs="+" if name == "layers" else None,
                       help=f"{help_} (default {default})".lstrip())
    for group, flags in (("files", (
            ("--data-dir", "DIR", "directory of the four IDX files (default: $MNIST_DIR, "
                                  "else the download cache)"),
            ("--save", "PATH", "where to save the model (default models/DATASET-MODEL.npz)"),
            ("--load", "PATH", "a saved model to evaluate or use"),
            ("--checkpoint", "PATH", "checkpoint file (default: --save's, .checkpoint.npz)"),
            ("--checkpoint-every", "N", "write the checkpoint every N epochs (default 1)"),
            ("--resume", "CHECKPOINT", "continue the run saved there"),
            ("--import-notebook", "PICKLE", "convert the original notebook's parameters "
                                            "to a model (with --save)"))),
            ("using a model", (
            ("--evaluate", None, "test the --load model: accuracy, per-class precision and "
                                 "recall, confusion matrix"),
            ("--predict", "IMAGE", "classify digit photos (PNG, JPEG) with the --load model"),
            ("--show-input", "DIR", "with --predict: save the 28x28 image the network saw"),
            ("--plots", "DIR", "write PNG plots to DIR"),
            ("--report", "FILE", "write a JSON report of the run"),
            ("--quiet", None, "no progress bars or epoch lines"),
            ("--debug", None, "show tracebacks on errors")))):
        g = p.add_argument_group(group)
        for flag, metavar, help_ in flags:
            if metavar is None:
                g.add_argument(flag, action="store_true", help=help_)
            else:
                g.add_argument(flag, metavar=metavar, help=help_,
                               nargs="+" if flag == "--predict" else None,
                               **({"type": _integer, "default": 1} if metavar == "N" else {}))
    return p


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """The recipe with the flags given applied, checked; usage errors for combinations
    that cannot work."""
    given = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    if "layers" in given:
        given["layers"] = tuple(n for part in given["layers"] for n in part)
    fixed = sorted(set(given) - {"epochs"})
    if args.resume and (fixed or args.recipe):
        parser.error("--resume continues a run with the settings stored in its checkpoint; "
                     "drop " + ", ".join("--" + k.replace("_", "-") for k in fixed or ["recipe"]))
    for flag, needs, missing in (("predict", "--load MODEL", not args.load),
                                 ("evaluate", "--load MODEL",
                                  not (args.load or args.import_notebook)),
                                 ("show_input", "--predict", not args.predict),
                                 ("import_notebook", "--save PATH", not args.save)):
        if getattr(args, flag) and missing:
            parser.error(f"--{flag.replace('_', '-')} needs {needs}")
    if args.load and args.resume:
        parser.error("use either --load (a finished model) or --resume (a checkpoint)")
    if args.checkpoint_every < 1:
        parser.error(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    recipe = RECIPES[args.recipe or given.get("model", "mlp")]
    try:
        return replace(recipe, **given).check()
    except ConfigError as error:
        parser.error(str(error))


def say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, flush=True)


# ---------------------------------------------------------------------------- actions


def train_model(args: argparse.Namespace, settings: Settings) -> int:
    state = None
    if args.resume:
        state, settings, run = resume(args.resume, args.epochs)
        args.save, args.data_dir = args.save or run["save"], args.data_dir or run["data_dir"]
        say(args, f"resuming {args.resume}: epoch {state.epoch + 1}, step {state.step}")
    name = "seed-recipe" if args.recipe == "seed" else settings.model
    files = Files.chosen(f"{settings.dataset}-{name}", args.save, args.checkpoint or args.resume,
                         args.data_dir, args.checkpoint_every)
    dataset = load_data(args, settings.dataset)
    model, state = run_training(settings, dataset, files, state=state, progress=not args.quiet,
                                on_epoch=lambda e: say(args, epoch_line(e, settings.epochs)))
    if model is None:
        print(f"interrupted at epoch {state.epoch + 1}, step {state.step}: checkpoint saved to "
              f"{files.checkpoint}\nresume with: python train.py --resume {files.checkpoint}",
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    stopped = f" (early stopping: best epoch {state.best_epoch})" \
        if state.stop_reason == "early stopping" else ""
    print(f"test accuracy {100 * model.meta['test_accuracy']:.2f}%  test loss "
          f"{model.meta['test_loss']:.4f}{stopped}", flush=True)
    say(args, f"model saved to {files.save}")
    if args.report:
        write_report(args.report, model.meta["test_accuracy"], model.meta["test_loss"],
                     {**model.meta, "settings": settings.to_json()})
    if args.plots:
        from digits.plots import plot_learning_curves

        ensure_parent(Path(args.plots) / "x")
        out = plot_learning_curves(state.history, Path(args.plots) / "learning_curves.png")
        say(args, f"learning curves written to {out}")
    return 0


def load_data(args: argparse.Namespace, name: str):
    dataset = load_dataset(name, args.data_dir, progress=not args.quiet)
    say(args, f"loaded {name}: {len(dataset.train_images)} training and "
              f"{len(dataset.test_images)} test images")
    return dataset


def evaluate_model(args: argparse.Namespace, settings: Settings) -> int:
    model = load_model(args.load)
    dataset = load_data(args, model.meta["dataset"])
    model.check_fits(dataset.name, dataset.test_images[0].size, dataset.num_classes)
    labels = dataset.test_labels.astype(np.int64)
    test_loss, test_accuracy, logits = model.evaluate(prepare_images(dataset.test_images), labels)
    predicted = np.argmax(logits, axis=1)
    matrix = confusion_matrix(predicted, labels, dataset.num_classes)
    print(f"{args.load}: test accuracy {100 * test_accuracy:.2f}% "
          f"({int(np.sum(predicted == labels))}/{len(labels)}), test loss {test_loss:.4f}\n"
          + confusion_table(matrix, model.class_names), flush=True)
    if args.report:
        write_report(args.report, test_accuracy, test_loss, model.meta)
    if args.plots:
        from digits.plots import plot_evaluation

        probabilities = model.predict_proba(prepare_images(dataset.test_images))
        for path in plot_evaluation(args.plots, model.meta.get("history"), matrix,
                                    model.class_names, dataset.test_images, labels,
                                    probabilities):
            say(args, f"wrote {path}")
    return 0


def predict_images(args: argparse.Namespace, settings: Settings) -> int:
    from digits.photos import load_digit, save_input_image
    from nets.errors import ImageError

    model = load_model(args.load)
    model.check_fits("28x28 digit images", 784, model.network.num_classes)
    if args.show_input:
        ensure_parent(Path(args.show_input) / "x")
    failures = 0
    for path in args.predict:
        try:
            digit = load_digit(path)
            probabilities = model.predict_proba(digit[None])[0]
            top = np.argsort(probabilities)[::-1][:3]
            ranked = ", ".join(f"{model.class_names[k]} {100 * probabilities[k]:.1f}%"
                               for k in top)
            print(f"{path}: {model.class_names[top[0]]}   (top 3: {ranked})", flush=True)
            if args.show_input:
                out = Path(args.show_input) / f"{Path(path).stem}.input.png"
                save_input_image(digit, out)
                say(args, f"  the network saw {out}")
        except ImageError as error:
            failures += 1
            print(f"{path}: error: {error}", file=sys.stderr, flush=True)
    return 1 if failures else 0


def import_notebook(args: argparse.Namespace, settings: Settings) -> int:
    from digits.notebook import import_notebook_params

    ensure_parent(args.save)
    sizes = import_notebook_params(args.import_notebook, args.save)
    print(f"imported {args.import_notebook} ({'-'.join(map(str, sizes))}, sigmoid outputs, MSE)"
          f" to {args.save}", flush=True)
    if args.evaluate:
        args.load = args.save
        return evaluate_model(args, settings)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from(args, parser)
    keep_freed_memory()  # no page faults for reused arrays: see digits/allocator.py
    try:
        if args.plots:
            __import__("digits.plots").plots.require_matplotlib()
        if args.predict:
            __import__("digits.photos").photos.require_pillow()
        if args.load and not (args.evaluate or args.predict):
            raise ConfigError("--load needs something to do with the model: --evaluate or "
                              "--predict")
        action = import_notebook if args.import_notebook else predict_images if args.predict \
            else evaluate_model if args.evaluate else train_model
        return action(args, settings)
    except (NetsError, KeyboardInterrupt) as error:
        if args.debug or os.environ.get("DIGITS_DEBUG") == "1":
            raise
        interrupted = isinstance(error, KeyboardInterrupt)
        print("\ninterrupted; nothing was saved by this step" if interrupted
              else f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED if interrupted else 1


if __name__ == "__main__":
    sys.exit(main())

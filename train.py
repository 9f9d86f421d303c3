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

from digits import reports
from digits.allocator import keep_freed_memory
from digits.datasets import Dataset, load_dataset
from digits.modelfile import load_model
from digits.notebook import import_notebook_params
from digits.photos import load_digit, require_pillow, save_input_image
from digits.plots import plot_evaluation, plot_learning_curves, require_matplotlib
from digits.runs import Files, resume, run_training
from nets.config import CHOICES, RECIPES, Settings
from nets.errors import ConfigError, ImageError, NetsError
from nets.inputs import prepare_images
from nets.metrics import confusion_matrix

EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of the usage block; a typo gets a hint
        hint = reports.did_you_mean(message, self._option_string_actions)
        self.exit(2, f"error: {message}{hint} (see --help)\n")


def _layers(text: str) -> tuple[int, ...]:
    # "-" separates only between digits (784-100-10): "784,-16,10" reaches the check.
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


SETTING_FLAGS = (  # (setting, parser or None for CHOICES, help); defaults from the recipe
    ("dataset", None, ""), ("model", None, "network kind"),
    ("layers", _layers, "MLP sizes, inputs first: 784,256,10 or 784 256 10"),
    ("activation", None, "hidden activation"), ("init", None, "weight initialisation"),
    ("init_scale", float, "std of init normal"), ("cost", None, ""), ("optimizer", None, ""),
    ("lr", float, "learning rate"), ("schedule", None, "learning-rate schedule"),
    ("batch_size", _integer, "minibatch size; 0: full batch"), ("epochs", _integer, ""),
    ("weight_decay", float, "decoupled weight decay"),
    ("patience", _integer, "stop after PATIENCE epochs without a better val loss, keep the best"),
    ("shift", _integer, f"shift training images up to SHIFT pixels (cnn: {RECIPES['cnn'].shift})"),
    ("seed", _integer, "seed of initialisation, split and shuffling"),
    ("val_size", _integer, "training images held out for validation"))
OTHER_FLAGS = {  # group: (flag, metavar or None for a switch, help)
    "files": (
        ("--data-dir", "DIR", "the four IDX files (default $MNIST_DIR, else a download)"),
        ("--save", "PATH", "where to save the model (default models/DATASET-MODEL.npz)"),
        ("--load", "PATH", "a saved model to evaluate or use"),
        ("--checkpoint", "PATH", "checkpoint file (default the --save path, .checkpoint.npz)"),
        ("--checkpoint-every", "N", "write the checkpoint every N epochs (default 1)"),
        ("--resume", "CHECKPOINT", "continue the run saved there"),
        ("--import-notebook", "PICKLE", "the original notebook's parameters to --save")),
    "using a model": (
        ("--evaluate", None, "test the --load model: accuracy, precision, recall, confusions"),
        ("--predict", "IMAGE", "classify digit photos (PNG, JPEG) with the --load model"),
        ("--show-input", "DIR", "with --predict: save the 28x28 image the network saw"),
        ("--plots", "DIR", "write PNG plots to DIR"),
        ("--report", "FILE", "write a JSON report of the run"),
        ("--quiet", None, "no progress bars or epoch lines"),
        ("--debug", None, "show tracebacks on errors"))}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="train.py", description="Train and use handwritten-digit classifiers "
               "written from scratch. Each setting's default is the mlp recipe's.")
    g = p.add_argument_group("settings (with --resume, only --epochs may be given)")
    g.add_argument("--recipe", choices=tuple(RECIPES), help="start from a recipe; 'seed': the "
                   "original notebook's network and training (default mlp, or cnn with --model)")
    for name, kind, help_ in SETTING_FLAGS:
        default = getattr(RECIPES["mlp"], name)
        default = ",".join(map(str, default)) if name == "layers" else default
        options = {"choices": CHOICES[name]} if kind is None else \
            {"type": kind, "metavar": name.split("_")[-1].upper()}
        g.add_argument("--" + name.replace("_", "-"), **options, help=f"{help_} (default "
                       f"{default})".lstrip(), nargs="+" if name == "layers" else None)
    for group, flags in OTHER_FLAGS.items():
        g = p.add_argument_group(group)
        for flag, metavar, help_ in flags:
            options = {"action": "store_true"} if metavar is None else {
                "metavar": metavar, "nargs": "+" if flag == "--predict" else None,
                **({"type": _integer, "default": 1} if metavar == "N" else {})}
            g.add_argument(flag, help=help_, **options)
    return p


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """The recipe with the flags given applied, checked; usage errors for bad combinations."""
    given = {f.name: getattr(args, f.name) for f in fields(Settings)
             if getattr(args, f.name) is not None}
    if "layers" in given:
        given["layers"] = tuple(n for part in given["layers"] for n in part)
    fixed = sorted(set(given) - {"epochs"}) or (["recipe"] if args.recipe else [])
    for problem, message in (
            (args.resume and fixed, "--resume continues a run with the settings stored in its "
             "checkpoint; drop " + ", ".join("--" + k.replace("_", "-") for k in fixed)),
            (args.predict and not args.load, "--predict needs --load MODEL"),
            (args.evaluate and not (args.load or args.import_notebook),
             "--evaluate needs --load MODEL"),
            (args.show_input and not args.predict, "--show-input needs --predict"),
            (args.import_notebook and not args.save, "--import-notebook needs --save PATH"),
            (args.load and args.resume, "use either --load (a model) or --resume (a checkpoint)"),
            (args.checkpoint_every < 1, "--checkpoint-every must be at least 1")):
        if problem:
            parser.error(message)
    try:
        return replace(RECIPES[args.recipe or given.get("model", "mlp")], **given).check()
    except ConfigError as error:
        parser.error(str(error))


def say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, flush=True)


def train_model(args: argparse.Namespace, settings: Settings) -> int:
    state = None
    if args.resume:
        state, settings, run = resume(args.resume, args.epochs)
        args.save, args.data_dir = args.save or run["save"], args.data_dir or run["data_dir"]
        say(args, f"resuming {args.resume}: epoch {state.epoch + 1}, step {state.step}")
    name = "seed-recipe" if args.recipe == "seed" else settings.model
    files = Files.chosen(f"{settings.dataset}-{name}", args.save, args.checkpoint or args.resume,
                         args.data_dir, args.checkpoint_every)
    model, state = run_training(
        settings, load_data(args, settings.dataset), files, state=state, progress=not args.quiet,
        on_epoch=lambda entry: say(args, reports.epoch_line(entry, settings.epochs)))
    if model is None:
        print(reports.interrupted_message(state, files.checkpoint), file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    print(reports.result_line(model.meta, state), flush=True)
    say(args, f"model saved to {files.save}")
    if args.report:
        reports.write_report(args.report, model.meta)
    if args.plots:
        out = plot_learning_curves(state.history, Path(args.plots) / "learning_curves.png")
        say(args, f"learning curves written to {out}")
    return 0


def load_data(args: argparse.Namespace, name: str) -> Dataset:
    dataset = load_dataset(name, args.data_dir, progress=not args.quiet)
    say(args, f"loaded {name}: {len(dataset.train_images)} training and "
              f"{len(dataset.test_images)} test images")
    return dataset


def evaluate_model(args: argparse.Namespace, settings: Settings) -> int:
    model = load_model(args.load)
    dataset = load_data(args, model.meta["dataset"])
    model.check_fits(dataset.name, dataset.test_images[0].size, dataset.num_classes)
    images, labels = prepare_images(dataset.test_images), dataset.test_labels.astype(np.int64)
    test_loss, test_accuracy, logits = model.evaluate(images, labels)
    matrix = confusion_matrix(np.argmax(logits, axis=1), labels, dataset.num_classes)
    print(f"{args.load}: test accuracy {100 * test_accuracy:.2f}% ({np.trace(matrix)}/"
          f"{len(labels)}), test loss {test_loss:.4f}\n"
          f"{reports.confusion_table(matrix, model.class_names)}", flush=True)
    if args.report:
        reports.write_report(args.report, {**model.meta, "test_accuracy": test_accuracy,
                                           "test_loss": test_loss})
    if args.plots:
        for path in plot_evaluation(args.plots, model.meta.get("history"), matrix,
                                    model.class_names, dataset.test_images, labels,
                                    model.predict_proba(images)):
            say(args, f"wrote {path}")
    return 0


def predict_images(args: argparse.Namespace, settings: Settings) -> int:
    model = load_model(args.load)
    model.check_fits("28x28 digit images", 784, model.network.num_classes)
    failures = 0
    for path in args.predict:
        try:
            digit = load_digit(path)
            print(f"{path}: " + reports.top3_line(model.predict_proba(digit[None])[0],
                                          model.class_names), flush=True)
            if args.show_input:
                out = Path(args.show_input) / f"{Path(path).stem}.input.png"
                say(args, f"  the network saw {save_input_image(digit, out)}")
        except ImageError as error:
            failures += 1
            print(f"error: {error}", file=sys.stderr, flush=True)  # it names the file
    return 1 if failures else 0


def import_notebook(args: argparse.Namespace, settings: Settings) -> int:
    sizes = import_notebook_params(args.import_notebook, args.save)
    print(f"imported {args.import_notebook} ({'-'.join(map(str, sizes))}, sigmoid outputs, "
          f"MSE) to {args.save}", flush=True)
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
            require_matplotlib()
        if args.predict:
            require_pillow()
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

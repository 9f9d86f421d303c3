"""Train, evaluate and use handwritten-digit classifiers built on our own autodiff engine.

Only parses flags into one `nets.config.Settings`, calls one function per action (train,
import, export, predict, evaluate, serve) and prints. A user's mistake is one line and a
non-zero exit code; --debug (or DIGITS_DEBUG=1) shows the traceback."""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import fields, replace
from pathlib import Path

from digits import reports
from digits.allocator import keep_freed_memory
from digits.datasets import Dataset, load_dataset
from digits.imagefiles import require_pillow
from digits.modelfile import TrainedModel, load_model
from digits.onnx_export import export_onnx
from digits.plots import plot_evaluation, plot_learning_curves, require_matplotlib
from digits.runs import Files, resume, run_training
from nets.config import CHOICES, RECIPES, Settings
from nets.errors import ConfigError, ImageError, NetsError

EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of the usage block
        self.exit(2, f"error: {message} (see --help)\n")


def _layers(text: str) -> tuple[int, ...]:
    # "-" separates only between digits (784-100-10): "784,-16,10" reaches the check.
    try:
        return tuple(int(p) for p in re.split(r"[,\s]|(?<=\d)-(?=\d)", text) if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be integers like 784,256,10, got {text!r}") \
            from None


SETTING_FLAGS = (  # (setting, parser or None for CHOICES, help); defaults from the recipe
    ("dataset", None, ""), ("model", None, "network kind"),
    ("layers", _layers, "MLP sizes, inputs first: 784,256,10 or 784 256 10"),
    ("activation", None, "hidden activation"), ("init", None, "weight initialisation"),
    ("init_scale", float, "std of init normal"), ("cost", None, ""), ("optimizer", None, ""),
    ("lr", float, "learning rate"), ("schedule", None, "learning-rate schedule"),
    ("batch_size", int, "minibatch size; 0: full batch"), ("epochs", int, ""),
    ("weight_decay", float, "decoupled weight decay"),
    ("patience", int, "stop after PATIENCE epochs without a better val loss, keep the best"),
    ("shift", int, f"shift training images up to SHIFT pixels (cnn: {RECIPES['cnn'].shift})"),
    ("seed", int, "seed of initialisation, split and shuffling"),
    ("val_size", int, "training images held out for validation"))
OTHER_FLAGS = {  # group: (flag, metavar or None for a switch, help)
    "files": (
        ("--data-dir", "DIR", "the four IDX files (default $MNIST_DIR, else a download)"),
        ("--save", "PATH", "where to save the model (default models/DATASET-MODEL.npz)"),
        ("--load", "PATH", "a saved model to evaluate or use"),
        ("--checkpoint", "PATH", "checkpoint file (default the --save path, .checkpoint.npz)"),
        ("--checkpoint-every", "N", "write the checkpoint every N epochs", 1),
        ("--resume", "CHECKPOINT", "continue the run saved there"),
        ("--import-notebook", "PICKLE", "the original notebook's parameters to --save")),
    "using a model": (
        ("--evaluate", None, "test the --load model: accuracy, precision, recall, confusions"),
        ("--predict", "IMAGE", "read the digits in photos (PNG, JPEG) with the --load model"),
        ("--show-input", "DIR", "with --predict: save the 28x28 images the network saw"),
        ("--export-onnx", "OUT", "write the --load model as an ONNX file (the onnx extra)"),
        ("--serve", None, "serve the --load model as a local web app: draw digits, upload photos"),
        ("--host", "HOST", "with --serve: the address to bind", "127.0.0.1"),
        ("--port", "PORT", "with --serve: the port", 8000), ("--debug", None, "show tracebacks"),
        ("--plots", "DIR", "write PNG plots to DIR"), ("--report", "FILE", "a JSON report"),
        ("--quiet", None, "no progress bars or epoch lines"))}


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
        for flag, metavar, help_, *default in flags:  # a 4th item: the default
            options = {"action": "store_true"} if metavar is None else {
                "metavar": metavar, "nargs": "+" if flag == "--predict" else None,
                **({"type": type(*default), "default": default[0]} if default else {})}
            g.add_argument(flag, help=help_ + "".join(f" (default {d})" for d in default),
                           **options)
    return p


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """The recipe with the flags given applied, checked; usage errors for combinations
    that cannot work."""
    given = {f.name: getattr(args, f.name) for f in fields(Settings)
             if getattr(args, f.name) is not None}
    if "layers" in given:
        given["layers"] = tuple(n for part in given["layers"] for n in part)
    fixed = sorted(set(given) - {"epochs"}) or (["recipe"] if args.recipe else [])
    uses = [a for a in MODEL_ACTIONS if getattr(args, a)]
    for problem, message in (
            (args.resume and fixed, "--resume continues a run with the settings stored in its "
             "checkpoint; drop " + ", ".join("--" + k.replace("_", "-") for k in fixed)),
            (uses and not (args.load or args.import_notebook),
             f"--{''.join(uses[:1]).replace('_', '-')} needs --load MODEL"),
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


def evaluate_model(args: argparse.Namespace, model: TrainedModel) -> int:
    dataset = load_data(args, model.meta["dataset"])
    loss, accuracy, matrix, probabilities = model.test(dataset)
    print(reports.evaluation_text(args.load, loss, matrix, model.class_names), flush=True)
    if args.report:
        reports.write_report(args.report, {**model.meta, "test_accuracy": accuracy,
                                           "test_loss": loss})
    if args.plots:
        for path in plot_evaluation(args.plots, model.meta.get("history"), matrix,
                                    model.class_names, dataset.test_images,
                                    dataset.test_labels.astype(int), probabilities):
            say(args, f"wrote {path}")
    return 0


def predict_images(args: argparse.Namespace, model: TrainedModel) -> int:
    from digits.segment import number_line, read_photo, save_seen

    failures = 0
    for path in args.predict:
        try:
            readings = read_photo(path, model)
            print(number_line(path, readings, model.class_names), flush=True)
            for out in save_seen(readings, args.show_input, path) if args.show_input else []:
                say(args, f"  the network saw {out}")
        except ImageError as error:
            failures += 1
            print(f"{path}: error: {error}", file=sys.stderr, flush=True)
    return 1 if failures else 0


def serve_model(args: argparse.Namespace, model: TrainedModel) -> int:
    from digits.serve import serve  # the serve extra: a one-line error without it

    serve(model, args.host, args.port)
    return 0


def export_model(args: argparse.Namespace, model: TrainedModel) -> int:
    export_onnx(model, args.export_onnx)
    print(f"{args.load} exported to {args.export_onnx}", flush=True)
    return 0


def import_notebook(args: argparse.Namespace) -> str:
    from digits.notebook import import_notebook_params

    sizes = import_notebook_params(args.import_notebook, args.save)
    print(f"imported {args.import_notebook} ({'-'.join(map(str, sizes))}, sigmoid outputs, "
          f"MSE) to {args.save}", flush=True)
    return args.save


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from(args, parser)
    keep_freed_memory()  # no page faults for reused arrays: see digits/allocator.py
    try:
        if args.plots:
            require_matplotlib()
        if args.predict or args.serve:
            require_pillow()
        if args.import_notebook:
            args.load = import_notebook(args)  # the other actions use the imported model
        uses = [action for name, action in MODEL_ACTIONS.items() if getattr(args, name)]
        if not args.load:
            return train_model(args, settings)
        if not (uses or args.import_notebook):
            raise ConfigError("--load needs something to do with the model: " +
                              ", ".join("--" + a.replace("_", "-") for a in MODEL_ACTIONS))
        model = load_model(args.load)
        return max([0] + [use(args, model) for use in uses])
    except (NetsError, KeyboardInterrupt) as error:
        if args.debug or os.environ.get("DIGITS_DEBUG") == "1":
            raise
        interrupted = isinstance(error, KeyboardInterrupt)
        print("\ninterrupted; nothing was saved by this step" if interrupted
              else f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED if interrupted else 1


MODEL_ACTIONS = {"export_onnx": export_model, "predict": predict_images,  # in this order
                 "evaluate": evaluate_model, "serve": serve_model}

if __name__ == "__main__":
    sys.exit(main())

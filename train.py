"""Train, evaluate and use handwritten-digit classifiers built on our own autodiff engine.

Only parses flags into one `nets.config.Settings`, calls one function per action (train,
import, export, predict, evaluate, serve) and prints. A user's mistake is one line and a
non-zero exit code; --debug (or DIGITS_DEBUG=1) shows the traceback."""

from __future__ import annotations

import digits.console  # first: a Ctrl-C while the rest loads ends in one line
import digits.threads  # before NumPy loads: see digits/threads.py

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

from digits import evaluation, reports
from digits.allocator import keep_freed_memory
from digits.cli import build_parser
from digits.datasets import Dataset, load_dataset
from digits.imagefiles import require_pillow
from digits.modelfile import TrainedModel, load_model
from digits.onnx_export import export_onnx
from digits.outputs import Files, check_outputs
from digits.plots import plot_evaluation, plot_learning_curves, require_matplotlib
from digits.runs import run_training, start_run
from nets.config import RECIPES, Settings
from nets.errors import ConfigError, ImageError


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """The recipe with the flags given applied, checked; usage errors for combinations
    that cannot work."""
    given = {f.name: getattr(args, f.name) for f in fields(Settings)
             if getattr(args, f.name) is not None}
    for name in ("layers", "channels"):  # each given as one or more lists of integers
        if name in given:
            given[name] = tuple(n for part in given[name] for n in part)
    fixed = sorted(set(given) - {"epochs"}) or (["recipe"] if args.recipe else [])
    uses = [a for a in MODEL_ACTIONS if getattr(args, a)]
    empty = [k for k, v in vars(args).items() for v in (v if isinstance(v, list) else [v])
             if isinstance(v, str) and not v.strip()] + [""]
    for problem, message in (
            (empty[0], f"--{empty[0].replace('_', '-')}: the path is empty; give a file name"),
            (args.resume and fixed, "--resume continues a run with the settings stored in its "
             "checkpoint; drop " + ", ".join("--" + k.replace("_", "-") for k in fixed)),
            (uses and not (args.load or args.import_notebook),
             f"--{''.join(uses[:1]).replace('_', '-')} needs --load MODEL"),
            (args.show_input and not args.predict, "--show-input needs --predict"),
            (args.import_notebook and not args.save, "--import-notebook needs --save PATH"),
            (args.load and args.resume, "use either --load (a model) or --resume (a checkpoint)"),
            (args.no_checkpoint and args.checkpoint, "use either --checkpoint or --no-checkpoint"),
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
    name = "seed-recipe" if args.recipe == "seed" else settings.model
    settings, files, state, stored = start_run(
        f"{settings.dataset}-{name}", settings, save=args.save, checkpoint=args.checkpoint,
        resume_from=args.resume, epochs=args.epochs, data_dir=args.data_dir,
        every=args.checkpoint_every, no_checkpoint=args.no_checkpoint, overwrite=args.overwrite)
    if state is not None:
        say(args, f"resuming {args.resume}: epoch {state.epoch + 1}, step {state.step}")
    model, state = run_training(
        settings, load_data(args, settings.dataset, files.data_dir), files, state=state,
        stored=stored, progress=not args.quiet,
        on_epoch=lambda entry: say(args, reports.epoch_line(entry, settings.epochs)))
    print(reports.result_line(model.meta, state), flush=True)
    say(args, f"model saved to {files.save}")
    if args.report:
        reports.write_report(args.report, model.meta)
    if args.plots:
        out = plot_learning_curves(state.history, Path(args.plots) / "learning_curves.png")
        say(args, f"learning curves written to {out}")
    return 0


def load_data(args: argparse.Namespace, name: str, data_dir: str | None) -> Dataset:
    dataset = load_dataset(name, data_dir, progress=not args.quiet)
    say(args, f"loaded {name}: {len(dataset.train_images)} training and "
              f"{len(dataset.test_images)} test images")
    return dataset


def evaluate_model(args: argparse.Namespace, model: TrainedModel) -> int:
    name = evaluation.model_dataset(model, args.dataset, args.load)
    say(args, evaluation.dataset_line(model, args.dataset, args.load))
    dataset = load_data(args, name, args.data_dir)
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

    if note := evaluation.photo_note(model, args.dataset, args.load):
        print(note, file=sys.stderr, flush=True)
    failures = 0
    for path in args.predict:
        try:
            readings = read_photo(path, model)
            print(number_line(path, readings, model.class_names), flush=True)
            for out in save_seen(readings, args.show_input, path) if args.show_input else []:
                say(args, f"  the network saw {out}")
        except ImageError as error:
            failures += 1
            print(f"error: {error}", file=sys.stderr, flush=True)  # it names the file
    return 1 if failures else 0


def serve_model(args: argparse.Namespace, model: TrainedModel) -> int:
    from digits.serve import serve  # the serve extra: a one-line error without it

    return serve(model, args.host, args.port) or 0


def export_model(args: argparse.Namespace, model: TrainedModel) -> int:
    export_onnx(model, args.export_onnx)
    print(f"{args.load} exported to {args.export_onnx}", flush=True)
    return 0


def import_notebook(args: argparse.Namespace) -> str:
    from digits.notebook import import_notebook_params

    Files.chosen("", args.save, None, None, 1, no_checkpoint=True).check(args.overwrite)
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
        digits.threads.use_cores()
        if args.plots:
            require_matplotlib()
        if args.predict or args.serve:
            require_pillow()
        check_outputs(args.report, args.plots, args.show_input)
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
    except (Exception, KeyboardInterrupt) as error:  # one line; tracebacks for bugs, --debug
        return digits.console.finish(error, args.debug)


MODEL_ACTIONS = {"export_onnx": export_model, "predict": predict_images,  # in this order
                 "evaluate": evaluate_model, "serve": serve_model}

if __name__ == "__main__":
    sys.exit(main())

"""The command line's flags: one table per group, each setting's default read from the
recipe, so `--help` shows every default once and from its one source. train.py parses with
`build_parser()` and turns the result into a `nets.config.Settings`."""

from __future__ import annotations

import argparse
import re

from digits.reports import did_you_mean
from nets.config import CHOICES, RECIPES


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of the usage block; a typo gets a hint
        hint = did_you_mean(message, self._option_string_actions)
        self.exit(2, f"error: {message}{hint} (see --help)\n")


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
    ("channels", _layers, "the cnn's conv blocks, output channels of each"),
    ("activation", None, "hidden activation"), ("init", None, "weight initialisation"),
    ("init_scale", float, "std of init normal"), ("cost", None, ""), ("optimizer", None, ""),
    ("lr", float, "learning rate"), ("schedule", None, "learning-rate schedule"),
    ("batch_size", int, "minibatch size; 0: full batch"), ("epochs", int, ""),
    ("weight_decay", float, "decoupled weight decay"),
    ("patience", int, "stop after PATIENCE epochs without a better val loss, keep the best"),
    ("shift", int, "shift training images up to SHIFT pixels"),
    ("seed", int, "seed of initialisation, split and shuffling"),
    ("val_size", int, "training images held out for validation"))
SIZES = ("layers", "channels")  # settings given as lists of integers
OTHER_FLAGS = {  # group: (flag, metavar or None for a switch, help)
    "files": (
        ("--data-dir", "DIR", "the four IDX files (default $MNIST_DIR, else a download)"),
        ("--save", "PATH", "where to save the model (default models/DATASET-MODEL.npz)"),
        ("--load", "PATH", "a saved model to evaluate or use"),
        ("--checkpoint", "PATH", "checkpoint file (default the --save path, .checkpoint.npz)"),
        ("--checkpoint-every", "N", "write the checkpoint every N epochs", 1),
        ("--no-checkpoint", None, "write no checkpoint (a stopped run cannot resume)"),
        ("--overwrite", None, "replace an existing model or checkpoint at --save/--checkpoint"),
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


def _shown(name: str, value: object) -> str:
    return ",".join(map(str, value)) if name in SIZES else str(value)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="train.py", description="Train and use handwritten-digit classifiers "
               "written from scratch. Defaults are the mlp recipe's, then the cnn recipe's "
               "where it differs.")
    g = p.add_argument_group("settings (with --resume, only --epochs may be given)")
    g.add_argument("--recipe", choices=tuple(RECIPES), help="start from a recipe; 'seed': the "
                   "original notebook's network and training (default mlp, or cnn with --model)")
    for name, kind, help_ in SETTING_FLAGS:
        mlp, cnn = (_shown(name, getattr(RECIPES[r], name)) for r in ("mlp", "cnn"))
        defaults = [f"default {mlp}"] * bool(mlp) + \
            [f"cnn {cnn}"] * (bool(cnn) and cnn != mlp and name != "model")
        options = {"choices": CHOICES[name]} if kind is None else \
            {"type": kind, "metavar": name.split("_")[-1].upper()}
        g.add_argument("--" + name.replace("_", "-"), **options, help=f"{help_} "
                       f"({'; '.join(defaults)})".lstrip(), nargs="+" if name in SIZES else None)
    for group, flags in OTHER_FLAGS.items():
        g = p.add_argument_group(group)
        for flag, metavar, help_, *default in flags:  # a 4th item: the default
            options = {"action": "store_true"} if metavar is None else {
                "metavar": metavar, "nargs": "+" if flag == "--predict" else None,
                **({"type": type(*default), "default": default[0]} if default else {})}
            g.add_argument(flag, help=help_ + "".join(f" (default {d})" for d in default),
                           **options)
    return p

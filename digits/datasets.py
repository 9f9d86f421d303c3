"""Datasets: where MNIST / Fashion-MNIST files are, their download with verification, the cache.

Responsibility: turn "which dataset" into four validated uint8 arrays (`nets.inputs` turns
them into the float32 inputs and one-hot targets the networks use).

Invariants:
- Every problem a user can cause (a missing, truncated, corrupt or inconsistent file, a bad
  directory, no working mirror) raises `DataError` or `DownloadError` with a message naming
  the file and what to do; no struct/gzip/zlib/OS error escapes.
- Files come from, in order: the `data_dir` argument, the `MNIST_DIR` /
  `FASHION_MNIST_DIR` environment variable, the per-user cache. Files the user points at
  are read as they are (no checksum: re-compressed copies are legitimate); only downloads
  are checked against the official SHA-256 sums.
- A download lands under its final name only when complete and verified
  (`digits.files.atomic_write`), so a file in the cache is always a verified one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from digits.downloads import download_file
from digits.idx import read_idx
from nets.errors import DataError, DownloadError

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from: mirror base URLs and the official gzip files.

    `files` maps each canonical file name to (SHA-256 of the official gzip, size in bytes).
    """

    mirrors: tuple[str, ...]
    files: Mapping[str, tuple[str, int]]
    class_names: tuple[str, ...]
    env_var: str


# Official gzip checksums and sizes, as listed in tensorflow/datasets
# (tensorflow_datasets/url_checksums/mnist.txt and fashion_mnist.txt) and matching
# torchvision and the Fashion-MNIST README.
SOURCES: dict[str, Source] = {
    "mnist": Source(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files={
            TRAIN_IMAGES: (
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422
            ),
            TRAIN_LABELS: (
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881
            ),
            TEST_IMAGES: (
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877
            ),
            TEST_LABELS: (
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542
            ),
        },
        class_names=tuple(str(digit) for digit in range(10)),
        env_var="MNIST_DIR",
    ),
    "fashion-mnist": Source(
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        files={
            TRAIN_IMAGES: (
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880
            ),
            TRAIN_LABELS: (
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515
            ),
            TEST_IMAGES: (
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102
            ),
            TEST_LABELS: (
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148
            ),
        },
        class_names=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        env_var="FASHION_MNIST_DIR",
    ),
}



# ---------------------------------------------------------------------------- datasets


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of labelled images.

    train_images (n_train, h, w) uint8, train_labels (n_train,) uint8 in 0..num_classes-1;
    test_images / test_labels likewise. MNIST and Fashion-MNIST have h = w = 28.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the training images and labels (shapes included), computed once: a
        checkpoint stores it, so that a run is never resumed on other data."""
        digest = hashlib.sha256()
        for array in (self.train_images, self.train_labels):
            digest.update(repr(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def load_dataset(
    name: str = "mnist",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
) -> Dataset:
    """Load and validate a dataset ("mnist" or "fashion-mnist").

    Files come from `data_dir` if given, else the directory in $MNIST_DIR
    ($FASHION_MNIST_DIR), else the cache (`cache_dir(name)`), which is filled from the
    mirrors (`mirrors` overrides the built-in list) when `download` is true.
    """
    source = get_source(name)
    env_dir = os.environ.get(source.env_var)
    if data_dir is not None:
        paths = find_files(Path(data_dir), name, origin="data directory")
    elif env_dir:
        paths = find_files(
            Path(env_dir), name, origin=f"${source.env_var} directory",
            hint=f"Fix or unset ${source.env_var}.",
        )
    elif download:
        directory = fetch_dataset(name, mirrors=mirrors, progress=progress)
        paths = find_files(directory, name, origin="download cache")
    else:
        paths = find_files(
            cache_dir(name), name, origin="download cache",
            hint=f"Allow downloading, or give --data-dir or ${source.env_var}.",
        )
    arrays = {file_name: read_idx(path) for file_name, path in paths.items()}
    return make_dataset(name, arrays, paths)


def make_dataset(
    name: str, arrays: Mapping[str, np.ndarray], paths: Mapping[str, Path]
) -> Dataset:
    """Check the four arrays (keyed by canonical file name) against each other."""
    class_names = get_source(name).class_names
    for split_images, split_labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images, labels = arrays[split_images], arrays[split_labels]
        _check_array(images, 3, paths[split_images], "images (n, height, width)")
        _check_array(labels, 1, paths[split_labels], "labels (n,)")
        if len(images) == 0 or 0 in images.shape:
            raise DataError(f"{paths[split_images]} holds no images; a dataset needs at least "
                            "one training and one test image. Replace the file.")
        if len(images) != len(labels):
            raise DataError(
                f"{paths[split_images]} holds {len(images)} images but "
                f"{paths[split_labels]} holds {len(labels)} labels; the two files must "
                "belong together. Replace them with a matching pair."
            )
        bad = labels[labels >= len(class_names)]
        if bad.size:
            raise DataError(
                f"{paths[split_labels]}: label {int(bad[0])} is outside 0..{len(class_names) - 1}."
                f" The file is not a {name} label file; replace it."
            )
    train_shape = arrays[TRAIN_IMAGES].shape[1:]
    test_shape = arrays[TEST_IMAGES].shape[1:]
    if train_shape != test_shape:
        raise DataError(
            f"{paths[TRAIN_IMAGES]} has images of {train_shape} pixels but "
            f"{paths[TEST_IMAGES]} has {test_shape}; both splits must come from one dataset."
        )
    return Dataset(
        name=name,
        train_images=arrays[TRAIN_IMAGES],
        train_labels=arrays[TRAIN_LABELS],
        test_images=arrays[TEST_IMAGES],
        test_labels=arrays[TEST_LABELS],
        class_names=class_names,
    )


def _check_array(array: np.ndarray, ndim: int, path: Path, what: str) -> None:
    if array.ndim != ndim or array.dtype != np.uint8:
        raise DataError(
            f"{path}: expected {what} of unsigned bytes, found {array.ndim}-D {array.dtype} "
            f"with shape {array.shape}. Is the file in the right place?"
        )


def get_source(name: str) -> Source:
    """The `Source` entry for a dataset name; DataError listing the valid names otherwise."""
    try:
        return SOURCES[name]
    except (KeyError, TypeError):
        raise DataError(
            f"unknown dataset {name!r}; choose one of: {', '.join(SOURCES)}."
        ) from None


def find_files(directory: Path, name: str, origin: str, hint: str = "") -> dict[str, Path]:
    """Map each canonical file name to its path in `directory` (.gz or uncompressed).

    `origin` says where the directory came from and `hint` what else the user can do,
    both for the error message.
    """
    if not directory.exists():
        problem = "does not exist"
    elif not directory.is_dir():
        problem = "is a file, not a directory"
    else:
        found = {file_name: locate(directory, file_name) for file_name in FILE_NAMES}
        missing = [file_name for file_name, path in found.items() if path is None]
        if not missing:
            return {file_name: path for file_name, path in found.items() if path is not None}
        problem = "is empty" if _is_empty(directory) else "lacks " + ", ".join(missing)
    raise DataError(
        f"{origin} {directory} {problem}. It must hold the four {name} files "
        f"{', '.join(FILE_NAMES)} (or the same names without .gz, uncompressed). {hint}".rstrip()
    )


def _is_empty(directory: Path) -> bool:
    try:
        return not any(directory.iterdir())
    except OSError:  # unreadable: report the missing files instead
        return False


def locate(directory: Path, file_name: str) -> Path | None:
    """The gzip file if present, else its uncompressed twin, else None."""
    for candidate in (directory / file_name, directory / file_name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------- cache, downloads


def cache_dir(name: str = "mnist") -> Path:
    """The per-user cache for a dataset: $XDG_CACHE_HOME/digits-from-scratch/<name>.

    $XDG_CACHE_HOME defaults to ~/.cache. The directory need not exist yet.
    """
    get_source(name)  # a name that is no dataset must not become a path
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:
            raise DataError(
                "cannot find a home directory for the download cache; set XDG_CACHE_HOME, "
                "or give --data-dir."
            ) from None
    return Path(base) / "digits-from-scratch" / name


def fetch_dataset(
    name: str = "mnist",
    directory: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """Download whichever of the four files `directory` (default: the cache) lacks.

    Each download is verified against the official SHA-256. Returns the directory.
    """
    source = get_source(name)
    directory = cache_dir(name) if directory is None else Path(directory)
    bases = tuple(mirrors) if mirrors is not None else source.mirrors
    for file_name, (sha256, size) in source.files.items():
        if locate(directory, file_name) is not None:
            continue
        urls = [base.rstrip("/") + "/" + file_name for base in bases]
        try:
            download_file(urls, directory / file_name, sha256, size=size, progress=progress)
        except DownloadError as error:
            raise DownloadError(
                f"{error}\nDownload the four {name} files ({', '.join(FILE_NAMES)}) by hand "
                f"and put them in {directory}, or in a directory you give with --data-dir "
                f"or ${source.env_var}."
            ) from None
    return directory

"""Small IDX files for tests: encode arrays, write them, write a fake MNIST directory.

Written independently of `digits.datasets` so that tests of the reader do not trust the reader.
"""

import gzip as gzip_module
from pathlib import Path

import numpy as np

FILE_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# numpy dtype -> IDX type code, from the format's definition.
IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The uncompressed IDX encoding of `array` (1-4 dims, a dtype in IDX_CODES)."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    dims = b"".join(int(dim).to_bytes(4, "big") for dim in array.shape)
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array: np.ndarray, gzip: bool = True) -> Path:
    """Write `array` as an IDX file at `path`, gzip-compressed (mtime 0) or raw."""
    data = idx_bytes(array)
    path = Path(path)
    path.write_bytes(gzip_module.compress(data, mtime=0) if gzip else data)
    return path


def fake_mnist(
    n_train: int = 100, n_test: int = 30, rng: np.random.Generator | None = None,
    image_shape: tuple[int, int] = (28, 28),
) -> dict[str, np.ndarray]:
    """Arrays shaped like MNIST, keyed like `digits.datasets.Dataset` fields.

    Learnable on purpose: each image is faint noise plus a bright horizontal band whose
    row depends on the label, so a small network can fit it in a few steps.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        images = rng.integers(0, 40, size=(n, *image_shape), dtype=np.uint8)
        band = (labels.astype(int) * image_shape[0]) // 10
        images[np.arange(n), band, :] = 255
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def write_fake_mnist(
    directory, n_train: int = 100, n_test: int = 30, rng: np.random.Generator | None = None,
    gzip: bool = True,
) -> dict[str, np.ndarray]:
    """Write the four canonical MNIST files of `fake_mnist` arrays into `directory`.

    With gzip=False the files are raw and named without ".gz". Returns the arrays.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = fake_mnist(n_train, n_test, rng)
    fields = ("train_images", "train_labels", "test_images", "test_labels")
    for file_name, field in zip(FILE_NAMES, fields, strict=True):
        name = file_name if gzip else file_name.removesuffix(".gz")
        write_idx(directory / name, arrays[field], gzip=gzip)
    return arrays

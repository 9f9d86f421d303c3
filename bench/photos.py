"""How much does photo preprocessing matter? Accuracy on MNIST digits vs photos of them.

Builds N synthetic photos from MNIST test digits (`tests/photo_fixtures.py`: dark ink
on light paper, a few hundred pixels, margins, uneven lighting, noise), turns each back into
a 28x28 input with `to_mnist` (the MNIST-style pipeline) and with `naive_resize` (the whole
photo shrunk, as the original notebook did), and prints the model's accuracy on the
original digits and on both versions of the photos, with the gaps in percentage points.

    python bench/photos.py --model model.npz            # a model saved by train.py
    python bench/photos.py --quick-baseline             # trains a small NumPy MLP first
    python bench/photos.py --model model.npz --strips 1000   # whole numbers instead

A photo where `to_mnist` finds no digit counts as a mistake.

With `--strips N` it photographs N written numbers instead: 2-6 MNIST test digits side by
side with random spacing, size and photo effects (`tests/photo_fixtures.py`), read by
`digits.segment.read_number`. It reports how often the digit count is right, the per-digit
accuracy (a digit counts as read when exactly one found digit has its centre inside the
digit's true box and is the right class), and how often the whole number is right.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from photo_fixtures import naive_resize, synthetic_photo  # noqa: E402

from digits.photos import to_mnist  # noqa: E402
from nets.errors import ImageError, NetsError  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist"

Predictor = Callable[[np.ndarray], np.ndarray]  # (n, 784) float32 in [0, 1] -> (n, 10)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def numpy_mlp(params: list[dict], x: np.ndarray) -> np.ndarray:
    """Logits of an MLP: ReLU hidden layers, linear output; w is (fan_in, fan_out)."""
    for layer in params[:-1]:
        x = np.maximum(x @ layer["w"] + layer["b"], 0.0)
    return x @ params[-1]["w"] + params[-1]["b"]


def load_predictor(path: str | os.PathLike[str]) -> Predictor:
    """A model saved by train.py -> predict(x (n, 784) float32 in [0, 1]) -> probabilities."""
    from digits.modelfile import load_model

    model = load_model(path)
    model.check_fits("28x28 digit images", 784, model.network.num_classes)
    return model.predict_proba


def quick_baseline(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, epochs: int = 4
) -> tuple[Predictor, list[dict]]:
    """Train a 784-128-10 ReLU MLP in plain NumPy (minibatch SGD with momentum)."""
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    y = labels.astype(int)
    sizes = [784, 128, 10]
    params = [
        {"w": (rng.normal(size=(m, n)) * np.sqrt(2.0 / m)).astype(np.float32),
         "b": np.zeros(n, np.float32)}
        for m, n in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    velocity = [{k: np.zeros_like(v) for k, v in layer.items()} for layer in params]
    lr, momentum, batch = 0.05, 0.9, 128
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            xb, yb = x[idx], y[idx]
            hidden = np.maximum(xb @ params[0]["w"] + params[0]["b"], 0.0)
            g = softmax(hidden @ params[1]["w"] + params[1]["b"])
            g[np.arange(len(idx)), yb] -= 1.0
            g = (g / len(idx)).astype(np.float32)  # d(mean cross-entropy)/d(logits)
            dh = (g @ params[1]["w"].T) * (hidden > 0)
            grads = [{"w": xb.T @ dh, "b": dh.sum(0)}, {"w": hidden.T @ g, "b": g.sum(0)}]
            for layer, vel, grad in zip(params, velocity, grads, strict=True):
                for k in layer:
                    vel[k] = momentum * vel[k] - lr * grad[k]
                    layer[k] = layer[k] + vel[k]
    return (lambda inputs: softmax(numpy_mlp(params, inputs))), params


def load_mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_images, train_labels, test_images, test_labels) as uint8 arrays."""
    try:
        from digits.datasets import load_dataset
    except ImportError:
        def read(name: str, offset: int) -> np.ndarray:
            with gzip.open(data_dir / name) as f:
                return np.frombuffer(f.read(), np.uint8, offset=offset)

        return (read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
                read("train-labels-idx1-ubyte.gz", 8),
                read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
                read("t10k-labels-idx1-ubyte.gz", 8))
    data = load_dataset("mnist", data_dir=data_dir, download=False, progress=False)
    return data.train_images, data.train_labels, data.test_images, data.test_labels


def accuracy(predict: Predictor, inputs: np.ndarray, labels: np.ndarray) -> float:
    flat = inputs.reshape(len(inputs), -1).astype(np.float32)
    return float(np.mean(predict(flat).argmax(axis=1) == labels))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model file saved by train.py")
    source.add_argument("--quick-baseline", action="store_true",
                        help="train a small NumPy MLP (784-128-10, 4 epochs) and use it")
    parser.add_argument("--count", type=int, default=1000, help="number of photos (1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("MNIST_DIR") or DEFAULT_DATA))
    parser.add_argument("--strips", type=int, metavar="N",
                        help="read N photographed numbers of 2-6 digits instead")
    parser.add_argument("--save-examples", type=Path, metavar="DIR",
                        help="write a few photos and both 28x28 versions as PNGs here")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")

    rng = np.random.default_rng(args.seed)
    try:
        train_x, train_y, test_x, test_y = load_mnist(args.data_dir)
        if args.quick_baseline:
            start = time.perf_counter()
            predict, _ = quick_baseline(train_x, train_y, rng)
            print(f"model: quick NumPy baseline MLP 784-128-10, 4 epochs "
                  f"({time.perf_counter() - start:.0f} s to train)")
        else:
            predict = load_predictor(args.model)
            print(f"model: {args.model}")
    except NetsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    if args.strips:
        return read_strips(predict, test_x, test_y.astype(int), args.strips, rng)
    pick = rng.choice(len(test_x), size=min(args.count, len(test_x)), replace=False)
    digits, labels = test_x[pick], test_y[pick].astype(int)
    photos = [synthetic_photo(d, rng) for d in digits]

    start = time.perf_counter()
    clean, found = [], np.ones(len(photos), dtype=bool)
    for i, photo in enumerate(photos):
        try:
            clean.append(to_mnist(photo))
        except ImageError:
            clean.append(np.zeros((28, 28), np.float32))
            found[i] = False
    t_clean = (time.perf_counter() - start) / len(photos)
    start = time.perf_counter()
    naive = [naive_resize(photo) for photo in photos]
    t_naive = (time.perf_counter() - start) / len(photos)

    sizes = np.array([p.shape for p in photos])
    print(f"photos: {len(photos)} synthetic photos of MNIST test digits (seed {args.seed}), "
          f"{sizes.min()}-{sizes.max()} px a side")
    acc_digits = accuracy(predict, digits / 255.0, labels)
    acc_clean = float(np.mean((predict(np.reshape(clean, (-1, 784))).argmax(1) == labels)
                              & found))
    acc_naive = accuracy(predict, np.array(naive), labels)
    print(f"accuracy on the original MNIST digits   {acc_digits:7.2%}")
    print(f"accuracy on the photos via to_mnist     {acc_clean:7.2%}"
          f"   gap {100 * (acc_clean - acc_digits):+6.2f} pp   ({t_clean * 1e3:.1f} ms/photo)")
    print(f"accuracy on the photos via naive_resize {acc_naive:7.2%}"
          f"   gap {100 * (acc_naive - acc_digits):+6.2f} pp   ({t_naive * 1e3:.1f} ms/photo)")
    print(f"photos where to_mnist found no digit: {int((~found).sum())}")
    right, several, t_read = read_single(predict, photos, labels)
    print(f"accuracy on the photos via --predict    {right:7.2%}   gap "
          f"{100 * (right - acc_digits):+6.2f} pp   ({t_read * 1e3:.1f} ms/photo; digits found "
          f"first, {several} photos read as several digits)")

    if args.save_examples:
        save_examples(args.save_examples, photos[:8], clean[:8], naive[:8])
    return 0


def read_single(predict: Predictor, photos: list, labels: np.ndarray) -> tuple[float, int,
                                                                              float]:
    """What `--predict` does with each photo: find the digits, then read them. Right when
    exactly one digit is found and it is the right class. -> (accuracy, how many photos
    were read as several digits, seconds per photo)."""
    from digits.segment import read_number

    right = several = 0
    start = time.perf_counter()
    for photo, label in zip(photos, labels, strict=True):
        try:
            readings = read_number(photo, lambda batch: predict(batch.reshape(len(batch), -1)))
        except ImageError:
            readings = []
        several += len(readings) > 1
        right += len(readings) == 1 and readings[0].digit == label
    return right / len(photos), several, (time.perf_counter() - start) / len(photos)


def read_strips(predict: Predictor, images: np.ndarray, labels: np.ndarray, count: int,
                rng: np.random.Generator) -> int:
    """Photograph `count` numbers of 2-6 test digits, read them, print the three figures."""
    from photo_fixtures import synthetic_strip

    from digits.segment import read_number

    def predict_proba(batch: np.ndarray) -> np.ndarray:
        return predict(batch.reshape(len(batch), -1))

    right_count = right_number = right_digits = digits = 0
    clean_hits, seconds = [], 0.0
    for _ in range(count):
        pick = rng.choice(len(images), size=int(rng.integers(2, 7)), replace=False)
        photo, boxes = synthetic_strip(images[pick], rng, dark_ink=rng.random() < 0.8)
        start = time.perf_counter()
        try:
            readings = read_number(photo, predict_proba)
        except ImageError:
            readings = []
        seconds += time.perf_counter() - start
        truth = labels[pick]
        digits += len(pick)
        right_count += len(readings) == len(pick)
        right_number += [r.digit for r in readings] == list(truth)
        for box, label in zip(boxes, truth, strict=True):
            inside = [r for r in readings if _centre_in(r.box, box)]
            right_digits += len(inside) == 1 and inside[0].digit == label
        clean_hits.append(predict(images[pick].reshape(len(pick), -1) / 255.0).argmax(1)
                          == truth)
    print(f"strips: {count} photographed numbers of 2-6 MNIST test digits ({digits} digits)")
    print(f"digit count right        {right_count / count:7.2%}")
    print(f"per-digit accuracy       {right_digits / digits:7.2%}   (the same digits as MNIST "
          f"gives them: {np.mean(np.concatenate(clean_hits)):.2%})")
    print(f"whole number right       {right_number / count:7.2%}")
    print(f"time to read a number    {1e3 * seconds / count:.0f} ms "
          f"({1e3 * seconds / digits:.0f} ms per digit)")
    return 0


def _centre_in(found: tuple, box: tuple) -> bool:
    x, y = (found[0] + found[2]) / 2, (found[1] + found[3]) / 2
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def save_examples(directory: Path, photos, clean, naive) -> None:
    """The photo as it is, and the two 28x28 versions (x8, nearest neighbour), as PNGs."""
    from PIL import Image

    from digits.photos import save_input_image

    directory.mkdir(parents=True, exist_ok=True)
    for i, (photo, c, n) in enumerate(zip(photos, clean, naive, strict=True)):
        Image.fromarray(np.round(photo * 255).astype(np.uint8)).save(directory / f"{i}-photo.png")
        save_input_image(c, directory / f"{i}-to_mnist.png")
        save_input_image(n, directory / f"{i}-naive.png")
    print(f"examples written to {directory}")


if __name__ == "__main__":
    sys.exit(main())

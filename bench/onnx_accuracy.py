"""The exported model's test accuracy through ONNX Runtime, beside our engine's `--evaluate`.

    python bench/onnx_accuracy.py --model models/mnist-mlp.npz [--data-dir DIR]

Exports the model to a temporary ONNX file, runs the whole test set of the model's dataset
through ONNX Runtime (the file's input contract: float32 (N, 28, 28), the IDX bytes / 255)
and through our engine as `train.py --evaluate` does, and prints both accuracies, the
number of test images whose predicted class differs and the largest difference between the
two sets of probabilities.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digits.datasets import load_dataset  # noqa: E402
from digits.modelfile import load_model  # noqa: E402
from digits.onnx_export import export_onnx  # noqa: E402
from nets.errors import NetsError  # noqa: E402
from nets.inputs import prepare_images  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model file saved by train.py")
    parser.add_argument("--data-dir", help="the dataset's IDX files (else $MNIST_DIR or the "
                                           "download cache)")
    args = parser.parse_args(argv)
    try:
        import onnxruntime as ort
    except ImportError:
        print("error: this benchmark needs onnxruntime: pip install '.[test]'", file=sys.stderr)
        return 1
    try:
        model = load_model(args.model)
        dataset = load_dataset(model.meta["dataset"], args.data_dir, progress=False)
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "model.onnx"
            export_onnx(model, path)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except NetsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    labels = dataset.test_labels.astype(np.int64)
    _, ours, logits = model.evaluate(prepare_images(dataset.test_images), labels)
    images = dataset.test_images.astype(np.float32) / np.float32(255)
    (probabilities,) = session.run(["probabilities"], {"image": images})
    theirs = float(np.mean(probabilities.argmax(axis=1) == labels))
    differ = int(np.sum(probabilities.argmax(axis=1) != logits.argmax(axis=1)))
    gap = float(np.max(np.abs(probabilities - model.predict_proba(images))))
    print(f"{args.model} on {len(labels)} test images: ONNX Runtime {100 * theirs:.2f}%, "
          f"our engine (--evaluate) {100 * ours:.2f}%; predicted classes differ on {differ} "
          f"images; largest probability difference {gap:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

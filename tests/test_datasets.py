"""Tests for digits.datasets: IDX reading, dataset validation, where files come from, downloads.

Downloads are tested against a local HTTP server on 127.0.0.1; nothing here touches the
network or the user's real cache.
"""

import dataclasses
import gzip
import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from idx_helpers import FILE_NAMES, idx_bytes, write_fake_mnist, write_idx

from digits import datasets as data
from digits.downloads import download_file
from nets.errors import DataError, DownloadError
from nets.inputs import prepare_images

TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = FILE_NAMES


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test sees the caller's MNIST_DIR or writes to the real cache."""
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A directory hypothesis tests may reuse across examples."""
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture
def fake_dir(tmp_path) -> Path:
    directory = tmp_path / "fake"
    write_fake_mnist(directory, n_train=50, n_test=20)
    return directory


def messages(excinfo) -> str:
    return str(excinfo.value)


# ---------------------------------------------------------------------------- load_dataset


def test_load_fake_directory(fake_dir):
    dataset = data.load_dataset("mnist", fake_dir, download=False)
    assert dataset.train_images.shape == (50, 28, 28) and dataset.test_images.shape == (20, 28, 28)
    assert dataset.train_labels.dtype == np.uint8
    assert dataset.class_names == tuple("0123456789") and dataset.num_classes == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset.name = "other"


def test_uncompressed_names_accepted(tmp_path):
    arrays_written = write_fake_mnist(tmp_path, n_train=10, n_test=5, gzip=False)
    dataset = data.load_dataset("mnist", tmp_path)
    np.testing.assert_array_equal(dataset.test_labels, arrays_written["test_labels"])


def test_fashion_class_names(fake_dir):
    dataset = data.load_dataset("fashion-mnist", fake_dir)
    assert dataset.name == "fashion-mnist"
    assert dataset.class_names[0] == "T-shirt/top" and dataset.class_names[-1] == "Ankle boot"
    assert len(dataset.class_names) == 10


def test_unknown_dataset_name(fake_dir):
    with pytest.raises(DataError, match="unknown dataset 'cifar'") as excinfo:
        data.load_dataset("cifar", fake_dir)
    assert "mnist, fashion-mnist" in messages(excinfo)


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist") as excinfo:
        data.load_dataset("mnist", tmp_path / "absent")
    assert all(name in messages(excinfo) for name in FILE_NAMES)


def test_path_is_a_file(fake_dir):
    with pytest.raises(DataError, match="is a file, not a directory") as excinfo:
        data.load_dataset("mnist", fake_dir / TRAIN_IMAGES)
    assert all(name in messages(excinfo) for name in FILE_NAMES)


def test_empty_directory(tmp_path):
    with pytest.raises(DataError, match="is empty") as excinfo:
        data.load_dataset("mnist", tmp_path)
    assert str(tmp_path) in messages(excinfo)
    assert all(name in messages(excinfo) for name in FILE_NAMES)


def test_missing_files_named(fake_dir):
    (fake_dir / TEST_LABELS).unlink()
    (fake_dir / TRAIN_IMAGES).unlink()
    with pytest.raises(DataError, match=f"lacks {TRAIN_IMAGES}, {TEST_LABELS}"):
        data.load_dataset("mnist", fake_dir)


def test_image_label_count_mismatch(fake_dir):
    write_idx(fake_dir / TEST_LABELS, np.zeros(19, np.uint8))
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("mnist", fake_dir)
    text = messages(excinfo)
    assert TEST_IMAGES in text and TEST_LABELS in text
    assert "20 images" in text and "19 labels" in text


def test_label_out_of_range(fake_dir):
    labels = np.zeros(50, np.uint8)
    labels[7] = 12
    write_idx(fake_dir / TRAIN_LABELS, labels)
    with pytest.raises(DataError, match="label 12 is outside 0..9") as excinfo:
        data.load_dataset("mnist", fake_dir)
    assert TRAIN_LABELS in messages(excinfo)


def test_image_size_differs_between_splits(fake_dir):
    write_idx(fake_dir / TEST_IMAGES, np.zeros((20, 14, 14), np.uint8))
    with pytest.raises(DataError, match=r"\(28, 28\).*\(14, 14\)"):
        data.load_dataset("mnist", fake_dir)


@pytest.mark.parametrize(
    ("file_name", "array"),
    [
        (TRAIN_IMAGES, np.zeros(50, np.uint8)),  # a label file in the images' place
        (TRAIN_LABELS, np.zeros((50, 28, 28), np.uint8)),
        (TEST_IMAGES, np.zeros((20, 28, 28), np.float32)),
    ],
)
def test_wrong_rank_or_dtype(fake_dir, file_name, array):
    write_idx(fake_dir / file_name, array)
    with pytest.raises(DataError, match="expected") as excinfo:
        data.load_dataset("mnist", fake_dir)
    assert file_name in messages(excinfo)


# ---------------------------------------------------------------------------- where files come from


def test_env_var_used_when_no_data_dir(monkeypatch, fake_dir):
    monkeypatch.setenv("MNIST_DIR", str(fake_dir))
    dataset = data.load_dataset("mnist", download=False)
    assert len(dataset.train_images) == 50


def test_data_dir_wins_over_env_var(monkeypatch, fake_dir, tmp_path):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "nowhere"))
    assert len(data.load_dataset("mnist", fake_dir).test_images) == 20


def test_bad_env_var_directory_named(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"\$MNIST_DIR"):
        data.load_dataset("mnist")


def test_fashion_env_var(monkeypatch, fake_dir):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(fake_dir))
    assert data.load_dataset("fashion-mnist", download=False).name == "fashion-mnist"


def test_cache_dir_respects_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.cache_dir("mnist") == tmp_path / "digits-from-scratch" / "mnist"
    assert data.cache_dir("fashion-mnist") == tmp_path / "digits-from-scratch" / "fashion-mnist"


def test_cache_dir_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / ".cache" / "digits-from-scratch" / "mnist"


def test_cache_dir_rejects_unknown_name():
    with pytest.raises(DataError, match="unknown dataset"):
        data.cache_dir("../etc")


def test_cache_used_without_download():
    write_fake_mnist(data.cache_dir("mnist"), n_train=8, n_test=4)
    assert len(data.load_dataset("mnist", download=False).train_labels) == 8


def test_empty_cache_without_download():
    with pytest.raises(DataError, match="Allow downloading") as excinfo:
        data.load_dataset("mnist", download=False)
    assert "--data-dir" in messages(excinfo)


# ---------------------------------------------------------------------------- downloads


class LocalServer:
    """Serves `routes` (path -> body bytes) on 127.0.0.1; anything else is a 404."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the name http.server calls)
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        # A short poll interval keeps shutdown (and so each test's teardown) quick.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(monkeypatch):
    # A proxy configured in the environment must not intercept requests to 127.0.0.1.
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    local = LocalServer()
    yield local
    local.close()


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


GOOD = gzip.compress(idx_bytes(np.arange(300, dtype=np.uint8)), mtime=0)
CORRUPT = GOOD[:-1] + bytes([GOOD[-1] ^ 1])


def fetch(server, tmp_path, paths, **kwargs):
    return download_file(
        [server.url + path for path in paths], tmp_path / "dl" / "f.gz", sha256(GOOD),
        progress=False, timeout=5, **kwargs,
    )


def test_download_skips_corrupt_mirror(server, tmp_path):
    server.routes.update({"/bad/f.gz": CORRUPT, "/good/f.gz": GOOD})
    dest = fetch(server, tmp_path, ["/bad/f.gz", "/good/f.gz"])
    assert dest.read_bytes() == GOOD
    assert server.requests == ["/bad/f.gz", "/good/f.gz"]
    assert [p.name for p in dest.parent.iterdir()] == ["f.gz"]


def test_download_skips_404_mirror(server, tmp_path):
    server.routes["/good/f.gz"] = GOOD
    assert fetch(server, tmp_path, ["/gone/f.gz", "/good/f.gz"]).read_bytes() == GOOD


def test_download_all_mirrors_bad(server, tmp_path):
    server.routes["/bad/f.gz"] = CORRUPT
    with pytest.raises(DownloadError) as excinfo:
        fetch(server, tmp_path, ["/bad/f.gz", "/gone/f.gz"])
    text = messages(excinfo)
    assert f"{server.url}/bad/f.gz: SHA-256 mismatch" in text
    assert f"{server.url}/gone/f.gz: HTTP 404" in text
    assert list((tmp_path / "dl").iterdir()) == []


def test_download_oversized_and_unreachable(server, tmp_path):
    server.routes["/big/f.gz"] = GOOD + b"\x00" * 100
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/f.gz"
    with pytest.raises(DownloadError) as excinfo:
        download_file(
            [server.url + "/big/f.gz", dead, "not-a-url"], tmp_path / "f.gz", sha256(GOOD),
            size=len(GOOD), progress=False, timeout=5,
        )
    text = messages(excinfo)
    assert "more than the expected" in text and "cannot connect" in text and "not-a-url" in text
    assert list(tmp_path.iterdir()) == []


def test_download_with_progress_bar(server, tmp_path, capsys):
    server.routes["/good/f.gz"] = GOOD
    download_file([server.url + "/good/f.gz"], tmp_path / "f.gz", sha256(GOOD), timeout=5)
    assert (tmp_path / "f.gz").read_bytes() == GOOD


@pytest.fixture
def fake_source(monkeypatch, tmp_path):
    """Point SOURCES['mnist'] at fake files; returns their gzip bytes by file name."""
    write_fake_mnist(tmp_path / "origin", n_train=30, n_test=10)
    blobs = {name: (tmp_path / "origin" / name).read_bytes() for name in FILE_NAMES}
    files = {name: (sha256(blob), len(blob)) for name, blob in blobs.items()}
    source = dataclasses.replace(data.SOURCES["mnist"], files=files, mirrors=())
    monkeypatch.setitem(data.SOURCES, "mnist", source)
    return blobs


def test_load_dataset_downloads_into_cache(server, fake_source):
    for name, blob in fake_source.items():
        server.routes["/good/" + name] = blob
        server.routes["/bad/" + name] = blob[:-1] + b"\x00"
    mirrors = [server.url + "/bad/", server.url + "/good"]
    dataset = data.load_dataset("mnist", mirrors=mirrors, progress=False)
    assert len(dataset.train_images) == 30
    cache = data.cache_dir("mnist")
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILE_NAMES)
    before = len(server.requests)
    data.load_dataset("mnist", mirrors=mirrors, progress=False)
    assert len(server.requests) == before  # the cache is used, nothing fetched again


def test_load_dataset_download_failure_says_what_to_do(server, fake_source):
    with pytest.raises(DownloadError) as excinfo:
        data.load_dataset("mnist", mirrors=[server.url + "/gone/"], progress=False)
    text = messages(excinfo)
    assert all(name in text for name in FILE_NAMES)
    assert str(data.cache_dir("mnist")) in text and "--data-dir" in text and "MNIST_DIR" in text
    assert not data.cache_dir("mnist").exists() or not any(data.cache_dir("mnist").iterdir())


def test_official_tables_are_complete():
    for source in data.SOURCES.values():
        assert set(source.files) == set(FILE_NAMES) and len(source.class_names) == 10
        assert all(len(digest) == 64 and size > 0 for digest, size in source.files.values())
        assert all(url.endswith("/") for url in source.mirrors)


# ---------------------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def real_mnist(mnist_dir):
    start = time.perf_counter()
    dataset = data.load_dataset("mnist", mnist_dir, download=False)
    return dataset, time.perf_counter() - start


def test_real_mnist_shapes_and_counts(real_mnist):
    dataset, seconds = real_mnist
    assert dataset.train_images.shape == (60000, 28, 28)
    assert dataset.test_images.shape == (10000, 28, 28)
    assert dataset.train_images.dtype == dataset.train_labels.dtype == np.uint8
    assert np.bincount(dataset.train_labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]
    assert np.bincount(dataset.test_labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009
    ]
    assert seconds < 5, f"loading MNIST took {seconds:.1f} s"


def test_real_mnist_prepared(real_mnist):
    x = prepare_images(real_mnist[0].test_images)
    assert x.shape == (10000, 784) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0

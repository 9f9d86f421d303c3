"""The real-data tests find the data where a user has it: $MNIST_DIR, the download cache,
then the shared copy; the notebook's pickle through $NOTEBOOK_PKL, then the shared copy."""

from pathlib import Path

import conftest
import pytest
from idx_helpers import write_fake_mnist


@pytest.fixture
def places(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(conftest, "SHARED_MNIST", tmp_path / "shared")
    return {"cache": tmp_path / "cache" / "digits-from-scratch" / "mnist",
            "shared": tmp_path / "shared", "env": tmp_path / "env"}


def test_nothing_found_is_none(places):
    assert conftest.find_mnist() is None


def test_the_shared_copy_then_the_cache_then_mnist_dir(places, monkeypatch):
    write_fake_mnist(places["shared"])
    assert conftest.find_mnist() == places["shared"]
    write_fake_mnist(places["cache"])
    assert conftest.find_mnist() == places["cache"]
    write_fake_mnist(places["env"])
    monkeypatch.setenv("MNIST_DIR", str(places["env"]))
    assert conftest.find_mnist() == places["env"]


def test_an_incomplete_folder_does_not_count(places):
    write_fake_mnist(places["cache"])
    next(places["cache"].iterdir()).unlink()
    assert conftest.find_mnist() is None


def test_a_wrong_mnist_dir_is_not_passed_over(places, monkeypatch):
    write_fake_mnist(places["shared"])
    monkeypatch.setenv("MNIST_DIR", str(places["env"]))
    assert conftest.find_mnist() is None


def test_the_notebook_pickle_from_its_variable_else_the_shared_copy(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTEBOOK_PKL", raising=False)
    assert conftest.find_notebook() == conftest.SHARED_NOTEBOOK
    monkeypatch.setenv("NOTEBOOK_PKL", str(tmp_path / "p.pkl"))
    assert conftest.find_notebook() == Path(tmp_path / "p.pkl")

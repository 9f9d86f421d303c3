"""Shared test set-up: hypothesis profiles and the real data a user has.

The real-data tests look where a user's data is: MNIST in $MNIST_DIR, else the download
cache that `python train.py` fills (`digits.datasets.cache_dir`), else the shared copy
beside the clone (`../shared/data/mnist`); the original notebook's parameters in
$NOTEBOOK_PKL, else `../shared/data/seed-notebook/params_100_64_28.pkl`. Missing data
skips those tests, unless REQUIRE_MNIST=1 / REQUIRE_NOTEBOOK=1 (CI), where it fails.
"""

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from digits.datasets import FILE_NAMES, cache_dir, locate
from nets.errors import NetsError

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_MNIST = SHARED_DATA / "mnist"
SHARED_NOTEBOOK = SHARED_DATA / "seed-notebook" / "params_100_64_28.pkl"
NOTEBOOK_SHA256 = "bad00acd2ff520739895461cfb5ddfda7a7903ab4f01289a7d9f42a2876d02e3"


def _missing(message: str, required_by: str) -> None:
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{message} ({required_by}=1)")
    pytest.skip(message)


def mnist_candidates() -> list[tuple[str, Path]]:
    """Where the real MNIST may be, in the order looked at. A set $MNIST_DIR is the only
    place looked at, as train.py does: a wrong one is reported, not passed over."""
    if os.environ.get("MNIST_DIR"):
        return [("$MNIST_DIR", Path(os.environ["MNIST_DIR"]))]
    try:
        cache = [("the download cache", cache_dir("mnist"))]
    except NetsError:  # no home directory: no cache
        cache = []
    return cache + [("the shared copy", SHARED_MNIST)]


def find_mnist() -> Path | None:
    for _, path in mnist_candidates():
        if all(locate(path, name) for name in FILE_NAMES):
            return path
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST files (see the module docstring for where they are looked for)."""
    path = find_mnist()
    if path is None:
        tried = ", ".join(f"{origin} {path}" for origin, path in mnist_candidates())
        _missing(f"real MNIST not found in {tried} (set MNIST_DIR)", "REQUIRE_MNIST")
    return path


def find_notebook() -> Path:
    return Path(os.environ.get("NOTEBOOK_PKL") or SHARED_NOTEBOOK)


@pytest.fixture(scope="session")
def notebook_pkl() -> Path:
    """The original notebook's parameter pickle, checked to be the documented file."""
    path = find_notebook()
    if not path.is_file():
        _missing(f"the original notebook's parameters are not at {path} (set NOTEBOOK_PKL)",
                 "REQUIRE_NOTEBOOK")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == NOTEBOOK_SHA256, \
        f"{path} is not the original notebook's params_100_64_28.pkl"
    return path

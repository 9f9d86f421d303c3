"""Shared test set-up: hypothesis profiles and the real-MNIST fixture."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST files: $MNIST_DIR, else ../shared/data/mnist.

    Skipped when neither exists, unless REQUIRE_MNIST=1 (CI), where it fails instead.
    """
    path = Path(os.environ.get("MNIST_DIR") or SHARED_MNIST)
    if not (path / "t10k-labels-idx1-ubyte.gz").exists():
        message = f"real MNIST not found at {path} (set MNIST_DIR)"
        if os.environ.get("REQUIRE_MNIST") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path

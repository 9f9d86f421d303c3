"""Hypothesis strategies shared by the test modules."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def arrays_in(shape, low: float, high: float, dtype=np.float64):
    """Float arrays of `shape` with values in [low, high], no NaN or inf."""
    return hnp.arrays(
        dtype, shape,
        elements=st.floats(low, high, allow_nan=False, allow_infinity=False, width=64),
    )


def away_from(values: np.ndarray, points, margin: float) -> np.ndarray:
    """Push `values` at least `margin` away from each of `points` (kinks, poles)."""
    values = np.array(values, dtype=np.float64)
    for p in points:
        close = np.abs(values - p) < margin
        values = np.where(close, p + np.where(values >= p, margin, -margin), values)
    return values


def mutated(data: bytes, flips, cut) -> bytes:
    """`data` with each (position, xor) of `flips` applied, then cut at `cut` (None: not cut)."""
    data = bytearray(data)
    for position, xor in flips:
        data[position] ^= xor
    if cut is not None:
        del data[cut:]
    return bytes(data)

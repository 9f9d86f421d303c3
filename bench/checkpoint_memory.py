"""Memory saved by `checkpoint` on a deep MLP: the peak traced allocation of one
`value_and_grad` call, plain, with each layer checkpointed, and with segments of layers
checkpointed (the square root of the depth by default).

A checkpointed function keeps only its arguments and results on the tape and runs again
in the backward pass, so the peak falls from every layer's intermediates to the segment
boundaries plus one segment's intermediates, for about one more forward pass of time.
Peaks come from tracemalloc, which sees NumPy's array buffers; times are one run each.

    python bench/checkpoint_memory.py [--depth 64] [--width 256] [--batch 1024] [--segment 8]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import autodiff.numpy as anp  # noqa: E402
from autodiff import checkpoint, value_and_grad  # noqa: E402


def layers(weights: list, h):
    """Residual tanh layers: h <- h + tanh(h @ w + b), for each {"w", "b"} in `weights`."""
    for layer in weights:
        h = h + anp.tanh(h @ layer["w"] + layer["b"])
    return h


def loss(weights: list, x, segment: int):
    """Mean square of the network's output; `segment` > 0 checkpoints that many layers at
    a time."""
    if segment == 0:
        return anp.mean(layers(weights, x) ** 2)
    h = x
    for start in range(0, len(weights), segment):
        h = checkpoint(layers)(weights[start:start + segment], h)
    return anp.mean(h ** 2)


def measure(weights: list, x, segment: int) -> tuple[float, float, float]:
    """(peak MiB during value_and_grad, seconds, loss value)."""
    step = value_and_grad(loss)
    tracemalloc.start()
    start = time.perf_counter()
    value, _ = step(weights, x, segment)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20, seconds, float(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--segment", type=int, default=0, help="0: the square root of depth")
    args = parser.parse_args(argv)
    segment = args.segment or max(1, round(args.depth ** 0.5))
    rng = np.random.default_rng(0)
    scale = np.float32(0.5 / np.sqrt(args.width))
    weights = [{"w": rng.standard_normal((args.width, args.width), np.float32) * scale,
                "b": np.zeros(args.width, np.float32)} for _ in range(args.depth)]
    x = rng.standard_normal((args.batch, args.width), np.float32)
    activation = args.batch * args.width * 4 / 2**20
    weights_size = args.depth * args.width ** 2 * 4 / 2**20
    print(f"{args.depth} layers of {args.width}, batch {args.batch}, float32: "
          f"one activation is {activation:.2f} MiB, the weights {weights_size:.0f} MiB")
    print(f"{'':<26}{'peak MiB':>10}{'seconds':>10}")
    plain_peak = None
    for name, seg in [("plain", 0), ("checkpoint each layer", 1),
                      (f"checkpoint {segment} layers", segment)]:
        peak, seconds, value = measure(weights, x, seg)
        plain_peak = plain_peak or peak
        print(f"{name:<26}{peak:>10.1f}{seconds:>10.2f}   ({peak / plain_peak:.2f} of plain;"
              f" loss {value:.6f})")


if __name__ == "__main__":
    main()

"""Engine speed, against peers measured in the same run.

1. Overhead: forward + backward of a 20-op function on 4x4 float64 arrays, in microseconds
   per op: our engine, the same derivative written by hand in NumPy, and HIPS autograd and
   PyTorch eager when they are installed.
2. Training step: value_and_grad of a cross-entropy MLP loss (784-256-128-10, batch 128,
   float32) against the same forward and backward written by hand in NumPy; the ratio.

Each figure is the median over repeats, with min and max; implementations are interleaved
inside every repeat so that a busy machine slows all of them alike. The BLAS library
runs one thread, as train.py runs it (digits/threads.py); a thread count set in the
environment (OPENBLAS_NUM_THREADS=2) is respected, to measure under that instead.

    python bench/engine.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import digits.threads  # noqa: E402, F401  (before NumPy: the BLAS library's thread count)

import numpy as np  # noqa: E402

import autodiff.numpy as anp  # noqa: E402
from autodiff import value_and_grad  # noqa: E402
from nets.costs import cross_entropy  # noqa: E402
from nets.mlp import mlp  # noqa: E402

OPS = 20


# ------------------------------------------------------------------ overhead

def twenty_ops(m, x, y, relu):
    """20 ops: elementwise, broadcasting, a matmul and a reduction. `m` is the NumPy."""
    a = x * y
    b = a + x
    c = m.tanh(b)
    d = c * c
    e = d - y
    f = e * 0.1
    g = m.exp(f)
    h = x * x
    i = h + 1.0
    j = g / i
    k = m.sin(j)
    l = k @ y
    n = l + b
    o = relu(n)
    p = o * 2.0
    q = p - c
    r = m.cos(q)
    s = r * x
    t = s + a
    return m.sum(t)


def by_hand(x, y):
    """twenty_ops and its gradient with respect to x and y, written out in NumPy."""
    a = x * y
    b = a + x
    c = np.tanh(b)
    d = c * c
    e = d - y
    f = e * 0.1
    g = np.exp(f)
    h = x * x
    i = h + 1.0
    j = g / i
    k = np.sin(j)
    l = k @ y
    n = l + b
    mask = n > 0
    o = n * mask
    p = o * 2.0
    q = p - c
    r = np.cos(q)
    s = r * x
    t = s + a
    out = np.sum(t)
    gt = np.ones_like(t)
    gs, ga = gt, gt
    gr, gx = gs * x, gs * r
    gq = -gr * np.sin(q)
    gp, gc = gq, -gq
    go = gp * 2.0
    gn = go * mask
    gl, gb = gn, gn
    gk, gy = gl @ y.T, k.T @ gl
    gj = gk * np.cos(j)
    gg, gi = gj / i, -gj * j / i
    gh = gi
    gx = gx + 2 * x * gh
    gf = gg * g
    ge = gf * 0.1
    gd, gy = ge, gy - ge
    gc = gc + 2 * c * gd
    gb = gb + gc * (1 - c * c)
    ga = ga + gb
    gx = gx + gb + ga * y
    gy = gy + ga * x
    return out, gx, gy


def overhead_contenders(x, y):
    ours = value_and_grad(lambda x, y: twenty_ops(anp, x, y, lambda v: anp.where(v > 0, v, 0)),
                          argnums=(0, 1))
    contenders = {"ours (autodiff)": lambda: ours(x, y), "NumPy by hand": lambda: by_hand(x, y)}
    try:
        import autograd
        import autograd.numpy as agnp

        hips = autograd.value_and_grad(
            lambda x, y: twenty_ops(agnp, x, y, lambda v: agnp.where(v > 0, v, 0)),
            argnum=(0, 1) if "argnum" in autograd.value_and_grad.__code__.co_varnames else 0)
        contenders["HIPS autograd"] = lambda: hips(x, y)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(1)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.tensor(y, requires_grad=True)

        def torch_step():
            out = twenty_ops(torch, tx, ty, torch.relu)
            return torch.autograd.grad(out, (tx, ty))

        contenders["PyTorch eager"] = torch_step
    except ImportError:
        pass
    return contenders


# ------------------------------------------------------------------------ MLP

def mlp_loss(params, x, targets):
    """The project's own MLP and cost, as train.py uses them."""
    return cross_entropy(mlp(params, x), targets)


def mlp_by_hand(params, x, targets):
    """The same loss and its gradient, as a from-scratch NumPy program would write them."""
    activations, h = [x], x
    for layer in params[:-1]:
        h = h @ layer["w"] + layer["b"]
        h = np.maximum(h, 0)
        activations.append(h)
    logits = h @ params[-1]["w"] + params[-1]["b"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.sum(targets * log_p) / x.shape[0]
    g = (np.exp(log_p) - targets) / np.float32(x.shape[0])
    grads = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        grads[i] = {"w": activations[i].T @ g, "b": g.sum(axis=0)}
        if i:
            g = (g @ params[i]["w"].T) * (activations[i] > 0)
    return loss, grads


def mlp_contenders():
    rng = np.random.default_rng(0)
    sizes = [784, 256, 128, 10]
    params = [{"w": (rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32),
               "b": np.zeros(b, np.float32)} for a, b in zip(sizes[:-1], sizes[1:])]
    x = rng.random((128, 784), dtype=np.float32)
    targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]
    ours = value_and_grad(mlp_loss)
    ours_loss, ours_grads = ours(params, x, targets)
    hand_loss, hand_grads = mlp_by_hand(params, x, targets)
    assert ours_loss.dtype == np.float32 and np.isclose(ours_loss, hand_loss, rtol=1e-5)
    for mine, theirs in zip(ours_grads, hand_grads):
        for key in ("w", "b"):
            assert mine[key].dtype == np.float32
            np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-3, atol=1e-6)
    return {"ours (autodiff)": lambda: ours(params, x, targets),
            "NumPy by hand": lambda: mlp_by_hand(params, x, targets)}


# ------------------------------------------------------------------ measuring

def measure(contenders: dict, repeats: int, calls: int) -> dict[str, list[float]]:
    """Seconds per call for each contender, one figure per repeat, interleaved."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        for _ in range(max(3, calls // 10)):
            fn()
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def summary(values: list[float], scale: float) -> str:
    v = np.array(values) * scale
    return f"median {np.median(v):8.2f}  min {v.min():8.2f}  max {v.max():8.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    contenders = overhead_contenders(x, y)
    _, gx, gy = by_hand(x, y)
    _, (ox, oy) = contenders["ours (autodiff)"]()
    np.testing.assert_allclose(ox, gx, rtol=1e-10)
    np.testing.assert_allclose(oy, gy, rtol=1e-10)
    print(f"Forward + backward of a {OPS}-op function on 4x4 arrays (us per op):")
    times = measure(contenders, args.repeats, calls=2000)
    for name, values in times.items():
        print(f"  {name:<18} {summary(values, 1e6 / OPS)}")
    ratio = np.median(times["ours (autodiff)"]) / np.median(times["NumPy by hand"])
    print(f"  ours / by hand: {ratio:.2f}")

    blas = "one BLAS thread" if digits.threads.BLAS_PINNED else "BLAS threads as set"
    print(f"value_and_grad of a cross-entropy MLP 784-256-128-10, batch 128, float32, {blas} "
          "(ms):")
    times = measure(mlp_contenders(), args.repeats, calls=200)
    for name, values in times.items():
        print(f"  {name:<18} {summary(values, 1e3)}")
    ratios = np.array(times["ours (autodiff)"]) / np.array(times["NumPy by hand"])
    print(f"  ratio ours / by hand: median {np.median(ratios):.3f} "
          f"(min {ratios.min():.3f}, max {ratios.max():.3f}; per-repeat pairs)")


if __name__ == "__main__":
    main()

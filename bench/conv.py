"""Convolution layers, forward and backward: fusegrad eager and compiled against numpy (im2col
and einsum) and PyTorch eager.

Two LeNet-ish layers, batch 64: 1 -> 6 channels 5x5 on 28x28 and 16 -> 32 channels 3x3
(padding 1) on 14x14. One call computes y = conv2d(x, w, b) and the gradients of sum(y * g)
with respect to x, w and b. GFLOP/s counts the three contractions (forward, input gradient,
weight gradient: 3 x 2 N OC OH OW C KH KW). Medians of repeated timings; ratios against numpy.

Also printed: the kernels fusegrad compiles for the step (whether the windows are a buffer of
their own: an im2col matrix the compiler makes, or read by the GEMM in place).

Run: python bench/conv.py
"""
from __future__ import annotations

import os
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, os.path.dirname(__file__))
import fusegrad  # noqa: E402
import fusegrad.nn.functional as F  # noqa: E402
from common import installed, median_time  # noqa: E402

LAYERS = [  # name, N, C, H, W, OC, K, padding
    ("1->6 5x5 on 28x28", 64, 1, 28, 28, 6, 5, 0),
    ("16->32 3x3 on 14x14", 64, 16, 14, 14, 32, 3, 1),
]


def numpy_layer(x, w, b, g, pad):
    """Forward and backward by im2col and einsum: (y, dx, dw, db)."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = sliding_window_view(xp, (k, k), axis=(2, 3))                  # [N, C, OH, OW, K, K]
    y = np.einsum("nchwij,ocij->nohw", cols, w, optimize=True) + b[None, :, None, None]
    dw = np.einsum("nchwij,nohw->ocij", cols, g, optimize=True)
    db = g.sum(axis=(0, 2, 3))
    dcols = np.einsum("nohw,ocij->nchwij", g, w, optimize=True)
    dxp = np.zeros_like(xp)
    oh, ow = g.shape[2:]
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + oh, j:j + ow] += dcols[..., i, j]
    dx = dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return y, dx, dw, db


def fusegrad_layer(pad):
    def layer(x, w, b, g):
        y = F.conv2d(x, w, b, padding=pad)
        dx, dw, db = fusegrad.autograd.grad((y * g).sum(), [x, w, b])
        return y, dx, dw, db
    return layer


def run_fusegrad(fn, x, w, b, g):
    outs = fn(x, w, b, g)
    for o in outs:
        o.detach().numpy()
    return outs


def main():
    torch = installed("torch")
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    print(f"fusegrad conv2d forward + backward (dx, dw, db), float32, {os.cpu_count()} CPU threads")
    for name, n, c, h, wd, oc, k, pad in LAYERS:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
        w = (rng.standard_normal((oc, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        b = rng.standard_normal(oc).astype(np.float32)
        oh, ow = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
        g = rng.standard_normal((n, oc, oh, ow)).astype(np.float32)
        flops = 3 * 2 * n * oc * oh * ow * c * k * k
        ref = numpy_layer(x, w, b, g, pad)

        xt, wt, bt, gt = (fusegrad.tensor(a, requires_grad=i < 3) for i, a in enumerate((x, w, b, g)))
        eager = fusegrad_layer(pad)
        compiled = fusegrad.compile(fusegrad_layer(pad))
        for fn in (eager, compiled):      # same values as numpy's
            for got, want in zip(run_fusegrad(fn, xt, wt, bt, gt), ref):
                np.testing.assert_allclose(got.detach().numpy(), want, rtol=2e-3, atol=2e-3)
        times = {
            "numpy (im2col + einsum)": median_time(lambda: numpy_layer(x, w, b, g, pad), repeat=7),
            "fusegrad eager": median_time(lambda: run_fusegrad(eager, xt, wt, bt, gt), repeat=9),
            "fusegrad compiled": median_time(lambda: run_fusegrad(compiled, xt, wt, bt, gt), repeat=9),
        }
        if torch is not None:
            X, W, B = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
            G = torch.tensor(g)

            def torch_layer():
                y = torch.nn.functional.conv2d(X, W, B, padding=pad)
                return (y,) + torch.autograd.grad((y * G).sum(), [X, W, B])
            times["torch eager"] = median_time(torch_layer, repeat=9)
        base = times["numpy (im2col + einsum)"]
        print(f"\n{name}, batch {n}: {flops / 1e9:.3f} GFLOP per call")
        print(f"  {'':26s} {'median ms':>10s} {'GFLOP/s':>9s} {'vs numpy':>9s}")
        for peer, sec in times.items():
            print(f"  {peer:26s} {sec * 1e3:10.2f} {flops / sec / 1e9:9.2f} {base / sec:8.2f}x")
        if "torch eager" in times:
            print(f"  fusegrad compiled / torch eager time: {times['fusegrad compiled'] / times['torch eager']:.2f}")
        outs = eager(xt, wt, bt, gt)
        outs[0].detach().numpy()
        kernels = fusegrad.program_of(outs[0]).text("kernels")
        summary = [line for line in kernels.splitlines() if line.startswith(("kernel ", "  writes"))]
        print("  kernels of the eager step:")
        for line in summary:
            print("    " + line.strip())


if __name__ == "__main__":
    main()

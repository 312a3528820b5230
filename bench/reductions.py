"""Reductions: a float32 sum of 10M values (accuracy and speed), and row-wise softmax,
log_softmax and cross-entropy over a [4096, 1024] matrix (kernel counts and speed).

Run: python bench/reductions.py
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import Row, copy_bandwidth, median_time, table, time_peers  # noqa: E402

N = 10_000_000
ROWS, COLS = 4096, 1024


def _sum_row():
    import fusegrad
    a = np.random.default_rng(0).random(N, dtype=np.float32)
    t = fusegrad.from_numpy(a)
    exact = a.astype(np.float64).sum()
    err = abs(t.sum().item() - exact) / exact
    f = fusegrad.compile(lambda x: x.sum())
    peers = {"numpy": median_time(lambda: a.sum(), repeat=11)}
    time_peers(peers, {"torch": lambda torch: (lambda x=torch.from_numpy(a): x.sum()),
                       "jax": lambda jax: _jax_call(jax, lambda x: x.sum(), a)})
    t_f = median_time(lambda: f(t), repeat=11)
    return Row("sum 10M f32", t_f, peers, 4 * N / copy_bandwidth() * 2 / t_f, "copy bw",
               f"relative error {err:.1e} (numpy {abs(float(a.sum()) - exact) / exact:.1e})")


def _jax_call(jax, fn, *arrays):
    import jax.numpy as jnp
    args = [jnp.asarray(a) for a in arrays]
    jf = jax.jit(fn)
    return lambda: jf(*args).block_until_ready()


def _row_ops():
    import fusegrad
    import fusegrad.nn.functional as F
    rng = np.random.default_rng(1)
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    labels = rng.integers(0, COLS, ROWS)
    tx, tl = fusegrad.from_numpy(x), fusegrad.tensor(labels)
    cases = {
        "softmax [4096,1024]": (lambda m, a: m.softmax(a, 1), lambda a: _np_softmax(a)),
        "log_softmax [4096,1024]": (lambda m, a: m.log_softmax(a, 1), None),
    }
    rows = []
    for name, (fn, ref) in cases.items():
        f = fusegrad.compile(lambda a, fn=fn: fn(fusegrad, a))
        kernels = fusegrad.program_of(fn(fusegrad, tx)._realize()).num_kernels
        peers = {}
        if ref is not None:
            peers["numpy"] = median_time(lambda: ref(x), repeat=7)
        time_peers(peers, {"torch": lambda torch, fn=fn: (lambda a=torch.from_numpy(x): fn(torch, a)),
                           "jax": lambda jax, fn=fn: _jax_call(jax, lambda a: fn(jax.nn, a), x)})
        t_f = median_time(lambda: f(tx), repeat=9)
        rows.append(Row(name, t_f, peers, 8 * x.size / copy_bandwidth() / t_f, "copy bw", f"{kernels} kernel(s)"))
    f = fusegrad.compile(lambda a, lab: F.cross_entropy(a, lab))
    loss = F.cross_entropy(tx, tl)
    kernels = fusegrad.program_of(loss._realize()).num_kernels
    peers = {}
    time_peers(peers, {"torch": lambda torch: (lambda a=torch.from_numpy(x), lab=torch.from_numpy(labels):
                                               torch.nn.functional.cross_entropy(a, lab))})
    t_f = median_time(lambda: f(tx, tl), repeat=9)
    rows.append(Row("cross_entropy [4096,1024]", t_f, peers, 4 * x.size / copy_bandwidth() / t_f, "copy bw",
                    f"{kernels} kernel(s)"))
    return rows


def _np_softmax(a):
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def rows() -> list:
    return [_sum_row()] + _row_ops()


if __name__ == "__main__":
    print(table(rows()))

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
    notes: list = []
    time_peers(peers, {"torch": lambda torch: (lambda x=torch.from_numpy(a): x.sum()),
                       "torch.compile": lambda torch: _warm(lambda f=torch.compile(lambda x: x.sum()),
                                                            x=torch.from_numpy(a): f(x)),
                       "jax": lambda jax: _jax_call(jax, lambda x: x.sum(), a),
                       "tinygrad": lambda tiny: (lambda x=tiny.Tensor(a).realize(): x.sum().realize())},
               notes=notes)
    t_f = median_time(lambda: f(t), repeat=11)
    # reads 4N bytes; the copy bandwidth counts read and written bytes alike
    return Row(f"sum {N / 1e6:g}M f32", t_f, peers, 4 * N / copy_bandwidth() / t_f, "copy bw",
               f"relative error {err:.1e} (numpy {abs(float(a.sum()) - exact) / exact:.1e})"
               + "".join(f"; {n}" for n in notes))


def _warm(fn):
    fn()
    return fn


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
    shape = f"[{ROWS},{COLS}]"
    cases = {
        f"softmax {shape}": (lambda m, a: m.softmax(a, 1), lambda a: _np_softmax(a), lambda a: a.softmax(1)),
        f"log_softmax {shape}": (lambda m, a: m.log_softmax(a, 1), None, lambda a: a.log_softmax(1)),
    }
    rows = []
    for name, (fn, ref, tiny_fn) in cases.items():
        f = fusegrad.compile(lambda a, fn=fn: fn(fusegrad, a))
        kernels = fusegrad.program_of(fn(fusegrad, tx)._realize()).num_kernels
        peers = {}
        notes: list = []
        if ref is not None:
            peers["numpy"] = median_time(lambda: ref(x), repeat=7)
        time_peers(peers, {"torch": lambda torch, fn=fn: (lambda a=torch.from_numpy(x): fn(torch, a)),
                           "torch.compile": lambda torch, fn=fn: _warm(
                               lambda c=torch.compile(lambda a: fn(torch, a)), a=torch.from_numpy(x): c(a)),
                           "jax": lambda jax, fn=fn: _jax_call(jax, lambda a: fn(jax.nn, a), x),
                           "tinygrad": lambda tiny, g=tiny_fn: (lambda a=tiny.Tensor(x).realize(): g(a).realize())},
                   notes=notes)
        t_f = median_time(lambda: f(tx), repeat=9)
        rows.append(Row(name, t_f, peers, 8 * x.size / copy_bandwidth() / t_f, "copy bw",
                        f"{kernels} kernel(s)" + "".join(f"; {n}" for n in notes)))
    f = fusegrad.compile(lambda a, lab: F.cross_entropy(a, lab))
    loss = F.cross_entropy(tx, tl)
    kernels = fusegrad.program_of(loss._realize()).num_kernels
    peers = {}
    notes = []
    ce = lambda torch: (lambda a, lab: torch.nn.functional.cross_entropy(a, lab))
    time_peers(peers, {
        "torch": lambda torch: (lambda a=torch.from_numpy(x), lab=torch.from_numpy(labels): ce(torch)(a, lab)),
        "torch.compile": lambda torch: _warm(lambda c=torch.compile(ce(torch)), a=torch.from_numpy(x),
                                             lab=torch.from_numpy(labels): c(a, lab)),
        "jax": lambda jax: _jax_call(jax, lambda a, lab: -jax.numpy.take_along_axis(
            jax.nn.log_softmax(a, 1), lab[:, None], 1).mean(), x, labels),
        "tinygrad": lambda tiny: (lambda a=tiny.Tensor(x).realize(), lab=tiny.Tensor(labels).realize():
                                  a.sparse_categorical_crossentropy(lab).realize())}, notes=notes)
    t_f = median_time(lambda: f(tx, tl), repeat=9)
    rows.append(Row(f"cross_entropy {shape}", t_f, peers, 4 * x.size / copy_bandwidth() / t_f, "copy bw",
                    f"{kernels} kernel(s)" + "".join(f"; {n}" for n in notes)))
    return rows


def _np_softmax(a):
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def rows() -> list:
    return [_sum_row()] + _row_ops()


if __name__ == "__main__":
    print(table(rows()))

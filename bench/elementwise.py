"""Fused elementwise: sigmoid(x*w + b)*2 - 1 on 10,000,000 float32 elements, and the math
functions with their own code (sin, cos, erf, fmod) on 4,000,000 float32 elements.

A fused pass reads 3 arrays and writes 1; the ideal time is those 160 MB at the machine's
copy bandwidth, measured in the same run. The math rows take |x| < 1e4, where sin and cos
use the short argument reduction (bench/trig_ulp.py measures accuracy over the whole range).
Run: python bench/elementwise.py
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import Row, copy_bandwidth, median_time, table, time_peers  # noqa: E402

N = 10_000_000


def expression(m, x, w, b):
    return m.sigmoid(x * w + b) * 2 - 1


def rows() -> list:
    import fusegrad
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(N).astype(np.float32) for _ in range(3)]
    t_x, t_w, t_b = (fusegrad.from_numpy(a) for a in xs)
    eager = lambda: expression(fusegrad, t_x, t_w, t_b).numpy()
    compiled_fn = fusegrad.compile(lambda x, w, b: expression(fusegrad, x, w, b))
    compiled = lambda: compiled_fn(t_x, t_w, t_b)
    np.testing.assert_allclose(eager(), 2 / (1 + np.exp(-(xs[0] * xs[1] + xs[2]))) - 1, rtol=1e-5, atol=1e-6)
    ideal = 16 * N / copy_bandwidth()
    peers = {"numpy": median_time(lambda: 2 / (1 + np.exp(-(xs[0] * xs[1] + xs[2]))) * 1 - 1, repeat=7)}
    notes: list = []
    time_peers(peers, {"torch": lambda torch: _torch(torch, xs, compiled=False),
                       "torch.compile": lambda torch: _torch(torch, xs, compiled=True),
                       "jax": lambda jax: _jax(jax, xs), "tinygrad": lambda tiny: _tinygrad(tiny, xs)}, notes=notes)
    t_eager = median_time(eager, repeat=11)
    t_compiled = median_time(compiled, repeat=11)
    size = f"{N / 1e6:g}M"
    return [Row(f"elementwise {size} f32, eager", t_eager, peers, ideal / t_eager, "copy bw", "; ".join(notes)),
            Row(f"elementwise {size} f32, compiled", t_compiled, peers, ideal / t_compiled, "copy bw",
                f"ideal pass {ideal * 1e3:.1f} ms")] + math_rows()


MATH_N = 4_000_000
MATH = {   # name -> (fusegrad/torch call, numpy call)
    "sin": (lambda m, x: m.sin(x), np.sin),
    "cos": (lambda m, x: m.cos(x), np.cos),
    "erf": (lambda m, x: m.erf(x), None),
    "fmod": (lambda m, x: m.fmod(x, 3.0), lambda x: np.fmod(x, np.float32(3.0))),
}


def math_rows() -> list:
    """One row per math function, eager fusegrad against numpy and PyTorch on the same array."""
    import fusegrad
    a = np.random.default_rng(1).uniform(-1e4, 1e4, MATH_N).astype(np.float32)
    t = fusegrad.from_numpy(a)
    ideal = 8 * MATH_N / copy_bandwidth()
    rows = []
    for name, (call, np_call) in MATH.items():
        peers = {"numpy": median_time(lambda f=np_call: f(a), repeat=7)} if np_call is not None else {}
        time_peers(peers, {"torch": lambda torch, c=call: (lambda x=torch.from_numpy(a): c(torch, x))})
        t_fg = median_time(lambda c=call: c(fusegrad, t).numpy(), repeat=9)
        rows.append(Row(f"{name} {MATH_N / 1e6:g}M f32, eager", t_fg, peers, ideal / t_fg, "copy bw"))
    return rows


def _torch(torch, xs, compiled: bool):
    tx, tw, tb = (torch.from_numpy(a) for a in xs)
    fn = (lambda x, w, b: expression(torch, x, w, b))
    fn = torch.compile(fn) if compiled else fn
    return lambda: fn(tx, tw, tb)


def _jax(jax, xs):
    import jax.numpy as jnp
    jx, jw, jb = (jnp.asarray(a) for a in xs)
    fn = jax.jit(lambda x, w, b: jax.nn.sigmoid(x * w + b) * 2 - 1)
    return lambda: fn(jx, jw, jb).block_until_ready()


def _tinygrad(tiny, xs):
    gx, gw, gb = (tiny.Tensor(a).realize() for a in xs)
    return lambda: ((gx * gw + gb).sigmoid() * 2 - 1).realize()


if __name__ == "__main__":
    print(table(rows()))

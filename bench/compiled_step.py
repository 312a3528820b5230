"""Compiled training steps: @fusegrad.compile against eager PyTorch, torch.compile and JAX jit.

1. The 5,000-epoch linear-regression loop (nn.Linear(1, 1), MSE, SGD), one compiled step per
   epoch called from a plain Python loop; numpy with hand-written gradients for reference.
2. An MLP step (784 -> 256 -> 10, ReLU, cross-entropy, batch 128, Adam): steps per second.
3. First-call latency of that step (trace + passes + LLVM), cold and with the disk cache warm,
   each in a fresh process.

Run: python bench/compiled_step.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import Row, median_time, table, time_peers  # noqa: E402

EPOCHS = 5000


def _points():
    rng = np.random.default_rng(0)
    x = rng.random((100, 1), dtype=np.float32) * 10
    y = (2.5 * x + 1.0 + rng.normal(0, 0.5, (100, 1))).astype(np.float32)
    return x, y


def _linreg_step(m, x, y, compile_step=None):
    """A training step on a PyTorch-style module `m` (fusegrad or torch)."""
    model = m.nn.Linear(1, 1)
    loss_fn = m.nn.MSELoss()
    opt = m.optim.SGD(model.parameters(), lr=0.01)

    def step(x, y):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return compile_step(step) if compile_step else step


def _loop(step, x, y, epochs=EPOCHS):
    def run():
        for _ in range(epochs):
            step(x, y)
    return run


def linreg_rows() -> list:
    import fusegrad
    x, y = _points()
    fx, fy = fusegrad.from_numpy(x), fusegrad.from_numpy(y)
    compiled = _linreg_step(fusegrad, fx, fy, fusegrad.compile)
    for _ in range(3):
        compiled(fx, fy)
    t_loop = median_time(_loop(compiled, fx, fy), repeat=3, warmup=0)
    peers = {"numpy": median_time(_numpy_loop(x, y), repeat=3, warmup=0)}
    notes: list = []
    time_peers(peers, {
        "torch": lambda torch: _loop(_linreg_step(torch, *_torch_xy(torch, x, y)), *_torch_xy(torch, x, y)),
        "torch.compile": lambda torch: _warm(_loop(_linreg_step(torch, *_torch_xy(torch, x, y), torch.compile),
                                                   *_torch_xy(torch, x, y))),
        "jax": lambda jax: _jax_loop(jax, x, y)}, repeat=3, notes=notes)
    per_step = t_loop / EPOCHS
    return [Row(f"linreg loop {EPOCHS} epochs, compiled step", t_loop, peers, note=f"{per_step * 1e6:.1f} µs/step"
                + ("; " + "; ".join(notes) if notes else ""))]


def _torch_xy(torch, x, y):
    return torch.from_numpy(x), torch.from_numpy(y)


def _warm(run):
    run()
    return run


def _numpy_loop(x, y):
    def run():
        w, b, lr, n = 0.0, 0.0, 0.01, len(x)
        for _ in range(EPOCHS):
            err = x * w + b - y
            w -= lr * 2 * float((err * x).sum()) / n
            b -= lr * 2 * float(err.sum()) / n
    return run


def _jax_loop(jax, x, y):
    import jax.numpy as jnp

    def loss(p, x, y):
        return jnp.mean((x @ p[0] + p[1] - y) ** 2)

    @jax.jit
    def step(p, x, y):
        g = jax.grad(loss)(p, x, y)
        return [p[0] - 0.01 * g[0], p[1] - 0.01 * g[1]], loss(p, x, y)
    jx, jy = jnp.asarray(x), jnp.asarray(y)

    def run():
        p = [jnp.zeros((1, 1)), jnp.zeros((1,))]
        for _ in range(EPOCHS):
            p, _ = step(p, jx, jy)
        p[0].block_until_ready()
    run()
    return run


# ---------------------------------------------------------------- MLP step

def _mlp(m):
    return m.nn.Sequential(m.nn.Linear(784, 256), m.nn.ReLU(), m.nn.Linear(256, 10))


def _mlp_step(m, compile_step=None):
    model = _mlp(m)
    opt = m.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = m.nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return compile_step(step) if compile_step else step


def _batch():
    rng = np.random.default_rng(2)
    return rng.standard_normal((128, 784)).astype(np.float32), rng.integers(0, 10, 128)


def mlp_rows() -> list:
    import fusegrad
    x, y = _batch()
    fx, fy = fusegrad.from_numpy(x), fusegrad.tensor(y)
    step = _mlp_step(fusegrad, fusegrad.compile)
    t = median_time(lambda: step(fx, fy), repeat=200, warmup=5)
    eager = _mlp_step(fusegrad)
    t_eager = median_time(lambda: eager(fx, fy).item(), repeat=30, warmup=3)
    peers = {}
    time_peers(peers, {
        "torch": lambda torch: (lambda s=_mlp_step(torch), a=torch.from_numpy(x), b=torch.from_numpy(y): s(a, b)),
        "torch.compile": lambda torch: _warm(lambda s=_mlp_step(torch, torch.compile), a=torch.from_numpy(x),
                                             b=torch.from_numpy(y): s(a, b))}, repeat=50)
    return [Row("MLP step 784-256-10 b128 Adam, compiled", t, peers, note=f"{1 / t:.0f} steps/s"),
            Row("MLP step 784-256-10 b128 Adam, eager", t_eager, peers, note=f"{1 / t_eager:.0f} steps/s")]


_FIRST_CALL = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {bench!r})
    t0 = time.perf_counter()
    import numpy as np, fusegrad
    from compiled_step import _mlp_step, _batch
    x, y = _batch()
    fx, fy = fusegrad.from_numpy(x), fusegrad.tensor(y)
    step = _mlp_step(fusegrad, fusegrad.compile)
    t1 = time.perf_counter()
    step(fx, fy).item()
    t2 = time.perf_counter()
    print(t2 - t1)
""")


def first_call_rows() -> list:
    """First call of the compiled MLP step in a fresh process: empty cache, then warm cache."""
    script = _FIRST_CALL.format(bench=os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, FUSEGRAD_CACHE_DIR=cache)
        cold = float(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                    check=True).stdout.split()[-1])
        warm = min(float(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                        check=True).stdout.split()[-1]) for _ in range(3))
    return [Row("MLP step first call, cold cache", cold, note="trace + passes + LLVM"),
            Row("MLP step first call, warm disk cache", warm, note="trace + cached program and machine code")]


def rows() -> list:
    return linreg_rows() + mlp_rows() + first_call_rows()


if __name__ == "__main__":
    print(table(rows()))

"""Compiled training steps: @fusegrad.compile against eager PyTorch, torch.compile and JAX jit.

1. The 5,000-epoch linear-regression loop (nn.Linear(1, 1), MSE, SGD), one compiled step per
   epoch called from a plain Python loop; numpy with hand-written gradients for reference.
   Then the same 5,000 epochs as one native call (`step.repeat(5000, x, y)`), against JAX's
   `lax.fori_loop` of its jitted step (one call too).
2. An MLP step (784 -> 256 -> 10, ReLU, cross-entropy, batch 128), SGD with momentum and Adam:
   steps per second, against PyTorch eager, torch.compile and the same step as one JAX jit.
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


def _loop(step, x, y, epochs=None):
    epochs = epochs or EPOCHS          # read at call time: run_all --quick lowers EPOCHS

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
                + ("; " + "; ".join(notes) if notes else "")), _linreg_repeat_row(x, y)]


def _linreg_repeat_row(x, y) -> Row:
    """The 5,000 epochs as one `repeat` call, its losses checked against 5,000 single calls."""
    import fusegrad
    fx, fy = fusegrad.from_numpy(x), fusegrad.from_numpy(y)
    fusegrad.manual_seed(0)
    single = _linreg_step(fusegrad, fx, fy, fusegrad.compile)
    expected = np.array([single(fx, fy).item() for _ in range(EPOCHS)])
    fusegrad.manual_seed(0)
    compiled = _linreg_step(fusegrad, fx, fy, fusegrad.compile)
    losses = compiled.repeat(EPOCHS, fx, fy).numpy()
    worst = float(np.max(np.abs(losses - expected) / np.maximum(np.abs(expected), 1e-30)))
    t = median_time(lambda: compiled.repeat(EPOCHS, fx, fy), repeat=15, warmup=2)
    peers = {"numpy": median_time(_numpy_loop(x, y), repeat=3, warmup=0)}
    notes: list = []
    time_peers(peers, {"jax": lambda jax: _jax_fori_loop(jax, x, y)}, repeat=15, notes=notes)
    return Row(f"linreg {EPOCHS} epochs as one repeat() call", t, peers,
               note=f"{t / EPOCHS * 1e9:.0f} ns/step; losses vs {EPOCHS} single calls: max rel. diff {worst:.1e}"
               + ("; " + "; ".join(notes) if notes else ""))


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


def _jax_fori_loop(jax, x, y):
    """The 5,000 SGD epochs as one jitted `lax.fori_loop` (JAX's loop in one call)."""
    import jax.numpy as jnp

    def loss(p, x, y):
        return jnp.mean((x @ p[0] + p[1] - y) ** 2)

    @jax.jit
    def epochs(p, x, y):
        def body(_, p):
            g = jax.grad(loss)(p, x, y)
            return [p[0] - 0.01 * g[0], p[1] - 0.01 * g[1]]
        return jax.lax.fori_loop(0, EPOCHS, body, p)
    jx, jy = jnp.asarray(x), jnp.asarray(y)
    p0 = [jnp.zeros((1, 1)), jnp.zeros((1,))]

    def run():
        epochs(p0, jx, jy)[0].block_until_ready()
    run()
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


def _mlp_step(m, compile_step=None, optimizer: str = "Adam"):
    model = _mlp(m)
    opt = m.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if optimizer == "SGD" else \
        m.optim.Adam(model.parameters(), lr=1e-3)
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
    rows = []
    for optimizer in ("SGD", "Adam"):
        step = _mlp_step(fusegrad, fusegrad.compile, optimizer)
        t = median_time(lambda: step(fx, fy), repeat=200, warmup=5)
        peers: dict = {}
        notes: list = []
        time_peers(peers, {
            "torch": lambda torch, o=optimizer: (lambda s=_mlp_step(torch, None, o), a=torch.from_numpy(x),
                                                 b=torch.from_numpy(y): s(a, b)),
            "torch.compile": lambda torch, o=optimizer: _warm(
                lambda s=_mlp_step(torch, torch.compile, o), a=torch.from_numpy(x), b=torch.from_numpy(y): s(a, b)),
            "jax": lambda jax, o=optimizer: _jax_mlp_step(jax, o, x, y)}, repeat=50, notes=notes)
        rows.append(Row(f"MLP step 784-256-10 b128 {optimizer}, compiled", t, peers,
                        note=f"{1 / t:.0f} steps/s" + "".join(f"; {n}" for n in notes)))
        if optimizer == "Adam":
            eager = _mlp_step(fusegrad)
            t_eager = median_time(lambda: eager(fx, fy).item(), repeat=30, warmup=3)
            rows.append(Row("MLP step 784-256-10 b128 Adam, eager", t_eager, peers,
                            note=f"{1 / t_eager:.0f} steps/s"))
    return rows


def _jax_mlp_step(jax, optimizer: str, x, y):
    """The same step as one jax.jit function (value_and_grad, then SGD with momentum or Adam
    written out), parameters and optimizer state donated so that XLA may update them in place."""
    import jax.numpy as jnp
    rng = np.random.default_rng(3)

    def linear(fan_in, fan_out):
        bound = 1 / np.sqrt(fan_in)
        return [jnp.asarray(rng.uniform(-bound, bound, shape).astype(np.float32))
                for shape in ((fan_out, fan_in), (fan_out,))]
    params = linear(784, 256) + linear(256, 10)

    def loss_fn(p, x, y):
        h = jnp.maximum(x @ p[0].T + p[1], 0)
        logits = h @ p[2].T + p[3]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits, 1), y[:, None], 1))

    zeros = lambda: [jnp.zeros_like(q) for q in params]
    if optimizer == "SGD":
        def update(p, state, g):
            buf = [0.9 * b + gi for b, gi in zip(state[0], g)]
            return [q - 0.01 * b for q, b in zip(p, buf)], (buf,)
        state = (zeros(),)
    else:
        def update(p, state, g):
            m, v, t = state
            t = t + 1
            m = [0.9 * mi + 0.1 * gi for mi, gi in zip(m, g)]
            v = [0.999 * vi + 0.001 * gi * gi for vi, gi in zip(v, g)]
            c1, c2 = 1 - 0.9 ** t, 1 - 0.999 ** t
            return [q - 1e-3 * (mi / c1) / (jnp.sqrt(vi / c2) + 1e-8) for q, mi, vi in zip(p, m, v)], (m, v, t)
        state = (zeros(), zeros(), jnp.zeros((), jnp.float32))

    def step(p, state, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        p, state = update(p, state, g)
        return p, state, loss
    jitted = jax.jit(step, donate_argnums=(0, 1))
    jx, jy = jnp.asarray(x), jnp.asarray(y)
    carry = [params, state]

    def run():
        carry[0], carry[1], loss = jitted(carry[0], carry[1], jx, jy)
        return loss.block_until_ready()
    run()
    return run


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
    settle = 0.0                  # later calls that trace again (state created by earlier ones)
    for _ in range(5):
        start, traces = time.perf_counter(), step.stats["traces"]
        step(fx, fy).item()
        if step.stats["traces"] == traces:
            break
        settle += time.perf_counter() - start
    print(step.stats["traces"], settle, t2 - t1)
""")


def first_call_rows() -> list:
    """First call of the compiled MLP step in a fresh process: empty cache, then warm cache."""
    script = _FIRST_CALL.format(bench=os.path.dirname(os.path.abspath(__file__)))

    def run(env):     # (first call, the later calls that traced again, traces in all)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        traces, settle, first = out.stdout.split()[-3:]
        return float(first), float(settle), int(traces)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, FUSEGRAD_CACHE_DIR=cache)
        cold = run(env)
        warm = min((run(env) for _ in range(3)), key=lambda r: r[0])
    more = lambda r: (f"; then {r[2] - 1} more trace(s) on the next call(s): {r[1] * 1e3:.0f} ms"
                      if r[2] > 1 else "")
    return [Row("MLP step first call, cold cache", cold[0], note="trace + passes + LLVM" + more(cold)),
            Row("MLP step first call, warm disk cache", warm[0],
                note="trace + cached program and machine code" + more(warm))]


def rows() -> list:
    return linreg_rows() + mlp_rows() + first_call_rows()


if __name__ == "__main__":
    print(table(rows()))

"""Eager training loops: fusegrad's nn + optim against eager PyTorch, with the same code.

1. The linear-regression loop of examples/linear_regression.py: nn.Linear(1, 1), MSELoss, SGD,
   5,000 epochs of forward, backward() and step() from a plain Python loop (no @compile).
2. One MLP training step (784 -> 256 -> 10, ReLU, cross-entropy, batch 128), with SGD (momentum
   0.9) and with Adam: the median step time.
3. Fixed costs: one eager elementwise op (10,000 chained `y = y + 1.0` on 8 floats, timed
   while building; fusegrad realizes once at the end) and the realizations (native calls)
   per iteration of the loops above.
4. Initialization on 16M elements: rand, randn, nn.init.kaiming_uniform_ and normal_ of a
   4096x4096 tensor, and building nn.Linear(4096, 4096) (empty + kaiming_uniform_ + bias), each
   call writing fresh memory, as a model's construction does (numpy: its default Generator).

Every number is a median from this one run; ratios > 1 mean fusegrad is faster.

Run: python bench/train_loop.py
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

import fusegrad

sys.path.insert(0, os.path.dirname(__file__))
from common import Row, machine, median_time, table, time_peers  # noqa: E402

EPOCHS = 5000


def _points():
    rng = np.random.default_rng(0)
    x = rng.random((100, 1), dtype=np.float32) * 10
    y = (2.5 * x + 1.0 + rng.normal(0, 1.0, (100, 1))).astype(np.float32)
    return x, y


def _linreg_loop(m):
    """The 5,000-epoch loop for `m` (fusegrad or torch), as a function running it from scratch."""
    x, y = (m.from_numpy(a) for a in _points())

    def run():
        model = m.nn.Linear(1, 1)
        loss_fn = m.nn.MSELoss()
        opt = m.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(EPOCHS):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()
    return run


def linreg_rows() -> list:
    import fusegrad.nn  # noqa: F401  (torch.nn and torch.optim come with `import torch`)
    import fusegrad.optim  # noqa: F401
    run = _linreg_loop(fusegrad)
    start = time.perf_counter()
    run()                                   # first run: compiles its programs
    first = time.perf_counter() - start
    t = median_time(run, repeat=3, warmup=0)
    peers: dict = {}
    notes: list = []
    time_peers(peers, {"torch": _linreg_loop}, repeat=3, notes=notes)
    note = f"{t / EPOCHS * 1e6:.0f} µs/epoch; first run {first:.2f} s" + ("; " + "; ".join(notes) if notes else "")
    return [Row(f"linreg loop, {EPOCHS} epochs, eager", t, peers, note=note)]


def _mlp_step(m, optimizer: str):
    """One training step of the MLP for `m`, as a function of no arguments."""
    rng = np.random.default_rng(2)
    x = m.from_numpy(rng.standard_normal((128, 784)).astype(np.float32))
    y = m.from_numpy(rng.integers(0, 10, 128))
    model = m.nn.Sequential(m.nn.Linear(784, 256), m.nn.ReLU(), m.nn.Linear(256, 10))
    opt = m.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if optimizer == "SGD" else \
        m.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = m.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def mlp_rows() -> list:
    import fusegrad.nn  # noqa: F401
    import fusegrad.optim  # noqa: F401
    rows = []
    for optimizer in ("SGD", "Adam"):
        t = median_time(_mlp_step(fusegrad, optimizer), repeat=50, warmup=3)
        peers: dict = {}
        notes: list = []
        time_peers(peers, {"torch": lambda torch, o=optimizer: _mlp_step(torch, o)}, repeat=50, notes=notes)
        rows.append(Row(f"MLP step 784-256-10 b128 {optimizer}, eager", t, peers,
                        note=f"{1 / t:.0f} steps/s" + ("; " + "; ".join(notes) if notes else "")))
    return rows


CHAIN = 10_000


def _chained_adds(m):
    x = m.ones(8)

    def run():
        y = x
        for _ in range(CHAIN):
            y = y + 1.0
        return y
    return run


def _realizations_per_iteration(make_loop_body, iterations: int = 20) -> float:
    """Native calls (eager realizations) per iteration of a loop body, after a warm-up."""
    body = make_loop_body()
    body()
    before = fusegrad.program_cache_info()["runs"]
    for _ in range(iterations):
        body()
    return (fusegrad.program_cache_info()["runs"] - before) / iterations


def fixed_cost_rows() -> list:
    chain = _chained_adds(fusegrad)

    def build_and_realize():
        chain().sum().item()
    t = median_time(build_and_realize, repeat=5, warmup=1) / CHAIN
    peers: dict = {}
    time_peers(peers, {"torch": lambda torch: lambda: _chained_adds(torch)().sum().item()}, repeat=5)
    peers = {k: v / CHAIN for k, v in peers.items()}
    linreg = _realizations_per_iteration(lambda: _linreg_epoch(fusegrad))
    mlp = {o: _realizations_per_iteration(lambda o=o: _mlp_step(fusegrad, o)) for o in ("SGD", "Adam")}
    note = (f"realizations per iteration: linreg epoch {linreg:g}, MLP SGD step {mlp['SGD']:g}, "
            f"MLP Adam step {mlp['Adam']:g}")
    return [Row(f"eager op: y = y + 1.0, {CHAIN} chained, per op", t, peers, note=note)]


def _linreg_epoch(m):
    """One epoch of the linear-regression loop, as a function of no arguments."""
    x, y = (m.from_numpy(a) for a in _points())
    model = m.nn.Linear(1, 1)
    loss_fn = m.nn.MSELoss()
    opt = m.optim.SGD(model.parameters(), lr=0.01)

    def epoch():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return epoch


INIT_SHAPE = (4096, 4096)


def _init_calls(m) -> dict:
    """name -> call of no arguments, for fusegrad or torch (`m`)."""
    weight = m.empty(*INIT_SHAPE)
    return {
        "rand": lambda: m.rand(*INIT_SHAPE),
        "randn": lambda: m.randn(*INIT_SHAPE),
        "kaiming_uniform_": lambda: m.nn.init.kaiming_uniform_(weight),
        "normal_": lambda: m.nn.init.normal_(weight),
        "nn.Linear(4096, 4096)": lambda: m.nn.Linear(*INIT_SHAPE),
    }


def _numpy_calls(np_module) -> dict:
    rng = np_module.random.default_rng(0)
    return {"rand": lambda: rng.random(INIT_SHAPE, dtype=np.float32),
            "randn": lambda: rng.standard_normal(INIT_SHAPE, dtype=np.float32)}


def init_rows() -> list:
    import fusegrad.nn  # noqa: F401
    ours = _init_calls(fusegrad)
    for call in ours.values():
        call()                              # the first call of each fill compiles it (then disk-cached)
    rows = []
    for name, call in ours.items():
        t = median_time(call, repeat=7, warmup=1)
        peers: dict = {}
        notes: list = []
        makers = {"torch": lambda torch, n=name: _init_calls(torch)[n]}
        if name in ("rand", "randn"):
            makers["numpy"] = lambda np_module, n=name: _numpy_calls(np_module)[n]
        time_peers(peers, makers, repeat=7, notes=notes)
        rows.append(Row(f"init: {name}, 16M float32", t, peers, note="; ".join(notes)))
    return rows


if __name__ == "__main__":
    print(machine())
    print(table(linreg_rows() + mlp_rows() + fixed_cost_rows() + init_rows()))

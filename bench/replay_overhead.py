"""Fixed cost of replaying a compiled function: the seed's linear-regression step, an MLP SGD
step and a tiny elementwise call, each replayed many times from a Python loop (median per call).

This is what guards, locks and binding add to every call; compare two builds by running this
file under each (e.g. with PYTHONPATH pointing at the other build), on a quiet machine.

Run: python bench/replay_overhead.py [--calls N]
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np

import fusegrad
from fusegrad import nn


def _per_call(fn, calls: int, rounds: int = 7) -> float:
    """Median over `rounds` of the mean time of `calls` calls, in microseconds."""
    fn()
    fn()
    times = []
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append((time.perf_counter() - start) / calls * 1e6)
    finally:
        gc.enable()
    return statistics.median(times)


def _compiled_step(model, loss_fn, opt):
    """The usual training step (zero_grad, forward, backward, update), compiled."""
    @fusegrad.compile
    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def linreg_step():
    rng = np.random.default_rng(0)
    x = fusegrad.tensor((rng.random((100, 1)) * 10).astype(np.float32))
    y = fusegrad.tensor((2.5 * x.numpy() + 1.0).astype(np.float32))
    model = nn.Linear(1, 1)
    step = _compiled_step(model, nn.MSELoss(), fusegrad.optim.SGD(model.parameters(), lr=0.01))
    return lambda: step(x, y)


def mlp_step():
    rng = np.random.default_rng(0)
    x = fusegrad.tensor(rng.random((128, 784), dtype=np.float32))
    y = fusegrad.tensor(rng.integers(0, 10, 128))
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = fusegrad.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = _compiled_step(model, nn.CrossEntropyLoss(), opt)
    return lambda: step(x, y)


def tiny_call():
    x = fusegrad.ones(1000)
    f = fusegrad.compile(lambda x: x * 2 + 1)
    return lambda: f(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    fusegrad.runtime.set_num_threads(1)
    for name, make in (("linear-regression step", linreg_step), ("MLP SGD step (784-256-10, batch 128)", mlp_step),
                       ("compiled x*2+1 on 1,000 elements", tiny_call)):
        calls = args.calls if "MLP" not in name else max(1, args.calls // 10)
        print(f"{name:40s} {_per_call(make(), calls):9.1f} us/call")


if __name__ == "__main__":
    main()

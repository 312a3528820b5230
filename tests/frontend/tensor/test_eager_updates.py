"""Eager training without nn: plain leaf tensors updated in place, and the public namespace."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.realize import STATS


def _numpy_sgd(xs, ys, steps, lr=0.1):
    """The same loop in float64 numpy: the weight and loss after each step."""
    w, history = 0.0, []
    for _ in range(steps):
        residual = xs * w - ys
        loss = float((residual ** 2).mean())
        grad = float((2 * residual * xs).mean())
        w -= lr * grad
        history.append((w, loss))
    return history


def test_manual_sgd_on_plain_leaf_tensors_hits_the_program_cache_and_matches_numpy():
    xs = np.linspace(0, 1, 20, dtype=np.float32).reshape(20, 1)
    ys = np.linspace(1, 3, 20, dtype=np.float32).reshape(20, 1)
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    w = torch.zeros(1, 1, requires_grad=True)
    expected = _numpy_sgd(xs.astype(np.float64), ys.astype(np.float64), 8)
    for step in range(8):
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= 0.1 * w.grad
            w.grad.zero_()
        if step == 3:
            misses = STATS["misses"]
        want_w, want_loss = expected[step]
        assert loss.item() == pytest.approx(want_loss, rel=1e-5)
        assert w.item() == pytest.approx(want_w, rel=1e-5)
        assert w.grad.item() == 0.0
    assert STATS["misses"] == misses


def test_import_fusegrad_provides_nn_and_optim():
    import subprocess
    import sys
    code = "import fusegrad as torch; torch.nn.Linear(1, 1); torch.optim.SGD"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

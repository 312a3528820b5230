"""Eager training without nn: plain leaf tensors updated in place, and the public namespace."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.realize import STATS


def test_manual_sgd_on_plain_leaf_tensors_hits_the_program_cache():
    x = torch.from_numpy(np.linspace(0, 1, 20, dtype=np.float32).reshape(20, 1))
    y = torch.from_numpy(np.linspace(1, 3, 20, dtype=np.float32).reshape(20, 1))
    w = torch.zeros(1, 1, requires_grad=True)
    for step in range(8):
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= 0.1 * w.grad
            w.grad.zero_()
        if step == 3:
            misses = STATS["misses"]
    assert STATS["misses"] == misses


def test_import_fusegrad_provides_nn_and_optim():
    import subprocess
    import sys
    code = "import fusegrad as torch; torch.nn.Linear(1, 1); torch.optim.SGD"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

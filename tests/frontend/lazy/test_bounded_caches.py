"""The in-memory program tables are bounded: many distinct shapes do not grow memory without
limit (eager programs here; compiled-function signatures in test_compile_guards.py)."""
from __future__ import annotations

import numpy as np

import fusegrad
from fusegrad import realize


def test_eager_program_table_keeps_its_bound_and_results_stay_right(monkeypatch):
    monkeypatch.setattr(realize, "MAX_PROGRAMS", 16)
    evicted = realize.STATS["evictions"]
    for n in range(1, 60):
        a = np.arange(n, dtype=np.float32)
        assert (fusegrad.tensor(a) * 3 + 1).sum().item() == float((a * 3 + 1).sum())
        assert len(realize._PROGRAMS) <= 16
    assert realize.STATS["evictions"] - evicted >= 59 - 16


def test_a_recently_used_program_survives_eviction(monkeypatch):
    monkeypatch.setattr(realize, "MAX_PROGRAMS", 4)
    keep = fusegrad.tensor([1.0, 2.0])
    for n in range(3, 12):
        (keep * 5).sum().item()                       # used again every round: stays
        (fusegrad.ones(n) * 7).sum().item()
    misses = realize.STATS["misses"]
    assert (keep * 5).sum().item() == 15.0
    assert realize.STATS["misses"] == misses


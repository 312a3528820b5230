"""Test-suite set-up shared by every test module.

Each test session uses its own compile-cache folder (FUSEGRAD_CACHE_DIR), so results never
depend on what earlier runs left on disk. No test depends on another's side effects: the
sweeps over many graphs (text round trip, PTX assembly) build their own corpus
(graph_corpus.py).
"""
from __future__ import annotations

import os
import tempfile

_CACHE = tempfile.mkdtemp(prefix="fusegrad-test-cache-")
os.environ["FUSEGRAD_CACHE_DIR"] = _CACHE

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def threads():
    """`threads(n)` sets the CPU worker count; the previous count comes back after the test."""
    from fusegrad import runtime
    before = runtime.get_num_threads() if runtime.num_threads_fixed() else None

    def use(n: int) -> None:
        runtime.set_num_threads(n)
        if runtime.get_num_threads() != n:
            pytest.skip("libgomp is not available: kernels run on one thread")

    yield use
    runtime.set_num_threads(before)

"""Test-suite set-up shared by every test module.

- Each test session uses its own compile-cache folder (FUSEGRAD_CACHE_DIR), so results never
  depend on what earlier runs left on disk.
- Every graph the CPU tests compile is recorded in RECORDED_GRAPHS, so that
  tests/test_zz_ptx_all_kernels.py can lower each one to PTX and assemble it with ptxas.
"""
from __future__ import annotations

import os
import tempfile

_CACHE = tempfile.mkdtemp(prefix="fusegrad-test-cache-")
os.environ["FUSEGRAD_CACHE_DIR"] = _CACHE

import fusegrad.compiler.pipeline as _pipeline  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

RECORDED_GRAPHS: list = []
_compile = _pipeline.compile


def _recording_compile(graph, target="cpu", **options):
    if target == "cpu":
        RECORDED_GRAPHS.append(graph)
    return _compile(graph, target, **options)


_pipeline.compile = _recording_compile
import fusegrad.compiler as _compiler  # noqa: E402

_compiler.compile = _recording_compile


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def threads():
    """`threads(n)` sets the CPU worker count; the previous count comes back after the test."""
    from fusegrad import runtime
    before = runtime.get_num_threads()

    def use(n: int) -> None:
        runtime.set_num_threads(n)
        if runtime.get_num_threads() != n:
            pytest.skip("libgomp is not available: kernels run on one thread")

    yield use
    runtime.set_num_threads(before)

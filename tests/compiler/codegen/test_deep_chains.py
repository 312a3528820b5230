"""Codegen of a fused chain thousands of ops deep: the emitter and the kernel planner walk it
with a stack, so neither needs (nor touches) Python's recursion limit, on the CPU and the GPU."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from fusegrad.compiler import compile
from fusegrad.compiler.ir import Graph, Node, float32, make
from fusegrad.runtime import load
from ptx_emulator import EmulatedProgram
from ptx_emulator import compiler as c_compiler

DEPTH = 1200            # ops in one fused loop, far past the limit set below
LIMIT = 300


def _chain_graph() -> Graph:
    """sum(((x + 0.001) * 1.0001 + 0.001) * 1.0001 ...): one elementwise chain into a reduction."""
    x = Node("input", (), {"name": "x"}, (257,), float32)
    v = x
    for i in range(DEPTH):
        c = make("const", attrs={"value": 1.0001 if i % 2 else 0.001}, shape=(), dtype=float32)
        c = make("expand", (c,), {"shape": (257,)})
        v = make("mul" if i % 2 else "add", (v, c))
    total = make("sum", (v,), {"axes": (0,)})
    return Graph("deep", [x], [], {"total": total, "last": v}, [])


def _reference(x: np.ndarray) -> np.ndarray:
    v = x.copy()
    for i in range(DEPTH):
        v = v * np.float32(1.0001) if i % 2 else v + np.float32(0.001)
    return v


@pytest.fixture
def low_recursion_limit():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(LIMIT)
    yield
    assert sys.getrecursionlimit() == LIMIT, "codegen changed the process-wide recursion limit"
    sys.setrecursionlimit(old)


def test_cpu_chain_deeper_than_the_recursion_limit(low_recursion_limit):
    x = np.random.default_rng(0).random(257, dtype=np.float32)
    program = compile(_chain_graph(), "cpu")
    assert program.num_kernels <= 2
    outputs = load(program)([x], [])
    want = _reference(x)
    np.testing.assert_allclose(outputs["last"], want, rtol=1e-5)
    np.testing.assert_allclose(outputs["total"], want.sum(dtype=np.float64), rtol=1e-5)


@pytest.mark.skipif(c_compiler() is None, reason="no C compiler for the PTX emulator")
def test_ptx_chain_deeper_than_the_recursion_limit(low_recursion_limit):
    x = np.random.default_rng(1).random(257, dtype=np.float32)
    program = compile(_chain_graph(), "cuda")
    (outputs, error) = EmulatedProgram(program)([x], [])
    assert not error.any(), "the program set its error word"
    want = _reference(x)
    np.testing.assert_allclose(outputs["last"], want, rtol=1e-5)
    np.testing.assert_allclose(outputs["total"], want.sum(dtype=np.float64), rtol=1e-5)

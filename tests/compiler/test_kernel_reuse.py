"""A kernel compiles once (compiler/codegen/cpu_program.py): identical kernels in two programs, or
in the unrolled steps of one compiled function, share one module, compiled once and cached by
its structural key (counted with `OBJECTS.stats`, the disk cache off); each program still
reports failed checks at its own source lines."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad
from fusegrad.compiler import compile
from fusegrad.compiler.codegen.cpu import emit_kernel_module
from fusegrad.compiler.codegen.kernel_key import kernel_key
from fusegrad.compiler.codegen.kernel_plan import has_output
from fusegrad.compiler.ir import Graph, Node, float32, int64, make
from fusegrad.compiler.pipeline import run_passes
from fusegrad.runtime import load
from fusegrad.runtime.cache import OBJECTS
from fusegrad.runtime.cpu import module_key


@pytest.fixture(autouse=True)
def memory_only(monkeypatch):
    """The disk cache off: a kernel this test forgets is compiled again, and counted."""
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", "")


def forget(*programs) -> None:
    for p in programs:
        for m in p.modules:
            OBJECTS.memory.pop(module_key(m), None)


def compiles_loading(program):
    """(objects compiled to load `program`, its executable)."""
    before = OBJECTS.stats["compiles"]
    exe = load(program)
    return OBJECTS.stats["compiles"] - before, exe


def inp(name, shape):
    return Node("input", (), {"name": name}, tuple(shape), float32)


def test_two_programs_with_an_identical_kernel_compile_it_once(rng):
    x, w = inp("x", (7, 19)), inp("w", (19, 5))
    a = make("add", [make("tanh", [x]), make("const", [], {"value": 1.0}, shape=(7, 19), dtype=float32)])
    first = compile(Graph("first", [x], [], {"a": a}))
    second = compile(Graph("second", [x, w], [], {"a": a, "b": make("matmul", [a, w])}))
    shared = {m.key for m in first.modules} & {m.key for m in second.modules}
    assert len(first.modules) == 1 and len(second.modules) == 2 and len(shared) == 1
    forget(first, second)
    xa, wa = rng.standard_normal((7, 19), dtype=np.float32), rng.standard_normal((19, 5), dtype=np.float32)
    compiled, exe = compiles_loading(first)
    assert compiled >= 1
    np.testing.assert_allclose(exe([xa], [])["a"], np.tanh(xa) + 1, rtol=1e-5)
    compiled, exe = compiles_loading(second)
    assert compiled == 1                                  # the matmul; the tanh kernel is cached
    out = exe([xa, wa], [])
    np.testing.assert_allclose(out["b"], (np.tanh(xa) + 1) @ wa, rtol=1e-5)


def unrolled(n: int):
    """(the compiled function of `n` residual tanh layers with one weight, that weight)."""
    w = fusegrad.tensor(np.linspace(-0.3, 0.3, 36, dtype=np.float32).reshape(6, 6))

    def layers(x):
        for _ in range(n):
            x = (x @ w).tanh() + x
        return x
    layers.__name__ = f"layers_x{n}"
    return fusegrad.compile(layers), w.numpy()


def layers_numpy(x, w, n):
    for _ in range(n):
        x = np.tanh(x @ w) + x
    return x


def test_an_unrolled_function_compiles_no_more_kernels_than_one_step(rng):
    xa = rng.standard_normal((9, 6), dtype=np.float32)
    x = fusegrad.tensor(xa)
    (one, wa), (eight, _) = unrolled(1), unrolled(8)
    programs = {f: f.lower(x).program for f in (one, eight)}
    forget(*programs.values())
    compiled = {}
    for f, n in ((eight, 8), (one, 1)):                   # the unrolled one first: it compiles the kernels
        before = OBJECTS.stats["compiles"]
        np.testing.assert_allclose(f(x).numpy(), layers_numpy(xa, wa, n), rtol=1e-5)
        compiled[n] = OBJECTS.stats["compiles"] - before
    assert len(programs[eight].kernels) >= 8 > len(programs[eight].modules) == len(programs[one].modules)
    assert compiled[8] <= len(programs[one].modules) + 1 and compiled[1] == 0     # + the runner, once


def test_equal_keys_emit_equal_modules():
    """The structural key holds all the kernel's code depends on: kernels of the unrolled steps
    that share a key emit the same module, each emitted afresh."""
    x = fusegrad.tensor(np.ones((9, 6), np.float32))
    _, sched = run_passes(unrolled(4)[0].lower(x).graph)
    emitted: dict = {}
    for k in filter(has_output, sched.kernels):
        keyed = kernel_key(sched, k)
        code = emit_kernel_module(sched, k, keyed)
        assert emitted.setdefault(keyed.key, (code.source, code.checks)) == (code.source, code.checks)
    assert len(emitted) < len(sched.kernels)


def test_a_reused_kernel_reports_its_own_line():
    x, index = inp("x", (6,)), Node("input", (), {"name": "i"}, (2,), int64)
    programs = [compile(Graph("g", [x, index], [], {"y": make("gather", [x, index], {"axis": 0}, loc=f"f.py:{line}")}))
                for line in (10, 20)]
    assert programs[0].modules == programs[1].modules
    for program, line in zip(programs, (10, 20)):
        with pytest.raises(IndexError, match=f"out of range.*at f.py:{line}"):
            load(program)([np.arange(6, dtype=np.float32), np.array([0, 9])], [])

"""Compile once, compile fast (issue 14): what each kernel module costs LLVM, with the results
unchanged. GEMMs share one micro-kernel module; a math function of a scalar inside a loop is
called out of line (hoisted), not inlined; tiny elementwise kernels take the light LLVM
pipeline; the unrolled steps of an optimizer share their kernels' modules."""
from __future__ import annotations

import re

import numpy as np
import pytest

import fusegrad
from fusegrad.compiler import compile
from fusegrad.compiler.codegen.cpu import LIGHT_MAX_ELEMENTS
from fusegrad.compiler.ir import Graph, Node, float32, make
from fusegrad.runtime import load
from fusegrad.runtime.cache import OBJECTS


@pytest.fixture(autouse=True)
def memory_only(monkeypatch):
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", "")


def inp(name, shape):
    return Node("input", (), {"name": name}, tuple(shape), float32)


def split_modules(program) -> tuple[list, list]:
    """(the program's kernel modules, its shared modules): a kernel module's functions are
    named after its key, and the plan calls them."""
    called = {phase.split(".")[0] for c in program.calls for phase in c.phases}
    kernels = [m for m in program.modules if f"fgk_{m.key[:32]}" in called]
    return kernels, [m for m in program.modules if m not in kernels]


def test_gemms_of_other_widths_share_one_micro_kernel(rng):
    """Two packed products whose C rows differ in length (256, 192) call one micro-kernel,
    in a module of its own that the program holds once; both products are right."""
    x, w1, w2 = inp("x", (64, 128)), inp("w1", (128, 256)), inp("w2", (128, 192))
    program = compile(Graph("two", [x, w1, w2], [], {"a": make("matmul", [x, w1]), "b": make("matmul", [x, w2])}))
    kernels, shared = split_modules(program)
    assert len(shared) == 1 and len(kernels) == 2
    symbol = shared[0].source.split('define void @"', 1)[1].split('"', 1)[0]
    assert all(f'declare void @"{symbol}"' in m.source for m in kernels)
    xa, w1a, w2a = (rng.standard_normal(s, dtype=np.float32) for s in ((64, 128), (128, 256), (128, 192)))
    out = load(program)([xa, w1a, w2a], [])
    np.testing.assert_allclose(out["a"], xa @ w1a, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["b"], xa @ w2a, rtol=1e-4, atol=1e-4)


def test_a_cached_micro_kernel_is_not_compiled_again():
    """A second program with a GEMM of another width compiles its kernel module only."""
    x, w1, w2 = inp("x", (32, 96)), inp("w1", (96, 160)), inp("w2", (96, 224))
    first = compile(Graph("first", [x, w1], [], {"a": make("matmul", [x, w1])}))
    second = compile(Graph("second", [x, w2], [], {"b": make("matmul", [x, w2])}))
    assert split_modules(first)[1] == split_modules(second)[1] != []
    load(first)
    before = OBJECTS.stats["compiles"]
    load(second)
    assert OBJECTS.stats["compiles"] - before == 1


def test_a_power_of_scalars_in_a_loop_is_called_out_of_line_with_the_same_bits(rng):
    """x * base ** t: the pow of two scalars, in the loop over x, is a call of the out-of-line
    function without vector variants, and its result has the bits of the inlined pow."""
    n = 1000
    x, base, t = inp("x", (n,)), inp("base", ()), inp("t", ())
    power = make("pow", [base, t])
    scaled = make("mul", [x, make("expand", [power], {"shape": (n,)})])
    looped = compile(Graph("looped", [x, base, t], [], {"y": scaled}))
    alone = compile(Graph("alone", [base, t], [], {"p": power}))
    (module,) = looped.modules
    assert '@"fg.pow.f32.outline"(' in module.source and "vector-function-abi-variant" not in module.source
    assert "outline" not in alone.modules[0].source
    xa = rng.standard_normal(n, dtype=np.float32)
    scalars = [np.array(0.9, np.float32), np.array(7.5, np.float32)]
    y = load(looped)([xa, *scalars], [])["y"]
    p = load(alone)(scalars, [])["p"]
    np.testing.assert_array_equal(y, xa * p)
    np.testing.assert_allclose(p, np.float32(0.9) ** np.float32(7.5), rtol=1e-6)


def test_tiny_elementwise_kernels_take_the_light_pipeline_and_reductions_do_not(rng):
    x = inp("x", (LIGHT_MAX_ELEMENTS,))
    program = compile(Graph("small", [x], [], {"y": make("tanh", [x]), "s": make("sum", [x], {"axes": (0,)})}))
    assert sorted(m.pipeline for m in program.modules) == ["O3", "light"]
    big = inp("x", (LIGHT_MAX_ELEMENTS + 1,))
    assert [m.pipeline for m in compile(Graph("big", [big], [], {"y": make("tanh", [big])})).modules] == ["O3"]
    xa = rng.standard_normal(LIGHT_MAX_ELEMENTS, dtype=np.float32)
    out = load(program)([xa], [])
    np.testing.assert_allclose(out["y"], np.tanh(xa), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["s"], xa.sum(), rtol=1e-4)


def adam_steps(n: int, calls: int = 1):
    """(the modules of `n` unrolled Adam steps of an MLP compiled, the loss of each of `calls` calls)."""
    rng = np.random.default_rng(0)
    fusegrad.manual_seed(0)
    model = fusegrad.nn.Sequential(fusegrad.nn.Linear(12, 16), fusegrad.nn.ReLU(), fusegrad.nn.Linear(16, 3))
    opt = fusegrad.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = fusegrad.nn.CrossEntropyLoss()
    x = fusegrad.tensor(rng.standard_normal((8, 12)).astype(np.float32))
    y = fusegrad.tensor(rng.integers(0, 3, 8))

    def steps(x, y):
        for _ in range(n):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        return loss
    step = fusegrad.compile(steps)
    losses = [step(x, y).item() for _ in range(calls)]
    return [m for v in step.traced_variants() for m in v.program.modules], losses


def test_unrolled_steps_have_no_two_keys_for_one_code():
    """The fuser lists the nodes and buffers of a kernel in an order that may differ between
    unrolled steps; the key numbers them by structure, so the steps between the first and the
    last add no modules (four steps need as many as two), and modules of equal code have one
    key. The losses are those of single steps."""
    four, unrolled = adam_steps(4)
    two, _ = adam_steps(2)
    assert len({m.key for m in four}) == len({m.key for m in two})
    texts = {m.key: re.sub(r"fgk_[0-9a-f]{32}", "fgk_", m.source) for m in four}
    assert len(set(texts.values())) == len(texts)
    _, single = adam_steps(1, calls=4)
    np.testing.assert_allclose(unrolled[0], single[3], rtol=1e-5)

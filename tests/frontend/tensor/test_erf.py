"""The `erf` primitive end to end: values against math.erf, special values, the VJP against
float64 finite differences, constant folding, the frontend spellings, and the GPU lowering
(assembled by ptxas, run on the CPU PTX emulator)."""
from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.compiler import compile
from fusegrad.compiler.ir import Graph, Node, float32, float64, make
from fusegrad.compiler.ir.ops import OPS
from fusegrad.compiler.passes.simplify import simplify
from helpers import gradcheck
from ptx_emulator import EmulatedProgram
from ptx_emulator import compiler as c_compiler

DTYPES = {"f32": (np.float32, torch.float32, float32), "f64": (np.float64, torch.float64, float64)}
SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e-30, -1e-30, 5.92, 5.93, 6.0, 1e30]
# the f64 reference (math.erf: the platform's libm, within an ulp) may be an ulp off itself
MAX_ULP = {"f32": 1, "f64": 2}


def reference(x: np.ndarray) -> np.ndarray:
    """math.erf per element in float64, rounded to x's dtype."""
    return np.array([math.erf(float(v)) for v in x.reshape(-1)], dtype=np.float64).astype(x.dtype)


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Representable values between got and want (nan == nan), for results of one sign or zero."""
    itype = np.int32 if got.dtype == np.float32 else np.int64
    mask = np.iinfo(itype).max

    def ordinal(v):
        bits = v.view(itype)
        return np.where(bits < 0, -(bits & mask), bits)
    both_nan = np.isnan(got) & np.isnan(want)
    return np.where(both_nan, 0, np.abs(ordinal(got) - ordinal(want)))


def inputs(np_dt) -> np.ndarray:
    grid = np.linspace(-6.0, 6.0, 24001)
    rng = np.random.default_rng(5)
    return np.concatenate([grid, rng.uniform(-6, 6, 20000), rng.uniform(-1.1, 1.1, 20000),
                           np.exp(rng.uniform(-60, 0, 4000)), SPECIAL]).astype(np_dt)


def check_values(got: np.ndarray, x: np.ndarray, max_ulp: int) -> None:
    want = reference(x)
    d = ulps(got, want)
    worst = int(np.argmax(d))
    assert d[worst] <= max_ulp, f"erf({x[worst]!r}) = {got[worst]!r}, want {want[worst]!r}"
    exact = ~np.isfinite(x) | (x == 0)
    assert np.array_equal(got[exact], want[exact], equal_nan=True)
    assert np.all(np.abs(got[~np.isnan(x)]) <= 1)
    assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))


@pytest.mark.parametrize("name", sorted(DTYPES))
def test_values_match_math_erf_over_minus_6_to_6_and_special_values(name):
    np_dt, dt, _ = DTYPES[name]
    x = inputs(np_dt)
    check_values(torch.erf(torch.tensor(x, dtype=dt)).numpy(), x, MAX_ULP[name])


def test_special_values_exactly():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 7.0, -7.0], dtype=np.float64)
    got = torch.tensor(x).erf().numpy()
    np.testing.assert_array_equal(got, [0.0, -0.0, 1.0, -1.0, np.nan, 1.0, -1.0])
    assert np.signbit(got[1]) and not np.signbit(got[0])


def test_method_in_place_and_integer_promotion():
    a = np.array([-2.0, -0.5, 0.0, 0.25, 3.0], dtype=np.float32)
    t = torch.tensor(a)
    np.testing.assert_array_equal(t.erf().numpy(), torch.erf(t).numpy())
    t.erf_()
    np.testing.assert_array_equal(t.numpy(), reference(a))
    i = torch.erf(torch.tensor([0, 1, -2]))
    assert i.dtype == torch.get_default_dtype()
    np.testing.assert_allclose(i.numpy(), [0.0, math.erf(1), math.erf(-2)], rtol=1e-7)


def test_gradient_against_finite_differences():
    x = np.random.default_rng(3).uniform(-2.5, 2.5, (3, 4))
    gradcheck(torch.erf, x)


def test_gradient_formula_and_grad_fn_name():
    x = torch.tensor([-1.5, 0.0, 0.7, 4.0], dtype=torch.float64, requires_grad=True)
    y = torch.erf(x)
    assert y.grad_fn.name() == "ErfBackward0" == OPS["erf"].grad_name
    y.sum().backward()
    want = [2 / math.sqrt(math.pi) * math.exp(-v * v) for v in (-1.5, 0.0, 0.7, 4.0)]
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-14)


def test_second_derivative():
    x = torch.tensor([0.3, -1.2], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(torch.erf(x).sum(), [x], create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), [x])
    want = [-2 * v * 2 / math.sqrt(math.pi) * math.exp(-v * v) for v in (0.3, -1.2)]
    np.testing.assert_allclose(gg.numpy(), want, rtol=1e-13)


def test_erf_of_a_constant_folds_to_math_erf():
    c = make("const", attrs={"value": 0.5}, shape=(), dtype=float64)
    g = simplify(Graph("t", [], [], {"y": make("erf", [c])}, []))
    y = g.outputs["y"]
    assert y.op == "const" and y.attrs["value"] == math.erf(0.5)


def test_erf_is_float_only():
    i = Node("input", (), {"name": "i"}, (3,), torch.int64)
    with pytest.raises(Exception, match="floating-point"):
        make("erf", [i])


def test_erf_inside_a_compiled_function():
    f = torch.compile(lambda x: torch.erf(x) * 2)
    x = np.linspace(-3, 3, 101).astype(np.float32)
    np.testing.assert_array_equal(f(torch.tensor(x)).numpy(), reference(x) * 2)


# ---------------------------------------------------------------- GPU lowering

def _program(dt, n):
    x = Node("input", (), {"name": "x"}, (n,), dt)
    return compile(Graph("erf", [x], [], {"y": make("erf", [x])}, []), "cuda")


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", sorted(DTYPES))
def test_ptx_assembles(name, arch, tmp_path):
    x = Node("input", (), {"name": "x"}, (1000,), DTYPES[name][2])
    prog = compile(Graph("erf", [x], [], {"y": make("erf", [x])}, []), "cuda", arch=arch)
    assert ".extern" not in prog.source and "call" not in prog.source   # no libm: inlined straight-line code
    path = tmp_path / "erf.ptx"
    path.write_text(prog.source)
    done = subprocess.run(["ptxas", f"-arch={arch}", str(path), "-o", "/dev/null"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(c_compiler() is None, reason="no C compiler for the PTX emulator")
@pytest.mark.parametrize("name", sorted(DTYPES))
def test_gpu_kernel_on_the_emulator(name):
    np_dt, _, dt = DTYPES[name]
    x = np.concatenate([np.linspace(-6, 6, 4001), SPECIAL]).astype(np_dt)
    out, error = EmulatedProgram(_program(dt, x.size))([x], [])
    assert not error.any()
    check_values(out["y"], x, MAX_ULP[name])

"""The `window` primitive (sliding windows of the trailing dims, a view): the shape rule and
its errors, values against numpy's sliding_window_view (plain, over padded and permuted
inputs, fused into consumers), the VJP against float64 finite differences, the view algebra,
the IR text round trip, and the GPU lowering (assembled by ptxas, run on the PTX emulator)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fusegrad
from fusegrad import ops
from fusegrad.compiler import compile
from fusegrad.compiler.ir import (
    Graph,
    Node,
    ShapeError,
    float32,
    float64,
    make,
    parse_graph,
    print_graph,
    structurally_equal,
)
from fusegrad.compiler.passes.fuse import fuse
from fusegrad.compiler.view import ViewStack
from helpers import gradcheck
from ptx_emulator import EmulatedProgram
from ptx_emulator import compiler as c_compiler

# (input shape, kernel, strides, dilations)
CASES = [
    ((2, 3, 7, 9), (3, 2), (2, 3), (2, 1)),
    ((1, 1, 5, 5), (1, 1), (1, 1), (1, 1)),
    ((4, 10), (3,), (1,), (1,)),
    ((2, 6, 8), (2, 2), (3, 3), (1, 1)),          # stride > kernel: gaps
    ((3, 4, 5), (4, 5), (1, 1), (1, 1)),          # one window covering everything
    ((2, 9, 9), (3, 3), (2, 2), (3, 2)),
    ((2, 3, 4, 5), (2, 2, 3), (1, 2, 1), (1, 1, 2)),   # three windowed dims
]


def reference(x: np.ndarray, kernel, strides, dilations) -> np.ndarray:
    """x's windows by numpy: sliding_window_view over the dilated span, then every s-th
    window and every d-th element of it."""
    k = len(kernel)
    axes = tuple(range(x.ndim - k, x.ndim))
    span = tuple(d * (kk - 1) + 1 for kk, d in zip(kernel, dilations))
    w = sliding_window_view(x, span, axis=axes)
    lead = (slice(None),) * (x.ndim - k)
    return w[lead + tuple(slice(None, None, s) for s in strides) + tuple(slice(None, None, d) for d in dilations)]


def window(t, kernel, strides, dilations):
    return ops.prim("window", [t], {"kernel": tuple(kernel), "strides": tuple(strides),
                                    "dilations": tuple(dilations)})


def inp(shape, dt=float32, name="x"):
    return Node("input", (), {"name": name}, tuple(shape), dt)


# ---------------------------------------------------------------- the shape rule

@pytest.mark.parametrize("shape,kernel,strides,dilations", CASES)
def test_shape_rule(shape, kernel, strides, dilations):
    x = np.zeros(shape)
    n = make("window", [inp(shape)], {"kernel": kernel, "strides": strides, "dilations": dilations})
    assert n.shape == reference(x, kernel, strides, dilations).shape


@pytest.mark.parametrize("attrs,match", [
    ({"kernel": (3, 3), "strides": (1,), "dilations": (1, 1)}, "one kernel size, stride and dilation"),
    ({"kernel": (1, 1, 1, 1, 1), "strides": (1,) * 5, "dilations": (1,) * 5}, "one kernel size"),
    ({"kernel": (), "strides": (), "dilations": ()}, "one kernel size"),
    ({"kernel": (0, 3), "strides": (1, 1), "dilations": (1, 1)}, "kernel size must be positive"),
    ({"kernel": (3, 3), "strides": (1, 0), "dilations": (1, 1)}, "stride must be positive"),
    ({"kernel": (3, 3), "strides": (1, 1), "dilations": (0, 1)}, "dilation must be positive"),
    ({"kernel": (6, 3), "strides": (1, 1), "dilations": (1, 1)}, "Kernel size can't be greater"),
    ({"kernel": (3, 3), "strides": (1, 1), "dilations": (3, 1)}, "spans 7 elements, the dim has 5"),
])
def test_shape_rule_errors_name_the_op_and_the_operand(attrs, match):
    with pytest.raises(ShapeError, match=match) as e:
        make("window", [inp((2, 3, 5, 5))], attrs, loc="conv.py:3")
    assert "window" in str(e.value) and "f32[2,3,5,5]" in str(e.value) and "conv.py:3" in str(e.value)


def test_dtype_is_kept_and_grad_fn_name_is_unfold():
    n = make("window", [inp((5, 5), fusegrad.int32)], {"kernel": (2,), "strides": (1,), "dilations": (1,)})
    assert n.dtype is fusegrad.int32 and n.shape == (5, 4, 2)
    t = fusegrad.ones(6, requires_grad=True)
    assert window(t, (2,), (2,), (1,)).grad_fn.name() == "UnfoldBackward0"


# ---------------------------------------------------------------- values

@pytest.mark.parametrize("shape,kernel,strides,dilations", CASES)
def test_values_match_sliding_window_view(shape, kernel, strides, dilations):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got = window(fusegrad.tensor(x), kernel, strides, dilations).numpy()
    np.testing.assert_array_equal(got, reference(x, kernel, strides, dilations))


def test_window_of_padded_and_permuted_inputs():
    """A padded input masks windowed dims (a view stack), a permuted one is strided."""
    x = np.random.default_rng(2).standard_normal((2, 5, 6)).astype(np.float32)
    t = fusegrad.tensor(x)
    padded = ops.prim("pad", [t], {"low": (0, 2, 1), "high": (0, 1, 3)})
    got = window(padded, (3, 2), (2, 1), (1, 2)).numpy()
    want = reference(np.pad(x, ((0, 0), (2, 1), (1, 3))), (3, 2), (2, 1), (1, 2))
    np.testing.assert_array_equal(got, want)
    got = window(t.permute(2, 0, 1), (2, 3), (1, 1), (1, 1)).numpy()
    np.testing.assert_array_equal(got, reference(x.transpose(2, 0, 1), (2, 3), (1, 1), (1, 1)))


def test_reduction_over_windows_fuses_into_one_kernel():
    """max over 2x2 windows of relu(x): one kernel, no buffer for the windows."""
    x = inp((2, 3, 8, 8))
    w = make("window", [make("max", [x, make("const", attrs={"value": 0.0}, shape=(2, 3, 8, 8), dtype=float32)])],
             {"kernel": (2, 2), "strides": (2, 2), "dilations": (1, 1)})
    y = make("reduce_max", [w], {"axes": (4, 5)})
    fused = fuse(Graph("pool", [x], [], {"y": y}, []))
    assert len(fused.kernels) == 1 and fused.kernels[0].kind == "reduce"
    a = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    got = window(fusegrad.tensor(a).relu(), (2, 2), (2, 2), (1, 1)).amax(dim=(4, 5)).numpy()
    np.testing.assert_array_equal(got, np.maximum(a, 0).reshape(2, 3, 4, 2, 4, 2).max(axis=(3, 5)))


def test_window_of_a_constant_folds_and_compiled_function_matches_eager():
    f = fusegrad.compile(lambda t: window(t * 2, (3,), (2,), (1,)).sum(dim=-1))
    x = np.arange(11, dtype=np.float32)
    np.testing.assert_array_equal(f(fusegrad.tensor(x)).numpy(), reference(2 * x, (3,), (2,), (1,)).sum(-1))
    from fusegrad.compiler.passes.simplify import simplify
    c = make("const", attrs={"value": 1.5}, shape=(4, 4), dtype=float32)
    g = simplify(Graph("c", [], [], {"y": make("window", [c], {"kernel": (2,), "strides": (1,), "dilations": (1,)})},
                       []))
    assert g.outputs["y"].op == "const" and g.outputs["y"].shape == (4, 3, 2)


# ---------------------------------------------------------------- view algebra

def test_view_algebra():
    st = ViewStack.contiguous((2, 7, 9)).window((3, 2), (2, 3), (2, 1))
    assert st.single is not None and st.shape == (2, 2, 3, 3, 2)
    assert st.single.strides == (63, 18, 3, 18, 1)
    padded = ViewStack.contiguous((2, 7, 9)).pad((0, 1, 1), (0, 1, 1)).window((3, 3), (1, 1), (1, 1))
    assert len(padded.views) == 2 and padded.shape == (2, 7, 9, 3, 3)
    # a mask on a dim that is not windowed stays a single view
    lead = ViewStack.contiguous((3, 8)).pad((1, 0), (1, 0)).window((2,), (2,), (1,))
    assert lead.single is not None and lead.single.mask == ((1, 4), (0, 4), (0, 2))
    x = np.arange(2 * 7 * 9.0).reshape(2, 7, 9)
    from test_view import _evaluate
    np.testing.assert_array_equal(_evaluate(st, x), reference(x, (3, 2), (2, 3), (2, 1)))
    np.testing.assert_array_equal(_evaluate(padded, x), reference(np.pad(x, ((0, 0), (1, 1), (1, 1))), (3, 3),
                                                                  (1, 1), (1, 1)))


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("shape,kernel,strides,dilations", CASES[:6])
def test_vjp_against_finite_differences(shape, kernel, strides, dilations):
    x = np.random.default_rng(4).standard_normal(shape)
    gradcheck(lambda t: window(t, kernel, strides, dilations), x)


def test_vjp_counts_every_read_of_an_element():
    """Overlapping windows read an element several times: its gradient is that count."""
    t = fusegrad.ones(2, 6, dtype=fusegrad.float64, requires_grad=True)
    window(t, (3,), (1,), (1,)).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [[1, 2, 3, 3, 2, 1]] * 2)
    t = fusegrad.ones(7, dtype=fusegrad.float64, requires_grad=True)
    window(t, (2,), (3,), (2,)).sum().backward()      # reads 0,2 and 3,5: 1, 4 and 6 never
    np.testing.assert_array_equal(t.grad.numpy(), [1, 0, 1, 1, 0, 1, 0])


def test_second_order_gradient_through_window():
    x = np.random.default_rng(5).standard_normal((3, 6))
    t = fusegrad.tensor(x, requires_grad=True)
    y = (window(t, (2,), (1,), (1,)) ** 2).sum()
    (g,) = fusegrad.autograd.grad(y, [t], create_graph=True)
    (gg,) = fusegrad.autograd.grad(g.sum(), [t])
    np.testing.assert_allclose(gg.numpy(), np.array([[2, 4, 4, 4, 4, 2]] * 3, dtype=float))


# ---------------------------------------------------------------- IR text

def test_ir_text_round_trip():
    x = inp((2, 3, 7, 9))
    w = make("window", [x], {"kernel": (3, 2), "strides": (2, 3), "dilations": (2, 1)})
    g = Graph("w", [x], [], {"y": make("sum", [w], {"axes": (4, 5)})}, [])
    text = print_graph(g)
    assert "f32[2,3,2,3,3,2] = window %x, kernel=[3,2], strides=[2,3], dilations=[2,1]" in text
    back = parse_graph(text)
    assert print_graph(back) == text and structurally_equal(back, g)
    bad = text.replace("f32[2,3,2,3,3,2]", "f32[2,3,3,3,3,2]")
    with pytest.raises(ShapeError):
        parse_graph(bad)


# ---------------------------------------------------------------- GPU lowering

def _gpu_program(dt, arch="sm_80"):
    x = inp((2, 3, 9, 10), dt)
    padded = make("pad", [x], {"low": (0, 0, 1, 1), "high": (0, 0, 1, 1)})
    w = make("window", [padded], {"kernel": (3, 3), "strides": (2, 1), "dilations": (1, 2)})
    outputs = {"win": make("mul", [w, w]), "pool": make("reduce_max", [w], {"axes": (4, 5)})}
    return compile(Graph("window", [x], [], outputs, []), "cuda", arch=arch)


def _gpu_reference(x):
    w = reference(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), (2, 1), (1, 2))
    return {"win": w * w, "pool": w.max(axis=(4, 5), keepdims=True)}


@pytest.mark.ptxas
@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas (CUDA toolkit) not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("dt", [float32, float64], ids=["f32", "f64"])
def test_ptx_assembles(dt, arch, tmp_path):
    prog = _gpu_program(dt, arch)
    path = tmp_path / "window.ptx"
    path.write_text(prog.source)
    done = subprocess.run(["ptxas", f"-arch={arch}", str(path), "-o", "/dev/null"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(c_compiler() is None, reason="no C compiler for the PTX emulator")
@pytest.mark.parametrize("dt,np_dt", [(float32, np.float32), (float64, np.float64)], ids=["f32", "f64"])
def test_gpu_kernels_on_the_emulator(dt, np_dt):
    x = np.random.default_rng(6).standard_normal((2, 3, 9, 10)).astype(np_dt)
    out, error = EmulatedProgram(_gpu_program(dt))([x], [])
    assert not error.any()
    for name, want in _gpu_reference(x).items():
        np.testing.assert_array_equal(out[name], want.astype(np_dt), err_msg=name)

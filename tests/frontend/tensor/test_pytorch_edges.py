"""Edge cases where fusegrad gave other values than PyTorch (issue 11): writes to empty
slices, fmod, round half to even, logsumexp of infinities, the gradient of prod at zeros,
argmax of nothing, reductions over dim=(), from_numpy of strided and read-only arrays,
float -> int casts of NaN/inf/out-of-range values (CPU and PTX), floor division by inf/0.

Expected values are PyTorch 2.13's (CPU, x86), recorded as literals."""
import math
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from support import check

import fusegrad as torch
from helpers import gradcheck

NAN, INF = math.nan, math.inf


def same(t, expected):
    """Values equal to `expected`, NaN matching NaN and the sign of zero counting."""
    got = np.asarray(t.detach().numpy() if hasattr(t, "detach") else t, dtype=np.float64)
    want = np.asarray(expected, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)
    zeros = want == 0
    assert (np.signbit(got[zeros]) == np.signbit(want[zeros])).all(), (got, want)


# ---------------------------------------------------------------- in-place writes to empty slices

def _zero_tail(x):
    x[1:].zero_()


def _set_tail(x):
    x[1:] = 3.0


def _fill_head(x):
    x[:0].fill_(7.0)


def _zero_far(x):
    x[5:].zero_()


def _zero_columns(x):
    x[:, 1:].zero_()


@pytest.mark.parametrize("make, write, expected", [
    (lambda: torch.ones(1), _zero_tail, [1.0]),
    (lambda: torch.zeros(1), _set_tail, [0.0]),
    (lambda: torch.ones(1), _fill_head, [1.0]),
    (lambda: torch.ones(3), _zero_far, [1.0, 1.0, 1.0]),
    (lambda: torch.ones(1, 1), _zero_columns, [[1.0]]),
], ids=["zero_ 1:", "setitem 1:", "fill_ :0", "zero_ 5:", "zero_ :,1:"])
def test_writing_an_empty_slice_changes_nothing(make, write, expected):
    x = make()
    write(x)
    check(x, expected, torch.float32)


# ---------------------------------------------------------------- fmod

def test_fmod_keeps_the_sign_of_the_dividend():
    x = torch.tensor([-1.3, -0.5, 0.3])
    expected = [-0.2999999523162842, -0.5, 0.30000001192092896]
    check(x.fmod(1), expected, torch.float32)
    check(torch.fmod(x, -1), expected, torch.float32)
    check(torch.tensor([-7.5, 7.5]).fmod(torch.tensor([2.0, -2.0])), [-1.5, 1.5], torch.float32)
    check(torch.tensor([-1.3, -0.5, 0.3], dtype=torch.float64).fmod(1), [-0.30000000000000004, -0.5, 0.3],
          torch.float64)


def test_fmod_of_integers_and_in_place():
    check(torch.tensor([-7, 7, -3, 5]).fmod(3), [-1, 1, 0, 2], torch.int64)
    check(torch.tensor([-7, 7, -3, 5], dtype=torch.int32).fmod(-3), [-1, 1, 0, 2], torch.int32)
    same(torch.tensor([5, -5]).fmod(2.5), [0.0, -0.0])
    x = torch.tensor([-1.3, -0.5, 0.3])
    x.fmod_(1)
    check(x, [-0.2999999523162842, -0.5, 0.30000001192092896], torch.float32)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        torch.tensor([5, -5]).fmod(0).tolist()


def test_fmod_gradient():
    a = torch.tensor([-1.3, -0.5, 0.3, 2.5], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.0, 0.7, -0.2, 2.0], dtype=torch.float64, requires_grad=True)
    torch.fmod(a, b).sum().backward()
    assert a.grad.tolist() == [1.0, 1.0, 1.0, 1.0]           # PyTorch's values
    assert b.grad.tolist() == [1.0, 0.0, 1.0, -1.0]
    assert torch.fmod(a, b).grad_fn.name() == "FmodBackward1"
    gradcheck(torch.fmod, np.array([-1.3, -0.5, 0.3, 2.5]), np.array([1.0, 0.7, -0.2, 2.0]))


# ---------------------------------------------------------------- round

def test_round_is_half_to_even():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.6, -2.6])
    same(torch.round(x), [0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 0.0, 3.0, -3.0])
    same(x.round(), [0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 0.0, 3.0, -3.0])
    same(torch.tensor([INF, -INF, NAN]).round(), [INF, -INF, NAN])


def test_round_with_decimals():
    x = torch.tensor([1.2345, 2.5, -0.125, 0.125, 1234.5])
    check(torch.round(x, decimals=2), [1.2300000190734863, 2.5, -0.11999999731779099, 0.11999999731779099, 1234.5],
          torch.float32)
    check(torch.tensor([1250.0, 1350.0, -1450.0]).round(decimals=-2), [1200.0, 1400.0, -1400.0], torch.float32)
    check(torch.tensor([0.125, 0.375, 2.675], dtype=torch.float64).round(decimals=2), [0.12, 0.38, 2.68],
          torch.float64)


def test_round_gradient_is_zero():
    x = torch.tensor([2.5, 0.3, -1.5], requires_grad=True)
    torch.round(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------- logsumexp

@pytest.mark.parametrize("values, expected, grad", [
    ([-INF, -INF], -INF, [NAN, NAN]),
    ([INF, 1.0], INF, [NAN, 0.0]),
    ([-INF, 1.0], 1.0, [0.0, 1.0]),
])
def test_logsumexp_of_infinities(values, expected, grad):
    x = torch.tensor(values, requires_grad=True)
    y = x.logsumexp(0)
    same(y, expected)
    y.backward()
    same(x.grad, grad)


# ---------------------------------------------------------------- gradient of prod at zeros

@pytest.mark.parametrize("values, grad", [
    ([0.0, 2.0, 3.0], [6.0, 0.0, 0.0]),
    ([0.0, 0.0, 3.0], [0.0, 0.0, 0.0]),
    ([1.0, 2.0, 3.0], [6.0, 3.0, 2.0]),
])
def test_prod_gradient_at_zeros(values, grad):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    x.prod().backward()
    assert x.grad.tolist() == grad
    gradcheck(torch.prod, np.array(values))


ROWS = [[0.0, 2.0, 3.0], [4.0, 0.0, 0.0], [1.0, 2.0, 3.0]]


@pytest.mark.parametrize("dim, grad", [
    (1, [[6.0, 0.0, 0.0], [0.0, 0.0, 0.0], [6.0, 3.0, 2.0]]),
    (0, [[4.0, 0.0, 0.0], [0.0, 4.0, 9.0], [0.0, 0.0, 0.0]]),
])
def test_prod_gradient_at_zeros_along_a_dim(dim, grad):
    x = torch.tensor(ROWS, dtype=torch.float64, requires_grad=True)
    x.prod(dim).sum().backward()
    assert x.grad.tolist() == grad
    gradcheck(lambda t: t.prod(dim), np.array(ROWS))


# ---------------------------------------------------------------- argmax / argmin of nothing

@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0)])
def test_arg_extreme_of_an_empty_tensor_raises(name, shape):
    with pytest.raises(IndexError, match=r"Expected reduction dim to be specified for input.numel\(\) == 0\."):
        getattr(torch.zeros(*shape), name)()


# ---------------------------------------------------------------- reductions over dim=()

def test_an_empty_dim_list_reduces_over_every_dim():
    x = torch.ones(2, 3)
    check(x.sum(()), 6.0, torch.float32)
    check(torch.sum(x, []), 6.0, torch.float32)
    check(x.mean(()), 1.0, torch.float32)
    check(x.mean([]), 1.0, torch.float32)
    assert tuple(x.sum((), keepdim=True).shape) == (1, 1)
    y = torch.tensor([[1.0, 5.0], [3.0, 2.0]])
    check(y.amax(()), 5.0, torch.float32)
    check(y.amin([]), 1.0, torch.float32)
    check(torch.zeros(2, 2).logsumexp((), keepdim=True), [[1.3862943649291992]], torch.float32)
    check(torch.ones(2, 3, dtype=torch.bool).all(()), [[True] * 3] * 2, torch.bool)   # all/any: no reduction


# ---------------------------------------------------------------- from_numpy

def _base(*shape):
    return np.arange(math.prod(shape), dtype=np.float64).reshape(shape)


@pytest.mark.parametrize("make", [
    lambda: _base(6)[::2],
    lambda: _base(10)[::3],
    lambda: _base(3, 4)[:, 1::2],
    lambda: _base(3, 4)[1:, 1:3],
    lambda: _base(4, 5, 6)[:, ::2, ::3],
    lambda: _base(4, 5, 6)[1:3, ::2, 1::3].transpose(2, 0, 1),
    lambda: _base(5, 6).T[::2],
    lambda: _base(3, 1, 4)[:, :, ::2],
    lambda: np.arange(12, dtype=np.int32)[1::2],
    lambda: np.lib.stride_tricks.as_strided(_base(12)[1:], shape=(3, 2), strides=(32, 16)),
], ids=["1d", "1d tail", "columns", "block", "3d", "3d transposed", "transposed", "size-1 dim", "int32",
        "as_strided"])
def test_from_numpy_shares_the_memory_of_a_strided_array(make):
    a = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # no "copied" warning: the memory is shared
        t = torch.from_numpy(a)
    assert tuple(t.shape) == a.shape
    np.testing.assert_array_equal(t.numpy(), a)
    a.flat[0] += 100                          # numpy -> tensor
    assert t.reshape(-1)[0].item() == a.flat[0]
    t.mul_(2)                                 # tensor -> numpy
    np.testing.assert_array_equal(t.numpy(), a)
    check(t, a, t.dtype)


def test_from_numpy_writes_through_views_land_in_the_array():
    b = np.zeros((4, 6))
    t = torch.from_numpy(b[1:, ::2])
    t[0, 1] = 5
    t[:, 2] += 1
    t[1:].fill_(7)
    expected = np.zeros((4, 6))
    expected[1, 2], expected[1, 4] = 5, 1
    expected[2:, ::2] = 7
    np.testing.assert_array_equal(b, expected)


def test_from_numpy_refuses_negative_strides():
    with pytest.raises(ValueError, match="At least one stride in the given numpy array is negative"):
        torch.from_numpy(np.arange(6.0)[::-1])


def test_from_numpy_of_a_read_only_array_warns_and_a_write_copies():
    r = np.arange(4.0)
    r.flags.writeable = False
    with pytest.warns(UserWarning, match="The given NumPy array is not writable"):
        t = torch.from_numpy(r)
    t.add_(1)
    check(t, [1.0, 2.0, 3.0, 4.0], torch.float64)
    np.testing.assert_array_equal(r, [0.0, 1.0, 2.0, 3.0])


def test_a_read_only_view_of_writable_memory_is_copied_on_write_too():
    base = np.arange(6.0)
    a = base[::2]
    a.flags.writeable = False
    with pytest.warns(UserWarning, match="not writable"):
        t = torch.from_numpy(a)
    base[2] = 10.0                            # shared until the first write
    check(t, [0.0, 10.0, 4.0], torch.float64)
    t.add_(1)
    check(t, [1.0, 11.0, 5.0], torch.float64)
    np.testing.assert_array_equal(base, [0.0, 1.0, 10.0, 3.0, 4.0, 5.0])


def test_writing_through_a_read_only_memory_map_does_not_crash(tmp_path):
    """Before: SIGSEGV (the kernel wrote into pages mapped read-only). In a child process, so a
    crash fails this test instead of ending the session."""
    path = tmp_path / "m.bin"
    np.arange(4.0).tofile(path)
    script = textwrap.dedent(f"""
        import warnings
        import numpy as np
        import fusegrad as torch
        m = np.memmap({str(path)!r}, dtype=np.float64, mode="r")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, s = torch.from_numpy(m), torch.from_numpy(m[::2])
        t.mul_(3)
        s.add_(1)
        print(t.tolist(), s.tolist(), m.tolist())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == "[0.0, 3.0, 6.0, 9.0] [1.0, 3.0] [0.0, 1.0, 2.0, 3.0]".split()


# ---------------------------------------------------------------- float -> int casts

CAST_INPUTS = [NAN, INF, -INF, 3e9, -3e9, 1e20, -1e20, 300.0, -1.0, 255.9, 256.0, -129.0, 127.9, 2.5, -2.5,
               4294967296.0, 9.3e18, -9.3e18, 2147483647.0, 2147483648.0, -2147483649.0]
I64_MIN, I32_MIN = -9223372036854775808, -2147483648
CASTS = {   # PyTorch 2.13 on x86
    ("float32", "int64"): [I64_MIN, I64_MIN, I64_MIN, 3000000000, -3000000000, I64_MIN, I64_MIN, 300, -1, 255, 256,
                           -129, 127, 2, -2, 4294967296, I64_MIN, I64_MIN, 2147483648, 2147483648, -2147483648],
    ("float64", "int64"): [I64_MIN, I64_MIN, I64_MIN, 3000000000, -3000000000, I64_MIN, I64_MIN, 300, -1, 255, 256,
                           -129, 127, 2, -2, 4294967296, I64_MIN, I64_MIN, 2147483647, 2147483648, -2147483649],
    ("float32", "int32"): [I32_MIN] * 7 + [300, -1, 255, 256, -129, 127, 2, -2] + [I32_MIN] * 6,
    ("float64", "int32"): [I32_MIN] * 7 + [300, -1, 255, 256, -129, 127, 2, -2] + [I32_MIN] * 3
                          + [2147483647, I32_MIN, I32_MIN],
    ("float32", "uint8"): [0] * 7 + [44, 255, 255, 0, 127, 127, 2, 254] + [0] * 6,
    ("float64", "uint8"): [0] * 7 + [44, 255, 255, 0, 127, 127, 2, 254] + [0] * 3 + [255, 0, 255],
    ("float32", "bool"): [True] * 21,
    ("float64", "bool"): [True] * 21,
}


@pytest.mark.parametrize("src, dst", sorted(CASTS), ids=[f"{s}->{d}" for s, d in sorted(CASTS)])
def test_float_to_int_cast_of_nan_inf_and_out_of_range(src, dst):
    x = torch.tensor(CAST_INPUTS, dtype=getattr(torch, src))
    assert x.to(getattr(torch, dst)).tolist() == CASTS[src, dst]


@pytest.mark.parametrize("value, expected", [(NAN, I32_MIN), (INF, I32_MIN), (-1e20, I32_MIN), (7.9, 7)])
def test_cast_of_a_constant_folds_to_what_the_kernel_computes(value, expected):
    assert (torch.zeros(2) + value).to(torch.int32).tolist() == [expected, expected]


# ---------------------------------------------------------------- floor division of floats

def test_float_floor_division_by_inf_nan_and_zero():
    a = torch.tensor([INF, -INF, NAN, 5.0, -5.0, 0.0, 5.0, -5.0, 5.0, -5.0, 0.0, 1.0, -1.0, 7.0, -7.0])
    b = torch.tensor([2.0, 2.0, 2.0, 0.0, INF, 0.0, INF, -INF, -INF, INF, -2.0, 0.1, 0.1, 2.0, 2.0])
    same(a // b, [NAN, NAN, NAN, INF, -1.0, NAN, 0.0, 0.0, -1.0, -1.0, -0.0, 9.0, -10.0, 3.0, -4.0])
    same(torch.floor_divide(torch.tensor([INF]), 2), [NAN])
    same(torch.tensor([INF, 1.0, -1.0]) % torch.tensor([2.0, 0.1, 0.1]),
         [NAN, 0.09999998658895493, 1.4901161193847656e-08])


# ---------------------------------------------------------------- the same on the GPU lowering

def _ptx_program():
    from fusegrad.compiler import compile
    from fusegrad.compiler.ir import Graph, Node, float32, float64, int32, int64, make, uint8
    x, y = (Node("input", (), {"name": n}, (10,), float32) for n in "xy")
    z, w = (Node("input", (), {"name": n}, (10,), float64) for n in "zw")
    outputs = {"fmod": make("fmod", [x, y]), "fmod64": make("fmod", [z, w]), "round": make("round", [x]),
               "i32": make("cast", [x], shape=(10,), dtype=int32), "i64": make("cast", [z], shape=(10,), dtype=int64),
               "u8": make("cast", [z], shape=(10,), dtype=uint8)}
    return compile(Graph("edges", [x, y, z, w], [], outputs, []), "cuda", arch="sm_80")


@pytest.mark.skipif(__import__("shutil").which("ptxas") is None, reason="ptxas not installed")
def test_ptx_of_fmod_round_and_casts_assembles(tmp_path):
    path = tmp_path / "edges.ptx"
    path.write_text(_ptx_program().source)
    done = subprocess.run(["ptxas", "-arch=sm_90", str(path), "-o", "/dev/null"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_ptx_fmod_round_and_casts_compute_pytorchs_values():
    """fmod is exact on the GPU too. LLVM lowers `frem` for NVPTX to x - trunc(x/y)*y (1e10 fmod 3
    is then 0 or 256, not 1) while the emulator would run it as the host's exact fmod, so the
    program must not use frem at all."""
    from ptx_emulator import EmulatedProgram, compiler
    if compiler() is None:
        pytest.skip("no C compiler for the PTX emulator")
    assert " frem " not in _ptx_program().stages["llvm"]
    x = np.array([-1.3, -0.5, 2.5, NAN, INF, -INF, 3e9, 0.5, 1e10, 1.0], np.float32)
    y = np.array([1.0, 0.7, -0.2, 1.0, 2.0, 2.0, 7.0, 0.25, 3.0, 0.1], np.float32)
    z = np.array([NAN, INF, -INF, 1e20, -2147483649.0, 300.0, -1.0, 2.5, 1e300, -7.5], np.float64)
    w = np.array([1.0, 1.0, 1.0, 3.0, 0.0, 7.0, -0.3, 2.0, 3.0, 0.1], np.float64)
    out, error = EmulatedProgram(_ptx_program())([x, y, z, w], [])
    same(out["fmod"], [-0.2999999523162842, -0.5, 0.09999996423721313, NAN, NAN, NAN, 4.0, 0.0, 1.0,
                       0.09999998658895493])
    same(out["fmod64"], [NAN, NAN, NAN, 1.0, NAN, 6.0, -0.10000000000000003, 0.5, 0.0, -0.09999999999999959])
    same(out["round"], [-1.0, -0.0, 2.0, NAN, INF, -INF, 3000000000.0, 0.0, 10000000000.0, 1.0])
    assert out["i32"].tolist() == [-1, 0, 2, I32_MIN, I32_MIN, I32_MIN, I32_MIN, 0, I32_MIN, 1]
    assert out["i64"].tolist() == [I64_MIN, I64_MIN, I64_MIN, I64_MIN, -2147483649, 300, -1, 2, I64_MIN, -7]
    assert out["u8"].tolist() == [0, 0, 0, 0, 255, 44, 255, 2, 0, 249]
    assert not error.any()


def test_adding_and_subtracting_signed_zeros_keeps_ieee_signs():
    """x + 0.0 turns -0.0 into +0.0; x + (-0.0) and x - 0.0 leave every x as it is (the
    simplifier may drop only those), eagerly and compiled."""
    x = torch.tensor([-0.0, 0.0, 1.5])
    same(x + 0.0, [0.0, 0.0, 1.5])
    same(0.0 + x, [0.0, 0.0, 1.5])
    same(x + (-0.0), [-0.0, 0.0, 1.5])
    same(x - 0.0, [-0.0, 0.0, 1.5])
    same(x - (-0.0), [0.0, 0.0, 1.5])
    same(torch.compile(lambda t: t + 0.0)(x), [0.0, 0.0, 1.5])


def test_scalar_operands_are_shared_constants_with_the_right_values():
    """`y + 1.0` reuses one constant per (number, dtype) outside traces: every dtype, NaN,
    signed zeros and ints still give PyTorch's values and types."""
    f32, f64, i64 = torch.tensor([1.0, -2.0]), torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([3, -4])
    same(f32 + 1.0, [2.0, -1.0])
    same(f64 * 1.0, [1.0, -2.0])
    same(i64 + 1, [4, -3])
    assert (i64 + 1).dtype is torch.int64 and (i64 + 1.5).dtype is torch.float32
    same(i64 + 1.5, [4.5, -2.5])
    same(f32 * NAN, [NAN, NAN])
    same(f32 * -0.0, [-0.0, 0.0])
    same(2 - f32, [1.0, 4.0])
    assert (f32 > 0).dtype is torch.bool and (torch.tensor([True]) + True).dtype is torch.bool

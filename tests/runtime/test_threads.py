"""One thread and two threads compute the same values.

The thread count is not baked into the machine code: `fg_main(table, nthreads)` takes it on
every call (runtime/cpu.py passes the current `set_num_threads` value), so one compiled
program runs with either count. Each test computes its result at both counts, checks that
the kernels it cares about were compiled to split their work (`parallel`), and compares the
values with each other and with numpy: elementwise kernels bitwise, reductions and matmul
within a tolerance (a split reduction adds its per-thread partials in a different order).
"""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad


def at_1_and_2(threads, compute):
    """compute() -> (numpy value, its tensor) at 1 thread and at 2; both values returned,
    after checking that both ran the same compiled program."""
    results, programs = [], []
    for n in (1, 2):
        threads(n)
        value, tensor = compute()
        results.append(value)
        programs.append(fusegrad.program_of(tensor))
    assert programs[0] is not None and programs[0].key == programs[1].key
    return results, programs[0]


def assert_parallel(program, kind: str) -> None:
    assert any(k.parallel for k in program.kernels if k.kind == kind), program.kernels


# ---------------------------------------------------------------- elementwise

def test_fused_broadcast_expression_is_bitwise_equal(threads, rng):
    x = rng.standard_normal((600, 500)).astype(np.float32)      # 300,000 elements
    w = rng.standard_normal(500).astype(np.float32)
    b = rng.standard_normal((600, 1)).astype(np.float32)
    tx, tw, tb = (fusegrad.from_numpy(a) for a in (x, w, b))

    def compute():
        y = (tx * tw + tb).tanh() * 0.5 + (tx * 0.1).exp() - tw.abs().sqrt()
        return y.numpy().copy(), y

    (one, two), program = at_1_and_2(threads, compute)
    assert program.num_kernels == 1
    assert_parallel(program, "elementwise")
    np.testing.assert_array_equal(one, two)
    ref = np.tanh(x * w + b) * 0.5 + np.exp(x * 0.1) - np.sqrt(np.abs(w))
    np.testing.assert_allclose(two, ref, rtol=1e-5, atol=1e-5)


def test_float64_elementwise_with_integer_input_is_bitwise_equal(threads, rng):
    x = rng.standard_normal(400_000)
    k = rng.integers(-3, 4, 400_000)
    tx, tk = fusegrad.from_numpy(x), fusegrad.from_numpy(k)

    def compute():
        y = fusegrad.where(tk > 0, tx * tk, (tx * 2).sin())
        return y.numpy().copy(), y

    (one, two), program = at_1_and_2(threads, compute)
    assert_parallel(program, "elementwise")
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(two, np.where(k > 0, x * k, np.sin(x * 2)), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- row reductions

def test_row_sum_and_max_match(threads, rng):
    x = rng.standard_normal((4096, 1024)).astype(np.float32)
    tx = fusegrad.from_numpy(x)

    def compute():
        y = tx.sum(1) + tx.amax(1)
        return y.numpy().copy(), y

    (one, two), program = at_1_and_2(threads, compute)
    assert_parallel(program, "reduce")
    np.testing.assert_allclose(one, two, rtol=1e-6, atol=1e-5)
    ref = x.astype(np.float64).sum(1) + x.max(1)
    np.testing.assert_allclose(two, ref, rtol=1e-5, atol=1e-4)


def test_softmax_matches(threads, rng):
    x = rng.standard_normal((4096, 1024)).astype(np.float32)
    tx = fusegrad.from_numpy(x)

    def compute():
        y = tx.softmax(1)
        return y.numpy().copy(), y

    (one, two), program = at_1_and_2(threads, compute)
    assert_parallel(program, "reduce")
    np.testing.assert_allclose(one, two, rtol=1e-6, atol=1e-9)
    e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    np.testing.assert_allclose(two, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-9)


def test_few_long_rows_match(threads, rng):
    """Two rows of 5M: too few rows to give each thread its own, so the rows are split."""
    x = rng.random((2, 5_000_000), dtype=np.float32)
    tx = fusegrad.from_numpy(x)

    def compute():
        y = tx.sum(1)
        return y.numpy().copy(), y

    (one, two), program = at_1_and_2(threads, compute)
    assert_parallel(program, "reduce")
    ref = x.astype(np.float64).sum(1)
    for got in (one, two):
        np.testing.assert_allclose(got, ref, rtol=1e-6)


# ---------------------------------------------------------------- full reductions

N_F32 = 10_000_000
N_F64 = 1_000_003


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(7)
    return rng.random(N_F32, dtype=np.float32), rng.standard_normal(N_F64)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_full_reduction_matches(threads, big, op, dtype):
    a = big[0] if dtype == "float32" else big[1]
    t = fusegrad.from_numpy(a)

    def compute():
        y = getattr(t, op)()
        return y.item(), y

    (one, two), program = at_1_and_2(threads, compute)
    assert_parallel(program, "reduce")
    ref = getattr(a.astype(np.float64), op)()
    if op in ("max", "min"):
        assert one == two == ref
    else:
        rtol = 1e-6 if dtype == "float32" else 1e-12
        assert one == pytest.approx(two, rel=rtol)
        assert one == pytest.approx(ref, rel=rtol) and two == pytest.approx(ref, rel=rtol)


def test_mean_squared_error_matches(threads, big):
    p = big[0]
    q = p[::-1].copy()
    tp, tq = fusegrad.from_numpy(p), fusegrad.from_numpy(q)

    def compute():
        y = (tp - tq).pow(2).mean()
        return y.item(), y

    (one, two), program = at_1_and_2(threads, compute)
    assert_parallel(program, "reduce")
    ref = ((p.astype(np.float64) - q) ** 2).mean()
    assert one == pytest.approx(ref, rel=1e-6) and two == pytest.approx(ref, rel=1e-6)


def test_float32_sum_of_rand_is_accurate_at_both_counts(threads):
    r = fusegrad.rand(N_F32, generator=fusegrad.manual_seed(11))
    values = r.numpy()
    exact = values.astype(np.float64).sum()

    def compute():
        y = r.sum()
        return y.item(), y

    (one, two), program = at_1_and_2(threads, compute)
    assert_parallel(program, "reduce")
    assert abs(one - exact) / exact < 1e-6
    assert abs(two - exact) / exact < 1e-6


def test_fused_rand_sum_is_accurate_at_both_counts(threads):
    """Inside @compile rand fuses into the reduction: the threads that add the values also
    generate them (the same Philox stream as eager rand, so numpy can check the sum)."""
    def rand_sum():
        return fusegrad.rand(N_F32).sum()

    f = fusegrad.compile(rand_sum)
    program = f.lower().program
    assert_parallel(program, "reduce")
    assert any("rand" in name for k in program.kernels for name in k.fused if k.kind == "reduce")
    fusegrad.manual_seed(12)
    exact = fusegrad.rand(N_F32).numpy().astype(np.float64).sum()
    sums = []
    for n in (1, 2):
        threads(n)
        fusegrad.manual_seed(12)
        sums.append(f().item())
    for got in sums:
        assert abs(got - exact) / exact < 1e-6


# ---------------------------------------------------------------- matmul

def test_matmul_with_bias_matches(threads, rng):
    a = rng.standard_normal((256, 300)).astype(np.float32)
    b = rng.standard_normal((300, 200)).astype(np.float32)
    bias = rng.standard_normal(200).astype(np.float32)
    ta, tb, tbias = (fusegrad.from_numpy(x) for x in (a, b, bias))

    def compute():
        y = ta @ tb + tbias
        return y.numpy().copy(), y

    (one, two), program = at_1_and_2(threads, compute)
    assert_parallel(program, "matmul")
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-5)
    ref = a.astype(np.float64) @ b + bias
    np.testing.assert_allclose(two, ref, rtol=1e-4, atol=1e-4)

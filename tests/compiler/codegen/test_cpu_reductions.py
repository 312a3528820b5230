"""CPU reductions split among threads (codegen/cpu.py): which kernels split a row, and that
a split reduction gives numpy's values for any thread count, any dtype and op, rows split
along any reduced dim, outputs written after the reductions, failed checks, and more
threads than a chunk can be cut into."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad
from fusegrad.compiler.codegen import cpu


def compiled(fn):
    """fusegrad.compile(fn) under a plain name, so the dumped graph text parses back (a graph
    named `<lambda>` does not)."""
    fn.__name__ = "reduction"
    return fusegrad.compile(fn)


def lowered(fn, *arrays):
    return compiled(fn).lower(*(fusegrad.from_numpy(a) for a in arrays))


def split_kernels(fn, *arrays) -> list:
    """Names of the kernels compiled as split rows (a pass function per reduction)."""
    low = lowered(fn, *arrays)
    llvm = low.text("llvm")
    return [k.name for k in low.program.kernels if f'"{k.function}.pass0"' in llvm]


def at_counts(threads, fn, arrays, counts=(1, 2, 3, 5)) -> dict:
    """fn's numpy result at each thread count, through one compiled function."""
    f = compiled(fn)
    tensors = [fusegrad.from_numpy(a) for a in arrays]
    out = {}
    for n in counts:
        threads(n)
        out[n] = f(*tensors).numpy().copy()
    return out


# ---------------------------------------------------------------- which kernels split rows

def test_a_large_full_reduction_splits_and_a_small_one_does_not(rng):
    big = rng.random(cpu.PARALLEL_MIN_ELEMENTS, dtype=np.float32)
    assert split_kernels(lambda x: x.sum(), big) == ["k0"]
    small = big[:cpu.PARALLEL_MIN_ELEMENTS - 1].copy()
    assert split_kernels(lambda x: x.sum(), small) == []
    assert not any(k.parallel for k in lowered(lambda x: x.sum(), small).program.kernels)


def test_few_rows_split_each_row_and_many_rows_split_the_rows(rng):
    few = rng.random((cpu.SPLIT_MAX_ROWS, 10_000), dtype=np.float32)
    assert split_kernels(lambda x: x.sum(1), few) == ["k0"]
    many = rng.random((cpu.SPLIT_MAX_ROWS + 1, 10_000), dtype=np.float32)
    assert split_kernels(lambda x: x.sum(1), many) == []
    assert lowered(lambda x: x.sum(1), many).program.kernels[0].parallel


def test_split_dim_is_the_outermost_long_reduced_dim():
    plan = lambda space, axes: cpu.RowPlan(space, [d for d in range(len(space)) if d not in axes],
                                           list(axes), tuple(1 if d in axes else s for d, s in enumerate(space)),
                                           [], [], [])
    assert cpu.split_dim(plan((100, 1000, 100), (0, 1, 2))) == 0
    assert cpu.split_dim(plan((2, 5_000_000), (0, 1))) == 1
    assert cpu.split_dim(plan((3, 2_000_000), (1,))) == 1
    assert cpu.split_dim(plan((32, 32, 32, 32), (0, 1, 2, 3))) == 0       # none that long: the longest
    assert cpu.split_dim(plan((100, 1000), (1,))) is None                 # many rows: split rows
    assert cpu.split_dim(plan((1000,), (0,))) is None                     # small: one thread


# ---------------------------------------------------------------- values at any thread count

CASES = {
    "sum f32": (lambda x: x.sum(), lambda a: a.astype(np.float64).sum(), np.float32, 1e-6),
    "sum f64": (lambda x: x.sum(), lambda a: a.sum(), np.float64, 1e-12),
    "prod f64": (lambda x: (x * 1e-6 + 1).prod(), lambda a: np.prod(a * 1e-6 + 1), np.float64, 1e-12),
    "max f32": (lambda x: x.max(), lambda a: a.max(), np.float32, 0),
    "min f64": (lambda x: x.min(), lambda a: a.min(), np.float64, 0),
    "sum i64": (lambda x: (x * 100).long().sum(), lambda a: (a * 100).astype(np.int64).sum(), np.float64, 0),
    "max i64": (lambda x: (x * 100).long().max(), lambda a: (a * 100).astype(np.int64).max(), np.float64, 0),
    "any": (lambda x: (x > 2.5).any(), lambda a: (a > 2.5).any(), np.float64, 0),
    "all": (lambda x: (x > -4.5).all(), lambda a: (a > -4.5).all(), np.float64, 0),
    "mean of squares": (lambda x: (x - 0.25).pow(2).mean(), lambda a: ((a.astype(np.float64) - 0.25) ** 2).mean(),
                        np.float32, 1e-6),
}


@pytest.mark.parametrize("case", list(CASES))
def test_full_reduction_at_any_thread_count(threads, case):
    fn, ref, dtype, rtol = CASES[case]
    a = np.random.default_rng(5).standard_normal(1_000_003).astype(dtype)
    out = at_counts(threads, fn, [a])
    for n, got in out.items():
        if rtol:
            np.testing.assert_allclose(got, ref(a), rtol=rtol, err_msg=f"{n} threads")
        else:
            assert got == ref(a), f"{n} threads"


def test_rows_split_along_a_dim_that_is_not_innermost(threads, rng):
    a = rng.random((10, 1000, 100), dtype=np.float32)
    ref = a.astype(np.float64).sum((1, 2))
    for got in at_counts(threads, lambda x: x.sum((1, 2)), [a]).values():
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_full_reduction_of_a_transposed_view(threads, rng):
    a = rng.random((1000, 1000), dtype=np.float32)
    ref = (a.T * np.arange(1000)).astype(np.float64).sum()
    for got in at_counts(threads, lambda x: (x.t() * fusegrad.arange(1000.0)).sum(), [a]).values():
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_more_threads_than_chunks(threads, rng):
    """8 rows of 8192: 8 SUM_BLOCK chunks per row, so most of 11 threads get nothing."""
    a = rng.random((8, 8192), dtype=np.float32)
    out = at_counts(threads, lambda x: x.sum(1), [a], counts=(1, 11))
    for got in out.values():
        np.testing.assert_allclose(got, a.astype(np.float64).sum(1), rtol=1e-6)


def test_thread_count_above_max_parts_is_capped(threads, rng, monkeypatch):
    """Uncapped, parts 3.. of row 0 would write row 1's slots."""
    monkeypatch.setattr(cpu, "MAX_PARTS", 3)          # compiled below with 3 partial slots a row
    a = rng.random((2, 377_777), dtype=np.float32)
    out = at_counts(threads, lambda x: x.sum(1), [a], counts=(7,))
    np.testing.assert_allclose(out[7], a.astype(np.float64).sum(1), rtol=1e-6)


def test_outputs_after_the_reductions_are_written_by_every_thread(threads, rng):
    """Two rows of 500,000: x - max and a softmax, written in the finish phase, in parallel."""
    a = rng.random((2, 500_000), dtype=np.float32)
    f = compiled(lambda x: (x - x.amax(1, keepdim=True), x.softmax(1)))
    tx = fusegrad.from_numpy(a)
    e = np.exp(a.astype(np.float64) - a.max(1, keepdims=True))
    for n in (1, 2, 3):
        threads(n)
        shifted, soft = f(tx)
        np.testing.assert_array_equal(shifted.numpy(), a - a.max(1, keepdims=True))
        np.testing.assert_allclose(soft.numpy(), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-12)


def test_same_thread_count_gives_the_same_bits(threads, rng):
    a = rng.standard_normal(2_000_000).astype(np.float32)
    f = compiled(lambda x: (x * x).sum())
    tx = fusegrad.from_numpy(a)
    for n in (2, 3):
        threads(n)
        runs = {f(tx).item() for _ in range(5)}
        assert len(runs) == 1
        assert runs.pop() == pytest.approx((a.astype(np.float64) ** 2).sum(), rel=1e-6)


def test_failed_check_in_a_split_reduction_raises(threads, rng):
    threads(2)
    a = rng.random(1000, dtype=np.float32)
    index = rng.integers(0, 1000, 300_000)
    f = compiled(lambda x, i: x.gather(0, i).sum())
    ta = fusegrad.from_numpy(a)
    assert split_kernels(lambda x, i: x.gather(0, i).sum(), a, index) == ["k0"]
    bad = index.copy()
    bad[250_000] = 1000
    with pytest.raises(IndexError, match="gather: index out of range"):
        f(ta, fusegrad.from_numpy(bad)).item()
    good = f(ta, fusegrad.from_numpy(index)).item()        # the error word was reset
    assert good == pytest.approx(a.astype(np.float64)[index].sum(), rel=1e-6)

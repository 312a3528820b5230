"""The core pipeline's promises: one fused kernel where DESIGN says so, a program cache keyed
by structure (new data compiles nothing), laziness, and errors at the user's line."""
import inspect
import os

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.realize import STATS, realize
from fusegrad.runtime import OBJECTS


def _line_of(marker: str) -> str:
    """`test_core_pipeline.py:N` for the line of this file containing `marker`."""
    src = inspect.getsource(inspect.getmodule(_line_of)).splitlines()
    n = next(i for i, line in enumerate(src, 1) if marker in line and "_line_of" not in line)
    return f"{os.path.basename(__file__)}:{n}"


def test_sigmoid_expression_runs_as_one_kernel(rng):
    x, w, b = (rng.standard_normal(10_000).astype(np.float32) for _ in range(3))
    y = torch.sigmoid(torch.tensor(x) * torch.tensor(w) + torch.tensor(b)) * 2 - 1
    np.testing.assert_allclose(y.numpy(), 2 / (1 + np.exp(-(x * w + b))) - 1, rtol=1e-5, atol=2e-6)
    assert torch.program_of(y).num_kernels == 1


def test_mse_runs_as_one_kernel(rng):
    p, t = rng.random((64, 33), dtype=np.float32), rng.random((64, 33), dtype=np.float32)
    loss = ((torch.tensor(p) - torch.tensor(t)) ** 2).mean()
    assert loss.item() == pytest.approx(float(((p - t) ** 2).mean()), rel=1e-5)
    assert torch.program_of(loss).num_kernels == 1


def test_same_expression_on_new_data_compiles_nothing(rng):
    def run():
        a, b = torch.tensor(rng.random((31, 7))), torch.tensor(rng.random(7))
        return (torch.exp(a) * b - a.mean()).numpy()
    run()
    misses, compiles = STATS["misses"], OBJECTS.stats["compiles"]
    hits = STATS["hits"]
    for _ in range(5):
        run()
    assert STATS["misses"] == misses and OBJECTS.stats["compiles"] == compiles
    assert STATS["hits"] == hits + 5


def test_building_a_thousand_ops_computes_nothing_until_asked():
    x = torch.ones(16)
    runs = STATS["runs"]
    y = x
    for i in range(1000):
        y = y * 1.001 + 0.5 if i % 2 else y - 0.25
    assert STATS["runs"] == runs                      # nothing computed yet
    expect = np.ones(16)
    for i in range(1000):
        expect = expect * 1.001 + 0.5 if i % 2 else expect - 0.25
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-4)
    assert STATS["runs"] == runs + 1


def test_broadcast_error_names_op_shapes_and_line():
    a, b = torch.ones(4, 6), torch.ones(6, 4)
    with pytest.raises(RuntimeError) as e:
        a + b  # broadcast-error-here
    msg = str(e.value)
    assert "add" in msg and "f32[4,6]" in msg and "f32[6,4]" in msg and _line_of("broadcast-error-here") in msg


def test_bad_reshape_names_shapes_and_line():
    x = torch.ones(4, 4)
    with pytest.raises(RuntimeError) as e:
        x.reshape(3, 5)  # reshape-error-here
    assert "shape '[3, 5]' is invalid for input of size 16" in str(e.value)
    assert _line_of("reshape-error-here") in str(e.value)


def test_bad_axis_raises_index_error_at_the_line():
    x = torch.ones(2, 3)
    with pytest.raises(IndexError) as e:
        x.sum(dim=2)  # axis-error-here
    assert "Dimension out of range (expected to be in range of [-2, 1], but got 2)" in str(e.value)
    assert _line_of("axis-error-here") in str(e.value)


def test_unknown_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="unknown dtype"):
        torch.ones(3, dtype="complex32")
    with pytest.raises(TypeError, match="can't convert np.ndarray of type numpy.complex64"):
        torch.from_numpy(np.ones(3, np.complex64))      # float16 is supported since the half-precision work


def test_errors_are_raised_when_the_op_is_written_not_at_realization():
    runs = STATS["runs"]
    with pytest.raises(RuntimeError):
        torch.ones(3) @ torch.ones(4)
    assert STATS["runs"] == runs


def test_out_of_range_gather_is_an_index_error_naming_the_line():
    x = torch.arange(5.0)
    idx = torch.tensor([0, 7])
    y = x[idx]  # gather-error-here
    with pytest.raises(IndexError) as e:
        y.numpy()
    assert "out of range" in str(e.value) and _line_of("gather-error-here") in str(e.value)


def test_integer_division_by_zero_raises_instead_of_crashing():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        (torch.tensor([4, 2]) // torch.tensor([2, 0])).numpy()


def test_failed_update_leaves_the_tensor_unchanged():
    w = torch.arange(4.0)
    w._storage.state = True
    before = w.numpy().copy()
    with pytest.raises(IndexError):
        w.add_(w[torch.tensor([0, 9, 1, 2])])
    np.testing.assert_array_equal(w.numpy(), before)


def test_values_merged_by_cse_realize_into_separate_correct_tensors():
    """Two requested values that simplify merges into one (here two equal gradients) share a
    buffer slot in the program; each tensor still gets the value, in memory of its own."""
    x_np = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    w1 = torch.zeros(3, requires_grad=True)
    w2 = torch.zeros(3, requires_grad=True)
    ((w1 + w2) * torch.tensor(x_np)).sum().backward()
    np.testing.assert_array_equal(w1.grad.numpy(), x_np)
    np.testing.assert_array_equal(w2.grad.numpy(), x_np)
    w2.grad.add_(1)
    np.testing.assert_array_equal(w1.grad.numpy(), x_np)
    a = torch.tensor(x_np)
    p, q = a * 2, a * 2
    realize([p._storage, q._storage])       # one program for both
    assert torch.program_of(p) is torch.program_of(q)
    np.testing.assert_array_equal(p.numpy(), x_np * 2)
    np.testing.assert_array_equal(q.numpy(), x_np * 2)

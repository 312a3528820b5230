"""Indexing as PyTorch programs use it: ints (negative too), slices with steps, None, ...,
integer-tensor and boolean-mask reads, `x[idx] = value` writes of every kind, and PyTorch's
errors. Expected values are numpy's (the same indexing rules) or literal PyTorch output."""
import numpy as np
import pytest
from support import check

import fusegrad as torch

A = np.arange(12).reshape(3, 4)
C = np.arange(24).reshape(2, 3, 4)


def _x():
    return torch.arange(12).view(3, 4)


# ---------------------------------------------------------------- reads

@pytest.mark.parametrize("index", [
    0, -1, 2, -3, (1, 2), (-1, -4), (slice(None), 2), (slice(None), -1), slice(None, None, 2), slice(1, None),
    (slice(None), slice(1, None, 2)), (slice(-2, None), slice(None, -1)), slice(5, None), slice(0, 0),
    (slice(None, None, 3), slice(0, 4, 3)), None, (slice(None), None),
    (Ellipsis, 1), (Ellipsis, None), (1, Ellipsis), Ellipsis, (None, 1, None, slice(2, 3)),
])
def test_basic_reads(index):
    check(_x()[index], A[index], torch.int64)


def test_chained_reads_and_outputs_column():
    x = _x()
    check(x[1][2], A[1][2], torch.int64)
    outputs = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    check(outputs[:, 0], [0.25, 0.5], torch.float32)


@pytest.mark.parametrize("index", [
    (0, 2, 1), (slice(None), 1, slice(None, None, 2)), (Ellipsis, 0),
    (1, Ellipsis, 3), (slice(None), None, -1), (-1, slice(1, 3)),
])
def test_basic_reads_3d(index):
    check(torch.arange(24).view(2, 3, 4)[index], C[index], torch.int64)


def test_zero_dim_reads():
    t = torch.tensor(5.0)
    check(t[None], [5.0], torch.float32)
    check(t[...], 5.0, torch.float32)
    check(t[()], 5.0, torch.float32)


@pytest.mark.parametrize("index", [[0, 2], [2, -1, 0], [[0, 1], [2, 2]], [1, 1, 1]])
def test_integer_tensor_reads(index):
    check(_x()[torch.tensor(index)], A[np.array(index)], torch.int64)
    if np.ndim(index) == 1:
        check(_x()[index], A[np.array(index)], torch.int64)      # a flat list is an index tensor too


def test_integer_tensor_reads_mixed_with_slices():
    x = _x()
    check(x[:, [0, 3]], A[:, [0, 3]], torch.int64)
    check(x[torch.tensor([0, 2]), torch.tensor([1, 3])], A[[0, 2], [1, 3]], torch.int64)
    check(x[1:, torch.tensor([0, 2])], A[1:, [0, 2]], torch.int64)
    check(x[torch.tensor([0, 2]), 1:3], A[[0, 2], 1:3], torch.int64)
    c = torch.arange(24).view(2, 3, 4)
    check(c[:, [0, 2], [1, 3]], C[:, [0, 2], [1, 3]], torch.int64)           # adjacent: stay in place
    check(c[[0, 1], :, [1, 3]], C[[0, 1], :, [1, 3]], torch.int64)           # split: move to the front
    check(c[torch.tensor([1]), torch.tensor([[0], [2]])], C[[1], [[0], [2]]], torch.int64)   # broadcast
    check(c[..., torch.tensor([3, 0])], C[..., [3, 0]], torch.int64)
    check(x[torch.tensor([0, 2], dtype=torch.int32)], A[[0, 2]], torch.int64)


def test_boolean_mask_reads():
    x = _x()
    check(x[x > 5], A[A > 5], torch.int64)
    check(x[torch.tensor([True, False, True])], A[[True, False, True]], torch.int64)
    check(x[:, torch.tensor([True, False, True, False])], A[:, [True, False, True, False]], torch.int64)
    check(x[torch.tensor([False, True, False]), 1:], A[[False, True, False], 1:], torch.int64)
    check(x[x > 100], A[A > 100], torch.int64)
    f = torch.tensor([[0.5, -1.0], [2.0, -3.0]])
    check(f[f < 0], [-1.0, -3.0], torch.float32)


def test_reads_are_views_of_the_base():
    x = _x()
    row, col = x[1], x[:, 2]
    x.mul_(-1)
    check(row, -A[1], torch.int64)
    check(col, -A[:, 2], torch.int64)


def test_tensor_index_reads_are_copies():
    x = _x()
    picked = x[[0, 2]]
    x.zero_()
    check(picked, A[[0, 2]], torch.int64)


# ---------------------------------------------------------------- writes

def _written(index, value):
    x, a = _x(), A.copy()
    x[index] = value
    a[index] = value.numpy() if isinstance(value, torch.Tensor) else value
    return x, a


@pytest.mark.parametrize("index, value", [
    (0, 100), (-1, 7), ((1, 2), -5), ((slice(None), 1), torch.tensor([7, 8, 9])),
    ((slice(1, None), slice(None, None, 2)), -1), ((Ellipsis, 0), torch.tensor(3)),
    (slice(None), torch.tensor([1, 2, 3, 4])), (Ellipsis, 4), ((None, 0), 4), ((slice(None), slice(5, None)), 1),
    ((slice(None), -1), torch.tensor([[10], [20], [30]]).view(3)), ((slice(0, 2), slice(1, 3)), torch.tensor([[1, 2]])),
])
def test_basic_writes(index, value):
    x, a = _written(index, value)
    check(x, a, torch.int64)


def test_writes_convert_to_the_tensors_dtype():
    x = _x()
    x[1] = 2.7                                       # truncated into int64, as PyTorch does
    x[0] = torch.tensor([1.0, 2.0, 3.0, 4.0]) * 1.5
    check(x[:2], [[1, 3, 4, 6], [2, 2, 2, 2]], torch.int64)
    f = torch.zeros(2, 3)
    f[0, 1] = 5
    f[1] = torch.tensor([1, 2, 3])
    check(f, [[0, 5, 0], [1, 2, 3]], torch.float32)


@pytest.mark.parametrize("value", [0, -1, torch.tensor(42)])
def test_boolean_mask_writes_of_a_scalar(value):
    x, a = _x(), A.copy()
    x[x > 5] = value
    a[a > 5] = int(value)
    check(x, a, torch.int64)


def test_boolean_mask_writes():
    f = torch.arange(12.0).view(3, 4)
    f[f > 5] = 0.5
    check(f, np.where(A > 5, 0.5, A).astype(np.float32), torch.float32)
    x, a = _x(), A.copy()
    x[x > 8] = torch.tensor([-1, -2, -3])
    a[a > 8] = [-1, -2, -3]
    check(x, a, torch.int64)
    x, a = _x(), A.copy()
    x[torch.tensor([True, True, False])] = 0                # a row mask
    a[[True, True, False]] = 0
    check(x, a, torch.int64)


def test_integer_index_writes_without_trailing_dims():
    x, a = _x(), A.copy()
    x[[0, 2], [1, 3]] = torch.tensor([50, 60])
    a[[0, 2], [1, 3]] = [50, 60]
    check(x, a, torch.int64)
    v = torch.arange(6)
    v[torch.tensor([4, 0])] = -1
    check(v, [-1, 1, 2, 3, -1, 5], torch.int64)
    v[[-1]] = 9
    check(v, [-1, 1, 2, 3, -1, 9], torch.int64)


def test_integer_index_writes_of_whole_rows():
    x, a = _x(), A.copy()
    x[torch.tensor([0, 2])] = 0
    a[[0, 2]] = 0
    check(x, a, torch.int64)


def test_integer_index_writes_with_a_repeated_index_write_one_of_the_values():
    v = torch.arange(6)
    v[[1, 1, 3]] = torch.tensor([7, 8, 9])
    assert v[1].item() in (7, 8)
    check(v[2:], [2, 9, 4, 5], torch.int64)


def test_writes_through_a_view_reach_the_base():
    x = _x()
    row = x[1]
    row[::2] = 0
    check(x[1], [0, 5, 0, 7], torch.int64)
    x.t()[0] = -1
    check(x[:, 0], [-1, -1, -1], torch.int64)


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("index, message", [
    (3, "index 3 is out of bounds for dimension 0 with size 3"),
    (-4, "index -4 is out of bounds for dimension 0 with size 3"),
    ((0, 4), "index 4 is out of bounds for dimension 1 with size 4"),
    ((slice(None), -5), "index -5 is out of bounds for dimension 1 with size 4"),
    ((0, 0, 0), "too many indices for tensor of dimension 2"),
])
def test_out_of_range_reads_raise_IndexError(index, message):
    with pytest.raises(IndexError, match=message):
        _x()[index]


def test_out_of_range_writes_raise_IndexError():
    x = _x()
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        x[3] = 1
    check(x, A, torch.int64)


def test_out_of_range_index_tensor_raises_IndexError():
    with pytest.raises(IndexError, match="out of"):
        _x()[torch.tensor([3])].tolist()


def test_mask_of_the_wrong_shape_raises_IndexError():
    with pytest.raises(IndexError, match=r"The shape of the mask \[3\] at index 0 does not match the shape of the "
                                         r"indexed tensor \[2, 3\] at index 0"):
        torch.zeros(2, 3)[torch.tensor([True, False, True])]
    with pytest.raises(IndexError, match=r"The shape of the mask \[2\] at index 0 does not match the shape of the "
                                         r"indexed tensor \[2, 3\] at index 1"):
        torch.zeros(2, 3)[:, torch.tensor([True, False])]


def test_float_index_raises_IndexError():
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or bool tensors"):
        _x()[torch.tensor([0.0])]


ZERO_DIM = ("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()` in C++ to "
            "convert a 0-dim tensor to a number")


def test_indexing_a_zero_dim_tensor_raises_PyTorchs_message():
    loss = torch.tensor(0.25, requires_grad=True) * 2
    with pytest.raises(IndexError) as info:
        loss.data[0]
    assert str(info.value) == ZERO_DIM
    with pytest.raises(IndexError) as info:
        torch.tensor(5)[0]
    assert str(info.value) == ZERO_DIM

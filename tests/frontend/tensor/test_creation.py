"""Creating tensors as PyTorch programs do: tensor() with PyTorch's dtype inference, the legacy
Tensor/FloatTensor/... constructors, the factories, manual_seed, and numpy memory sharing.
Expected values are numpy's or literal PyTorch 2.13 output."""
import numpy as np
import pytest
from support import NP
from support import check as _check

import fusegrad as torch

# ---------------------------------------------------------------- tensor(): dtype inference

@pytest.mark.parametrize("data, dtype, shape", [
    (3.0, torch.float32, ()),
    (3, torch.int64, ()),
    (True, torch.bool, ()),
    ([1, 2, 3], torch.int64, (3,)),
    ([1, 2.0], torch.float32, (2,)),
    ([True, 2], torch.int64, (2,)),
    ([True, False], torch.bool, (2,)),
    ([[1, 2], [3, 4]], torch.int64, (2, 2)),
    ([(1, 2), (3, 4)], torch.int64, (2, 2)),
    ((1.5, 2.5, 3.5), torch.float32, (3,)),
    ([], torch.float32, (0,)),
    ([[], []], torch.float32, (2, 0)),
    ([[[1, 2]], [[3, 4]]], torch.int64, (2, 1, 2)),
])
def test_tensor_infers_pytorch_dtype_from_python_data(data, dtype, shape):
    t = torch.tensor(data)
    assert t.dtype is dtype
    assert t.shape == shape
    np.testing.assert_array_equal(t.numpy(), np.array(data, dtype=NP[dtype]).reshape(shape))


@pytest.mark.parametrize("np_dtype, dtype", [
    (np.float64, torch.float64), (np.float32, torch.float32), (np.int64, torch.int64),
    (np.int32, torch.int32), (np.uint8, torch.uint8), (np.bool_, torch.bool),
])
def test_tensor_from_numpy_array_keeps_its_dtype(np_dtype, dtype):
    a = np.array([[1, 0, 3], [4, 5, 0]]).astype(np_dtype)
    t = torch.tensor(a)
    _check(t, a, dtype)
    a[0, 0] = 0                       # tensor() copies
    assert t[0, 0].item() == 1


def test_tensor_from_numpy_scalars_and_non_contiguous_arrays():
    _check(torch.tensor(np.float64(2.5)), 2.5, torch.float64)
    _check(torch.tensor(np.int32(3)), 3, torch.int32)
    _check(torch.tensor(np.array(3.5, dtype=np.float32)), 3.5, torch.float32)
    a = np.arange(12).reshape(3, 4)
    _check(torch.tensor(a[:, ::2]), a[:, ::2], torch.int64)
    _check(torch.tensor(a.T), a.T, torch.int64)
    # numpy scalars inside a list are Python numbers to PyTorch
    _check(torch.tensor([np.float32(1.5), 2]), [1.5, 2], torch.float32)


def test_tensor_with_dtype_converts():
    _check(torch.tensor(3, dtype=torch.float32), 3.0, torch.float32)
    _check(torch.tensor([1.7, -1.7], dtype=torch.int64), [1, -1], torch.int64)   # truncates like a C cast
    _check(torch.tensor([1.7, -1.7], dtype=torch.int32), [1, -1], torch.int32)
    _check(torch.tensor([[0, 2], [3, 0]], dtype=torch.bool), [[False, True], [True, False]], torch.bool)
    _check(torch.tensor(np.array([1, 2]), dtype=torch.float32), [1.0, 2.0], torch.float32)
    _check(torch.tensor([1, 2], dtype=torch.float64), [1.0, 2.0], torch.float64)


def test_tensor_from_tensors():
    src = torch.tensor([1, 2])
    t = torch.tensor(src)
    _check(t, [1, 2], torch.int64)
    src.add_(10)
    assert t.tolist() == [1, 2]       # a copy, not a view
    _check(torch.tensor([torch.tensor(1.5), torch.tensor(2.0)]), [1.5, 2.0], torch.float32)


def test_tensor_requires_grad_and_as_tensor():
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None
    a = np.array([1.0, 2.0])
    shared = torch.as_tensor(a)
    a[0] = 9.0
    assert shared.tolist() == [9.0, 2.0]
    assert torch.as_tensor([1, 2]).dtype is torch.int64


def test_requires_grad_is_settable_on_leaves():
    x = torch.tensor([1.0, 2.0])
    assert x.requires_grad is False and x.is_leaf and x.grad is None and x.grad_fn is None
    assert x.requires_grad_() is x and x.requires_grad
    y = torch.zeros(2)
    y.requires_grad = True
    z = (y * y + x).sum()
    assert z.requires_grad and not z.is_leaf and z.grad_fn is not None
    z.backward()
    assert x.grad.tolist() == [1.0, 1.0] and y.grad.tolist() == [0.0, 0.0]
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        z.requires_grad = False


# ---------------------------------------------------------------- legacy constructors

def test_Tensor_of_sizes_is_float32_of_that_shape():
    t = torch.Tensor(4, 6)
    assert t.dtype is torch.float32
    assert t.shape == (4, 6)
    assert torch.Tensor(0).shape == (0,)
    assert torch.Tensor().shape == (0,)
    assert isinstance(t, torch.Tensor)


def test_Tensor_of_list_and_ndarray_is_float32():
    _check(torch.Tensor([3.2, 4.3]), [3.2, 4.3], torch.float32)
    _check(torch.Tensor([[1, 2], [3, 4]]), [[1, 2], [3, 4]], torch.float32)
    _check(torch.Tensor(np.array([1, 2])), [1.0, 2.0], torch.float32)
    _check(torch.Tensor(np.array([0.5, 1.5], dtype=np.float64)), [0.5, 1.5], torch.float32)
    assert repr(torch.Tensor([3.2, 4.3])) == "tensor([3.2000, 4.3000])"


def test_Tensor_of_sizes_takes_inplace_updates_and_shares_with_numpy():
    t = torch.Tensor(2, 3)
    t.fill_(1.5)
    a = t.numpy()
    np.testing.assert_array_equal(a, np.full((2, 3), 1.5, np.float32))
    t.add_(1)
    np.testing.assert_array_equal(a, np.full((2, 3), 2.5, np.float32))


@pytest.mark.parametrize("ctor, dtype", [
    (torch.FloatTensor, torch.float32), (torch.DoubleTensor, torch.float64), (torch.LongTensor, torch.int64),
    (torch.IntTensor, torch.int32), (torch.ByteTensor, torch.uint8), (torch.BoolTensor, torch.bool),
])
def test_typed_tensor_constructors(ctor, dtype):
    t = ctor(5, 3)
    assert t.dtype is dtype and t.shape == (5, 3)
    _check(ctor([[1, 0], [3, 4]]), np.array([[1, 0], [3, 4]]), dtype)


def test_typed_constructors_convert_values():
    _check(torch.LongTensor([1.7, 2]), [1, 2], torch.int64)
    _check(torch.IntTensor([1.9, -1.9]), [1, -1], torch.int32)
    _check(torch.ByteTensor([0, 255]), [0, 255], torch.uint8)
    _check(torch.FloatTensor([1, 2]), [1.0, 2.0], torch.float32)
    assert repr(torch.ByteTensor([1, 2])) == "tensor([1, 2], dtype=fusegrad.uint8)"


def test_LongTensor_random_():
    t = torch.LongTensor(5, 3).random_(10)
    v = t.numpy()
    assert t.dtype is torch.int64 and v.shape == (5, 3)
    assert v.min() >= 0 and v.max() < 10
    assert len(np.unique(v)) > 1


# ---------------------------------------------------------------- factories

@pytest.mark.parametrize("size", [(2, 3), ((2, 3),), ([2, 3],), (torch.Size([2, 3]),)])
def test_factories_take_ints_or_one_sequence(size):
    for fn, fill in [(torch.zeros, 0.0), (torch.ones, 1.0)]:
        t = fn(*size)
        _check(t, np.full((2, 3), fill), torch.float32)
    assert torch.empty(*size).shape == (2, 3)
    assert torch.rand(*size).shape == (2, 3)
    assert torch.randn(*size).shape == (2, 3)


def test_factory_dtypes_and_zero_sizes():
    _check(torch.ones((2, 3), dtype=torch.int64), np.ones((2, 3)), torch.int64)
    _check(torch.zeros(2, dtype=torch.bool), [False, False], torch.bool)
    assert torch.empty((2, 3), dtype=torch.int64).dtype is torch.int64
    assert torch.zeros(0).shape == (0,)
    assert torch.zeros(2, 0).shape == (2, 0)
    assert torch.zeros(()).shape == ()
    assert torch.ones(3).dtype is torch.float32
    assert torch.randn(2, 3, dtype=torch.float64).dtype is torch.float64


def test_full_infers_dtype_from_fill_value():
    _check(torch.full((2,), 7), [7, 7], torch.int64)
    _check(torch.full((2,), 7.0), [7.0, 7.0], torch.float32)
    _check(torch.full((2,), True), [True, True], torch.bool)
    _check(torch.full([2, 2], 1.5, dtype=torch.float64), np.full((2, 2), 1.5), torch.float64)


def test_like_factories():
    x = torch.tensor([[1, 2], [3, 4]])
    _check(torch.zeros_like(x), np.zeros((2, 2)), torch.int64)
    _check(torch.ones_like(torch.tensor([1.0, 2.0])), [1.0, 1.0], torch.float32)
    _check(torch.full_like(x, 7), np.full((2, 2), 7), torch.int64)
    _check(torch.zeros_like(x, dtype=torch.float64), np.zeros((2, 2)), torch.float64)
    assert torch.rand_like(torch.zeros(3, 2)).shape == (3, 2)


@pytest.mark.parametrize("args, kwargs, expected, dtype", [
    ((5,), {}, [0, 1, 2, 3, 4], torch.int64),
    ((1, 4), {}, [1, 2, 3], torch.int64),
    ((10, 0, -3), {}, [10, 7, 4, 1], torch.int64),
    ((0, 5, 0.5), {}, np.arange(0, 5, 0.5), torch.float32),
    ((0.0, 3), {}, [0.0, 1.0, 2.0], torch.float32),
    ((1, 2.5, 0.5), {}, [1.0, 1.5, 2.0], torch.float32),
    ((5,), {"dtype": torch.float32}, [0.0, 1.0, 2.0, 3.0, 4.0], torch.float32),
    ((3,), {"dtype": torch.float64}, [0.0, 1.0, 2.0], torch.float64),
])
def test_arange(args, kwargs, expected, dtype):
    _check(torch.arange(*args, **kwargs), expected, dtype)


def test_arange_with_small_float_step():
    t = torch.arange(0, 5, 0.01)
    assert t.shape == (500,) and t.dtype is torch.float32
    np.testing.assert_allclose(t.numpy(), np.arange(500) * 0.01, rtol=0, atol=1e-5)
    assert torch.arange(torch.tensor(3)).tolist() == [0, 1, 2]


def test_linspace():
    # literal PyTorch output
    assert torch.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert repr(torch.linspace(-10, 10, steps=5)) == "tensor([-10.,  -5.,   0.,   5.,  10.])"
    np.testing.assert_allclose(torch.linspace(0, 1, 7).numpy(), np.linspace(0, 1, 7, dtype=np.float32), rtol=1e-6)
    assert torch.linspace(1, 2, 1).tolist() == [1.0]
    assert torch.linspace(0, 1, 5).dtype is torch.float32


def test_linspace_with_an_integer_dtype():
    # literal PyTorch output
    assert torch.linspace(0, 10, steps=3, dtype=torch.int64).tolist() == [0, 5, 10]
    assert torch.linspace(0, 10, 4, dtype=torch.int64).tolist() == [0, 3, 6, 10]
    assert torch.linspace(-5, 7, 6, dtype=torch.int32).tolist() == [-5, -2, 0, 2, 4, 7]
    assert torch.linspace(10, 0, 4, dtype=torch.uint8).tolist() == [10, 6, 3, 0]
    assert torch.linspace(0, 10, 4, dtype=torch.int64).dtype is torch.int64


def test_rand_and_randn_values():
    torch.manual_seed(3)
    u = torch.rand(4, 6).numpy()
    assert u.dtype == np.float32 and u.min() >= 0 and u.max() < 1
    big = torch.rand(20000).numpy()
    assert abs(big.mean() - 0.5) < 0.02
    z = torch.randn(20000, dtype=torch.float64).numpy()
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    assert torch.rand(2, 3, requires_grad=True).requires_grad


def test_manual_seed_reproduces_random_streams():
    torch.manual_seed(42)
    a = [torch.rand(3).tolist(), torch.randn(2, 2).tolist(), torch.zeros(4).uniform_().tolist(),
         torch.LongTensor(5).random_(100).tolist(), torch.zeros(3).normal_(2, 3).tolist()]
    torch.manual_seed(42)
    b = [torch.rand(3).tolist(), torch.randn(2, 2).tolist(), torch.zeros(4).uniform_().tolist(),
         torch.LongTensor(5).random_(100).tolist(), torch.zeros(3).normal_(2, 3).tolist()]
    assert a == b
    assert torch.rand(3).tolist() != a[0]        # the stream moves on
    torch.manual_seed(43)
    assert torch.rand(3).tolist() != a[0]        # another seed, another stream


# ---------------------------------------------------------------- numpy memory sharing

@pytest.mark.parametrize("np_dtype, dtype", [
    (np.float64, torch.float64), (np.float32, torch.float32), (np.int64, torch.int64), (np.int32, torch.int32),
    (np.uint8, torch.uint8), (np.bool_, torch.bool),
])
def test_from_numpy_keeps_dtype(np_dtype, dtype):
    assert torch.from_numpy(np.zeros(2, np_dtype)).dtype is dtype


def test_from_numpy_sees_numpy_writes():
    a = np.array([1.0, 2.0])
    t = torch.from_numpy(a)
    a[1] = 7.0
    assert t.tolist() == [1.0, 7.0]
    assert (t * 2).tolist() == [2.0, 14.0]


def test_numpy_sees_inplace_writes_to_from_numpy_tensor():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = torch.from_numpy(a)
    t.add_(1)
    np.testing.assert_array_equal(a, [[2.0, 3.0], [4.0, 5.0]])
    t += 1
    np.testing.assert_array_equal(a, [[3.0, 4.0], [5.0, 6.0]])
    t[0] = 0.5
    np.testing.assert_array_equal(a, [[0.5, 0.5], [5.0, 6.0]])
    t[:, 1].zero_()
    np.testing.assert_array_equal(a, [[0.5, 0.0], [5.0, 0.0]])


def test_from_numpy_transposed_array_shares_memory():
    a = np.arange(6.0).reshape(2, 3).T
    t = torch.from_numpy(a)
    assert t.shape == (3, 2)
    np.testing.assert_array_equal(t.numpy(), a)
    t.mul_(10)
    np.testing.assert_array_equal(a, np.arange(6.0).reshape(2, 3).T * 10)


def test_numpy_of_tensor_shares_memory_both_ways():
    t = torch.tensor([1.0, 2.0, 3.0])
    a = t.numpy()
    a[0] = 9.0
    assert t.tolist() == [9.0, 2.0, 3.0]
    t.mul_(2)
    np.testing.assert_array_equal(a, [18.0, 4.0, 6.0])
    t[2] = -1.0
    np.testing.assert_array_equal(a, [18.0, 4.0, -1.0])


def test_numpy_of_a_view_shares_memory():
    t = torch.arange(6.0)
    a = t.view(2, 3).numpy()
    a[1, 1] = -5.0
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0, -5.0, 5.0]
    tail = t[2:].numpy()
    t.add_(1)
    np.testing.assert_array_equal(tail, [3.0, 4.0, -4.0, 6.0])


def test_np_array_of_tensor():
    t = torch.tensor([[1, 2], [3, 4]])
    a = np.array(t)
    assert a.dtype == np.int64
    np.testing.assert_array_equal(a, [[1, 2], [3, 4]])
    assert np.asarray(torch.tensor([1.5]), dtype=np.float64).dtype == np.float64

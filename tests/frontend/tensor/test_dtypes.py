"""dtype objects and PyTorch's type promotion: the category rules (bool < integer < float),
zero-dim tensors and Python scalars that never widen a tensor's dtype within its category,
true division and comparisons. Expected dtypes and values are PyTorch 2.13's."""
import numpy as np
import pytest
from support import check

import fusegrad as torch


def test_dtype_objects_and_reprs():
    assert repr(torch.float32) == "fusegrad.float32"
    assert str(torch.int64) == "fusegrad.int64"
    assert [repr(d) for d in (torch.float64, torch.int32, torch.uint8, torch.bool)] == [
        "fusegrad.float64", "fusegrad.int32", "fusegrad.uint8", "fusegrad.bool"]
    assert torch.float is torch.float32 and torch.double is torch.float64
    assert torch.long is torch.int64 and torch.int is torch.int32
    assert torch.float32 == torch.float and torch.float32 != torch.float64
    assert isinstance(torch.float32, torch.dtype)
    assert torch.float32.is_floating_point and not torch.int64.is_floating_point
    assert torch.float32.itemsize == 4 and torch.int64.itemsize == 8
    assert torch.get_default_dtype() is torch.float32
    assert {torch.float32: "f"}[torch.float] == "f"        # hashable, usable as keys


def test_tensor_dtype_attribute_and_type_strings():
    assert torch.tensor([1, 2]).dtype is torch.int64
    assert torch.tensor([1.0]).dtype is torch.float32
    assert torch.tensor([1, 2]).type() == "torch.LongTensor"
    assert torch.tensor([1.0, 2]).type() == "torch.FloatTensor"
    assert torch.tensor([1], dtype=torch.float64).type() == "torch.DoubleTensor"
    assert torch.tensor([1], dtype=torch.int32).type() == "torch.IntTensor"
    assert torch.tensor([1], dtype=torch.uint8).type() == "torch.ByteTensor"
    assert torch.tensor([True]).type() == "torch.BoolTensor"
    assert torch.tensor([1, 2]).is_floating_point() is False
    assert torch.tensor([1, 2]).element_size() == 8


def test_type_with_an_argument_converts():
    check(torch.tensor([1, 2]).type(torch.float64), [1.0, 2.0], torch.float64)
    check(torch.tensor([1, 2]).type("torch.FloatTensor"), [1.0, 2.0], torch.float32)
    check(torch.tensor([1.5]).type("torch.LongTensor"), [1], torch.int64)


@pytest.mark.parametrize("method, values, expected, dtype", [
    ("float", [1, -2, 0], [1.0, -2.0, 0.0], torch.float32),
    ("double", [1.5, -2.5, 0.0], [1.5, -2.5, 0.0], torch.float64),
    ("long", [1.5, -2.5, 0.0], [1, -2, 0], torch.int64),            # float -> int truncates toward zero
    ("int", [1.9, -2.9, 0.0], [1, -2, 0], torch.int32),
    ("bool", [1.5, -2.5, 0.0], [True, True, False], torch.bool),
    ("byte", [1.5, 0.7, 0.0], [1, 0, 0], torch.uint8),
])
def test_conversion_methods(method, values, expected, dtype):
    check(getattr(torch.tensor(values), method)(), expected, dtype)


def test_to_dtype():
    x = torch.tensor([1.5, -2.5])
    check(x.to(torch.int64), [1, -2], torch.int64)
    check(x.to(dtype=torch.float64), [1.5, -2.5], torch.float64)
    check(torch.tensor([300, -1]).to(torch.uint8), [44, 255], torch.uint8)    # integer casts wrap
    check(torch.tensor([1, 0]).type_as(torch.tensor([1.0])), [1.0, 0.0], torch.float32)
    check(torch.tensor([1, 2]).to(torch.tensor([1.0], dtype=torch.float64)), [1.0, 2.0], torch.float64)
    assert x.to(torch.float32).tolist() == [1.5, -2.5]


# ---------------------------------------------------------------- promotion

I64, I32, U8, B, F32, F64 = torch.int64, torch.int32, torch.uint8, torch.bool, torch.float32, torch.float64


def _t(values, dtype):
    return torch.tensor(values, dtype=dtype)


@pytest.mark.parametrize("make, dtype, values", [
    (lambda: _t([1, 2], I64) * 2.5, F32, [2.5, 5.0]),                       # int tensor * Python float
    (lambda: _t([1, 2], I32) * 3, I32, [3, 6]),                              # Python int does not widen
    (lambda: _t([1, 2], I64) + _t([1, 2], I32), I64, [2, 4]),
    (lambda: _t([1, 2], I32) + _t([3, 4], I64), I64, [4, 6]),
    (lambda: _t([1, 2], U8) + _t([1, 2], I32), I32, [2, 4]),
    (lambda: _t([1, 2], F32) + _t([1, 2], F64), F64, [2.0, 4.0]),
    (lambda: _t([1, 2], I64) / 2, F32, [0.5, 1.0]),                          # true division -> float
    (lambda: _t([-3, 3], I64) / _t([2, 2], I64), F32, [-1.5, 1.5]),
    (lambda: _t(3, I64) / _t(2, I64), F32, 1.5),
    (lambda: _t([1, 2], I32) // 2, I32, [0, 1]),
    (lambda: _t([1, 2], U8) + 1, U8, [2, 3]),
    (lambda: _t([1, 2], U8) * 1.5, F32, [1.5, 3.0]),
    (lambda: _t([2], U8) - _t([3], U8), U8, [255]),                          # uint8 wraps
    (lambda: _t([True, False], B) + _t([True, True], B), B, [True, True]),
    (lambda: _t([True, False], B) + 1, I64, [2, 1]),
    (lambda: _t([True, False], B) * 1.5, F32, [1.5, 0.0]),
    (lambda: _t([True], B) / 2, F32, [0.5]),
    (lambda: _t([True], B) + _t([1], U8), U8, [2]),
    (lambda: _t(5, I64) + 2.5, F32, 7.5),
    (lambda: _t(5, I64) + _t(2.0, F32), F32, 7.0),
    (lambda: _t(5, I32) + _t(2, I64), I64, 7),                               # both zero-dim: ordinary promotion
])
def test_promotion(make, dtype, values):
    check(make(), values, dtype)


@pytest.mark.parametrize("make, dtype, values", [
    (lambda: _t([1, 2], I32) + _t(5, I64), I32, [6, 7]),
    (lambda: _t([1, 2], U8) + _t(-5, I64), U8, [252, 253]),
    (lambda: _t([1, 2], U8) * _t(300, I64), U8, [44, 88]),
    (lambda: _t([1, 2], F32) + _t(5.0, F64), F32, [6.0, 7.0]),
    (lambda: _t([2], F32) * _t(2.5, F64), F32, [5.0]),
    (lambda: _t([2], U8) * _t(5, I32), U8, [10]),
    (lambda: _t([1, 2], I32) + _t(5.0, F32), F32, [6.0, 7.0]),              # a higher category still wins
    (lambda: _t([2], I64) * _t(2.5, F64), F64, [5.0]),
])
def test_zero_dim_tensors_do_not_widen(make, dtype, values):
    check(make(), values, dtype)


@pytest.mark.parametrize("make", [
    lambda: _t([1, 2], I64) < 2, lambda: _t([1, 2], I64) == _t([1, 3], I64), lambda: _t([1, 2], I32) != 1,
    lambda: _t([1, 2], I64) >= 1.5, lambda: _t([1.0, 2.0], F32) > _t([1], I64), lambda: _t([True], B) < 1,
    lambda: _t([1, 2], U8) <= _t([2.5, 0.5], F64),
])
def test_comparisons_give_bool(make):
    assert make().dtype is torch.bool


def test_comparison_values_across_dtypes():
    check(_t([1, 2], I64) >= 1.5, [False, True], B)
    check(_t([1, 2], U8) <= _t([2.5, 0.5], F64), [True, False], B)
    check(_t([True], B) < 1, [False], B)


def test_result_type_function():
    assert torch.result_type(torch.tensor([1]), 1.0) is torch.float32
    assert torch.result_type(torch.tensor([1], dtype=torch.int32), torch.tensor(1)) is torch.int32
    assert torch.result_type(torch.tensor([1], dtype=torch.int32), torch.tensor([1])) is torch.int64


@pytest.mark.parametrize("make, dtype", [
    (lambda: _t([1, 2], I64).sum(), I64), (lambda: _t([1, 2], I32).sum(), I64), (lambda: _t([1, 2], U8).sum(), I64),
    (lambda: _t([True], B).sum(), I64), (lambda: _t([1, 2], I32).prod(), I64), (lambda: _t([1, 2], I32).max(), I32),
    (lambda: _t([1, 2], I32).argmax(), I64), (lambda: _t([1, 2], I32).abs(), I32), (lambda: _t([1, 2], I32).exp(), F32),
    (lambda: _t([1, 2], F64).exp(), F64), (lambda: _t([4, 9], I64).sqrt(), F32), (lambda: _t([1, 2], I64) ** 2.0, F32),
    (lambda: _t([1, 2], F64).mean(), F64), (lambda: torch.sigmoid(_t([0, 1], I64)), F32),
])
def test_result_dtypes_of_reductions_and_functions(make, dtype):
    assert make().dtype is dtype


def test_integer_reductions_values():
    assert _t([100, 100, 100], U8).sum().item() == 300        # accumulates in int64, no uint8 wrap
    assert _t([True, True, False], B).sum().item() == 2
    np.testing.assert_allclose(_t([4, 9], I64).sqrt().numpy(), [2.0, 3.0])

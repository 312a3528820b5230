"""Getting values out as PyTorch programs do: item/tolist/float/int/bool, `__array__`, len,
iteration, format, and repr/str char for char (literal PyTorch 2.13 output with `torch`
renamed `fusegrad` in dtype names)."""
import numpy as np
import pytest

import fusegrad as torch


def test_item():
    assert torch.tensor(3.5).item() == 3.5 and type(torch.tensor(3.5).item()) is float
    assert torch.tensor([3]).item() == 3 and type(torch.tensor([3]).item()) is int
    assert torch.tensor([[True]]).item() is True
    assert type(torch.tensor([1], dtype=torch.uint8).item()) is int
    assert torch.tensor(0.1).item() == float(np.float32(0.1))
    assert (torch.tensor([1.0, 2.0]).sum() * 2).item() == 6.0


def test_item_of_many_elements_raises():
    with pytest.raises(RuntimeError, match="a Tensor with 2 elements cannot be converted to Scalar"):
        torch.tensor([1, 2]).item()
    with pytest.raises(RuntimeError, match="a Tensor with 0 elements cannot be converted to Scalar"):
        torch.zeros(0).item()


def test_tolist():
    assert torch.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert torch.tensor(2.5).tolist() == 2.5
    assert torch.tensor([1.5, 2.5]).tolist() == [1.5, 2.5]
    assert [type(v) for v in torch.tensor([1, 2]).tolist()] == [int, int]
    assert [type(v) for v in torch.tensor([1.0]).tolist()] == [float]
    assert torch.tensor([True, False]).tolist() == [True, False]
    assert torch.arange(6).view(2, 3).t().tolist() == [[0, 3], [1, 4], [2, 5]]
    assert torch.zeros(2, 0).tolist() == [[], []]


def test_python_number_conversions():
    assert float(torch.tensor(2.5)) == 2.5
    assert float(torch.tensor([2])) == 2.0
    assert int(torch.tensor(2.7)) == 2 and int(torch.tensor(-2.7)) == -2
    assert bool(torch.tensor(0.0)) is False and bool(torch.tensor([3])) is True
    assert [10, 20, 30][torch.tensor(1)] == 20              # __index__
    assert f"{torch.tensor([1.5, 2.0])[0]:.2f}" == "1.50"
    assert f"{torch.tensor(6.0)}" == "6.0" and f"{torch.tensor(3)}" == "3"      # 0-d formats as its item
    assert f"{torch.tensor([1.5])}" == "tensor([1.5000])"
    assert round(float(torch.tensor(1.0) / 3), 4) == 0.3333


def test_conversion_of_many_elements_raises_like_pytorch():
    for fn in (float, int):
        with pytest.raises(ValueError, match="only one element tensors can be converted to Python scalars"):
            fn(torch.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value is ambiguous"):
        bool(torch.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with no values is ambiguous"):
        bool(torch.tensor([]))
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value is ambiguous"):
        if torch.tensor([1.0, 2.0]) > 0:
            pass
    with pytest.raises(TypeError, match="only integer tensors of a single element can be converted to an index"):
        [1, 2][torch.tensor(1.0)]


def test_array_protocol():
    t = torch.tensor([[1, 2], [3, 4]])
    a = np.array(t)
    assert a.dtype == np.int64 and a.tolist() == [[1, 2], [3, 4]]
    assert np.asarray(torch.tensor([1.5]), dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(np.add(torch.tensor([1.0, 2.0]), 1), [2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(torch.arange(6).view(2, 3)[:, 1]), [1, 4])


def test_len_and_iteration():
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert len(t) == 2 and len(torch.zeros(5, 3)) == 5
    rows = [r.tolist() for r in t]
    assert rows == [[1.0, 2.0], [3.0, 4.0]]
    assert [r.item() for r in torch.tensor([1, 2, 3])] == [1, 2, 3]
    assert [r.shape for r in t] == [(2,), (2,)]
    assert sum(torch.tensor([1, 2, 3])).item() == 6
    a, b = torch.tensor([7, 8])
    assert (a.item(), b.item()) == (7, 8)
    assert 2 in torch.tensor([1, 2]) and 5 not in torch.tensor([1, 2])
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(torch.tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(torch.tensor(1.0))


def test_rows_from_iteration_are_views():
    t = torch.zeros(2, 2)
    for row in t:
        row.add_(1)
    assert t.tolist() == [[1.0, 1.0], [1.0, 1.0]]


# ---------------------------------------------------------------- printing (literal PyTorch output)

@pytest.mark.parametrize("make, text", [
    (lambda: torch.tensor(6.), "tensor(6.)"),
    (lambda: torch.tensor([10, 1]), "tensor([10,  1])"),
    (lambda: torch.tensor([[1, 2], [3, 4]]), "tensor([[1, 2],\n        [3, 4]])"),
    (lambda: torch.tensor([0.8762], requires_grad=True), "tensor([0.8762], requires_grad=True)"),
    (lambda: torch.tensor(5., requires_grad=True) + 12, "tensor(17., grad_fn=<AddBackward0>)"),
    (lambda: torch.tensor([1.5, 2.25, 3.0]), "tensor([1.5000, 2.2500, 3.0000])"),
    (lambda: torch.tensor([1.23456789]), "tensor([1.2346])"),
    (lambda: torch.tensor([-0.5, 2.0]), "tensor([-0.5000,  2.0000])"),
    (lambda: torch.tensor([1e-5, 1.0]), "tensor([1.0000e-05, 1.0000e+00])"),
    (lambda: torch.tensor([1e10, 1.0]), "tensor([1.0000e+10, 1.0000e+00])"),
    (lambda: torch.tensor([123456.789, 0.001]), "tensor([1.2346e+05, 1.0000e-03])"),
    (lambda: torch.tensor([0.1, 200.0, 3.14159]), "tensor([1.0000e-01, 2.0000e+02, 3.1416e+00])"),
    (lambda: torch.tensor([[0.001, 0.0002], [1.5, 1000.0]]),
     "tensor([[1.0000e-03, 2.0000e-04],\n        [1.5000e+00, 1.0000e+03]])"),
    (lambda: torch.tensor([1., 2.]).double(), "tensor([1., 2.], dtype=fusegrad.float64)"),
    (lambda: torch.tensor(2.5, dtype=torch.float64), "tensor(2.5000, dtype=fusegrad.float64)"),
    (lambda: torch.tensor([[1.5, -2.0], [3.25, 4.0]], dtype=torch.float64),
     "tensor([[ 1.5000, -2.0000],\n        [ 3.2500,  4.0000]], dtype=fusegrad.float64)"),
    (lambda: torch.tensor([1, 2], dtype=torch.int32), "tensor([1, 2], dtype=fusegrad.int32)"),
    (lambda: torch.tensor([1, 2], dtype=torch.uint8), "tensor([1, 2], dtype=fusegrad.uint8)"),
    (lambda: torch.tensor([True, False]), "tensor([ True, False])"),
    (lambda: torch.tensor(3), "tensor(3)"),
    (lambda: torch.tensor([]), "tensor([])"),
    (lambda: torch.zeros(2, 0), "tensor([], size=(2, 0))"),
    (lambda: torch.tensor(float("nan")), "tensor(nan)"),
    (lambda: torch.tensor([float("inf"), -1.5]), "tensor([    inf, -1.5000])"),
    (lambda: torch.arange(12).view(3, 4),
     "tensor([[ 0,  1,  2,  3],\n        [ 4,  5,  6,  7],\n        [ 8,  9, 10, 11]])"),
    (lambda: torch.tensor([[[1, 2]], [[3, 4]]]), "tensor([[[1, 2]],\n\n        [[3, 4]]])"),
    (lambda: torch.arange(2000.),
     "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n        1.9990e+03])"),
])
def test_repr_and_str_match_pytorch(make, text):
    t = make()
    assert repr(t) == text
    assert str(t) == text


def test_print_writes_the_repr(capsys):
    x = torch.tensor(5.0, requires_grad=True)
    y = x * 3 + 2
    print(y)
    print(x.grad)
    assert capsys.readouterr().out == "tensor(17., grad_fn=<AddBackward0>)\nNone\n"


def test_grad_fn_names_in_printing():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x * 2) == "tensor([2., 4.], grad_fn=<MulBackward0>)"
    assert repr(x.sum()) == "tensor(3., grad_fn=<SumBackward0>)"
    assert repr(x.mean()) == "tensor(1.5000, grad_fn=<MeanBackward0>)"
    assert repr(x[0]) == "tensor(1., grad_fn=<SelectBackward0>)"
    assert repr(x.view(2, 1)) == "tensor([[1.],\n        [2.]], grad_fn=<ViewBackward0>)"
    assert repr(torch.sigmoid(x)) == "tensor([0.7311, 0.8808], grad_fn=<SigmoidBackward0>)"
    assert repr(x.detach()) == "tensor([1., 2.])"
    y = x * 2
    y[0] = 5
    assert repr(y) == "tensor([5., 4.], grad_fn=<CopySlices>)"

"""Bad input raises what PyTorch raises: the same exception type, and a message with PyTorch's
key phrases (the shapes, sizes and dims involved). Each case lists the phrases PyTorch 2.13's
own message contains; fusegrad's may add context (the op, the user's line) around them, which
can lower-case a phrase's leading capital: phrases are compared ignoring case."""
import numpy as np
import pytest

import fusegrad as torch

CASES = {
    # wrong-typed data and arguments
    "tensor of str": (lambda: torch.tensor("abc"), TypeError, ["new(): invalid data type 'str'"]),
    "tensor of str in list": (lambda: torch.tensor([1, "a"]), TypeError, ["new(): invalid data type 'str'"]),
    "tensor of None": (lambda: torch.tensor(None), RuntimeError, ["Could not infer dtype of NoneType"]),
    "tensor of None in list": (lambda: torch.tensor([1, None]), RuntimeError, ["Could not infer dtype of NoneType"]),
    "tensor of dict": (lambda: torch.tensor({1: 2}), RuntimeError, ["Could not infer dtype of dict"]),
    "tensor of object": (lambda: torch.tensor(object()), RuntimeError, ["Could not infer dtype of object"]),
    "ragged list": (lambda: torch.tensor([[1, 2], [3, 4, 5]]), ValueError,
                    ["expected sequence of length 2 at dim 1 (got 3)"]),
    "ragged deeper": (lambda: torch.tensor([[[1, 2]], [[3]]]), ValueError,
                      ["expected sequence of length 2 at dim 2 (got 1)"]),
    "number where a list was": (lambda: torch.tensor([[1, 2], 3]), TypeError, ["not a sequence"]),
    "list where a number was": (lambda: torch.tensor([1, [2, 3]]), TypeError, ["'list' object cannot be interpreted"]),
    "numpy array of str": (lambda: torch.tensor(np.array(["a"])), TypeError,
                           ["can't convert np.ndarray of type numpy.", "The only supported types are"]),
    "from_numpy of a list": (lambda: torch.from_numpy([1, 2]), TypeError, ["expected np.ndarray (got list)"]),
    "add str": (lambda: torch.add(torch.zeros(2), "a"), TypeError, ["add(): argument 'other'", "not str"]),
    "tensor + None": (lambda: torch.zeros(2, 3) + None, TypeError, ["unsupported operand"]),
    "zeros of str": (lambda: torch.zeros("a"), TypeError, ["str"]),
    "zeros of float": (lambda: torch.zeros(2.5), TypeError, ["float"]),
    "zeros of negative": (lambda: torch.zeros(-1), RuntimeError, []),
    "arange step 0": (lambda: torch.arange(0, 5, 0), RuntimeError, ["step must be nonzero"]),
    "int requires grad": (lambda: torch.tensor([1, 2], requires_grad=True), RuntimeError,
                          ["Tensors of floating point", "can require gradients"]),
    "numpy of requires_grad": (lambda: torch.tensor([1.0], requires_grad=True).numpy(), RuntimeError,
                               ["Can't call numpy() on Tensor that requires grad. "
                                "Use tensor.detach().numpy() instead."]),
    "bad device": (lambda: torch.zeros(2, 3).to("tpu"), RuntimeError,
                   ["Expected one of cpu, cuda", "device type at start of device string: tpu"]),
    # shapes
    "cat sizes": (lambda: torch.cat([torch.zeros(2, 3), torch.zeros(2, 4)]), RuntimeError,
                  ["Sizes of tensors must match except in dimension 0. Expected size 3 but got size 4 for tensor "
                   "number 1 in the list."]),
    "cat sizes dim 1": (lambda: torch.cat([torch.zeros(3, 1), torch.zeros(2, 2)], dim=1), RuntimeError,
                        ["Sizes of tensors must match except in dimension 1. Expected size 3 but got size 2 for "
                         "tensor number 1 in the list."]),
    "cat ranks": (lambda: torch.cat([torch.zeros(2, 3), torch.zeros(3)]), RuntimeError,
                  ["Tensors must have same number of dimensions: got 2 and 1"]),
    "cat empty": (lambda: torch.cat([]), ValueError, ["expected a non-empty list of Tensors"]),
    "cat dim": (lambda: torch.cat([torch.zeros(2, 3), torch.zeros(2, 3)], dim=2), IndexError,
                ["Dimension out of range (expected to be in range of [-2, 1], but got 2)"]),
    "stack sizes": (lambda: torch.stack([torch.zeros(2, 3), torch.zeros(3, 2)]), RuntimeError,
                    ["stack expects each tensor to be equal size, but got [2, 3] at entry 0 and [3, 2] at entry 1"]),
    "view size": (lambda: torch.zeros(2, 3).view(4), RuntimeError, ["shape '[4]' is invalid for input of size 6"]),
    "view -1": (lambda: torch.zeros(2, 3).view(4, -1), RuntimeError,
                ["shape '[4, -1]' is invalid for input of size 6"]),
    "view two -1": (lambda: torch.zeros(2, 3).view(-1, -1), RuntimeError, ["only one dimension can be inferred"]),
    "view strides": (lambda: torch.zeros(2, 3).t().view(6), RuntimeError,
                     ["view size is not compatible with input tensor's size and stride", "Use .reshape(...) instead."]),
    "reshape size": (lambda: torch.zeros(2, 3).reshape(7), RuntimeError,
                     ["shape '[7]' is invalid for input of size 6"]),
    "broadcast": (lambda: torch.zeros(2, 3) + torch.zeros(3, 2), RuntimeError,
                  ["The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 1"]),
    "broadcast 1-d": (lambda: torch.zeros(2, 3) * torch.zeros(4), RuntimeError,
                      ["The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1"]),
    "matmul shapes": (lambda: torch.zeros(2, 3) @ torch.zeros(2, 3), RuntimeError,
                      ["mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)"]),
    "matmul 0-d": (lambda: torch.zeros(2, 3) @ torch.tensor(2.0), RuntimeError,
                   ["both arguments to matmul need to be at least 1D, but they are 2D and 0D"]),
    "mm of a vector": (lambda: torch.zeros(2, 3).mm(torch.zeros(3)), RuntimeError, ["mat2 must be a matrix"]),
    "expand": (lambda: torch.zeros(2, 3).expand(3, 3), RuntimeError,
               ["The expanded size of the tensor (3) must match the existing size (2) at non-singleton dimension 0.  "
                "Target sizes: [3, 3].  Tensor sizes: [2, 3]"]),
    "copy_ shapes": (lambda: torch.zeros(2).copy_(torch.zeros(3)), RuntimeError, ["(2)", "(3)", "dimension 0"]),
    "setitem shapes": (lambda: torch.zeros(3, 4).__setitem__(0, torch.zeros(2)), RuntimeError,
                       ["The expanded size of the tensor (4) must match the existing size (2) at non-singleton "
                        "dimension 0.  Target sizes: [4].  Tensor sizes: [2]"]),
    "permute length": (lambda: torch.zeros(2, 3).permute(0), RuntimeError,
                       ["number of dimensions in the tensor input does not match the length of the desired ordering "
                        "of dimensions i.e. input.dim() = 2 is not equal to len(dims) = 1"]),
    # dims
    "sum dim": (lambda: torch.zeros(2, 3).sum(2), IndexError,
                ["Dimension out of range (expected to be in range of [-2, 1], but got 2)"]),
    "sum negative dim": (lambda: torch.zeros(2, 3).sum(-3), IndexError,
                         ["Dimension out of range (expected to be in range of [-2, 1], but got -3)"]),
    "max dim": (lambda: torch.zeros(2, 3).max(dim=5), IndexError,
                ["Dimension out of range (expected to be in range of [-2, 1], but got 5)"]),
    "transpose dim": (lambda: torch.zeros(2, 3).transpose(0, 2), IndexError,
                      ["Dimension out of range (expected to be in range of [-2, 1], but got 2)"]),
    "unsqueeze dim": (lambda: torch.zeros(2, 3).unsqueeze(3), IndexError,
                      ["Dimension out of range (expected to be in range of [-3, 2], but got 3)"]),
    "squeeze dim": (lambda: torch.zeros(2, 3).squeeze(3), IndexError,
                    ["Dimension out of range (expected to be in range of [-2, 1], but got 3)"]),
    "size dim": (lambda: torch.zeros(2, 3).size(2), IndexError,
                 ["Dimension out of range (expected to be in range of [-2, 1], but got 2)"]),
    # indexing
    "index past the end": (lambda: torch.zeros(2, 3)[2], IndexError,
                           ["index 2 is out of bounds for dimension 0 with size 2"]),
    "index past the end dim 1": (lambda: torch.zeros(2, 3)[0, 3], IndexError,
                                 ["index 3 is out of bounds for dimension 1 with size 3"]),
    "too many indices": (lambda: torch.zeros(2, 3)[0, 0, 0], IndexError,
                         ["too many indices for tensor of dimension 2"]),
    "index 0-d": (lambda: torch.tensor(5.0)[0], IndexError, ["invalid index of a 0-dim tensor"]),
    "float index": (lambda: torch.zeros(2, 3)[1.5], IndexError,
                    ["only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are valid "
                     "indices (got float)"]),
    # values
    "item of many": (lambda: torch.zeros(2, 3).item(), RuntimeError,
                     ["a Tensor with 6 elements cannot be converted to Scalar"]),
    "item of none": (lambda: torch.zeros(0).item(), RuntimeError,
                     ["a Tensor with 0 elements cannot be converted to Scalar"]),
    "float of many": (lambda: float(torch.zeros(2)), ValueError,
                      ["only one element tensors can be converted to Python scalars"]),
    "bool of many": (lambda: bool(torch.zeros(2)), RuntimeError,
                     ["Boolean value of Tensor with more than one value is ambiguous"]),
    "len of 0-d": (lambda: len(torch.tensor(1.0)), TypeError, ["len() of a 0-d tensor"]),
    "mean of ints": (lambda: torch.tensor([1, 2]).mean(), RuntimeError,
                     ["mean(): could not infer output dtype.", "Got: Long"]),
    "max of empty": (lambda: torch.zeros(0).max(), RuntimeError,
                     ["Expected reduction dim to be specified for input.numel() == 0"]),
    "bool minus bool": (lambda: torch.tensor([True]) - torch.tensor([False]), RuntimeError,
                        ["Subtraction, the `-` operator, with two bool tensors is not supported"]),
    "negate bool": (lambda: -torch.tensor([True]), RuntimeError,
                    ["Negation, the `-` operator, on a bool tensor is not supported"]),
    "clamp without bounds": (lambda: torch.zeros(2).clamp(), RuntimeError,
                             ["torch.clamp: At least one of 'min' or 'max' must not be None"]),
    "float into int in-place": (lambda: torch.tensor([1, 2]).add_(1.5), RuntimeError,
                                ["result type Float can't be cast to the desired output type Long"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_raises_like_pytorch(name):
    fn, exc_type, phrases = CASES[name]
    with pytest.raises(exc_type) as info:
        fn()
    message = str(info.value)
    for phrase in phrases:
        assert phrase.lower() in message.lower(), f"{phrase!r} not in {message!r}"


def test_errors_leave_tensors_unchanged():
    x = torch.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError):
        x.copy_(torch.zeros(3))
    with pytest.raises(IndexError):
        x[5] = 1.0
    with pytest.raises(RuntimeError):
        x.view(3)
    assert x.tolist() == [1.0, 2.0]
    x.add_(1)
    assert x.tolist() == [2.0, 3.0]


def test_shape_errors_raise_at_the_users_line_before_computing():
    from fusegrad.realize import STATS
    runs = STATS["runs"]
    a, b = torch.ones(2, 3), torch.ones(3, 2)
    with pytest.raises(RuntimeError) as info:
        (a * 2) + b
    assert "test_bad_input.py" in str(info.value)        # where the user wrote it
    assert STATS["runs"] == runs

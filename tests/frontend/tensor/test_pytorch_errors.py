"""Cases where fusegrad gave a wrong result or a raw internal error, and PyTorch 2.13 gives a
value or a clear error (issue 11, "Unclear errors"). Expected values and messages are PyTorch
2.13's, recorded as literals. fusegrad's messages carry PyTorch's text plus the op, the operand
types and the user's line; `raises` checks PyTorch's phrases (ignoring case) everywhere and
the op and line only on fusegrad, so the file also runs against PyTorch with the import changed.
"""
import inspect
import os

import numpy as np
import pytest

import fusegrad as torch

ON_FUSEGRAD = torch.__name__ == "fusegrad"
OVERLAP = ("unsupported operation: some elements of the input tensor and the written-to tensor refer to a single "
           "memory location. Please clone() the tensor before performing the operation.")
BYTE_ORDER = ("given numpy array has byte order different from the native byte order. Conversion between byte "
              "orders is currently not supported.")


def raises(fn, exc_type, phrases, op=None):
    """`fn()` raises `exc_type` whose message holds `phrases`; on fusegrad it also names `op`
    and the line of this file that made the call."""
    with pytest.raises(exc_type) as info:
        fn()
    message = str(info.value)
    for phrase in phrases:
        assert phrase.lower() in message.lower(), f"{phrase!r} not in {message!r}"
    if ON_FUSEGRAD and op is not None:
        caller = inspect.getsourcelines(fn)[1]
        assert op in message, message
        assert f"{os.path.basename(__file__)}:{caller}" in message, message


def _rng_pair(shape_a, shape_b):
    rng = np.random.default_rng(0)
    return rng.standard_normal(shape_a), rng.standard_normal(shape_b)


# ---------------------------------------------------------------- batched matmul broadcasting

def test_matmul_broadcasts_batch_dims_of_both_sides():
    a, b = _rng_pair((2, 1, 4, 5), (1, 3, 5, 4))
    out = torch.tensor(a) @ torch.tensor(b)
    assert tuple(out.shape) == (2, 3, 4, 4)
    np.testing.assert_allclose(out.numpy(), np.matmul(a, b), rtol=1e-12)


def test_matmul_of_ones_broadcast_both_sides():
    out = torch.ones(2, 1, 4, 5) @ torch.ones(1, 3, 5, 4)
    assert tuple(out.shape) == (2, 3, 4, 4)
    np.testing.assert_array_equal(out.numpy(), np.full((2, 3, 4, 4), 5.0, np.float32))


@pytest.mark.parametrize("shape_a, shape_b", [
    ((3, 1, 4, 5), (2, 5, 3)),          # ranks differ, both broadcast
    ((2, 1, 1, 4, 5), (3, 1, 5, 4)),
    ((5,), (2, 3, 5, 4)),               # 1-D @ N-D
    ((2, 3, 4, 5), (5,)),               # N-D @ 1-D
    ((4, 5), (2, 1, 5, 3)),
])
def test_matmul_broadcast_matches_numpy(shape_a, shape_b):
    a, b = _rng_pair(shape_a, shape_b)
    out = torch.tensor(a) @ torch.tensor(b)
    assert tuple(out.shape) == np.matmul(a, b).shape
    np.testing.assert_allclose(out.numpy(), np.matmul(a, b), rtol=1e-12)


def _finite_difference(f, arrays, which, eps=1e-6):
    grad = np.zeros_like(arrays[which])
    for index in np.ndindex(grad.shape):
        up = [x.copy() for x in arrays]
        down = [x.copy() for x in arrays]
        up[which][index] += eps
        down[which][index] -= eps
        grad[index] = (f(*up) - f(*down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("shape_a, shape_b", [
    ((2, 1, 4, 5), (1, 3, 5, 4)),
    ((5,), (2, 5, 4)),
    ((2, 3, 4, 5), (5,)),
])
def test_broadcast_matmul_gradients_reduce_to_operand_shapes(shape_a, shape_b):
    a, b = _rng_pair(shape_a, shape_b)
    weight = np.random.default_rng(1).standard_normal(np.matmul(a, b).shape)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ((ta @ tb) * torch.tensor(weight)).sum().backward()
    loss = lambda x, y: (np.matmul(x, y) * weight).sum()
    assert tuple(ta.grad.shape) == shape_a and tuple(tb.grad.shape) == shape_b
    np.testing.assert_allclose(ta.grad.numpy(), _finite_difference(loss, [a, b], 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tb.grad.numpy(), _finite_difference(loss, [a, b], 1), rtol=1e-6, atol=1e-8)


@pytest.mark.skipif(not ON_FUSEGRAD, reason="fusegrad.compile")
def test_broadcast_matmul_and_its_gradient_under_compile():
    a, b = _rng_pair((2, 1, 4, 5), (1, 3, 5, 4))
    w = torch.tensor(b, requires_grad=True)

    @torch.compile
    def step(x):
        out = x @ w
        out.sum().backward()
        return out

    out = step(torch.tensor(a))
    np.testing.assert_allclose(out.detach().numpy(), np.matmul(a, b), rtol=1e-12)
    expected = np.matmul(np.swapaxes(a, -1, -2), np.ones((2, 3, 4, 4))).sum(axis=0, keepdims=True)
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-12)


# ---------------------------------------------------------------- copy_

def test_copy_into_a_clone_prints_the_copied_values():
    x = torch.tensor([1., 2.]).clone()
    x.copy_(torch.tensor([3., 4.]))
    assert repr(x) == "tensor([3., 4.])"


def test_copy_keeps_its_own_memory():
    src = torch.tensor([3., 4.])
    x = torch.zeros(2)
    x.copy_(src)
    src.add_(1)
    np.testing.assert_array_equal(x.numpy(), [3., 4.])


def test_copy_broadcasts_the_source():
    x = torch.zeros(2, 3)
    x.copy_(torch.tensor([1., 2., 3.]))
    np.testing.assert_array_equal(x.numpy(), [[1., 2., 3.], [1., 2., 3.]])


def test_copy_converts_float_to_int_and_bool():
    x = torch.zeros(3, dtype=torch.int64)
    x.copy_(torch.tensor([1.7, -2.5, 3.2]))
    assert x.dtype == torch.int64 and x.tolist() == [1, -2, 3]
    m = torch.zeros(3, dtype=torch.bool)
    m.copy_(torch.tensor([1.7, 0., 3.2]))
    assert m.tolist() == [True, False, True]


def test_copy_of_a_number_fills():
    assert torch.zeros(2).copy_(3.0).tolist() == [3., 3.]


def test_copy_into_views():
    x = torch.zeros(2, 3)
    x[:, 1].copy_(torch.tensor([5., 6.]))
    np.testing.assert_array_equal(x.numpy(), [[0., 5., 0.], [0., 6., 0.]])
    y = torch.zeros(2, 3)
    y.t()[0].copy_(torch.tensor([5., 6.]))
    np.testing.assert_array_equal(y.numpy(), [[5., 0., 0.], [6., 0., 0.]])


def test_copy_records_copy_backwards():
    src = torch.tensor([1., 2.], requires_grad=True)
    x = torch.zeros(2)
    x.copy_(src)
    assert x.grad_fn.name().endswith("CopyBackwards")     # torch::autograd::CopyBackwards
    (x * torch.tensor([3., 4.])).sum().backward()
    assert src.grad.tolist() == [3., 4.]


def test_copy_into_a_view_records_copy_slices():
    src = torch.tensor([1., 2.], requires_grad=True)
    x = torch.zeros(3, 2)
    x[1].copy_(src * 2)
    assert x.grad_fn.name().endswith("CopySlices")        # torch::autograd::CopySlices
    (x * torch.arange(6.).reshape(3, 2)).sum().backward()
    assert src.grad.tolist() == [4., 6.]


def test_copy_gradient_sums_the_broadcast_and_converts_back():
    src = torch.tensor(2., requires_grad=True)
    x = torch.zeros(3, 2, dtype=torch.float64)
    x.copy_(src)
    x.sum().backward()
    assert src.grad.dtype == torch.float32 and src.grad.item() == 6.0


def test_copy_gives_the_overwritten_value_a_zero_gradient():
    src = torch.tensor([1., 2.], requires_grad=True)
    w = torch.tensor([5., 6.], requires_grad=True)
    x = w * 1
    x.copy_(src)
    (x * torch.tensor([3., 4.])).sum().backward()
    assert src.grad.tolist() == [3., 4.]
    assert w.grad.tolist() == [0., 0.]


def test_copy_into_a_leaf_that_requires_grad():
    x = torch.zeros(2, requires_grad=True)
    raises(lambda: x.copy_(torch.tensor([1., 2.])), RuntimeError,
           ["a leaf Variable that requires grad is being used in an in-place operation."])


def test_copy_of_a_list():
    raises(lambda: torch.zeros(2).copy_([1, 2]), TypeError,
           ["copy_(): argument 'other' (position 1) must be Tensor, not list"])


def test_copy_of_a_source_that_does_not_broadcast():
    raises(lambda: torch.zeros(2, 3).copy_(torch.tensor([1., 2.])), RuntimeError,
           ["The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 1"], "copy_")


def test_copy_of_a_source_with_more_dims():
    raises(lambda: torch.zeros(3).copy_(torch.zeros(2, 3)), RuntimeError,
           ["output with shape [3] doesn't match the broadcast shape [2, 3]"], "copy_")


def test_inplace_result_must_keep_the_written_shape():
    raises(lambda: torch.zeros(3).add_(torch.zeros(2, 3)), RuntimeError,
           ["output with shape [3] doesn't match the broadcast shape [2, 3]"], "add_")


# ---------------------------------------------------------------- max / argmax over odd dims

def test_max_over_a_dim_when_another_dim_is_empty():
    values, indices = torch.zeros(2, 0).max(0)
    assert tuple(values.shape) == (0,) and values.dtype == torch.float32
    assert tuple(indices.shape) == (0,) and indices.dtype == torch.int64
    kept = torch.zeros(2, 0).max(0, keepdim=True)
    assert tuple(kept.values.shape) == (1, 0) and tuple(kept.indices.shape) == (1, 0)


def test_min_and_argmax_over_a_dim_when_another_dim_is_empty():
    assert tuple(torch.zeros(2, 0).min(0).values.shape) == (0,)
    assert tuple(torch.zeros(0, 2).argmax(1).shape) == (0,)


def test_max_over_an_empty_dim():
    raises(lambda: torch.zeros(0, 2).max(0), IndexError, ["Expected reduction dim 0 to have non-zero size."], "max")


def test_argmax_over_an_empty_dim():
    raises(lambda: torch.zeros(0, 2).argmax(0), IndexError, ["Expected reduction dim 0 to have non-zero size."],
           "argmax")


def test_argmax_of_a_0d_tensor_over_dim_0_and_minus_1():
    x = torch.tensor(3.)
    assert x.argmax(0).item() == 0 and tuple(x.argmax(0).shape) == ()
    assert x.argmin(-1).item() == 0
    assert tuple(x.argmax(0, keepdim=True).shape) == ()


def test_max_of_a_0d_tensor_over_dim_0():
    values, indices = torch.tensor(3.).max(0)
    assert values.item() == 3.0 and tuple(values.shape) == ()
    assert indices.item() == 0 and indices.dtype == torch.int64 and tuple(indices.shape) == ()
    assert torch.tensor(3).min(-1, keepdim=True).values.item() == 3


def test_max_of_a_0d_tensor_passes_the_gradient():
    x = torch.tensor(3., requires_grad=True)
    (torch.max(x, 0).values * 2).backward()
    assert x.grad.item() == 2.0


def test_max_of_a_0d_tensor_over_dim_1():
    raises(lambda: torch.tensor(3.).max(1), IndexError,
           ["Dimension out of range (expected to be in range of [-1, 0], but got 1)"], "max")


# ---------------------------------------------------------------- bool tensors

def test_sign_of_bool_is_the_tensor():
    out = torch.tensor([True, False]).sign()
    assert out.dtype == torch.bool and out.tolist() == [True, False]


@pytest.mark.parametrize("op, kernel", [("floor", "floor_vml_cpu"), ("ceil", "ceil_vml_cpu"), ("abs", "abs_cpu"),
                                        ("round", "round_vml_cpu")])
def test_rounding_and_abs_of_bool(op, kernel):
    raises(lambda: getattr(torch.tensor([True, False]), op)(), NotImplementedError,
           [f'"{kernel}" not implemented for \'Bool\''], op)


def test_relu_of_bool():
    raises(lambda: torch.tensor([True, False]).relu(), RuntimeError, ["Boolean inputs not supported for relu"], "relu")
    raises(lambda: torch.nn.functional.relu(torch.tensor([True])), RuntimeError,
           ["Boolean inputs not supported for relu"], "relu")


def test_softmax_of_bool():
    raises(lambda: torch.tensor([True, False]).softmax(0), NotImplementedError,
           ['"softmax_lastdim_kernel_impl" not implemented for \'Bool\''], "softmax")
    raises(lambda: torch.nn.functional.softmax(torch.tensor([[True, False]]), 0), NotImplementedError,
           ['"softmax_kernel_impl" not implemented for \'Bool\''], "softmax")


def test_log_softmax_of_integers():
    raises(lambda: torch.tensor([1, 2]).log_softmax(0), NotImplementedError,
           ['"log_softmax_lastdim_kernel_impl" not implemented for \'Long\''], "log_softmax")


def test_softmax_of_integers_with_a_float_dtype():
    out = torch.softmax(torch.tensor([1, 2]), 0, dtype=torch.float64)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), [0.2689414213699951, 0.7310585786300049], rtol=1e-12)


def test_negation_of_bool():
    raises(lambda: -torch.tensor([True]), RuntimeError,
           ["Negation, the `-` operator, on a bool tensor is not supported. If you are trying to invert a mask, "
            "use the `~` or `logical_not()` operator instead."], "neg")


# ---------------------------------------------------------------- numpy byte order

def test_tensor_of_a_big_endian_array():
    a = np.array([1, 2], dtype=">f4")
    raises(lambda: torch.tensor(a), ValueError, [BYTE_ORDER])
    raises(lambda: torch.tensor(a, dtype=torch.float64), ValueError, [BYTE_ORDER])


def test_from_numpy_and_as_tensor_of_a_big_endian_array():
    a = np.array([1, 2], dtype=">i8")
    raises(lambda: torch.from_numpy(a), ValueError, [BYTE_ORDER])
    raises(lambda: torch.as_tensor(a), ValueError, [BYTE_ORDER])


def test_single_byte_arrays_have_no_byte_order():
    assert torch.tensor(np.array([1, 2], dtype=">u1")).tolist() == [1, 2]
    assert torch.from_numpy(np.array([1, 0], dtype=">?")).tolist() == [True, False]


# ---------------------------------------------------------------- in-place ops on overlapping memory

def test_add_of_own_transpose():
    x = torch.ones(2, 2)
    raises(lambda: x.add_(x.t()), RuntimeError, [OVERLAP], "add_")


def test_iadd_of_own_transpose():
    def iadd():
        x = torch.arange(4.).reshape(2, 2)
        x += x.T
    raises(iadd, RuntimeError, [OVERLAP])


def test_copy_of_own_transpose_and_shifted_slice():
    x = torch.ones(2, 2)
    raises(lambda: x.copy_(x.t()), RuntimeError, [OVERLAP], "copy_")
    y = torch.arange(4.)
    raises(lambda: y[1:].copy_(y[:-1]), RuntimeError, [OVERLAP], "copy_")


def test_add_of_own_row_broadcast():
    x = torch.ones(2, 2)
    raises(lambda: x.add_(x[0]), RuntimeError, [OVERLAP], "add_")


def test_overlap_through_detach_and_clamp():
    x = torch.arange(4.).reshape(2, 2)
    raises(lambda: x.add_(x.detach().t()), RuntimeError, [OVERLAP], "add_")
    raises(lambda: x.clamp_(max=x.t()), RuntimeError, [OVERLAP], "clamp_")


def test_inplace_ops_that_pytorch_allows_on_shared_memory():
    x = torch.arange(4.)
    x.mul_(x)                                    # the very same elements
    assert x.tolist() == [0., 1., 4., 9.]
    y = torch.ones(4)
    y[::2].add_(y[1::2])                         # strided: PyTorch does not check
    assert y.tolist() == [2., 1., 2., 1.]
    z = torch.arange(4.)
    z[:2].copy_(z[2:])                           # disjoint
    assert z.tolist() == [2., 3., 2., 3.]
    w = torch.arange(4.).reshape(2, 2)
    w.add_(w.reshape(1, 2, 2)[0])                # same elements through another view
    assert w.tolist() == [[0., 2.], [4., 6.]]

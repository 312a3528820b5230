"""Math as PyTorch programs write it: operators (reflected and in-place forms too), functions
and methods, reductions with dim/keepdim, comparisons, matrix products on floats and int64.
Expected values come from numpy in the same dtype."""
import operator

import numpy as np
import pytest
from support import NP, check

import fusegrad as torch

A = np.array([[1.5, -2.0, 3.25], [0.5, 4.0, -1.0]], np.float32)
B = np.array([[2.0, 0.5, -1.5], [3.0, -0.25, 2.0]], np.float32)
IA = np.array([[7, -3, 4], [-8, 5, 2]], np.int64)
IB = np.array([[2, 3, -3], [3, -2, 5]], np.int64)


def close(t, expected, dtype=torch.float32, rtol=1e-6, atol=1e-6):
    assert t.dtype == dtype, (t.dtype, dtype)
    expected = np.asarray(expected, NP[dtype])
    assert tuple(t.shape) == expected.shape
    np.testing.assert_allclose(t.detach().numpy(), expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- operators

OPS = {"+": (operator.add, np.add), "-": (operator.sub, np.subtract), "*": (operator.mul, np.multiply),
       "/": (operator.truediv, np.true_divide), "//": (operator.floordiv, np.floor_divide),
       "%": (operator.mod, np.mod)}


@pytest.mark.parametrize("op", sorted(OPS))
def test_float_operators_tensor_tensor_scalar_and_reflected(op):
    fn, ref = OPS[op]
    a, b = torch.tensor(A), torch.tensor(B)
    close(fn(a, b), ref(A, B))
    close(fn(a, 2.5), ref(A, np.float32(2.5)))
    close(fn(3, a), ref(np.float32(3), A))             # reflected: int on the left
    close(fn(a, b[0]), ref(A, B[0]))                   # broadcasting


@pytest.mark.parametrize("op", ["+", "-", "*", "//", "%"])
def test_int_operators_follow_python_floor_semantics(op):
    fn, ref = OPS[op]
    a, b = torch.tensor(IA), torch.tensor(IB)
    check(fn(a, b), ref(IA, IB), torch.int64)
    check(fn(a, 3), ref(IA, 3), torch.int64)
    check(fn(10, b), ref(10, IB), torch.int64)
    check(fn(a, -4), ref(IA, -4), torch.int64)


def test_int_true_division_is_float():
    close(torch.tensor(IA) / torch.tensor(IB), (IA / IB).astype(np.float32))
    close(10 / torch.tensor([1, 2]), [10.0, 5.0])
    close(torch.tensor([1, 2]) / 2, [0.5, 1.0])


def test_float_power():
    a = torch.tensor(np.abs(A))
    close(a ** 2, np.abs(A) ** 2)
    close(a ** 0.5, np.abs(A) ** 0.5)
    close(2.0 ** a, np.float32(2.0) ** np.abs(A))
    close(a ** torch.tensor(B), np.abs(A) ** B, rtol=1e-5)
    close(torch.tensor([2.0, 3.0]) ** torch.tensor([2, 3]), [4.0, 27.0])
    close(torch.tensor([2, 3]) ** 2.0, [4.0, 9.0])
    close(torch.pow(torch.tensor([1.0, 2.0]), 3), [1.0, 8.0])
    close(torch.tensor([1.0, 2.0]).pow(2), [1.0, 4.0])


def test_int_power():
    check(torch.tensor([2, 3]) ** 2, [4, 9], torch.int64)
    check(2 ** torch.tensor([2, 3]), [4, 8], torch.int64)


def test_expressions_from_tutorials():
    x = torch.tensor([1.0, 2.0, 3.0])
    close(x ** 3 + 3 * x ** 2 - 5 * x + 4, [3.0, 14.0, 43.0])
    a, b = torch.tensor([2.0, 3.0]), torch.tensor([6.0, 4.0])
    close(3 * a ** 3 - b ** 2, [-12.0, 65.0])
    X = torch.arange(12).view(3, 4)
    check(X * 10, np.arange(12).reshape(3, 4) * 10, torch.int64)


@pytest.mark.parametrize("op, method", [("+=", "add_"), ("-=", "sub_"), ("*=", "mul_"), ("/=", "div_")])
def test_augmented_assignment_is_inplace(op, method):
    a = torch.tensor(A)
    alias = a
    exec(f"a {op} torch.tensor(B)")
    assert a is alias
    close(alias, OPS[op[0]][1](A, B))


def test_unary_minus_abs_pos():
    close(-torch.tensor(A), -A)
    check(-torch.tensor([1, -2]), [-1, 2], torch.int64)
    close(abs(torch.tensor(A)), np.abs(A))
    check(abs(torch.tensor([1, -2])), [1, 2], torch.int64)
    close(torch.abs(torch.tensor([1.5, -2.0])), [1.5, 2.0])
    close(torch.tensor(A).abs(), np.abs(A))
    close(+torch.tensor(A), A)


# ---------------------------------------------------------------- functions and methods

def test_functions_and_methods_agree_with_numpy():
    a, b = torch.tensor(A), torch.tensor(B)
    for name, ref in [("add", A + B), ("sub", A - B), ("mul", A * B), ("div", A / B), ("maximum", np.maximum(A, B)),
                      ("minimum", np.minimum(A, B))]:
        close(getattr(torch, name)(a, b), ref)
        close(getattr(a, name)(b), ref)
    close(torch.add(a, b, alpha=2), A + 2 * B)
    close(a.sub(b, alpha=0.5), A - 0.5 * B)
    check(torch.add(torch.tensor([1, 2]), torch.tensor([3, 4])), [4, 6], torch.int64)
    check(torch.add(torch.tensor([1, 2]), 3, alpha=2), [7, 8], torch.int64)
    check(torch.mul(torch.tensor([1, 2]), 3), [3, 6], torch.int64)
    close(torch.div(torch.tensor([1, 2]), 4), [0.25, 0.5])
    check(torch.div(torch.tensor([-7, 7]), 2, rounding_mode="floor"), [-4, 3], torch.int64)
    check(torch.div(torch.tensor([-7, 7]), 2, rounding_mode="trunc"), [-3, 3], torch.int64)
    close(torch.div(torch.tensor([-7.0, 7.0]), 2, rounding_mode="trunc"), [-3.0, 3.0])


@pytest.mark.parametrize("name, ref, positive", [
    ("exp", np.exp, False), ("log", np.log, True), ("sqrt", np.sqrt, True), ("sin", np.sin, False),
    ("cos", np.cos, False), ("tanh", np.tanh, False), ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), False),
    ("relu", lambda x: np.maximum(x, 0), False),
])
def test_elementwise_functions(name, ref, positive):
    x = np.abs(A) + 0.1 if positive else A
    expected = ref(x.astype(np.float64)).astype(np.float32)
    close(getattr(torch, name)(torch.tensor(x)), expected, rtol=2e-6)
    close(getattr(torch.tensor(x), name)(), expected, rtol=2e-6)


def test_integer_inputs_of_float_functions():
    close(torch.exp(torch.tensor([0, 1])), [1.0, np.e])
    close(torch.log(torch.tensor([1, 2])), [0.0, np.log(2)])
    close(torch.sqrt(torch.tensor([4, 2])), [2.0, np.sqrt(2)])
    close(torch.sigmoid(torch.tensor([0, 1])), [0.5, 1 / (1 + np.exp(-1))])
    check(torch.relu(torch.tensor([-1, 2])), [0, 2], torch.int64)


def test_clamp():
    x = torch.tensor([-1.0, 2.0, 5.0])
    close(torch.clamp(x, 0, 3), [0.0, 2.0, 3.0])
    close(torch.clamp(x, min=0), [0.0, 2.0, 5.0])
    close(torch.clamp(x, max=0), [-1.0, 0.0, 0.0])
    close(x.clamp(min=0.5, max=1.5), [0.5, 1.5, 1.5])
    close(x.clip(0, 1), [0.0, 1.0, 1.0])
    check(torch.clamp(torch.tensor([-1, 2, 5]), 0, 3), [0, 2, 3], torch.int64)
    close(torch.clamp(torch.tensor([-1, 2, 5]), 0.5, 3), [0.5, 2.0, 3.0])     # a float bound promotes
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        x.clamp()


def test_where():
    cond = torch.tensor([True, False, True])
    close(torch.where(cond, torch.tensor([1, 2, 3]), torch.tensor([4.0, 5.0, 6.0])), [1.0, 5.0, 3.0])
    check(torch.where(cond, torch.tensor([1, 2, 3]), 0), [1, 0, 3], torch.int64)
    close(torch.where(cond, 1.0, 0.0), [1.0, 0.0, 1.0])
    x = torch.tensor(A)
    close(torch.where(x > 0, x, torch.zeros(1)), np.where(A > 0, A, 0))
    close(x.where(x > 0, -1.0), np.where(A > 0, A, -1))


# ---------------------------------------------------------------- reductions

M = np.array([[1.0, 5.0, 2.0], [3.0, -4.0, 6.0]], np.float32)
IM = np.array([[1, 5, 2], [3, -4, 6]], np.int64)


@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean(dim, keepdim):
    kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    np_kw = {"axis": dim, "keepdims": keepdim and dim is not None}
    close(torch.tensor(M).sum(**kw), M.sum(**np_kw))
    close(torch.tensor(M).mean(**kw), M.mean(**np_kw))
    check(torch.tensor(IM).sum(**kw), IM.sum(**np_kw), torch.int64)
    close(torch.sum(torch.tensor(M), **kw), M.sum(**np_kw))
    close(torch.mean(torch.tensor(M), **kw), M.mean(**np_kw))


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_prod(dim, keepdim):
    kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    np_kw = {"axis": dim, "keepdims": keepdim and dim is not None}
    close(torch.tensor(M).prod(**kw), M.prod(**np_kw))
    check(torch.tensor(IM).prod(**kw), IM.prod(**np_kw), torch.int64)


def test_max_min_without_dim():
    check(torch.tensor(IM).max(), 6, torch.int64)
    check(torch.tensor(IM).min(), -4, torch.int64)
    close(torch.max(torch.tensor(M)), 6.0)
    close(torch.min(torch.tensor(M)), -4.0)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_give_values_and_indices(dim, keepdim):
    for name, ref, arg in [("max", np.max, np.argmax), ("min", np.min, np.argmin)]:
        values, indices = getattr(torch.tensor(M), name)(dim, keepdim=keepdim)
        close(values, ref(M, axis=dim, keepdims=keepdim))
        check(indices, np.expand_dims(arg(M, axis=dim), dim) if keepdim else arg(M, axis=dim), torch.int64)
        r = getattr(torch, name)(torch.tensor(IM), dim=dim, keepdim=keepdim)
        check(r.values, ref(IM, axis=dim, keepdims=keepdim), torch.int64)
        check(r.indices, np.expand_dims(arg(IM, axis=dim), dim) if keepdim else arg(IM, axis=dim), torch.int64)


def test_max_result_prints_like_pytorch():
    assert repr(torch.tensor([[1, 2], [3, 4]]).max(dim=1)) == (
        "fusegrad.return_types.max(\nvalues=tensor([2, 4]),\nindices=tensor([1, 1]))")


def test_max_of_two_tensors():
    check(torch.max(torch.tensor([1, 5]), torch.tensor([3, 2])), [3, 5], torch.int64)
    check(torch.min(torch.tensor([1, 5]), torch.tensor([3, 2])), [1, 2], torch.int64)


@pytest.mark.parametrize("dim", [None, 0, 1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin(dim, keepdim):
    for name, ref in [("argmax", np.argmax), ("argmin", np.argmin)]:
        got = getattr(torch.tensor(M), name)(dim=dim, keepdim=keepdim)
        expected = ref(M, axis=dim, keepdims=keepdim)
        check(got, expected, torch.int64)
        check(getattr(torch, name)(torch.tensor(IM), dim), ref(IM, axis=dim), torch.int64)


def test_argmax_takes_the_first_of_ties():
    check(torch.tensor([[3, 1, 3], [0, 2, 2]]).argmax(1), [0, 1], torch.int64)
    check(torch.tensor([1.0, 4.0, 4.0]).argmax(), 1, torch.int64)


def test_all_any():
    check(torch.tensor([[1, 0], [1, 1]]).all(dim=1), [False, True], torch.bool)
    check(torch.tensor([[1, 0], [0, 0]]).any(0), [True, False], torch.bool)
    check(torch.all(torch.tensor([1.0, 2.0]) > 1), False, torch.bool)
    check(torch.any(torch.tensor([1.0, 2.0]) > 1), True, torch.bool)
    check(torch.tensor([]).all(), True, torch.bool)
    check(torch.tensor([]).any(), False, torch.bool)


# ---------------------------------------------------------------- comparisons

@pytest.mark.parametrize("op, ref", [(operator.lt, np.less), (operator.le, np.less_equal),
                                     (operator.gt, np.greater), (operator.ge, np.greater_equal),
                                     (operator.eq, np.equal), (operator.ne, np.not_equal)])
def test_comparisons(op, ref):
    check(op(torch.tensor(M), torch.tensor(M[::-1].copy())), ref(M, M[::-1]), torch.bool)
    check(op(torch.tensor(IM), 2), ref(IM, 2), torch.bool)
    check(op(torch.tensor(M), 2.5), ref(M, 2.5), torch.bool)
    check(op(2, torch.tensor(IM)), ref(2, IM), torch.bool)
    name = op.__name__
    check(getattr(torch.tensor(IM), name)(2), ref(IM, 2), torch.bool)
    check(getattr(torch, name)(torch.tensor(M), torch.tensor(IM)), ref(M, IM), torch.bool)


def test_logical_ops_on_masks():
    a, b = torch.tensor([True, True, False]), torch.tensor([True, False, False])
    check(a & b, [True, False, False], torch.bool)
    check(a | b, [True, True, False], torch.bool)
    check(a ^ b, [False, True, False], torch.bool)
    check(~a, [False, False, True], torch.bool)


# ---------------------------------------------------------------- matrix products

def test_float_matmul_mm_and_operator():
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    y = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    close(torch.tensor(x) @ torch.tensor(y), x @ y)
    close(torch.tensor(x).mm(torch.tensor(y)), x @ y)
    close(torch.mm(torch.tensor(x), torch.tensor(y)), x @ y)
    close(torch.tensor(x).matmul(torch.tensor(y)), x @ y)
    close(torch.matmul(torch.tensor(x), torch.tensor(y[:, 0].copy())), x @ y[:, 0])      # matrix @ vector
    close(torch.tensor(y[:, 0].copy()) @ torch.tensor(y), y[:, 0] @ y)                   # vector @ matrix
    close(torch.tensor(y[:, 1].copy()) @ torch.tensor(y[:, 2].copy()), y[:, 1] @ y[:, 2])  # dot -> 0-d
    b = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 10
    close(torch.tensor(b) @ torch.tensor(y.T.copy()), b @ y.T, rtol=1e-5)                # batched


def test_int64_matmul():
    X = torch.tensor([[1, 2], [3, 4]])
    check(X @ torch.tensor([[1], [2]]), [[5], [11]], torch.int64)
    check(X @ torch.tensor([1, 2]), [5, 11], torch.int64)
    check(torch.tensor([1, 2]) @ torch.tensor([3, 4]), 11, torch.int64)
    c = torch.tensor([1, -1])
    check(X @ c.reshape(-1, 1), [[-1], [-1]], torch.int64)
    big = np.arange(-20, 40).reshape(6, 10)
    check(torch.tensor(big) @ torch.tensor(big.T.copy()), big @ big.T, torch.int64)


def test_matmul_of_different_dtypes_raises():
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype"):
        torch.tensor([[1.0, 2.0]]) @ torch.tensor([[1], [2]])

"""Differential tests against numpy: every op, every dtype numpy defines it for, random shapes
with broadcasting (size-1 and size-0 dims included). Results must agree in value and dtype."""

import numpy as np
import pytest

import fusegrad as torch

DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
          "bool": np.bool_}
FLOATS = ("float32", "float64")
SHAPE_PAIRS = [((), ()), ((5,), ()), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((0, 3), (3,)),
               ((1, 5, 1), (4, 1, 6)), ((7,), (7,))]


def _values(rng, shape, dtype, positive=False):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "uint8":
        return rng.integers(1 if positive else 0, 50, size=shape).astype(np.uint8)
    if dtype in ("int32", "int64"):
        lo = 1 if positive else -20
        return rng.integers(lo, 20, size=shape).astype(DTYPES[dtype])
    x = rng.standard_normal(shape) * 3
    return (np.abs(x) + 0.1 if positive else x).astype(DTYPES[dtype])


def _close(got, ref, dtype):
    got = np.asarray(got)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert got.dtype == ref.dtype, (got.dtype, ref.dtype)
    if dtype == "float32":
        np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-6)
    elif dtype == "float64":
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-14)
    else:
        np.testing.assert_array_equal(got, ref)


UNARY = {
    "exp": (torch.exp, np.exp, False), "log": (torch.log, np.log, True), "sqrt": (torch.sqrt, np.sqrt, True),
    "sin": (torch.sin, np.sin, False), "cos": (torch.cos, np.cos, False), "tanh": (torch.tanh, np.tanh, False),
    "sigmoid": (torch.sigmoid, lambda x: 1 / (1 + np.exp(-x)), False),
    "relu": (torch.relu, lambda x: np.maximum(x, 0), False), "abs": (torch.abs, np.abs, False),
    "neg": (torch.neg, np.negative, False), "reciprocal": (torch.reciprocal, np.reciprocal, True),
    "floor": (torch.floor, np.floor, False), "ceil": (torch.ceil, np.ceil, False),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", FLOATS)
def test_unary_float(name, dtype, rng):
    fn, ref, positive = UNARY[name]
    for shape in [(), (17,), (3, 0), (4, 5, 6)]:
        a = _values(rng, shape, dtype, positive)
        _close(fn(torch.tensor(a)).numpy(), ref(a).astype(a.dtype), dtype)


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8"])
def test_integer_abs_neg_and_float_promotion(dtype, rng):
    a = _values(rng, (4, 3), dtype)
    if dtype != "uint8":
        _close(torch.neg(torch.tensor(a)).numpy(), -a, dtype)
        _close(torch.abs(torch.tensor(a)).numpy(), np.abs(a), dtype)
    got = torch.exp(torch.tensor(a)).numpy()      # PyTorch: integer input -> default float
    _close(got, np.exp(a.astype(np.float32)), "float32")


BINARY = {
    "add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply), "maximum": (torch.maximum, np.maximum),
    "minimum": (torch.minimum, np.minimum),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8"])
def test_binary_with_broadcasting(name, dtype, rng):
    fn, ref = BINARY[name]
    for sa, sb in SHAPE_PAIRS:
        a, b = _values(rng, sa, dtype), _values(rng, sb, dtype)
        with np.errstate(over="ignore"):
            expect = ref(a, b)
        _close(fn(torch.tensor(a), torch.tensor(b)).numpy(), expect, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_division_and_power(dtype, rng):
    for sa, sb in SHAPE_PAIRS:
        a, b = _values(rng, sa, dtype, positive=True), _values(rng, sb, dtype, positive=True)
        _close((torch.tensor(a) / torch.tensor(b)).numpy(), a / b, dtype)
        _close((torch.tensor(a) ** torch.tensor(b)).numpy(), (a ** b).astype(a.dtype), dtype)


def test_integer_true_division_is_float32_and_floor_division_floors(rng):
    a, b = rng.integers(-20, 20, (6, 5)), rng.integers(1, 7, (5,)) * rng.choice([-1, 1], (5,))
    ta, tb = torch.tensor(a), torch.tensor(b)
    _close((ta / tb).numpy(), (a / b).astype(np.float32), "float32")
    _close((ta // tb).numpy(), a // b, "int64")
    _close((ta % tb).numpy(), a % b, "int64")
    x = rng.standard_normal((6, 5)).astype(np.float32) * 5
    _close((torch.tensor(x) // 1.5).numpy(), np.floor_divide(x, np.float32(1.5)), "float32")


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_comparisons_give_bool(dtype, rng):
    for sa, sb in SHAPE_PAIRS[:6]:
        a, b = _values(rng, sa, dtype), _values(rng, sb, dtype)
        ta, tb = torch.tensor(a), torch.tensor(b)
        for got, ref in [(ta < tb, a < b), (ta <= tb, a <= b), (ta > tb, a > b), (ta >= tb, a >= b),
                         (ta == tb, a == b), (ta != tb, a != b)]:
            _close(got.numpy(), ref, "bool")


def test_nan_comparisons_and_propagation():
    a = np.array([np.nan, 1.0, -np.inf, np.inf], np.float32)
    t = torch.tensor(a)
    _close((t != t).numpy(), a != a, "bool")
    _close(torch.maximum(t, torch.tensor(0.0)).numpy(), np.maximum(a, 0).astype(np.float32), "float32")
    _close(torch.exp(t).numpy(), np.exp(a), "float32")


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "uint8", "bool"])
def test_reductions_over_dims(dtype, rng):
    a = _values(rng, (3, 4, 5), dtype)
    t = torch.tensor(a)
    acc = np.float32 if dtype == "float32" else np.float64 if dtype == "float64" else np.int64
    for dims in [None, 0, 1, 2, (0, 2), (1, 2), (0, 1, 2), -1]:
        for keepdim in (False, True):
            axis = dims if dims is not None else None
            kw = {} if dims is None else {"dim": dims, "keepdim": keepdim}
            ref = a.astype(acc).sum(axis=axis, keepdims=keepdim and dims is not None)
            _close(t.sum(**kw).numpy(), np.asarray(ref), dtype if dtype in FLOATS else "int64")
            if dtype in FLOATS:
                _close(t.mean(**kw).numpy(), np.asarray(a.mean(axis=axis, keepdims=keepdim and dims is not None)),
                       dtype)
            if dims is not None and not isinstance(dims, tuple):
                values, idx = t.max(dims, keepdim)
                _close(values.numpy(), a.max(axis=dims, keepdims=keepdim), dtype)
                _close(idx.numpy(), np.asarray(a.argmax(axis=dims) if not keepdim else
                                               np.expand_dims(a.argmax(axis=dims), dims)), "int64")
                _close(t.min(dims, keepdim)[0].numpy(), a.min(axis=dims, keepdims=keepdim), dtype)
    _close(np.asarray(t.amax().numpy()), np.asarray(a.max()), dtype)


def test_prod_argmax_argmin(rng):
    a = rng.standard_normal((4, 6)).astype(np.float64)
    t = torch.tensor(a)
    _close(t.prod(1).numpy(), a.prod(1), "float64")
    _close(t.argmax().numpy(), np.asarray(a.argmax()), "int64")
    _close(t.argmin(0).numpy(), a.argmin(0), "int64")


def test_reductions_of_empty_dims():
    t = torch.zeros(0, 3)
    _close(t.sum(0).numpy(), np.zeros(3, np.float32), "float32")
    assert np.isnan(torch.zeros(0).mean().item())


def test_float32_sum_is_accurate(rng):
    a = rng.random(1_000_000, dtype=np.float32)
    got = torch.tensor(a).sum().item()
    assert abs(got - a.astype(np.float64).sum()) / a.astype(np.float64).sum() < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_movement_ops(dtype, rng):
    a = _values(rng, (2, 3, 4), dtype)
    t = torch.tensor(a)
    _close(t.reshape(6, 4).numpy(), a.reshape(6, 4), dtype)
    _close(t.view(-1).numpy(), a.reshape(-1), dtype)
    _close(t.permute(2, 0, 1).numpy(), a.transpose(2, 0, 1), dtype)
    _close(t.transpose(0, 2).reshape(4, 6).numpy(), a.transpose(2, 1, 0).reshape(4, 6), dtype)
    _close(t[:, 1:, ::2].numpy(), a[:, 1:, ::2], dtype)
    _close(t[1].T.numpy(), a[1].T, dtype)
    _close(t[..., None, 2].numpy(), a[..., None, 2], dtype)
    _close(t[:, :1].expand(2, 5, 4).numpy(), np.broadcast_to(a[:, :1], (2, 5, 4)), dtype)
    _close(torch.cat([t, t[:, :1] * 2], 1).numpy(), np.concatenate([a, a[:, :1] * 2], 1), dtype)
    _close(torch.stack([t, t], 0).numpy(), np.stack([a, a], 0), dtype)
    _close((t.permute(1, 0, 2) + 1).flatten().numpy(), (a.transpose(1, 0, 2) + 1).reshape(-1), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_matmul_shapes(dtype, rng):
    for sa, sb in [((5, 3), (3, 4)), ((3,), (3, 4)), ((5, 3), (3,)), ((3,), (3,)), ((2, 5, 3), (3, 4)),
                   ((2, 5, 3), (2, 3, 4)), ((1, 5, 3), (4, 3, 2)), ((1, 1), (1, 1)), ((0, 3), (3, 2))]:
        a, b = _values(rng, sa, dtype), _values(rng, sb, dtype)
        got = (torch.tensor(a) @ torch.tensor(b)).numpy()
        ref = np.asarray(np.matmul(a, b))
        if dtype == "float32":
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        else:
            _close(got, ref, dtype)


def test_where_clamp_and_mixed_expression(rng):
    a, b = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((5,)).astype(np.float32)
    ta, tb = torch.tensor(a), torch.tensor(b)
    _close(torch.where(ta > 0, ta, tb).numpy(), np.where(a > 0, a, b), "float32")
    _close(ta.clamp(-0.5, 0.5).numpy(), np.clip(a, -0.5, 0.5), "float32")
    expr = (3 * ta ** 3 - tb ** 2) / (1 + ta.abs())
    _close(expr.numpy(), ((3 * a ** 3 - b ** 2) / (1 + np.abs(a))).astype(np.float32), "float32")


def test_casts_follow_numpy(rng):
    a = (rng.standard_normal(20) * 100).astype(np.float32)
    t = torch.tensor(a)
    _close(t.long().numpy(), a.astype(np.int64), "int64")
    _close(t.int().numpy(), a.astype(np.int32), "int32")
    _close(t.bool().numpy(), a.astype(bool), "bool")
    _close(t.double().numpy(), a.astype(np.float64), "float64")
    i = rng.integers(0, 255, 20).astype(np.uint8)
    _close(torch.tensor(i).float().numpy(), i.astype(np.float32), "float32")

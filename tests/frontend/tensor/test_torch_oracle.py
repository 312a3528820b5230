"""fusegrad against PyTorch itself over random shapes and dtypes: elementwise math with
promotion and broadcasting, reductions, indexing reads and writes, and printing. Seeded;
skipped where PyTorch is not installed (the rest of the suite never needs it)."""
import operator

import numpy as np
import pytest

import fusegrad

try:
    import torch
except ImportError:
    pytest.skip("PyTorch not installed", allow_module_level=True)

SEED = 20240611
DTYPES = ["float32", "float64", "int32", "int64", "uint8", "bool"]
FLOAT = ("float32", "float64")


def _values(rng, shape, dtype, positive=False):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "uint8":
        return rng.integers(1 if positive else 0, 40, size=shape).astype(np.uint8)
    if dtype in ("int32", "int64"):
        v = rng.integers(1 if positive else -30, 30, size=shape)
        return v.astype(dtype)
    v = rng.standard_normal(shape) * 4
    return (np.abs(v) + 0.5 if positive else v).astype(dtype)


def _shape(rng, rank=None):
    rank = rng.integers(0, 4) if rank is None else rank
    return tuple(int(s) for s in rng.integers(1, 5, size=rank))


def _broadcast_partner(rng, shape):
    """A shape that broadcasts with `shape`: some dims dropped from the front, some set to 1."""
    keep = shape[rng.integers(0, len(shape) + 1):]
    return tuple(1 if rng.random() < 0.3 else s for s in keep)


def _pair(a):
    return fusegrad.tensor(a), torch.from_numpy(np.array(a, copy=True))


def _same(got, ref, what=""):
    """fusegrad tensor `got` equals torch tensor `ref`: dtype, shape and values."""
    assert str(got.dtype).split(".")[-1] == str(ref.dtype).split(".")[-1], (what, got.dtype, ref.dtype)
    assert tuple(got.shape) == tuple(ref.shape), (what, tuple(got.shape), tuple(ref.shape))
    g, r = got.detach().numpy(), ref.detach().numpy()
    if r.dtype == np.float32:
        np.testing.assert_allclose(g, r, rtol=3e-6, atol=3e-6, err_msg=what)
    elif r.dtype == np.float64:
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12, err_msg=what)
    else:
        np.testing.assert_array_equal(g, r, err_msg=what)


BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
          "maximum": None, "minimum": None, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
          "ge": operator.ge, "eq": operator.eq, "ne": operator.ne}


def _binary(name, lib, a, b):
    if BINARY[name] is None:
        return getattr(lib, name)(a, b)
    return BINARY[name](a, b)


def _same_binary(name, f_operands, t_operands, what):
    """fusegrad gives PyTorch's result, or raises where PyTorch raises (bool subtraction)."""
    try:
        ref = _binary(name, torch, *t_operands)
    except RuntimeError as e:
        with pytest.raises(RuntimeError, match=str(e).split(",")[0].replace("`", ".")):
            _binary(name, fusegrad, *f_operands)
        return
    _same(_binary(name, fusegrad, *f_operands), ref, what)


def test_binary_ops_with_promotion_and_broadcasting():
    rng = np.random.default_rng(SEED)
    for trial in range(60):
        name = list(BINARY)[trial % len(BINARY)]
        da, db = rng.choice(DTYPES, size=2)
        if name in ("maximum", "minimum") and "bool" in (da, db):
            da = "int32"
        shape = _shape(rng)
        a = _values(rng, shape, da)
        b = _values(rng, _broadcast_partner(rng, shape), db, positive=name == "truediv")
        (fa, ta), (fb, tb) = _pair(a), _pair(b)
        _same_binary(name, (fa, fb), (ta, tb), f"{name} {da}{a.shape} {db}{b.shape}")


def test_binary_ops_with_python_scalars_and_zero_dim_tensors():
    rng = np.random.default_rng(SEED + 1)
    scalars = [3, -2, 2.5, True, 0.75]
    for trial in range(40):
        name = ["add", "sub", "mul", "truediv", "lt", "eq"][trial % 6]
        dtype = DTYPES[trial % len(DTYPES)]
        a = _values(rng, _shape(rng, rng.integers(1, 3)), dtype)
        s = scalars[trial % len(scalars)]
        fa, ta = _pair(a)
        _same_binary(name, (fa, s), (ta, s), f"{name} {dtype} {s!r}")
        _same_binary(name, (s, fa), (s, ta), f"{name} {s!r} {dtype}")
        z = _values(rng, (), rng.choice(DTYPES), positive=True)
        fz, tz = _pair(z)
        _same_binary(name, (fa, fz), (ta, tz), f"{name} {dtype} 0-d {z.dtype}")


UNARY = ["exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "neg", "floor", "ceil"]


def test_unary_ops():
    rng = np.random.default_rng(SEED + 2)
    for trial in range(36):
        name = UNARY[trial % len(UNARY)]
        dtype = ["float32", "float64", "int64", "int32"][trial % 4]
        if name in ("floor", "ceil") and dtype not in FLOAT:
            dtype = "float32"
        a = _values(rng, _shape(rng), dtype, positive=name in ("log", "sqrt"))
        fa, ta = _pair(a)
        _same(getattr(fusegrad, name)(fa), getattr(torch, name)(ta), f"{name} {dtype}{a.shape}")


def test_integer_floor_division_and_remainder():
    rng = np.random.default_rng(SEED + 3)
    for trial in range(12):
        dtype = ["int32", "int64", "float32", "float64"][trial % 4]
        shape = _shape(rng, rng.integers(1, 3))
        a = _values(rng, shape, dtype)
        b = _values(rng, shape, dtype, positive=True) * (1 if trial % 2 else -1)
        (fa, ta), (fb, tb) = _pair(a), _pair(b)
        _same(fa // fb, ta // tb, f"// {dtype}")
        _same(fa % fb, ta % tb, f"% {dtype}")


def test_reductions():
    rng = np.random.default_rng(SEED + 4)
    for trial in range(18):
        dtype = DTYPES[trial % len(DTYPES)]
        shape = _shape(rng, rng.integers(1, 4))
        a = _values(rng, shape, dtype)
        fa, ta = _pair(a)
        dim = int(rng.integers(-len(shape), len(shape)))
        keepdim = bool(rng.random() < 0.5)
        _same(fa.sum(), ta.sum(), f"sum {dtype}{shape}")
        _same(fa.sum(dim, keepdim=keepdim), ta.sum(dim, keepdim=keepdim), f"sum {dtype}{shape} {dim} {keepdim}")
        if dtype in FLOAT:
            _same(fa.mean(dim, keepdim), ta.mean(dim, keepdim), f"mean {dtype}{shape} {dim}")
            _same(fa.mean(), ta.mean(), f"mean {dtype}{shape}")
        if dtype != "bool":
            _same(fa.max(), ta.max(), f"max {dtype}{shape}")
            fv, fi = fa.min(dim, keepdim)
            tv, ti = ta.min(dim, keepdim)
            _same(fv, tv, f"min values {dtype}{shape} {dim}")
            _same(fi, ti, f"min indices {dtype}{shape} {dim}")
            _same(fa.argmax(dim, keepdim), ta.argmax(dim, keepdim), f"argmax {dtype}{shape} {dim}")
            _same(fa.argmin(), ta.argmin(), f"argmin {dtype}{shape}")
        small = _pair(_values(rng, shape, dtype) % 3 if dtype != "bool" else a)
        _same(small[0].prod(dim, keepdim), small[1].prod(dim, keepdim), f"prod {dtype}{shape} {dim}")


def _random_basic_index(rng, shape):
    items = []
    for size in shape:
        kind = rng.integers(0, 4)
        if kind == 0:
            items.append(int(rng.integers(-size, size)))
        elif kind == 1:
            start, stop = sorted(int(v) for v in rng.integers(-size - 1, size + 2, size=2))
            items.append(slice(start, stop, int(rng.integers(1, 4))))
        elif kind == 2:
            items.append(slice(None))
        else:
            items.append(None)
            items.append(slice(None, None, 2))
    if rng.random() < 0.3 and items:
        items[int(rng.integers(0, len(items)))] = Ellipsis
    return tuple(items)


def test_basic_indexing_reads_and_writes():
    rng = np.random.default_rng(SEED + 5)
    for trial in range(30):
        shape = _shape(rng, rng.integers(1, 4))
        dtype = DTYPES[trial % len(DTYPES)]
        a = _values(rng, shape, dtype)
        index = _random_basic_index(rng, shape)
        fa, ta = _pair(a)
        _same(fa[index], ta[index], f"read {shape} {index}")
        value = _values(rng, (), dtype).item()
        fa[index] = value
        ta[index] = value
        _same(fa, ta, f"write {shape} {index}")


def test_advanced_indexing_reads():
    rng = np.random.default_rng(SEED + 6)
    for _trial in range(12):
        shape = _shape(rng, rng.integers(1, 4))
        a = _values(rng, shape, "float32")
        fa, ta = _pair(a)
        idx = rng.integers(-shape[0], shape[0], size=_shape(rng, rng.integers(1, 3)))
        _same(fa[fusegrad.tensor(idx)], ta[torch.from_numpy(idx)], f"index {shape} {idx.tolist()}")
        mask = rng.random(shape) < 0.5
        _same(fa[fusegrad.tensor(mask)], ta[torch.from_numpy(mask)], f"mask {shape}")
        _same(fa[fa > 0], ta[ta > 0], f"mask by value {shape}")
        if len(shape) >= 2:
            j = rng.integers(0, shape[1], size=3)
            _same(fa[:, fusegrad.tensor(j)], ta[:, torch.from_numpy(j)], f"[:, index] {shape} {j.tolist()}")


def test_mask_writes():
    rng = np.random.default_rng(SEED + 7)
    for _trial in range(10):
        shape = _shape(rng, rng.integers(1, 4))
        a = _values(rng, shape, "int64")
        fa, ta = _pair(a)
        fa[fa > 0] = -1
        ta[ta > 0] = -1
        _same(fa, ta, f"mask write {shape}")


def test_printing():
    rng = np.random.default_rng(SEED + 8)
    scales = [1, 1e-3, 1e5, 1e9, 1e-7]
    for trial in range(40):
        dtype = DTYPES[trial % len(DTYPES)]
        shape = _shape(rng, rng.integers(0, 4))
        a = _values(rng, shape, dtype)
        if dtype in FLOAT:
            a = (a * scales[trial % len(scales)]).astype(dtype)
            if trial % 7 == 0 and a.size:
                a.reshape(-1)[0] = np.round(a.reshape(-1)[0])
        fa, ta = _pair(a)
        assert repr(fa) == repr(ta).replace("torch.", "fusegrad."), (dtype, a)
    for a in [np.arange(2000.0, dtype=np.float32), np.arange(1200).reshape(40, 30), np.zeros((2, 0))]:
        fa, ta = _pair(a)
        assert repr(fa) == repr(ta).replace("torch.", "fusegrad.")

"""cumsum/cumprod, sort/argsort/msort and topk: values against numpy on odd shapes, stable
tie order and NaN placement, int64 indices, gradients by finite differences, compiled equal
to eager, errors naming the user's line, and PyTorch as an oracle when installed."""
import numpy as np
import pytest

import fusegrad
from helpers import gradcheck

RNG = np.random.default_rng(7)


def _ties(shape):
    """Values with many ties, NaNs, and both zeros."""
    v = RNG.integers(-3, 4, size=shape).astype(np.float64)
    v[RNG.random(shape) < 0.15] = np.nan
    v[v == 0] = np.where(RNG.random(int((v == 0).sum())) < 0.5, 0.0, -0.0)
    return v


def _np_sort(a, axis, descending):
    """numpy's stable sort with NaN largest; descending keeps ties in index order."""
    if not descending:
        idx = np.argsort(a, axis=axis, kind="stable")
    else:
        n = a.shape[axis]
        key = np.where(np.isnan(a), -np.inf, -a)
        nan_first = np.isnan(a)
        # NaNs first (in index order), then by decreasing value, ties in index order
        order_key = np.where(nan_first, 0, 1)
        pos = np.arange(n).reshape([-1 if d == axis % a.ndim else 1 for d in range(a.ndim)])
        idx = np.lexsort((np.broadcast_to(pos, a.shape), key, order_key), axis=axis)
    return np.take_along_axis(a, idx, axis), idx


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5), 1), ((3, 5), -2), ((2, 4, 3), 1), ((2, 1, 6), -1)])
def test_cumsum_cumprod_match_numpy(shape, dim):
    a = RNG.standard_normal(shape)
    x = fusegrad.tensor(a)
    np.testing.assert_allclose(fusegrad.cumsum(x, dim).numpy(), np.cumsum(a, axis=dim), rtol=1e-12)
    np.testing.assert_allclose(x.cumprod(dim).numpy(), np.cumprod(a, axis=dim), rtol=1e-12)
    f = fusegrad.tensor(a.astype(np.float32))
    assert f.cumsum(dim).dtype == fusegrad.float32


def test_cumsum_dtypes():
    i = fusegrad.tensor([[1, 2, 3], [4, 5, 6]], dtype=fusegrad.int32)
    c = i.cumsum(1)
    assert c.dtype == fusegrad.int64
    np.testing.assert_array_equal(c.numpy(), [[1, 3, 6], [4, 9, 15]])
    b = fusegrad.tensor([True, False, True, True])
    assert b.cumsum(0).tolist() == [1, 1, 2, 3] and b.cumsum(0).dtype == fusegrad.int64
    d = fusegrad.cumsum(i, dim=0, dtype=fusegrad.float64)
    assert d.dtype == fusegrad.float64 and d.tolist() == [[1, 2, 3], [5, 7, 9]]
    s = fusegrad.tensor(2.5).cumsum(-1)
    assert s.shape == () and s.item() == 2.5
    assert fusegrad.zeros(0, 3).cumsum(0).shape == (0, 3)


def test_cumsum_gradient_is_reversed_cumsum():
    x = fusegrad.zeros(2, 5, requires_grad=True)
    w = np.arange(1.0, 6.0)
    (x.cumsum(1) * fusegrad.tensor(w, dtype=fusegrad.float32)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(np.cumsum(w[::-1])[::-1], (2, 5)))
    assert x.cumsum(1).grad_fn.name() == "CumsumBackward0"


def test_scan_gradchecks():
    gradcheck(lambda x: x.cumsum(1), RNG.standard_normal((3, 4)))
    gradcheck(lambda x: x.cumsum(0), RNG.standard_normal((5, 2)))
    gradcheck(lambda x: x.cumprod(-1), RNG.standard_normal((2, 4)) + 2.0)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("shape,dim", [((9,), 0), ((4, 7), 1), ((5, 3), 0), ((2, 3, 5), -2)])
def test_sort_matches_stable_numpy_with_ties_and_nans(shape, dim, descending):
    a = _ties(shape)
    values, indices = fusegrad.sort(fusegrad.tensor(a), dim=dim, descending=descending)
    ev, ei = _np_sort(a, dim, descending)
    assert indices.dtype == fusegrad.int64 and values.dtype == fusegrad.float64
    np.testing.assert_array_equal(indices.numpy(), ei)
    np.testing.assert_array_equal(values.numpy(), ev)
    r = fusegrad.tensor(a).sort(dim, descending)
    np.testing.assert_array_equal(r.indices.numpy(), ei)
    np.testing.assert_array_equal(fusegrad.tensor(a).argsort(dim, descending=descending).numpy(), ei)


def test_sort_ints_bools_and_0d():
    i = fusegrad.tensor([[5, -1, 5, 0], [2, 2, 2, 1]])
    v, idx = i.sort(stable=True)
    assert v.dtype == fusegrad.int64
    assert v.tolist() == [[-1, 0, 5, 5], [1, 2, 2, 2]] and idx.tolist() == [[1, 3, 0, 2], [3, 0, 1, 2]]
    b = fusegrad.tensor([True, False, True, False])
    bv, bi = b.sort(descending=True)
    assert bv.dtype == fusegrad.bool and bv.tolist() == [True, True, False, False] and bi.tolist() == [0, 2, 1, 3]
    s = fusegrad.tensor(3.0).sort()
    assert s.values.item() == 3.0 and s.indices.item() == 0 and s.indices.dtype == fusegrad.int64
    assert fusegrad.msort(fusegrad.tensor([[3, 1], [2, 4]])).tolist() == [[2, 1], [3, 4]]


@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_numpy(largest):
    a = RNG.permutation(40).reshape(5, 8).astype(np.float32)
    v, i = fusegrad.topk(fusegrad.tensor(a), 3, dim=1, largest=largest)
    ei = np.argsort(-a if largest else a, axis=1)[:, :3]
    np.testing.assert_array_equal(i.numpy(), ei)
    np.testing.assert_array_equal(v.numpy(), np.take_along_axis(a, ei, 1))
    v0, i0 = fusegrad.tensor(a).topk(2, 0, largest, sorted=True)
    assert tuple(v0.shape) == (2, 8) and i0.dtype == fusegrad.int64
    np.testing.assert_array_equal(i0.numpy(), np.argsort(-a if largest else a, axis=0)[:2])


def test_topk_nan_is_largest_and_k_edges():
    x = fusegrad.tensor([1.0, float("nan"), 3.0, 2.0])
    v, i = x.topk(2)
    assert i.tolist() == [1, 2] and np.isnan(v[0].item())
    assert x.topk(0).values.shape == (0,)
    assert x.topk(4, largest=False).indices.tolist() == [0, 3, 2, 1]


def test_sort_and_topk_gradients_flow_to_selected():
    a = RNG.permutation(12).reshape(3, 4).astype(np.float64) / 3
    gradcheck(lambda x: x.sort(1).values, a)
    gradcheck(lambda x: x.sort(0, descending=True).values, a)
    gradcheck(lambda x: x.topk(2, dim=1).values, a)
    x = fusegrad.tensor([0.5, 3.0, 1.0, 2.0], requires_grad=True)
    x.topk(2).values.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert x.topk(2).values.grad_fn.name() == "TopkBackward0"
    assert x.sort().values.grad_fn.name() == "SortBackward0"
    assert x.sort().indices.grad_fn is None


def test_compiled_equals_eager():
    def step(x):
        v, i = x.sort(dim=1, descending=True)
        t = x.topk(3, dim=1)
        return v.cumsum(1) + t.values.sum(1, keepdim=True), i, t.indices

    compiled = fusegrad.compile(step)
    for _ in range(2):
        x = fusegrad.tensor(_ties((4, 6)))
        for a, b in zip(compiled(x), step(x)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_errors_name_the_line():
    x = fusegrad.rand(3, 4)
    with pytest.raises(IndexError, match=r"Dimension out of range.*test_sorting.py"):
        x.sort(dim=2)
    with pytest.raises(IndexError, match=r"Dimension out of range.*test_sorting.py"):
        x.cumsum(-3)
    with pytest.raises(RuntimeError, match=r"selected index k out of range.*test_sorting.py"):
        x.topk(5)
    with pytest.raises(TypeError, match="must be Tensor"):
        fusegrad.sort([1, 2])


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    for shape, dim in [((6,), 0), ((3, 7), 1), ((4, 3, 2), 0)]:
        a = _ties(shape)
        for desc in (False, True):
            tv, ti = torch.sort(torch.tensor(a), dim=dim, descending=desc, stable=True)
            fv, fi = fusegrad.sort(fusegrad.tensor(a), dim=dim, descending=desc, stable=True)
            np.testing.assert_array_equal(fi.numpy(), ti.numpy())
            np.testing.assert_array_equal(fv.numpy(), tv.numpy())
        np.testing.assert_allclose(fusegrad.tensor(a).cumsum(dim).numpy(), torch.tensor(a).cumsum(dim).numpy())
        k = builtins_min(2, shape[dim])
        tv, ti = torch.tensor(a).topk(k, dim)
        fv, fi = fusegrad.tensor(a).topk(k, dim)
        np.testing.assert_array_equal(fv.numpy(), tv.numpy())
    ints = RNG.integers(-5, 5, size=(4, 5)).astype(np.int32)
    assert fusegrad.tensor(ints).cumsum(1).tolist() == torch.tensor(ints).cumsum(1).tolist()
    assert str(fusegrad.tensor(ints).cumsum(1).dtype).split(".")[-1] == str(torch.tensor(ints).cumsum(1).dtype).split(
        ".")[-1]


builtins_min = min

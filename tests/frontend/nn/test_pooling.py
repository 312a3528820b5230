"""Pooling (F.max_pool1d, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d; nn.MaxPool1d,
nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d): values and indices against numpy loop
references written from PyTorch's formulas, float64 finite-difference gradients, the
first-maximum gradient rule, fusion with the producer, reprs and errors as PyTorch's, and
PyTorch itself as an oracle where it is installed."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fusegrad
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from helpers import gradcheck


def _pairs(v, n=2):
    return (v,) * n if isinstance(v, int) else tuple(v)


def _out_size(h, k, s, p, d, ceil_mode):
    o = (h + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (o - 1) * s >= h + p:
        o -= 1
    return o


def max_pool_ref(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(values, flat indices) by loops: each window's first maximum (NaN wins), as PyTorch's."""
    k, p, d = _pairs(kernel_size), _pairs(padding), _pairs(dilation)
    s = k if stride is None else _pairs(stride)
    *lead, h, w = x.shape
    oh, ow = _out_size(h, k[0], s[0], p[0], d[0], ceil_mode), _out_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    vals, idx = np.zeros((*lead, oh, ow)), np.zeros((*lead, oh, ow), dtype=np.int64)
    for pos in np.ndindex(*lead):
        for i in range(oh):
            for j in range(ow):
                best, arg = -math.inf, -1
                for a in range(k[0]):
                    for b in range(k[1]):
                        r, c = i * s[0] - p[0] + a * d[0], j * s[1] - p[1] + b * d[1]
                        if 0 <= r < h and 0 <= c < w:
                            v = x[pos + (r, c)]
                            if v > best or (arg < 0) or (math.isnan(v) and not math.isnan(best)):
                                best, arg = v, r * w + c
                vals[pos + (i, j)], idx[pos + (i, j)] = best, arg
    return vals, idx


def avg_pool_ref(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
    """PyTorch's avg_pool2d loop: the window clipped to the padded input for the count with
    count_include_pad, to the input otherwise."""
    k, p = _pairs(kernel_size), _pairs(padding)
    s = k if stride is None else _pairs(stride)
    *lead, h, w = x.shape
    oh, ow = _out_size(h, k[0], s[0], p[0], 1, ceil_mode), _out_size(w, k[1], s[1], p[1], 1, ceil_mode)
    out = np.zeros((*lead, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            size = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            total = x[..., h0:h1, w0:w1].sum(axis=(-2, -1))
            div = divisor_override or (size if count_include_pad else (h1 - h0) * (w1 - w0))
            out[..., i, j] = total / div
    return out


def adaptive_avg_ref(x, out):
    *lead, h, w = x.shape
    oh, ow = out
    res = np.zeros((*lead, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            res[..., i, j] = x[..., h0:h1, w0:w1].mean(axis=(-2, -1))
    return res


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def t(a, requires_grad=False):
    return fusegrad.tensor(a, requires_grad=requires_grad)


MAX = [
    ((2, 3, 8, 8), {"kernel_size": 2}),
    ((2, 2, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 7, 9), {"kernel_size": (3, 2), "stride": 2, "ceil_mode": True}),
    ((2, 1, 9, 9), {"kernel_size": 3, "stride": 1, "padding": 1, "dilation": 2}),
    ((2, 2, 7, 8), {"kernel_size": 2, "stride": 3}),                          # stride > kernel
    ((3, 6, 5), {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 1), "ceil_mode": True}),   # unbatched
    ((1, 1, 5, 5), {"kernel_size": 1}),
]


@pytest.mark.parametrize("shape,kw", MAX)
def test_max_pool2d_values_and_indices(shape, kw):
    x = rand(*shape, seed=1)
    vals, idx = F.max_pool2d(t(x), return_indices=True, **kw)
    want_vals, want_idx = max_pool_ref(x, **kw)
    np.testing.assert_array_equal(vals.numpy(), want_vals)
    np.testing.assert_array_equal(idx.numpy(), want_idx)
    assert idx.dtype == fusegrad.int64
    np.testing.assert_array_equal(F.max_pool2d(t(x.astype(np.float32)), **kw).numpy(),
                                  want_vals.astype(np.float32))


@pytest.mark.parametrize("shape,kw", MAX[:6])
def test_max_pool2d_gradient_against_finite_differences(shape, kw):
    gradcheck(lambda x: F.max_pool2d(x, **kw), rand(*shape, seed=2))


def test_max_pool_gradient_goes_to_the_first_maximum():
    """Ties (3 twice in the first window, all zeros in the second): PyTorch's argmax, not a split."""
    x = t(np.array([[[[1.0, 3.0, 0.0, 0.0], [3.0, 2.0, 0.0, 0.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0, 1, 1, 0], [0, 0, 0, 0]]]])
    assert F.max_pool2d(x, 2).grad_fn.name() == "MaxPool2DWithIndicesBackward0"


def test_max_pool_of_integers_and_nan():
    x = np.arange(16, dtype=np.int32).reshape(1, 4, 4)
    got = F.max_pool2d(fusegrad.tensor(x), 2)
    assert got.dtype == fusegrad.int32
    np.testing.assert_array_equal(got.numpy(), [[[5, 7], [13, 15]]])
    y = np.zeros((1, 2, 2))
    y[0, 1, 0] = np.nan
    vals, idx = F.max_pool2d(t(y), 2, return_indices=True)
    assert np.isnan(vals.numpy()).all() and idx.numpy().item() == 2


@pytest.mark.parametrize("kw", [{"kernel_size": 3}, {"kernel_size": 2, "stride": 1, "padding": 1, "dilation": 2},
                                {"kernel_size": 4, "stride": 3, "ceil_mode": True}])
def test_max_pool1d(kw):
    x = rand(2, 3, 10, seed=3)
    vals, idx = F.max_pool1d(t(x), return_indices=True, **kw)
    k = {n: v if n == "ceil_mode" else (v, 0) if n == "padding" else (v, 1) for n, v in kw.items()}
    want_vals, want_idx = max_pool_ref(x[..., None], **k)
    np.testing.assert_array_equal(vals.numpy(), want_vals[..., 0])
    np.testing.assert_array_equal(idx.numpy(), want_idx[..., 0])
    gradcheck(lambda x: F.max_pool1d(x, **kw), x)


AVG = [
    ((2, 3, 8, 8), {"kernel_size": 2}),
    ((2, 2, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((2, 2, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ((1, 2, 7, 9), {"kernel_size": (3, 2), "stride": 2, "ceil_mode": True, "padding": 1}),
    ((1, 2, 8, 6), {"kernel_size": 3, "stride": 2, "ceil_mode": True, "padding": 1, "count_include_pad": False}),
    ((2, 1, 6, 6), {"kernel_size": 3, "divisor_override": 5}),
    ((3, 5, 6), {"kernel_size": (2, 3), "stride": (3, 1)}),              # unbatched, stride > kernel
]


@pytest.mark.parametrize("shape,kw", AVG)
def test_avg_pool2d_values_and_gradients(shape, kw):
    x = rand(*shape, seed=4)
    np.testing.assert_allclose(F.avg_pool2d(t(x), **kw).numpy(), avg_pool_ref(x, **kw), rtol=1e-13, atol=1e-14)
    gradcheck(lambda x: F.avg_pool2d(x, **kw), x)


@pytest.mark.parametrize("out", [(3, 4), (1, 1), (5, 3), (9, None), (4, 2), 2])
def test_adaptive_avg_pool2d(out):
    x = rand(2, 3, 9, 8, seed=5)
    size = (out, out) if isinstance(out, int) else tuple(d if o is None else o for o, d in zip(out, (9, 8)))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(t(x), out).numpy(), adaptive_avg_ref(x, size), rtol=1e-13)
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, out), x[:1, :2, :7, :6])
    assert F.adaptive_avg_pool2d(t(x[0]), out).shape == (3,) + size


def test_pooling_fuses_with_its_producer():
    """relu -> max_pool2d: one reduction kernel reading the input, no buffer for relu."""
    x = t(rand(2, 3, 8, 8).astype(np.float32))
    y = F.max_pool2d(F.relu(x * 2.0), 2)
    y.numpy()
    p = fusegrad.program_of(y)
    assert p.num_kernels == 1, p.text("kernels")
    z = F.avg_pool2d(F.relu(x), 3, stride=2, padding=1)
    z.numpy()
    assert fusegrad.program_of(z).num_kernels == 1


def test_modules_and_reprs():
    x = rand(2, 3, 8, 8, seed=6)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(t(x)).numpy(), max_pool_ref(x, 2)[0])
    vals, idx = nn.MaxPool2d(3, 2, 1, return_indices=True)(t(x))
    np.testing.assert_array_equal(idx.numpy(), max_pool_ref(x, 3, 2, 1)[1])
    np.testing.assert_allclose(nn.AvgPool2d(3, 1, 1, count_include_pad=False)(t(x)).numpy(),
                               avg_pool_ref(x, 3, 1, 1, count_include_pad=False), rtol=1e-13)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d((3, None))(t(x)).numpy(), adaptive_avg_ref(x, (3, 8)),
                               rtol=1e-13)
    np.testing.assert_array_equal(nn.MaxPool1d(3)(t(x[0])).numpy(), max_pool_ref(x[0][..., None], (3, 1))[0][..., 0])
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(nn.MaxPool2d((2, 3), stride=1, ceil_mode=True)) == \
        "MaxPool2d(kernel_size=(2, 3), stride=1, padding=0, dilation=1, ceil_mode=True)"
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"
    assert repr(nn.AvgPool2d(3, 1, 1, True, False, 2)) == "AvgPool2d(kernel_size=3, stride=1, padding=1)"
    assert repr(nn.AdaptiveAvgPool2d((5, None))) == "AdaptiveAvgPool2d(output_size=(5, None))"
    assert repr(nn.MaxPool1d(3)) == "MaxPool1d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False)"


@pytest.mark.parametrize("call,match", [
    (lambda: F.max_pool2d(t(rand(1, 3, 8, 8)), 2, padding=2),
     "pad should be at most half of effective kernel size, but got pad=2, kernel_size=2 and dilation=1"),
    (lambda: F.avg_pool2d(t(rand(1, 3, 8, 8)), 2, padding=2), "pad should be at most half"),
    (lambda: F.max_pool2d(t(rand(1, 3, 1, 1)), 2),
     r"Given input size: \(3x1x1\). Calculated output size: \(3x0x0\). Output size is too small"),
    (lambda: F.avg_pool2d(t(rand(1, 3, 1, 1)), 2), r"Output size is too small"),
    (lambda: F.max_pool2d(t(rand(3, 8)), 2), "non-empty 3D or 4D"),
    (lambda: F.adaptive_avg_pool2d(t(rand(3, 8)), 2), r"adaptive_avg_pool2d\(\): Expected 3D or 4D tensor, "
                                                      r"but got \[3, 8\]"),
    (lambda: F.avg_pool2d(t(rand(1, 3, 8, 8)), 2, divisor_override=0), "divisor must be not zero"),
])
def test_errors_as_pytorch(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_against_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the oracle comparison is skipped")
    tf = torch.nn.functional
    for shape, kw in MAX:
        x = rand(*shape, seed=7)
        xt, X = t(x, True), torch.tensor(x, requires_grad=True)
        v, i = F.max_pool2d(xt, return_indices=True, **kw)
        V, want_i = tf.max_pool2d(X, return_indices=True, **kw)
        np.testing.assert_array_equal(v.detach().numpy(), V.detach().numpy())
        np.testing.assert_array_equal(i.numpy(), want_i.numpy())
        g = rand(*V.shape, seed=8)
        (v * t(g)).sum().backward()
        (V * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(xt.grad.numpy(), X.grad.numpy(), rtol=1e-12, atol=1e-15)
    for shape, kw in AVG:
        x = rand(*shape, seed=9)
        np.testing.assert_allclose(F.avg_pool2d(t(x), **kw).numpy(), tf.avg_pool2d(torch.tensor(x), **kw).numpy(),
                                   rtol=1e-13, atol=1e-14)
    for out in [(3, 4), (5, 3), (9, None), 1]:
        x = rand(2, 3, 9, 8, seed=10)
        np.testing.assert_allclose(F.adaptive_avg_pool2d(t(x), out).numpy(),
                                   tf.adaptive_avg_pool2d(torch.tensor(x), out).numpy(), rtol=1e-13)
    for mine, theirs in ((nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)), (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
                         (nn.AdaptiveAvgPool2d(4), torch.nn.AdaptiveAvgPool2d(4))):
        assert repr(mine) == repr(theirs)

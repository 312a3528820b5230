"""F.interpolate ('nearest', 'linear', 'bilinear'; align_corners; size or scale_factor; 3-D and
4-D input) and nn.Upsample: against numpy loop references written from PyTorch's formulas,
gradients by finite differences, compiled equal to eager, errors, PyTorch as an oracle."""
import math

import numpy as np
import pytest

import fusegrad
import fusegrad.nn.functional as F
from fusegrad import nn
from helpers import gradcheck

RNG = np.random.default_rng(5)


def _src_linear(dst, n_in, n_out, align_corners, scale=None):
    if align_corners:
        return dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    s = 1.0 / scale if scale else n_in / n_out
    return max(s * (dst + 0.5) - 0.5, 0.0)


def _ref_linear_axis(x, axis, n_out, align_corners, scale=None):
    n_in = x.shape[axis]
    out = []
    for d in range(n_out):
        src = _src_linear(d, n_in, n_out, align_corners, scale)
        i0 = int(src)
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        out.append(np.take(x, i0, axis) * (1 - lam) + np.take(x, i1, axis) * lam)
    return np.stack(out, axis)


def _ref_nearest_axis(x, axis, n_out, scale=None):
    n_in = x.shape[axis]
    s = 1.0 / scale if scale else n_in / n_out
    idx = [min(int(math.floor(d * s)), n_in - 1) for d in range(n_out)]
    return np.take(x, idx, axis)


@pytest.mark.parametrize("shape,size", [((2, 3, 5, 7), (8, 9)), ((1, 2, 4, 4), (3, 2)), ((2, 1, 3, 5), (3, 5))])
def test_nearest_and_bilinear_with_size(shape, size):
    x = RNG.standard_normal(shape)
    t = fusegrad.tensor(x)
    ref = _ref_nearest_axis(_ref_nearest_axis(x, 2, size[0]), 3, size[1])
    np.testing.assert_array_equal(F.interpolate(t, size=size).numpy(), ref)
    for ac in (False, True):
        ref = _ref_linear_axis(_ref_linear_axis(x, 2, size[0], ac), 3, size[1], ac)
        np.testing.assert_allclose(F.interpolate(t, size=size, mode="bilinear", align_corners=ac).numpy(), ref,
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("factor", [2, 1.5, 0.6, (2.0, 0.5)])
def test_scale_factor(factor):
    x = RNG.standard_normal((2, 2, 5, 6))
    fh, fw = factor if isinstance(factor, tuple) else (factor, factor)
    oh, ow = int(math.floor(5 * fh)), int(math.floor(6 * fw))
    got = F.interpolate(fusegrad.tensor(x), scale_factor=factor, mode="bilinear")
    ref = _ref_linear_axis(_ref_linear_axis(x, 2, oh, False, fh), 3, ow, False, fw)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
    got = F.interpolate(fusegrad.tensor(x), scale_factor=factor, mode="bilinear", recompute_scale_factor=True)
    ref = _ref_linear_axis(_ref_linear_axis(x, 2, oh, False), 3, ow, False)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
    got = F.interpolate(fusegrad.tensor(x), scale_factor=factor)
    np.testing.assert_array_equal(got.numpy(), _ref_nearest_axis(_ref_nearest_axis(x, 2, oh, fh), 3, ow, fw))


def test_3d_input():
    x = RNG.standard_normal((2, 3, 7))
    t = fusegrad.tensor(x)
    np.testing.assert_array_equal(F.interpolate(t, size=10).numpy(), _ref_nearest_axis(x, 2, 10))
    np.testing.assert_allclose(F.interpolate(t, scale_factor=1.5, mode="linear", align_corners=True).numpy(),
                               _ref_linear_axis(x, 2, 10, True), rtol=1e-12)
    assert F.interpolate(t.float(), size=4, mode="linear").dtype == fusegrad.float32


def test_gradients():
    x = RNG.standard_normal((1, 2, 3, 4))
    gradcheck(lambda a: F.interpolate(a, size=(5, 3), mode="bilinear"), x)
    gradcheck(lambda a: F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=True), x)
    gradcheck(lambda a: F.interpolate(a, size=(4, 7)), x)
    gradcheck(lambda a: F.interpolate(a, size=6, mode="linear"), RNG.standard_normal((2, 1, 4)))
    t = fusegrad.ones(1, 1, 2, 2, requires_grad=True)
    F.interpolate(t, scale_factor=2).sum().backward()
    assert t.grad.tolist() == [[[[4.0, 4.0], [4.0, 4.0]]]]


def test_upsample_module_and_compiled():
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    assert repr(up) == "Upsample(scale_factor=2.0, mode='bilinear')"
    assert repr(nn.Upsample(size=(3, 4))) == "Upsample(size=(3, 4), mode='nearest')"
    x = fusegrad.tensor(RNG.standard_normal((1, 2, 3, 4)))
    np.testing.assert_array_equal(nn.UpsamplingBilinear2d(scale_factor=2)(x).numpy(),
                                  F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True).numpy())
    np.testing.assert_array_equal(nn.UpsamplingNearest2d(size=(5, 5))(x).numpy(), F.interpolate(x, size=5).numpy())
    conv = nn.Conv2d(2, 2, 3, padding=1)
    model = nn.Sequential(conv, up)
    step = fusegrad.compile(lambda x: model(x).sum(dim=1))
    for _ in range(2):
        x = fusegrad.tensor(RNG.standard_normal((2, 2, 3, 5)).astype(np.float32))
        np.testing.assert_allclose(step(x).detach().numpy(), model(x).sum(dim=1).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
    assert tuple(step(x).shape) == (2, 6, 10)


def _ref_area_axis(x, axis, n_out):
    """Adaptive average bins along `axis`: bin i covers [floor(i n / o), ceil((i + 1) n / o))."""
    n = x.shape[axis]
    bins = [np.take(x, range(i * n // n_out, -(-(i + 1) * n // n_out)), axis=axis).mean(axis=axis, keepdims=True)
            for i in range(n_out)]
    return np.concatenate(bins, axis=axis)


@pytest.mark.parametrize("size", [(3, 2), (7, 5), (2, 10), (1, 1)])
def test_area_is_adaptive_average_pooling(size):
    a = RNG.standard_normal((2, 3, 7, 5))
    expected = _ref_area_axis(_ref_area_axis(a, 2, size[0]), 3, size[1])
    got = F.interpolate(fusegrad.tensor(a), size=size, mode="area")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    gradcheck(lambda x: F.interpolate(x, size=size, mode="area"), RNG.standard_normal((1, 2, 7, 5)))


@pytest.mark.parametrize("n_in, n_out", [(5, 8), (7, 3), (4, 8), (6, 6), (10, 4)])
def test_nearest_exact_takes_the_nearest_source_centre(n_in, n_out):
    a = RNG.standard_normal((1, 2, n_in))
    src = np.minimum(np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(int), n_in - 1)
    got = F.interpolate(fusegrad.tensor(a), size=n_out, mode="nearest-exact")
    np.testing.assert_array_equal(got.numpy(), a[..., src])


def _ref_bicubic(a, n_out, m_out, align_corners):
    """PyTorch's upsample_bicubic2d written out per output pixel (A = -0.75, borders clamped)."""
    A = -0.75

    def weights(t):
        near = lambda x: ((A + 2) * x - (A + 3)) * x * x + 1            # noqa: E731
        far = lambda x: ((A * x - 5 * A) * x + 8 * A) * x - 4 * A       # noqa: E731
        return [far(t + 1), near(t), near(1 - t), far(2 - t)]

    def source(dst, n_in, n_out):
        if align_corners:
            return dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        return (dst + 0.5) * (n_in / n_out) - 0.5

    n_in, m_in = a.shape[-2:]
    out = np.zeros(a.shape[:-2] + (n_out, m_out))
    for i in range(n_out):
        y = source(i, n_in, n_out)
        y0, wy = math.floor(y), weights(y - math.floor(y))
        for j in range(m_out):
            x = source(j, m_in, m_out)
            x0, wx = math.floor(x), weights(x - math.floor(x))
            for p in range(4):
                for q in range(4):
                    r, c = min(max(y0 - 1 + p, 0), n_in - 1), min(max(x0 - 1 + q, 0), m_in - 1)
                    out[..., i, j] += wy[p] * wx[q] * a[..., r, c]
    return out


@pytest.mark.parametrize("size, align_corners", [((8, 9), False), ((3, 4), False), ((7, 2), True), ((1, 6), False)])
def test_bicubic_matches_the_formula_per_pixel(size, align_corners):
    a = RNG.standard_normal((2, 2, 5, 4))
    got = F.interpolate(fusegrad.tensor(a), size=size, mode="bicubic", align_corners=align_corners)
    np.testing.assert_allclose(got.numpy(), _ref_bicubic(a, *size, align_corners), rtol=1e-10, atol=1e-12)
    gradcheck(lambda x: F.interpolate(x, size=size, mode="bicubic", align_corners=align_corners),
              RNG.standard_normal((1, 1, 5, 4)))


def test_errors():
    x = fusegrad.rand(1, 2, 4, 4)
    with pytest.raises(ValueError, match="only one of size or scale_factor should be defined"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="either size or scale_factor should be defined"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option can only be set with the interpolating modes"):
        F.interpolate(x, size=3, align_corners=True)
    with pytest.raises(NotImplementedError, match="Got 3D input, but bilinear mode needs 4D input"):
        F.interpolate(fusegrad.rand(1, 2, 4), size=3, mode="bilinear")
    with pytest.raises(NotImplementedError, match="Got 5D input, but bicubic mode needs 4D input"):
        F.interpolate(fusegrad.rand(1, 2, 4, 4, 4), size=3, mode="bicubic")
    with pytest.raises(ValueError, match="Input and output must have the same number of spatial dimensions"):
        F.interpolate(x, size=(3,))


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 3, 5, 7)).astype(np.float32)
    cases = [dict(scale_factor=1.7), dict(size=(8, 9), mode="bilinear"), dict(size=(3, 4), mode="area"),
             dict(scale_factor=0.6, mode="area"), dict(size=(8, 9), mode="nearest-exact"),
             dict(scale_factor=(1.5, 0.6), mode="nearest-exact"), dict(size=(8, 9), mode="bicubic"),
             dict(scale_factor=(2.5, 0.6), mode="bicubic"), dict(size=(8, 3), mode="bicubic", align_corners=True),
             dict(size=(8, 3), mode="bilinear", align_corners=True), dict(scale_factor=(1.5, 0.6), mode="bilinear"),
             dict(scale_factor=2.3, mode="bilinear", recompute_scale_factor=True)]
    for kw in cases:
        fa, ta = fusegrad.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        f, t = F.interpolate(fa, **kw), torch.nn.functional.interpolate(ta, **kw)
        np.testing.assert_allclose(f.detach().numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6)
        w = RNG.standard_normal(tuple(t.shape)).astype(np.float32)
        (f * fusegrad.tensor(w)).sum().backward()
        (t * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-5)
        assert f.grad_fn.name() == t.grad_fn.name()
    x3 = x[0]
    for kw in [dict(size=11), dict(scale_factor=0.5), dict(size=12, mode="linear"),
               dict(scale_factor=2.5, mode="linear", align_corners=True)]:
        f = F.interpolate(fusegrad.tensor(x3), **kw)
        t = torch.nn.functional.interpolate(torch.tensor(x3), **kw)
        np.testing.assert_allclose(f.numpy(), t.numpy(), rtol=1e-5, atol=1e-6)

"""SmoothL1Loss, HuberLoss, KLDivLoss and F.pad: values against numpy formulas for every
reduction, float64 gradchecks, errors and reprs as PyTorch's, PyTorch as an oracle."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from helpers import gradcheck

RNG = np.random.default_rng(11)
X = RNG.standard_normal((4, 5)) * 2
Y = RNG.standard_normal((4, 5))


def reduce_np(loss, reduction):
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def smooth_l1_np(x, y, beta):
    d = np.abs(x - y)
    return np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta) if beta > 0 else d


def huber_np(x, y, delta):
    d = np.abs(x - y)
    return np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_smooth_l1(reduction, beta):
    got = F.smooth_l1_loss(torch.tensor(X), torch.tensor(Y), reduction=reduction, beta=beta)
    np.testing.assert_allclose(got.numpy(), reduce_np(smooth_l1_np(X, Y, beta), reduction), rtol=1e-12)
    module = nn.SmoothL1Loss(reduction=reduction, beta=beta)
    np.testing.assert_allclose(module(torch.tensor(X), torch.tensor(Y)).numpy(), got.numpy())
    gradcheck(lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction, beta=beta), X, Y)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("delta", [1.0, 2.5])
def test_huber(reduction, delta):
    got = F.huber_loss(torch.tensor(X), torch.tensor(Y), reduction=reduction, delta=delta)
    np.testing.assert_allclose(got.numpy(), reduce_np(huber_np(X, Y, delta), reduction), rtol=1e-12)
    np.testing.assert_allclose(nn.HuberLoss(reduction, delta)(torch.tensor(X), torch.tensor(Y)).numpy(), got.numpy())
    gradcheck(lambda x, y: F.huber_loss(x, y, reduction=reduction, delta=delta), X, Y)
    w = RNG.random((4, 5))
    weighted = F.huber_loss(torch.tensor(X), torch.tensor(Y), reduction=reduction, delta=delta, weight=torch.tensor(w))
    np.testing.assert_allclose(weighted.numpy(), reduce_np(huber_np(X, Y, delta) * w, reduction), rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    logp = X - np.log(np.exp(X).sum(1, keepdims=True))
    q = RNG.random((4, 5))
    q[0, 0] = 0.0                                   # xlogy: 0 log 0 = 0
    target = np.log(q + 1e-3) if log_target else q
    pointwise = np.exp(target) * (target - logp) if log_target else \
        np.where(target == 0, 0.0, target * np.log(np.where(target == 0, 1, target))) - target * logp
    want = pointwise.sum() / 4 if reduction == "batchmean" else reduce_np(pointwise, reduction)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = F.kl_div(torch.tensor(logp), torch.tensor(target), reduction=reduction, log_target=log_target)
    assert any("'batchmean' divides only by the batch size" in str(w.message) for w in caught) == \
        (reduction == "mean")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    module = nn.KLDivLoss(reduction=reduction, log_target=log_target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(module(torch.tensor(logp), torch.tensor(target)).numpy(), got.numpy())
        gradcheck(lambda x: F.kl_div(x, torch.tensor(target), reduction=reduction, log_target=log_target), logp)


def test_losses_reprs_and_errors():
    assert repr(nn.SmoothL1Loss(beta=0.5)) == "SmoothL1Loss()" and nn.SmoothL1Loss(beta=0.5).beta == 0.5
    assert repr(nn.HuberLoss(delta=2.0)) == "HuberLoss()" and nn.HuberLoss(delta=2.0).delta == 2.0
    assert repr(nn.KLDivLoss(reduction="batchmean", log_target=True)) == "KLDivLoss()"
    with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values for beta."):
        F.smooth_l1_loss(torch.ones(2), torch.ones(2), beta=-1.0)
    with pytest.raises(RuntimeError, match="huber_loss does not support non-positive values for delta."):
        F.huber_loss(torch.ones(2), torch.ones(2), delta=0.0)
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.kl_div(torch.ones(2), torch.ones(2), reduction="foo")
    with pytest.raises(ValueError, match="Weights and input must have the same size."):
        F.huber_loss(torch.ones(2), torch.ones(2), weight=torch.ones(3))
    with pytest.raises(TypeError, match="delta must be a float or int"):
        nn.HuberLoss(delta="1")
    with pytest.warns(UserWarning, match="Using a target size"):
        F.smooth_l1_loss(torch.ones(2, 1), torch.ones(2))


# ---------------------------------------------------------------- pad


def pad_np(x, pad, value):
    out = x
    for i in range(len(pad) // 2):
        axis = x.ndim - 1 - i
        left, right = pad[2 * i], pad[2 * i + 1]
        index = [slice(None)] * x.ndim
        index[axis] = slice(max(-left, 0), out.shape[axis] - max(-right, 0))
        out = out[tuple(index)]
        widths = [(0, 0)] * x.ndim
        widths[axis] = (max(left, 0), max(right, 0))
        out = np.pad(out, widths, constant_values=value)
    return out


@pytest.mark.parametrize("pad", [(1, 2), (0, 0), (-1, 2), (2, -3, 1, 1), (1, 1, 0, -2, 1, 0), (-2, -1)])
def test_pad_constant(pad):
    x = RNG.standard_normal((2, 3, 4))
    for value in (None, 2.5):
        got = F.pad(torch.tensor(x), pad, value=value)
        np.testing.assert_array_equal(got.numpy(), pad_np(x, pad, 0.0 if value is None else value))
    gradcheck(lambda t: F.pad(t, pad, value=1.0), x)
    assert F.pad(torch.tensor(x, requires_grad=True), pad).grad_fn.name() == "ConstantPadNdBackward0"


def test_pad_errors():
    with pytest.raises(RuntimeError, match="Padding length must be divisible by 2"):
        F.pad(torch.ones(3), (1,))
    with pytest.raises(RuntimeError, match="Padding length should be less than or equal to two times the input "
                                           "dimension but got padding length 4 and input of dimension 1"):
        F.pad(torch.ones(3), (1, 1, 1, 1))
    with pytest.raises(RuntimeError, match="resulted in a negative output size"):
        F.pad(torch.ones(3), (-2, -2))
    with pytest.raises(NotImplementedError, match="Unrecognised padding mode foo"):
        F.pad(torch.ones(3, 3), (1, 1), mode="foo")


def test_against_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for loss and padding values and gradients")
    t = RNG.random((4, 5))
    cases = [(lambda F, x, y: F.smooth_l1_loss(x, y, beta=0.7), Y),
             (lambda F, x, y: F.huber_loss(x, y, reduction="sum", delta=1.3), Y),
             (lambda F, x, y: F.kl_div(F.log_softmax(x, 1), y, reduction="batchmean"), t),
             (lambda F, x, y: F.kl_div(x, y, reduction="none", log_target=True), np.log(t)),
             (lambda F, x, y: (F.pad(x, (1, -2, 2, 1), value=0.5) ** 2).sum() + y.sum(), Y)]
    for fn, target in cases:
        a, b = torch.tensor(X, requires_grad=True), pt.tensor(X, requires_grad=True)
        y, z = fn(F, a, torch.tensor(target)), fn(pt.nn.functional, b, pt.tensor(target))
        y.sum().backward()
        z.sum().backward()
        np.testing.assert_allclose(y.detach().numpy(), z.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-14)
        assert y.grad_fn.name() == z.grad_fn.name()

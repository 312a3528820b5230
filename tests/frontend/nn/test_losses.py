"""Losses: values against numpy references for every reduction, float64 gradchecks, stability,
grad_fn names and errors as PyTorch's."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from helpers import gradcheck

REDUCTIONS = ["mean", "sum", "none"]


# ---------------------------------------------------------------- numpy references


def reduce_np(loss, reduction, weight_sum=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / weight_sum if weight_sum is not None else loss.mean()


def log_softmax_np(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def nll_np(logp, target, weight=None, ignore_index=-100):
    """Per-element losses and weights for (N, C, ...) log-probabilities and (N, ...) targets."""
    keep = target != ignore_index
    safe = np.where(keep, target, 0)
    picked = np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    w = keep.astype(logp.dtype) * (weight[safe] if weight is not None else 1.0)
    return -picked * w, w


def cross_entropy_np(x, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    logp = log_softmax_np(x, 1)
    loss, w = nll_np(logp, target, weight, ignore_index)
    wb = weight.reshape((1, -1) + (1,) * (x.ndim - 2)) if weight is not None else 1.0
    smooth = -(logp * wb).sum(1) * (target != ignore_index)
    total = (1 - label_smoothing) * reduce_np(loss, reduction, w.sum()) + \
        label_smoothing / x.shape[1] * reduce_np(smooth, reduction, w.sum())
    return total


def bce_np(p, y, weight=None):
    loss = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))
    return loss * weight if weight is not None else loss


def bce_logits_np(x, y, weight=None, pos_weight=None):
    lw = 1 + (pos_weight - 1) * y if pos_weight is not None else 1.0
    loss = (1 - y) * x + lw * np.logaddexp(0, -x)
    return loss * weight if weight is not None else loss


def tensors(*arrays):
    return [torch.tensor(a) for a in arrays]


def check(got, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=rtol, atol=atol)


@pytest.fixture
def data(rng):
    return dict(
        x=rng.standard_normal((6, 5)).astype(np.float32),
        y=rng.standard_normal((6, 5)).astype(np.float32),
        p=rng.uniform(0.05, 0.95, (6, 5)).astype(np.float32),
        q=rng.uniform(0, 1, (6, 5)).astype(np.float32),
        t=np.array([0, 4, 2, 2, 1, 3]),
        t_ignored=np.array([0, -100, 2, 7, 1, 3]),
        w=rng.uniform(0.5, 2.0, 5).astype(np.float32),
    )


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_and_l1(reduction, data):
    x, y, q = tensors(data["x"], data["y"], data["q"])
    diff = data["x"] - data["y"]
    check(F.mse_loss(x, y, reduction=reduction), reduce_np(diff ** 2, reduction))
    check(F.l1_loss(x, y, reduction=reduction), reduce_np(np.abs(diff), reduction))
    check(nn.MSELoss(reduction=reduction)(x, y), reduce_np(diff ** 2, reduction))
    check(nn.L1Loss(reduction=reduction)(x, y), reduce_np(np.abs(diff), reduction))
    weighted = reduce_np(diff ** 2 * data["q"], reduction, data["q"].sum())
    check(F.mse_loss(x, y, reduction=reduction, weight=q), weighted)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(reduction, data):
    logp = log_softmax_np(data["x"], 1)
    t_ignored = np.where(data["t_ignored"] == 7, 4, data["t_ignored"])
    x, t, ti, w = tensors(logp, data["t"], t_ignored, data["w"])
    loss, weights = nll_np(logp, data["t"])
    check(F.nll_loss(x, t, reduction=reduction), reduce_np(loss, reduction, weights.sum()))
    loss, weights = nll_np(logp, t_ignored, data["w"])
    check(F.nll_loss(x, ti, w, reduction=reduction), reduce_np(loss, reduction, weights.sum()))
    check(nn.NLLLoss(w, reduction=reduction)(x, ti), reduce_np(loss, reduction, weights.sum()))
    loss, weights = nll_np(logp, data["t"], ignore_index=2)
    check(F.nll_loss(x, t, ignore_index=2, reduction=reduction), reduce_np(loss, reduction, weights.sum()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_class_indices(reduction, label_smoothing, data):
    targets = np.where(data["t_ignored"] == 7, 4, data["t_ignored"])
    x, t, w = tensors(data["x"], targets, data["w"])
    for weight, weight_np in [(None, None), (w, data["w"])]:
        got = F.cross_entropy(x, t, weight, reduction=reduction, label_smoothing=label_smoothing)
        check(got, cross_entropy_np(data["x"], targets, weight_np, reduction=reduction,
                                    label_smoothing=label_smoothing))
        module = nn.CrossEntropyLoss(weight, reduction=reduction, label_smoothing=label_smoothing)
        check(module(x, t), got.detach().numpy())


def test_cross_entropy_spatial_and_unbatched(rng):
    x = rng.standard_normal((3, 4, 2, 5)).astype(np.float32)
    t = rng.integers(0, 4, (3, 2, 5))
    got = F.cross_entropy(torch.tensor(x), torch.tensor(t), reduction="none")
    check(got, cross_entropy_np(x, t, reduction="none"))
    assert tuple(got.shape) == (3, 2, 5)
    single = F.cross_entropy(torch.tensor(x[0, :, 0, 0]), torch.tensor(t[0, 0, 0]))
    check(single, cross_entropy_np(x[:1, :, 0, 0], t[:1, 0, 0]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_probabilities(reduction, data, rng):
    probs = rng.dirichlet(np.ones(5), 6).astype(np.float32)
    x, target, w = tensors(data["x"], probs, data["w"])
    for smoothing in (0.0, 0.1):
        for weight, wb in [(None, 1.0), (w, data["w"][None])]:
            smoothed = probs * (1 - smoothing) + smoothing / 5
            per_row = -(log_softmax_np(data["x"], 1) * wb * smoothed).sum(1)
            expected = per_row if reduction == "none" else per_row.sum() if reduction == "sum" else per_row.sum() / 6
            check(F.cross_entropy(x, target, weight, reduction=reduction, label_smoothing=smoothing), expected)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction, data):
    p, q, w = tensors(data["p"], data["q"], data["w"])
    check(F.binary_cross_entropy(p, q, reduction=reduction), reduce_np(bce_np(data["p"], data["q"]), reduction))
    check(nn.BCELoss(w, reduction=reduction)(p, q), reduce_np(bce_np(data["p"], data["q"], data["w"]), reduction))


def test_binary_cross_entropy_clamps_the_log_at_minus_100():
    loss = F.binary_cross_entropy(torch.tensor([0.0, 1.0, 0.5]), torch.tensor([1.0, 0.0, 1.0]), reduction="none")
    check(loss, [100.0, 100.0, np.log(2)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(reduction, data):
    x, q, w = tensors(data["x"] * 3, data["q"], data["w"])
    check(F.binary_cross_entropy_with_logits(x, q, reduction=reduction),
          reduce_np(bce_logits_np(data["x"] * 3, data["q"]), reduction))
    expected = reduce_np(bce_logits_np(data["x"] * 3, data["q"], data["w"], data["w"]), reduction)
    check(nn.BCEWithLogitsLoss(w, reduction=reduction, pos_weight=w)(x, q), expected)


def test_logit_losses_are_stable_for_huge_logits():
    x = torch.tensor([[-1000.0, 1000.0, 0.0, 80.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="sum")
    loss.backward()
    assert loss.item() == pytest.approx(2000 + np.log(2), rel=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [[-1.0, 1.0, -0.5, 0.0]], atol=1e-6)
    z = torch.tensor([[1e4, 0.0, -1e4]], requires_grad=True)
    ce = F.cross_entropy(z, torch.tensor([2]))
    ce.backward()
    assert ce.item() == pytest.approx(2e4, rel=1e-6)
    np.testing.assert_allclose(z.grad.numpy(), [[1.0, 0.0, -1.0]], atol=1e-6)


def test_bce_with_logits_gradient_at_zero_is_sigmoid_minus_target():
    x = torch.zeros(4, requires_grad=True)
    y = torch.tensor([0.0, 0.25, 0.5, 1.0])
    F.binary_cross_entropy_with_logits(x, y, reduction="sum").backward()
    np.testing.assert_allclose(x.grad.numpy(), 0.5 - y.numpy(), atol=1e-7)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_regression_losses(reduction, rng):
    x, y, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.uniform(0.5, 2, (3, 4))
    gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), x, y)
    gradcheck(lambda a, b, c: F.mse_loss(a, b, reduction=reduction, weight=c), x, y, w, wrt=[0, 1])
    gradcheck(lambda a, b: F.l1_loss(a, b, reduction=reduction), x, y)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_class_losses(reduction, rng):
    x, w = rng.standard_normal((4, 3)), rng.uniform(0.5, 2.0, 3)
    t = np.array([2, 0, -100, 1])
    gradcheck(lambda a, b, c: F.nll_loss(a, b, c, reduction=reduction), x, t, w, wrt=[0])
    gradcheck(lambda a, b: F.cross_entropy(a, b, reduction=reduction), x, t, wrt=[0])
    gradcheck(lambda a, b, c: F.cross_entropy(a, b, c, reduction=reduction, label_smoothing=0.3), x, t, w, wrt=[0])
    probs = rng.dirichlet(np.ones(3), 4)
    gradcheck(lambda a, b: F.cross_entropy(a, b, reduction=reduction, label_smoothing=0.1), x, probs)
    gradcheck(lambda a, b: F.cross_entropy(a, b, reduction=reduction), rng.standard_normal((2, 3, 2)),
              rng.integers(0, 3, (2, 2)), wrt=[0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_binary_losses(reduction, rng):
    p, y, w = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4)), rng.uniform(0.5, 2.0, 4)
    gradcheck(lambda a, b, c: F.binary_cross_entropy(a, b, c, reduction=reduction), p, y, w, wrt=[0, 1])
    x = rng.standard_normal((3, 4)) * 3
    gradcheck(lambda a, b, c: F.binary_cross_entropy_with_logits(a, b, c, reduction=reduction, pos_weight=c),
              x, y, w, wrt=[0, 1])


# ---------------------------------------------------------------- names and errors


def test_grad_fn_names_as_pytorch():
    x = torch.randn(4, 3, requires_grad=True)
    y, t, p = torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.rand(4, 3)
    for reduction in REDUCTIONS:
        names = [F.mse_loss(x, y, reduction=reduction), F.l1_loss(x, y, reduction=reduction),
                 F.binary_cross_entropy(torch.sigmoid(x), p, reduction=reduction),
                 F.binary_cross_entropy_with_logits(x, p, reduction=reduction),
                 F.nll_loss(x, t, reduction=reduction), F.cross_entropy(x, t, reduction=reduction),
                 F.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1)]
        l1 = {"mean": "MeanBackward0", "sum": "SumBackward0", "none": "AbsBackward0"}[reduction]
        assert [n.grad_fn.name() for n in names] == [
            "MseLossBackward0", l1, "BinaryCrossEntropyBackward0", "BinaryCrossEntropyWithLogitsBackward0",
            "NllLossBackward0", "NllLossBackward0", "AddBackward0"]
    soft = [F.cross_entropy(x, p, reduction=r).grad_fn.name() for r in REDUCTIONS]
    assert soft == ["DivBackward1", "NegBackward0", "NegBackward0"]
    spatial = torch.randn(2, 3, 4, requires_grad=True)
    assert F.cross_entropy(spatial, torch.zeros(2, 4, dtype=torch.int64)).grad_fn.name() == "NllLoss2DBackward0"


def test_loss_errors_as_pytorch():
    x = torch.randn(3, 5)
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.mse_loss(x, x, reduction="foo")
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte, but got Int"):
        F.cross_entropy(x, torch.tensor([1, 2, 3], dtype=torch.int32))
    with pytest.raises(RuntimeError, match="Expected floating point type for target with class probabilities"):
        F.cross_entropy(x, torch.zeros(3, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(2\)"):
        F.nll_loss(x, torch.tensor([1, 2]))
    with pytest.raises(IndexError):
        F.cross_entropy(x, torch.tensor([1, 7, 2])).item()
    with pytest.raises(ValueError, match="is deprecated. Please ensure they have the same size"):
        F.binary_cross_entropy(torch.rand(3, 1), torch.rand(3))
    with pytest.raises(ValueError, match="must be the same as input size"):
        F.binary_cross_entropy_with_logits(torch.rand(3, 1), torch.rand(3))
    with pytest.warns(UserWarning, match="Using a target size .* that is different to the input size"):
        F.mse_loss(torch.zeros(3, 1), torch.zeros(3))


def test_loss_modules_hold_options_and_weights():
    w = torch.tensor([1.0, 2.0])
    loss = nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1)
    assert loss.reduction == "mean" and loss.ignore_index == 1 and loss.label_smoothing == 0.1
    assert list(loss.state_dict()) == ["weight"] and loss.weight is w
    assert nn.MSELoss(size_average=False).reduction == "sum"
    assert nn.L1Loss(reduce=False).reduction == "none"
    assert repr(nn.BCEWithLogitsLoss()) == "BCEWithLogitsLoss()"

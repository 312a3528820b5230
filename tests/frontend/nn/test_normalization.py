"""LayerNorm, RMSNorm, GroupNorm, BatchNorm1d/2d: values against numpy formulas, float64
gradchecks, parameters/buffers/state_dict, BatchNorm's running statistics over several steps
(train then eval, momentum None = cumulative average), reprs and errors as PyTorch's, a compiled
training step equal to the eager one, and PyTorch as an oracle."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from helpers import gradcheck

RNG = np.random.default_rng(42)


def layer_norm_np(x, k, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    return y * (w if w is not None else 1) + (b if b is not None else 0)


def rms_norm_np(x, k, w=None, eps=None):
    eps = np.finfo(x.dtype).eps if eps is None else eps
    axes = tuple(range(x.ndim - k, x.ndim))
    y = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    return y * (w if w is not None else 1)


def group_norm_np(x, g, w=None, b=None, eps=1e-5):
    n, c = x.shape[:2]
    grouped = x.reshape(n, g, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    var = grouped.var(axis=2, keepdims=True)
    y = ((grouped - mean) / np.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return y * (w.reshape(shape) if w is not None else 1) + (b.reshape(shape) if b is not None else 0)


def batch_norm_np(x, mean, var, w=None, b=None, eps=1e-5):
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * (w.reshape(shape) if w is not None else 1) + (b.reshape(shape) if b is not None else 0)


def batch_stats_np(x):
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes), x.var(axis=axes, ddof=1)


T = torch.tensor

# ---------------------------------------------------------------- values


@pytest.mark.parametrize("shape,k", [((4, 7), 1), ((3, 4, 5), 1), ((3, 4, 5), 2), ((2, 3, 2, 4), 3)])
def test_layer_norm_values(shape, k):
    x = RNG.standard_normal(shape) * 3 + 1
    w, b = RNG.standard_normal(shape[-k:]), RNG.standard_normal(shape[-k:])
    np.testing.assert_allclose(F.layer_norm(T(x), shape[-k:], T(w), T(b)).numpy(), layer_norm_np(x, k, w, b),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.layer_norm(T(x), shape[-k:], eps=0.1).numpy(), layer_norm_np(x, k, eps=0.1),
                               rtol=1e-12, atol=1e-12)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(F.layer_norm(T(x32), shape[-k:]).numpy(), layer_norm_np(x, k), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rms_norm_values_default_eps_is_the_dtypes(dtype):
    x = (RNG.standard_normal((3, 4, 5)) * 1e-4).astype(dtype)      # small: eps matters
    w = RNG.standard_normal(5).astype(dtype)
    got = F.rms_norm(T(x), (5,), T(w)).numpy()
    want = rms_norm_np(x.astype(np.float64), 1, w, eps=float(np.finfo(dtype).eps))
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(F.rms_norm(T(x), [4, 5], eps=0.5).numpy(),
                               rms_norm_np(x.astype(np.float64), 2, eps=0.5), rtol=1e-5)


@pytest.mark.parametrize("shape,groups", [((2, 6), 3), ((2, 6, 5), 2), ((3, 4, 2, 3), 4), ((2, 4, 3), 1)])
def test_group_norm_values(shape, groups):
    x = RNG.standard_normal(shape) * 2 - 1
    w, b = RNG.standard_normal(shape[1]), RNG.standard_normal(shape[1])
    np.testing.assert_allclose(F.group_norm(T(x), groups, T(w), T(b)).numpy(), group_norm_np(x, groups, w, b),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.group_norm(T(x), groups).numpy(), group_norm_np(x, groups), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 3, 4, 5)])
def test_batch_norm_training_values_and_running_update(shape):
    x = RNG.standard_normal(shape) * 2 + 3
    w, b = RNG.standard_normal(3), RNG.standard_normal(3)
    rm, rv = RNG.standard_normal(3), RNG.random(3) + 0.5
    running_mean, running_var = T(rm.copy()), T(rv.copy())
    out = F.batch_norm(T(x), running_mean, running_var, T(w), T(b), training=True, momentum=0.25)
    mean, var, unbiased = batch_stats_np(x)
    np.testing.assert_allclose(out.numpy(), batch_norm_np(x, mean, var, w, b), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(running_mean.numpy(), 0.75 * rm + 0.25 * mean, rtol=1e-12)
    np.testing.assert_allclose(running_var.numpy(), 0.75 * rv + 0.25 * unbiased, rtol=1e-12)
    # eval: the running statistics
    out = F.batch_norm(T(x), running_mean, running_var, T(w), T(b))
    np.testing.assert_allclose(out.numpy(), batch_norm_np(x, 0.75 * rm + 0.25 * mean, 0.75 * rv + 0.25 * unbiased,
                                                           w, b), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- gradients


def test_gradients_by_finite_differences():
    x = RNG.standard_normal((3, 4, 5))
    w, b = RNG.standard_normal(5), RNG.standard_normal(5)
    gradcheck(lambda x, w, b: F.layer_norm(x, (5,), w, b), x, w, b)
    gradcheck(lambda x: F.layer_norm(x, (4, 5), eps=1e-3), x)
    gradcheck(lambda x, w: F.rms_norm(x, (5,), w), x, w)
    c = RNG.standard_normal(4)
    gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), x, c, c + 1)
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, c, c - 1)
    rm, rv = RNG.standard_normal(4), RNG.random(4) + 0.5
    gradcheck(lambda x, w, b, m, v: F.batch_norm(x, m, v, w, b), x, c, c, rm, rv, wrt=[0, 1, 2])


# ---------------------------------------------------------------- modules


def test_layer_norm_module():
    m = nn.LayerNorm([3, 4], eps=1e-6)
    assert tuple(m.weight.shape) == (3, 4) and tuple(m.bias.shape) == (3, 4)
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones((3, 4), np.float32))
    np.testing.assert_array_equal(m.bias.detach().numpy(), np.zeros((3, 4), np.float32))
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    with torch.no_grad():
        m.weight.mul_(2.0)
        m.bias.add_(0.5)
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(m(T(x)).detach().numpy(), layer_norm_np(x.astype(np.float64), 2, 2.0, 0.5, 1e-6),
                               rtol=1e-5, atol=1e-5)
    assert m(T(x)).grad_fn.name() == "NativeLayerNormBackward0"
    plain = nn.LayerNorm(4, elementwise_affine=False)
    assert plain.weight is None and plain.bias is None and list(plain.parameters()) == []
    assert nn.LayerNorm(4, bias=False).bias is None
    assert nn.LayerNorm(4, dtype=torch.float64).weight.dtype == torch.float64


def test_rms_group_norm_modules():
    m = nn.RMSNorm(5)
    assert m.eps is None and tuple(m.weight.shape) == (5,)
    assert list(nn.RMSNorm(5, elementwise_affine=False).parameters()) == []
    x = RNG.standard_normal((2, 5)).astype(np.float32)
    np.testing.assert_allclose(m(T(x)).detach().numpy(), rms_norm_np(x, 1), rtol=1e-5)
    g = nn.GroupNorm(2, 4)
    assert [tuple(p.shape) for p in g.parameters()] == [(4,), (4,)]
    assert list(nn.GroupNorm(2, 4, affine=False).parameters()) == []
    assert nn.GroupNorm(2, 4, bias=False).bias is None
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(g(T(x)).detach().numpy(), group_norm_np(x.astype(np.float64), 2), rtol=1e-5, atol=1e-5)


def test_batch_norm_buffers_and_state_dict():
    m = nn.BatchNorm1d(3)
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in m.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert m.num_batches_tracked.dtype == torch.int64 and m.num_batches_tracked.item() == 0
    np.testing.assert_array_equal(m.running_var.numpy(), np.ones(3, np.float32))
    untracked = nn.BatchNorm2d(3, affine=False, track_running_stats=False)
    assert untracked.running_mean is None and list(untracked.state_dict()) == []
    other = nn.BatchNorm1d(3)
    other.train()
    other(T(RNG.standard_normal((5, 3)).astype(np.float32)))
    m.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(m.running_mean.numpy(), other.running_mean.numpy())
    assert m.num_batches_tracked.item() == 1
    m.reset_running_stats()
    assert m.num_batches_tracked.item() == 0
    np.testing.assert_array_equal(m.running_mean.numpy(), np.zeros(3, np.float32))


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_running_statistics_over_steps(momentum):
    """Several training steps update the running statistics (exponential average, or the
    cumulative average for momentum=None); eval normalizes with them."""
    m = nn.BatchNorm2d(3, momentum=momentum).double()
    rm, rv = np.zeros(3), np.ones(3)
    batches = [RNG.standard_normal((4, 3, 2, 2)) * (i + 1) + i for i in range(4)]
    for i, x in enumerate(batches, 1):
        out = m(T(x))
        mean, var, unbiased = batch_stats_np(x)
        np.testing.assert_allclose(out.detach().numpy(), batch_norm_np(x, mean, var), rtol=1e-10, atol=1e-10)
        factor = 1.0 / i if momentum is None else momentum
        rm, rv = (1 - factor) * rm + factor * mean, (1 - factor) * rv + factor * unbiased
        np.testing.assert_allclose(m.running_mean.numpy(), rm, rtol=1e-12)
        np.testing.assert_allclose(m.running_var.numpy(), rv, rtol=1e-12)
        assert m.num_batches_tracked.item() == i
    if momentum is None:   # the cumulative average is the plain mean of the batch statistics
        np.testing.assert_allclose(rm, np.mean([batch_stats_np(x)[0] for x in batches], axis=0))
    m.eval()
    x = RNG.standard_normal((2, 3, 2, 2))
    np.testing.assert_allclose(m(T(x)).detach().numpy(), batch_norm_np(x, rm, rv), rtol=1e-10, atol=1e-10)
    assert m.num_batches_tracked.item() == len(batches)         # eval leaves the statistics alone
    np.testing.assert_allclose(m.running_mean.numpy(), rm, rtol=1e-12)


def test_batch_norm_without_running_stats_uses_batch_statistics_in_eval():
    m = nn.BatchNorm1d(3, track_running_stats=False).double().eval()
    x = RNG.standard_normal((6, 3))
    mean, var, _ = batch_stats_np(x)
    np.testing.assert_allclose(m(T(x)).detach().numpy(), batch_norm_np(x, mean, var), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- reprs and errors


def test_reprs_match_pytorch():
    cases = [(nn.LayerNorm(10), "LayerNorm((10,), eps=1e-05, elementwise_affine=True, bias=True)"),
             (nn.LayerNorm([3, 4], eps=1e-6, elementwise_affine=False),
              "LayerNorm((3, 4), eps=1e-06, elementwise_affine=False, bias=False)"),
             (nn.LayerNorm(4, bias=False), "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=False)"),
             (nn.RMSNorm(8), "RMSNorm((8,), eps=None, elementwise_affine=True)"),
             (nn.RMSNorm([2, 3], eps=1e-6, elementwise_affine=False),
              "RMSNorm((2, 3), eps=1e-06, elementwise_affine=False)"),
             (nn.GroupNorm(2, 6), "GroupNorm(2, 6, eps=1e-05, affine=True, bias=True)"),
             (nn.GroupNorm(3, 6, affine=False), "GroupNorm(3, 6, eps=1e-05, affine=False, bias=False)"),
             (nn.BatchNorm1d(5),
              "BatchNorm1d(5, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"),
             (nn.BatchNorm2d(3, momentum=None, affine=False, track_running_stats=False),
              "BatchNorm2d(3, eps=1e-05, momentum=None, affine=False, bias=False, track_running_stats=False)")]
    for module, text in cases:
        assert repr(module) == text


def test_errors_match_pytorch():
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[10\], expected input with shape \[\*, 10\], "
                                           r"but got input of size\[2, 5\]"):
        F.layer_norm(torch.randn(2, 5), (10,))
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[3, 4\], expected input with shape \[\*3, 4\]"):
        F.rms_norm(torch.randn(2, 5), (3, 4))
    with pytest.raises(RuntimeError, match=r"Expected weight to be of same shape as normalized_shape, but got weight "
                                           r"of shape \[4\] and normalized_shape = \[5\]"):
        F.layer_norm(torch.randn(2, 5), (5,), torch.ones(4))
    with pytest.raises(RuntimeError, match="Expected bias to be of same shape"):
        F.layer_norm(torch.randn(2, 5), (5,), None, torch.ones(4))
    with pytest.raises(RuntimeError, match="Given normalized_shape"):
        nn.LayerNorm(5)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"):
        nn.GroupNorm(4, 6)
    with pytest.raises(RuntimeError, match=r"Expected number of channels in input to be divisible by num_groups, but "
                                           r"got input of shape \[2, 6, 4\] and num_groups=4"):
        F.group_norm(torch.randn(2, 6, 4), 4)
    with pytest.raises(RuntimeError, match="Expected at least 2 dimensions for input tensor but received 1"):
        F.group_norm(torch.randn(6), 2)
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input size"):
        nn.BatchNorm1d(3)(torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        nn.BatchNorm1d(3)(torch.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        nn.BatchNorm2d(3)(torch.randn(2, 3))
    with pytest.raises(RuntimeError, match="running_mean should contain 4 elements not 3"):
        nn.BatchNorm1d(3)(torch.randn(4, 4))


# ---------------------------------------------------------------- compiled step


def _norm_model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))


def test_compiled_training_step_matches_eager():
    x = T(RNG.standard_normal((16, 6)).astype(np.float32))
    y = T(RNG.integers(0, 3, 16))
    results = []
    for compiled in (False, True):
        model = _norm_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            return loss

        run = torch.compile(step) if compiled else step
        losses = [run(x, y).item() for _ in range(5)]
        model.eval()
        results.append((losses, model(x).detach().numpy(), {k: v.numpy() for k, v in model.state_dict().items()}))
    (l0, o0, s0), (l1, o1, s1) = results
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    np.testing.assert_allclose(o1, o0, rtol=1e-4, atol=1e-5)
    assert list(s0) == list(s1)
    for k in s0:
        np.testing.assert_allclose(s1[k], s0[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert s1["1.num_batches_tracked"] == 5


# ---------------------------------------------------------------- PyTorch as the oracle


def test_against_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for normalization values, gradients and "
                                             "running statistics")
    x = RNG.standard_normal((4, 6, 5)).astype(np.float32)
    w6, b6 = RNG.standard_normal(6).astype(np.float32), RNG.standard_normal(6).astype(np.float32)
    w5 = RNG.standard_normal(5).astype(np.float32)
    cases = [(lambda F, x, w, b: F.layer_norm(x, (5,), w, b), [x, w5, w5 + 1]),
             (lambda F, x, w, b: F.group_norm(x, 3, w, b), [x, w6, b6]),
             (lambda F, x, w: F.rms_norm(x, (6, 5), None, 1e-3) * w, [x, w5]),
             (lambda F, x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w6, b6])]
    for fn, arrays in cases:
        ours = [torch.tensor(a, requires_grad=True) for a in arrays]
        theirs = [pt.tensor(a, requires_grad=True) for a in arrays]
        y, z = fn(F, *ours), fn(pt.nn.functional, *theirs)
        (y * y.detach().exp()).sum().backward()
        (z * z.detach().exp()).sum().backward()
        np.testing.assert_allclose(y.detach().numpy(), z.detach().numpy(), rtol=1e-4, atol=1e-5)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-3, atol=1e-4)
    for momentum in (0.1, None):
        ours_bn, theirs_bn = nn.BatchNorm1d(6, momentum=momentum), pt.nn.BatchNorm1d(6, momentum=momentum)
        assert repr(ours_bn) == repr(theirs_bn)
        for i in range(3):
            batch = RNG.standard_normal((5, 6, 3)).astype(np.float32) + i
            np.testing.assert_allclose(ours_bn(torch.tensor(batch)).detach().numpy(),
                                       theirs_bn(pt.tensor(batch)).detach().numpy(), rtol=1e-4, atol=1e-5)
        for name, value in theirs_bn.state_dict().items():
            np.testing.assert_allclose(ours_bn.state_dict()[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-6)
        ours_bn.eval(), theirs_bn.eval()
        batch = RNG.standard_normal((2, 6, 3)).astype(np.float32)
        np.testing.assert_allclose(ours_bn(torch.tensor(batch)).detach().numpy(),
                                   theirs_bn(pt.tensor(batch)).detach().numpy(), rtol=1e-4, atol=1e-5)
    for m, pm in [(nn.LayerNorm([3, 4]), pt.nn.LayerNorm([3, 4])), (nn.GroupNorm(2, 4), pt.nn.GroupNorm(2, 4)),
                  (nn.RMSNorm(3), pt.nn.RMSNorm(3))]:
        assert repr(m) == repr(pm)
        assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in pm.state_dict().items()}

"""nn.utils.clip_grad_norm_ / clip_grad_value_: the total norm for every norm type, scaling only
above max_norm, errors, and both inside a compiled step (no host reads) matching eager."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn

RNG = np.random.default_rng(21)
GRADS = [RNG.standard_normal((3, 4)), RNG.standard_normal(5), RNG.standard_normal((2, 2))]


def params_with_grads(scale=1.0, grads=GRADS):
    params = []
    for g in grads:
        p = nn.Parameter(torch.zeros(g.shape, dtype=torch.float64))
        p.grad = torch.tensor(g * scale)
        params.append(p)
    return params


def norm_np(grads, p):
    flat = np.concatenate([g.ravel() for g in grads])
    if p == math.inf:
        return np.abs(flat).max()
    if p == -math.inf:
        return np.abs(flat).min()
    if p == 0:
        return float(np.count_nonzero(flat))
    return (np.abs(flat) ** p).sum() ** (1 / p)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm(norm_type, max_norm):
    params = params_with_grads()
    total = nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    want = norm_np(GRADS, norm_type)
    np.testing.assert_allclose(total.numpy(), want, rtol=1e-12)
    coef = min(max_norm / (want + 1e-6), 1.0)
    for p, g in zip(params, GRADS):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-12)
    if max_norm < want:
        np.testing.assert_allclose(norm_np([p.grad.numpy() for p in params], norm_type), max_norm, rtol=1e-5)


def test_clip_grad_norm_single_tensor_missing_grads_and_no_grads():
    p = params_with_grads()[0]
    total = nn.utils.clip_grad_norm_(p, 1.0)
    np.testing.assert_allclose(total.numpy(), np.linalg.norm(GRADS[0]), rtol=1e-12)
    bare = nn.Parameter(torch.ones(2))
    assert nn.utils.clip_grad_norm_([bare], 1.0).item() == 0.0 and bare.grad is None
    mixed = params_with_grads() + [bare]
    np.testing.assert_allclose(nn.utils.clip_grad_norm_(mixed, 1e9).numpy(), norm_np(GRADS, 2), rtol=1e-12)


def test_error_if_nonfinite():
    params = params_with_grads()
    params[1].grad = torch.tensor([math.inf, 1.0, 0.0, 2.0, 3.0], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="The total norm of order 2.0 for gradients from `parameters` is "
                                           "non-finite, so it cannot be clipped"):
        nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    total = nn.utils.clip_grad_norm_(params, 1.0)          # default: no check, scaled by the inf norm
    assert math.isinf(total.item())


def test_clip_grad_value():
    params = params_with_grads()
    assert nn.utils.clip_grad_value_(params, 0.5) is None
    for p, g in zip(params, GRADS):
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -0.5, 0.5))


def test_compiled_clipping_matches_eager():
    x = torch.tensor(RNG.standard_normal((16, 4)).astype(np.float32))
    y = torch.tensor(RNG.standard_normal((16, 1)).astype(np.float32) * 10)
    results = []
    for compiled in (False, True):
        torch.manual_seed(2)
        model = nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            loss = nn.functional.huber_loss(model(x), y)
            loss.backward()
            total = nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            nn.utils.clip_grad_value_(model.parameters(), 0.05)
            opt.step()
            return loss, total

        run = torch.compile(step) if compiled else step
        out = [tuple(t.item() for t in run(x, y)) for _ in range(4)]
        results.append((out, [p.detach().numpy().copy() for p in model.parameters()]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    assert results[0][0][0][1] > 0.1           # the norm was above max_norm: clipping acted
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_against_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for clip_grad_norm_'s norm and scaling")
    for norm_type in (2.0, math.inf, 1.5):
        ours = params_with_grads(3.0)
        theirs = []
        for g in GRADS:
            p = pt.nn.Parameter(pt.zeros(g.shape, dtype=pt.float64))
            p.grad = pt.tensor(g * 3.0)
            theirs.append(p)
        a = nn.utils.clip_grad_norm_(ours, 2.0, norm_type)
        b = pt.nn.utils.clip_grad_norm_(theirs, 2.0, norm_type)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)

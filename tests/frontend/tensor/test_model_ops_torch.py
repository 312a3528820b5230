"""The issue-13 tensor ops (test_model_ops.py) against PyTorch itself: values, dtypes and
shapes of the same calls, and gradients through composites of them. Skipped where PyTorch
is not installed."""
import math

import numpy as np
import pytest

import fusegrad

torch = pytest.importorskip("torch")


def test_against_pytorch():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 4, 5))
    cases = [
        lambda m, t: m.split(t, [1, 3], 1),
        lambda m, t: t.chunk(3, -1),
        lambda m, t: m.tensor_split(t, 3, 2),
        lambda m, t: t.unbind(-1),
        lambda m, t: (m.tril(t, -2), t.triu(1)),
        lambda m, t: (t.repeat(2, 1, 1, 2), t.repeat_interleave(2, -2), m.repeat_interleave(t, 2)),
        lambda m, t: (t.flip(0, 2), m.roll(t, (2, -7), (1, 2)), m.roll(t, 11)),
        lambda m, t: (m.addmm(t[0, 0, :4], t[0], t[1].T, beta=0.3, alpha=2),
                      m.baddbmm(t[:, :1, :4], t, t.transpose(1, 2)),
                      m.addbmm(t[0, :, :4], t, t.transpose(1, 2)[:, :, :4], alpha=0.5)),
        lambda m, t: (m.var(t, (0, 2)), t.std(1, keepdim=True), m.var(t, 1, False), m.std(t, correction=2),
                      *m.var_mean(t, -1), *m.std_mean(t, 0, keepdim=True)),
        lambda m, t: (m.norm(t), t.norm(3, 1), m.norm(t, float("inf"), (0, 2), True), m.norm(t, "fro", (1, 2)),
                      m.norm(t, 0.5), m.linalg.vector_norm(t, -math.inf, -1)),
        lambda m, t: (m.einsum("abc,adc->abd", t, t), m.einsum("a...,a...->...", t, t), m.einsum("abc->cb", t)),
        lambda m, t: (m.addcmul(t, t[0], t[:, :1], value=3), m.addcdiv(t, t, t.abs() + 1, value=-1),
                      m.lerp(t, t[0], 0.6), m.lerp(t, t.flip(0), t.sigmoid())),
        lambda m, t: (m.isnan(t.log()), m.isinf(1 / (t.floor() + 1)), m.isfinite(t.log())),
    ]
    for i, case in enumerate(cases):
        got = case(fusegrad, fusegrad.tensor(a))
        ref = case(torch, torch.tensor(a))
        assert len(got) == len(ref), i
        for g, r in zip(got, ref):
            assert tuple(g.shape) == tuple(r.shape), (i, tuple(g.shape), tuple(r.shape))
            assert str(g.dtype).split(".")[-1] == str(r.dtype).split(".")[-1], (i, g.dtype, r.dtype)
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-10, atol=1e-12, err_msg=str(i))
    # gradients, through the same composite forms
    for fn in (lambda m, t: m.einsum("ij,jk->ik", t[0], t[1].T).norm(),
               lambda m, t: m.addcmul(t, t.roll(1, 0), t.tril()).var(1).sum(),
               lambda m, t: t.repeat_interleave(m.tensor([2, 0, 1]), dim=0).flip(1).std()):
        x = fusegrad.tensor(a, requires_grad=True)
        fn(fusegrad, x).backward()
        y = torch.tensor(a, requires_grad=True)
        fn(torch, y).backward()
        np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), rtol=1e-10, atol=1e-12)

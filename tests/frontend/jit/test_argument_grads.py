"""backward() inside a compiled function fills the .grad of the tensors passed as arguments,
as eager PyTorch does: each call's own arguments, accumulated, never a buffer shared by calls."""
from __future__ import annotations

import numpy as np

import fusegrad as torch


def _loss_grads(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d/dx and d/dw of sum((x @ w - y)^2)."""
    r = 2 * (x @ w - y)
    return r @ w.T, x.T @ r


def _step():
    w = torch.randn(3, 2, requires_grad=True)

    @torch.compile
    def step(x, y):
        loss = ((x @ w - y) ** 2).sum()
        loss.backward()
        return loss

    return w, step


def test_each_call_fills_its_own_arguments_grad():
    torch.manual_seed(0)
    w, step = _step()
    calls = []
    for _ in range(4):                      # trace, confirm, replays
        x = torch.randn(4, 3, requires_grad=True)
        y = torch.randn(4, 2)
        w.grad = None
        step(x, y)
        calls.append((x, x.detach().numpy().copy(), y))
        gx, gw = _loss_grads(x.detach().numpy(), w.detach().numpy(), y.numpy())
        np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(w.grad.numpy(), gw, rtol=1e-5, atol=1e-5)
        assert y.grad is None                 # no requires_grad: no gradient, as eager
    assert step.stats["replays"] >= 2
    for x, xv, y in calls:                    # earlier arguments' grads were not overwritten
        gx, _ = _loss_grads(xv, w.detach().numpy(), y.numpy())
        np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-5, atol=1e-5)


def test_gradients_accumulate_into_an_existing_grad():
    torch.manual_seed(1)
    w, step = _step()
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.randn(4, 2)
    x.grad = torch.ones(4, 3)
    for _ in range(3):
        step(x, y)
    gx, _ = _loss_grads(x.detach().numpy(), w.detach().numpy(), y.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 1 + 3 * gx, rtol=1e-5, atol=1e-5)


def test_compiled_equals_eager_for_argument_grads():
    torch.manual_seed(2)
    w = torch.randn(5, requires_grad=True)

    def f(a, b):
        (a.sin() * w + b * b).sum().backward()

    compiled = torch.compile(f)
    a, b = torch.randn(5, requires_grad=True), torch.randn(5, requires_grad=True)
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    for _ in range(3):
        f(a, b)
        compiled(a2, b2)
    np.testing.assert_allclose(a2.grad.numpy(), a.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b2.grad.numpy(), b.grad.numpy(), rtol=1e-6)

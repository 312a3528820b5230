"""backward() leaves its gradients to the next realization: an eager training step is one program."""
import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.optim as optim
from fusegrad import realize


def _runs():
    return realize.STATS["runs"]


def _linreg(seed=1):
    torch.manual_seed(seed)
    x = torch.rand(100, 1) * 10
    y = 2.5 * x + 1 + torch.randn(100, 1)
    model = nn.Linear(1, 1)
    return x, y, model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.01)


def test_an_eager_training_step_is_one_native_call_and_matches_numpy():
    x, y, model, criterion, optimizer = _linreg()
    xn, yn = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    w, b = float(model.weight.item()), float(model.bias.item())
    for _ in range(3):                      # compile the step's program once
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for _ in range(3):
        err = xn * w + b - yn
        w, b = w - 0.01 * 2 * float((err * xn).mean()), b - 0.01 * 2 * float(err.mean())
    before = _runs()
    losses = []
    for _ in range(20):
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss)
    assert _runs() - before == 20                      # forward, backward and update: one program each
    for loss in losses:                                # computed with their steps: reading runs nothing
        err = xn * w + b - yn
        assert loss.item() == pytest.approx(float((err ** 2).mean()), rel=1e-4)
        w, b = w - 0.01 * 2 * float((err * xn).mean()), b - 0.01 * 2 * float(err.mean())
    assert _runs() - before == 20
    assert model.weight.item() == pytest.approx(w, rel=1e-4) and model.bias.item() == pytest.approx(b, rel=1e-4)


def test_gradients_read_before_the_step_and_accumulated_over_two_backwards():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    x = torch.tensor([3.0, 4.0])
    (w * x).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 4.0])        # reading realizes them
    (w * w).sum().backward()
    ((w * x).sum() * 2).backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3 + 2 + 6, 4 + 4 + 8])


def test_gradient_accumulation_realizes_each_backward_before_the_next():
    x, y, model, criterion, optimizer = _linreg()
    xn, yn = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    w, b = float(model.weight.item()), float(model.bias.item())
    for _ in range(2):                                 # compile the programs once
        optimizer.zero_grad()
        for _ in range(4):
            criterion(model(x), y).backward()
        optimizer.step()
    before = _runs()
    optimizer.zero_grad()
    for _ in range(4):                                 # four micro-batches: a program each, not one of four
        criterion(model(x), y).backward()
    optimizer.step()
    assert _runs() - before == 4
    for _ in range(3):                                 # the reference: three steps of 4x the gradient
        err = xn * w + b - yn
        w, b = w - 0.01 * 4 * 2 * float((err * xn).mean()), b - 0.01 * 4 * 2 * float(err.mean())
    assert model.weight.item() == pytest.approx(w, rel=1e-4) and model.bias.item() == pytest.approx(b, rel=1e-4)


def test_a_failing_realization_leaves_the_pending_gradients_computable():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    (w * w * 3).sum().backward()
    bad = torch.arange(3.0)[torch.tensor([5])]
    with pytest.raises(IndexError):
        bad.sum().item()
    np.testing.assert_array_equal(w.grad.numpy(), [6.0, 12.0])


def test_create_graph_gradients_are_realized_at_once():
    w = torch.tensor([2.0], requires_grad=True)
    before = _runs()
    (w ** 3).sum().backward(create_graph=True)
    assert _runs() - before == 1
    assert w.grad.item() == 12.0


def test_a_matmul_result_added_into_a_computed_tensor_in_place_keeps_its_old_value():
    rng = np.random.default_rng(0)
    x0, x1 = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    lin = nn.Linear(4, 5)
    lin(torch.tensor(x0)).sum().backward()
    lin.weight.grad.numpy()                       # computed: the next backward adds into its buffer
    lin(torch.tensor(x1)).sum().backward()         # weight.grad += ones(5, 6) @ x1, a matmul
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.tile((x0 + x1).sum(0), (5, 1)), rtol=1e-5)
    a, b = rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    w0 = rng.normal(size=(5, 4)).astype(np.float32)
    w = torch.tensor(w0)
    w.numpy()
    w.sub_(0.5 * (torch.tensor(a).T @ torch.tensor(b)))
    np.testing.assert_allclose(w.numpy(), w0 - 0.5 * a.T @ b, rtol=1e-5, atol=1e-6)

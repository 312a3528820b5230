"""CompiledFunction.repeat: n steps in one native call give what n calls give."""
import logging

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.optim as optim


def _linreg(seed=1):
    torch.manual_seed(seed)
    x = torch.rand(100, 1) * 10
    y = 2.5 * x + 1 + torch.randn(100, 1)
    model = nn.Linear(1, 1)
    criterion = nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=0.01)

    @torch.compile
    def step(x, y):
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    return step, model, x, y


def test_linear_regression_epochs_in_one_call_equal_single_calls():
    step, model, x, y = _linreg()
    single = np.array([step(x, y).item() for _ in range(300)])
    step_r, model_r, xr, yr = _linreg()
    losses = step_r.repeat(300, xr, yr)
    assert losses.shape == (300,) and losses.dtype == torch.float32
    np.testing.assert_array_equal(losses.numpy(), single)
    np.testing.assert_array_equal(model_r.weight.detach().numpy(), model.weight.detach().numpy())
    np.testing.assert_array_equal(model_r.bias.detach().numpy(), model.bias.detach().numpy())
    # the first step traced, the second traced again with the .grads it created; the rest: one call
    assert step_r.stats == {"traces": 2, "replays": 1, "compiles": 1}
    assert losses[-1].item() < losses[0].item()


def test_a_second_repeat_is_one_native_call_and_continues_the_state():
    step, model, x, y = _linreg()
    single = np.array([step(x, y).item() for _ in range(40)])
    step_r, model_r, xr, yr = _linreg()
    first, second = step_r.repeat(15, xr, yr), step_r.repeat(25, xr, yr)
    np.testing.assert_array_equal(np.concatenate([first.numpy(), second.numpy()]), single)
    assert step_r.stats["replays"] == 2 and step_r.stats["traces"] == 2
    # a single call after the repeat goes on from the repeated state
    assert step_r(xr, yr).item() == step(x, y).item()


def _mlp(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Dropout(0.25), nn.Linear(16, 3))
    optimizer = optim.Adam(model.parameters(), lr=0.01)

    @torch.compile
    def step(x, y, scale):
        logits = model(x) * scale
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss, logits.argmax(1), "tag"
    return step, model


def test_stacked_minibatches_adam_and_dropout_equal_single_calls():
    rng = np.random.default_rng(0)
    xs = torch.tensor(rng.normal(size=(12, 8, 6)).astype(np.float32))
    ys = torch.tensor(rng.integers(0, 3, (12, 8)))
    scale = torch.tensor(0.5)
    step, model = _mlp()
    single = [step(xs[i], ys[i], scale) for i in range(12)]
    step_r, model_r = _mlp()
    losses, predicted, tag = step_r.repeat(12, xs, ys, scale, stacked=("x", "y"))
    assert step_r.stats["replays"] == 1         # steps 2..11: one native call
    assert tag == "tag" and losses.shape == (12,) and predicted.shape == (12, 8)
    np.testing.assert_allclose(losses.numpy(), [s[0].item() for s in single], rtol=1e-6)
    np.testing.assert_array_equal(predicted.numpy(), np.stack([s[1].numpy() for s in single]))
    for p, q in zip(model_r.parameters(), model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_stacked_true_slices_every_tensor_argument():
    step, model = _mlp(3)
    rng = np.random.default_rng(1)
    xs = torch.tensor(rng.normal(size=(5, 4, 6)).astype(np.float32))
    ys = torch.tensor(rng.integers(0, 3, (5, 4)))
    scales = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.25])
    single = [step(xs[i], ys[i], scales[i])[0].item() for i in range(5)]
    step_r, _ = _mlp(3)
    losses, _, _ = step_r.repeat(5, xs, ys, scales, stacked=True)
    np.testing.assert_allclose(losses.numpy(), single, rtol=1e-6)


def test_a_check_failing_in_a_repeated_step_names_the_step():
    table = torch.arange(10.0)
    total = torch.zeros(())

    @torch.compile
    def gather(i):
        total.add_(table[i])
        return total * 1

    indices = torch.tensor([1, 2, 3, 4, 11, 5])
    with pytest.raises(IndexError, match=r"in step 4"):
        gather.repeat(6, indices, stacked=True)
    # steps 0..3 ran (1 + 2 + 3 + 4), as four calls would have before the failing one
    assert total.item() == 10.0


def test_bad_repeat_arguments_raise_clear_errors():
    step, _, x, y = _linreg()
    with pytest.raises(ValueError, match="positive whole number"):
        step.repeat(0, x, y)
    with pytest.raises(ValueError, match=r"stacked argument 'x' has shape \(100, 1\).*\(at test_repeat.py:\d+\)"):
        step.repeat(7, x, y, stacked=("x",))
    with pytest.raises(TypeError, match="'z' is not an argument"):
        step.repeat(100, x, y, stacked=("z",))


def test_gradients_of_arguments_run_call_by_call_with_the_same_results(caplog):
    w = torch.ones(3)

    @torch.compile
    def step(x):
        loss = (x * w).sum() ** 2
        loss.backward()
        return loss

    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with caplog.at_level(logging.INFO, logger="fusegrad"):
        losses = step.repeat(3, x)
    np.testing.assert_array_equal(losses.numpy(), [36.0, 36.0, 36.0])
    np.testing.assert_array_equal(x.grad.numpy(), 3 * 2 * 6.0 * np.ones(3))     # three calls' d/dx added
    assert "every step is a call of its own: it computes gradients of its own arguments" in caplog.text


def test_retrace_after_a_first_trace_that_created_state_is_logged(caplog):
    step, _, x, y = _linreg()
    with caplog.at_level(logging.INFO, logger="fusegrad"):
        step(x, y)
        step(x, y)
    assert "retracing step: its first trace created state (model.weight.grad, model.bias.grad)" in caplog.text

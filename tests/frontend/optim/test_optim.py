"""Optimizers: updates against hand-written numpy references over several steps, one realization
per step, state and param groups, state_dict round trips, errors as PyTorch's."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.optim as optim
from fusegrad.realize import STATS

STEPS = 6


# ---------------------------------------------------------------- numpy references (PyTorch's algorithms)


def sgd_np(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    buf = None
    for g in grads:
        g = -g if maximize else g
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def adam_np(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False,
            maximize=False):
    m, v, v_max = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        m = m + (g - m) * (1 - betas[0])
        v = betas[1] * v + (1 - betas[1]) * g * g
        if amsgrad:
            v_max = np.maximum(v_max, v)
        second = v_max if amsgrad else v
        denom = np.sqrt(second) / np.sqrt(1 - betas[1] ** t) + eps
        p = p - lr / (1 - betas[0] ** t) * m / denom
    return p


def rmsprop_np(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    square_avg, grad_avg, buf = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        if weight_decay:
            g = g + weight_decay * p
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        if centered:
            grad_avg = grad_avg + (g - grad_avg) * (1 - alpha)
            avg = np.sqrt(square_avg - grad_avg ** 2) + eps
        else:
            avg = np.sqrt(square_avg) + eps
        if momentum:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
    return p


# ---------------------------------------------------------------- running an optimizer on given gradients


def run(make_opt, start: list, grads: list, dtype=np.float64):
    """Params from `start`, stepped with the gradient sequence `grads` (one list per step)."""
    params = [nn.Parameter(torch.tensor(a.astype(dtype))) for a in start]
    opt = make_opt(params)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g.astype(dtype))
        opt.step()
    return [p.detach().numpy() for p in params], opt, params


@pytest.fixture
def problem(rng):
    start = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    grads = [[rng.standard_normal((3, 4)), rng.standard_normal(4)] for _ in range(STEPS)]
    return start, grads


def expect(got, start, grads, reference, rtol=1e-10, atol=1e-12):
    for i, value in enumerate(got):
        np.testing.assert_allclose(value, reference(start[i], [g[i] for g in grads]), rtol=rtol, atol=atol)


SGD_CASES = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.8, dampening=0.3),
             dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
             dict(lr=0.1, weight_decay=0.1, maximize=True)]


@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: ",".join(kw))
def test_sgd_matches_reference(kw, problem):
    got, _, _ = run(lambda ps: optim.SGD(ps, **kw), *problem)
    expect(got, *problem, lambda p, gs: sgd_np(p, gs, **kw))


ADAM_CASES = [dict(lr=0.01), dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
              dict(lr=0.01, amsgrad=True), dict(lr=0.01, maximize=True)]


@pytest.mark.parametrize("kw", ADAM_CASES, ids=lambda kw: ",".join(kw))
def test_adam_matches_reference(kw, problem):
    got, opt, params = run(lambda ps: optim.Adam(ps, **kw), *problem)
    expect(got, *problem, lambda p, gs: adam_np(p, gs, **kw))
    step = opt.state[params[0]]["step"]
    assert isinstance(step, torch.Tensor) and step.dtype is torch.float32 and step.item() == STEPS


@pytest.mark.parametrize("kw", [dict(lr=0.01), dict(lr=0.01, weight_decay=0.5, amsgrad=True)],
                         ids=lambda kw: ",".join(kw))
def test_adamw_matches_reference(kw, problem):
    got, _, _ = run(lambda ps: optim.AdamW(ps, **kw), *problem)
    expect(got, *problem, lambda p, gs: adam_np(p, gs, decoupled=True, **dict(dict(weight_decay=1e-2), **kw)))


RMSPROP_CASES = [dict(lr=0.01), dict(lr=0.01, alpha=0.9, weight_decay=0.1), dict(lr=0.01, momentum=0.9),
                 dict(lr=0.01, centered=True, momentum=0.5, eps=1e-6)]


@pytest.mark.parametrize("kw", RMSPROP_CASES, ids=lambda kw: ",".join(kw))
def test_rmsprop_matches_reference(kw, problem):
    got, _, _ = run(lambda ps: optim.RMSprop(ps, **kw), *problem)
    expect(got, *problem, lambda p, gs: rmsprop_np(p, gs, **kw))


def test_float32_parameters_match_within_float32_precision(problem):
    got, _, _ = run(lambda ps: optim.Adam(ps, lr=0.01), *problem, dtype=np.float32)
    expect(got, *problem, lambda p, gs: adam_np(p, gs, lr=0.01), rtol=1e-5, atol=1e-6)
    assert got[0].dtype == np.float32


# ---------------------------------------------------------------- one program per step


@pytest.mark.parametrize("make_opt", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                      lambda ps: optim.Adam(ps, lr=0.1, amsgrad=True),
                                      lambda ps: optim.RMSprop(ps, lr=0.1, centered=True, momentum=0.9)],
                         ids=["sgd", "adam", "rmsprop"])
def test_each_step_is_one_realization_and_compiles_once(make_opt, problem):
    start, grads = problem
    params = [nn.Parameter(torch.tensor(a)) for a in start]
    opt = make_opt(params)
    for i, step_grads in enumerate(grads):
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)._realize()
        if i == 2:
            misses = STATS["misses"]
        runs = STATS["runs"]
        opt.step()
        assert STATS["runs"] == runs + 1, "the update of every parameter and its state is one program"
    assert STATS["misses"] == misses, "after warm-up every step replays the cached program"


def test_changing_the_learning_rate_does_not_recompile(problem):
    start, grads = problem
    params = [nn.Parameter(torch.tensor(a)) for a in start]
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    lrs = [0.1, 0.1, 0.05, 0.02, 0.01, 0.005]
    for i, (lr, step_grads) in enumerate(zip(lrs, grads)):
        opt.param_groups[0]["lr"] = lr
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        if i == 2:
            misses = STATS["misses"]
        opt.step()
    assert STATS["misses"] == misses
    p, buf = start[1], None
    for lr, step_grads in zip(lrs, grads):
        g = step_grads[1]
        buf = g.copy() if buf is None else 0.9 * buf + g
        p = p - lr * buf
    np.testing.assert_allclose(params[1].detach().numpy(), p, rtol=1e-12)


# ---------------------------------------------------------------- groups, state, closure


def test_param_groups_take_defaults_and_their_own_options():
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["params"][0] is b
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    opt.step()
    assert a.tolist() == pytest.approx([0.9, 0.9]) and b.tolist() == pytest.approx([0.5, 0.5])
    c = nn.Parameter(torch.zeros(1))
    opt.add_param_group({"params": [c], "lr": 1.0})
    assert opt.param_groups[2]["momentum"] == 0.9
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_parameters_without_grad_are_skipped_and_zero_grad_clears():
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    (a * 3).sum().backward()
    opt.step()
    assert b.tolist() == [1.0, 1.0] and b not in opt.state and a.tolist() == pytest.approx([0.9, 0.9])
    opt.zero_grad(set_to_none=False)
    assert a.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert a.grad is None


def test_step_with_closure_returns_the_loss():
    w = nn.Parameter(torch.tensor([2.0]))
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss
    with torch.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0 and w.item() == 1.0


def test_state_dict_round_trip_continues_identically(problem):
    start, grads = problem

    def make(ps):
        return optim.Adam(ps, lr=0.05, amsgrad=True)
    _, first, first_params = run(make, start, grads[:3])
    saved = first.state_dict()
    assert sorted(saved["state"]) == [0, 1] and saved["param_groups"][0]["params"] == [0, 1]
    assert saved["param_groups"][0]["lr"] == 0.05
    second_params = [nn.Parameter(p.detach().clone()) for p in first_params]
    second = make(second_params)
    second.load_state_dict(saved)
    for step_grads in grads[3:]:
        for a, b, g in zip(first_params, second_params, step_grads):
            a.grad, b.grad = torch.tensor(g), torch.tensor(g)
        first.step()
        second.step()
    for a, b in zip(first_params, second_params):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert second.state[second_params[0]]["step"].item() == STEPS
    assert first.state[first_params[0]]["exp_avg"] is not second.state[second_params[0]]["exp_avg"]
    with pytest.raises(ValueError, match="different number of parameter groups"):
        second.load_state_dict({"state": {}, "param_groups": []})


def test_optimizer_errors_as_pytorch():
    p = nn.Parameter(torch.ones(1))
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid alpha value: -0.5"):
        optim.RMSprop([p], alpha=-0.5)
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="sets will change between runs"):
        optim.SGD([{"params": {p}}], lr=0.1)
    with pytest.raises(TypeError, match="should be an iterable of Tensors or dicts, but got torch.FloatTensor"):
        optim.SGD(p, lr=0.1)


def test_repr_lists_each_group_as_pytorch():
    opt = optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1, momentum=0.9)
    assert repr(opt) == ("SGD (\nParameter Group 0\n    dampening: 0\n    lr: 0.1\n    maximize: False\n"
                         "    momentum: 0.9\n    nesterov: False\n    weight_decay: 0\n)")

"""Schedules reach compiled training steps without a retrace: lr, SGD's momentum and Adam's betas
are runtime tensors refreshed before every replay, so a step whose hyperparameters change every
call is traced once and computes exactly what the eager step computes."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad
import fusegrad.nn as nn
import fusegrad.optim as optim
from fusegrad.optim import lr_scheduler

STEPS = 20


def _world(make_opt, make_sched, compiled: bool):
    fusegrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = make_opt(model.parameters())
    sched = make_sched(opt)
    criterion = nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    x = fusegrad.tensor(rng.standard_normal((16, 6)).astype(np.float32))
    y = fusegrad.tensor(rng.integers(0, 3, 16))
    for p in model.parameters():           # gradients exist before the first call: it creates no state
        p.grad = fusegrad.zeros_like(p)

    def step(x, y):
        # compiled: zeroed in place, so the first call creates no gradient state and the one trace is
        # final; eager: dropped (in place is the same math, but eager zero_grad(set_to_none=False)
        # then backward currently keeps the old gradient of the first Linear's weight: a bug outside optim)
        opt.zero_grad(set_to_none=not compiled)
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, sched, (fusegrad.compile(step) if compiled else step), x, y


def _train(make_opt, make_sched, compiled: bool):
    model, opt, sched, step, x, y = _world(make_opt, make_sched, compiled)
    losses, lrs, params = [], [], []
    for _ in range(STEPS):
        losses.append(step(x, y).item())
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
        params.append([p.detach().numpy().copy() for p in model.parameters()])
    return losses, lrs, params, step


CASES = {
    "sgd-cosine": (lambda ps: optim.SGD(ps, lr=0.5, momentum=0.9),
                   lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01)),
    "adam-cosine": (lambda ps: optim.Adam(ps, lr=0.05),
                    lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=7)),
    "adam-onecycle": (lambda ps: optim.Adam(ps, lr=0.05),
                      lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=STEPS + 1)),
    "sgd-onecycle": (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                     lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.3, total_steps=STEPS + 1,
                                                       anneal_strategy="linear")),
    "nadam-onecycle": (lambda ps: optim.NAdam(ps, lr=0.05),
                       lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=STEPS + 1, three_phase=True)),
    "rmsprop-step": (lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5),
                     lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    "adagrad-linear": (lambda ps: optim.Adagrad(ps, lr=0.1),
                       lambda o: lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_steps_under_a_schedule_trace_once_and_match_eager(case):
    make_opt, make_sched = CASES[case]
    eager_losses, eager_lrs, eager_params, _ = _train(make_opt, make_sched, compiled=False)
    losses, lrs, params, step = _train(make_opt, make_sched, compiled=True)
    assert len(set(lrs)) >= 5, "the schedule really changed lr"
    assert lrs == eager_lrs
    assert step.stats["traces"] == 1 and step.stats["compiles"] == 1 and step.stats["replays"] == STEPS - 1
    assert len(step.traced_variants()) == 1
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5, atol=1e-6)
    for i, (got, want) in enumerate(zip(params, eager_params)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"after step {i}")


def test_a_stale_learning_rate_would_be_caught():
    """The comparison above can fail: a compiled run whose lr is held fixed differs from the schedule."""
    make_opt, make_sched = CASES["sgd-cosine"]
    _, _, eager_params, _ = _train(make_opt, make_sched, compiled=False)
    _, _, fixed_params, _ = _train(make_opt, lambda o: lr_scheduler.LambdaLR(o, lambda epoch: 1.0), compiled=True)
    assert not np.allclose(fixed_params[-1][0], eager_params[-1][0], rtol=1e-5, atol=1e-6)


def test_first_call_creating_gradients_adds_one_trace_not_one_per_lr():
    """Without gradients before the first call, the jit traces a second time (the first trace created
    the .grad state); the schedule still adds none."""
    def run(schedule):
        fusegrad.manual_seed(0)
        model = nn.Linear(4, 2)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = schedule(opt)

        @fusegrad.compile
        def step(x):
            opt.zero_grad()
            loss = (model(x) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        x = fusegrad.ones(3, 4)
        for _ in range(10):
            step(x)
            sched.step()
        return step.stats
    constant = run(lambda o: lr_scheduler.LambdaLR(o, lambda e: 1.0))
    cosine = run(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=3))
    assert cosine == constant and cosine["compiles"] == 1


def test_structural_hyperparameters_still_retrace():
    """Momentum's value is a runtime input, but turning it on or off changes the program: that retraces."""
    model, opt, _, step, x, y = _world(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                      lambda o: lr_scheduler.StepLR(o, 1), compiled=True)
    step(x, y)
    opt.param_groups[0]["momentum"] = 0.5
    step(x, y)
    assert step.stats["traces"] == 1
    opt.param_groups[0]["momentum"] = 0.0
    step(x, y)
    assert step.stats["traces"] == 2
    opt.param_groups[0]["weight_decay"] = 0.1
    step(x, y)
    assert step.stats["traces"] == 3

"""Adagrad, NAdam, Adadelta and LBFGS: updates against hand-written numpy references of PyTorch's
algorithms, param groups, state_dict round trips, PyTorch's errors; LBFGS on Rosenbrock against
torch.optim.LBFGS's iterates when PyTorch is installed."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.optim as optim

STEPS = 6


def adagrad_np(p, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
               maximize=False):
    s = np.full_like(p, initial_accumulator_value)
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        if weight_decay:
            g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
    return p


def nadam_np(p, grads, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
             decoupled_weight_decay=False):
    b1, b2 = betas
    m, v, mu_product = np.zeros_like(p), np.zeros_like(p), np.float32(1.0)
    for t, g in enumerate(grads, 1):
        if weight_decay:
            if decoupled_weight_decay:
                p = p * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = np.float32(mu_product * np.float32(mu))          # a float32 tensor in PyTorch's state
        m = m + (g - m) * (1 - b1)
        v = b2 * v + (1 - b2) * g * g
        denom = np.sqrt(v / (1 - b2 ** t)) + eps
        p = p - lr * (1 - mu) / (1 - float(mu_product)) * g / denom
        p = p - lr * mu_next / (1 - float(mu_product) * mu_next) * m / denom
    return p


def adadelta_np(p, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    sq, acc = np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        if weight_decay:
            g = g + weight_decay * p
        sq = rho * sq + (1 - rho) * g * g
        delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
        acc = rho * acc + (1 - rho) * delta * delta
        p = p - lr * delta
    return p


@pytest.fixture
def problem():
    rng = np.random.default_rng(7)
    start = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    grads = [[rng.standard_normal((3, 4)), rng.standard_normal(4)] for _ in range(STEPS)]
    return start, grads


def run(make_opt, start, grads, dtype=np.float64):
    params = [nn.Parameter(torch.tensor(a.astype(dtype))) for a in start]
    opt = make_opt(params)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g.astype(dtype))
        opt.step()
    return [p.detach().numpy() for p in params], opt, params


CASES = [
    (optim.Adagrad, adagrad_np, dict(lr=0.1)),
    (optim.Adagrad, adagrad_np, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3)),
    (optim.Adagrad, adagrad_np, dict(lr=0.1, eps=1e-3, maximize=True)),
    (optim.NAdam, nadam_np, dict(lr=0.01)),
    (optim.NAdam, nadam_np, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01)),
    (optim.NAdam, nadam_np, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    (optim.Adadelta, adadelta_np, dict()),
    (optim.Adadelta, adadelta_np, dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
]


@pytest.mark.parametrize("cls,ref,kw", CASES, ids=lambda x: x.__name__ if isinstance(x, type) else
                         (",".join(x) if isinstance(x, dict) else ""))
def test_matches_reference(cls, ref, kw, problem):
    start, grads = problem
    got, _, _ = run(lambda ps: cls(ps, **kw), start, grads)
    for i, value in enumerate(got):
        want = ref(start[i], [g[i] for g in grads], **kw)
        np.testing.assert_allclose(value, want, rtol=1e-9, atol=1e-12)
        assert not np.allclose(value, start[i]), "the parameters moved"


@pytest.mark.parametrize("cls,ref,kw", CASES[::3], ids=["adagrad", "nadam", "adadelta"])
def test_float32_matches_torch_when_installed(cls, ref, kw, problem):
    real = pytest.importorskip("torch", reason="PyTorch's optimizer as the oracle")
    start, grads = problem
    got, _, _ = run(lambda ps: cls(ps, **kw), start, grads, dtype=np.float32)
    tp = [real.nn.Parameter(real.tensor(a.astype(np.float32))) for a in start]
    topt = getattr(real.optim, cls.__name__)(tp, **kw)
    for step_grads in grads:
        for p, g in zip(tp, step_grads):
            p.grad = real.tensor(g.astype(np.float32))
        topt.step()
    for a, b in zip(got, tp):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("make", [lambda ps: optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.1),
                                  lambda ps: optim.NAdam(ps, lr=0.05),
                                  lambda ps: optim.Adadelta(ps, lr=0.5)], ids=["adagrad", "nadam", "adadelta"])
def test_state_dict_round_trip_continues_identically(make, problem):
    start, grads = problem
    _, first, first_params = run(make, start, grads[:3])
    saved = first.state_dict()
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


def test_param_groups_take_their_own_options(problem):
    start, grads = problem
    params = [nn.Parameter(torch.tensor(a)) for a in start]
    opt = optim.NAdam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05, "betas": (0.5, 0.9)}], lr=0.01)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(params[0].detach().numpy(), nadam_np(start[0], [g[0] for g in grads], lr=0.01),
                               rtol=1e-9)
    np.testing.assert_allclose(params[1].detach().numpy(),
                               nadam_np(start[1], [g[1] for g in grads], lr=0.05, betas=(0.5, 0.9)), rtol=1e-9)


def test_errors_as_pytorch():
    p = [nn.Parameter(torch.ones(1))]
    for make, message in [
        (lambda: optim.Adagrad(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda: optim.Adagrad(p, lr_decay=-1), "Invalid lr_decay value: -1"),
        (lambda: optim.Adagrad(p, initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
        (lambda: optim.Adagrad(p, eps=-1), "Invalid epsilon value: -1"),
        (lambda: optim.NAdam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
        (lambda: optim.NAdam(p, momentum_decay=-1), "Invalid momentum_decay value: -1"),
        (lambda: optim.NAdam(p, weight_decay=-1), "Invalid weight_decay value: -1"),
        (lambda: optim.Adadelta(p, rho=1.5), "Invalid rho value: 1.5"),
        (lambda: optim.Adadelta(p, eps=-1), "Invalid epsilon value: -1"),
        (lambda: optim.LBFGS(p, lr=-1), "Invalid learning rate: -1"),
        (lambda: optim.LBFGS([{"params": p}, {"params": [nn.Parameter(torch.ones(1))]}]),
         "LBFGS doesn't support per-parameter options"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            make()


# ---------------------------------------------------------------- LBFGS


def rosenbrock(xy):
    x, y = xy[0], xy[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def lbfgs_iterates(lib, start, steps, **kw):
    w = lib.nn.Parameter(lib.tensor(np.array(start, dtype=np.float64)))
    opt = (lib.optim.LBFGS if lib is not torch else optim.LBFGS)([w], **kw)

    def closure():
        opt.zero_grad()
        loss = rosenbrock(w)
        loss.backward()
        return loss
    out = []
    for _ in range(steps):
        opt.step(closure)
        out.append(w.detach().numpy().copy())
    return np.array(out), opt


@pytest.mark.parametrize("kw", [dict(lr=0.1, max_iter=5), dict(line_search_fn="strong_wolfe", history_size=4)],
                         ids=["fixed-step", "strong-wolfe"])
def test_lbfgs_minimizes_rosenbrock(kw):
    path, opt = lbfgs_iterates(torch, [-1.2, 1.0], 30 if "line_search_fn" in kw else 60, **kw)
    assert np.linalg.norm(path[-1] - [1.0, 1.0]) < (1e-4 if "line_search_fn" in kw else 0.2)
    assert rosenbrock(path[-1]) < rosenbrock(np.array([-1.2, 1.0]))
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert state["n_iter"] > 0 and state["func_evals"] >= state["n_iter"]
    if "history_size" in kw:
        assert len(state["old_dirs"]) <= 4


@pytest.mark.parametrize("kw", [dict(lr=0.1, max_iter=5), dict(lr=1, max_iter=20, line_search_fn="strong_wolfe"),
                                dict(line_search_fn="strong_wolfe", history_size=3, tolerance_change=1e-12)],
                         ids=["fixed-step", "strong-wolfe", "short-history"])
def test_lbfgs_matches_torch_iterates(kw):
    real = pytest.importorskip("torch", reason="PyTorch's LBFGS as the oracle")
    real.set_default_dtype(real.float64)
    try:
        want, topt = lbfgs_iterates(real, [-1.2, 1.0], 8, **kw)
    finally:
        real.set_default_dtype(real.float32)
    got, opt = lbfgs_iterates(torch, [-1.2, 1.0], 8, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    tstate = topt.state[topt.param_groups[0]["params"][0]]
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert (state["n_iter"], state["func_evals"]) == (tstate["n_iter"], tstate["func_evals"])


def test_lbfgs_state_dict_round_trip_continues_identically():
    path, opt = lbfgs_iterates(torch, [-1.2, 1.0], 3, line_search_fn="strong_wolfe", history_size=5)
    w2 = nn.Parameter(torch.tensor(path[-1].copy()))
    opt2 = optim.LBFGS([w2], line_search_fn="strong_wolfe", history_size=5)
    opt2.load_state_dict(opt.state_dict())
    w = opt.param_groups[0]["params"][0]
    for o, p in ((opt, w), (opt2, w2)):
        def closure(o=o, p=p):
            o.zero_grad()
            loss = rosenbrock(p)
            loss.backward()
            return loss
        o.step(closure)
    np.testing.assert_array_equal(w.detach().numpy(), w2.detach().numpy())
    assert opt2.state[w2]["old_dirs"] is not opt.state[w]["old_dirs"]

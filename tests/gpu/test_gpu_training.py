"""On a CUDA device: training a small MLP gives the CPU's parameters, eagerly and compiled."""
import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
import fusegrad.optim as optim

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

STEPS = 10


def _setup(device, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    model = model.to(device)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = torch.tensor(rng.standard_normal((64, 20)).astype(np.float32), device=device)
    y = torch.tensor(rng.integers(0, 5, 64), device=device)
    return model, opt, x, y


def _params(model):
    return [p.detach().cpu().numpy() for p in model.parameters()]


def _train(device, compiled: bool):
    model, opt, x, y = _setup(device)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    run = torch.compile(step) if compiled else step
    losses = [run(x, y).item() for _ in range(STEPS)]
    return losses, _params(model)


def test_eager_training_on_the_gpu_matches_the_cpu():
    cpu_losses, cpu_params = _train("cpu", compiled=False)
    gpu_losses, gpu_params = _train("cuda", compiled=False)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for g, c in zip(gpu_params, cpu_params):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)


def test_compiled_training_step_on_the_gpu_matches_the_cpu():
    cpu_losses, cpu_params = _train("cpu", compiled=True)
    gpu_losses, gpu_params = _train("cuda", compiled=True)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for g, c in zip(gpu_params, cpu_params):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)

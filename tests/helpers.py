"""Test helpers shared by test modules.

`mlp_training` trains a small MLP on a device, eagerly or with a compiled step (the CUDA tests
compare devices with it).

`gradcheck` compares fusegrad's autograd with central finite differences in float64, the way
torch.autograd.gradcheck does: for a random projection R of the output, d(sum(R * f))/dx from
`fusegrad.autograd.grad` against (g(x + eps e_i) - g(x - eps e_i)) / 2 eps for every element.
"""
from __future__ import annotations

import numpy as np

import fusegrad


def gradcheck(fn, *arrays, wrt=None, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-5, seed: int = 0):
    """Check fn's gradients at float64 `arrays` (numpy) with respect to the positions in `wrt`
    (default: every float array). Non-float arrays are passed as integer tensors."""
    arrays = [np.asarray(a) for a in arrays]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else list(wrt)
    for i in wrt:
        assert arrays[i].dtype == np.float64, "gradcheck runs in float64"

    def evaluate(values, requires_grad=False):
        tensors = [fusegrad.tensor(a, requires_grad=requires_grad and i in wrt) for i, a in enumerate(values)]
        return tensors, fn(*tensors)

    tensors, out = evaluate(arrays, requires_grad=True)
    projection = np.random.default_rng(seed).standard_normal(tuple(out.shape))
    weighted = (out * fusegrad.tensor(projection)).sum()
    grads = fusegrad.autograd.grad(weighted, [tensors[i] for i in wrt])

    def project(values) -> float:
        with fusegrad.no_grad():
            return float((evaluate(values)[1].numpy() * projection).sum())

    for i, analytic in zip(wrt, grads):
        numeric = np.zeros_like(arrays[i])
        flat = numeric.reshape(-1)
        for k in range(arrays[i].size):
            shifted = [a.copy() for a in arrays]
            shifted[i].reshape(-1)[k] += eps
            up = project(shifted)
            shifted[i].reshape(-1)[k] -= 2 * eps
            flat[k] = (up - project(shifted)) / (2 * eps)
        np.testing.assert_allclose(analytic.numpy(), numeric, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {i} differs from finite differences")


def mlp_training(device, make_opt, compiled: bool, steps: int = 10, schedule=None):
    """Losses, parameters, optimizer and step function of `steps` training steps of a small
    MLP (Linear-ReLU-Linear, cross-entropy) on `device`."""
    rng = np.random.default_rng(7)
    fusegrad.manual_seed(0)
    nn = fusegrad.nn
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4)).to(device)
    opt = make_opt(model.parameters())
    x = fusegrad.tensor(rng.standard_normal((24, 12)).astype(np.float32), device=device)
    y = fusegrad.tensor(rng.integers(0, 4, 24), device=device)

    def step(x, y):
        opt.zero_grad()
        loss = fusegrad.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    run = fusegrad.compile(step) if compiled else step
    losses = []
    for i in range(steps):
        if schedule is not None:
            opt.param_groups[0]["lr"] = schedule(i)
        loss = run(x, y)
        assert loss.device == fusegrad.device(device)
        losses.append(loss.item())
    return losses, [p.detach().cpu().numpy() for p in model.parameters()], opt, run

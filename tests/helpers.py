"""Test helpers shared by the nn/optim test modules.

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

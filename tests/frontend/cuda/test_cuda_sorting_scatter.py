"""The scans, sorts, scatters, multinomial, interpolate and a custom autograd.Function on a CUDA
device (the emulated one of tests/ptx_emulator.py): the values and gradients equal the CPU's,
and results stay on the device."""
import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn.functional as F
from ptx_emulator import compiler as c_compiler
from ptx_emulator import install_emulated_device

pytestmark = pytest.mark.skipif(c_compiler() is None, reason="no C compiler for the PTX emulator")


@pytest.fixture(autouse=True)
def emulated_gpu(monkeypatch):
    install_emulated_device(monkeypatch)


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x


def _index(x, rows):
    return torch.tensor(rows, device=x.device)


CASES = {
    "cumsum": lambda x: x.cumsum(1) + x.cumprod(0),
    "sort": lambda x: x.sort(1).values * x.sort(0, descending=True).indices,
    "topk": lambda x: x.topk(2).values,
    "scatter": lambda x: x.scatter(1, _index(x, [[0], [2], [1]]), 1.0) + x.scatter(1, _index(x, [[3], [0], [1]]),
                                                                                     x[:, 1:2] * 3),
    "scatter_multiply": lambda x: x.scatter(1, _index(x, [[0, 0], [2, 1], [1, 1]]), x[:, :2] * 3, reduce="multiply"),
    "scatter_add": lambda x: x.scatter_add(1, _index(x, [[0], [2], [0]]), x[:, :1]),
    "index_add_fill": lambda x: x.index_add(0, _index(x, [2, 2]), x[:2]).index_fill(1, _index(x, [1]), 5.0),
    "interpolate": lambda x: F.interpolate(x.reshape(1, 1, 3, 4), scale_factor=2, mode="bilinear")
    + F.interpolate(x.reshape(1, 1, 3, 4), size=(6, 8)),
    "function": lambda x: Cube.apply(x),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_the_cpu_with_gradients(name):
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        x = torch.tensor(a, device=device, requires_grad=True)
        y = CASES[name](x)
        assert y.device == x.device
        (y * y).sum().backward()
        results.append((y.detach().cpu().numpy(), x.grad.cpu().numpy()))
    (cy, cg), (gy, gg) = results
    np.testing.assert_allclose(gy, cy, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gg, cg, rtol=1e-5, atol=1e-5)


def test_multinomial_draws_on_the_device_as_on_the_cpu():
    w = np.array([[0.2, 0.0, 0.5, 0.3], [1.0, 1.0, 1.0, 1.0]], np.float32)
    draws = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(5)
        x = torch.tensor(w, device=device)
        s = (x.multinomial(6, replacement=True), x.multinomial(3))
        assert s[0].device == x.device and s[0].dtype == torch.int64
        draws.append([t.cpu().numpy() for t in s])
    for c, g in zip(*draws):
        np.testing.assert_array_equal(g, c)

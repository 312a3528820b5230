"""Tensors on a CUDA device, end to end through the frontend, on the emulated device of
tests/ptx_emulator.py (programs compiled for target "cuda" run on the CPU): moving between
devices, values staying on their device, PyTorch's mixed-device error, printing, autograd
and an optimizer step. runtime/cuda.py itself (pycuda) is not exercised here."""
import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
from ptx_emulator import compiler as c_compiler, install_emulated_device

pytestmark = pytest.mark.skipif(c_compiler() is None, reason="no C compiler for the PTX emulator")


@pytest.fixture(autouse=True)
def emulated_gpu(monkeypatch):
    install_emulated_device(monkeypatch)


def test_moving_to_cuda_and_back(rng):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    x = torch.tensor(a).cuda()
    assert x.is_cuda and x.device == torch.device("cuda", 0) and str(x.device) == "cuda:0"
    assert torch.cuda.is_available() and torch.cuda.device_count() == 1
    back = x.cpu()
    assert back.device == torch.device("cpu")
    np.testing.assert_array_equal(back.numpy(), a)
    np.testing.assert_array_equal(torch.tensor(a, device="cuda").t().cpu().numpy(), a.T)


def test_results_stay_on_the_device_and_compile_for_cuda(rng):
    a, b = rng.standard_normal((64, 100)).astype(np.float32), rng.standard_normal(100).astype(np.float32)
    x, w = torch.tensor(a).cuda(), torch.tensor(b).cuda()
    y = torch.softmax(x * w + 1, dim=1)
    assert y.is_cuda
    got = y.cpu().numpy()
    assert torch.program_of(y).target == "cuda"
    z = a * b + 1
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert (x.sum() * 2).item() == pytest.approx(float(a.astype(np.float64).sum() * 2), rel=1e-5)


def test_a_cpu_scalar_joins_a_cuda_tensor_but_a_cpu_vector_does_not():
    x = torch.ones(3, device="cuda")
    assert (x + torch.tensor(2.0)).is_cuda
    with pytest.raises(RuntimeError, match=r"^Expected all tensors to be on the same device, but found at least two "
                                           r"devices, cuda:0 and cpu!$"):
        x + torch.ones(3)
    with pytest.raises(RuntimeError, match="cuda:0 and cpu"):
        torch.ones(3) * x


def test_printing_and_numpy_of_a_cuda_tensor():
    x = torch.tensor([1.0, 2.5], device="cuda")
    assert repr(x) == "tensor([1.0000, 2.5000], device='cuda:0')"
    assert x.tolist() == [1.0, 2.5]
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        x.numpy()


def test_autograd_and_an_sgd_step_on_the_device(rng):
    a = rng.standard_normal((8, 3)).astype(np.float32)
    w0 = rng.standard_normal((3, 1)).astype(np.float32)
    x = torch.tensor(a, device="cuda")
    w = torch.tensor(w0, device="cuda", requires_grad=True)
    loss = ((x @ w) ** 2).mean()
    loss.backward()
    assert w.grad.is_cuda
    grad = 2 * a.T @ (a @ w0) / 8
    np.testing.assert_allclose(w.grad.cpu().numpy(), grad, rtol=1e-4)
    with torch.no_grad():
        w -= 0.1 * w.grad
    assert w.is_cuda
    np.testing.assert_allclose(w.detach().cpu().numpy(), w0 - 0.1 * grad, rtol=1e-4)


def test_a_failed_check_on_the_device_raises_like_the_cpu():
    src = torch.ones(4, 2, device="cuda")
    index = torch.tensor([[0, 1], [4, 0]], device="cuda")
    with pytest.raises(IndexError, match="gather: index out of range for dimension 0 of size 4"):
        src.gather(0, index).sum().item()


def test_a_module_moves_with_to():
    net = nn.Linear(3, 2).to("cuda")
    assert all(p.is_cuda for p in net.parameters())
    y = net(torch.ones(5, 3, device="cuda"))
    assert y.is_cuda and y.shape == (5, 2)
    w, b = (p.detach().cpu().numpy() for p in net.parameters())
    np.testing.assert_allclose(y.detach().cpu().numpy(), np.ones((5, 3)) @ w.T + b, rtol=1e-5)

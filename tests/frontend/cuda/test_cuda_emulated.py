"""Tensors on a CUDA device, end to end through the frontend, on the emulated device of
tests/ptx_emulator.py (programs compiled for target "cuda" run on the CPU): moving between
devices, values staying on their device, PyTorch's mixed-device error, printing, autograd
and an optimizer step; `@compile`d functions and training steps on the device (one CUDA
program per variant, replayed, matching the CPU). runtime/cuda.py itself (pycuda) is not
exercised here."""
import inspect
import logging

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
from fusegrad.jit import TracingError
from helpers import mlp_training
from ptx_emulator import compiler as c_compiler
from ptx_emulator import install_emulated_device

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


# ---------------------------------------------------------------- @compile on the device

@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: torch.optim.Adam(p, lr=0.01),
], ids=["sgd-momentum", "adam"])
def test_a_compiled_training_step_on_the_device_matches_the_cpu(make_opt):
    cpu_losses, cpu_params, _, _ = mlp_training("cpu", make_opt, compiled=False)
    gpu_losses, gpu_params, opt, step = mlp_training("cuda", make_opt, compiled=True)
    assert step.stats["traces"] <= 3 and step.stats["replays"] == 10 - step.stats["traces"]
    assert step.stats["compiles"] == 1
    assert all(v.program.target == "cuda" for v in step.traced_variants())
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    assert cpu_losses[-1] < cpu_losses[0]                       # the steps really trained
    for g, c in zip(gpu_params, cpu_params):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-6)
    for p, state in opt.state.items():
        assert p.is_cuda and all(t.is_cuda for k, t in state.items() if k != "step")
        if "step" in state:                 # Adam's step count stays a CPU scalar, as in PyTorch
            assert state["step"].device == torch.device("cpu") and state["step"].item() == 10


def test_a_learning_rate_schedule_reaches_replays_on_the_device():
    make_opt = lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5)   # noqa: E731
    schedule = lambda i: 0.1 / (i + 1)                                 # noqa: E731
    cpu_losses, cpu_params, _, _ = mlp_training("cpu", make_opt, compiled=False, steps=6, schedule=schedule)
    gpu_losses, gpu_params, _, step = mlp_training("cuda", make_opt, compiled=True, steps=6, schedule=schedule)
    assert step.stats["replays"] >= 4
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for g, c in zip(gpu_params, cpu_params):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-6)


def test_compiled_results_come_back_on_the_device_from_views_and_cpu_scalars(rng):
    a = rng.standard_normal((6, 5)).astype(np.float32)
    w = torch.tensor(rng.standard_normal(5).astype(np.float32), device="cuda")

    @torch.compile
    def f(x, scale):
        y = (x * w).sum(dim=1) * scale
        return y, y                              # one value twice: two tensors holding it

    x = torch.tensor(a, device="cuda")
    for k in range(3):
        scale = torch.tensor(float(k + 1))     # a CPU scalar joins CUDA tensors, as eagerly
        y1, y2 = f(x.t().t()[1:5], scale)     # a view of a CUDA tensor as the argument
        assert y1.is_cuda and y2.is_cuda and torch.program_of(y1).target == "cuda"
        expect = (a[1:5] * w.cpu().numpy()).sum(axis=1) * (k + 1)
        np.testing.assert_allclose(y1.cpu().numpy(), expect, rtol=1e-5)
        np.testing.assert_allclose(y2.cpu().numpy(), expect, rtol=1e-5)
        y1.add_(1)                              # the two results do not share memory
        np.testing.assert_allclose(y2.cpu().numpy(), expect, rtol=1e-5)
    assert f.stats["traces"] == 1 and f.stats["replays"] == 2


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_one_value_returned_twice_comes_back_as_two_tensors_on_either_device(device):
    w = torch.ones(3, device=device, requires_grad=True)

    @torch.compile
    def f(x):
        w.grad = x * 2                           # new state: the same value as the results
        return x * 2, x * 2, (x * 2).sum()      # one value (one buffer slot) twice

    for k in range(4):
        a, b, total = f(torch.full((3,), float(k), device=device))
        assert a.device == b.device == torch.device(device)
        assert a.tolist() == b.tolist() == w.grad.tolist() == [2.0 * k] * 3 and total.item() == 6.0 * k
        a.add_(1)
        b.add_(2)                                # none of them share memory
        assert (a.tolist(), b.tolist(), w.grad.tolist()) == ([2.0 * k + 1] * 3, [2.0 * k + 2] * 3, [2.0 * k] * 3)
    assert f.stats["replays"] >= 2


def test_a_new_device_retraces_and_says_so(caplog):
    f = torch.compile(lambda x: x + 1)
    f(torch.ones(3))
    with caplog.at_level(logging.INFO, logger="fusegrad"):
        assert f(torch.ones(3, device="cuda")).is_cuda
    assert "argument x changed device cpu → cuda:0" in caplog.text
    assert [v.program.target for v in f.traced_variants()] == ["cpu", "cuda"]


def test_a_compiled_function_mixing_a_cpu_argument_and_cuda_parameters_raises():
    net = nn.Linear(3, 2).to("cuda")
    step = torch.compile(lambda x: net(x).sum())
    line = step.fn.__code__.co_firstlineno          # the layer's error names the line that called it
    with pytest.raises(RuntimeError, match=r"^Expected all tensors to be on the same device, but found at least two "
                                           rf"devices, cuda:0 and cpu! \(at test_cuda_emulated\.py:{line}\)$"):
        step(torch.ones(4, 3))
    assert step(torch.ones(4, 3, device="cuda")).is_cuda


def test_a_trace_that_mixes_devices_without_combining_them_names_the_function():
    w = torch.ones(3, device="cuda", requires_grad=True)

    @torch.compile
    def two_devices(x):
        return x * 2, w * 3

    line = inspect.getsourcelines(two_devices.fn)[1]
    with pytest.raises(TracingError, match=rf"^two_devices \(test_cuda_emulated.py:{line}\): a compiled function runs "
                                           r"as one program on one device, "
                                           r"but this trace mixes devices: argument x is on cpu while "
                                           r"captured tensor w is on cuda:0"):
        two_devices(torch.ones(3))


def test_lower_and_dumps_of_a_cuda_variant_give_ptx(capsys):
    w = torch.ones(4, 3, device="cuda")
    f = torch.compile(lambda x: (x @ w).relu(), dump="ptx")
    lowered = f.lower(torch.ones(2, 4, device="cuda"))
    ptx = lowered.text("ptx")
    assert ".target sm_80" in ptx and ".visible .entry" in ptx
    assert lowered.program.target == "cuda" and "nvptx" in lowered.text("llvm")
    f(torch.ones(2, 4, device="cuda"))
    err = capsys.readouterr().err
    assert "===== fusegrad lambda(x: f32[2,4]): ptx =====" in err and ".visible .entry" in err


def test_the_program_cache_keeps_cpu_and_cuda_programs_of_one_graph_apart():
    from fusegrad.compiler.ir import parse_graph
    from fusegrad.programs import compile_cached
    graph = parse_graph(torch.compile(lambda x: x * 2 + 1).lower(torch.ones(3)).text("graph"))
    assert compile_cached(graph).target == "cpu"
    assert compile_cached(graph, target="cuda", arch="sm_80").target == "cuda"
    assert compile_cached(graph).target == "cpu"


def test_indexing_a_cuda_tensor_with_lists_masks_and_cpu_index_tensors(rng):
    a = rng.standard_normal((5, 4)).astype(np.float32)
    x = torch.tensor(a, device="cuda")
    np.testing.assert_array_equal(x[[0, 3, 3]].cpu().numpy(), a[[0, 3, 3]])
    np.testing.assert_array_equal(x[torch.tensor([4, 1])].cpu().numpy(), a[[4, 1]])
    mask = a > 0
    np.testing.assert_array_equal(x[torch.tensor(mask)].cpu().numpy(), a[mask])
    np.testing.assert_array_equal(x[x > 0].cpu().numpy(), a[mask])
    x[[1, 2]] = 0.0
    x[x < -1] = -1.0
    b = a.copy()
    b[[1, 2]] = 0.0
    b[b < -1] = -1.0
    assert x.is_cuda
    np.testing.assert_array_equal(x.cpu().numpy(), b)

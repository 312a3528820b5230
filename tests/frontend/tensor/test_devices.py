"""Devices as PyTorch programs see them on a machine without CUDA: `.device`, `.to("cpu")`,
`.cpu()`, `fusegrad.device`, `cuda.is_available()` False and a clear error for `.to("cuda")`."""
import importlib.util

import pytest
from support import check

import fusegrad as torch

_CUDA_MODULE = importlib.util.find_spec("fusegrad.cuda") is not None
_cuda_in_progress = pytest.mark.xfail(not _CUDA_MODULE, strict=False, reason="cuda module in progress")


def test_device_of_tensors():
    x = torch.zeros(2)
    assert repr(x.device) == "device(type='cpu')"
    assert str(x.device) == "cpu"
    assert x.device == torch.device("cpu")
    assert x.device.type == "cpu"
    assert x.is_cuda is False
    assert torch.zeros(2, device="cpu").device.type == "cpu"
    assert torch.tensor([1], device="cpu").device.type == "cpu"
    assert (x + 1).device.type == "cpu"


def test_device_objects():
    assert repr(torch.device("cpu")) == "device(type='cpu')"
    assert repr(torch.device("cuda:0")) == "device(type='cuda', index=0)"
    assert repr(torch.device("cuda", 1)) == "device(type='cuda', index=1)"
    assert str(torch.device("cuda:1")) == "cuda:1"
    assert torch.device("cpu") == torch.device("cpu")
    assert torch.device("cpu") != torch.device("cuda:0")
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda.* device type at start of device string: tpu"):
        torch.device("tpu")


def test_to_cpu_and_cpu():
    x = torch.tensor([1.0, 2.0])
    check(x.to("cpu"), [1.0, 2.0], torch.float32)
    check(x.cpu(), [1.0, 2.0], torch.float32)
    check(x.to(torch.device("cpu")), [1.0, 2.0], torch.float32)
    check(x.to("cpu", torch.float64), [1.0, 2.0], torch.float64)
    check(x.to(device="cpu", dtype=torch.int64), [1, 2], torch.int64)
    assert x.to("cpu").device.type == "cpu" and x.cpu().device.type == "cpu"


def test_cpu_tensor_stays_shared_after_to_cpu():
    x = torch.tensor([1.0, 2.0])
    y = x.to("cpu")
    y.add_(1)
    assert x.tolist() == [2.0, 3.0]          # as in PyTorch, .to() the same device returns the tensor itself


@_cuda_in_progress
def test_cuda_is_not_available_here():
    from fusegrad import cuda
    assert cuda.is_available() is False
    assert torch.cuda.is_available() is False


@_cuda_in_progress
def test_to_cuda_without_a_device_raises_a_clear_error():
    from fusegrad import cuda
    if cuda.is_available():
        pytest.skip("a CUDA device is present")
    x = torch.zeros(2)
    for move in (lambda: x.to("cuda"), lambda: x.cuda(), lambda: torch.zeros(2, device="cuda")):
        with pytest.raises((RuntimeError, AssertionError), match="(?i)cuda"):
            move()

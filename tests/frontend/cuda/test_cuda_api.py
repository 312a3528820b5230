"""fusegrad.cuda where the machine may have no GPU: the queries never raise, moving a tensor
to CUDA says what is missing, and importing fusegrad never imports pycuda."""
import subprocess
import sys

import pytest

import fusegrad as torch

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")


def test_importing_fusegrad_does_not_import_pycuda():
    code = "import sys, fusegrad; fusegrad.tensor([1.0]).sum().item(); print('pycuda' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@no_gpu
def test_without_a_gpu_cuda_is_unavailable_and_has_no_devices():
    assert torch.cuda.is_available() is False
    assert torch.cuda.device_count() == 0


@no_gpu
@pytest.mark.parametrize("move", [lambda t: t.to("cuda"), lambda t: t.cuda(), lambda t: t.to(torch.device("cuda", 0))])
def test_without_a_gpu_moving_to_cuda_raises_a_clear_error(move):
    with pytest.raises((AssertionError, RuntimeError), match="pycuda is not installed|no CUDA GPU is available"):
        move(torch.ones(3))


@no_gpu
def test_without_a_gpu_creating_on_cuda_and_asking_for_the_device_raise_the_same_error():
    with pytest.raises((AssertionError, RuntimeError), match="pycuda|CUDA GPU"):
        torch.zeros(2, device="cuda")
    with pytest.raises((AssertionError, RuntimeError), match="pycuda|CUDA GPU"):
        torch.cuda.current_device()


def test_cpu_tensors_stay_put():
    t = torch.arange(4)
    assert t.to("cpu") is t and t.cpu() is t and t.device == torch.device("cpu") and not t.is_cuda

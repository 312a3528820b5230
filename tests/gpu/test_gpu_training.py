"""On a CUDA device: training a small MLP gives the CPU's parameters, eagerly and compiled."""
import numpy as np
import pytest

import fusegrad
from helpers import mlp_training

pytestmark = pytest.mark.skipif(not fusegrad.cuda.is_available(), reason="no CUDA device")


def _sgd(params):
    return fusegrad.optim.SGD(params, lr=0.1)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_training_on_the_gpu_matches_the_cpu(compiled):
    cpu_losses, cpu_params, _, _ = mlp_training("cpu", _sgd, compiled=False)
    gpu_losses, gpu_params, _, _ = mlp_training("cuda", _sgd, compiled=compiled)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for g, c in zip(gpu_params, cpu_params):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)

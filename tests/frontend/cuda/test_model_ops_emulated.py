"""The issue-13 tensor ops on a CUDA device, on the emulated device of tests/ptx_emulator.py
(programs compiled for target "cuda" run on the CPU): results stay on the device, the masks,
indices and constants the ops make (tril's iotas, flip's reversed indices, repeat_interleave's
gather index, new_* constants) are made there, and values match the same ops on the CPU."""
import numpy as np
import pytest

import fusegrad
from ptx_emulator import compiler as c_compiler
from ptx_emulator import install_emulated_device

pytestmark = pytest.mark.skipif(c_compiler() is None, reason="no C compiler for the PTX emulator")


@pytest.fixture(autouse=True)
def emulated_gpu(monkeypatch):
    install_emulated_device(monkeypatch)


def _ops(x):
    a, b = x.split([2, 3], 1)
    return [
        fusegrad.tril(x, -1) + x.triu(2),
        x.flip(0, 1).roll((1, -2), (0, 1)),
        x.repeat(2, 1) + x.repeat_interleave(2, dim=0),
        x.repeat_interleave(fusegrad.tensor([1, 0, 2]), dim=0),
        fusegrad.einsum("ij,kj->ik", a, b[:, :2]) + fusegrad.addmm(x[:, :3], a, b[:2], beta=0.5),
        fusegrad.stack([x.var(1), x.std(1, correction=0), x.norm(dim=1), x.norm(3, 1)]),
        fusegrad.addcmul(x, a.sum(1, keepdim=True), x, value=0.5).lerp(x.new_ones(3, 5), 0.25),
        x.chunk(2, 1)[1] * x.unbind(0)[2][-2:] + x.new_zeros(3, 2),
        fusegrad.isfinite(x.log()),
    ]


def test_model_ops_on_the_device_match_the_cpu():
    rng = np.random.default_rng(11)
    host = rng.standard_normal((3, 5)).astype(np.float32)
    x = fusegrad.tensor(host, device="cuda")
    on_cpu = _ops(fusegrad.tensor(host))
    for i, (got, want) in enumerate(zip(_ops(x), on_cpu, strict=True)):
        assert got.is_cuda, i
        values = got.cpu().numpy()
        assert fusegrad.program_of(got).target == "cuda"
        np.testing.assert_allclose(values, want.numpy(), rtol=1e-5, atol=1e-6, err_msg=str(i))


def test_new_factories_follow_the_operand_device():
    x = fusegrad.ones(2, device="cuda")
    assert x.new_zeros(3).is_cuda and x.new_full((2,), 7.0).is_cuda and x.new_tensor([1.0, 2.0]).is_cuda
    assert not x.new_ones(2, device="cpu").is_cuda
    np.testing.assert_array_equal(x.new_tensor([1.0, 2.0]).cpu().numpy(), [1.0, 2.0])

"""On a CUDA device, against numpy: fused elementwise expressions and broadcasting."""
import numpy as np
import pytest

import fusegrad as torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_fused_expression_matches_numpy(rng):
    a, b = rng.standard_normal(1_000_003).astype(np.float32), rng.standard_normal(1_000_003).astype(np.float32)
    x, y = torch.tensor(a, device="cuda"), torch.tensor(b, device="cuda")
    z = torch.tanh(x * y + 1) - torch.exp(-x.abs()) / (1 + y * y)
    assert z.is_cuda
    expect = np.tanh(a * b + 1) - np.exp(-np.abs(a)) / (1 + b * b)
    np.testing.assert_allclose(z.cpu().numpy(), expect, rtol=1e-5, atol=1e-6)


def test_broadcast_and_transposed_views(rng):
    a, b, c = (rng.standard_normal(s).astype(np.float32) for s in [(300, 200), (200,), (300, 1)])
    x, y, w = (torch.tensor(v, device="cuda") for v in (a, b, c))
    np.testing.assert_allclose((x * y + w).cpu().numpy(), a * b + c, rtol=1e-6)
    np.testing.assert_allclose((x.t() - y[:, None]).cpu().numpy(), a.T - b[:, None], rtol=1e-6)


def test_integer_and_bool_ops_and_casts(rng):
    a = rng.integers(-50, 50, (1000,))
    x = torch.tensor(a, device="cuda")
    np.testing.assert_array_equal((x * 3 + 1).cpu().numpy(), a * 3 + 1)
    np.testing.assert_array_equal((x > 0).cpu().numpy(), a > 0)
    np.testing.assert_allclose(x.abs().float().sqrt().cpu().numpy(), np.sqrt(np.abs(a).astype(np.float32)), rtol=1e-6)


def test_integer_division_by_zero_raises_on_the_device():
    x, y = torch.tensor([4, 5, 6], device="cuda"), torch.tensor([1, 0, 2], device="cuda")
    with pytest.raises(RuntimeError, match="ZeroDivisionError: integer division by zero"):
        (x // y).cpu()

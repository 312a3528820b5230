"""On a CUDA device, against numpy: matrix products, batched and transposed, with epilogues."""
import numpy as np
import pytest

import fusegrad as torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (64, 784, 256), (1000, 333, 129), (2048, 512, 2048)])
def test_matmul_matches_numpy(rng, m, k, n):
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    got = (torch.tensor(a, device="cuda") @ torch.tensor(b, device="cuda")).cpu().numpy()
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def test_linear_relu_with_a_transposed_weight(rng):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(128, 784), (256, 784), (256,)])
    tx, tw, tb = (torch.tensor(v, device="cuda") for v in (x, w, b))
    got = torch.relu(tx @ tw.t() + tb).cpu().numpy()
    np.testing.assert_allclose(got, np.maximum(x @ w.T + b, 0), rtol=1e-4, atol=1e-3)


def test_batched_and_float64_and_int64(rng):
    a, b = rng.standard_normal((4, 50, 30)), rng.standard_normal((4, 30, 20))
    got = torch.bmm(torch.tensor(a, device="cuda"), torch.tensor(b, device="cuda")).cpu().numpy()
    np.testing.assert_allclose(got, a @ b, rtol=1e-12)
    i, j = rng.integers(-5, 5, (40, 30)), rng.integers(-5, 5, (30, 1))
    got = (torch.tensor(i, device="cuda") @ torch.tensor(j, device="cuda")).cpu().numpy()
    np.testing.assert_array_equal(got, i @ j)

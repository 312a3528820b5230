"""On a CUDA device, against numpy: sums and maxima over rows, columns and everything, softmax."""
import numpy as np
import pytest

import fusegrad as torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("shape, dim", [((513, 1000), 1), ((513, 1000), 0), ((7, 33, 65), (0, 2)), ((3, 5), None)])
def test_sum_and_max_match_numpy(rng, shape, dim):
    a = rng.standard_normal(shape).astype(np.float32)
    x = torch.tensor(a, device="cuda")
    axis = dim if dim is None or isinstance(dim, int) else tuple(dim)
    s = x.sum() if dim is None else x.sum(dim=dim)
    np.testing.assert_allclose(s.cpu().numpy(), a.astype(np.float64).sum(axis=axis), rtol=1e-5, atol=1e-5)
    m = x.amax(dim=dim if dim is not None else tuple(range(len(shape))))
    np.testing.assert_array_equal(m.cpu().numpy(), a.max(axis=axis))


def test_full_sum_of_ten_million_is_accurate(rng):
    a = rng.random(10_000_000, dtype=np.float32)
    got = torch.tensor(a, device="cuda").sum().item()
    assert got == pytest.approx(float(a.astype(np.float64).sum()), rel=1e-6)


def test_mean_and_var_of_columns(rng):
    a = rng.standard_normal((10_000, 16)).astype(np.float32)
    x = torch.tensor(a, device="cuda")
    np.testing.assert_allclose(x.mean(dim=0).cpu().numpy(), a.mean(axis=0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cols", [10, 1000, 5000])
def test_softmax_and_log_softmax_match_numpy(rng, cols):
    a = rng.standard_normal((256, cols)).astype(np.float32) * 5
    x = torch.tensor(a, device="cuda")
    e = np.exp(a - a.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(torch.softmax(x, dim=1).cpu().numpy(), p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(torch.log_softmax(x, dim=1).cpu().numpy(), np.log(p), rtol=1e-4, atol=1e-5)

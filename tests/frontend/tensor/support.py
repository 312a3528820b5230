"""Helpers shared by the surface tests (kept free of fusegrad internals, so that the same
tests also run against PyTorch itself with only the import changed)."""
import numpy as np

import fusegrad as torch

NP = {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64, torch.int32: np.int32,
      torch.uint8: np.uint8, torch.bool: np.bool_}


def check(t, values, dtype):
    """`t` has `dtype` and equals `values` exactly (numpy array or nested lists)."""
    assert t.dtype == dtype, (t.dtype, dtype)
    expected = np.asarray(values, dtype=NP[dtype])
    assert tuple(t.shape) == expected.shape, (tuple(t.shape), expected.shape)
    np.testing.assert_array_equal(t.detach().numpy(), expected)

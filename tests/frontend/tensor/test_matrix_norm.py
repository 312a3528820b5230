"""linalg.matrix_norm and the matrix orders of linalg.norm, against numpy's np.linalg.norm, with
float64 finite-difference gradients and PyTorch's errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fusegrad
from helpers import gradcheck

ORDERS = [1, -1, math.inf, -math.inf, "fro"]


def _rand(*shape):
    return np.random.default_rng(7).standard_normal(shape)


@pytest.mark.parametrize("ord", ORDERS, ids=str)
@pytest.mark.parametrize("dim, keepdim", [((-2, -1), False), ((0, 2), True), ((2, 0), False), ((1, -1), True)])
def test_matrix_norm_matches_numpy(ord, dim, keepdim):
    a = _rand(2, 3, 4)
    expected = np.linalg.norm(a, ord, axis=dim, keepdims=keepdim)
    got = fusegrad.linalg.matrix_norm(fusegrad.tensor(a), ord, dim, keepdim)
    assert tuple(got.shape) == expected.shape and got.dtype == fusegrad.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(fusegrad.linalg.norm(fusegrad.tensor(a), ord, dim, keepdim).numpy(), expected,
                               rtol=1e-12)


def test_norm_of_a_matrix_without_dim_is_a_matrix_norm_and_of_a_vector_a_vector_norm():
    a, v = _rand(3, 5), _rand(5)
    for ord in (1, math.inf, -1):
        np.testing.assert_allclose(fusegrad.linalg.norm(fusegrad.tensor(a), ord).numpy(), np.linalg.norm(a, ord))
        np.testing.assert_allclose(fusegrad.linalg.norm(fusegrad.tensor(v), ord).numpy(), np.linalg.norm(v, ord))
    np.testing.assert_allclose(fusegrad.linalg.norm(fusegrad.tensor(_rand(2, 3, 4))).numpy(),
                               np.linalg.norm(_rand(2, 3, 4).ravel()))            # ord None: all elements
    x = fusegrad.tensor(a.astype(np.float32))
    assert fusegrad.linalg.matrix_norm(x, 1, dtype=fusegrad.float64).dtype == fusegrad.float64


@pytest.mark.parametrize("ord", [1, -1, math.inf, -math.inf])
def test_matrix_norm_gradients_match_finite_differences(ord):
    gradcheck(lambda x: fusegrad.linalg.matrix_norm(x, ord), _rand(2, 3, 4))


def test_matrix_norm_errors_are_pytorchs():
    x = fusegrad.tensor(_rand(3, 4))
    with pytest.raises(RuntimeError, match="The input tensor A must have at least 2 dimensions"):
        fusegrad.linalg.matrix_norm(fusegrad.tensor(_rand(4)))
    with pytest.raises(RuntimeError, match="Expected a floating point or complex tensor as input. Got Long"):
        fusegrad.linalg.matrix_norm(fusegrad.tensor([[1, 2], [3, 4]]), 1)
    with pytest.raises(RuntimeError, match=r"Order 3 not supported\. \(at test_matrix_norm\.py:\d+\)$"):
        fusegrad.linalg.matrix_norm(x, 3)
    with pytest.raises(RuntimeError, match="dims must be different. Got \\(1, -1\\)"):
        fusegrad.linalg.matrix_norm(x, 1, (1, -1))
    with pytest.raises(RuntimeError, match="dim must be a 2-tuple. Got \\[0\\]"):
        fusegrad.linalg.matrix_norm(x, 1, (0,))
    for ord in ("nuc", 2, -2):
        with pytest.raises(NotImplementedError, match="needs singular values"):
            fusegrad.linalg.matrix_norm(x, ord)
    with pytest.raises(RuntimeError, match=r"must be 1D or 2D\. Got 3D\. \(at test_matrix_norm\.py:\d+\)$"):
        fusegrad.linalg.norm(fusegrad.tensor(_rand(2, 3, 4)), 1)

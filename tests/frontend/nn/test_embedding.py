"""Embedding: lookup values, gradients (padding row gets none, scale_grad_by_freq), max_norm
renormalization, init, repr, out-of-range indices, a compiled step, PyTorch as an oracle."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from helpers import gradcheck

RNG = np.random.default_rng(5)
W = RNG.standard_normal((7, 3))
IDX = np.array([[1, 2, 6, 1], [0, 1, 1, 3]])


def test_lookup_values_and_shape():
    out = F.embedding(torch.tensor(IDX), torch.tensor(W))
    assert tuple(out.shape) == (2, 4, 3)
    np.testing.assert_array_equal(out.numpy(), W[IDX])
    np.testing.assert_array_equal(F.embedding(torch.tensor(4), torch.tensor(W)).numpy(), W[4])
    np.testing.assert_array_equal(F.embedding(torch.tensor(IDX, dtype=torch.int32), torch.tensor(W)).numpy(), W[IDX])


def test_gradient_accumulates_rows():
    gradcheck(lambda w: F.embedding(torch.tensor(IDX), w), W)
    w = torch.tensor(W, requires_grad=True)
    F.embedding(torch.tensor(IDX), w).sum().backward()
    counts = np.bincount(IDX.ravel(), minlength=7)[:, None] * np.ones(3)
    np.testing.assert_array_equal(w.grad.numpy(), counts)


def test_padding_row_gets_no_gradient_but_keeps_its_value():
    w = torch.tensor(W, requires_grad=True)
    out = F.embedding(torch.tensor(IDX), w, padding_idx=1)
    np.testing.assert_array_equal(out.detach().numpy(), W[IDX])       # the value is the row, even nonzero
    (out * out).sum().backward()
    want = np.zeros_like(W)
    np.add.at(want, IDX.ravel(), 2 * W[IDX.ravel()])
    want[1] = 0
    np.testing.assert_allclose(w.grad.numpy(), want)
    assert out.grad_fn.name() == "EmbeddingBackward0"


def test_scale_grad_by_freq():
    w = torch.tensor(W, requires_grad=True)
    F.embedding(torch.tensor(IDX), w, scale_grad_by_freq=True).sum().backward()
    used = np.bincount(IDX.ravel(), minlength=7) > 0
    np.testing.assert_allclose(w.grad.numpy(), used[:, None] * np.ones((7, 3)))


def test_max_norm_renormalizes_looked_up_rows_in_place():
    w = torch.tensor(W * 3)
    out = F.embedding(torch.tensor([0, 2, 2]), w, max_norm=1.0)
    norms = np.linalg.norm(W * 3, axis=1)
    want = W * 3
    for r in (0, 2):
        if norms[r] > 1.0:
            want[r] = want[r] * (1.0 / (norms[r] + 1e-7))
    np.testing.assert_allclose(w.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(out.numpy(), want[[0, 2, 2]], rtol=1e-12)


def test_module_init_padding_and_repr():
    torch.manual_seed(0)
    m = nn.Embedding(10, 4, padding_idx=-1)
    assert m.padding_idx == 9 and tuple(m.weight.shape) == (10, 4)
    weight = m.weight.detach().numpy()
    np.testing.assert_array_equal(weight[9], np.zeros(4, np.float32))
    assert np.all(weight[:9] != 0) and 0.3 < weight[:9].std() < 2.0          # N(0, 1)
    assert repr(m) == "Embedding(10, 4, padding_idx=9)"
    assert repr(nn.Embedding(10, 3)) == "Embedding(10, 3)"
    assert repr(nn.Embedding(10, 3, max_norm=1.0)) == "Embedding(10, 3, max_norm=1.0)"
    out = m(torch.tensor([[9, 2]]))
    out.sum().backward()
    assert np.all(m.weight.grad.numpy()[9] == 0) and np.all(m.weight.grad.numpy()[2] == 1)
    frozen = nn.Embedding.from_pretrained(torch.tensor(W))
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(torch.tensor([3])).numpy(), W[[3]])


def test_errors():
    with pytest.raises(IndexError, match="index out of range in self"):
        F.embedding(torch.tensor([0, 7]), torch.tensor(W))
    with pytest.raises(IndexError, match="index out of range in self"):
        F.embedding(torch.tensor([0, -1]), torch.tensor(W))
    with pytest.raises(IndexError, match="index out of range in self"):
        nn.Embedding(3, 2)(torch.tensor([[3]]))
    with pytest.raises(RuntimeError, match="Expected tensor for argument #1 'indices' to have one of the following "
                                           "scalar types: Long, Int; but got torch.FloatTensor instead"):
        F.embedding(torch.tensor([0.0]), torch.tensor(W))
    for bad in (5, -6):
        with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
            nn.Embedding(5, 3, padding_idx=bad)


def test_compiled_step_matches_eager_and_checks_indices():
    x = torch.tensor(RNG.integers(0, 20, (8, 5)))
    y = torch.tensor(RNG.integers(0, 3, 8))
    results = []
    for compiled in (False, True):
        torch.manual_seed(1)
        emb = nn.Embedding(20, 6, padding_idx=0)
        head = nn.Sequential(nn.Flatten(), nn.LayerNorm(30), nn.Linear(30, 3))
        params = list(emb.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=0.01)

        def step(x, y, emb=emb, head=head, opt=opt, params=params):
            opt.zero_grad()
            loss = F.cross_entropy(head(emb(x)), y)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            return loss

        run = torch.compile(step) if compiled else step
        losses = [run(x, y).item() for _ in range(4)]
        results.append((losses, emb.weight.detach().numpy().copy()))
        if compiled:     # out of range inside the compiled step: the gather's bounds check raises
            with pytest.raises(IndexError):
                run(torch.tensor(np.full((8, 5), 20)), y).item()
            with pytest.raises(IndexError):
                run(torch.tensor(np.full((8, 5), -1)), y).item()
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(results[1][1][0], results[0][1][0])     # the padding row never moved
    np.testing.assert_array_equal(results[1][1][0], np.zeros(6, np.float32))


def test_against_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for embedding values and gradients")
    for kw in ({}, {"padding_idx": 1}, {"scale_grad_by_freq": True, "padding_idx": 6}, {"max_norm": 1.5}):
        ours = torch.tensor(W * 2, requires_grad="max_norm" not in kw)
        theirs = pt.tensor(W * 2, requires_grad="max_norm" not in kw)
        y = F.embedding(torch.tensor(IDX), ours, **kw)
        z = pt.nn.functional.embedding(pt.tensor(IDX), theirs, **kw)
        np.testing.assert_allclose(y.detach().numpy(), z.detach().numpy(), rtol=1e-12)
        if ours.requires_grad:
            (y ** 3).sum().backward()
            (z ** 3).sum().backward()
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)
        else:
            np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)

"""Shapes as PyTorch programs see them: `Size`, dim/numel/len, view and reshape (with -1),
flatten squeeze unsqueeze permute transpose .T expand contiguous cat stack, and views that
share storage with their base (writes either way are seen by the other)."""
import numpy as np
import pytest
from support import check

import fusegrad as torch


def _arange(*shape, dtype=None):
    n = int(np.prod(shape))
    return torch.arange(n, dtype=dtype).view(*shape), np.arange(n).reshape(shape)


# ---------------------------------------------------------------- Size

def test_shape_and_size_are_Size():
    x = torch.zeros(2, 2, 3)
    assert isinstance(x.shape, torch.Size) and isinstance(x.size(), torch.Size)
    assert repr(x.shape) == "fusegrad.Size([2, 2, 3])"
    assert str(x.size()) == "fusegrad.Size([2, 2, 3])"
    assert repr(torch.tensor(1.0).shape) == "fusegrad.Size([])"
    assert x.shape == (2, 2, 3) and x.size() == torch.Size([2, 2, 3])
    assert x.shape != [2, 2, 3]                  # a tuple, as in PyTorch
    assert x.size(1) == 2 and x.size(-1) == 3 and x.shape[0] == 2
    assert list(x.shape) == [2, 2, 3]
    a, b, c = x.shape
    assert (a, b, c) == (2, 2, 3)


def test_Size_slicing_and_concatenation_stay_Size():
    s = torch.zeros(2, 3, 4).shape
    assert repr(s[1:]) == "fusegrad.Size([3, 4])"
    assert repr(s + (1,)) == "fusegrad.Size([2, 3, 4, 1])"
    assert repr((1,) + s) == "fusegrad.Size([1, 2, 3, 4])"
    assert repr(s[::-1]) == "fusegrad.Size([4, 3, 2])"
    assert isinstance(s[0], int) and s[-1] == 4
    assert s.numel() == 24
    assert torch.Size([2, 3]) == (2, 3)
    with pytest.raises(TypeError):
        s + [1]


def test_dim_numel_len():
    x = torch.zeros(2, 2, 3)
    assert x.dim() == 3 and x.ndim == 3
    assert x.numel() == 12 and torch.numel(x) == 12 and x.nelement() == 12
    assert len(x) == 2
    assert torch.tensor(5.0).dim() == 0 and torch.tensor(5.0).numel() == 1
    assert torch.zeros(3, 0).numel() == 0


# ---------------------------------------------------------------- view / reshape

@pytest.mark.parametrize("args, shape", [
    ((2, 8), (2, 8)), ((8, -1), (8, 2)), ((-1,), (16,)), ((-1, 1), (16, 1)), (((4, 4),), (4, 4)),
    (([2, -1, 2],), (2, 4, 2)), ((1, 16, 1), (1, 16, 1)), ((2, 2, 2, 2), (2, 2, 2, 2)),
])
@pytest.mark.parametrize("method", ["view", "reshape"])
def test_view_and_reshape(method, args, shape):
    x, a = _arange(16)
    check(getattr(x, method)(*args), a.reshape(shape), torch.int64)


def test_reshape_of_non_contiguous_copies_where_view_cannot():
    x, a = _arange(2, 3)
    check(x.t().reshape(6), a.T.reshape(6), torch.int64)
    check(x.t().contiguous().view(6), a.T.reshape(6), torch.int64)
    check(torch.reshape(x, (3, 2)), a.reshape(3, 2), torch.int64)


def test_flatten():
    x, a = _arange(2, 3, 4)
    check(x.flatten(), a.reshape(-1), torch.int64)
    check(x.flatten(1), a.reshape(2, 12), torch.int64)
    check(torch.flatten(x, 0, 1), a.reshape(6, 4), torch.int64)
    check(x.flatten(-2, -1), a.reshape(2, 12), torch.int64)
    check(torch.tensor(3).flatten(), [3], torch.int64)


def test_squeeze_unsqueeze():
    x = torch.zeros(1, 3, 1)
    assert x.squeeze().shape == (3,)
    assert x.squeeze(0).shape == (3, 1)
    assert x.squeeze(1).shape == (1, 3, 1)        # not size 1: unchanged
    assert x.squeeze(-1).shape == (1, 3)
    assert torch.squeeze(x).shape == (3,)
    y, a = _arange(3)
    check(y.unsqueeze(1), a[:, None], torch.int64)
    check(y.unsqueeze(0), a[None], torch.int64)
    check(y.unsqueeze(-1), a[:, None], torch.int64)
    check(torch.unsqueeze(y, 0), a[None], torch.int64)


def test_permute_transpose_T():
    x, a = _arange(2, 3, 4)
    check(x.permute(2, 0, 1), a.transpose(2, 0, 1), torch.int64)
    check(x.permute((2, 0, 1))[1], a.transpose(2, 0, 1)[1], torch.int64)
    check(torch.permute(x, (1, 2, 0)), a.transpose(1, 2, 0), torch.int64)
    check(x.transpose(0, 2), a.swapaxes(0, 2), torch.int64)
    check(torch.transpose(x, -1, 1), a.swapaxes(-1, 1), torch.int64)
    m, b = _arange(2, 3)
    check(m.T, b.T, torch.int64)
    check(m.t(), b.T, torch.int64)
    check(m.transpose(1, 0), b.T, torch.int64)


def test_expand():
    x, a = _arange(3)
    check(x.expand(2, 3), np.broadcast_to(a, (2, 3)), torch.int64)
    y = x.view(3, 1)
    check(y.expand(3, 4), np.broadcast_to(a[:, None], (3, 4)), torch.int64)
    check(y.expand(-1, 2), np.broadcast_to(a[:, None], (3, 2)), torch.int64)
    check(y.expand(2, 3, 2), np.broadcast_to(a[:, None], (2, 3, 2)), torch.int64)
    check(y.expand_as(torch.zeros(3, 5)), np.broadcast_to(a[:, None], (3, 5)), torch.int64)


def test_contiguous():
    x, a = _arange(2, 3)
    assert x.is_contiguous()
    assert not x.t().is_contiguous()
    c = x.t().contiguous()
    assert c.is_contiguous()
    check(c, a.T, torch.int64)
    assert x.contiguous() is x


# ---------------------------------------------------------------- cat / stack

def test_cat():
    check(torch.cat([torch.zeros(2, 2), torch.ones(1, 2)]), [[0, 0], [0, 0], [1, 1]], torch.float32)
    check(torch.cat([torch.zeros(2, 2), torch.ones(2, 1)], dim=1), [[0, 0, 1], [0, 0, 1]], torch.float32)
    check(torch.cat((torch.zeros(2, 2), torch.ones(2, 1)), 1), [[0, 0, 1], [0, 0, 1]], torch.float32)
    check(torch.cat([torch.zeros(2, 1), torch.ones(2, 1)], -1), [[0, 1], [0, 1]], torch.float32)
    check(torch.cat([torch.tensor([1, 2]), torch.tensor([3.5])]), [1.0, 2.0, 3.5], torch.float32)   # promotes
    check(torch.cat([torch.tensor([1, 2])]), [1, 2], torch.int64)
    check(torch.cat([torch.zeros(0), torch.tensor([1.0, 2.0])]), [1.0, 2.0], torch.float32)


def test_stack():
    a, b = torch.tensor([1, 2]), torch.tensor([3, 4])
    check(torch.stack([a, b]), [[1, 2], [3, 4]], torch.int64)
    check(torch.stack([a, b], dim=1), [[1, 3], [2, 4]], torch.int64)
    check(torch.stack((a, b), -1), [[1, 3], [2, 4]], torch.int64)
    check(torch.stack([torch.tensor(1.0), torch.tensor(2.0)]), [1.0, 2.0], torch.float32)


# ---------------------------------------------------------------- views share storage

def test_write_through_view_is_seen_by_base():
    x = torch.arange(6)
    v = x.view(2, 3)
    v[0, 0] = 100
    assert x.tolist() == [100, 1, 2, 3, 4, 5]
    v.add_(1)
    assert x.tolist() == [101, 2, 3, 4, 5, 6]


def test_write_to_base_is_seen_by_views():
    x = torch.arange(6)
    v, s, t = x.view(2, 3), x[4:], x.view(2, 3).t()
    x.mul_(2)
    assert v.tolist() == [[0, 2, 4], [6, 8, 10]]
    assert s.tolist() == [8, 10]
    assert t.tolist() == [[0, 6], [2, 8], [4, 10]]


@pytest.mark.parametrize("make_view, expected", [
    (lambda x: x.t(), [[7, 1, 2], [7, 4, 5]]),                      # v[0] = 7: the first column
    (lambda x: x.T, [[7, 1, 2], [7, 4, 5]]),
    (lambda x: x.permute(1, 0), [[7, 1, 2], [7, 4, 5]]),
    (lambda x: x.unsqueeze(0)[0], [[7, 7, 7], [3, 4, 5]]),
    (lambda x: x.view(3, 2), [[7, 7, 2], [3, 4, 5]]),
    (lambda x: x.flatten(), [[7, 1, 2], [3, 4, 5]]),
    (lambda x: x.reshape(6), [[7, 1, 2], [3, 4, 5]]),
    (lambda x: x[:, 1:], [[0, 7, 7], [3, 4, 5]]),
    (lambda x: x.view(1, 2, 3).squeeze(0), [[7, 7, 7], [3, 4, 5]]),
    (lambda x: x.transpose(0, 1)[1:], [[0, 7, 2], [3, 7, 5]]),
])
def test_views_share_storage(make_view, expected):
    x = torch.arange(6).view(2, 3)
    v = make_view(x)
    v[0] = 7
    assert x.tolist() == expected


def test_reshape_of_non_contiguous_is_a_copy():
    x = torch.arange(6).view(2, 3)
    r = x.t().reshape(6)
    r[0] = 9
    assert x.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_expanded_view_rejects_inplace_write():
    x = torch.arange(3).view(1, 3)
    with pytest.raises(RuntimeError, match="single memory location"):
        x.expand(2, 3).add_(1)


def test_view_chain_of_view_writes_back():
    x = torch.zeros(4, 4)
    x[1:3][:, 1:3].fill_(1.0)
    assert x.sum().item() == 4.0
    check(x[1], [0, 1, 1, 0], torch.float32)

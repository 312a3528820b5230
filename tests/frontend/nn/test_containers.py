"""ModuleDict, ParameterList and Unflatten: PyTorch's container API, registration (parameters,
state_dict), reprs and errors."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn


def test_module_dict():
    d = nn.ModuleDict({"b": nn.Linear(2, 3), "a": nn.ReLU()})
    assert list(d) == ["b", "a"] and list(d.keys()) == ["b", "a"] and len(d) == 2
    assert "a" in d and "z" not in d
    assert isinstance(d["b"], nn.Linear)
    d["c"] = nn.Linear(3, 1)
    d.update([("e", nn.Tanh())])
    d.update(OrderedDict(f=nn.Sigmoid()))
    assert list(d) == ["b", "a", "c", "e", "f"]
    assert [n for n, _ in d.named_parameters()] == ["b.weight", "b.bias", "c.weight", "c.bias"]
    assert list(d.state_dict()) == ["b.weight", "b.bias", "c.weight", "c.bias"]
    assert isinstance(d.pop("e"), nn.Tanh) and "e" not in d
    del d["f"]
    assert [k for k, _ in d.items()] == ["b", "a", "c"] and len(list(d.values())) == 3
    assert repr(d) == ("ModuleDict(\n  (b): Linear(in_features=2, out_features=3, bias=True)\n  (a): ReLU()\n"
                       "  (c): Linear(in_features=3, out_features=1, bias=True)\n)")
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == []
    with pytest.raises(TypeError, match="ModuleDict.update should be called with an iterable of key/value pairs, "
                                        "but got int"):
        d.update(3)
    with pytest.raises(ValueError, match="ModuleDict update sequence element #0 has length 3; 2 is required"):
        d.update([("a", nn.ReLU(), 1)])
    with pytest.raises(KeyError):
        d["missing"]
    with pytest.raises(NotImplementedError):
        d(torch.ones(1))


def test_module_dict_in_a_model_trains():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"x": nn.Linear(3, 2), "y": nn.Linear(3, 1)})

        def forward(self, x):
            return self.heads["x"](x).sum() + self.heads["y"](x).sum()

    m = Model()
    m(torch.randn(4, 3)).backward()
    assert all(p.grad is not None for p in m.parameters())
    assert [n for n, _ in m.named_parameters()] == ["heads.x.weight", "heads.x.bias", "heads.y.weight",
                                                    "heads.y.bias"]


def test_parameter_list():
    p = nn.ParameterList([nn.Parameter(torch.ones(3, 4)), torch.zeros(2, dtype=torch.float64)])
    assert len(p) == 2
    assert isinstance(p[1], nn.Parameter) and p[1].requires_grad        # plain tensors are wrapped
    assert [n for n, _ in p.named_parameters()] == ["0", "1"]
    p.append(nn.Parameter(torch.ones(5)))
    p += [nn.Parameter(torch.ones(1))]
    assert len(p) == 4 and tuple(p[-1].shape) == (1,) and tuple(p[2].shape) == (5,)
    assert [tuple(t.shape) for t in p] == [(3, 4), (2,), (5,), (1,)]
    assert len(p[1:3]) == 2 and tuple(p[1:3][0].shape) == (2,)
    assert list(p.state_dict()) == ["0", "1", "2", "3"]
    p[0] = nn.Parameter(torch.zeros(2, 2))
    assert tuple(p[0].shape) == (2, 2)
    assert repr(nn.ParameterList([nn.Parameter(torch.ones(3, 4)), nn.Parameter(torch.ones(2, dtype=torch.float64))])) \
        == ("ParameterList(\n    (0): Parameter containing: [torch.float32 of size 3x4]\n"
            "    (1): Parameter containing: [torch.float64 of size 2]\n)")
    assert repr(nn.ParameterList()) == "ParameterList()"
    assert repr(nn.Sequential(nn.ParameterList([nn.Parameter(torch.ones(3))]))) == \
        "Sequential(\n  (0): ParameterList(  (0): Parameter containing: [torch.float32 of size 3])\n)"
    with pytest.raises(IndexError, match="index 4 is out of range"):
        p[4]
    with pytest.raises(TypeError, match="ParameterList.extend should be called with an iterable, but got int"):
        p.extend(3)
    with pytest.raises(RuntimeError, match="ParameterList should not be called."):
        p()
    opt = torch.optim.SGD(p.parameters(), lr=1.0)
    (p[0].sum() + p[2].sum()).backward()
    opt.step()
    np.testing.assert_array_equal(p[2].detach().numpy(), np.zeros(5, np.float32))


def test_unflatten():
    u = nn.Unflatten(1, (2, 3))
    x = torch.tensor(np.arange(24.0).reshape(4, 6))
    np.testing.assert_array_equal(u(x).numpy(), np.arange(24.0).reshape(4, 2, 3))
    np.testing.assert_array_equal(nn.Unflatten(-1, [-1, 2])(x).numpy(), np.arange(24.0).reshape(4, 3, 2))
    np.testing.assert_array_equal(nn.Unflatten(0, (2, 2))(x).numpy(), np.arange(24.0).reshape(2, 2, 6))
    assert repr(u) == "Unflatten(dim=1, unflattened_size=(2, 3))"
    assert repr(nn.Unflatten(1, [2, 3])) == "Unflatten(dim=1, unflattened_size=[2, 3])"
    g = torch.tensor(np.arange(6.0).reshape(1, 6), requires_grad=True)
    (nn.Unflatten(1, (3, 2))(g) * torch.tensor([[1.0, 2.0]])).sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), [[1, 2, 1, 2, 1, 2]])
    with pytest.raises(TypeError, match="unflattened_size must be tuple of ints, but found element of type float at "
                                        "pos 1"):
        nn.Unflatten(1, (2, 3.0))
    with pytest.raises(TypeError, match="unflattened_size must be a tuple of ints, but found type int"):
        nn.Unflatten(1, 3)
    with pytest.raises(RuntimeError, match=r"unflatten: Provided sizes \[2, 4\] don't multiply up to the size of dim "
                                           r"1 \(6\) in the input tensor"):
        nn.Unflatten(1, (2, 4))(x)


def test_against_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for container reprs")
    assert repr(nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.GELU()})) == \
        repr(pt.nn.ModuleDict({"a": pt.nn.Linear(2, 3), "b": pt.nn.GELU()}))
    assert repr(nn.ParameterList([nn.Parameter(torch.ones(3, 4))])) == \
        repr(pt.nn.ParameterList([pt.nn.Parameter(pt.ones(3, 4))]))
    assert repr(nn.Unflatten(1, (2, 3))) == repr(pt.nn.Unflatten(1, (2, 3)))

"""Tensors are lazy: building expressions computes nothing (no program runs) until a value is
asked for; printing, .item(), .tolist(), .numpy() and float() realize. Counted with
fusegrad.realize.STATS["runs"], the number of compiled programs executed."""
import numpy as np

import fusegrad as torch
from fusegrad.realize import STATS


def _runs():
    return STATS["runs"]


def _chain(x, n):
    """n elementwise ops on x, and the same in numpy."""
    ref = x.numpy().copy()
    y = x
    for i in range(n):
        if i % 2:
            y = y * 0.5 + 1.0
            ref = ref * np.float32(0.5) + np.float32(1.0)
        else:
            y = y - 0.25
            ref = ref - np.float32(0.25)
    return y, ref


def test_a_thousand_op_expression_computes_nothing_until_printed(capsys):
    x = torch.tensor([1.0, -2.0, 3.0])
    before = _runs()
    y, ref = _chain(x, 667)                 # 1000 primitive ops (mul+add, then sub)
    assert _runs() == before
    assert y.shape == (3,) and y.dtype is torch.float32 and y.dim() == 1   # metadata needs no values
    assert _runs() == before
    print(y)
    assert _runs() == before + 1            # one program for the whole expression
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5)
    assert capsys.readouterr().out.startswith("tensor([")
    assert _runs() == before + 1            # realized once; reading again runs nothing


def test_each_way_of_reading_realizes():
    readers = [repr, str, lambda t: t.sum().item(), lambda t: t.tolist(), lambda t: t.numpy(),
               lambda t: float(t[0]), lambda t: np.array(t), lambda t: bool(t[0] > 0)]
    for read in readers:
        y = torch.tensor([1.0, 2.0]) * 3 + 1
        before = _runs()
        read(y)
        assert _runs() > before, read


def test_views_and_inplace_updates_stay_lazy():
    x = torch.arange(12.0)
    before = _runs()
    v = x.view(3, 4)[1:, ::2].t()
    v.mul_(10)
    x.add_(1)
    w = (x * 2).reshape(2, 6)
    assert _runs() == before
    assert w.shape == (2, 6)
    assert _runs() == before
    expected = np.arange(12.0, dtype=np.float32)
    expected.reshape(3, 4)[1:, ::2] *= 10
    np.testing.assert_array_equal(w.numpy(), ((expected + 1) * 2).reshape(2, 6))


def test_shape_errors_raise_while_building_not_when_realizing():
    before = _runs()
    try:
        torch.ones(2, 3) + torch.ones(4)
    except RuntimeError:
        pass
    else:
        raise AssertionError("broadcasting (2, 3) with (4,) must fail")
    assert _runs() == before


def test_factories_do_not_run_programs():
    before = _runs()
    torch.zeros(3, 4), torch.ones(2), torch.arange(10), torch.rand(5), torch.tensor([[1, 2], [3, 4]])
    torch.full((2, 2), 3.0), torch.linspace(0, 1, 5), torch.randn(2, 2), torch.Tensor(3, 2)
    assert _runs() == before

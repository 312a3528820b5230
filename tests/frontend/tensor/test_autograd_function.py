"""fusegrad.autograd.Function: custom forward/backward staticmethods, ctx.save_for_backward /
saved_tensors / needs_input_grad / mark_non_differentiable, several outputs, gradients
checked by finite differences, double backward, freed saved tensors, errors, the backward
traced inside @fusegrad.compile, and the same Function classes run on PyTorch as an oracle."""
import numpy as np
import pytest

import fusegrad
from helpers import gradcheck

RNG = np.random.default_rng(11)


def _functions(lib):
    """The same custom Functions, on fusegrad or on torch."""

    class Exp(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

    class MulAdd(lib.autograd.Function):
        """(a * b * k, a + b) with a Python scale k, two outputs."""

        @staticmethod
        def forward(ctx, a, b, k):
            ctx.save_for_backward(a, b)
            ctx.k = k
            return a * b * k, a + b

        @staticmethod
        def backward(ctx, g_prod, g_sum):
            a, b = ctx.saved_tensors
            ga = g_prod * b * ctx.k + g_sum if ctx.needs_input_grad[0] else None
            gb = g_prod * a * ctx.k + g_sum if ctx.needs_input_grad[1] else None
            return ga, gb, None

    class ClampGrad(lib.autograd.Function):
        """Identity forward, gradient clamped to [-1, 1] (a straight-through estimator)."""

        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad.clamp(-1.0, 1.0)

    return Exp, MulAdd, ClampGrad


Exp, MulAdd, ClampGrad = _functions(fusegrad)


def test_single_output_eager_and_gradcheck():
    x = fusegrad.tensor([0.0, 1.0, -2.0], requires_grad=True)
    y = Exp.apply(x)
    assert y.grad_fn.name() == "ExpBackward" and "ExpBackward" in repr(y.grad_fn)
    assert y.grad_fn.next_functions[0][0] is x.grad_fn or y.grad_fn.next_functions[0][0].name() == "AccumulateGrad"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.0, 1.0, -2.0]), rtol=1e-6)
    gradcheck(lambda a: Exp.apply(a * a), RNG.standard_normal((2, 3)))


def test_several_outputs_needs_input_grad_and_materialized_zeros():
    a = fusegrad.tensor(RNG.standard_normal(4), requires_grad=True)
    b = fusegrad.tensor(RNG.standard_normal(4))
    prod, total = MulAdd.apply(a, b, 3.0)
    assert prod.grad_fn.name() == total.grad_fn.name() == "MulAddBackward"
    prod.sum().backward()                       # total gets no gradient: a zero one is passed
    np.testing.assert_allclose(a.grad.numpy(), 3.0 * b.numpy(), rtol=1e-6)
    gradcheck(lambda x, y: MulAdd.apply(x, y, 0.5)[0] + MulAdd.apply(x, y, 0.5)[1] ** 2,
              RNG.standard_normal((3,)), RNG.standard_normal((3,)))

    seen = []

    class Probe(fusegrad.autograd.Function):
        @staticmethod
        def forward(ctx, x, y, scale):
            return x * y * scale

        @staticmethod
        def backward(ctx, g):
            seen.append(ctx.needs_input_grad)
            return g, None, None

    Probe.apply(a, b, 2.0).sum().backward()
    assert seen == [(True, False, False)]


def test_setup_context_style():
    class Square(fusegrad.autograd.Function):
        @staticmethod
        def forward(x, k):
            return x * x * k

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, k = inputs
            ctx.save_for_backward(x)
            ctx.k = k

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x * ctx.k, None

    gradcheck(lambda a: Square.apply(a, 1.5), RNG.standard_normal((2, 2)))


def test_no_history_without_grad():
    x = fusegrad.ones(3)
    assert Exp.apply(x).grad_fn is None
    w = fusegrad.ones(3, requires_grad=True)
    with fusegrad.no_grad():
        assert Exp.apply(w).grad_fn is None


def test_mark_non_differentiable_and_int_outputs():
    class SortLike(fusegrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            v, i = x.sort()
            ctx.mark_non_differentiable(i)
            ctx.save_for_backward(i)
            return v, i

        @staticmethod
        def backward(ctx, gv, gi):
            (i,) = ctx.saved_tensors
            return fusegrad.zeros(gv.shape, dtype=gv.dtype).scatter_add(0, i, gv)

    x = fusegrad.tensor([3.0, 1.0, 2.0], requires_grad=True)
    v, i = SortLike.apply(x)
    assert v.requires_grad and not i.requires_grad and i.dtype == fusegrad.int64
    (v * fusegrad.tensor([1.0, 10.0, 100.0])).sum().backward()
    assert x.grad.tolist() == [100.0, 1.0, 10.0]


def test_broadcast_gradient_is_summed_and_errors():
    class Bad(fusegrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g.reshape(-1)[:1]

    class Wide(fusegrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return g * fusegrad.ones(4, 2, 3)

    class TooMany(fusegrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g, g

    x = fusegrad.ones(2, 3, requires_grad=True)
    Wide.apply(x).backward()
    assert x.grad.tolist() == [[4.0] * 3] * 2                  # summed over the extra leading dim
    with pytest.raises(RuntimeError, match=r"returned an invalid gradient at index 0 - got \[1\]"):
        Bad.apply(fusegrad.ones(2, 3, requires_grad=True)).sum().backward()
    with pytest.raises(RuntimeError, match=r"returned an incorrect number of gradients \(expected 1, got 2\)"):
        TooMany.apply(x).sum().backward()


def test_saved_tensors_freed_and_retain_graph():
    x = fusegrad.tensor([1.0, 2.0], requires_grad=True)
    y = Exp.apply(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()


def test_double_backward_through_a_differentiable_backward():
    x = fusegrad.tensor([0.5, -1.0], dtype=fusegrad.float64, requires_grad=True)
    (g,) = fusegrad.autograd.grad(Exp.apply(x).sum(), x, create_graph=True)
    (gg,) = fusegrad.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), np.exp([0.5, -1.0]), rtol=1e-12)


def test_compiled_training_step_equals_eager():
    def make():
        fusegrad.manual_seed(0)
        return fusegrad.nn.Linear(3, 2)

    def loss_of(lin, x):
        return ClampGrad.apply(Exp.apply(lin(x))).pow(2).sum()

    lin_c, lin_e = make(), make()
    opt_c = fusegrad.optim.SGD(lin_c.parameters(), lr=0.1)
    opt_e = fusegrad.optim.SGD(lin_e.parameters(), lr=0.1)

    @fusegrad.compile
    def step(x):
        opt_c.zero_grad()
        loss = loss_of(lin_c, x)
        loss.backward()
        opt_c.step()
        return loss

    for _ in range(3):
        x = fusegrad.tensor(RNG.standard_normal((4, 3)).astype(np.float32))
        opt_e.zero_grad()
        le = loss_of(lin_e, x)
        le.backward()
        opt_e.step()
        np.testing.assert_allclose(step(x).item(), le.item(), rtol=1e-5)
    np.testing.assert_allclose(lin_c.weight.detach().numpy(), lin_e.weight.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    t_exp, t_muladd, t_clamp = _functions(torch)
    a, b = RNG.standard_normal(5), RNG.standard_normal(5)
    results = []
    for lib, (E, M, C) in ((fusegrad, (Exp, MulAdd, ClampGrad)), (torch, (t_exp, t_muladd, t_clamp))):
        x, y = lib.tensor(a, requires_grad=True), lib.tensor(b, requires_grad=True)
        p, s = M.apply(x, y, 1.5)
        out = (C.apply(E.apply(p) * 3) + s * s).sum()
        out.backward()
        results.append((out.item(), x.grad.numpy().copy(), y.grad.numpy().copy(), p.grad_fn.name()))
    (fo, fx, fy, fname), (to, tx, ty, tname) = results
    np.testing.assert_allclose(fo, to, rtol=1e-12)
    np.testing.assert_allclose(fx, tx, rtol=1e-12)
    np.testing.assert_allclose(fy, ty, rtol=1e-12)
    assert fname == tname


class _AddOneInPlace(fusegrad.autograd.Function):
    """Adds one to its input in place and returns it, marked dirty (PyTorch's in-place Function)."""

    @staticmethod
    def forward(ctx, x):
        ctx.mark_dirty(x)
        x.add_(1)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


def test_mark_dirty_returns_the_input_itself_with_the_functions_history():
    a = fusegrad.tensor([1.0, 2.0], requires_grad=True)
    b = a * 1
    c = _AddOneInPlace.apply(b)
    assert c is b and c.grad_fn.name() == "_AddOneInPlaceBackward"
    (c * 3).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [6.0, 6.0])      # 3 * 2 through the custom backward, to a
    np.testing.assert_array_equal(b.detach().numpy(), [2.0, 3.0])


def test_mark_dirty_errors_are_pytorchs_and_name_the_users_line():
    with pytest.raises(RuntimeError, match=r"a leaf Variable that requires grad has been used in an in-place "
                                           r"operation\. \(at test_autograd_function\.py:\d+\)$"):
        _AddOneInPlace.apply(fusegrad.tensor([1.0], requires_grad=True))

    class NotReturned(fusegrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.mark_dirty(x)
            x.add_(1)
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(RuntimeError, match=r"must all be outputs of the Function\. \(at test_autograd_function"):
        NotReturned.apply(fusegrad.tensor([1.0], requires_grad=True) * 1)


@pytest.mark.parametrize("realized_first", [True, False])
def test_an_input_modified_in_place_without_mark_dirty_reads_its_new_value_through_both_tensors(realized_first):
    class Double(fusegrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad

    a = fusegrad.tensor([1.0, 2.0], requires_grad=True)
    b = a * 1
    if realized_first:
        b.detach().numpy()
    c = Double.apply(b)
    np.testing.assert_array_equal(c.detach().numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(b.detach().numpy(), [2.0, 4.0])   # the same pending value, computed once
    c.detach().add_(1)
    np.testing.assert_array_equal(b.detach().numpy(), [2.0, 4.0])   # but memory of its own

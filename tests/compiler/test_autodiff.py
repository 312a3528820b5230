"""Autodiff by graph transformation: every primitive's VJP rule against float64 finite
differences (broadcast inputs, reductions over several axes), second derivatives, the
Graph -> Graph pass, and the PyTorch autograd behaviours users rely on."""
import numpy as np
import pytest

import fusegrad as torch
from fusegrad import runtime
from fusegrad.compiler import compile
from fusegrad.compiler.ir import Graph, Node, float64, make
from fusegrad.compiler.passes.autodiff import differentiate
from helpers import gradcheck

R = np.random.default_rng(7)


def f64(*shape, positive=False, low=None):
    a = R.standard_normal(shape)
    if positive:
        a = np.abs(a) + 0.5
    return a


UNARY = {
    "neg": torch.neg, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "reciprocal": torch.reciprocal,
    "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh, "abs": torch.abs, "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_primitives(name):
    positive = name in ("log", "sqrt", "reciprocal")
    x = f64(3, 4, positive=positive)
    if name in ("abs", "relu"):
        x = x + np.sign(x) * 0.1          # keep away from the kink, where the slope is a convention
    gradcheck(UNARY[name], x)


def test_floor_has_zero_gradient():
    x = torch.tensor([0.3, 1.7], dtype=torch.float64, requires_grad=True)
    torch.floor(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "minimum"])
def test_binary_primitives_with_broadcasting(op):
    fn = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
          "maximum": torch.maximum, "minimum": torch.minimum}[op]
    a, b = f64(3, 1, 4, positive=op == "pow"), f64(5, 1, positive=op in ("div", "pow"))
    gradcheck(fn, a, b)
    gradcheck(lambda x: fn(x, 1.5), a)               # a Python scalar operand
    gradcheck(lambda y: fn(2.5, y), b)


def test_where_and_comparisons_route_gradients():
    a, b = f64(4, 5), f64(5)
    gradcheck(lambda x, y: torch.where(x > y, x * 2, y * 3), a, b)


def test_cast_between_float_dtypes():
    gradcheck(lambda x: (x.float() * 3).double(), f64(6), eps=1e-2, atol=1e-4, rtol=1e-4)   # linear: any step


@pytest.mark.parametrize("dims", [None, 0, (0, 2), (1, 2), -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_over_several_axes(dims, keepdim):
    x = f64(2, 3, 4)
    kw = {} if dims is None else {"dim": dims, "keepdim": keepdim}
    gradcheck(lambda t: t.sum(**kw), x)
    gradcheck(lambda t: t.mean(**kw), x)
    gradcheck(lambda t: torch.amax(t, **kw) if dims is not None else torch.amax(t), x)
    gradcheck(lambda t: t.prod(**kw) if dims is not None else t.prod(), np.abs(x) + 0.5)


def test_max_with_dim_routes_to_the_argmax_and_min_likewise():
    x = f64(3, 5)
    gradcheck(lambda t: t.max(1).values, x)
    gradcheck(lambda t: t.min(0, keepdim=True)[0], x)


def test_movement_primitives():
    x = f64(2, 3, 4)
    gradcheck(lambda t: t.reshape(6, 4) * torch.arange(4.0, dtype=torch.float64), x)
    gradcheck(lambda t: t.permute(2, 0, 1).sin(), x)
    gradcheck(lambda t: t[:, :1].expand(2, 5, 4).exp(), x)
    gradcheck(lambda t: t[1:, ::2, 1:3].cos(), x)
    gradcheck(lambda t: torch.cat([t, t[:, :1] * 3], 1).tanh(), x)
    gradcheck(lambda t: torch.stack([t, t * t], 0), x)
    gradcheck(lambda t: t.transpose(0, 2).flatten(), x)


def test_indexing_gather_and_scatter_add():
    x = f64(5, 3)
    idx = torch.tensor([4, 0, 0, 2])
    gradcheck(lambda t: t[idx] * 2, x)
    gradcheck(lambda t: t.gather(1, torch.tensor([[0, 2], [1, 1], [2, 0], [0, 0], [1, 2]])), x)
    gradcheck(lambda base, src: base.scatter_add(0, torch.tensor([[0, 1, 2], [4, 4, 0]]), src), x, f64(2, 3))


@pytest.mark.parametrize("shapes", [((3, 4), (4, 2)), ((4,), (4, 3)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 1)),
                                    ((4,), (4,))])
def test_matmul(shapes):
    gradcheck(torch.matmul, f64(*shapes[0]), f64(*shapes[1]))


def test_nn_composites():
    x = f64(4, 6)
    gradcheck(lambda t: torch.softmax(t, 1), x)
    gradcheck(lambda t: torch.log_softmax(t, 0), x)
    gradcheck(lambda t: torch.logsumexp(t, 1), x)
    gradcheck(lambda t: t.clamp(-0.5, 0.5) * t, x + np.sign(x) * 0.01)


def test_second_derivative_of_a_cubic():
    x = torch.tensor(2.0, requires_grad=True)
    (dy,) = torch.autograd.grad(x ** 3, x, create_graph=True)
    (d2y,) = torch.autograd.grad(dy, x)
    assert dy.item() == pytest.approx(12.0) and d2y.item() == pytest.approx(12.0)


def test_second_derivatives_of_composites_match_analytic_values():
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(torch.sin(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), -np.sin(x.detach().numpy()), rtol=1e-12)
    (g,) = torch.autograd.grad(torch.tanh(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    t = np.tanh(x.detach().numpy())
    np.testing.assert_allclose(h.numpy(), -2 * t * (1 - t ** 2), rtol=1e-10)


def test_gradient_graph_pass_on_plain_ir():
    x = Node("input", (), {"name": "x"}, (3,), float64)
    w = Node("param", (), {"name": "w"}, (3,), float64)
    loss = make("sum", [make("mul", [make("exp", [make("mul", [x, w])]), w])], {"axes": (0,)})
    g = differentiate(Graph("f", [x], [w], {"loss": loss}), "loss")
    assert set(g.outputs) == {"loss", "dloss_dx", "dloss_dw"}
    program = compile(g)
    xv, wv = np.array([0.1, 0.2, 0.3]), np.array([1.0, -2.0, 0.5])
    out = runtime.load(program)([xv], [wv])
    e = np.exp(xv * wv)
    np.testing.assert_allclose(out["dloss_dx"], e * wv * wv, rtol=1e-12)
    np.testing.assert_allclose(out["dloss_dw"], e * xv * wv + e, rtol=1e-12)


def test_backward_nodes_are_fused_with_the_forward_pass():
    x = torch.randn(64, 32)
    w = torch.randn(32, 16, requires_grad=True)
    loss = torch.tanh(x @ w).pow(2).mean()
    loss.backward()
    program = torch.program_of(w.grad)
    assert program is torch.program_of(loss)              # forward and backward: one program
    assert program.num_kernels <= 4


# ---------------------------------------------------------------- PyTorch autograd behaviours

def test_gradients_accumulate_until_zeroed():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    x.grad.zero_()
    (3 * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_grad_is_none_without_requires_grad_and_before_backward():
    a, b = torch.tensor([1.0]), torch.tensor([2.0], requires_grad=True)
    assert a.grad is None and b.grad is None
    (a * b).sum().backward()
    assert a.grad is None and b.grad is not None


def test_second_backward_through_freed_graph_raises_unless_retained():
    x = torch.tensor(3.0, requires_grad=True)
    y = x ** 3
    y.backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()
    z = x ** 3
    z.backward(retain_graph=True)
    z.backward()
    assert x.grad.item() == pytest.approx(27.0 + 27.0 + 27.0)


def test_in_place_on_a_leaf_that_requires_grad_raises():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        w.add_(1)
    with torch.no_grad():
        w.add_(1)
    np.testing.assert_array_equal(w.detach().numpy(), [2, 2, 2])


def test_no_grad_results_have_no_grad_fn_and_decorator_works():
    w = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        y = w * 2
    assert y.grad_fn is None and not y.requires_grad

    @torch.no_grad()
    def f(t):
        return t * 3
    assert f(w).grad_fn is None
    with torch.no_grad():
        with torch.enable_grad():
            assert (w * 2).requires_grad


def test_grad_fn_names_and_printing():
    a = torch.tensor(2.0, requires_grad=True)
    b = a * 3 + 11
    assert repr(b) == "tensor(17., grad_fn=<AddBackward0>)"
    assert repr(b.grad_fn).startswith("<AddBackward0 object at 0x")
    assert torch.sigmoid(a).grad_fn.name() == "SigmoidBackward0"
    assert (a * a).sum().grad_fn.name() == "SumBackward0"
    assert repr(torch.tensor([0.8762], requires_grad=True)) == "tensor([0.8762], requires_grad=True)"


def test_backward_with_a_gradient_argument_and_detach():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    y.backward(torch.tensor([1.0, 0.5, 0.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 0.0])
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2).backward()
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    z = x * d                                    # d carries no history: dz/dx = d
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0, 3.0])


def test_variable_legacy_alias():
    from fusegrad.autograd import Variable
    v = Variable(torch.tensor([1.0, 2.0]), requires_grad=True)
    (v * v).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [2.0, 4.0])

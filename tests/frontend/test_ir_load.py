"""`fusegrad.ir.load` runs a printed graph (issue 17): the `graph` dump of a compiled training
step, edited by hand, compiles and runs on numpy arrays or tensors, shows its kernels, and
a mistake in the text is reported at its line and column."""
import numpy as np
import pytest

import fusegrad
import fusegrad.ir
from fusegrad.compiler.ir.parser import ParseError


@pytest.fixture(scope="module")
def step_dump():
    """The graph dump of a compiled step: loss = mean((exp(x @ w) - y)**2), one SGD update of w;
    with the data and the step's own results for its first call."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal((8, 1)).astype(np.float32)
    w0 = (0.3 * rng.standard_normal((3, 1))).astype(np.float32)
    w = fusegrad.tensor(w0, requires_grad=True)

    def step(x, y):
        loss = ((fusegrad.exp(x @ w) - y) ** 2).mean()
        loss.backward()
        with fusegrad.no_grad():
            w.sub_(0.1 * w.grad)
            w.grad.zero_()
        return loss
    compiled = fusegrad.compile(step)
    text = compiled.lower(fusegrad.tensor(x), fusegrad.tensor(y)).text("graph")
    loss = compiled(fusegrad.tensor(x), fusegrad.tensor(y)).item()
    return text, x, y, w0, loss, w.detach().numpy().copy()


def reference(x, y, w, activation):
    """The step in numpy, with `activation` where the dump has exp: d(exp)/dz reuses exp's
    value in the dump's backward (mul by %1), so an edited node feeds its own value there too."""
    z = activation(x @ w)
    d = z - y
    loss = np.mean(d ** 2)
    grad = x.T @ (2 * d / d.size * z)
    return loss, w - 0.1 * grad


def test_the_dump_as_printed_runs_as_the_compiled_step(step_dump):
    text, x, y, w0, loss, w1 = step_dump
    prog = fusegrad.ir.load(text)
    assert prog.input_names == ["x", "y"] and prog.param_names == ["w"]
    result = prog.run(x, y, params={"w": w0})
    np.testing.assert_allclose(result.outputs["out0"], loss, rtol=1e-6)
    np.testing.assert_allclose(result.params["w"], w1, rtol=1e-6)
    np.testing.assert_allclose(result.outputs["out0"], reference(x, y, w0, np.exp)[0], rtol=1e-5)


def test_an_edited_node_changes_the_result_as_numpy_says(step_dump):
    text, x, y, w0, _, _ = step_dump
    (line,) = [t for t in text.splitlines() if " = exp %" in t]
    prog = fusegrad.ir.load(text.replace(line, line.replace(" = exp %", " = tanh %")))
    assert " tanh" in prog.text("kernels") and " exp" not in prog.text("kernels")
    assert all(k.reason for k in prog.kernels)
    loss, w_new = reference(x, y, w0, np.tanh)
    result = prog.run(x, y, w0)                     # params may follow the inputs
    np.testing.assert_allclose(result.outputs["out0"], loss, rtol=1e-5)
    np.testing.assert_allclose(result.params["w"], w_new, rtol=1e-5, atol=1e-7)
    out, state = prog(fusegrad.tensor(x), fusegrad.tensor(y), params={"%w": fusegrad.tensor(w0)})
    assert isinstance(out, fusegrad.Tensor) and out.shape == ()
    np.testing.assert_allclose(out.item(), loss, rtol=1e-5)
    np.testing.assert_array_equal(state.numpy(), np.zeros((3, 1), np.float32))   # w.grad zeroed


def test_arguments_are_never_written(step_dump):
    text, x, y, w0, _, _ = step_dump
    w = w0.copy()
    fusegrad.ir.load(text).run(x, y, params={"w": w})
    np.testing.assert_array_equal(w, w0)


def test_a_mistake_names_its_line_and_column(step_dump):
    text = step_dump[0]
    lines = text.splitlines()
    k = next(i for i, t in enumerate(lines) if " = exp %" in t)
    lines[k] = lines[k].replace(" = exp %", " = expo %")
    with pytest.raises(ParseError) as e:
        fusegrad.ir.load("\n".join(lines))
    column = lines[k].index("expo") + 1
    assert (e.value.line, e.value.column) == (k + 1, column)
    assert str(e.value).startswith(f"line {k + 1}, column {column} near 'expo': unknown op 'expo'")
    assert str(e.value).endswith(f"\n    {lines[k]}\n    {' ' * (column - 1)}^")
    lines[k] = lines[k].replace("f32[8,1] = expo", "f32[8,2] = exp")       # a type the rules disagree with
    with pytest.raises(ParseError) as e:
        fusegrad.ir.load("\n".join(lines))
    assert (e.value.line, e.value.column) == (k + 1, lines[k].index("f32[8,2]") + 1)


def test_wrong_arguments_say_what_the_graph_takes(step_dump):
    text, x, y, w0, _, _ = step_dump
    prog = fusegrad.ir.load(text)
    with pytest.raises(TypeError, match=r"takes 2 input\(s\) \(x, y\), optionally followed by 1 param"):
        prog.run(x)
    with pytest.raises(TypeError, match="no value for param"):
        prog.run(x, y)
    with pytest.raises(TypeError, match="no param named 'v'"):
        prog.run(x, y, params={"v": w0})
    with pytest.raises(ValueError, match=r"input x: expected shape \[8, 3\], got \[3, 8\]"):
        prog.run(x.T, y, w0)
    with pytest.raises(TypeError, match="cannot cast"):
        prog.run(x, y, w0.astype(np.complex64))

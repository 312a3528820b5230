"""Convolutions (F.conv1d, F.conv2d, F.conv_transpose2d; nn.Conv1d, nn.Conv2d,
nn.ConvTranspose2d): values against numpy loop/einsum references, float64 finite-difference
gradients for input, weight and bias, odd shapes, what the compiler makes of them, a compiled
CNN training step equal to the eager one, initialization, reprs and errors as PyTorch's, and
PyTorch itself as an oracle where it is installed."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fusegrad
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from helpers import gradcheck

# ---------------------------------------------------------------- numpy references


def _pairs(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


def conv_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """N-d convolution by numpy: for each kernel tap, an einsum of the strided input slice
    with the tap's weights, per group."""
    nd = w.ndim - 2
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    stride, dilation = _pairs(stride, nd), _pairs(dilation, nd)
    kernel = w.shape[2:]
    if padding == "valid":
        low = high = (0,) * nd
    elif padding == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        low, high = tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
    else:
        low = high = _pairs(padding, nd)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(low, high)))
    n, c = x.shape[:2]
    oc, cg = w.shape[:2]
    ocg = oc // groups
    outs = [(p - d * (k - 1) - 1) // s + 1 for p, k, s, d in zip(xp.shape[2:], kernel, stride, dilation)]
    out = np.zeros((n, oc, *outs))
    letters = "hwd"[:nd]
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * ocg:(g + 1) * ocg]
        for tap in np.ndindex(*kernel):
            idx = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilation, outs, stride))
            patch = xs[(slice(None), slice(None)) + idx]
            out[:, g * ocg:(g + 1) * ocg] += np.einsum(f"nc{letters},oc->no{letters}", patch,
                                                       ws[(slice(None), slice(None)) + tap])
    if b is not None:
        out += b.reshape((1, oc) + (1,) * nd)
    return out[0] if unbatched else out


def conv_transpose_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-d transposed convolution by loops: every input pixel scatters its weighted kernel
    into the output at stride s, then `padding` is cropped and output_padding added."""
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    s, p, op, d = (_pairs(v, 2) for v in (stride, padding, output_padding, dilation))
    n, c, h, wd = x.shape
    cg, ocg, kh, kw = w.shape[0] // groups, w.shape[1], w.shape[2], w.shape[3]
    full = [(h - 1) * s[0] + d[0] * (kh - 1) + 1 + op[0], (wd - 1) * s[1] + d[1] * (kw - 1) + 1 + op[1]]
    out = np.zeros((n, ocg * groups, *full))
    for g in range(groups):
        for i in range(h):
            for j in range(wd):
                for a in range(kh):
                    for e in range(kw):
                        contrib = x[:, g * cg:(g + 1) * cg, i, j] @ w[g * cg:(g + 1) * cg, :, a, e]
                        out[:, g * ocg:(g + 1) * ocg, i * s[0] + a * d[0], j * s[1] + e * d[1]] += contrib
    out = out[:, :, p[0]:full[0] - p[0], p[1]:full[1] - p[1]]
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    return out[0] if unbatched else out


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def t(a, requires_grad=False):
    return fusegrad.tensor(a, requires_grad=requires_grad)


# (input shape, weight shape, keyword arguments)
CONV2D = [
    ((2, 3, 9, 8), (4, 3, 3, 2), {}),
    ((2, 3, 7, 7), (5, 3, 1, 1), {}),                                   # 1x1 kernel
    ((1, 2, 11, 10), (3, 2, 2, 2), {"stride": 3}),                      # stride > kernel, batch 1
    ((2, 2, 5, 6), (3, 2, 2, 3), {"padding": (4, 3)}),                  # padding larger than kernel
    ((2, 4, 8, 8), (4, 1, 3, 3), {"groups": 4, "padding": 1}),          # depthwise: groups = channels
    ((2, 4, 9, 9), (6, 2, 3, 3), {"groups": 2, "dilation": 2, "stride": (2, 1)}),
    ((2, 3, 8, 7), (2, 3, 4, 3), {"padding": "same", "dilation": (1, 2)}),   # even kernel: extra pad after
    ((2, 3, 8, 7), (2, 3, 4, 3), {"padding": "valid"}),
    ((3, 6, 5), (2, 3, 2, 2), {"stride": 2, "padding": 1}),             # unbatched 3-D input
]


@pytest.mark.parametrize("xs,ws,kw", CONV2D)
def test_conv2d_values(xs, ws, kw):
    x, w, b = rand(*xs, seed=1), rand(*ws, seed=2), rand(ws[0], seed=3)
    got = F.conv2d(t(x), t(w), t(b), **kw)
    np.testing.assert_allclose(got.numpy(), conv_ref(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    got = F.conv2d(t(x.astype(np.float32)), t(w.astype(np.float32)), None, **kw)
    np.testing.assert_allclose(got.numpy(), conv_ref(x, w, None, **kw), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs,ws,kw", [CONV2D[i] for i in (0, 2, 3, 4, 5, 6, 8)])
def test_conv2d_gradients_against_finite_differences(xs, ws, kw):
    shrink = lambda s: tuple(min(d, 6) if i >= len(s) - 2 else d for i, d in enumerate(s))
    xs = shrink(xs) if kw.get("padding") != (4, 3) else xs
    x, w, b = rand(*xs, seed=4), rand(*ws, seed=5), rand(ws[0], seed=6)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), x, w, b)


@pytest.mark.parametrize("kw", [{}, {"stride": 2, "padding": 2, "dilation": 2}, {"groups": 3, "padding": "same"}])
def test_conv1d_values_and_gradients(kw):
    x, w, b = rand(2, 3, 11, seed=7), rand(6, 3 // kw.get("groups", 1), 3, seed=8), rand(6, seed=9)
    np.testing.assert_allclose(F.conv1d(t(x), t(w), t(b), **kw).numpy(), conv_ref(x, w, b, **kw), rtol=1e-12,
                               atol=1e-12)
    gradcheck(lambda x, w, b: F.conv1d(x, w, b, **kw), x[:, :, :7], w, b)
    unbatched = F.conv1d(t(x[0]), t(w), t(b), **kw)
    np.testing.assert_allclose(unbatched.numpy(), conv_ref(x[:1], w, b, **kw)[0], rtol=1e-12, atol=1e-12)


CONV_T = [
    ((2, 3, 4, 5), (3, 2, 3, 3), {}),
    ((2, 3, 4, 4), (3, 2, 3, 2), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((1, 4, 3, 4), (4, 3, 2, 3), {"stride": (3, 2), "dilation": 2, "groups": 2, "padding": (2, 1)}),
    ((2, 2, 3, 3), (2, 2, 1, 1), {"stride": 3, "output_padding": 2}),      # 1x1 kernel, output padding past the end
    ((3, 4, 4), (3, 2, 3, 3), {"stride": 2}),                              # unbatched
]


@pytest.mark.parametrize("xs,ws,kw", CONV_T)
def test_conv_transpose2d_values_and_gradients(xs, ws, kw):
    x, w, b = rand(*xs, seed=10), rand(*ws, seed=11), rand(ws[1] * kw.get("groups", 1), seed=12)
    got = F.conv_transpose2d(t(x), t(w), t(b), **kw)
    np.testing.assert_allclose(got.numpy(), conv_transpose_ref(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), x, w, b)


def test_conv_transpose2d_is_the_input_gradient_of_conv2d():
    x, w, g = rand(2, 3, 9, 8, seed=13), rand(4, 3, 3, 2, seed=14), None
    xt = t(x, requires_grad=True)
    y = F.conv2d(xt, t(w), stride=2, padding=1, dilation=(1, 2))
    g = rand(*y.shape, seed=15)
    (dx,) = fusegrad.autograd.grad((y * t(g)).sum(), [xt])
    out_pad = tuple(a - b for a, b in zip(x.shape[2:], F.conv_transpose2d(t(g), t(w), stride=2, padding=1,
                                                                           dilation=(1, 2)).shape[2:]))
    got = F.conv_transpose2d(t(g), t(w), stride=2, padding=1, output_padding=out_pad, dilation=(1, 2))
    np.testing.assert_allclose(got.numpy(), dx.numpy(), rtol=1e-12, atol=1e-12)


def test_grad_fn_name_is_convolution_backward():
    x = t(rand(1, 1, 4, 4), requires_grad=True)
    assert F.conv2d(x, t(rand(1, 1, 2, 2))).grad_fn.name() == "ConvolutionBackward0"
    assert F.conv_transpose2d(x, t(rand(1, 1, 2, 2))).grad_fn.name() == "ConvolutionBackward0"


# ---------------------------------------------------------------- what the compiler makes of it

def test_conv_relu_pool_is_im2col_gemm_and_one_fused_pooling_kernel():
    """Forward of conv-relu-maxpool: the window matrix (a buffer the compiler makes), the
    GEMM, and one reduction kernel that adds the bias, applies relu and pools."""
    x = t(rand(2, 3, 10, 10).astype(np.float32))
    w, b = t(rand(8, 3, 3, 3).astype(np.float32)), t(rand(8).astype(np.float32))
    y = F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=1)), 2)
    y.numpy()
    p = fusegrad.program_of(y)
    kinds = [line.split()[2] for line in p.text("kernels").splitlines() if line.startswith("kernel ")]
    assert kinds == ["elementwise", "matmul", "reduce"], p.text("kernels")


# ---------------------------------------------------------------- modules

def test_conv_modules_shapes_init_and_forward():
    fusegrad.manual_seed(0)
    m = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2)
    assert m.weight.shape == (6, 2, 3, 2) and m.bias.shape == (6,)
    bound = 1 / math.sqrt(2 * 3 * 2)
    for p in (m.weight, m.bias):
        v = p.detach().numpy()
        assert np.all(np.abs(v) <= bound) and v.std() > bound / 4
    x = rand(2, 4, 7, 6).astype(np.float32)
    want = conv_ref(x, m.weight.detach().numpy(), m.bias.detach().numpy(), stride=2, padding=1, groups=2)
    np.testing.assert_allclose(m(t(x)).detach().numpy(), want, rtol=1e-5, atol=1e-5)
    assert nn.Conv1d(3, 5, 4, bias=False).weight.shape == (5, 3, 4)
    ct = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)
    assert ct.weight.shape == (4, 3, 3, 3)
    assert ct(t(x)).shape == (2, 6, 15, 13)
    assert ct(t(x), output_size=[16, 14]).shape == (2, 6, 16, 14)
    with pytest.raises(ValueError, match="requested an output size of"):
        ct(t(x), output_size=(18, 13))
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]


def test_reprs_as_pytorch():
    assert repr(nn.Conv2d(1, 6, 5)) == "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))"
    assert repr(nn.Conv2d(2, 4, (3, 1), stride=2, padding=1, dilation=2, groups=2, bias=False)) == \
        "Conv2d(2, 4, kernel_size=(3, 1), stride=(2, 2), padding=(1, 1), dilation=(2, 2), groups=2, bias=False)"
    assert repr(nn.Conv2d(1, 6, 3, padding="same")) == \
        "Conv2d(1, 6, kernel_size=(3, 3), stride=(1, 1), padding=same)"
    assert repr(nn.Conv1d(2, 3, 4)) == "Conv1d(2, 3, kernel_size=(4,), stride=(1,))"
    assert repr(nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1)) == \
        "ConvTranspose2d(4, 2, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1))"


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.conv2d(t(rand(2, 8)), t(rand(6, 3, 5, 5))), RuntimeError,
     r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: \[2, 8\]"),
    (lambda: F.conv1d(t(rand(1, 3, 8, 8)), t(rand(6, 3, 3))), RuntimeError,
     r"Expected 2D \(unbatched\) or 3D \(batched\) input to conv1d, but got input of size: \[1, 3, 8, 8\]"),
    (lambda: F.conv2d(t(rand(1, 2, 8, 8)), t(rand(6, 3, 5, 5))), RuntimeError,
     r"Given groups=1, weight of size \[6, 3, 5, 5\], expected input\[1, 2, 8, 8\] to have 3 channels, "
     r"but got 2 channels instead"),
    (lambda: F.conv2d(t(rand(1, 3, 4, 4)), t(rand(6, 3, 5, 5))), RuntimeError,
     r"Calculated padded input size per channel: \(4 x 4\). Kernel size: \(5 x 5\). Kernel size can't be "
     r"greater than actual input size"),
    (lambda: F.conv2d(t(rand(1, 3, 8, 8)), t(rand(6, 3, 5, 5)), t(rand(5))), RuntimeError,
     r"expected bias to be 1-dimensional with 6 elements, but got bias of size \[5\] instead"),
    (lambda: F.conv2d(t(rand(1, 4, 8, 8)), t(rand(3, 2, 3, 3)), groups=2), RuntimeError,
     r"Given groups=2, expected weight to be divisible by 2 at dimension 0"),
    (lambda: F.conv2d(t(rand(1, 3, 8, 8)), t(rand(6, 3, 3, 3)), padding="foo"), RuntimeError,
     r"Invalid padding string: 'foo'"),
    (lambda: F.conv2d(t(rand(1, 3, 8, 8)), t(rand(6, 3, 3, 3)), padding="same", stride=2), RuntimeError,
     r"padding='same' is not supported for strided convolutions"),
    (lambda: F.conv2d(t(rand(1, 3, 8, 8)), t(rand(6, 3, 3, 3)), stride=0), RuntimeError,
     "non-positive stride is not supported"),
    (lambda: F.conv2d(t(rand(1, 3, 8, 8)), t(rand(6, 3, 3, 3)), padding=-1), RuntimeError,
     "negative padding is not supported"),
    (lambda: F.conv2d(t(rand(1, 3, 8, 8)), t(rand(6, 3, 3, 3)), stride=(1, 1, 1)), RuntimeError,
     r"expected stride to be a single integer value or a list of 2 values"),
    (lambda: F.conv_transpose2d(t(rand(1, 3, 8, 8)), t(rand(3, 2, 3, 3)), stride=2, output_padding=2),
     RuntimeError, "output padding must be smaller than either stride or dilation"),
    (lambda: F.conv_transpose2d(t(rand(1, 4, 8, 8)), t(rand(3, 2, 3, 3))), RuntimeError,
     r"Given transposed=1, weight of size \[3, 2, 3, 3\], expected input\[1, 4, 8, 8\] to have 3 channels"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "in_channels must be divisible by groups"),
    (lambda: nn.Conv2d(4, 3, 3, groups=2), ValueError, "out_channels must be divisible by groups"),
    (lambda: nn.Conv2d(4, 4, 3, groups=0), ValueError, "groups must be a positive integer"),
    (lambda: nn.Conv2d(4, 4, 3, padding_mode="foo"), ValueError, "padding_mode must be one of"),
    (lambda: nn.Conv2d(4, 4, 3, padding_mode="reflect"), NotImplementedError, "only 'zeros'"),
    (lambda: nn.Conv2d(4, 4, 3, padding="foo"), ValueError, "Invalid padding string 'foo'"),
    (lambda: nn.Conv2d(4, 4, 3, padding="same", stride=2), ValueError, "not supported for strided"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect"), ValueError,
     'Only "zeros" padding mode is supported for ConvTranspose2d'),
])
def test_errors_as_pytorch(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------- a compiled training step

class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(self.pool(F.relu(self.conv(x))).reshape(x.shape[0], -1))


def _train(compiled: bool, steps: int = 3):
    fusegrad.manual_seed(0)
    model = SmallCNN()
    opt = fusegrad.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(16)
    x = t(rng.standard_normal((5, 1, 8, 8)).astype(np.float32))
    y = fusegrad.tensor(rng.integers(0, 3, 5))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = fusegrad.compile(step) if compiled else step
    losses = [float(fn(x, y).item()) for _ in range(steps)]
    return losses, {n: p.detach().numpy().copy() for n, p in model.named_parameters()}


def test_compiled_cnn_training_step_equals_eager():
    eager_losses, eager_params = _train(False)
    compiled_losses, compiled_params = _train(True)
    assert eager_losses[-1] < eager_losses[0]
    np.testing.assert_allclose(compiled_losses, eager_losses, rtol=1e-5)
    for name in eager_params:
        np.testing.assert_allclose(compiled_params[name], eager_params[name], rtol=1e-5, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------- PyTorch as an oracle

def test_against_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the oracle comparison is skipped")
    tf = torch.nn.functional
    for xs, ws, kw in CONV2D:
        x, w, b = rand(*xs, seed=17), rand(*ws, seed=18), rand(ws[0], seed=19)
        xt, wt, bt = t(x, True), t(w, True), t(b, True)
        X, W, B = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        y, Y = F.conv2d(xt, wt, bt, **kw), tf.conv2d(X, W, B, **kw)
        np.testing.assert_allclose(y.detach().numpy(), Y.detach().numpy(), rtol=1e-10, atol=1e-10)
        g = rand(*Y.shape, seed=20)
        (y * t(g)).sum().backward()
        (Y * torch.tensor(g)).sum().backward()
        for mine, theirs in ((xt, X), (wt, W), (bt, B)):
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-10)
    for xs, ws, kw in CONV_T:
        x, w = rand(*xs, seed=21), rand(*ws, seed=22)
        want = tf.conv_transpose2d(torch.tensor(x), torch.tensor(w), **kw).numpy()
        np.testing.assert_allclose(F.conv_transpose2d(t(x), t(w), **kw).numpy(), want, rtol=1e-10, atol=1e-10)
    torch.manual_seed(0)
    pairs = [(nn.Conv2d(2, 4, 3), torch.nn.Conv2d(2, 4, 3)),
             (nn.ConvTranspose2d(2, 4, 3, stride=2, groups=2), torch.nn.ConvTranspose2d(2, 4, 3, 2, groups=2)),
             (nn.Conv1d(3, 6, 5, padding="same", groups=3), torch.nn.Conv1d(3, 6, 5, padding="same", groups=3))]
    for mine, theirs in pairs:
        assert repr(mine) == repr(theirs)
        assert mine.weight.shape == tuple(theirs.weight.shape)

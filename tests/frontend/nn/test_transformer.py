"""TransformerEncoderLayer/TransformerEncoder (and the decoder): values against a numpy encoder
layer (post-norm and pre-norm, relu/gelu, masks), PyTorch's state_dict keys and repr, deep
copies with parameters of their own, activations and warnings, a float64 gradcheck, a compiled
training step equal to the eager one, and PyTorch as the oracle."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from helpers import gradcheck

RNG = np.random.default_rng(11)


def T(a, **kw):
    return torch.tensor(a, **kw)


def randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def layer_norm_np(x, w, b, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def softmax_np(s):
    top = s.max(axis=-1, keepdims=True)
    top = np.where(np.isneginf(top), 0.0, top)
    e = np.exp(s - top)
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total == 0, 1.0, total)


def gelu_np(x):
    from math import erf
    return x * 0.5 * (1 + np.vectorize(erf)(x / math.sqrt(2)))


def encoder_layer_np(p, x, heads, norm_first=False, activation="relu", src_mask=None, padding=None, prefix=""):
    """One encoder layer on (N, S, E) input from its state_dict `p` (batch first), masks as
    PyTorch's (True = do not attend), SDPA's zero rows for fully masked queries."""
    g = {k[len(prefix):]: v.astype(np.float64) for k, v in p.items() if k.startswith(prefix)}
    N, S, E = x.shape
    D = E // heads

    def sa(h):
        w, b = g["self_attn.in_proj_weight"], g["self_attn.in_proj_bias"]
        q, k, v = (h @ w[i * E:(i + 1) * E].T + b[i * E:(i + 1) * E] for i in range(3))
        q, k, v = (a.reshape(N, S, heads, D).transpose(0, 2, 1, 3) for a in (q, k, v))
        s = q @ np.swapaxes(k, -1, -2) / math.sqrt(D)
        if src_mask is not None:
            s = s + (np.where(src_mask, -np.inf, 0.0) if src_mask.dtype == bool else src_mask)
        if padding is not None:
            s = s + np.where(padding, -np.inf, 0.0)[:, None, None, :]
        o = (softmax_np(s) @ v).transpose(0, 2, 1, 3).reshape(N, S, E)
        return o @ g["self_attn.out_proj.weight"].T + g["self_attn.out_proj.bias"]

    def ff(h):
        a = h @ g["linear1.weight"].T + g["linear1.bias"]
        a = np.maximum(a, 0) if activation == "relu" else gelu_np(a)
        return a @ g["linear2.weight"].T + g["linear2.bias"]

    def n(i, h):
        return layer_norm_np(h, g[f"norm{i}.weight"], g[f"norm{i}.bias"])

    if norm_first:
        x = x + sa(n(1, x))
        return x + ff(n(2, x))
    x = n(1, x + sa(x))
    return n(2, x + ff(x))


def _state(m):
    return {k: v.detach().numpy() for k, v in m.state_dict().items()}


def _randomize(m):
    """Non-trivial LayerNorm parameters and biases (they start at 1 and 0)."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.copy_(T(randn(*p.shape) * 0.3 + (1.0 if name.endswith("weight") else 0.0)))


ENCODER_KEYS = ["self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]


# ---------------------------------------------------------------- structure


def test_encoder_layer_parameters_and_repr():
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    assert list(layer.state_dict()) == ENCODER_KEYS
    assert tuple(layer.linear1.weight.shape) == (16, 8) and tuple(layer.self_attn.in_proj_weight.shape) == (24, 8)
    assert layer.activation is F.relu and layer.activation_relu_or_gelu == 1 and layer.norm_first is False
    assert repr(layer) == """TransformerEncoderLayer(
  (self_attn): MultiheadAttention(
    (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, bias=True)
  )
  (linear1): Linear(in_features=8, out_features=16, bias=True)
  (dropout): Dropout(p=0.1, inplace=False)
  (linear2): Linear(in_features=16, out_features=8, bias=True)
  (norm1): LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=True)
  (norm2): LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=True)
  (dropout1): Dropout(p=0.1, inplace=False)
  (dropout2): Dropout(p=0.1, inplace=False)
)"""
    assert nn.TransformerEncoderLayer(8, 2, activation="gelu").activation is F.gelu
    gelu = nn.TransformerEncoderLayer(8, 2, activation=nn.GELU())
    assert gelu.activation_relu_or_gelu == 2 and repr(gelu).endswith("  (activation): GELU(approximate='none')\n)")
    assert nn.TransformerEncoderLayer(8, 2, activation=lambda t: t).activation_relu_or_gelu == 0
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    no_bias = nn.TransformerEncoderLayer(8, 2, 16, bias=False)
    assert list(no_bias.state_dict()) == ["self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight",
                                          "linear2.weight", "norm1.weight", "norm2.weight"]


def test_encoder_clones_the_layer():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    enc = nn.TransformerEncoder(layer, 3, norm=nn.LayerNorm(8))
    assert list(enc.state_dict()) == [f"layers.{i}.{k}" for i in range(3) for k in ENCODER_KEYS] + \
        ["norm.weight", "norm.bias"]
    params = [id(p) for p in enc.parameters()]
    assert len(params) == len(set(params)) == 3 * 12 + 2
    assert all(id(p) not in {id(q) for q in layer.parameters()} for p in enc.parameters())
    w0 = layer.linear1.weight.detach().numpy().copy()
    for copy in enc.layers:        # copies start equal to the layer
        np.testing.assert_array_equal(copy.linear1.weight.detach().numpy(), w0)
        assert copy.self_attn.batch_first and copy.activation is F.relu
    with torch.no_grad():
        enc.layers[0].linear1.weight.fill_(0.5)
    np.testing.assert_array_equal(layer.linear1.weight.detach().numpy(), w0)
    np.testing.assert_array_equal(enc.layers[1].linear1.weight.detach().numpy(), w0)
    assert repr(enc).startswith("TransformerEncoder(\n  (layers): ModuleList(\n    (0-2): 3 x TransformerEncoderLayer(")


def test_enable_nested_tensor_warning():
    with pytest.warns(UserWarning, match="enable_nested_tensor is True, but self.use_nested_tensor is False because "
                                         r"encoder_layer.self_attn.batch_first was not True"):
        enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 1)
    assert enc.use_nested_tensor is False and enc.enable_nested_tensor is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 1, enable_nested_tensor=False)
        assert nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1).use_nested_tensor


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_encoder_layer_against_numpy(norm_first, activation):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 12, dropout=0.1, activation=activation, batch_first=True,
                                       norm_first=norm_first).eval()
    _randomize(layer)
    p = _state(layer)
    x = randn(3, 5, 8)
    padding = np.array([[False] * 5, [False, False, False, True, True], [True] + [False] * 4])
    causal = np.triu(np.ones((5, 5), bool), 1)
    float_mask = (RNG.standard_normal((5, 5)) * 0.5).astype(np.float32)
    for kw in ({}, {"src_key_padding_mask": padding}, {"src_mask": causal}, {"src_mask": causal, "is_causal": True},
               {"src_mask": float_mask}):
        out = layer(T(x), **{k: T(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
        expected = encoder_layer_np(p, x, 2, norm_first, activation, kw.get("src_mask"),
                                    kw.get("src_key_padding_mask"))
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_against_numpy(batch_first):
    torch.manual_seed(1)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=batch_first), 2,
                                norm=nn.LayerNorm(8), enable_nested_tensor=False)
    _randomize(enc)
    p = _state(enc)
    x = randn(2, 4, 8)
    padding = np.array([[False, False, True, True], [False] * 4])
    for kw in ({}, {"src_key_padding_mask": padding}, {"mask": np.triu(np.ones((4, 4), bool), 1)}):
        h = x
        for i in range(2):
            h = encoder_layer_np(p, h, 2, src_mask=kw.get("mask"), padding=kw.get("src_key_padding_mask"),
                                 prefix=f"layers.{i}.")
        expected = layer_norm_np(h, p["norm.weight"], p["norm.bias"])
        given = x if batch_first else x.transpose(1, 0, 2)
        out = enc(T(given), **{k: T(v) for k, v in kw.items()}).detach().numpy()
        np.testing.assert_allclose(out if batch_first else out.transpose(1, 0, 2), expected, rtol=1e-4, atol=1e-5)


def test_encoder_unbatched_and_length_one():
    torch.manual_seed(2)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0), 2, enable_nested_tensor=False)
    p = _state(enc)
    for S in (1, 3):
        x = randn(S, 4)
        h = x[None]
        for i in range(2):
            h = encoder_layer_np(p, h, 2, prefix=f"layers.{i}.")
        np.testing.assert_allclose(enc(T(x)).detach().numpy(), h[0], rtol=1e-4, atol=1e-5)


def test_dropout_only_in_training():
    torch.manual_seed(3)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5, batch_first=True)
    x = T(randn(2, 4, 8))
    a, b = layer(x).detach().numpy(), layer(x).detach().numpy()
    assert not np.allclose(a, b)
    layer.eval()
    np.testing.assert_array_equal(layer(x).detach().numpy(), layer(x).detach().numpy())


def test_is_causal_without_mask_raises():
    layer = nn.TransformerEncoderLayer(4, 2, 6)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        layer(T(randn(3, 1, 4)), is_causal=True)


def test_encoder_layer_gradcheck():
    torch.manual_seed(4)
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True).double()
    _randomize(layer)
    padding = T(np.array([[False, False, True], [False, False, False]]))
    gradcheck(lambda x: layer(x, src_key_padding_mask=padding), randn(2, 3, 4, dtype=np.float64), atol=1e-5)


def test_compiled_training_step_matches_eager():
    x = T(randn(4, 6, 8))
    y = T(RNG.integers(0, 3, 4))
    mask = T(np.triu(np.ones((6, 6), bool), 1))
    results = []
    for compiled in (False, True):
        torch.manual_seed(5)
        enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2,
                                    enable_nested_tensor=False)
        head = nn.Linear(8, 3)
        params = list(enc.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=0.01)

        def step(x, y, enc=enc, head=head, opt=opt):
            opt.zero_grad()
            loss = F.cross_entropy(head(enc(x, mask=mask).mean(1)), y)
            loss.backward()
            opt.step()
            return loss

        run = torch.compile(step) if compiled else step
        losses = [run(x, y).item() for _ in range(4)]
        results.append((losses, _state(enc)))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    assert results[0][0][-1] < results[0][0][0]
    for k in results[0][1]:
        np.testing.assert_allclose(results[1][1][k], results[0][1][k], rtol=1e-4, atol=1e-6, err_msg=k)


# ---------------------------------------------------------------- decoder


def test_decoder_structure():
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 2)
    keys = list(dec.state_dict())
    assert keys[:6] == ["layers.0.self_attn.in_proj_weight", "layers.0.self_attn.in_proj_bias",
                        "layers.0.self_attn.out_proj.weight", "layers.0.self_attn.out_proj.bias",
                        "layers.0.multihead_attn.in_proj_weight", "layers.0.multihead_attn.in_proj_bias"]
    assert "layers.1.norm3.bias" in keys and len(keys) == 2 * 18


# ---------------------------------------------------------------- PyTorch as the oracle


@pytest.mark.parametrize("kw", [{}, {"norm_first": True, "activation": "gelu", "batch_first": True},
                                {"bias": False, "layer_norm_eps": 1e-3}])
def test_encoder_against_pytorch(kw):
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for the transformer layers")
    pt.manual_seed(0)
    theirs = pt.nn.TransformerEncoder(pt.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, **kw), 2,
                                      norm=pt.nn.LayerNorm(8), enable_nested_tensor=False).double()
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, **kw), 2, norm=nn.LayerNorm(8),
                                 enable_nested_tensor=False).double()
    assert repr(ours) == repr(theirs)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    ours.load_state_dict({k: T(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    bf = kw.get("batch_first", False)
    x = randn(*((2, 5, 8) if bf else (5, 2, 8)), dtype=np.float64)
    padding = np.array([[False, False, False, True, True], [False] * 5])
    causal = np.triu(np.ones((5, 5), bool), 1)
    for call in ({}, {"src_key_padding_mask": padding}, {"mask": causal, "is_causal": True},
                 {"mask": np.where(causal, -np.inf, 0.0), "src_key_padding_mask": np.where(padding, -np.inf, 0.0)}):
        fx, tx = T(x, requires_grad=True), pt.tensor(x, requires_grad=True)
        o = ours(fx, **{a: T(b) if isinstance(b, np.ndarray) else b for a, b in call.items()})
        t = theirs(tx, **{a: pt.tensor(b) if isinstance(b, np.ndarray) else b for a, b in call.items()})
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-9, atol=1e-10)
        g = randn(*x.shape, dtype=np.float64)
        (o * T(g)).sum().backward()
        (t * pt.tensor(g)).sum().backward()
        np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-7, atol=1e-9)
        for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-7, atol=1e-9, err_msg=name)
        ours.zero_grad()
        theirs.zero_grad()


def test_decoder_against_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for the transformer layers")
    pt.manual_seed(1)
    theirs = pt.nn.TransformerDecoder(pt.nn.TransformerDecoderLayer(8, 2, 12, dropout=0.0, batch_first=True), 2,
                                      norm=pt.nn.LayerNorm(8)).double()
    ours = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 12, dropout=0.0, batch_first=True), 2,
                                 norm=nn.LayerNorm(8)).double()
    assert repr(ours) == repr(theirs)
    ours.load_state_dict({k: T(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    tgt, mem = randn(2, 4, 8, dtype=np.float64), randn(2, 6, 8, dtype=np.float64)
    causal = np.triu(np.ones((4, 4), bool), 1)
    mem_pad = np.array([[False] * 6, [False] * 4 + [True] * 2])
    o = ours(T(tgt), T(mem), tgt_mask=T(causal), memory_key_padding_mask=T(mem_pad), tgt_is_causal=True)
    t = theirs(pt.tensor(tgt), pt.tensor(mem), tgt_mask=pt.tensor(causal), memory_key_padding_mask=pt.tensor(mem_pad),
               tgt_is_causal=True)
    np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-9, atol=1e-10)

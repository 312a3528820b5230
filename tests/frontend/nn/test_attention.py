"""F.scaled_dot_product_attention and nn.MultiheadAttention: values against a numpy softmax
attention (boolean, float and broadcast masks, causal masks with L != S, fully masked rows,
GQA, sequence length 1), float64 gradchecks, PyTorch's errors, the causal mask built inside
the kernel (no host input), kernel counts, a hand-written multi-head attention compiled and
eager against numpy, MultiheadAttention's parameters, initialization, repr and masks, and
PyTorch as the oracle (same weights through state_dict)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from helpers import gradcheck

RNG = np.random.default_rng(7)


def T(a, **kw):
    return torch.tensor(a, **kw)


def randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def softmax_np(s):
    """Softmax over the last axis; 0 for a row that is all -inf (PyTorch's SDPA)."""
    top = s.max(axis=-1, keepdims=True)
    top = np.where(np.isneginf(top), 0.0, top)
    e = np.exp(s - top)
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total == 0, 1.0, total)


def sdpa_np(q, k, v, mask=None, is_causal=False, scale=None):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64)) * scale
    if is_causal:
        L, S = s.shape[-2:]
        mask = np.tril(np.ones((L, S), bool))
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    return softmax_np(s) @ v.astype(np.float64)


# ---------------------------------------------------------------- scaled_dot_product_attention values


@pytest.mark.parametrize("L,S", [(5, 5), (3, 6), (6, 3), (1, 4), (4, 1)])
def test_sdpa_plain_and_causal_against_numpy(L, S):
    q, k, v = randn(2, 3, L, 4), randn(2, 3, S, 4), randn(2, 3, S, 5)
    for causal in (False, True):
        out = F.scaled_dot_product_attention(T(q), T(k), T(v), is_causal=causal)
        assert tuple(out.shape) == (2, 3, L, 5)
        np.testing.assert_allclose(out.numpy(), sdpa_np(q, k, v, is_causal=causal), rtol=1e-5, atol=1e-6)


def test_causal_is_top_left_aligned():
    """Query i attends keys 0..i whatever S is: with L > S the last rows see every key, with
    L < S the first row sees key 0 only (its output is v[0])."""
    k, v = randn(1, 6, 3), randn(1, 6, 2)
    out = F.scaled_dot_product_attention(T(randn(1, 2, 3)), T(k), T(v), is_causal=True).numpy()
    np.testing.assert_allclose(out[0, 0], v[0, 0], rtol=1e-6)
    q = randn(1, 8, 3)
    out = F.scaled_dot_product_attention(T(q), T(k), T(v), is_causal=True).numpy()
    np.testing.assert_allclose(out[0, 7], sdpa_np(q, k, v)[0, 7], rtol=1e-5)
    assert not np.allclose(out[0, 2], sdpa_np(q, k, v)[0, 2])


def test_sdpa_masks_broadcast():
    q, k, v = randn(2, 3, 4, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 8)
    masks = [RNG.random((4, 6)) > 0.3,                        # (L, S) for every batch and head
             RNG.random((2, 1, 1, 6)) > 0.3,                  # a key padding mask
             RNG.random((2, 3, 4, 6)) > 0.3,                  # one per batch and head
             (RNG.standard_normal((4, 6)) * 2).astype(np.float32),        # added
             (RNG.standard_normal((1, 3, 1, 6))).astype(np.float32)]
    for m in masks:
        out = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=T(m))
        np.testing.assert_allclose(out.numpy(), sdpa_np(q, k, v, mask=m), rtol=1e-5, atol=1e-6)


def test_sdpa_scale_and_unbatched():
    q, k, v = randn(3, 4), randn(5, 4), randn(5, 2)
    out = F.scaled_dot_product_attention(T(q), T(k), T(v), scale=0.7)
    np.testing.assert_allclose(out.numpy(), sdpa_np(q, k, v, scale=0.7), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out.numpy(), sdpa_np(q, k, v), atol=1e-3)


def test_fully_masked_rows_give_zero_with_zero_gradient():
    """PyTorch 2.13 returns 0 (not NaN) for a query whose keys are all masked, boolean or -inf."""
    q, k, v = randn(1, 2, 3, 4, dtype=np.float64), randn(1, 2, 3, 4, dtype=np.float64), randn(1, 2, 3, 4,
                                                                                          dtype=np.float64)
    bool_mask = np.array([[True, True, False], [False, False, False], [True, False, False]])
    float_mask = np.where(bool_mask, 0.0, -np.inf)
    for m in (bool_mask, float_mask):
        qt = T(q, requires_grad=True)
        out = F.scaled_dot_product_attention(qt, T(k), T(v), attn_mask=T(m))
        values = out.detach().numpy()
        assert np.isfinite(values).all()
        np.testing.assert_array_equal(values[:, :, 1], 0.0)
        np.testing.assert_allclose(values, sdpa_np(q, k, v, mask=m), rtol=1e-12)
        (out * T(randn(1, 2, 3, 4, dtype=np.float64))).sum().backward()
        assert np.isfinite(qt.grad.numpy()).all()
        np.testing.assert_array_equal(qt.grad.numpy()[:, :, 1], 0.0)


def test_large_negative_float_mask_is_not_a_masked_row():
    """-1e30 everywhere is a uniform softmax (as PyTorch), not a zero row."""
    q, k, v = randn(1, 3, 4), randn(1, 5, 4), randn(1, 5, 2)
    out = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=T(np.full((3, 5), -1e30, np.float32)))
    np.testing.assert_allclose(out.numpy(), np.broadcast_to(v.mean(axis=1, keepdims=True), (1, 3, 2)), rtol=1e-5)


def test_grouped_query_attention():
    q, k, v = randn(2, 6, 4, 3), randn(2, 2, 5, 3), randn(2, 2, 5, 3)
    out = F.scaled_dot_product_attention(T(q), T(k), T(v), enable_gqa=True)
    expected = sdpa_np(q, np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(T(q), T(k), T(v))


def test_dropout_on_the_weights():
    q, k, v = randn(2, 4, 8), randn(2, 8, 8), randn(2, 8, 8)
    torch.manual_seed(0)
    dropped = F.scaled_dot_product_attention(T(q), T(k), T(v), dropout_p=0.5).numpy()
    assert not np.allclose(dropped, sdpa_np(q, k, v), atol=1e-3)
    zero = F.scaled_dot_product_attention(T(q), T(k), T(v), dropout_p=1.0).numpy()
    np.testing.assert_array_equal(zero, 0.0)


def test_sdpa_errors_as_pytorch():
    q = T(randn(1, 3, 4))
    m = T(np.ones((3, 3), bool))
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=m, is_causal=True)
    with pytest.raises(RuntimeError, match="at least 2 dimensional, but got query.dim: 1 key.dim: 3"):
        F.scaled_dot_product_attention(T(randn(4)), q, q)
    with pytest.raises(RuntimeError, match="query.dtype: float key.dtype: double and value.dtype: float"):
        F.scaled_dot_product_attention(q, T(randn(1, 3, 4, dtype=np.float64)), q)
    with pytest.raises(RuntimeError, match="Expected attn_mask dtype to be bool or float"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=T(np.ones((3, 3), np.int64)))


@pytest.mark.parametrize("mode", ["causal", "bool", "float"])
def test_sdpa_gradcheck(mode):
    m = np.array([[True, False, True, False], [False, False, False, False], [True, True, True, True]])

    def fn(q, k, v):
        if mode == "causal":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        mask = T(m) if mode == "bool" else T(np.where(m, 0.5, -np.inf))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    gradcheck(fn, randn(2, 3, 3, dtype=np.float64), randn(2, 4, 3, dtype=np.float64),
              randn(2, 4, 2, dtype=np.float64))


# ---------------------------------------------------------------- the compiled kernels


def test_causal_mask_costs_no_input_and_compiles_with_the_scores():
    q, k, v = (torch.randn(2, 4, 64, 32) for _ in range(3))
    for t in (q, k, v):
        t.numpy()
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    out.numpy()
    program = torch.program_of(out)
    assert len(program.inputs) + len(program.params) == 3      # q, k, v: the mask is two iotas in a kernel
    assert any("iota" in name for kernel in program.kernels for name in kernel.fused)
    # today: scores (matmul), masked softmax (one fused reduction), weights @ v (matmul)
    assert program.num_kernels <= 3
    softmax = [kern for kern in program.kernels if any("exp" in n for n in kern.fused)]
    assert len(softmax) == 1 and any("iota" in n for n in softmax[0].fused)


# ---------------------------------------------------------------- hand-written multi-head attention


def _mha_np(x, wq, wk, wv, wo, heads):
    B, Tn, E = x.shape
    D = E // heads

    def split(a):
        return a.reshape(B, Tn, heads, D).transpose(0, 2, 1, 3)

    q, k, v = split(x @ wq.T), split(x @ wk.T), split(x @ wv.T)
    out = sdpa_np(q, k, v, is_causal=True)
    return out.transpose(0, 2, 1, 3).reshape(B, Tn, E) @ wo.T


def test_hand_written_multi_head_attention_compiled_and_eager():
    B, Tn, E, H = 2, 5, 8, 2
    D = E // H
    x, wq, wk, wv, wo = randn(B, Tn, E), randn(E, E), randn(E, E), randn(E, E), randn(E, E)

    def attend(x, wq, wk, wv, wo):
        q = (x @ wq.t()).view(B, Tn, H, D).transpose(1, 2)
        k = (x @ wk.t()).view(B, Tn, H, D).transpose(1, 2)
        v = (x @ wv.t()).view(B, Tn, H, D).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(D)
        causal = T(np.tril(np.ones((Tn, Tn), np.float32)))
        scores = scores.masked_fill(causal == 0, float("-inf"))
        out = scores.softmax(-1) @ v
        return out.transpose(1, 2).reshape(B, Tn, E) @ wo.t()

    expected = _mha_np(x, wq, wk, wv, wo, H)
    eager = attend(*(T(a) for a in (x, wq, wk, wv, wo)))
    compiled = torch.compile(attend)
    np.testing.assert_allclose(eager.numpy(), expected, rtol=1e-4, atol=1e-5)
    for _ in range(2):
        np.testing.assert_allclose(compiled(*(T(a) for a in (x, wq, wk, wv, wo))).numpy(), expected, rtol=1e-4,
                                   atol=1e-5)
    via_sdpa = F.scaled_dot_product_attention(
        *(T(x @ w.T).view(B, Tn, H, D).transpose(1, 2) for w in (wq, wk, wv)), is_causal=True)
    np.testing.assert_allclose((via_sdpa.transpose(1, 2).reshape(B, Tn, E) @ T(wo).t()).numpy(), expected,
                               rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- MultiheadAttention


def _params(m):
    return {k: v.detach().numpy().astype(np.float64) for k, v in m.state_dict().items()}


def mha_module_np(p, q, k, v, heads, key_padding_mask=None, attn_mask=None, need_weights=True, average=True):
    """MultiheadAttention on sequence-first (L, N, E) inputs from its state_dict `p`: masks as
    PyTorch's MHA (True = do not attend); need_weights uses a plain softmax (NaN rows)."""
    E = q.shape[-1]
    D = E // heads
    w, b = p["in_proj_weight"], p.get("in_proj_bias", np.zeros(3 * E))
    qp, kp, vp = q @ w[:E].T + b[:E], k @ w[E:2 * E].T + b[E:2 * E], v @ w[2 * E:].T + b[2 * E:]
    L, N, S = q.shape[0], q.shape[1], k.shape[0]

    def heads_first(a, n):
        return a.reshape(n, N, heads, D).transpose(1, 2, 0, 3)     # (N, H, n, D)

    s = heads_first(qp, L) @ np.swapaxes(heads_first(kp, S), -1, -2) / math.sqrt(D)
    if attn_mask is not None:
        s = s + (np.where(attn_mask, -np.inf, 0.0) if attn_mask.dtype == bool else attn_mask)
    if key_padding_mask is not None:
        s = s + np.where(key_padding_mask, -np.inf, 0.0)[:, None, None, :]
    if need_weights:
        with np.errstate(invalid="ignore"):
            e = np.exp(s - s.max(axis=-1, keepdims=True))
            weights = e / e.sum(axis=-1, keepdims=True)
    else:
        weights = softmax_np(s)
    out = (weights @ heads_first(vp, S)).transpose(2, 0, 1, 3).reshape(L, N, E)
    out = out @ p["out_proj.weight"].T + p.get("out_proj.bias", 0.0)
    return out, (weights.mean(axis=1) if average else weights) if need_weights else None


def test_mha_parameters_init_and_repr():
    torch.manual_seed(0)
    m = nn.MultiheadAttention(8, 2)
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == [
        ("in_proj_weight", (24, 8)), ("in_proj_bias", (24,)), ("out_proj.weight", (8, 8)), ("out_proj.bias", (8,))]
    assert repr(m) == ("MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear(in_features=8, "
                       "out_features=8, bias=True)\n)")
    w = m.in_proj_weight.detach().numpy()
    bound = math.sqrt(6.0 / (8 + 24))     # xavier_uniform_ over the packed (3E, E) weight
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    np.testing.assert_array_equal(m.in_proj_bias.detach().numpy(), 0.0)
    np.testing.assert_array_equal(m.out_proj.bias.detach().numpy(), 0.0)
    assert m.head_dim == 4 and m.batch_first is False and m._qkv_same_embed_dim
    sep = nn.MultiheadAttention(8, 2, kdim=5, vdim=6, add_bias_kv=True, bias=False)
    assert [(k, tuple(v.shape)) for k, v in sep.state_dict().items()] == [
        ("q_proj_weight", (8, 8)), ("k_proj_weight", (8, 5)), ("v_proj_weight", (8, 6)), ("bias_k", (1, 1, 8)),
        ("bias_v", (1, 1, 8)), ("out_proj.weight", (8, 8))]
    assert sep.in_proj_weight is None and sep.in_proj_bias is None


def test_mha_constructor_errors():
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="embed_dim and num_heads must be greater than 0"):
        nn.MultiheadAttention(0, 2)


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_against_numpy(batch_first):
    torch.manual_seed(1)
    m = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    with torch.no_grad():
        m.in_proj_bias.copy_(T(randn(24)))
        m.out_proj.bias.copy_(T(randn(8)))
    p = _params(m)
    L, N = 4, 3
    q, kv = randn(L, N, 8), randn(6, N, 8)
    pad = RNG.random((N, 6)) > 0.7
    pad[:, 0] = False
    causal = np.triu(np.ones((L, 6), bool), 1)

    def inputs(*arrays):
        return [T(a.transpose(1, 0, 2) if batch_first else a) for a in arrays]

    def out_np(o):
        return o.transpose(1, 0, 2) if batch_first else o

    for kw in ({}, {"key_padding_mask": pad}, {"attn_mask": causal}, {"attn_mask": causal, "key_padding_mask": pad},
               {"need_weights": False, "key_padding_mask": pad}, {"average_attn_weights": False}):
        tq, tkv = inputs(q, kv)
        targs = {k: (T(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        out, weights = m(tq, tkv, tkv, **targs)
        exp_out, exp_w = mha_module_np(p, q, kv, kv, 2, kw.get("key_padding_mask"), kw.get("attn_mask"),
                                       kw.get("need_weights", True), kw.get("average_attn_weights", True))
        np.testing.assert_allclose(out.detach().numpy(), out_np(exp_out), rtol=1e-4, atol=1e-5)
        if exp_w is None:
            assert weights is None
        else:
            np.testing.assert_allclose(weights.detach().numpy(), exp_w, rtol=1e-4, atol=1e-6)


def test_mha_self_attention_unbatched_and_length_one():
    torch.manual_seed(2)
    m = nn.MultiheadAttention(6, 3)
    p = _params(m)
    for L in (1, 4):
        x = randn(L, 6)
        out, w = m(T(x), T(x), T(x))
        exp_out, exp_w = mha_module_np(p, x[:, None], x[:, None], x[:, None], 3)
        assert tuple(out.shape) == (L, 6) and tuple(w.shape) == (L, L)
        np.testing.assert_allclose(out.detach().numpy(), exp_out[:, 0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(w.detach().numpy(), exp_w[0], rtol=1e-4, atol=1e-6)
        if L == 1:
            np.testing.assert_allclose(w.detach().numpy(), 1.0, rtol=1e-6)


def test_mha_fully_padded_sequence_nan_with_weights_zero_without():
    """As PyTorch: need_weights=True takes a plain softmax (NaN), need_weights=False goes
    through scaled_dot_product_attention (0 before out_proj: the output is out_proj.bias)."""
    torch.manual_seed(3)
    m = nn.MultiheadAttention(4, 2, batch_first=True)
    with torch.no_grad():
        m.out_proj.bias.copy_(T(np.array([1.0, 2.0, 3.0, 4.0], np.float32)))
    x = T(randn(2, 3, 4))
    pad = T(np.array([[True, True, True], [False, True, False]]))
    out, w = m(x, x, x, key_padding_mask=pad)
    assert np.isnan(out.detach().numpy()[0]).all() and np.isnan(w.detach().numpy()[0]).all()
    assert np.isfinite(out.detach().numpy()[1]).all()
    out, w = m(x, x, x, key_padding_mask=pad, need_weights=False)
    assert w is None
    np.testing.assert_allclose(out.detach().numpy()[0], np.broadcast_to([1.0, 2.0, 3.0, 4.0], (3, 4)))


def test_mha_is_causal_needs_a_mask_and_the_causal_path_matches_it():
    torch.manual_seed(4)
    m = nn.MultiheadAttention(4, 2)
    x = T(randn(5, 2, 4))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        m(x, x, x, is_causal=True, need_weights=False)
    mask = T(np.triu(np.ones((5, 5), bool), 1))
    hinted = m(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0]     # SDPA's is_causal path
    masked = m(x, x, x, attn_mask=mask)[0]
    np.testing.assert_allclose(hinted.detach().numpy(), masked.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_mha_shape_errors():
    m = nn.MultiheadAttention(4, 2)
    x = T(randn(3, 2, 4))
    with pytest.raises(AssertionError, match="expected `key` and `value` to be 3-D"):
        m(x, T(randn(3, 4)), T(randn(3, 4)))
    with pytest.raises(RuntimeError, match=r"The shape of the 2D attn_mask is .*, but should be \(3, 3\)"):
        m(x, x, x, attn_mask=T(np.zeros((2, 3), bool)))
    with pytest.raises(AssertionError, match="was expecting embedding dimension of 4, but got 6"):
        y = T(randn(3, 2, 6))
        m(y, y, y)
    with pytest.raises(AssertionError, match="only bool and floating types of key_padding_mask are supported"):
        m(x, x, x, key_padding_mask=T(np.zeros((2, 3), np.int64)))


def test_mha_gradcheck():
    torch.manual_seed(5)
    m = nn.MultiheadAttention(4, 2, batch_first=True).double()
    pad = T(np.array([[False, False, True], [False, True, True]]))

    def fn(q, kv):
        return m(q, kv, kv, key_padding_mask=pad, need_weights=False)[0]

    gradcheck(fn, randn(2, 2, 4, dtype=np.float64), randn(2, 3, 4, dtype=np.float64))


def test_mha_compiled_step_matches_eager():
    x = T(randn(4, 5, 8))
    target = T(randn(4, 5, 8))
    results = []
    for compiled in (False, True):
        torch.manual_seed(6)
        m = nn.MultiheadAttention(8, 2, batch_first=True)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)

        def step(x, t, m=m, opt=opt):
            opt.zero_grad()
            loss = F.mse_loss(m(x, x, x, need_weights=False)[0], t)
            loss.backward()
            opt.step()
            return loss

        run = torch.compile(step) if compiled else step
        results.append(([run(x, target).item() for _ in range(3)], _params(m)))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    assert results[0][0][2] < results[0][0][0]
    for k in results[0][1]:
        np.testing.assert_allclose(results[1][1][k], results[0][1][k], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- PyTorch as the oracle


def _both(pt, *arrays, grad=True):
    return [T(a, requires_grad=grad) for a in arrays], [pt.tensor(a, requires_grad=grad) for a in arrays]


def test_sdpa_against_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for attention values and gradients")
    q, k, v = randn(2, 3, 4, 5, dtype=np.float64), randn(2, 3, 6, 5, dtype=np.float64), randn(2, 3, 6, 2,
                                                                                        dtype=np.float64)
    bool_mask = RNG.random((4, 6)) > 0.4
    bool_mask[2] = False
    for kw in ({}, {"is_causal": True}, {"attn_mask": bool_mask}, {"attn_mask": np.where(bool_mask, 0.3, -np.inf)},
               {"scale": 0.25}):
        ours, theirs = _both(pt, q, k, v)
        o = F.scaled_dot_product_attention(*ours, **{a: T(b) if isinstance(b, np.ndarray) else b
                                                     for a, b in kw.items()})
        t = pt.nn.functional.scaled_dot_product_attention(*theirs, **{a: pt.tensor(b) if isinstance(b, np.ndarray)
                                                                      else b for a, b in kw.items()})
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = randn(2, 3, 4, 2, dtype=np.float64)
        (o * T(g)).sum().backward()
        (t * pt.tensor(g)).sum().backward()
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kw", [{}, {"batch_first": True}, {"kdim": 3, "vdim": 5, "add_bias_kv": True},
                                {"add_zero_attn": True, "bias": False}])
def test_mha_against_pytorch(kw):
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for MultiheadAttention")
    pt.manual_seed(0)
    theirs = pt.nn.MultiheadAttention(6, 3, **kw).double()
    ours = nn.MultiheadAttention(6, 3, **kw).double()
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: T(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    bf = kw.get("batch_first", False)
    shape = (lambda n, e: (2, n, e)) if bf else (lambda n, e: (n, 2, e))
    q, k, v = randn(*shape(4, 6), dtype=np.float64), randn(*shape(5, kw.get("kdim", 6)), dtype=np.float64), \
        randn(*shape(5, kw.get("vdim", 6)), dtype=np.float64)
    pad = np.array([[False, True, False, False, True], [False, False, False, False, False]])
    for call in ({}, {"key_padding_mask": pad}, {"key_padding_mask": pad, "need_weights": False},
                 {"attn_mask": np.triu(np.ones((4, 5), bool), 1), "average_attn_weights": False}):
        (fq, fk, fv), (tq, tk, tv) = _both(pt, q, k, v)
        o, w = ours(fq, fk, fv, **{a: T(b) if isinstance(b, np.ndarray) else b for a, b in call.items()})
        to, tw = theirs(tq, tk, tv, **{a: pt.tensor(b) if isinstance(b, np.ndarray) else b for a, b in call.items()})
        np.testing.assert_allclose(o.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
        if tw is None:
            assert w is None
        else:
            np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)
        o.sum().backward()
        to.sum().backward()
        for a, b in zip((fq, fk, fv), (tq, tk, tv)):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-10)
        for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
        ours.zero_grad()
        theirs.zero_grad()

"""Whole-model training steps: the digits CNN and a small GPT-style transformer, compiled.

1. The CNN step of examples/cnn_digits.py: two Conv2d + BatchNorm2d + ReLU + MaxPool2d blocks
   and a two-layer classifier on 1x8x8 images, batch 64, cross-entropy, Adam.
2. A transformer step: a character-level decoder as in examples/char_transformer.py with 4
   pre-LayerNorm blocks, d_model 128, 4 heads, context 64, batch 32, vocabulary 100: causal
   attention (F.scaled_dot_product_attention, is_causal=True), GELU MLP, cross-entropy,
   clip_grad_norm_, AdamW.

Each step (forward, backward, optimizer update) is one `@fusegrad.compile` function; the
median time of a replayed step is compared with the same step in PyTorch eager and under
`torch.compile` (same thread count as fusegrad), when torch is installed. A peer that fails
is left out with the reason in the note. fusegrad and its peers alternate over rounds (other
work on a shared machine then falls on all alike); the note also gives fusegrad's time with its
kernels on one thread (on a loaded machine, two-thread kernels can wait for each other).

"of machine limit" is the step's GEMM FLOPs (matmuls and convolutions as contractions:
forward, input gradients and weight gradients; attention's two batched matmuls counted in full,
not halved for the causal mask; elementwise work, normalisation and the optimizer not counted)
over the machine's float32 FMA peak at fusegrad's thread count: the higher of a measurement
(bench/common.py: 12 independent FMA chains of the widest vector the CPU has, avx2/fma or
avx512f by the CPU flags, JIT-compiled, on that many threads) and threads x lanes x 2 FLOPs x
2 FMA units x the clock /proc/cpuinfo reports; the printout gives both and the clock the
measurement implies.

Run: python bench/models.py
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import Row, flops_limit, median_time, table, threads, time_peers, vector_widths  # noqa: E402

CNN_BATCH = 64
TF = dict(layers=4, d_model=128, heads=4, context=64, batch=32, vocab=100)


# ---------------------------------------------------------------- the models, for fusegrad or torch

def cnn_model(m):
    nn = m.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def transformer_model(m, layers: int, d_model: int, heads: int, context: int, vocab: int, **_):
    nn, F = m.nn, m.nn.functional

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.proj = nn.Linear(d_model, d_model)

        def forward(self, x):
            b, t, d = x.shape
            qkv = self.qkv(x)
            q, k, v = (qkv[:, :, i * d:(i + 1) * d].view(b, t, heads, d // heads).transpose(1, 2) for i in range(3))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(d_model), Attention(), nn.LayerNorm(d_model)
            self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d_model), nn.Embedding(context, d_model)
            self.blocks = nn.Sequential(*[Block() for _ in range(layers)])
            self.ln, self.head = nn.LayerNorm(d_model), nn.Linear(d_model, vocab)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(m.arange(idx.shape[1]))
            return self.head(self.ln(self.blocks(x)))

    return Decoder()


def make_step(m, which: str, compile_step=None):
    """(step, args): one training step of `which` ("cnn" or "transformer") written with module
    `m` (fusegrad or torch), wrapped by `compile_step` when given, and its batch as m tensors."""
    m.manual_seed(0)
    rng = np.random.default_rng(0)
    if which == "cnn":
        model = cnn_model(m)
        opt = m.optim.Adam(model.parameters(), lr=3e-3)
        x = rng.random((CNN_BATCH, 1, 8, 8), dtype=np.float32)
        y = rng.integers(0, 10, CNN_BATCH)
        clip = False
    else:
        model = transformer_model(m, **TF)
        opt = m.optim.AdamW(model.parameters(), lr=1e-3)
        x = rng.integers(0, TF["vocab"], (TF["batch"], TF["context"]))
        y = rng.integers(0, TF["vocab"], (TF["batch"], TF["context"]))
        clip = True
    F = m.nn.functional

    def step(x, y):
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        if clip:
            m.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss
    return (compile_step(step) if compile_step else step), (m.from_numpy(x), m.from_numpy(y))


def gemm_flops(which: str) -> int:
    """Multiply-add FLOPs (2 per MAC) of the step's contractions: forward, and for each its
    input gradient and weight gradient (3x), less the first layer's input gradient (the data
    needs none)."""
    if which == "cnn":
        n = CNN_BATCH
        conv1 = 2 * n * 16 * 8 * 8 * 1 * 9
        forward = conv1 + 2 * n * 32 * 4 * 4 * 16 * 9 + 2 * n * 128 * 64 + 2 * n * 64 * 10
        return 3 * forward - conv1
    b, t, d, v = TF["batch"], TF["context"], TF["d_model"], TF["vocab"]
    tokens = b * t
    per_layer = 2 * tokens * d * (3 * d + d + 4 * d + 4 * d) + 2 * 2 * b * t * t * d   # linears, q@k^T and p@v
    forward = TF["layers"] * per_layer + 2 * tokens * d * v
    return 3 * forward          # the embeddings are gathers: no input-gradient GEMM to leave out


def _torch_step(torch, which: str, compiled: bool):
    torch.set_num_threads(threads())
    step, args = make_step(torch, which, torch.compile if compiled else None)
    step(*args)                  # torch.compile compiles here
    step(*args)
    return lambda: step(*args).item()


def _cpuinfo_mhz() -> float:
    try:
        with open("/proc/cpuinfo") as f:
            return max(float(line.split(":", 1)[1]) for line in f if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        return 0.0


def peak() -> tuple[float, str]:
    """(float32 FLOP/s limit at fusegrad's thread count, how it was found): the higher of the
    measured FMA loop (common.flops_limit) and threads x lanes x 2 FLOPs x 2 FMA units x the
    clock /proc/cpuinfo reports (a measurement on a loaded machine can only come out low)."""
    n, lanes = threads(), max(vector_widths())
    measured = flops_limit(n)
    nominal = n * lanes * 2 * 2 * _cpuinfo_mhz() * 1e6
    how = (f"float32 FMA peak on {n} thread(s): measured {measured / 1e9:.0f} GFLOP/s (12 independent FMA chains of "
           f"{lanes} lanes, {'AVX-512' if lanes == 16 else 'AVX2+FMA'} from the CPU flags, JIT loop, best of 7; "
           f"implies {measured / (n * lanes * 4) / 1e9:.2f} GHz at 2 FMA units per core), from /proc/cpuinfo "
           f"{nominal / 1e9:.0f} GFLOP/s ({_cpuinfo_mhz():.0f} MHz x {lanes} lanes x 2 FLOPs x 2 FMA units x {n}); "
           f"rows use the higher, {max(measured, nominal) / 1e9:.0f} GFLOP/s")
    return max(measured, nominal), how


def _one_thread(call):
    """`call` with fusegrad's kernels on one thread (the setting restored after it)."""
    from fusegrad.runtime import set_num_threads

    def run():
        set_num_threads(1)
        try:
            return call()
        finally:
            set_num_threads(default)
    default = threads()
    return run


def rows(rounds: int = 3) -> list:
    """One row per model. fusegrad (default threads, and one thread for the note) and each peer
    alternate over `rounds` rounds, so that other work on the machine falls on all alike; each
    time is the median over the rounds of per-round medians."""
    import statistics

    import fusegrad
    limit = peak()[0]
    out = []
    for which, label in (("cnn", f"CNN step (digits, 2 conv blocks) b{CNN_BATCH} Adam, compiled"),
                         ("transformer", "transformer step ({layers} layers, d{d_model}, {heads} heads, ctx {context}) "
                          "b{batch} AdamW, compiled".format(**TF))):
        step, args = make_step(fusegrad, which, fusegrad.compile)
        ours = lambda: step(*args).item()
        calls = {"fusegrad": ours, "fusegrad 1 thread": _one_thread(ours)}
        notes: list = []
        for peer, compiled in (("torch", False), ("torch.compile", True)):
            # time_peers with repeat=1 checks that the peer is installed, sets it up and runs it
            # (or notes why not); the call it made is then timed in the rounds below
            made: dict = {}
            time_peers({}, {peer: lambda torch, c=compiled: made.setdefault("call", _torch_step(torch, which, c))},
                       repeat=1, notes=notes)
            if "call" in made:
                calls[peer] = made["call"]
        repeat = 15 if which == "cnn" else 5
        times: dict = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                times[name].append(median_time(call, repeat=repeat, warmup=1))
        t = statistics.median(times.pop("fusegrad"))
        t1 = statistics.median(times.pop("fusegrad 1 thread"))
        peers = {name: statistics.median(v) for name, v in times.items()}
        flops = gemm_flops(which)
        out.append(Row(label, t, peers, limit=flops / t / limit, unit="peak FLOP/s",
                       note="; ".join([f"{flops / 1e9:.3f} GFLOP of GEMM per step, {flops / t / 1e9:.1f} GFLOP/s",
                                       f"fusegrad on 1 thread {t1 * 1e3:.1f} ms ({flops / t1 / 1e9:.1f} GFLOP/s)",
                                       f"{step.stats['traces']} traces"] + notes)))
    return out


def main() -> None:
    print(f"whole-model training steps, float32, {threads()} fusegrad thread(s); load average "
          f"{os.getloadavg()[0]:.2f}\n{peak()[1]}\n")
    print(table(rows()))


if __name__ == "__main__":
    main()

"""Eager training loops: fusegrad's nn + optim against eager PyTorch, with the same code.

1. The linear-regression loop of examples/linear_regression.py: nn.Linear(1, 1), MSELoss, SGD,
   5,000 epochs of forward, backward() and step() from a plain Python loop (no @compile).
2. One MLP training step (784 -> 256 -> 10, ReLU, cross-entropy, batch 128), with SGD (momentum
   0.9) and with Adam: the median step time.
3. Fixed costs: one eager elementwise op (10,000 chained `y = y + 1.0` on 8 floats, timed
   while building; fusegrad realizes once at the end) and the realizations (native calls)
   per iteration of the loops above.
4. Initialization on 16M elements: rand, randn, nn.init.kaiming_uniform_ and normal_ of a
   4096x4096 tensor, and building nn.Linear(4096, 4096) (empty + kaiming_uniform_ + bias), each
   call writing fresh memory, as a model's construction does (numpy: its default Generator).
5. Recurrent steps (`recurrent`): a char-RNN training step, nn.Embedding(65, 128), 4 stacked
   nn.RNNCell(128, 128) (tanh) looped over 16 time steps, batch 32, an nn.Linear head,
   cross-entropy summed over the steps, Adam; and the same with nn.GRUCell. Median step time
   after warm-up (issue 15's target: within 2x PyTorch eager).
6. Drift (`drift`): a Bengio-style embedding-MLP language model (3 context tokens of a
   27-token vocabulary embedded in 10 dims each, concatenated, Linear(30, 200), tanh,
   Linear(200, 27), cross-entropy, SGD, batch 32), 1,010 steps from a fresh model: the median
   step of steps 5-24 and of steps 990-1,009 (target: step 1,000 within 10 % of step 10; the
   garbage collector stays on, as in a real loop).
7. Sampling (`sampling`): greedy decoding of 100 tokens from a small GPT (vocabulary 65,
   context 128, 2 pre-norm blocks of 4 heads, d_model 64, F.scaled_dot_product_attention
   with is_causal=True), under no_grad: each token re-runs the model on the whole prefix and
   takes the argmax of the last position (`.item()`, as a sampling loop does). Total time for
   100 tokens (target: within 3x PyTorch eager); the note gives fusegrad's first run, which
   compiles a program per prefix length (about 40 s here with the kernel cache on disk warm,
   over 3 minutes with it cold: `--only` leaves the group out).

Every number is a median from this one run; ratios > 1 mean fusegrad is faster.

Run: python bench/train_loop.py [--only GROUP ...]   (groups: linreg mlp fixed init recurrent
drift sampling; default all)
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

import numpy as np

import fusegrad

sys.path.insert(0, os.path.dirname(__file__))
from common import Row, installed, machine, median_time, table, time_peers  # noqa: E402

EPOCHS = 5000


def _points():
    rng = np.random.default_rng(0)
    x = rng.random((100, 1), dtype=np.float32) * 10
    y = (2.5 * x + 1.0 + rng.normal(0, 1.0, (100, 1))).astype(np.float32)
    return x, y


def _linreg_loop(m):
    """The 5,000-epoch loop for `m` (fusegrad or torch), as a function running it from scratch."""
    x, y = (m.from_numpy(a) for a in _points())

    def run():
        model = m.nn.Linear(1, 1)
        loss_fn = m.nn.MSELoss()
        opt = m.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(EPOCHS):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()
    return run


def linreg_rows() -> list:
    import fusegrad.nn  # noqa: F401  (torch.nn and torch.optim come with `import torch`)
    import fusegrad.optim  # noqa: F401
    run = _linreg_loop(fusegrad)
    start = time.perf_counter()
    run()                                   # first run: compiles its programs
    first = time.perf_counter() - start
    t = median_time(run, repeat=3, warmup=0)
    peers: dict = {}
    notes: list = []
    time_peers(peers, {"torch": _linreg_loop}, repeat=3, notes=notes)
    note = f"{t / EPOCHS * 1e6:.0f} µs/epoch; first run {first:.2f} s" + ("; " + "; ".join(notes) if notes else "")
    return [Row(f"linreg loop, {EPOCHS} epochs, eager", t, peers, note=note)]


def _mlp_step(m, optimizer: str):
    """One training step of the MLP for `m`, as a function of no arguments."""
    rng = np.random.default_rng(2)
    x = m.from_numpy(rng.standard_normal((128, 784)).astype(np.float32))
    y = m.from_numpy(rng.integers(0, 10, 128))
    model = m.nn.Sequential(m.nn.Linear(784, 256), m.nn.ReLU(), m.nn.Linear(256, 10))
    opt = m.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if optimizer == "SGD" else \
        m.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = m.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def mlp_rows() -> list:
    import fusegrad.nn  # noqa: F401
    import fusegrad.optim  # noqa: F401
    rows = []
    for optimizer in ("SGD", "Adam"):
        t = median_time(_mlp_step(fusegrad, optimizer), repeat=50, warmup=3)
        peers: dict = {}
        notes: list = []
        time_peers(peers, {"torch": lambda torch, o=optimizer: _mlp_step(torch, o)}, repeat=50, notes=notes)
        rows.append(Row(f"MLP step 784-256-10 b128 {optimizer}, eager", t, peers,
                        note=f"{1 / t:.0f} steps/s" + ("; " + "; ".join(notes) if notes else "")))
    return rows


CHAIN = 10_000


def _chained_adds(m):
    x = m.ones(8)

    def run():
        y = x
        for _ in range(CHAIN):
            y = y + 1.0
        return y
    return run


def _realizations_per_iteration(make_loop_body, iterations: int = 20) -> float:
    """Native calls (eager realizations) per iteration of a loop body, after a warm-up."""
    body = make_loop_body()
    body()
    before = fusegrad.program_cache_info()["runs"]
    for _ in range(iterations):
        body()
    return (fusegrad.program_cache_info()["runs"] - before) / iterations


def fixed_cost_rows() -> list:
    chain = _chained_adds(fusegrad)

    def build_and_realize():
        chain().sum().item()
    t = median_time(build_and_realize, repeat=5, warmup=1) / CHAIN
    peers: dict = {}
    time_peers(peers, {"torch": lambda torch: lambda: _chained_adds(torch)().sum().item()}, repeat=5)
    peers = {k: v / CHAIN for k, v in peers.items()}
    linreg = _realizations_per_iteration(lambda: _linreg_epoch(fusegrad))
    mlp = {o: _realizations_per_iteration(lambda o=o: _mlp_step(fusegrad, o)) for o in ("SGD", "Adam")}
    note = (f"realizations per iteration: linreg epoch {linreg:g}, MLP SGD step {mlp['SGD']:g}, "
            f"MLP Adam step {mlp['Adam']:g}")
    return [Row(f"eager op: y = y + 1.0, {CHAIN} chained, per op", t, peers, note=note)]


def _linreg_epoch(m):
    """One epoch of the linear-regression loop, as a function of no arguments."""
    x, y = (m.from_numpy(a) for a in _points())
    model = m.nn.Linear(1, 1)
    loss_fn = m.nn.MSELoss()
    opt = m.optim.SGD(model.parameters(), lr=0.01)

    def epoch():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return epoch


INIT_SHAPE = (4096, 4096)


def _init_calls(m) -> dict:
    """name -> call of no arguments, for fusegrad or torch (`m`)."""
    weight = m.empty(*INIT_SHAPE)
    return {
        "rand": lambda: m.rand(*INIT_SHAPE),
        "randn": lambda: m.randn(*INIT_SHAPE),
        "kaiming_uniform_": lambda: m.nn.init.kaiming_uniform_(weight),
        "normal_": lambda: m.nn.init.normal_(weight),
        "nn.Linear(4096, 4096)": lambda: m.nn.Linear(*INIT_SHAPE),
    }


def _numpy_calls(np_module) -> dict:
    rng = np_module.random.default_rng(0)
    return {"rand": lambda: rng.random(INIT_SHAPE, dtype=np.float32),
            "randn": lambda: rng.standard_normal(INIT_SHAPE, dtype=np.float32)}


def init_rows() -> list:
    import fusegrad.nn  # noqa: F401
    ours = _init_calls(fusegrad)
    for call in ours.values():
        call()                              # the first call of each fill compiles it (then disk-cached)
    rows = []
    for name, call in ours.items():
        t = median_time(call, repeat=7, warmup=1)
        peers: dict = {}
        notes: list = []
        makers = {"torch": lambda torch, n=name: _init_calls(torch)[n]}
        if name in ("rand", "randn"):
            makers["numpy"] = lambda np_module, n=name: _numpy_calls(np_module)[n]
        time_peers(peers, makers, repeat=7, notes=notes)
        rows.append(Row(f"init: {name}, 16M float32", t, peers, note="; ".join(notes)))
    return rows


# ---------------------------------------------------------------- recurrent steps

RNN_VOCAB, RNN_HIDDEN, RNN_STEPS, RNN_LAYERS, RNN_BATCH = 65, 128, 16, 4, 32


def _recurrent_step(m, cell: str):
    """One char-RNN training step for `m` (fusegrad or torch) with `cell` (RNNCell or GRUCell)
    layers, as a function of no arguments; each step draws a fresh batch."""
    m.manual_seed(0)
    emb = m.nn.Embedding(RNN_VOCAB, RNN_HIDDEN)
    cells = m.nn.ModuleList([getattr(m.nn, cell)(RNN_HIDDEN, RNN_HIDDEN) for _ in range(RNN_LAYERS)])
    head = m.nn.Linear(RNN_HIDDEN, RNN_VOCAB)
    opt = m.optim.Adam(list(emb.parameters()) + list(cells.parameters()) + list(head.parameters()), lr=1e-3)
    rng = np.random.default_rng(0)

    def step():
        x = m.from_numpy(rng.integers(0, RNN_VOCAB, (RNN_BATCH, RNN_STEPS)))
        y = m.from_numpy(rng.integers(0, RNN_VOCAB, (RNN_BATCH, RNN_STEPS)))
        h = [m.zeros(RNN_BATCH, RNN_HIDDEN) for _ in range(RNN_LAYERS)]
        loss = 0
        for t in range(RNN_STEPS):
            inp = emb(x[:, t])
            for layer in range(RNN_LAYERS):
                h[layer] = inp = cells[layer](inp, h[layer])
            loss = loss + m.nn.functional.cross_entropy(head(inp), y[:, t])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _programs(before: dict, calls: int) -> str:
    """Realizations and compiled programs per call since `before` (program_cache_info())."""
    after = fusegrad.program_cache_info()
    runs, misses = (after[k] - before[k] for k in ("runs", "misses"))
    return f"{runs / calls:g} realizations, {misses / calls:g} new programs per call"


def _timed_with_programs(fn, repeat: int, warmup: int = 2) -> tuple:
    """median_time of `fn`, and its realizations and new programs per call while timed."""
    for _ in range(warmup):
        fn()
    before = fusegrad.program_cache_info()
    t = median_time(fn, repeat=repeat, warmup=0)
    return t, _programs(before, repeat)


def recurrent_rows() -> list:
    import fusegrad.nn  # noqa: F401
    import fusegrad.optim  # noqa: F401
    rows = []
    for cell in ("RNNCell", "GRUCell"):
        step = _recurrent_step(fusegrad, cell)
        start = time.perf_counter()
        step()                              # first step: compiles its programs
        first = time.perf_counter() - start
        t, per_step = _timed_with_programs(step, repeat=15)
        peers: dict = {}
        notes: list = []
        time_peers(peers, {"torch": lambda torch, c=cell: _recurrent_step(torch, c)}, repeat=15, notes=notes)
        rows.append(Row(f"char-RNN step, 4x{cell}(128) x 16 steps b32 Adam, eager", t, peers,
                        note="; ".join([f"first step {first:.2f} s", per_step] + notes)))
    return rows


# ---------------------------------------------------------------- drift across steps

LM_VOCAB, LM_CONTEXT, LM_EMBED, LM_HIDDEN, LM_BATCH = 27, 3, 10, 200, 32
DRIFT_STEPS = 1010
EARLY, LATE = range(5, 25), range(990, 1010)      # 20 steps each


def _embedding_mlp_step(m):
    """One SGD step of the Bengio-style embedding-MLP language model for `m`, on a fresh
    minibatch of a fixed random data set, as a function of no arguments."""
    m.manual_seed(0)
    rng = np.random.default_rng(3)
    contexts = m.from_numpy(rng.integers(0, LM_VOCAB, (2048, LM_CONTEXT)))
    targets = m.from_numpy(rng.integers(0, LM_VOCAB, 2048))
    emb = m.nn.Embedding(LM_VOCAB, LM_EMBED)
    mlp = m.nn.Sequential(m.nn.Linear(LM_CONTEXT * LM_EMBED, LM_HIDDEN), m.nn.Tanh(),
                          m.nn.Linear(LM_HIDDEN, LM_VOCAB))
    opt = m.optim.SGD(list(emb.parameters()) + list(mlp.parameters()), lr=0.1)

    def step():
        ix = m.from_numpy(rng.integers(0, 2048, LM_BATCH))
        logits = mlp(emb(contexts[ix]).view(LM_BATCH, LM_CONTEXT * LM_EMBED))
        loss = m.nn.functional.cross_entropy(logits, targets[ix])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _step_times(step, steps: int) -> list:
    """Seconds of each of `steps` consecutive calls of `step` (garbage collector as it is)."""
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def _window(times: list, steps: range) -> float:
    """The median of the times of `steps`."""
    return statistics.median(times[i] for i in steps)


def _peer_step_times(make_step, steps: int, notes: list) -> list | None:
    """Per-step times of PyTorch's loop (None when torch is missing or fails, with a note)."""
    torch = installed("torch")
    if torch is None:
        return None
    try:
        step = make_step(torch)
        gc.collect()
        return _step_times(step, steps)
    except Exception as e:   # a peer's own environment problem must not stop the run
        notes.append(f"torch failed: {type(e).__name__}")
        return None


def drift_rows() -> list:
    import fusegrad.nn  # noqa: F401
    import fusegrad.optim  # noqa: F401
    step = _embedding_mlp_step(fusegrad)
    gc.collect()
    ours = _step_times(step, EARLY.stop)
    before = fusegrad.program_cache_info()
    ours += _step_times(step, DRIFT_STEPS - EARLY.stop)
    notes = [f"after step {EARLY.stop - 1}: " + _programs(before, DRIFT_STEPS - EARLY.stop)]
    theirs = _peer_step_times(_embedding_mlp_step, DRIFT_STEPS, notes)
    rows = []
    for name, steps in (("10", EARLY), ("1,000", LATE)):
        peers = {"torch": _window(theirs, steps)} if theirs else {}
        rows.append(Row(f"embedding-MLP LM step ~{name} (median of steps {steps.start}-{steps.stop - 1}), "
                        "SGD b32, eager", _window(ours, steps), peers))
    growth = _window(ours, LATE) / _window(ours, EARLY)
    rows[-1].note = "; ".join([f"step ~1,000 / step ~10: {growth:.2f}x (target <= 1.10)"] + notes)
    return rows


# ---------------------------------------------------------------- sampling

GPT_VOCAB, GPT_CONTEXT, GPT_LAYERS, GPT_HEADS, GPT_DIM = 65, 128, 2, 4, 64
SAMPLE_TOKENS = 100


def _gpt(m):
    """A small pre-norm GPT for `m`, built from m.nn modules and F.scaled_dot_product_attention."""
    nn, F = m.nn, m.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(GPT_DIM), nn.LayerNorm(GPT_DIM)
            self.qkv, self.proj = nn.Linear(GPT_DIM, 3 * GPT_DIM), nn.Linear(GPT_DIM, GPT_DIM)
            self.mlp = nn.Sequential(nn.Linear(GPT_DIM, 4 * GPT_DIM), nn.GELU(), nn.Linear(4 * GPT_DIM, GPT_DIM))

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
            q, k, v = (z.view(b, t, GPT_HEADS, c // GPT_HEADS).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(GPT_VOCAB, GPT_DIM), nn.Embedding(GPT_CONTEXT, GPT_DIM)
            self.blocks = nn.Sequential(*[Block() for _ in range(GPT_LAYERS)])
            self.ln, self.head = nn.LayerNorm(GPT_DIM), nn.Linear(GPT_DIM, GPT_VOCAB)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(m.arange(idx.shape[1]))
            return self.head(self.ln(self.blocks(x)))

    m.manual_seed(0)
    return GPT().eval()


def _sample(m):
    """Greedy decoding of SAMPLE_TOKENS tokens from a fresh model for `m`, as a function of no
    arguments returning the tokens."""
    model = _gpt(m)

    def run():
        tokens = [0]
        with m.no_grad():
            for _ in range(SAMPLE_TOKENS):
                logits = model(m.tensor([tokens[-GPT_CONTEXT:]]))
                tokens.append(logits[0, -1].argmax().item())
        return tokens
    return run


def sampling_rows() -> list:
    import fusegrad.nn  # noqa: F401
    run = _sample(fusegrad)
    before = fusegrad.program_cache_info()
    start = time.perf_counter()
    run()                                   # first run: a program per prefix length
    first = time.perf_counter() - start
    first_note = f"first run {first:.2f} s ({_programs(before, 1)})"
    t, per_run = _timed_with_programs(run, repeat=5, warmup=0)
    peers: dict = {}
    notes: list = []
    time_peers(peers, {"torch": _sample}, repeat=5, notes=notes)
    note = f"{t / SAMPLE_TOKENS * 1e3:.2f} ms/token"
    return [Row(f"GPT greedy sampling, {SAMPLE_TOKENS} tokens (2 layers, d64, 4 heads), no_grad, eager", t, peers,
                note="; ".join([note, first_note, "then " + per_run] + notes))]


GROUPS = {"linreg": linreg_rows, "mlp": mlp_rows, "fixed": fixed_cost_rows, "init": init_rows,
          "recurrent": recurrent_rows, "drift": drift_rows, "sampling": sampling_rows}


def _groups(argv: list) -> list:
    """The row groups named by --only (all of them by default), in GROUPS' order."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(GROUPS), default=list(GROUPS),
                        help="run only these groups of rows")
    chosen = parser.parse_args(argv).only
    return [rows for name, rows in GROUPS.items() if name in chosen]


if __name__ == "__main__":
    groups = _groups(sys.argv[1:])
    print(machine())
    print(table([row for rows in groups for row in rows()]))

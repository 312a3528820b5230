"""A GPT-style character-level language model, trained with a compiled step.

The text is Python's own documentation: the help topics that `pydoc` shows (`help("if")`),
which ship with every Python as `pydoc_data.topics` (about 460 kB of English prose and code
samples), so nothing is downloaded. The last 10 % is the validation text.

The model is a small decoder: token and position embeddings, pre-LayerNorm blocks of causal
multi-head self-attention (written out: one q/k/v projection, heads by view + transpose,
`F.scaled_dot_product_attention(..., is_causal=True)`) and a GELU MLP, a final LayerNorm and
a linear head. AdamW with a cosine learning-rate schedule and gradient clipping; the whole
step (forward, cross-entropy, backward, clipping, AdamW update) is one `@fusegrad.compile`
function. The scheduler changes the learning rate outside it at every step: the rate is read
at every replay, so the step is traced once, not once per rate.

Prints per epoch (a fixed number of steps) the training loss, the validation loss and the time
per step; then the unigram entropy of the text (the loss of a model that knows only the
characters' frequencies) and a sample generated with temperature; saves the curves as
char_transformer.png.

Run: python examples/char_transformer.py [--quick]
(--quick, or CHAR_TRANSFORMER_QUICK=1: fewer, shorter epochs; what the end-to-end test runs)
"""
import argparse
import os
import time
from pydoc_data.topics import topics

import numpy as np

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
import fusegrad.optim as optim

parser = argparse.ArgumentParser(description="character-level transformer on Python's help topics")
parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("CHAR_TRANSFORMER_QUICK")),
                    help="fewer, shorter epochs (the end-to-end test)")
args = parser.parse_args()

if args.quick:       # a smaller model for fewer steps: about a minute, most of it compiling
    LAYERS, D_MODEL, HEADS, CONTEXT, BATCH, EPOCHS, STEPS_PER_EPOCH, VAL_BATCHES = 2, 64, 4, 32, 32, 4, 40, 2
else:
    LAYERS, D_MODEL, HEADS, CONTEXT, BATCH, EPOCHS, STEPS_PER_EPOCH, VAL_BATCHES = 2, 96, 4, 48, 32, 8, 50, 8
LR, WARMUP = 4e-3, 30

# ---------------------------------------------------------------- the text

text = "".join(topics[key] for key in sorted(topics))
chars = sorted(set(text))
index_of = {c: i for i, c in enumerate(chars)}
data = np.array([index_of[c] for c in text], dtype=np.int64)
split = int(0.9 * len(data))
train_data, val_data = data[:split], data[split:]
VOCAB = len(chars)

counts = np.bincount(data, minlength=VOCAB)
freq = counts[counts > 0] / len(data)
unigram_entropy = float(-(freq * np.log(freq)).sum())        # nats per character

rng = np.random.default_rng(0)


def windows(source: np.ndarray, starts: np.ndarray):
    """Inputs and next-character targets for windows of CONTEXT characters starting at `starts`."""
    idx = starts[:, None] + np.arange(CONTEXT + 1)[None, :]
    chunk = source[idx]
    return torch.from_numpy(chunk[:, :-1].copy()), torch.from_numpy(chunk[:, 1:].copy())


val_batches = [windows(val_data, s) for s in
               np.random.default_rng(1).integers(0, len(val_data) - CONTEXT - 1, (VAL_BATCHES, 4 * BATCH))]

# ---------------------------------------------------------------- the model


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x)
        # one projection, sliced into q, k, v; each [B, heads, T, d / heads]
        q, k, v = (qkv[:, :, i * d:(i + 1) * d].view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for i in range(3))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, d_model: int, heads: int, layers: int, context: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.Sequential(*[Block(d_model, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        return self.head(self.ln(self.blocks(x)))


torch.manual_seed(0)
model = CharTransformer(VOCAB, D_MODEL, HEADS, LAYERS, CONTEXT)
optimizer = optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99), weight_decay=0.01)
total_steps = EPOCHS * STEPS_PER_EPOCH
# linear warm-up, then cosine annealing to LR / 20
scheduler = optim.lr_scheduler.SequentialLR(optimizer, [
    optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=WARMUP),
    optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - WARMUP, eta_min=LR / 20)],
    milestones=[WARMUP])


@torch.compile
def train_step(x, y):
    optimizer.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, VOCAB), y.view(-1))
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss


@torch.compile
def eval_loss(x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1))


@torch.compile
def next_logits(idx):
    with torch.no_grad():
        return model(idx)


def validation_loss() -> float:
    model.eval()
    loss = float(np.mean([eval_loss(x, y).item() for x, y in val_batches]))
    model.train()
    return loss


def generate(prompt: str, length: int, temperature: float = 0.8, seed: int = 0) -> str:
    """Sample `length` characters after `prompt`. The model always sees CONTEXT positions (one
    compiled signature): the known characters, then padding to the right, which the causal
    mask keeps from the position whose logits are read."""
    sampler = np.random.default_rng(seed)
    out = [index_of[c] for c in prompt]
    model.eval()
    for _ in range(length):
        window = out[-CONTEXT:]
        idx = np.zeros((1, CONTEXT), dtype=np.int64)
        idx[0, :len(window)] = window
        logits = next_logits(torch.from_numpy(idx))[0, len(window) - 1]
        probs = F.softmax(logits / temperature, dim=-1).numpy().astype(np.float64)
        out.append(int(sampler.choice(VOCAB, p=probs / probs.sum())))
    model.train()
    return "".join(chars[i] for i in out)


print(f"text: pydoc_data.topics, {len(text):,} characters, {VOCAB} distinct; "
      f"{len(train_data):,} for training, {len(val_data):,} for validation")
print(f"model: {LAYERS} layers, d_model {D_MODEL}, {HEADS} heads, context {CONTEXT}, "
      f"{sum(p.numel() for p in model.parameters()):,} parameters; batch {BATCH}, "
      f"{EPOCHS} epochs of {STEPS_PER_EPOCH} steps")
train_losses, val_losses, step_times, lrs = [], [], [], []
for epoch in range(EPOCHS):
    epoch_losses, epoch_times = [], []
    for _ in range(STEPS_PER_EPOCH):
        x, y = windows(train_data, rng.integers(0, len(train_data) - CONTEXT - 1, BATCH))
        t = time.perf_counter()
        loss = train_step(x, y)
        epoch_times.append(time.perf_counter() - t)
        epoch_losses.append(loss)
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    train_losses.extend(v.item() for v in epoch_losses)
    step_times.extend(epoch_times)
    val_losses.append(validation_loss())
    print(f"epoch {epoch + 1:2d}  train loss {np.mean(train_losses[-STEPS_PER_EPOCH:]):.4f}  "
          f"validation loss {val_losses[-1]:.4f}  {np.median(epoch_times) * 1e3:.1f} ms/step")

replayed = step_times[3:]              # the first calls trace and compile
print(f"unigram entropy of the text: {unigram_entropy:.4f} nats/char")
print(f"validation loss: {val_losses[-1]:.4f} nats/char "
      f"({unigram_entropy - val_losses[-1]:.4f} below the unigram entropy)")
print(f"time per step: {np.median(replayed) * 1e3:.1f} ms median over {len(replayed)} replayed steps "
      f"(first call, trace + compile: {step_times[0]:.1f} s); "
      f"{train_step.stats['traces']} traces, {train_step.stats['replays']} replays")
sample = generate("The ", 200 if args.quick else 400)
print("sample (temperature 0.8):")
print("-" * 60)
print(sample)
print("-" * 60)

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: skipped the plot")
else:
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(train_losses, linewidth=0.6, alpha=0.7, label="training (per step)")
    ax_loss.plot([(e + 1) * STEPS_PER_EPOCH for e in range(EPOCHS)], val_losses, marker="o", label="validation")
    ax_loss.axhline(unigram_entropy, color="gray", linestyle="--", label="unigram entropy")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("cross-entropy (nats/char)")
    ax_loss.legend()
    ax_lr.plot(lrs)
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.suptitle(f"character transformer on pydoc topics (validation {val_losses[-1]:.3f} nats/char, "
                 f"unigram {unigram_entropy:.3f})")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "char_transformer.png")
    fig.savefig(path, dpi=100)
    print(f"curves saved to {path}")

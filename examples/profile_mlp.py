"""Profiling a compiled training step: where the time of each replay goes, kernel by kernel.

The model is examples/compiled_training.py's: an MLP on scikit-learn's digits
(Linear(64,128)-ReLU-Linear(128,10)), cross-entropy, Adam, batches of 64, the whole step under
`@fusegrad.compile`. After a few warm-up steps (the first one traces and compiles), one epoch
runs under `fusegrad.profiler.profile()`, which times every kernel of every native call. The
table shows, per kernel: the ops it fuses, calls, total and mean time, the bytes it moves
and the FLOPs it does per call, the achieved GB/s and GFLOP/s, and the fraction of this
machine's roofline for that work (the roofline is measured once, about a second, and cached:
`python -m fusegrad.roofline` prints it). The trace opens in https://ui.perfetto.dev or
chrome://tracing.

Run: python examples/profile_mlp.py [--sort cpu_time_total] [--rows 15] [--trace PATH] [--picture PATH]
"""
import argparse
import os
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.optim as optim
import fusegrad.profiler
import fusegrad.viz

BATCH = 64

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--sort", default="cpu_time_total", help="sort key: cpu_time_total, count, mean, bytes, flops, "
                                                              "roofline, ...")
parser.add_argument("--rows", type=int, default=15, help="rows of the table (-1: all)")
parser.add_argument("--trace", default=os.path.join(tempfile.gettempdir(), "profile_mlp.json"),
                    help="where to write the Chrome trace (default: profile_mlp.json in the temp folder)")
parser.add_argument("--picture", default=os.path.join(tempfile.gettempdir(), "profile_mlp.svg"),
                    help="where to draw the kernel graph, coloured by roofline fraction (needs Graphviz's dot; "
                         "default: profile_mlp.svg in the temp folder)")
args = parser.parse_args()

digits = load_digits()
x_all = (digits.data / 16.0).astype(np.float32)             # 1797 images of 8x8 pixels
y_all = digits.target

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
optimizer = optim.Adam(model.parameters(), lr=1e-2)
criterion = nn.CrossEntropyLoss()


@torch.compile
def train_step(x, y):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


rng = np.random.default_rng(0)


def epoch() -> list:
    """One pass over the data in whole batches (one signature); the losses, as tensors."""
    order = rng.permutation(len(x_all))
    losses = []
    for start in range(0, len(order) - BATCH + 1, BATCH):
        idx = order[start:start + BATCH]
        losses.append(train_step(torch.from_numpy(x_all[idx]), torch.from_numpy(y_all[idx])))
    return losses


epoch()                                            # traces, compiles and warms up
with fusegrad.profiler.profile() as prof:
    t = time.perf_counter()
    losses = epoch()
    wall = time.perf_counter() - t
print(f"one epoch: {len(losses)} steps in {wall * 1e3:.1f} ms ({wall / len(losses) * 1e6:.0f} us per step, "
      f"kernels {prof.kernel_time_ns / len(losses) / 1e3:.0f} us of it); loss {losses[-1].item():.4f}\n")
print(prof.key_averages().table(sort_by=args.sort, row_limit=args.rows))
prof.export_chrome_trace(args.trace)
print(f"\nChrome trace of {len(prof.events())} kernel runs written to {args.trace} "
      "(open it in https://ui.perfetto.dev or chrome://tracing)")

x, y = torch.from_numpy(x_all[:BATCH]), torch.from_numpy(y_all[:BATCH])
try:
    fusegrad.viz.render(train_step.lower(x, y), args.picture, profile=prof)
    print(f"kernel graph, coloured by roofline fraction, drawn to {args.picture}")
except fusegrad.viz.GraphvizNotFoundError as e:
    print(f"skipped the picture: {e}")

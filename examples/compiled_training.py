"""A compiled training step: an MLP on scikit-learn's bundled digits, with Adam.

The whole step (forward pass, cross-entropy, backward pass, Adam update, zeroing the
gradients) is one Python function under `@fusegrad.compile`. Its first calls trace it into one
graph and compile it; every later call is one call into native code that updates the model's
parameters and Adam's moments in place. The code is what you would write for PyTorch.

Prints a line per epoch, the test accuracy and the time per step; saves the loss curve as
compiled_training.png. To see what the compiler made of the step, run it with
    FUSEGRAD_DUMP=graph,kernels python examples/compiled_training.py
(stages: graph, passes, kernels, llvm, or all; FUSEGRAD_DUMP_DIR=dir writes them as files).

The batches come from a `DataLoader` (shuffled by fusegrad's generator, so `manual_seed`
fixes the order); at the end the model, the optimizer, the epoch and the random state are
saved as a checkpoint in PyTorch's format, and `--resume` continues training from it.

Run: python examples/compiled_training.py
     python examples/compiled_training.py --resume --epochs 5
"""
import argparse
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.optim as optim
from fusegrad.utils.data import DataLoader, TensorDataset

HERE = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30, help="epochs to train (after the checkpoint's, with --resume)")
parser.add_argument("--checkpoint", default=os.path.join(HERE, "compiled_training.pt"), help="checkpoint file")
parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
args = parser.parse_args()
BATCH = 64

digits = load_digits()
x_all = (digits.data / 16.0).astype(np.float32)            # 1797 images of 8x8 pixels
x_train, x_test, y_train, y_test = train_test_split(x_all, digits.target, test_size=0.25, random_state=0)

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


@torch.compile
def predict(x):
    with torch.no_grad():
        return model(x).argmax(dim=1)


train_set = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, drop_last=True)   # whole batches: one signature

first_epoch = 0
if args.resume:
    checkpoint = torch.load(args.checkpoint)          # weights_only=True: tensors and plain data only
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"])
    first_epoch = checkpoint["epoch"]
    print(f"resumed from {args.checkpoint} after epoch {first_epoch} (loss {checkpoint['loss']:.4f})")

losses, step_times = [], []
last_epoch = first_epoch + args.epochs - 1
for epoch in range(first_epoch, last_epoch + 1):
    epoch_losses = []
    for x, y in loader:
        t = time.perf_counter()
        loss = train_step(x, y)
        step_times.append(time.perf_counter() - t)
        epoch_losses.append(loss)
    epoch_loss = float(np.mean([v.item() for v in epoch_losses]))
    losses.extend(v.item() for v in epoch_losses)
    if epoch % 5 == 4 or epoch in (first_epoch, last_epoch):
        print(f"epoch {epoch + 1:2d}  loss {epoch_loss:.4f}")

accuracy = (predict(torch.from_numpy(x_test)).numpy() == y_test).mean()
replayed = step_times[3:]              # the first calls trace and compile
print(f"test accuracy: {accuracy:.1%}")
print(f"time per step: {np.median(replayed) * 1e6:.0f} us median over {len(replayed)} replayed steps "
      f"(first call, trace + compile: {step_times[0] * 1e3:.0f} ms); "
      f"{train_step.stats['traces']} traces, {train_step.stats['replays']} replays")

torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(),
            "epoch": last_epoch + 1, "loss": epoch_loss}, args.checkpoint)
print(f"checkpoint saved to {args.checkpoint} (epoch {last_epoch + 1})")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: skipped the plot")
else:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(losses, linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_yscale("log")
    ax.set_title(f"digits MLP, compiled Adam step (test accuracy {accuracy:.1%})")
    path = os.path.join(HERE, "compiled_training.png")
    fig.savefig(path, dpi=100)
    print(f"loss curve saved to {path}")

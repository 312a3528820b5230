"""A LeNet-style CNN on scikit-learn's bundled digits, trained with a compiled step.

Two convolution blocks (Conv2d, BatchNorm2d, ReLU, MaxPool2d) and a small classifier, trained
with Adam under `@fusegrad.compile`: forward pass, cross-entropy, backward pass (the
convolutions' data and weight gradients included), Adam update and BatchNorm's running
statistics are one traced graph, replayed as native code on every later call. Evaluation runs
the same model in `eval()` mode (BatchNorm then uses its running statistics), through its own
compiled function; switching modes never runs a stale trace (the mode is guarded).

Prints the loss and test accuracy per epoch and the time per step; saves the curves as
cnn_digits.png.

Run: python examples/cnn_digits.py
"""
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.optim as optim

EPOCHS, BATCH = 12, 64

digits = load_digits()
images = (digits.images / 16.0).astype(np.float32)[:, None]      # 1797 images, 1x8x8
x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.25, random_state=0)

torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # 16x4x4
    nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 32x2x2
    nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
optimizer = optim.Adam(model.parameters(), lr=3e-3)
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


def test_accuracy() -> float:
    model.eval()
    correct = (predict(torch.from_numpy(x_test)).numpy() == y_test).mean()
    model.train()
    return float(correct)


print(model)
rng = np.random.default_rng(0)
losses, accuracies, step_times = [], [], []
for epoch in range(EPOCHS):
    order = rng.permutation(len(x_train))
    epoch_losses = []
    for start in range(0, len(order) - BATCH + 1, BATCH):     # whole batches: one signature
        idx = order[start:start + BATCH]
        x, y = torch.from_numpy(x_train[idx]), torch.from_numpy(y_train[idx])
        t = time.perf_counter()
        loss = train_step(x, y)
        step_times.append(time.perf_counter() - t)
        epoch_losses.append(loss)
    losses.extend(v.item() for v in epoch_losses)
    accuracies.append(test_accuracy())
    print(f"epoch {epoch + 1:2d}  loss {np.mean(losses[-len(epoch_losses):]):.4f}  "
          f"test accuracy {accuracies[-1]:.1%}")

replayed = step_times[3:]              # the first calls trace and compile
print(f"test accuracy: {accuracies[-1]:.1%}")
print(f"time per step: {np.median(replayed) * 1e6:.0f} us median over {len(replayed)} replayed steps "
      f"(first call, trace + compile: {step_times[0] * 1e3:.0f} ms); "
      f"{train_step.stats['traces']} traces, {train_step.stats['replays']} replays")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: skipped the plot")
else:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(losses, linewidth=0.8)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.set_yscale("log")
    ax_acc.plot(range(1, EPOCHS + 1), accuracies, marker="o")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy")
    fig.suptitle(f"digits CNN, compiled Adam step (test accuracy {accuracies[-1]:.1%})")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cnn_digits.png")
    fig.savefig(path, dpi=100)
    print(f"curves saved to {path}")

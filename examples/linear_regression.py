"""Linear regression the PyTorch way: nn.Linear(1, 1), MSELoss and SGD, in a plain eager loop.

100 noisy points on the line y = 2.5x + 1; 5,000 epochs of full-batch gradient descent. The
loss is printed every 500 epochs, then the fitted slope and intercept (next to numpy's
least-squares fit); the points and the fitted line are plotted when matplotlib is installed.

Each epoch is one cached program: backward() leaves the gradients to the next realization,
so SGD's step computes forward, backward and update together. After the first epoch nothing
compiles and the loop's memory stays flat.

Run: python examples/linear_regression.py
"""
import os

import numpy as np

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.optim as optim

torch.manual_seed(1)
x = torch.rand(100, 1) * 10
y = 2.5 * x + 1 + torch.randn(100, 1)

model = nn.Linear(1, 1)
criterion = nn.MSELoss()
optimizer = optim.SGD(model.parameters(), lr=0.01)

for epoch in range(5000):
    loss = criterion(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if (epoch + 1) % 500 == 0:
        print(f"epoch {epoch + 1:4d}  loss {loss.item():.4f}")

slope, intercept = model.weight.item(), model.bias.item()
ls_slope, ls_intercept = np.polyfit(x.numpy()[:, 0], y.numpy()[:, 0], 1)
print(f"fitted:        y = {slope:.4f} x + {intercept:.4f}")
print(f"least squares: y = {ls_slope:.4f} x + {ls_intercept:.4f}   (data drawn from y = 2.5 x + 1)")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: skipped the plot")
else:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(x.numpy(), y.numpy(), s=10, label="data")
    line = np.array([0.0, 10.0])
    ax.plot(line, slope * line + intercept, color="red", label=f"fit: y = {slope:.2f} x + {intercept:.2f}")
    ax.legend()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "linear_regression.png")
    fig.savefig(path, dpi=100)
    print(f"plot saved to {path}")

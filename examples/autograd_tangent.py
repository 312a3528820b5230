"""The derivative of a cubic at a point, by autograd, and the tangent line there.

f(x) = x**3 + 3x**2 - 5x + 4. `backward()` gives f'(x0) at x0 = 1.5; the tangent line
y = f(x0) + f'(x0)(x - x0) is drawn with the curve when matplotlib is installed.

Run: python examples/autograd_tangent.py
"""
import os

import fusegrad as torch


def f(x):
    return x ** 3 + 3 * x ** 2 - 5 * x + 4


x0 = torch.tensor(1.5, requires_grad=True)
y0 = f(x0)
y0.backward()
slope = x0.grad.item()
print(f"f(x) = x**3 + 3x**2 - 5x + 4 at x0 = {x0.item()}")
print(f"f(x0)  = {y0.item():.4f}")
print(f"f'(x0) = {slope:.4f} by autograd (3x**2 + 6x - 5 by hand: {3 * 1.5 ** 2 + 6 * 1.5 - 5:.4f})")
print(f"tangent: y = {slope:.4f} (x - {x0.item()}) + {y0.item():.4f}")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: skipped the plot")
else:
    xs = torch.linspace(-4.0, 3.0, 200)
    with torch.no_grad():
        curve = f(xs)
        tangent = y0.detach() + slope * (xs - x0.detach())
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs.numpy(), curve.numpy(), label="f(x)")
    ax.plot(xs.numpy(), tangent.numpy(), "--", label=f"tangent at x = {x0.item()}")
    ax.scatter([x0.item()], [y0.item()], color="black", zorder=3)
    ax.set_ylim(-10, 40)
    ax.legend()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "autograd_tangent.png")
    fig.savefig(path, dpi=100)
    print(f"plot saved to {path}")

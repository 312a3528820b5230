"""fusegrad in one page: PyTorch-style code, compiled to fused kernels.

Run: python examples/quickstart.py
"""
import numpy as np

import fusegrad as torch

# Lazy tensors: nothing is computed until a value is asked for.
x = torch.rand(1_000_000)
w = torch.rand(1_000_000)
b = torch.rand(1_000_000)
y = torch.sigmoid(x * w + b) * 2 - 1          # builds IR nodes only
print("y[:4] =", y[:4])                        # realizes: one fused kernel
program = torch.program_of(y)
print(f"compiled into {program.num_kernels} kernel(s); the fused loop:")
print(program.text("kernels"))
ref = 2 / (1 + np.exp(-(x.numpy() * w.numpy() + b.numpy()))) - 1
print("max |fusegrad - numpy| =", float(np.abs(y.numpy() - ref).max()))

# Autograd: gradients are new nodes in the same graph, compiled with the forward pass.
a = torch.tensor(2.0, requires_grad=True)
f = a ** 3 + 3 * a ** 2 - 5 * a + 4
f.backward()
print(f"f(2) = {f.item()}, f'(2) = {a.grad.item()}  (3*4 + 6*2 - 5 = 19)")

# The IR of a small computation, as every pass sees it.
p = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
t = torch.tensor([[1.5, 2.0], [2.0, 5.0]])
loss = ((p - t) ** 2).mean()
print("mse =", loss.item())
print(torch.program_of(loss).text("graph"))

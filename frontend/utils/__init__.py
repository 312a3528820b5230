"""`fusegrad.utils`: what a training program needs around its step, in PyTorch's shape.

- `data`: datasets, samplers and the DataLoader (worker processes included);
- `safetensors`: state_dicts in the safetensors format that model hubs use;
- `dlpack`: zero-copy exchange with numpy, PyTorch and other DLPack libraries.
Checkpoints in PyTorch's own format are `fusegrad.save` / `fusegrad.load` (serialization.py).
"""
from __future__ import annotations

from . import data, dlpack, safetensors

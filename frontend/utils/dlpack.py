"""`fusegrad.utils.dlpack`: zero-copy exchange of CPU tensors with numpy, PyTorch, JAX and other
DLPack libraries, as `torch.utils.dlpack` has it.

`from_dlpack(x)` makes a tensor over the memory another library's array `x` exports (through
`x.__dlpack__()`, or a capsule from a legacy `to_dlpack`); `to_dlpack(t)` gives the legacy capsule
of a fusegrad tensor (`Tensor.__dlpack__`, tensor_base.py, is what new-style consumers call).
Exports are numpy's own capsules (a bfloat16 one retagged); imports are parsed by conversion.py
(`dlpack_import`), legacy and DLPack 1.x capsules alike, bfloat16 included.
"""
from __future__ import annotations

import enum
from typing import Any

from ..conversion import dlpack_array
from ..creation import READONLY_DLPACK_WARNING, sharing_memory
from ..device import as_device
from ..tensor import Tensor

__all__ = ["DLDeviceType", "from_dlpack", "to_dlpack"]


class DLDeviceType(enum.IntEnum):
    """DLPack's device types (the first item of `__dlpack_device__()`)."""
    kDLCPU = 1
    kDLCUDA = 2
    kDLCUDAHost = 3
    kDLOpenCL = 4
    kDLVulkan = 7
    kDLMetal = 8
    kDLVPI = 9
    kDLROCM = 10
    kDLROCMHost = 11
    kDLExtDev = 12
    kDLCUDAManaged = 13
    kDLOneAPI = 14
    kDLWebGPU = 15
    kDLHexagon = 16
    kDLMAIA = 17


def from_dlpack(ext_tensor: Any, *, device: Any = None, copy: bool | None = None) -> Tensor:
    """A tensor sharing the memory of `ext_tensor`: an object with `__dlpack__` (a numpy array, a
    PyTorch tensor, a fusegrad tensor ...) or a DLPack capsule. Writes through either side are
    seen by the other. `copy=True` copies; `device` other than the CPU copies to it (not with
    `copy=False`). Only host memory is imported; dtypes are those fusegrad has (bfloat16 too)."""
    target = as_device(device) if device is not None else None
    if target is not None and target.type != "cpu" and copy is False:
        raise ValueError(f"cannot move DLPack tensor to {target} without copying. Set copy=None or copy=True.")
    if isinstance(ext_tensor, Tensor):
        t = _alias(ext_tensor)
    else:
        if not hasattr(ext_tensor, "__dlpack__") and (device is not None or copy is not None):
            raise AssertionError("device and copy kwargs not supported when ext_tensor is already a DLPack capsule.")
        a, _ = dlpack_array(ext_tensor)
        if any(s < 0 for s in a.strides):
            raise BufferError(f"fusegrad cannot share memory with negative strides (the DLPack data has strides "
                              f"{tuple(s // a.itemsize for s in a.strides)}); pass a copy, or copy=True")
        t = sharing_memory(a, READONLY_DLPACK_WARNING)
    if copy:
        t = t.clone()
    if target is not None and target.type != "cpu":
        t = t.to(target)
    return t


def _alias(t: Tensor) -> Tensor:
    """Another fusegrad tensor over `t`'s storage (as DLPack between two PyTorch tensors: the same
    memory, without the autograd history), with `__dlpack__`'s errors."""
    if t.requires_grad:
        raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
    return t.detach()


def to_dlpack(tensor: Tensor) -> Any:
    """The legacy DLPack capsule ("dltensor") of `tensor`'s memory, for `from_dlpack` of another
    library; like PyTorch's, it exports a tensor that requires grad (its data, detached)."""
    return tensor.detach().__dlpack__()

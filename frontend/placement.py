"""Device placement: where values live, for every op, realization and compiled function.

- a CUDA tensor's Storage has `device` cuda:0 and a runtime `DeviceBuffer` as its buffer
  (`upload` makes one; tensor.py's `.to()` copies values between host and device);
- a new pending value is on the device of the values it is computed from (`value_device`);
  ops combining tensors check that they agree (`check_devices`), as PyTorch does;
- realization compiles for target "cuda" the values that live there (`compile_options`,
  `by_device`, `bindable`);
- a `@compile`d function runs on the device of its tensors (`program_device`): its trace
  inputs carry their arguments' devices (`place`), and a variant on a GPU compiles for "cuda"
  (`target_options`); compile/devices.py holds the rest of that glue.
All of this costs nothing until the first tensor moves to a GPU (`IN_USE`). This module is
part of the lazy layer: it knows storages, nodes and buffers, never `Tensor`.
"""
from __future__ import annotations

import weakref

import numpy as np

from .device import CPU, as_device, device
from .runtime import cuda as _rt
from .storage import buffer_of

IN_USE = [False]              # a tensor has moved to a GPU in this process
CUDA0 = device("cuda", 0)
_VALUE_DEVICE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # node -> device (None: CPU)


def runtime():
    """The CUDA runtime module (runtime/cuda.py; it imports pycuda on first use only)."""
    return _rt


def lazy_init():
    """The CUDA runtime, once it is known to work; else PyTorch's kind of error."""
    try:
        import pycuda.driver  # noqa: F401
    except ImportError:
        raise AssertionError("fusegrad was not set up with CUDA enabled: pycuda is not installed "
                             "(pip install pycuda, which builds against an installed CUDA toolkit)") from None
    if not _rt.available():
        raise RuntimeError("fusegrad: no CUDA GPU is available (pycuda found no device or no NVIDIA driver)")
    return _rt


def device_index(d) -> int:
    """The index of CUDA device `d` (None, an int, a device or its name); only 0 exists."""
    index = 0 if d is None else d if isinstance(d, int) else (as_device(d).index or 0)
    if index != 0:
        raise RuntimeError(f"fusegrad runs on cuda:0 only, not cuda:{index}")
    return index


def upload(host: np.ndarray):
    """A device buffer on cuda:0 holding a copy of host array `host`; marks the GPU in use."""
    rt = lazy_init()
    buffer = rt.DeviceBuffer.from_numpy(np.ascontiguousarray(host))
    IN_USE[0] = True
    return buffer


def host_array(buffer) -> np.ndarray:
    """A buffer's values in host memory: a numpy buffer itself, a device buffer copied."""
    return buffer if isinstance(buffer, np.ndarray) else buffer.to_numpy()


# ---------------------------------------------------------------- devices of values

def value_device(node):
    """The device of a new value: cuda:0 if any value it is computed from lives there, else
    None (the CPU). Values made while a GPU is in use are remembered, so the walk stops at
    the inputs of each new node."""
    if not IN_USE[0]:
        return None
    if node in _VALUE_DEVICE:            # placed (a trace input, an iota made for a device)
        return _VALUE_DEVICE[node]
    found, stack, seen = None, [node], set()
    while stack and found is None:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n is not node and n in _VALUE_DEVICE:
            found = _VALUE_DEVICE[n]
        else:
            buf = buffer_of(n)
            if buf is not None:
                found = None if isinstance(buf, np.ndarray) else CUDA0
            else:
                stack.extend(n.inputs)
    _VALUE_DEVICE[node] = found
    return found


def check_devices(tensors) -> None:
    """PyTorch's error for an op on tensors of different devices (CPU scalars may join CUDA
    tensors)."""
    if not IN_USE[0]:
        return
    devices = {str(t._storage.device or CPU): t for t in tensors}
    if len(devices) > 1:
        if "cpu" in devices and devices["cpu"].ndim == 0:
            del devices["cpu"]
        if len(devices) > 1:
            names = sorted(devices, key=lambda d: d == "cpu")
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"{names[0]} and {names[1]}!")


# ---------------------------------------------------------------- realization

def compile_options(storages) -> dict:
    """compiler.compile's target options for computing `storages` (all on one device)."""
    if IN_USE[0] and storages[0].device is not None:
        return target_options(storages[0].device)
    return {}


def target_options(dev) -> dict:
    """compiler.compile's target options for a program on device `dev` (None: the CPU)."""
    return {"target": "cuda", "arch": _rt.arch()} if dev is not None else {}


def by_device(storages) -> list:
    """`storages` in groups of one device each (one program per device)."""
    if not IN_USE[0]:
        return [storages]
    groups: dict = {}
    for s in storages:
        groups.setdefault(str(s.device or CPU), []).append(s)
    return list(groups.values())


def bindable(buffer, target: str):
    """A leaf's buffer as the program for `target` takes it: CPU values that join a CUDA
    program (scalars) are copied to the device."""
    if target == "cuda" and isinstance(buffer, np.ndarray):
        return _rt.DeviceBuffer.from_numpy(buffer)
    return buffer


def copy_into(dst, src) -> None:
    """dst[...] = src for two buffers of one device."""
    if isinstance(dst, np.ndarray):
        np.copyto(dst, src)
    else:
        dst.copy_from(src)


def device_of(buffer):
    """The device a buffer is in: None (the CPU) for a numpy array, else cuda:0."""
    return None if isinstance(buffer, np.ndarray) else CUDA0


def place(node, dev) -> None:
    """`node` (a trace input, or a constant or iota made for a device) stands for a value on
    device `dev`: values computed from it are there too."""
    if dev is not None:
        _VALUE_DEVICE[node] = dev


def program_device(items):
    """The one device a compiled function runs on, from `items`: (what, device, 0-d, may be
    a CPU scalar) for its inputs, captured state and results. It is cuda:0 if anything is
    there; then CPU scalars may join (as they join CUDA tensors in ops) where allowed.
    Returns (device, None), or (None, (what is on the CPU, what is on cuda:0)) when they mix."""
    on_gpu = next((what for what, dev, _, _ in items if dev is not None), None)
    if on_gpu is None:
        return None, None
    for what, dev, scalar, scalar_ok in items:
        if dev is None and not (scalar and scalar_ok):
            return None, (what, on_gpu)
    return CUDA0, None

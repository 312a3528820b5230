"""`fusegrad.cuda`: torch.cuda's queries, and how tensors live on a GPU.

The queries (`is_available`, `device_count`, `get_device_name`, `current_device`,
`synchronize`) ask the CUDA runtime (runtime/cuda.py), which imports pycuda on first use:
importing fusegrad never does. Without pycuda or a GPU, `is_available()` is False and
moving a tensor to "cuda" raises a clear error.

Device placement, for the rest of the frontend:
- a CUDA tensor's Storage has `device` cuda:0 and a runtime `DeviceBuffer` as its buffer;
  `move` copies a tensor's value between host and device (`.to()`, `.cuda()`, `.cpu()`);
- a new pending value is on the device of the values it is computed from (`value_device`);
  ops combining tensors check that they agree (`check_devices`), as PyTorch does;
- realization compiles for target "cuda" the values that live there (`compile_options`);
- a `@compile`d function runs on the device of its tensors (`program_device`): its trace
  inputs carry their arguments' devices (`place`), a variant on a GPU compiles for "cuda",
  CPU scalars it reads or updates are mirrored in device memory (`HostScalars`), and its
  results come back as tensors on the device (`device_tensor`).
All of this costs nothing until the first tensor moves to a GPU (`IN_USE`).
"""
from __future__ import annotations

import weakref

import numpy as np

from .device import CPU, as_device, device
from .storage import buffer_of

IN_USE = [False]              # a tensor has moved to a GPU in this process
CUDA0 = device("cuda", 0)
SEED_ALL: list = [None]       # the last seed given to manual_seed_all
_VALUE_DEVICE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # node -> device (None: CPU)


def _runtime():
    from .runtime import cuda as rt
    return rt


def _lazy_init():
    """The CUDA runtime, once it is known to work; else PyTorch's kind of error."""
    try:
        import pycuda.driver  # noqa: F401
    except ImportError:
        raise AssertionError("fusegrad was not set up with CUDA enabled: pycuda is not installed "
                             "(pip install pycuda, which builds against an installed CUDA toolkit)") from None
    rt = _runtime()
    if not rt.available():
        raise RuntimeError("fusegrad: no CUDA GPU is available (pycuda found no device or no NVIDIA driver)")
    return rt


# ---------------------------------------------------------------- torch.cuda

def is_available() -> bool:
    return _runtime().available()


def device_count() -> int:
    return _runtime().device_count() if is_available() else 0


def current_device() -> int:
    _lazy_init()
    return 0


def get_device_name(device=None) -> str:
    return _lazy_init().device_name(_index(device))


def synchronize(device=None) -> None:
    _index(device)
    _lazy_init().synchronize()


def manual_seed_all(seed: int) -> None:
    """Seed the random numbers of every GPU. fusegrad draws a GPU tensor's numbers from its
    one Philox stream (frontend/random.py), so with a GPU this seeds that stream as
    `fusegrad.manual_seed` does; without one it only records the seed (`SEED_ALL`), as
    PyTorch silently keeps it for when CUDA starts."""
    SEED_ALL[0] = int(seed)
    if is_available():
        from . import random
        random.manual_seed(SEED_ALL[0])


def _index(d) -> int:
    index = 0 if d is None else d if isinstance(d, int) else (as_device(d).index or 0)
    if index != 0:
        raise RuntimeError(f"fusegrad runs on cuda:0 only, not cuda:{index}")
    return index


# ---------------------------------------------------------------- moving tensors

def move(t, dest):
    """`t`'s value on device `dest`, as a new leaf (keeping requires_grad of a leaf)."""
    from .autograd.grad_mode import is_grad_enabled
    from .tensor import Tensor, leaf_node
    from .storage import Storage
    dest = as_device(dest)
    if t.requires_grad and not t.is_leaf and is_grad_enabled():
        raise RuntimeError("fusegrad: gradients do not flow through a copy between devices; move leaf "
                           "tensors (model.to(device), tensor(..., device=...)) before computing with them")
    if dest.type == "cuda":
        rt = _lazy_init()
        _index(dest)
        t._realize()
        buffer = rt.DeviceBuffer.from_numpy(np.ascontiguousarray(t._view_array()))
        IN_USE[0] = True
    else:
        from .runtime import aligned_empty
        t._realize()
        host = t._view_array()
        buffer = aligned_empty(host.shape, host.dtype)
        np.copyto(buffer, host)
    out = Tensor._new(Storage(leaf_node(buffer), buffer=buffer, device=dest if dest.type == "cuda" else None))
    if t.requires_grad:
        out.requires_grad_(True)
    return out


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
    return {"target": "cuda", "arch": _runtime().arch()} if dev is not None else {}


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
        return _runtime().DeviceBuffer.from_numpy(buffer)
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


# ---------------------------------------------------------------- compiled functions (jit.py)

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


def device_tensor(buffer):
    """A new leaf tensor holding device buffer `buffer` (a compiled function's result)."""
    from .storage import Storage
    from .tensor import Tensor, leaf_node
    return Tensor._new(Storage(leaf_node(buffer), buffer=buffer, device=CUDA0))


def input_buffer(t):
    """`t`'s value as one C-contiguous buffer on its device, to bind as a program input (a
    view is copied: on the host with numpy, on a GPU by a copy program there)."""
    t._realize()
    if t._storage.device is None:
        a = t._view_array()
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)
    if t._base is None:
        return t._storage.buffer
    from .autograd.grad_mode import no_grad
    from .shape_ops import clone
    with no_grad():
        copy = clone(t.detach())
    copy._realize()
    return copy._storage.buffer


class HostScalars:
    """The CPU side of a compiled function on a GPU: CPU scalars (0-d) among its inputs and
    captured state, which its program reads from device memory.

    A captured CPU scalar (a learning rate, Adam's step count) gets a device buffer of its
    own, copied from the host value whenever that changed (it is compared before every
    call, as the host value may be written in place). One the function updates in place is
    copied back to the host after the call, so the CPU tensor holds its new value as it
    does eagerly (that copy waits for the program to finish). A CPU scalar argument is
    copied to the device at every call.
    """

    def __init__(self, params, inputs):
        self.params = params            # (slot, storage, updated in place)
        self.mirrors = [None] * len(params)   # (host bytes, device buffer) last copied
        self.inputs = inputs            # positions of CPU scalar arguments

    def before(self, exe, inputs: list) -> list:
        """Bind the device copies of the captured scalars; the arguments, on the device."""
        from .realize import realize
        for k, (slot, s, _) in enumerate(self.params):
            if buffer_of(s.node) is not s.buffer:
                realize([s])             # updated eagerly since the last call
            value = s.buffer.tobytes()
            mirror = self.mirrors[k]
            if mirror is None or mirror[0] != value:
                buffer = _runtime().DeviceBuffer.from_numpy(s.buffer)
                self.mirrors[k] = (value, buffer)
                exe.bind(slot, buffer)
        if self.inputs:
            inputs = list(inputs)
            for i in self.inputs:
                inputs[i] = bindable(inputs[i], "cuda")
        return inputs

    def after(self) -> None:
        """Copy the new values of the scalars the program updated back to the host."""
        for k, (slot, s, updated) in enumerate(self.params):
            if updated:
                buffer = self.mirrors[k][1]
                value = buffer.to_numpy()
                np.copyto(s.buffer, value)
                self.mirrors[k] = (s.buffer.tobytes(), buffer)

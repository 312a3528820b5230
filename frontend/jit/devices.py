"""Compiled functions on a GPU: the one device a trace runs on, the buffers its arguments
bind, its results as tensors on that device, and the CPU scalars it mirrors there
(`HostScalars`). Device placement itself is the lazy layer's (placement.py).
"""
from __future__ import annotations

import numpy as np

from .. import placement as _placement
from ..autograd.grad_mode import no_grad
from ..realize import realize
from ..shape_ops import clone
from ..storage import Storage, buffer_of
from ..tensor import Tensor, leaf_node


def device_tensor(buffer):
    """A new leaf tensor holding device buffer `buffer` (a compiled function's result)."""
    return Tensor._new(Storage(leaf_node(buffer), buffer=buffer, device=_placement.CUDA0))


def input_buffer(t):
    """`t`'s value as one C-contiguous buffer on its device, to bind as a program input (a
    view is copied: on the host with numpy, on a GPU by a copy program there)."""
    t._realize()
    if t._storage.device is None:
        a = t._view_array()
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)
    if t._base is None:
        return t._storage.buffer
    with no_grad():
        copy = clone(t.detach())
    copy._realize()
    return copy._storage.buffer


def is_input(x) -> bool:
    """Whether a leaf of a call's arguments (signature.call_key) is bound as a program input:
    a tensor, or the float64 buffer of a runtime float argument."""
    return isinstance(x, (Tensor, np.ndarray))


def input_buffers(leaves, static: frozenset, names) -> list:
    out = []
    for name, arg_leaves in zip(names, leaves):
        if name in static:
            continue
        for x in arg_leaves:
            if isinstance(x, np.ndarray):
                out.append(x)                             # a runtime float's value
            elif isinstance(x, Tensor):
                s = x._storage
                holder = s.holder          # the node whose value is in s.buffer
                if x._base is None and s.buffer is not None and (
                        (holder is not None and holder() is s.node) or buffer_of(s.node) is s.buffer):
                    out.append(s.buffer)                  # a computed base tensor: its buffer as it is
                    continue
                out.append(input_buffer(x))         # a view or pending value, made contiguous
    return out


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
        for k, (slot, s, _) in enumerate(self.params):
            if buffer_of(s.node) is not s.buffer:
                realize([s])             # updated eagerly since the last call
            value = s.buffer.tobytes()
            mirror = self.mirrors[k]
            if mirror is None or mirror[0] != value:
                buffer = _placement.runtime().DeviceBuffer.from_numpy(s.buffer)
                self.mirrors[k] = (value, buffer)
                exe.bind(slot, buffer)
        if self.inputs:
            inputs = list(inputs)
            for i in self.inputs:
                inputs[i] = _placement.bindable(inputs[i], "cuda")
        return inputs

    def after(self) -> None:
        """Copy the new values of the scalars the program updated back to the host."""
        for k, (_, s, updated) in enumerate(self.params):
            if updated:
                buffer = self.mirrors[k][1]
                value = buffer.to_numpy()
                np.copyto(s.buffer, value)
                self.mirrors[k] = (s.buffer.tobytes(), buffer)

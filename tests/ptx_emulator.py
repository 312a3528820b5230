"""Runs a CUDA Program on the CPU, to check the GPU kernels' logic where there is no GPU.

The program's NVPTX LLVM IR (its "llvm" stage) is retargeted to the host: the PTX special
registers, `bar.sync` and warp shuffles become calls into ptx_emulator.c (built here with the
system C compiler), shared memory becomes ordinary globals. Each launch runs its blocks one
after another (at most `max_grid` of them, so the kernels' block-stride loops are exercised),
the threads of a block concurrently, one pthread each.

What this checks: index arithmetic, tiling, the order of passes and barriers, shuffles, the
last-block logic of split reductions, failed checks writing the error word. What it cannot
check: the GPU itself (blocks running concurrently under the GPU memory model, the PTX that
LLVM emits and ptxas assembles, pycuda, speed).

`install_emulated_device` goes one step further for frontend tests: fusegrad then sees one
CUDA device whose buffers are host memory and whose programs run here.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading

import llvmlite.binding as llvm
import numpy as np

from fusegrad.runtime.buffers import storage_dtype
from fusegrad.runtime.cuda import DeviceCalls, output_specs

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ptx_emulator.c")
_HOST_NAMES = {
    "llvm.nvvm.read.ptx.sreg.tid.x": "emu_tid", "llvm.nvvm.read.ptx.sreg.ctaid.x": "emu_ctaid",
    "llvm.nvvm.read.ptx.sreg.ntid.x": "emu_ntid", "llvm.nvvm.read.ptx.sreg.nctaid.x": "emu_nctaid",
    "llvm.nvvm.barrier0": "emu_barrier",
    "llvm.nvvm.shfl.sync.bfly.i32": "emu_shfl_i32", "llvm.nvvm.shfl.sync.bfly.f32": "emu_shfl_f32",
}
_STATE: dict = {}
# the GPU's cvt.rn.bf16.f32 (to nearest even, subnormals kept, NaN -> 0x7FFF), in IR: a host
# without AVX512-BF16 would call a library function for `fptrunc float to bfloat`
_F2BF16 = """
define internal bfloat @"emu.f2bf16"(float %x) alwaysinline {
  %bits = bitcast float %x to i32
  %upper = lshr i32 %bits, 16
  %odd = and i32 %upper, 1
  %bias = add i32 %odd, 32767
  %sum = add i32 %bits, %bias
  %rounded = lshr i32 %sum, 16
  %nan = fcmp uno float %x, %x
  %r = select i1 %nan, i32 32767, i32 %rounded
  %t = trunc i32 %r to i16
  %b = bitcast i16 %t to bfloat
  ret bfloat %b
}
"""


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def _library() -> ctypes.CDLL:
    if "lib" not in _STATE:
        with open(_SOURCE, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        path = os.path.join(tempfile.gettempdir(), f"fusegrad-ptx-emulator-{digest}.so")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}"
            subprocess.run([compiler(), "-O2", "-shared", "-fPIC", "-pthread", _SOURCE, "-o", tmp], check=True)
            os.replace(tmp, path)
        lib = ctypes.CDLL(path)
        lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        for name in set(_HOST_NAMES.values()):
            llvm.add_symbol(name, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
        _STATE["lib"] = lib
    return _STATE["lib"]


def host_ir(program) -> str:
    """The program's NVPTX IR for the host, with a `name.host(ptr args)` wrapper per launch
    that calls the kernel with the pointers in the array `args`."""
    lines = [line for line in program.stages["llvm"].splitlines()
             if not line.startswith(("target ", "!nvvm.annotations"))]
    text = "\n".join(lines).replace("ptr addrspace(3)", "ptr").replace("addrspace(3) global", "global")
    for nvvm, host in _HOST_NAMES.items():
        text = text.replace(f'"{nvvm}"', f'"{host}"')
    text = re.sub(r"fptrunc float (\S+) to bfloat", r'call bfloat @"emu.f2bf16"(float \1)', text) + _F2BF16
    for launch in program.launches:
        n = len(launch.args) + (1 if launch.scratch_bytes else 0)
        body = [f"  %g{i} = getelementptr ptr, ptr %args, i64 {i}\n  %p{i} = load ptr, ptr %g{i}" for i in range(n)]
        call = ", ".join(f"ptr %p{i}" for i in range(n))
        text += (f'\ndefine void @"{launch.function}.host"(ptr %args) {{\n' + "\n".join(body)
                 + f'\n  call void @"{launch.function}"({call})\n  ret void\n}}\n')
    return text


class EmulatedProgram:
    """A CUDA program run on the CPU: `(outputs, error word) = prog(inputs, params)` with
    numpy buffers; params are updated in place, as on the device."""

    def __init__(self, program, max_grid: int = 3):
        lib = _library()
        self.program, self.max_grid, self.lib = program, max_grid, lib
        # the host's features: half <-> float conversions (float16 buffers) are F16C instructions
        # there, library calls MCJIT cannot resolve on a baseline x86-64
        tm = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=2,
            codemodel="jitdefault")
        module = llvm.parse_assembly(host_ir(program))
        module.verify()
        pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=2))
        pb.getModulePassManager().run(module, pb)
        self.engine = llvm.create_mcjit_compiler(module, tm)
        self.engine.finalize_object()
        self.scratch = [np.zeros(max(launch.scratch_bytes, 8), np.uint8) for launch in program.launches]

    def __call__(self, inputs, params):
        p = self.program
        error = np.zeros(2, np.int64)
        arena = np.zeros(max(p.arena_bytes, 1), np.uint8)
        address = {0: error.ctypes.data}
        address.update({b.slot: arena.ctypes.data + b.offset for b in p.buffers if b.role == "temp"})
        address.update({slot: a.ctypes.data for slot, a in zip(p.inputs, inputs)})
        address.update({slot: a.ctypes.data for slot, a in zip(p.params, params)})
        outputs = {}
        for name, slot in p.outputs.items():
            b = p.buffers[slot]
            outputs[name] = _poisoned(b.shape, storage_dtype(b.dtype))
            address[slot] = outputs[name].ctypes.data
        for launch, scratch in zip(p.launches, self.scratch):
            args = [address[s] for s in launch.args] + ([scratch.ctypes.data] if launch.scratch_bytes else [])
            table = (ctypes.c_void_p * len(args))(*args)
            fn = self.engine.get_function_address(f"{launch.function}.host")
            assert self.lib.emu_launch(fn, table, min(launch.grid, self.max_grid), launch.block) == 0
        return outputs, error


def _poisoned(shape, dtype) -> np.ndarray:
    """A fresh output buffer holding garbage (NaN, or 0x5a bytes), so unwritten elements show."""
    a = np.empty(shape, dtype)
    if dtype.kind == "f":
        a.fill(np.nan)
    else:
        a.view(np.uint8).fill(0x5A)
    return a


# ---------------------------------------------------------------- an emulated CUDA device

class HostDeviceBuffer:
    """runtime.cuda.DeviceBuffer's interface over host memory, for the emulated device."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.array = np.zeros(self.shape, self.dtype)
        self.nbytes = self.array.nbytes

    @property
    def ptr(self) -> int:
        return self.array.ctypes.data

    @classmethod
    def from_numpy(cls, a):
        buf = cls(np.shape(a), np.asarray(a).dtype)
        np.copyto(buf.array, a)
        return buf

    def to_numpy(self):
        return self.array.copy()

    def copy(self):
        return HostDeviceBuffer.from_numpy(self.array)

    def copy_from(self, other):
        np.copyto(self.array, other.array)


class EmulatedExecutable(DeviceCalls):
    """runtime.cuda.CudaExecutable's interface over EmulatedProgram: a call with buffers, or
    `bind`/`bind_outputs` then `call` (as compiled functions replay)."""
    new_buffer = staticmethod(lambda shape, dtype: HostDeviceBuffer(shape, dtype))

    def __init__(self, program):
        from fusegrad.runtime.cpu import raise_check
        self.program, self.raise_check = program, raise_check
        self.run = EmulatedProgram(program)
        self.bound: dict = {}            # slot -> HostDeviceBuffer
        self.out_specs = output_specs(program)
        self.lock = threading.RLock()     # DeviceCalls binds and calls under it

    def bind(self, slot, buf) -> None:
        assert isinstance(buf, HostDeviceBuffer), f"slot {slot}: a {type(buf).__name__} is not a device buffer"
        self.bound[slot] = buf

    def call(self) -> None:
        p = self.program
        got, error = self.run([self.bound[s].array for s in p.inputs], [self.bound[s].array for s in p.params])
        if error[0]:
            self.raise_check(p, int(error[1]))
        for name, slot in p.outputs.items():
            np.copyto(self.bound[slot].array, got[name])


def install_emulated_device(monkeypatch) -> None:
    """Make fusegrad see one CUDA device, emulated on the CPU, for one test."""
    import sys
    import types

    import fusegrad
    from fusegrad import placement
    from fusegrad.runtime import cuda as rt
    for name in ("pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(rt, "available", lambda: True)
    monkeypatch.setattr(rt, "device_count", lambda: 1)
    monkeypatch.setattr(rt, "device_name", lambda index=0: "fusegrad PTX emulator")
    monkeypatch.setattr(rt, "arch", lambda: "sm_80")
    monkeypatch.setattr(rt, "synchronize", lambda: None)
    monkeypatch.setattr(rt, "DeviceBuffer", HostDeviceBuffer)
    load = fusegrad.runtime.load
    monkeypatch.setattr(fusegrad.runtime, "load", lambda p: EmulatedExecutable(p) if p.target == "cuda" else load(p))
    monkeypatch.setattr(placement, "IN_USE", [False])   # the real flag is untouched

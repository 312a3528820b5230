"""LLVM IR -> object code for the host, several modules at once.

The target machine is the host CPU with all its features (AVX2, FMA, ...), optimised with
LLVM's new pass manager through one of `PIPELINES`, which the module's maker names: "O3",
or "light" (-O3 without loop unrolling and vectorization) for a kernel so small that those
cost more compile time than they could ever save it at run time (codegen/cpu.py's
`llvm_pipeline` says which kernels; the object cache keys hold the name and its settings).

`object_codes(jobs)` compiles modules concurrently, one thread per CPU at most: each module
gets its own LLVM context, and each thread a target machine of its own. llvmlite serialises
every call into LLVM behind one process-wide lock, so the two long calls of a compile
(running the pass pipeline, emitting the object) are made through llvmlite's C functions
directly, without that lock (ctypes releases the GIL around them); LLVM itself is safe to
run on separate contexts in parallel. Where llvmlite lacks those C functions (another
version) the calls keep its lock and the threads take turns.

A process forked while threads compile (DataLoader workers are forked on Linux) starts with a
new pool and lock: the parent's threads do not exist in the child.

A kernel module exports its kernel's functions only (`fgk_*`, codegen/cpu.py's
SYMBOL_PREFIX): once optimised, every other definition it holds (helpers LLVM kept external
for the vectorizer, say) becomes internal, so the objects of one program link into one
engine without clashing.
"""
from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import llvmlite.binding as llvm
from llvmlite.binding import ffi

KERNEL_PREFIX = "fgk_"          # codegen/cpu.py's SYMBOL_PREFIX
BYPASS_LLVMLITE_LOCK = True     # False: the long calls keep llvmlite's lock too (to measure what it costs)
_STATE: dict = {}
_LOCK = threading.Lock()
_MACHINES: list = []            # idle target machines, one per thread compiling at most
# LLVM's default -O3 pipeline, as is or tuned lighter: name -> PipelineTuningOptions settings
# (the names are compiler/program.py's LLVM_PIPELINES)
PIPELINES = {
    "O3": {},
    "light": {"loop_unrolling": False, "loop_vectorization": False, "slp_vectorization": False},
}
DEFAULT_PIPELINE = "O3"


def host_cpu() -> tuple[str, str]:
    """(CPU name, feature string) of the host."""
    if "cpu" not in _STATE:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _STATE["features"] = llvm.get_host_cpu_features().flatten()
        _STATE["cpu"] = llvm.get_host_cpu_name()
    return _STATE["cpu"], _STATE["features"]


def new_machine() -> llvm.TargetMachine:
    """A target machine for the host CPU with all its features, at -O3."""
    cpu, features = host_cpu()
    return llvm.Target.from_default_triple().create_target_machine(
        cpu=cpu, features=features, opt=3, codemodel="jitdefault")


def pipeline_text(pipeline: str) -> str:
    """The pipeline's name and settings: what object cache keys hold of it."""
    return f"{pipeline} {sorted(PIPELINES[pipeline].items())}"


def tuning(pipeline: str = DEFAULT_PIPELINE) -> llvm.PipelineTuningOptions:
    """The tuning options of pipeline `pipeline` (PIPELINES): its speed level (default 3),
    then its other settings."""
    settings = dict(PIPELINES[pipeline])
    pto = llvm.create_pipeline_tuning_options(speed_level=settings.pop("speed_level", 3))
    for option, value in settings.items():
        setattr(pto, option, value)
    return pto


def optimized_module(ir_text: str, machine: llvm.TargetMachine | None = None,
                     context: llvm.ContextRef | None = None, pipeline: str = DEFAULT_PIPELINE) -> llvm.ModuleRef:
    """Parse, verify and optimise LLVM IR for the host through `pipeline` (PIPELINES) in
    `context` (without llvmlite's lock: the context must be this thread's alone), or in the
    global context (with the lock)."""
    tm = machine or new_machine()
    mod = llvm.parse_assembly(ir_text, context=context)
    try:
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        mod.verify()
        pb = llvm.create_pass_builder(tm, tuning(pipeline))
        name = "LLVMPY_RunNewModulePassManager"
        run_pipeline = _unlocked(name) if context is not None else getattr(ffi.lib, name)
        run_pipeline(pb.getModulePassManager(), mod, pb)
    except BaseException:
        mod.close()
        raise
    return mod


def emit_object(tm: llvm.TargetMachine, mod: llvm.ModuleRef) -> bytes:
    """The object code of an optimised module (TargetMachine.emit_object without llvmlite's
    lock: the module's context and `tm` must be this thread's alone)."""
    with ffi.OutputString() as error:
        buffer = _unlocked("LLVMPY_TargetMachineEmitToMemory")(tm, mod, 1, error)
        if not buffer:
            raise RuntimeError(str(error))
    try:
        return ctypes.string_at(ffi.lib.LLVMPY_GetBufferStart(buffer), ffi.lib.LLVMPY_GetBufferSize(buffer))
    finally:
        ffi.lib.LLVMPY_DisposeMemoryBuffer(buffer)


def object_code(ir_text: str, kernel: bool = False, pipeline: str = DEFAULT_PIPELINE) -> bytes:
    """The object code of one module, optimised through `pipeline` (PIPELINES); a kernel
    module keeps only its kernel's symbols."""
    tm = _take_machine()
    try:
        mod = optimized_module(ir_text, tm, llvm.create_context(), pipeline)   # the module holds its context
        try:
            if kernel:
                internalize(mod, KERNEL_PREFIX)
            return emit_object(tm, mod)
        finally:
            mod.close()
    finally:
        _give_back(tm)


def object_codes(jobs: list) -> list:
    """The object code of each (IR text, is a kernel module[, pipeline]) job, compiled
    concurrently (the longest texts first, so that a long one does not start last)."""
    if len(jobs) <= 1:
        return [object_code(*job) for job in jobs]
    longest_first = sorted(range(len(jobs)), key=lambda i: -len(jobs[i][0]))
    futures = {i: _pool().submit(object_code, *jobs[i]) for i in longest_first}
    return [futures[i].result() for i in range(len(jobs))]


def internalize(mod: llvm.ModuleRef, exported_prefix: str) -> None:
    """Make every definition whose name lacks `exported_prefix` internal to the module."""
    for value in list(mod.functions) + list(mod.global_variables):
        if not value.is_declaration and not value.name.startswith(exported_prefix) \
                and value.linkage != llvm.Linkage.internal:
            value.linkage = llvm.Linkage.internal


def workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor:
    with _LOCK:
        if "pool" not in _STATE:
            _STATE["pool"] = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="fusegrad-llvm")
        return _STATE["pool"]


def _forget_threads() -> None:
    """In a forked child: the parent's pool threads are gone, and its lock may be held."""
    global _LOCK
    _LOCK = threading.Lock()
    _STATE.pop("pool", None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


def _take_machine() -> llvm.TargetMachine:
    with _LOCK:
        if _MACHINES:
            return _MACHINES.pop()
    return new_machine()


def _give_back(tm: llvm.TargetMachine) -> None:
    with _LOCK:
        _MACHINES.append(tm)


def _unlocked(name: str):
    """llvmlite's C function `name`, called without llvmlite's lock where it can be (module
    doc) and BYPASS_LLVMLITE_LOCK is on."""
    if not BYPASS_LLVMLITE_LOCK:
        return getattr(ffi.lib, name)
    if name not in _STATE:
        raw = getattr(getattr(ffi.lib, "_lib", None), name, None)
        _STATE[name] = raw if raw is not None and getattr(raw, "argtypes", None) else getattr(ffi.lib, name)
    return _STATE[name]

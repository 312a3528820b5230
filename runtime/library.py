"""Native libraries: LLVM modules of size-generic functions called directly, not programs.

A program runs a schedule of kernels through one entry point; a library is a module of
ordinary C-ABI functions (e.g. codegen/random_fill.py's Philox fills) that the frontend calls
with its own arguments. It is compiled like a program (the host CPU with all its features,
-O3) and its machine code goes through the same object cache, keyed by the module's text and
the host, so a process pays its compile once per machine, then loads it from disk.

`run_split` calls a function over a range of positions on several threads: ctypes releases
the GIL during a foreign call, so each thread's part runs in parallel.
"""
from __future__ import annotations

import ctypes
import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import llvmlite
import llvmlite.binding as llvm

from . import cpu, objects
from .cache import OBJECTS, VERSION

_LOCK = threading.Lock()
_LOADED: dict[str, Library] = {}


class Library:
    """A loaded module: `function(name, signature)` gives a ctypes callable for a symbol."""

    def __init__(self, ir_text: str) -> None:
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), objects.new_machine())
        self._engine.add_object_file(llvm.ObjectFileRef.from_data(_machine_code(ir_text)))
        self._engine.finalize_object()
        self._functions: dict[str, Any] = {}

    def function(self, name: str, signature: Callable[[int], Any]) -> Any:
        fn = self._functions.get(name)
        if fn is None:
            address = self._engine.get_function_address(name)
            if not address:
                raise KeyError(f"the library has no function {name!r}")
            fn = self._functions[name] = signature(address)
        return fn


def load(ir_text: str) -> Library:
    """The library of `ir_text`, compiled (or read from the object cache) once per process."""
    key = _key(ir_text)
    lib = _LOADED.get(key)
    if lib is None:
        with _LOCK:
            lib = _LOADED.get(key)
            if lib is None:
                lib = _LOADED[key] = Library(ir_text)
    return lib


def _key(ir_text: str) -> str:
    text = "\n".join(["library", ir_text, *objects.host_cpu(), llvmlite.__version__, VERSION])
    return hashlib.sha256(text.encode()).hexdigest()


def _machine_code(ir_text: str) -> bytes:
    """The library's object code: from the object cache, or compiled now and cached."""
    key = _key(ir_text)
    obj = OBJECTS.get(key)
    if obj is None:
        OBJECTS.stats["compiles"] += 1
        obj = objects.object_code(ir_text)
        OBJECTS.put(key, obj)
    return obj


def run_split(call: Callable[[int, int], Any], count: int, min_part: int = 1 << 16) -> None:
    """call(begin, end) over [0, count), split into up to num_threads() parts of at least
    `min_part` positions, each on its own thread (the last on this one)."""
    parts = max(1, min(cpu.num_threads(), count // max(min_part, 1)))
    bounds = [count * p // parts for p in range(parts + 1)]
    threads = [threading.Thread(target=call, args=(bounds[p], bounds[p + 1])) for p in range(parts - 1)]
    for t in threads:
        t.start()
    try:
        call(bounds[-2], bounds[-1])
    finally:
        for t in threads:
            t.join()


def signature(restype: Any, argtypes: Sequence[Any]) -> Callable[[int], Any]:
    """A ctypes function type (one that releases the GIL while it runs)."""
    return ctypes.CFUNCTYPE(restype, *argtypes)

"""Compiling several modules at once (runtime/objects.py): kernel modules keep only their kernel's
symbols, and a forked child (a DataLoader worker) compiles on threads of its own."""
from __future__ import annotations

import os
import select

import llvmlite.binding as llvm
import pytest

from fusegrad.runtime import objects

KERNEL = """
define void @"fgk_{n}"(ptr %args, i64 %part, i64 %nparts) {{
  call void @"helper"(ptr %args)
  ret void
}}
define void @"helper"(ptr %p) noinline {{
  store i64 {n}, ptr %p
  ret void
}}
"""


def jobs(count: int = 3) -> list:
    return [(KERNEL.format(n=n), True) for n in range(count)]


def test_a_kernel_module_exports_its_kernel_only():
    llvm_module = objects.optimized_module(KERNEL.format(n=7))
    objects.internalize(llvm_module, objects.KERNEL_PREFIX)
    linkage = {f.name: f.linkage for f in llvm_module.functions if not f.is_declaration}
    assert linkage.pop("fgk_7") == llvm.Linkage.external
    assert linkage and all(v == llvm.Linkage.internal for v in linkage.values())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_compiles_on_threads_of_its_own():
    assert all(objects.object_codes(jobs()))           # the parent's threads are running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                         # the child: the parent's threads are gone
        try:
            os.write(write, b"ok" if all(objects.object_codes(jobs())) else b"no")
        finally:
            os._exit(0)
    os.close(write)
    answered, _, _ = select.select([read], [], [], 60)
    if not answered:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert answered and os.read(read, 2) == b"ok"

"""Every graph the test suite compiled for the CPU, lowered to PTX and assembled by ptxas.

conftest.py records each graph given to compile(..., "cpu"); this module (named to run last)
compiles each distinct one for target "cuda" (sm_80), lowers the same NVPTX IR for sm_90
too, and assembles both with `ptxas -arch=sm_XX`. The work is spread over one process per
CPU (graphs travel as their text, which round-trips exactly: test_zz_ir_roundtrip.py).
Skipped where ptxas is not installed; run alone, with nothing recorded, it has nothing to check.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor

import pytest
from conftest import RECORDED_GRAPHS

from fusegrad.compiler.ir import print_graph

ARCHS = ("sm_80", "sm_90")


def lower_and_assemble(texts: list) -> tuple:
    """In a worker: (modules assembled, failures) for graphs given as text."""
    from fusegrad.compiler import compile
    from fusegrad.compiler.codegen.nvptx import to_ptx
    from fusegrad.compiler.ir import parse_graph
    failures, seen = [], set()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "module.ptx")
        for text in texts:
            program = compile(parse_graph(text), "cuda", arch=ARCHS[0])
            for arch in ARCHS:
                ptx = program.source if arch == ARCHS[0] else to_ptx(program.text("llvm"), arch)
                if (arch, ptx) in seen:
                    continue
                seen.add((arch, ptx))
                with open(path, "w") as f:
                    f.write(ptx)
                done = subprocess.run(["ptxas", f"-arch={arch}", path, "-o", os.devnull], capture_output=True, text=True)
                if done.returncode:
                    failures.append(f"ptxas -arch={arch}: {done.stderr}\n{text}")
    return len(seen), failures


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas not installed")
def test_every_recorded_graph_assembles_for_sm80_and_sm90():
    texts = list(dict.fromkeys(print_graph(g) for g in RECORDED_GRAPHS))
    if not texts:
        pytest.skip("no graphs recorded: run with the rest of the test suite")
    workers = os.cpu_count() or 1
    chunks = [texts[i::4 * workers] for i in range(4 * workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(lower_and_assemble, [c for c in chunks if c]))
    failures = [f for _, fs in results for f in fs]
    assert not failures, "\n\n".join(failures[:3])
    print(f"\n{len(texts)} distinct graphs lowered; {sum(n for n, _ in results)} PTX modules assembled "
          f"for {' and '.join(ARCHS)}")

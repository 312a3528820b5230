"""Every graph of the corpus (tests/graph_corpus.py: every op, every dtype, training steps)
lowered to PTX for sm_80 and sm_90 and assembled by `ptxas -arch=sm_XX`.

Skipped where ptxas is not installed (it comes with the CUDA toolkit; no GPU is needed).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from fusegrad.compiler import compile
from fusegrad.compiler.codegen.nvptx import to_ptx
from graph_corpus import corpus

ARCHS = ("sm_80", "sm_90")

pytestmark = [pytest.mark.ptxas,
              pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas (CUDA toolkit) not installed")]


@pytest.mark.parametrize("name,graph", corpus(), ids=[name for name, _ in corpus()])
def test_graph_assembles_for_sm80_and_sm90(name, graph, tmp_path):
    program = compile(graph, "cuda", arch=ARCHS[0])
    for arch in ARCHS:
        ptx = program.source if arch == ARCHS[0] else to_ptx(program.text("llvm"), arch)
        path = tmp_path / f"{arch}.ptx"
        path.write_text(ptx)
        done = subprocess.run(["ptxas", f"-arch={arch}", str(path), "-o", os.devnull], capture_output=True, text=True)
        assert done.returncode == 0, f"ptxas -arch={arch}: {done.stderr}"

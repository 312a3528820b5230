"""Programs for traced graphs: the disk-cached compile of a graph, and dumping a program's
stages (FUSEGRAD_DUMP, FUSEGRAD_DUMP_DIR). Part of the lazy layer: realization dumps the
eager programs it compiles, and compiled functions compile and dump theirs.
"""
from __future__ import annotations

import hashlib
import os
import sys

from . import compiler
from .compiler.ir import Graph, print_graph
from .compiler.program import STAGES
from .internal_errors import compile_reporting
from .runtime.cache import PROGRAMS, VERSION


def compile_cached(graph: Graph, text: str | None = None, target: str = "cpu", arch: str | None = None):
    """The Program for a traced graph on `target` ("cpu", or "cuda" for GPU architecture
    `arch`): from the disk cache when this graph was compiled for it before (skipping the
    passes and codegen; the runtime's object cache skips LLVM), else compiled."""
    text = text if text is not None else print_graph(graph)
    where = target if arch is None else f"{target}:{arch}"
    key = hashlib.sha256(f"{where}\n{VERSION}\n{compiler.FINGERPRINT}\n{text}".encode()).hexdigest()
    program = PROGRAMS.get(key)
    if program is None:
        options = {"target": target, "graph_text": text} | ({} if arch is None else {"arch": arch})
        program = compile_reporting(compiler.compile, graph, **options)
        PROGRAMS.put(key, program)
    return program


def _dump_stages(spec) -> list:
    if spec is None:
        spec = os.environ.get("FUSEGRAD_DUMP", "")
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    spec = list(spec)
    return list(STAGES) if "all" in spec else [s for s in spec if s in STAGES]


def dump(program, title: str, spec=None) -> None:
    """Print the program's stages to stderr (FUSEGRAD_DUMP or dump=), and write them under
    FUSEGRAD_DUMP_DIR, one folder per program."""
    stages = _dump_stages(spec)
    for stage in stages:
        if stage in program.stages:
            print(f"===== fusegrad {title}: {stage} =====\n{program.stages[stage]}", file=sys.stderr)
    folder = os.environ.get("FUSEGRAD_DUMP_DIR")
    if folder:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in title)[:80]
        path = os.path.join(folder, f"{safe}-{program.key[:12]}")
        os.makedirs(path, exist_ok=True)
        for stage, text in program.stages.items():
            with open(os.path.join(path, f"{stage}.txt"), "w") as f:
                f.write(text)

"""Compiler failures that are fusegrad's fault, reported as such.

A shape or dtype mistake in the user's program raises the compiler's IRError family at the
user's line. Anything else escaping the compiler (an AttributeError inside codegen, say) is
a bug in fusegrad: `compile_reporting` turns it into `InternalError`, naming the op the
compiler was working on and the user's line that built it, and writes the graph and the
traceback to a file the message names, so the bug can be reported with what reproduces it.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import traceback

from .compiler.ir import Node, print_graph
from .compiler.ir.errors import IRError


class InternalError(RuntimeError):
    """fusegrad failed to compile a valid program (a bug in fusegrad, not in the user's code)."""

    def __init__(self, message: str, report_path: str | None = None):
        super().__init__(message)
        self.report_path = report_path


def compile_reporting(compile_fn, graph, **options):
    """`compile_fn(graph, **options)`, with internal failures raised as InternalError."""
    try:
        return compile_fn(graph, **options)
    except (IRError, MemoryError):
        raise
    except Exception as e:      # noqa: BLE001 - anything else is a compiler bug
        raise _internal_error(e, graph) from e


def _node_being_compiled(tb, graph):
    """The innermost IR node a failing frame was working on, else the graph's last value."""
    found = None
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, Node) and value.op not in ("input", "param"):
                found = value
        tb = tb.tb_next
    if found is None:
        outputs = list(graph.outputs.values()) + [value for _, value in graph.assigns]
        found = outputs[-1] if outputs else None
    return found


def _internal_error(error: Exception, graph) -> InternalError:
    node = _node_being_compiled(error.__traceback__, graph)
    op = node.op if node is not None else "?"
    where = f" (at {node.loc})" if node is not None and node.loc else ""
    path = _write_report(error, graph)
    saved = f"; the graph and traceback are in {path}" if path else ""
    return InternalError(
        f"internal compiler error while compiling {op}{where}: {type(error).__name__}: {error}. "
        f"This is a bug in fusegrad, not in your program{saved}: please attach that file to a bug report.", path)


def _write_report(error: Exception, graph) -> str | None:
    try:
        text = print_graph(graph)
    except Exception:           # noqa: BLE001 - the report must not fail on a broken graph
        text = "(the graph could not be printed)"
    report = "".join(traceback.format_exception(error)) + "\n" + text + "\n"
    folder = os.environ.get("FUSEGRAD_DUMP_DIR") or tempfile.gettempdir()
    path = os.path.join(folder, f"fusegrad-internal-error-{hashlib.sha256(report.encode()).hexdigest()[:12]}.txt")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(path, "w") as f:
            f.write(report)
    except OSError:
        return None
    return path

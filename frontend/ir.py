"""`fusegrad.ir`: run a printed graph. `load(text)` reads a `graph` dump (FUSEGRAD_DUMP,
`lower(...).text("graph")`, an issue report), possibly edited by hand, compiles it and
returns a callable program, so that one can change a node and see the kernels and the result:

    prog = fusegrad.ir.load(text.replace("= exp %3", "= tanh %3"))
    print(prog.text("kernels"))
    loss = prog(x, y, params={"model.weight": w, "model.bias": b, "state": 0.01})

A mistake in the text raises the parser's ParseError, which names the line and the column
(and shows the line). Programs run on the CPU.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .compiler.ir import Graph, parse_graph
from .compiler.ir import dtypes as D
from .compiler.ir.parser import ParseError
from .compiler.ir.printer import param_var_names
from .compiler.program import Program
from .jit.devices import input_buffer
from .jit.function import Lowered
from .programs import compile_cached
from .runtime.cpu import CpuExecutable
from .tensor import Tensor

__all__ = ["Loaded", "ParseError", "RunResult", "load"]


class RunResult(NamedTuple):
    """What one run of a loaded program gives: its outputs by name, and the value of every
    param after the run (by its quoted name; assigned params hold their new value)."""
    outputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray]


class Loaded(Lowered):
    """A graph compiled from text and loaded: `.text(stage)` and `.to_dot()` as for
    `CompiledFunction.lower`, and callable on tensors, numpy arrays or numbers.

    Arguments are the graph's inputs in the order of its header, optionally followed by its
    params in their order; `params=` gives params by their quoted name ("model.weight") or
    their `%` name ("weight" or "%weight"). Arguments are never written: an `assign`
    updates a copy, which `run` returns."""

    def __init__(self, program: Program, graph: Graph) -> None:
        super().__init__(program, graph)
        self._exe = CpuExecutable(program)
        self.input_names = [x.attrs["name"] for x in graph.inputs]
        self.param_names = [p.attrs["name"] for p in graph.params]
        self.output_names = list(program.outputs)
        self._param_vars = param_var_names(graph.params, self.input_names)

    def __call__(self, *args: Any, params: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """The outputs as fusegrad tensors: one tensor for a graph with one output, else a
        tuple in the order of the graph's `return`."""
        stored, _ = self._run(args, params)
        tensors = tuple(Tensor._from_array(a, dtype=self._dtype(name)) for name, a in stored.items())
        return tensors[0] if len(tensors) == 1 else tensors

    def run(self, *args: Any, params: Mapping[str, Any] | Sequence[Any] | None = None) -> RunResult:
        """Run once: the outputs and the params after the run, as numpy arrays (bfloat16
        values as float32)."""
        stored, bound = self._run(args, params)
        return RunResult({name: D.from_storage(a, self._dtype(name)) for name, a in stored.items()},
                         {p.attrs["name"]: D.from_storage(a, p.dtype) for p, a in zip(self.graph.params, bound)})

    def _run(self, args: tuple, params: Mapping[str, Any] | Sequence[Any] | None) -> tuple[dict, list]:
        n_in, n_par = len(self.input_names), len(self.param_names)
        if len(args) not in (n_in, n_in + n_par):
            raise TypeError(f"{self.graph.name}() takes {n_in} input(s) ({', '.join(self.input_names) or 'none'})"
                            + (f", optionally followed by {n_par} param(s)" if n_par else "")
                            + f"; got {len(args)} argument(s)")
        given: dict[str, Any] = dict(zip(self.param_names, args[n_in:]))
        if params is not None:
            given.update(self._params_by_name(params))
        missing = [name for name in self.param_names if name not in given]
        if missing:
            raise TypeError(f"{self.graph.name}(): no value for param(s) {', '.join(map(repr, missing))} "
                            f"(pass them after the inputs or as params={{name: value}})")
        inputs = [self._bind(x, a, "input") for x, a in zip(self.graph.inputs, args[:n_in])]
        bound = [self._bind(p, given[p.attrs["name"]], "param") for p in self.graph.params]
        return self._exe(inputs, bound), bound

    def _dtype(self, output: str) -> D.DType:
        return D.from_name(self.program.buffers[self.program.outputs[output]].dtype)

    def _params_by_name(self, params: Mapping[str, Any] | Sequence[Any]) -> dict[str, Any]:
        if not isinstance(params, Mapping):
            values = list(params)
            if len(values) != len(self.param_names):
                raise TypeError(f"{self.graph.name}(): params= has {len(values)} value(s) for "
                                f"{len(self.param_names)} param(s) ({', '.join(self.param_names)})")
            return dict(zip(self.param_names, values))
        by_var = dict(zip(self._param_vars, self.param_names))
        out = {}
        for key, value in params.items():
            name = key if key in self.param_names else by_var.get(key.removeprefix("%"))
            if name is None:
                raise TypeError(f"{self.graph.name}(): no param named {key!r} (params: "
                                f"{', '.join(self.param_names) or 'none'})")
            out[name] = value
        return out

    def _bind(self, node: Any, value: Any, role: str) -> np.ndarray:
        """`value` as a fresh C-contiguous buffer of the node's type (a copy: never written)."""
        dt, name = node.dtype, node.attrs["name"]
        if isinstance(value, Tensor):
            if value.dtype is not dt:
                raise TypeError(f"{role} {name}: expected a {dt.name} tensor, got {value.dtype.name}")
            array = np.array(input_buffer(value.detach().cpu()), order="C")
        else:
            values = np.asarray(value)
            if not np.can_cast(values.dtype, dt.host, "same_kind"):
                raise TypeError(f"{role} {name}: cannot cast {values.dtype} values to {dt.name}")
            array = np.array(D.to_storage(values, dt), order="C")
        if tuple(array.shape) != tuple(node.shape):
            raise ValueError(f"{role} {name}: expected shape {list(node.shape)}, got {list(array.shape)}")
        return array


def load(text: str) -> Loaded:
    """The program of a printed graph (`graph` dump text), compiled for the CPU and loaded.
    A mistake in the text raises ParseError naming its line and column."""
    try:
        graph = parse_graph(text)
    except ParseError as e:
        lines = text.splitlines()
        if 1 <= e.line <= len(lines):
            e.args = (f"{e}\n    {lines[e.line - 1]}\n    {' ' * (e.column - 1)}^",)
        raise
    return Loaded(compile_cached(graph), graph)

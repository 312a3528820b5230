"""Compiled functions (`fusegrad.compile`): tracing, signatures, guards, replay.

function.py  CompiledFunction and compile(), the entry point
tracer.py    the Tracer (what one trace did) and TracingError
signature.py flattening arguments, call keys, retrace reasons
graph.py     the Graph read off a finished trace
replay.py    Variant (one traced signature) and its replay
devices.py   a compiled function's device, input buffers, GPU results, HostScalars
guards.py    guards on the Python state a trace baked in
"""
from .function import CompiledFunction, Lowered, compile
from .tracer import TracingError

"""fusegrad.compiler: IR, passes and code generation. Knows nothing of Tensor objects.

`compile(graph, target)` runs the pass pipeline and returns a `Program` (plain data) that
`fusegrad.runtime.load` turns into something callable.
"""
from . import ir, passes
from .fingerprint import FINGERPRINT
from .ir import Graph, Node, make, parse_graph, print_graph
from .pipeline import compile, run_passes
from .program import STAGES, BufferInfo, KernelInfo, Program


"""fusegrad.compiler: IR, passes and code generation. Knows nothing of Tensor objects.

`compile(graph, target)` runs the pass pipeline and returns a `Program` (plain data) that
`fusegrad.runtime.load` turns into something callable.
"""
import hashlib as _hashlib
import pathlib as _pathlib

from . import ir, passes
from .ir import Graph, Node, make, parse_graph, print_graph
from .pipeline import compile, run_passes
from .program import STAGES, BufferInfo, KernelInfo, Program


def _fingerprint() -> str:
    """A hash of this package's source: programs cached on disk by an older compiler (the
    same version number, other code) are never taken for this one's."""
    digest = _hashlib.sha256()
    for path in sorted(_pathlib.Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


FINGERPRINT = _fingerprint()

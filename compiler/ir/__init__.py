"""The IR: dtypes, the primitive op set with its rules, nodes and graphs, text and dot forms."""
from .dtypes import DType, bfloat16, bool_, float16, float32, float64, int32, int64, uint8
from .errors import AxisError, DTypeError, IRError, ShapeError, fmt_type
from .graph import Graph, Node, make, topo_order
from .ops import OPS, broadcast_shapes, check_axes
from .parser import parse_graph, structurally_equal
from .printer import print_graph
from .rewrite import clone, rewrite

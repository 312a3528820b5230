"""The frontend's modules import one way (issue 12): no import cycle longer than two modules,
and no function-local import of a fusegrad module used to dodge one.

The layers, lowest first:
- the lazy layer (device, dtypes, source, trace_hooks, storage, placement, internal_errors,
  programs, realize, printing), with grad_mode and grad_fn; it never imports Tensor;
- tensor_base (TensorBase: the data half of Tensor), then conversion (Python data and arrays
  as buffers), philox (the random stream and its generator) and prims (one primitive on
  tensors, constants, views);
- the op modules: ops and shape_ops, then sorting, inplace, then indexing, rearrange, compound,
  einsum, scattering and sampling; each defines a mixin of Tensor's methods and builds its
  results through its tensor operands (`x._result`), so none imports Tensor;
- autograd/ (the engine, which builds tensors through the ones it is given);
- tensor (class Tensor: TensorBase and the op modules' mixins, backward() through the engine);
- random (lazy draws) and creation (factories): they make tensors from nothing;
- jit/ (compiled functions) -> nn, optim, cuda, accelerator and the package's public API.

The imports are read from the source with `ast`, without importing anything. Imports under
`if TYPE_CHECKING:` (annotations only) do not count.
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"
PACKAGE = "fusegrad"

# Function-local imports of fusegrad modules that are allowed, as (importing module, imported
# module), each with its reason. Keep this list short: a local import that only dodges an
# import cycle belongs at the top of the module, in a layer above what it imports.
ALLOWED_LOCAL_IMPORTS: dict[tuple[str, str], str] = {
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(FRONTEND).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(FRONTEND.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom | ast.Import, known: dict) -> list[str]:
    """The fusegrad frontend modules an import statement loads (with their parent packages,
    whose __init__ runs first), never the root package itself."""
    targets: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name == PACKAGE or a.name.startswith(PACKAGE + ".")]
        targets = names
    else:
        if node.level:
            base = importer.split(".") if is_package else importer.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
            if not (module == PACKAGE or module.startswith(PACKAGE + ".")):
                return []
        targets = [module]
        for alias in node.names:            # `from . import ops`: a submodule
            sub = f"{module}.{alias.name}"
            if sub in known:
                targets.append(sub)
    out = []
    for t in targets:
        parts = t.split(".")
        for k in range(2, len(parts) + 1):   # parent packages first, then the module
            name = ".".join(parts[:k])
            # the importer's own packages are always initialising already: no edge to them
            if name in known and name not in out and not importer.startswith(name + "."):
                out.append(name)
    return out


def _under_type_checking(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _in_function(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def _imports() -> tuple[nx.DiGraph, list[tuple[str, str, int]]]:
    """The graph of module-level imports between frontend modules, and the function-local
    imports of frontend modules as (importer, imported, line)."""
    known = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    local = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or _under_type_checking(node, parents):
                continue
            targets = [t for t in _resolve(name, _is_package(path), node, known) if t != name]
            if _in_function(node, parents):
                local += [(name, t, node.lineno) for t in targets]
            else:
                graph.add_edges_from((name, t) for t in targets)
    return graph, local


def _short(name: str) -> str:
    return name[len(PACKAGE) + 1:]


def test_no_import_cycle_longer_than_two_modules():
    graph, _ = _imports()
    long_cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) <= 2:
            continue
        for cycle in nx.simple_cycles(graph.subgraph(component)):
            if len(cycle) > 2:
                long_cycles.append(" -> ".join(cycle + cycle[:1]))
                break
    assert not long_cycles, "import cycles longer than two modules:\n" + "\n".join(long_cycles)


def test_no_function_local_imports_of_fusegrad_modules():
    _, local = _imports()
    unexpected = [f"{a} imports {b} inside a function (line {line})" for a, b, line in local
                  if (a, b) not in ALLOWED_LOCAL_IMPORTS]
    assert not unexpected, "\n".join(unexpected)


def test_allow_list_is_current():
    _, local = _imports()
    used = {(a, b) for a, b, _ in local}
    stale = [pair for pair in ALLOWED_LOCAL_IMPORTS if pair not in used]
    assert not stale, f"listed local imports no longer present (remove them): {stale}"


def test_lazy_layer_never_imports_tensor():
    graph, _ = _imports()
    lazy = ["device", "dtypes", "source", "trace_hooks", "storage", "placement", "internal_errors", "programs",
            "realize", "grad_mode", "grad_fn"]
    for name in lazy:
        reached = nx.descendants(graph, f"{PACKAGE}.{name}")
        assert f"{PACKAGE}.tensor" not in reached, f"{PACKAGE}.{name} imports (through others) {PACKAGE}.tensor"
        assert f"{PACKAGE}.tensor_base" not in reached, f"{PACKAGE}.{name} imports (through others) tensor_base"


def test_op_layer_never_imports_tensor():
    """The op modules and the engine build tensors through their operands: Tensor is above them."""
    graph, _ = _imports()
    below_tensor = ["tensor_base", "conversion", "philox", "prims", "ops", "shape_ops", "sorting", "inplace",
                    "indexing", "rearrange", "compound", "einsum", "scattering", "sampling", "autograd",
                    "autograd.engine", "autograd.function"]
    for name in below_tensor:
        reached = nx.descendants(graph, f"{PACKAGE}.{name}")
        for above in ("tensor", "random", "creation"):
            assert f"{PACKAGE}.{above}" not in reached, f"{PACKAGE}.{name} imports (through others) {PACKAGE}.{above}"


def test_no_import_cycles_in_the_frontend():
    """Imports point one way: not even a two-module cycle."""
    graph, _ = _imports()
    cycles = [sorted(_short(m) for m in c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_imports_come_before_the_code():
    """No module-level import below a function or class definition (a bottom-of-file import of
    a fusegrad module is an import cycle in disguise)."""
    late = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(), str(path))
        first_def = None
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                first_def = first_def or node.lineno
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and first_def is not None:
                late.append(f"{_short(name) or PACKAGE}: line {node.lineno}")
    assert not late, "imports after the first definition:\n" + "\n".join(late)

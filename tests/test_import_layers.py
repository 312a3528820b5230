"""The frontend's modules import one way (issue 12): no import cycle longer than two modules,
and no function-local import of a fusegrad module used to dodge one.

The layers, lowest first: the lazy layer (device, dtypes, source, trace_hooks, storage,
placement, internal_errors, programs, realize; it never imports Tensor), with grad_mode and
grad_fn -> tensor -> the op modules (ops, shape_ops, creation, random, inplace, indexing) ->
autograd/ (the engine) -> jit/ (compiled functions) -> nn, optim, cuda, accelerator and the
package's public API.

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

# Still to do (issue 12): Tensor and the op modules refer to each other. Tensor's methods call
# ops, shape_ops, indexing and inplace (bottom-of-file imports in tensor.py), its backward()
# and retain_grad() call the autograd engine, and the op modules build Tensors. Until ops
# build their results without importing tensor, this import cycle and the function-local
# imports below remain. The tests fail on any new one, and on an entry here that is gone (so
# the lists only shrink).
PENDING_CYCLE = {"indexing", "inplace", "ops", "shape_ops", "tensor"}
PENDING_LOCAL_IMPORTS = {
    ("indexing", "creation"),
    ("inplace", "tensor"), ("ops", "creation"), ("ops", "shape_ops"), ("random", "ops"), ("random", "tensor"),
    ("tensor", "autograd"), ("tensor", "autograd.engine"), ("tensor", "creation"),
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
        names = {_short(m) for m in component}
        if names == PENDING_CYCLE:
            continue
        assert not names < PENDING_CYCLE, f"the pending cycle shrank to {sorted(names)}: update PENDING_CYCLE"
        for cycle in nx.simple_cycles(graph.subgraph(component)):
            if len(cycle) > 2:
                long_cycles.append(" -> ".join(cycle + cycle[:1]))
                break
    assert not long_cycles, "import cycles longer than two modules:\n" + "\n".join(long_cycles)


def test_no_function_local_imports_of_fusegrad_modules():
    _, local = _imports()
    unexpected = [f"{a} imports {b} inside a function (line {line})" for a, b, line in local
                  if (a, b) not in ALLOWED_LOCAL_IMPORTS and (_short(a), _short(b)) not in PENDING_LOCAL_IMPORTS]
    assert not unexpected, "\n".join(unexpected)


def test_allow_list_is_current():
    _, local = _imports()
    used = {(a, b) for a, b, _ in local}
    stale = [pair for pair in ALLOWED_LOCAL_IMPORTS if pair not in used]
    stale += [pair for pair in PENDING_LOCAL_IMPORTS if (f"{PACKAGE}.{pair[0]}", f"{PACKAGE}.{pair[1]}") not in used]
    assert not stale, f"listed local imports no longer present (remove them): {stale}"


def test_pending_cycle_is_current():
    graph, _ = _imports()
    components = [{_short(m) for m in c} for c in nx.strongly_connected_components(graph)]
    assert PENDING_CYCLE in components, "the pending import cycle changed: update PENDING_CYCLE (it may only shrink)"


def test_lazy_layer_never_imports_tensor():
    graph, _ = _imports()
    lazy = ["device", "dtypes", "source", "trace_hooks", "storage", "placement", "internal_errors", "programs",
            "realize", "grad_mode", "grad_fn"]
    for name in lazy:
        reached = nx.descendants(graph, f"{PACKAGE}.{name}")
        assert f"{PACKAGE}.tensor" not in reached, f"{PACKAGE}.{name} imports (through others) {PACKAGE}.tensor"

"""The pass pipeline: Graph -> Program for a target, keeping the text of every stage.

    shape inference -> broadcasting resolution -> float32 accumulation -> simplify -> fuse
    -> schedule -> codegen

Autodiff is not a stage here: gradients are IR nodes already in `graph` when it arrives,
built by the frontend's backward() / autograd.grad() from the VJP rules of
passes/autodiff.py (on pending lazy nodes, or inside a `fusegrad.compile` trace), or by
`autodiff.differentiate(graph)` for a graph made directly in IR. The stage texts are what
FUSEGRAD_DUMP and `lower()` show.
"""
from __future__ import annotations

import hashlib

from .codegen import cpu_program, cpu_runner
from .codegen.emit import Checks
from .ir import Graph, fmt_type, print_graph
from .ir.dot import to_dot
from .ir.printer import var_names
from .passes import broadcast, fuse, schedule, shapes, simplify, widen
from .program import BufferInfo, Call, KernelInfo, KernelModule, Program

PASSES = (("shape inference", shapes.infer), ("broadcasting resolution", broadcast.resolve),
          ("float32 accumulation", widen.widen), ("simplify", simplify.simplify))


def run_passes(graph: Graph):
    """The graph after each rewriting pass: [(pass name, graph)], then the fused schedule."""
    after = []
    g = graph
    for name, p in PASSES:
        g = p(g)
        after.append((name, g))
    return after, schedule.schedule(fuse.fuse(g))


def compile(graph: Graph, target: str = "cpu", arch: str | None = None, graph_text: str | None = None) -> Program:
    """The program computing `graph` on `target` ('cpu', or 'cuda' for the GPU architecture
    `arch`, e.g. 'sm_90'; default sm_80, whose PTX also runs on newer GPUs). `graph_text`:
    print_graph(graph), where the caller has it already (its "graph" stage)."""
    after, sched = run_passes(graph)
    checks = Checks()
    launches: list = []
    modules: list = []
    calls: list = []
    functions: dict = {}
    if target == "cpu":
        cpu = cpu_program.emit_program(sched, checks)
        source, entry = cpu_runner.runner_source(), cpu_runner.ENTRY
        modules = [KernelModule(m.key, m.source, m.pipeline) for m in cpu.modules] + \
            [KernelModule(m.key, m.source) for m in cpu.shared]
        calls = [_call(c) for c in cpu.calls]
        parallel = {c.name: c.code.parallel for c in cpu.calls}
        functions = {c.name: c.code.symbol for c in cpu.calls}
        code_stages = {"llvm": _llvm_stage(source, cpu)}
    elif target == "cuda":
        from .codegen import ptx
        gpu = ptx.emit_module(sched, graph.name, checks, arch)
        source, entry, parallel, launches = gpu.ptx, "", {}, gpu.launches
        code_stages = {"llvm": gpu.llvm, "ptx": gpu.ptx}
    else:
        raise ValueError(f"unknown target {target!r}")
    final = after[-1][1]
    names = var_names(final)
    program = Program(
        name=graph.name, target=target, source=source, entry=entry,
        buffers=[BufferInfo(b.slot, b.role, b.name, b.shape, b.dtype.name, b.offset) for b in sched.buffers],
        inputs=[sched.read_slot[id(x)] for x in final.inputs],
        params=[sched.read_slot[id(p)] for p in final.params],
        outputs=dict(sched.outputs), arena_bytes=sched.arena_bytes, checks=list(checks),
        kernels=[_kernel_info(k, sched, names, parallel.get(k.name, False), functions.get(k.name, ""))
                 for k in sched.kernels],
        launches=launches, modules=modules, calls=calls)
    program.stages = {
        "graph": graph_text if graph_text is not None else print_graph(graph),
        "passes": "\n\n".join(f";; after {name}\n{print_graph(g)}" for name, g in after),
        "kernels": kernels_text(program, names, sched),
        **code_stages,
        "dot": to_dot(final, sched.kernels),
    }
    plan = "".join(f"\n{c}" for c in calls)
    program.key = hashlib.sha256(f"{target}\n{source}{plan}".encode()).hexdigest()
    return program


def _call(c: cpu_program.KernelCall) -> Call:
    return Call(c.index, tuple(p.function for p in c.code.phases), tuple(p.parallel for p in c.code.phases),
                c.args, c.code.max_parts, c.first_check if c.code.fallible else -1)


def _llvm_stage(runner: str, cpu: cpu_program.CpuCode) -> str:
    """The runner module, the plan, each kernel module headed by the kernels that run it, then
    the shared modules."""
    users: dict = {}
    lines = [runner, "; ---- plan: each kernel's phases (* parallel) on table slots (0: the error word)"]
    for c in cpu.calls:
        users.setdefault(c.code.key, []).append(c.name)
        phases = ", ".join(p.function + "*" * p.parallel for p in c.code.phases)
        lines.append(f"; {c.name}: {phases} on {list(c.args)}")
    for m in cpu.modules:
        lines.append(f"\n; ---- kernel module {m.symbol}: {', '.join(users[m.key])}\n{m.source}")
    for m in cpu.shared:
        lines.append(f"\n; ---- shared module {m.symbol}\n{m.source}")
    return "\n".join(lines)


def _kernel_info(k, sched, names, parallel: bool, function: str) -> KernelInfo:
    reads = tuple(sorted({s for s in (sched.read_slot.get(id(x)) for x in k.loads) if s is not None}))
    writes = tuple(s for _, s in k.stores)
    nbytes = sum(sched.buffers[s].nbytes for s in set(reads) | set(writes))
    fused = tuple(f"%{names.get(id(n), '?')} {n.op}" for n in k.nodes)

    def size(shape) -> int:
        count = 1
        for d in shape:
            count *= d
        return count

    def flops(n) -> int:
        """Arithmetic operations of node `n`: one per output element of a unary, binary or
        comparison op (a transcendental such as exp, sin or erf counts as one, as FLOP
        counters do), one per reduced element of a reduction, 2*M*N*K per matmul, one add per
        scattered element; where, cast, movement, gather and sources count none."""
        if n.kind in ("unary", "binary", "compare"):
            return size(n.shape)
        if n.kind == "reduce":
            return size(n.inputs[0].shape)
        if n.kind == "matmul":
            return 2 * size(n.shape) * n.inputs[0].shape[-1]
        if n.kind == "scatter":
            return size(n.inputs[1].shape)
        return 0

    return KernelInfo(k.name, k.kind, tuple(k.space), fused, reads, writes, nbytes, parallel,
                      flops=sum(flops(n) for n in k.nodes), reason=k.explain(names), function=function)


def kernels_text(program: Program, names: dict, sched) -> str:
    buf = {b.slot: b for b in program.buffers}
    describe = lambda s: f"{buf[s].name} {fmt_type(buf[s].shape, _dtype(buf[s].dtype))} [{buf[s].role}]"
    lines = [f"program {program.name}: {program.num_kernels} kernels, arena {program.arena_bytes} bytes "
             f"(temps {sched.temp_bytes} bytes before sharing)"]
    for k in program.kernels:
        lines.append(f"kernel {k.name}: {k.kind} over [{','.join(map(str, k.space))}]"
                     + (", parallel" if k.parallel else ""))
        lines.append(f"  fuses   {', '.join(k.fused) if k.fused else '(copy)'}")
        lines.append(f"  reads   {', '.join(describe(s) for s in k.reads) or '-'}")
        lines.append(f"  writes  {', '.join(describe(s) for s in k.writes)}")
        lines.append(f"  moves   {k.bytes_moved} bytes")
        lines.append(f"  reason  {k.reason}")
        for launch in (x for x in program.launches if x.kernel == k.name):
            scratch = f", {launch.scratch_bytes} bytes of scratch" if launch.scratch_bytes else ""
            lines.append(f"  launch  {launch.function}: {launch.grid} blocks x {launch.block} threads{scratch}")
    return "\n".join(lines)


def _dtype(name: str):
    from .ir.dtypes import from_name
    return from_name(name)

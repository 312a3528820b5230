"""GPU backend: a scheduled graph becomes one PTX module and the list of its launches.

The same fused kernels as the CPU backend (cpu.py), with the same Emitter computing every
value; only the loop drivers differ. Each kernel becomes one or more PTX entries (see
ptx_kernel.py for their parameters), run by the runtime in order on one stream:

- elementwise: a grid-stride loop over the kernel's collapsed space, a thread per element;
- row reductions (reduced axes innermost): a block per row, threads striding along it, warp
  shuffles and shared memory combining their partials, one pass per reduction like the CPU
  (softmax: max pass, sum pass, write pass); a few very long rows split over many blocks
  (ptx_rows.py);
- column reductions: a thread per output element, looping over the reduced axes (consecutive
  threads read consecutive memory);
- matmul: shared-memory tiles and register blocking, with the fused epilogue (ptx_gemm.py);
- scatter_add: one entry writes the base, a second adds the sources with atomics, a third
  copies the result to any further destination.

Collectives (`all_reduce`) are host calls between kernels, which the GPU runtime does not
make: a program with one raises NotImplementedError here, naming the op.

Checks write the error word (slot 0) with a compare-and-swap; the runtime reads it after a
program that can fail. `emit_module` returns the NVPTX LLVM IR, the PTX and the launches.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import dtypes, fmt_type
from ..ir.errors import IRError
from ..ir.registry import PTX, planned
from ..passes.fuse import Kernel
from ..passes.schedule import Schedule
from . import nvptx, ptx_gemm, ptx_rows
from .emit import ERR_INDEX, Checks, Space
from .kernel_plan import collapsed_shape, contiguous, has_output, numel
from .llvm_util import Loop, elem_ptr, i64, load_value, mem_type, store_value
from .ptx_kernel import KernelFunction, accumulate, accumulator_identity, finish, open_kernel

BLOCK = 256                  # threads per block of grid-stride kernels


class UnsupportedOnGpu(IRError, NotImplementedError):
    """An op the GPU backend does not compile (yet): the op, why, the user's line."""


PTX.register("all_reduce", planned("none on the GPU: emit_module raises NotImplementedError (a host call)"))


@dataclass
class PtxModule:
    llvm: str                # the NVPTX LLVM IR
    ptx: str                 # PTX assembly for `arch`
    launches: list           # program.Launch records, in order


def emit_module(sched: Schedule, name: str, checks: Checks, arch: str | None = None) -> PtxModule:
    """The program's kernels for GPU architecture `arch` (default nvptx.DEFAULT_ARCH)."""
    arch = arch or nvptx.DEFAULT_ARCH
    for k in sched.kernels:
        if k.kind == "collective":
            n = k.anchor
            assert n is not None, "a collective kernel is anchored at its collective"
            raise UnsupportedOnGpu(n.op, f"not supported on CUDA devices yet ({fmt_type(n.shape, n.dtype)}): a "
                                         "collective is a host call between kernels, which only the CPU backend "
                                         "makes", n.loc)
    module = nvptx.new_module(name)
    launches = [launch for k in sched.kernels if has_output(k) for launch in emit_kernel(module, sched, k, checks)]
    text = str(module)
    return PtxModule(text, nvptx.to_ptx(text, arch), launches)


def emit_kernel(module, sched: Schedule, k: Kernel, checks: Checks) -> list:
    """The launches of kernel `k`, its entries written into `module`."""
    if k.kind == "matmul":
        return [ptx_gemm.emit_matmul(module, sched, k, checks)]
    if k.kind == "scatter":
        return emit_scatter(module, sched, k, checks)
    if k.kind == "reduce" and k.order == "row":
        return [ptx_rows.emit_rows(module, sched, k, checks)]
    if k.kind == "reduce":
        return [emit_columns(open_kernel(module, sched, k, checks, k.name, BLOCK))]
    return [emit_elementwise(open_kernel(module, sched, k, checks, k.name, BLOCK))]


def _blocks(work: int) -> int:
    return -(-work // BLOCK)


def emit_elementwise(kf: KernelFunction):
    """A thread per element of the collapsed space (fewest dims: least index arithmetic)."""
    em, b = kf.em, kf.b
    shape = collapsed_shape(em, kf.kernel)
    loop = nvptx.grid_stride_loop(b, numel(shape), BLOCK)
    em.push()
    space = Space(shape, em.unravel(loop.index, shape))
    for n, p in kf.stores:
        em.store(n, em.value(n, (), space), p, space)
    em.pop()
    loop.close()
    return kf.launch(_blocks(numel(shape)))


def emit_columns(kf: KernelFunction):
    """Reduced axes not innermost: a thread per output element, looping over the reduced
    axes; neighbouring threads own neighbouring kept elements, so loads coalesce."""
    em, b, k = kf.em, kf.b, kf.kernel
    S, A = tuple(k.space), k.axes
    (r,) = k.reduces
    kept = [d for d in range(len(S)) if d not in A]
    out_shape = tuple(1 if d in A else s for d, s in enumerate(S))
    loop = nvptx.grid_stride_loop(b, numel(out_shape), BLOCK)
    em.push()
    out_index = [i64(0)] * len(S)
    for d, v in zip(kept, em.unravel(loop.index, [S[d] for d in kept])):
        out_index[d] = v
    acc = accumulator_identity(r)
    loops = []
    index = list(out_index)
    for d in A:
        lp = Loop(b, 0, S[d], [acc], name=f"r{d}")
        loops.append(lp)
        acc = lp.carried[0]
        index[d] = lp.index
    em.push()
    acc = accumulate(b, r, acc, em.value(r.inputs[0], (), Space(S, index)))
    em.pop()
    for lp in reversed(loops):
        acc = lp.close([acc])[0]
    em.acc[id(r)] = finish(b, r, acc)
    out_space = Space(out_shape, out_index)
    for n, p in kf.stores:
        em.store(n, em.value(n, (), out_space), p, out_space)
    em.pop()
    loop.close()
    return kf.launch(_blocks(numel(out_shape)))


def emit_scatter(module, sched: Schedule, k: Kernel, checks: Checks) -> list:
    """out = base; out[index[i] along axis] += src[i] with atomics; copies to further outputs.
    Three entries, because every base element must be written before any source is added."""
    sc = k.anchor
    assert sc is not None, "a scatter kernel is anchored at its scatter_add"
    base, index, src = sc.inputs
    axis, size = sc.attrs["axis"], sc.shape[sc.attrs["axis"]]
    launches = []

    kf = open_kernel(module, sched, k, checks, f"{k.name}_base", BLOCK)
    (node, out), rest = kf.stores[0], kf.stores[1:]
    loop = nvptx.grid_stride_loop(kf.b, numel(sc.shape), BLOCK)
    kf.em.push()
    space = Space(tuple(sc.shape), kf.em.unravel(loop.index, sc.shape))
    kf.em.store(node, kf.em.value(base, (), space), out, space)
    kf.em.pop()
    loop.close()
    launches.append(kf.launch(_blocks(numel(sc.shape))))

    kf = open_kernel(module, sched, k, checks, k.name, BLOCK)
    em, b = kf.em, kf.b
    out = kf.stores[0][1]
    loop = nvptx.grid_stride_loop(b, numel(index.shape), BLOCK)
    em.push()
    space = Space(tuple(index.shape), em.unravel(loop.index, index.shape))
    ix = em.cast_value(em.value(index, (), space), index.dtype, dtypes.int64)
    v = em.value(src, (), space)
    ok = b.and_(b.icmp_signed(">=", ix, i64(0)), b.icmp_signed("<", ix, i64(size)))
    em.check(ok, ERR_INDEX, f"scatter_add: index out of range for dimension {axis} of size {size}", sc)
    target = list(space.index)
    target[axis] = b.select(ok, ix, i64(0))
    off, _ = em.view_offset(contiguous(sc.shape), target)
    with b.if_then(ok):
        nvptx.atomic_add(b, sc.dtype, elem_ptr(b, out, off, mem_type(sc.dtype)), v)
    em.pop()
    loop.close()
    launches.append(kf.launch(_blocks(numel(index.shape))))

    if rest:
        kf = open_kernel(module, sched, k, checks, f"{k.name}_copy", BLOCK)
        out, rest = kf.stores[0][1], kf.stores[1:]
        loop = nvptx.grid_stride_loop(kf.b, numel(sc.shape), BLOCK)
        v = load_value(kf.b, out, loop.index, sc.dtype)
        for _, p in rest:
            store_value(kf.b, p, loop.index, v, sc.dtype)
        loop.close()
        launches.append(kf.launch(_blocks(numel(sc.shape))))
    return launches


"""CPU backend, runner: the one entry point that runs any CPU program's kernels from a plan.

    i64 fg_main(ptr run, i64 nthreads)

A program's kernels are compiled modules of their own (codegen/cpu.py); what is particular
to a program is only which of them run, in what order, on which buffers. That is data, the
program's `calls` (compiler/program.py), which the runtime lays out as a plan when it loads
the program, so no program needs code of its own: this module's text is the same for every
program and compiles once (the runtime caches its object like any other).

`run` points at RUN_WORDS i64 words: the buffer table, the phase records, their count, the
argument slots, a scratch array for the arguments, then the repetition: how many times to
run the whole plan (1 for a plain call), the advances and their count, and the word where
the runner keeps the number of the step it is in. After each step every advance, a pair
(slot, bytes), moves its table slot on by that many bytes: a stacked input's slot to the
next step's slice, a stacked output's to the next step's row (`CompiledFunction.repeat`
runs N training steps in one native call so). Each phase record is PHASE_WORDS
words (the W_* positions): the phase function's address, flags (F_*), then for its kernel
the number of arguments, where its argument slots start, the most threads it may use (0:
any), its first check id in the program (-1: it cannot fail) and its profile slot. The
first phase of a kernel copies the kernel's arguments from the table (slot 0, the error
word, first; host-call pointers sit in the slots after the buffers); each phase runs on
every thread through libgomp's `GOMP_parallel` when it is parallel and threads are
available (function-pointer globals the runtime fills in, so a machine without libgomp
still runs, on one thread), with `fg.omp` as the thread function, else directly. After a
kernel's last phase, if it can fail and the error word holds a code, the runner adds the
kernel's first check id to the kernel's own check id and returns the code; else it goes on,
and returns 0 after the last phase.

Profiling (runtime/profiling.py): the module global `fg_profile` is null unless the runtime
points it at an i64 buffer for one call: slot 0 holds the clock id, then two slots per
kernel of the schedule, [1 + 2i] and [2 + 2i], get the CLOCK_MONOTONIC nanoseconds (Python's
`time.perf_counter_ns` clock on Linux) before the first phase of kernel i and after its
last, read through `fg_clock_gettime` (a function-pointer global the runtime fills with
libc's clock_gettime). The runner loads `fg_profile` once; while it is null each kernel costs
one predictable branch more, and kernels that do not run (no output, or after a failed
check) leave their slots as the runtime set them.
"""
from __future__ import annotations

import functools

from llvmlite import ir

from .llvm_util import I32, I64, PTR, VOID, Loop, elem_ptr, i64

ENTRY = "fg_main"
GOMP_GLOBALS = ("fg_gomp_parallel", "fg_omp_thread_num", "fg_omp_num_threads")
PROFILE_GLOBAL = "fg_profile"           # i64 buffer of the call being profiled, or null
CLOCK_GLOBAL = "fg_clock_gettime"       # int clock_gettime(clockid_t, struct timespec *), set by the runtime
RUN_TABLE, RUN_PHASES, RUN_COUNT, RUN_SLOTS, RUN_ARGS, RUN_REPEAT, RUN_ADVANCES, RUN_NADVANCES, RUN_STEP = range(9)
RUN_WORDS = 9
W_FUNCTION, W_FLAGS, W_NARGS, W_SLOTS, W_MAX_THREADS, W_FIRST_CHECK, W_PROFILE = range(7)
PHASE_WORDS = 8
F_PARALLEL, F_FIRST, F_LAST = 1, 2, 4
PHASE_TYPE = ir.FunctionType(VOID, [PTR, I64, I64])


@functools.cache
def runner_source() -> str:
    """LLVM IR text of the runner module (module doc)."""
    module = ir.Module(name="fusegrad_runner")
    for g in GOMP_GLOBALS + (PROFILE_GLOBAL, CLOCK_GLOBAL):
        var = ir.GlobalVariable(module, PTR, g)
        var.initializer = ir.Constant(PTR, None)   # external: the runtime writes the address
    _emit_main(module)
    return str(module)


def _emit_main(module: ir.Module) -> None:
    fn = ir.Function(module, ir.FunctionType(I64, [PTR, I64]), ENTRY)
    run, nthreads = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    word = lambda base, i: b.load(elem_ptr(b, base, i, I64), typ=I64)
    pointer = lambda base, i: b.load(elem_ptr(b, base, i, PTR), typ=PTR)
    table, phases, slots, args = (pointer(run, i) for i in (RUN_TABLE, RUN_PHASES, RUN_SLOTS, RUN_ARGS))
    count = word(run, RUN_COUNT)
    err = pointer(table, 0)
    context = b.alloca(ir.ArrayType(PTR, 2), name="omp.context")   # fg.omp's: the phase function, its arguments
    context.type = PTR                    # llvmlite types allocas by their contents
    b.store(args, elem_ptr(b, context, 1, PTR))
    gomp = _function_pointer(b, module, "fg_gomp_parallel", ir.FunctionType(VOID, [PTR, PTR, I32, I32]))
    threaded = b.and_(b.icmp_signed(">", nthreads, i64(1)), b.icmp_unsigned("!=", b.ptrtoint(gomp, I64), i64(0)))
    profile = b.load(module.get_global(PROFILE_GLOBAL), typ=PTR)
    profiling = b.icmp_unsigned("!=", b.ptrtoint(profile, I64), i64(0))
    stamp, omp = _emit_stamp(module), _emit_omp_thread_function(module)

    step = Loop(b, 0, word(run, RUN_REPEAT), name="step")
    b.store(step.index, elem_ptr(b, run, RUN_STEP, I64))
    phase = Loop(b, 0, count, name="phase")
    record = elem_ptr(b, phases, b.mul(phase.index, i64(PHASE_WORDS)), I64)
    kernel_fn = b.load(elem_ptr(b, record, W_FUNCTION, PTR), typ=PHASE_TYPE.as_pointer())
    flags = word(record, W_FLAGS)
    is_set = lambda flag: b.icmp_unsigned("!=", b.and_(flags, i64(flag)), i64(0))
    profile_slot = word(record, W_PROFILE)
    with b.if_then(is_set(F_FIRST)):
        with b.if_then(profiling):
            b.call(stamp, [profile, profile_slot])
        _copy_arguments(b, table, elem_ptr(b, slots, word(record, W_SLOTS), I64), word(record, W_NARGS), args)
    cap = word(record, W_MAX_THREADS)
    capped = b.and_(b.icmp_signed(">", cap, i64(0)), b.icmp_signed(">", nthreads, cap))
    threads = b.select(capped, cap, nthreads)
    with b.if_else(b.and_(is_set(F_PARALLEL), threaded)) as (then, otherwise):
        with then:
            b.store(kernel_fn, elem_ptr(b, context, 0, PTR))
            b.call(gomp, [omp, context, b.trunc(threads, I32), ir.Constant(I32, 0)])
        with otherwise:
            b.call(kernel_fn, [args, i64(0), i64(1)])
    with b.if_then(is_set(F_LAST)):
        with b.if_then(profiling):
            b.call(stamp, [profile, b.add(profile_slot, i64(1))])
        _return_if_failed(b, err, word(record, W_FIRST_CHECK))
    phase.close()
    _advance_slots(b, table, pointer(run, RUN_ADVANCES), word(run, RUN_NADVANCES))
    step.close()
    b.ret(i64(0))


def _copy_arguments(b: ir.IRBuilder, table, slots, nargs, args) -> None:
    """args[j] = table[slots[j]] for j < nargs."""
    j = Loop(b, 0, nargs, name="arg")
    slot = b.load(elem_ptr(b, slots, j.index, I64), typ=I64)
    b.store(b.load(elem_ptr(b, table, slot, PTR), typ=PTR), elem_ptr(b, args, j.index, PTR))
    j.close()


def _advance_slots(b: ir.IRBuilder, table, advances, count) -> None:
    """table[advances[2j]] += advances[2j + 1] bytes, for j < count."""
    j = Loop(b, 0, count, name="advance")
    pair = elem_ptr(b, advances, b.mul(j.index, i64(2)), I64)
    slot = elem_ptr(b, table, b.load(pair, typ=I64), PTR)
    moved = b.gep(b.load(slot, typ=PTR), [b.load(elem_ptr(b, pair, 1, I64), typ=I64)], source_etype=ir.IntType(8))
    b.store(moved, slot)
    j.close()


def _return_if_failed(b: ir.IRBuilder, err, first_check) -> None:
    """Return the error code if the kernel can fail and did, its check id made the program's."""
    fallible = b.icmp_signed(">=", first_check, i64(0))
    with b.if_then(fallible):
        failed = b.load(err, typ=I64)
        with b.if_then(b.icmp_signed("!=", failed, i64(0)), likely=False):
            check = elem_ptr(b, err, 1, I64)
            b.store(b.add(b.load(check, typ=I64), first_check), check)
            b.ret(failed)


def _function_pointer(b: ir.IRBuilder, module: ir.Module, name: str, fnty: ir.FunctionType):
    """The function a pointer global holds, loaded with its type so it can be called."""
    return b.load(module.get_global(name), typ=fnty.as_pointer())


def _emit_omp_thread_function(module: ir.Module) -> ir.Function:
    """`fg.omp(ptr context)`: the calling OpenMP thread's share of the phase function in
    context[0] on the arguments in context[1]."""
    w = ir.Function(module, ir.FunctionType(VOID, [PTR]), "fg.omp")
    w.linkage = "internal"
    b = ir.IRBuilder(w.append_basic_block("entry"))
    context = w.args[0]
    kernel_fn = b.load(elem_ptr(b, context, 0, PTR), typ=PHASE_TYPE.as_pointer())
    args = b.load(elem_ptr(b, context, 1, PTR), typ=PTR)
    getter = ir.FunctionType(I32, [])
    tid = b.call(_function_pointer(b, module, "fg_omp_thread_num", getter), [])
    nt = b.call(_function_pointer(b, module, "fg_omp_num_threads", getter), [])
    b.call(kernel_fn, [args, b.sext(tid, I64), b.sext(nt, I64)])
    b.ret_void()
    return w


def _emit_stamp(module: ir.Module) -> ir.Function:
    """`fg.stamp(ptr profile, i64 slot)`: profile[slot] = the nanoseconds of the clock whose
    id is profile[0], read through the `fg_clock_gettime` pointer (kept out of line: the
    runner's kernels-only path stays short)."""
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64]), "fg.stamp")
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    profile, slot = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    timespec = b.alloca(ir.ArrayType(I64, 2))          # struct timespec {time_t tv_sec; long tv_nsec}
    clock_id = b.trunc(b.load(elem_ptr(b, profile, 0, I64), typ=I64), I32)
    clock = _function_pointer(b, module, CLOCK_GLOBAL, ir.FunctionType(I32, [I32, PTR]))
    b.call(clock, [clock_id, timespec])
    seconds = b.load(elem_ptr(b, timespec, 0, I64), typ=I64)
    nanoseconds = b.load(elem_ptr(b, timespec, 1, I64), typ=I64)
    b.store(b.add(b.mul(seconds, i64(1_000_000_000)), nanoseconds), elem_ptr(b, profile, slot, I64))
    b.ret_void()
    return fn

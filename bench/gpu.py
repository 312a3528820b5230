"""GPU benchmarks: fusegrad's CUDA backend on the first CUDA device.

1. Fused elementwise `a * b + c` on 64M float32 (3 reads, 1 write per element): achieved
   bandwidth as a fraction of the device's copy bandwidth, measured in the same run (a
   device-to-device copy of 256 MB).
2. GEMM 4096 x 4096 x 4096 float32: TFLOP/s, against PyTorch CUDA (`torch.matmul`, TF32
   off, as PyTorch's default) when a CUDA build of PyTorch is installed.
3. An MLP training step (784 -> 256 -> 10, ReLU, cross-entropy, batch 128, SGD), eager,
   against PyTorch CUDA eager; each step ends by reading the loss, as a training loop does.

Kernel timings (1, 2) run the compiled program through the runtime and time it with CUDA
events; the step (3) goes through the frontend. Exits with a message when there is no GPU.

Run: python bench/gpu.py
"""
from __future__ import annotations

import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import fusegrad  # noqa: E402
from common import Row, fmt_time, median_time, table  # noqa: E402
from fusegrad.compiler import compile  # noqa: E402
from fusegrad.compiler.ir import Graph, Node, float32, make  # noqa: E402
from fusegrad.runtime import cuda as rt  # noqa: E402

ELEMENTS = 64 * 1024 * 1024
GEMM = 4096
MLP = (784, 256, 10, 128)


def gpu_time(fn, repeat: int = 20, warmup: int = 3) -> float:
    """Median seconds of `fn` on the device, between CUDA events."""
    drv = rt.driver()
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start, end = drv.Event(), drv.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(end.time_since(start) * 1e-3)
    return statistics.median(times)


def program_runner(outputs: dict, inputs: list, arrays: list):
    """A call running the program for `outputs` on device copies of `arrays`."""
    program = compile(Graph("bench", inputs, [], outputs), "cuda", arch=rt.arch())
    exe = rt.CudaExecutable(program)
    for slot, a in zip(program.inputs, arrays):
        exe.bind(slot, rt.DeviceBuffer.from_numpy(a))
    exe.bind_outputs()
    return exe.call


def copy_bandwidth() -> float:
    src = rt.DeviceBuffer((ELEMENTS,), np.float32)
    dst = rt.DeviceBuffer((ELEMENTS,), np.float32)
    drv = rt.driver()
    t = gpu_time(lambda: drv.memcpy_dtod(dst.ptr, src.ptr, src.nbytes))
    return 2 * src.nbytes / t


def bench_elementwise(rows: list, rng) -> None:
    a, b, c = (Node("input", (), {"name": n}, (ELEMENTS,), float32) for n in "abc")
    arrays = [rng.random(ELEMENTS, dtype=np.float32) for _ in range(3)]
    t = gpu_time(program_runner({"y": make("add", [make("mul", [a, b]), c])}, [a, b, c], arrays))
    bandwidth = 4 * ELEMENTS * 4 / t
    copy = copy_bandwidth()
    rows.append(Row("a * b + c, 64M float32", t, limit=bandwidth / copy, unit="of device copy bandwidth",
                    note=f"{bandwidth / 1e9:.0f} GB/s vs copy {copy / 1e9:.0f} GB/s"))


def bench_gemm(rows: list, rng, torch) -> None:
    a, b = (Node("input", (), {"name": n}, (GEMM, GEMM), float32) for n in "ab")
    arrays = [rng.standard_normal((GEMM, GEMM), dtype=np.float32) for _ in range(2)]
    t = gpu_time(program_runner({"c": make("matmul", [a, b])}, [a, b], arrays), repeat=10)
    flops = 2 * GEMM ** 3
    peers, note = {}, f"{flops / t / 1e12:.1f} TFLOP/s"
    if torch is not None:
        ta, tb = (torch.from_numpy(x).cuda() for x in arrays)
        torch.backends.cuda.matmul.allow_tf32 = False
        peers["torch"] = median_time(lambda: (torch.matmul(ta, tb), torch.cuda.synchronize()), repeat=10)
        note += f", PyTorch {flops / peers['torch'] / 1e12:.1f} TFLOP/s"
    rows.append(Row(f"matmul {GEMM}³ float32", t, peers, note=note))


def _mlp_step(m, device, rng):
    d_in, hidden, classes, batch = MLP
    model = m.nn.Sequential(m.nn.Linear(d_in, hidden), m.nn.ReLU(), m.nn.Linear(hidden, classes)).to(device)
    opt = m.optim.SGD(model.parameters(), lr=0.01)
    x = m.tensor(rng.standard_normal((batch, d_in), dtype=np.float32)).to(device)
    y = m.tensor(rng.integers(0, classes, batch)).to(device)

    def step():
        opt.zero_grad()
        loss = m.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def bench_mlp(rows: list, rng, torch) -> None:
    t = median_time(_mlp_step(fusegrad, "cuda", rng), repeat=30, warmup=5)
    peers = {}
    if torch is not None:
        peers["torch"] = median_time(_mlp_step(torch, "cuda", rng), repeat=30, warmup=5)
    rows.append(Row("MLP step 784-256-10, batch 128, SGD (eager)", t, peers, note=fmt_time(t) + " per step"))


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def main() -> int:
    if not fusegrad.cuda.is_available():
        print("bench/gpu.py: no CUDA device (fusegrad.cuda.is_available() is False: pycuda is missing or "
              "sees no GPU); nothing to measure.", file=sys.stderr)
        return 1
    rng = np.random.default_rng(0)
    torch = _torch_cuda()
    rows: list = []
    bench_elementwise(rows, rng)
    bench_gemm(rows, rng, torch)
    bench_mlp(rows, rng, torch)
    major, minor = rt.compute_capability()
    print(f"{rt.device_name()} (sm_{major}{minor}), PTX for {rt.arch()}; "
          f"PyTorch CUDA {'present' if torch else 'not installed'}\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

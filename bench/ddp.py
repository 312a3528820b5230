"""Data-parallel training on MPI: DistributedDataParallel step time at 1 and 2 ranks, and the
bandwidth of fusegrad.distributed.all_reduce against mpi4py's raw Allreduce.

1. DDP training steps (SGD with momentum, eager), each rank with a batch of its own (weak
   scaling: 2 ranks do twice the work of 1): the digits MLP 64-64-10 (batch 64 per rank) and an
   MLP 784-1024-1024-10 (1.9 M parameters, 7.5 MB of gradients: one 25 MB bucket; batch 128 per
   rank). Median step time, and the part of it spent averaging the gradients (copy into the
   bucket, the Allreduce, copy back, and any wait for a rank that finished its backward later).
2. all_reduce of 1, 4, 16 and 64 MB float32 tensors across 2 ranks: fusegrad's `dist.all_reduce`
   of a realized CPU tensor (signature check, nonblocking Iallreduce polled against the group's
   timeout, in the tensor's memory) against `MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, array)` on a
   numpy array, the same memory (`t.numpy()`: where a buffer lies moves MPICH's time by up to
   20 % on this machine, so both get the same one), rounds interleaved in one run, each round
   started after a barrier. Algorithmic bandwidth: the tensor's bytes over the median time.

Run: python bench/ddp.py                   (relaunches itself with mpiexec -n 1, then -n 2)
     mpiexec -n 2 python bench/ddp.py --child   (one configuration; rank 0 prints its JSON)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import fmt_time, machine  # noqa: E402

SIZES_MB = (1, 4, 16, 64)
ROUNDS = {1: 101, 4: 41, 16: 21, 64: 11}        # rounds per size (small ones vary more)
STEPS = 30


def _child() -> dict:
    import fusegrad
    import fusegrad.distributed as dist
    from fusegrad import nn, optim
    from fusegrad.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    out: dict = {"world": world, "threads": fusegrad.runtime.get_num_threads(), "steps": {}, "allreduce": {}}

    def step_time(name: str, sizes: tuple, batch: int) -> None:
        fusegrad.manual_seed(0)
        layers: list = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = DDP(nn.Sequential(*layers[:-1]))
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        crit = nn.CrossEntropyLoss()
        rng = np.random.default_rng(rank)
        x = fusegrad.tensor(rng.standard_normal((batch, sizes[0])).astype(np.float32))
        y = fusegrad.tensor(rng.integers(0, sizes[-1], batch))
        reduce_times: list[float] = []
        average = model._average_gradients

        def timed_average() -> None:
            t = time.perf_counter()
            average()
            reduce_times.append(time.perf_counter() - t)
        model._average_gradients = timed_average
        times = []
        for i in range(STEPS + 3):
            dist.barrier()
            t = time.perf_counter()
            opt.zero_grad()
            crit(model(x), y).backward()
            opt.step()
            if i >= 3:
                times.append(time.perf_counter() - t)
        grads = sum(p.numel() for p in model.parameters()) * 4
        out["steps"][name] = {"step": statistics.median(times), "reduce": statistics.median(reduce_times[3:]),
                              "grad_bytes": grads, "buckets": len(model._buckets)}

    step_time("digits MLP 64-64-10, batch 64/rank", (64, 64, 10), 64)
    step_time("MLP 784-1024-1024-10, batch 128/rank", (784, 1024, 1024, 10), 128)

    if world > 1:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        for mb in SIZES_MB:
            n = mb * (1 << 20) // 4
            t = fusegrad.zeros(n)
            a = t.numpy()     # realized; the raw Allreduce gets the same memory (placement moves MPI's time)
            ours, raw = [], []
            for _ in range(ROUNDS[mb] + 2):
                comm.Barrier()
                s = time.perf_counter()
                dist.all_reduce(t)
                ours.append(time.perf_counter() - s)
                comm.Barrier()
                s = time.perf_counter()
                comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)
                raw.append(time.perf_counter() - s)
            out["allreduce"][mb] = {"fusegrad": statistics.median(ours[2:]), "mpi4py": statistics.median(raw[2:])}
    dist.destroy_process_group()
    return out if rank == 0 else {}


def _launch(ranks: int) -> dict:
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = mpiexec if os.access(mpiexec, os.X_OK) else shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("bench/ddp.py needs mpiexec: pip install -e '.[distributed]'")
    env = dict(os.environ, HYDRA_LAUNCHER="fork")
    proc = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--child"],
                          capture_output=True, text=True, env=env, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"mpiexec -n {ranks} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _report(one: dict, two: dict) -> str:
    lines = [f"DDP training step, eager, SGD momentum (threads per rank: 1 rank {one['threads']}, "
             f"2 ranks {two['threads']})", "",
             "| model | 1 rank | 2 ranks | 2 ranks: averaging grads | grads | buckets | samples/s 1 → 2 ranks |",
             "|---|---|---|---|---|---|---|"]
    for name, a in one["steps"].items():
        b = two["steps"][name]
        batch = int(name.split("batch ")[1].split("/")[0])
        lines.append(f"| {name} | {fmt_time(a['step'])} | {fmt_time(b['step'])} | {fmt_time(b['reduce'])} | "
                     f"{b['grad_bytes'] / 1e6:.2f} MB | {b['buckets']} | "
                     f"{batch / a['step']:.0f} → {2 * batch / b['step']:.0f} |")
    lines += ["", "all_reduce across 2 ranks, float32, in place (algorithmic bandwidth: bytes / time)", "",
              "| size | fusegrad dist.all_reduce | mpi4py Allreduce | fusegrad GB/s | mpi4py GB/s | fusegrad / raw |",
              "|---|---|---|---|---|---|"]
    for mb, r in two["allreduce"].items():
        size = int(mb) * (1 << 20)
        lines.append(f"| {mb} MB | {fmt_time(r['fusegrad'])} | {fmt_time(r['mpi4py'])} | "
                     f"{size / r['fusegrad'] / 1e9:.2f} | {size / r['mpi4py'] / 1e9:.2f} | "
                     f"{r['mpi4py'] / r['fusegrad']:.2f}× |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help="run one configuration (under mpiexec)")
    args = parser.parse_args()
    if args.child:
        result = _child()
        if result:
            print("RESULT " + json.dumps(result), flush=True)
    else:
        print(machine())
        print(_report(_launch(1), _launch(2)))

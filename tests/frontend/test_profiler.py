"""fusegrad.profiler: per-kernel times of compiled replays and eager realizations, the table,
the Chrome trace, and the machine's roofline they are compared with (fusegrad.roofline).

The profiler's totals are checked against the wall time of the same replays measured here;
the table's rates and roofline fractions against the recorded runs and the limits given.
"""
from __future__ import annotations

import json
import time

import pytest

import fusegrad
import fusegrad.profiler
from fusegrad import roofline as rl
from fusegrad.profiler import profile
from fusegrad.runtime import get_num_threads, profiling


def machine(bandwidth: float = 10e9, flops: float = 50e9) -> rl.Roofline:
    """A made-up roofline for one thread and fusegrad's threads (nothing is measured)."""
    counts = {1, get_num_threads()}
    return rl.Roofline({"cpu": "test"}, {n: bandwidth * n for n in counts}, {n: flops * n for n in counts})


@pytest.fixture(scope="module")
def step():
    """A compiled function of four kernels, three of them over 512K float32 (milliseconds each)."""
    x = fusegrad.rand(512, 1024)

    @fusegrad.compile
    def f(x):
        y = (x * 2).exp()
        return y.T * 3 + 1, y.sum(dim=0), (x - 1).sin()

    f(x)
    f(x)
    return f, x


def test_profiler_totals_agree_with_the_wall_time_of_the_same_replays(step):
    f, x = step
    walls = []
    with profile(roofline=machine()) as prof:
        for _ in range(8):
            start = time.perf_counter_ns()
            f(x)
            walls.append(time.perf_counter_ns() - start)
    kernels = prof.kernel_time_ns
    assert kernels <= sum(walls)
    assert kernels >= 0.8 * sum(walls), f"kernels {kernels / 1e6:.2f} ms of {sum(walls) / 1e6:.2f} ms of replays"
    per_replay = [sum(k.duration_ns for k in call.kernels()) for call in prof.calls]
    assert all(k <= w for k, w in zip(per_replay, walls))
    assert sorted(k / w for k, w in zip(per_replay, walls))[4] >= 0.8      # each replay, not only the total
    rows = prof.key_averages()
    assert len(rows) == 4 and all(r.count == 8 for r in rows)
    assert sum(r.total_ns for r in rows) == kernels
    assert len(prof.calls) == 8 and all(c.program.name == "f" for c in prof.calls)


def test_chrome_trace_is_json_with_one_event_per_kernel_run(step, tmp_path):
    f, x = step
    with profile(roofline=machine()) as prof:
        for _ in range(3):
            f(x)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(path)
    trace = json.loads(path.read_text())
    runs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(runs) == 3 * 4 == len(prof.events())
    assert sorted({e["name"] for e in runs}) == sorted(r.key for r in prof.key_averages())
    for e, k in zip(runs, prof.events()):
        assert e["dur"] == pytest.approx(k.duration_ns / 1e3) and e["dur"] > 0
        assert e["args"]["bytes"] == k.info.bytes_moved and e["args"]["flops"] == k.info.flops
    starts = [e["ts"] for e in runs]
    assert starts == sorted(starts) and starts[0] >= 0
    for a, b in zip(runs, runs[1:]):               # one thread: runs follow each other
        assert a["ts"] + a["dur"] <= b["ts"] + 1e-3


def test_table_rates_and_roofline_fractions(step):
    f, x = step
    limits = machine()
    with profile(roofline=limits) as prof:
        for _ in range(4):
            f(x)
    rows = prof.key_averages()
    for r in rows:
        assert r.gbps == pytest.approx(r.bytes_moved * r.count / r.total_ns)
        assert r.gflops == pytest.approx(r.flops * r.count / r.total_ns)
        least = sum(max(r.bytes_moved / limits.bandwidth[e.threads], r.flops / limits.flops[e.threads])
                    for e in r.events)
        assert r.roofline == pytest.approx(least * 1e9 / r.total_ns)
    text = rows.table(sort_by="cpu_time_total", row_limit=3)
    body = [line for line in text.splitlines() if line.startswith("f.k")]
    assert len(body) == 3
    by_total = sorted(rows, key=lambda r: r.total_ns, reverse=True)
    assert [line.split()[0] for line in body] == [r.key for r in by_total[:3]]
    assert "Roofline" in text and "transcendentals" in text
    by_flops = [line.split()[0] for line in rows.table(sort_by="flops").splitlines() if line.startswith("f.k")]
    assert by_flops == [r.key for r in sorted(rows, key=lambda r: r.flops, reverse=True)]
    assert prof.table(sort_by="count").count("\nf.k") == 4
    with pytest.raises(ValueError, match="sort_by"):
        rows.table(sort_by="wall_clock")


def test_eager_realizations_are_profiled_and_nothing_after_the_block():
    x = fusegrad.rand(1000)
    with fusegrad.profiler.profile(roofline=machine()) as prof:
        for i in range(3):
            (x * i + 1).exp().sum().item()
    assert not profiling.ACTIVE
    assert len(prof.calls) == 3 and {c.program.name for c in prof.calls} == {"realize"}
    (x * 5).numpy()
    assert len(prof.calls) == 3
    with profile(enabled=False) as off:
        (x * 6).numpy()
    assert off.calls == [] and off.key_averages() == []


def test_roofline_is_measured_once_and_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path))    # nothing measured or cached before
    rl.CACHE.memory.clear()
    before = rl.STATS["measurements"]
    first = rl.roofline([1])
    assert rl.STATS["measurements"] == before + 1
    assert 1e8 < first.bandwidth[1] < 1e13 and 1e8 < first.flops[1] < 1e14
    assert rl.roofline([1]) is first and rl.STATS["measurements"] == before + 1
    rl.CACHE.memory.clear()                        # from the disk cache: the same numbers
    again = rl.roofline([1])
    assert rl.STATS["measurements"] == before + 1
    assert again.bandwidth == first.bandwidth and again.flops == first.flops and again.identity == rl.identity()
    assert rl.Roofline.from_json(again.to_json()) == again
    # the least time: bytes over bandwidth, or FLOPs over peak, whichever is longer
    assert again.limit_seconds(10**9, 0, 1) == pytest.approx(1e9 / again.bandwidth[1])
    assert again.limit_seconds(0, 10**9, 1) == pytest.approx(1e9 / again.flops[1])
    with pytest.raises(ValueError):
        rl.Roofline.from_json('{"format": "fusegrad-roofline/1", "bandwidth": {"1": -1}}')

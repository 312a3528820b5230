"""fusegrad.distributed, DistributedDataParallel and DistributedSampler across 2 MPI processes.

Each script in scripts/ runs under `mpiexec -n 2` once per session (a launch costs a second or
two: Python, fusegrad's import, compiles) and writes one result line per check and rank; the
tests below read them. Skipped, saying why, where mpi4py or mpiexec is not installed
(`pip install -e ".[distributed]"` brings both: mpi4py and the mpich wheel).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent / "scripts"
RANKS = 2


def _mpiexec() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
NEEDS_MPI = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="needs mpi4py and mpiexec: pip install -e '.[distributed]' (mpi4py and the mpich wheel)")


def launch(script: str, folder: Path, timeout: float = 120) -> dict[str, dict[int, str]]:
    """Run scripts/<script> on RANKS processes; {check name: {rank: 'PASS' / 'SKIP why' / 'FAIL why'}}."""
    env = dict(os.environ, HYDRA_LAUNCHER="fork")        # mpich's hydra: local processes, never ssh
    assert MPIEXEC is not None
    proc = subprocess.run([MPIEXEC, "-n", str(RANKS), sys.executable, str(SCRIPTS / script), str(folder)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=str(SCRIPTS))
    results: dict[str, dict[int, str]] = {}
    for rank in range(RANKS):
        path = folder / f"rank{rank}.txt"
        if not path.exists():
            raise AssertionError(f"rank {rank} of {script} wrote no results (exit {proc.returncode}):\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        for line in path.read_text().splitlines():
            _, r, status, rest = line.split(" ", 3)
            name, _, why = rest.partition(": ")
            results.setdefault(name, {})[int(r)] = status if status == "PASS" else f"{status} {why}"
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return results


def passed(results: dict[str, dict[int, str]], name: str) -> None:
    got = results.get(name)
    assert got is not None, f"no result for {name}: {sorted(results)}"
    skips = [why for why in got.values() if why.startswith("SKIP")]
    if skips:
        pytest.skip(skips[0][5:])
    failed = {rank: why for rank, why in got.items() if why != "PASS"}
    assert not failed and sorted(got) == list(range(RANKS)), failed or got


@pytest.fixture(scope="module")
def collectives(tmp_path_factory):
    return launch("collectives.py", tmp_path_factory.mktemp("collectives"))


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    return launch("ddp.py", tmp_path_factory.mktemp("ddp"))


@pytest.fixture(scope="module")
def errors(tmp_path_factory):
    return launch("errors.py", tmp_path_factory.mktemp("errors"), timeout=60)


COLLECTIVE_CHECKS = ["init", "all_reduce_sum_float32", "all_reduce_max_float32", "all_reduce_min_float32",
                     "all_reduce_product_float32", "all_reduce_avg", "all_reduce_int64_bool", "all_reduce_16bit",
                     "all_reduce_in_place_zero_copy", "all_reduce_version_and_pending_readers",
                     "all_reduce_noncontiguous_view", "all_reduce_async", "all_reduce_coalesced", "broadcast",
                     "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "barrier",
                     "sampler_default_group", "destroy"]


@NEEDS_MPI
@pytest.mark.parametrize("name", COLLECTIVE_CHECKS)
def test_collective(collectives, name):
    passed(collectives, name)


@NEEDS_MPI
@pytest.mark.parametrize("name", ["broadcast_at_construction", "sgd_momentum_buckets", "no_sync_accumulation",
                                  "unused_parameters", "compiled_step"])
def test_ddp(ddp, name):
    passed(ddp, name)


@NEEDS_MPI
@pytest.mark.parametrize("name", ["before_init", "init_arguments", "mismatched_shapes", "mismatched_ddp_models",
                                  "timeout_when_a_rank_exits"])
def test_errors(errors, name):
    passed(errors, name)


@pytest.fixture(scope="module")
def compiled_timeout(tmp_path_factory):
    return launch("compiled_timeout.py", tmp_path_factory.mktemp("compiled_timeout"), timeout=60)


@NEEDS_MPI
@pytest.mark.parametrize("name", ["compiled_all_reduce_replays", "compiled_all_reduce_mismatched_shapes",
                                  "compiled_all_reduce_times_out"])
def test_compiled_all_reduce_when_a_rank_exits(compiled_timeout, name):
    passed(compiled_timeout, name)


def test_imports_without_mpi4py():
    """fusegrad.distributed imports where mpi4py is missing; is_available() is False and
    init_process_group says what to install."""
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import fusegrad.distributed as dist\n"
            "from fusegrad.nn.parallel import DistributedDataParallel\n"
            "assert not dist.is_available() and not dist.is_initialized()\n"
            "try:\n    dist.init_process_group('mpi')\nexcept RuntimeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install 'fusegrad[distributed]'" in out.stdout

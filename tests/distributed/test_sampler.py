"""DistributedSampler (in this process: explicit num_replicas and rank, no MPI): PyTorch's padding
and partition, the same permutation on every rank, a new one per epoch."""
from __future__ import annotations

import math

import pytest

import fusegrad
from fusegrad.utils.data import DataLoader, TensorDataset
from fusegrad.utils.data.distributed import DistributedSampler


def torch_partition(n: int, replicas: int, rank: int, drop_last: bool, order: list[int]) -> list[int]:
    """PyTorch's DistributedSampler.__iter__ on a given order (its code, transcribed)."""
    if drop_last and n % replicas != 0:
        num_samples = math.ceil((n - replicas) / replicas)
    else:
        num_samples = math.ceil(n / replicas)
    total = num_samples * replicas
    indices = list(order)
    if not drop_last:
        pad = total - len(indices)
        indices += indices[:pad] if pad <= len(indices) else (indices * math.ceil(pad / len(indices)))[:pad]
    else:
        indices = indices[:total]
    return indices[rank:total:replicas]


@pytest.mark.parametrize("n,replicas", [(10, 3), (12, 4), (2, 5), (7, 2), (1, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_unshuffled_partition_is_pytorchs(n, replicas, drop_last):
    for rank in range(replicas):
        s = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        want = torch_partition(n, replicas, rank, drop_last, list(range(n)))
        assert list(s) == want and len(s) == len(want)


def test_unshuffled_partition_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler
    for n, replicas, drop_last in [(10, 3, False), (10, 3, True), (2, 5, False), (9, 4, True)]:
        for rank in range(replicas):
            ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
            theirs = TorchSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)
    del torch


def test_shuffled_permutation_is_shared_and_seeded_by_epoch():
    n, replicas = 23, 3
    samplers = [DistributedSampler(range(n), num_replicas=replicas, rank=r, seed=5) for r in range(replicas)]
    order = fusegrad.randperm(n, generator=fusegrad.Generator(5)).tolist()       # seed + epoch 0
    for r, s in enumerate(samplers):
        assert list(s) == torch_partition(n, replicas, r, False, order)
    every = sorted(i for s in samplers for i in s)
    assert set(every) == set(range(n)) and len(every) == 24          # one index repeated as padding
    first = [list(s) for s in samplers]
    assert [list(s) for s in samplers] == first                         # the same epoch, the same order
    for s in samplers:
        s.set_epoch(1)
    second = [list(s) for s in samplers]
    assert second != first
    order1 = fusegrad.randperm(n, generator=fusegrad.Generator(6)).tolist()
    assert second == [torch_partition(n, replicas, r, False, order1) for r in range(replicas)]
    fusegrad.manual_seed(123)                                           # the global seed plays no part
    assert [list(s) for s in samplers] == second


def test_feeds_a_dataloader():
    x = fusegrad.arange(10.0)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(TensorDataset(x), num_replicas=2, rank=rank, shuffle=True, seed=1)
        loader = DataLoader(TensorDataset(x), batch_size=2, sampler=sampler)
        seen += [v for (batch,) in loader for v in batch.tolist()]
    assert sorted(seen) == [float(i) for i in range(10)]


def test_invalid_rank():
    with pytest.raises(ValueError, match=r"Invalid rank 3, rank should be in the interval \[0, 2\]"):
        DistributedSampler(range(4), num_replicas=3, rank=3)


def test_default_group_must_be_initialized():
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DistributedSampler(range(4))

"""fusegrad.utils.data in one process: datasets, samplers, collation, DataLoader batching,
lengths, argument checks, shuffling under fusegrad.manual_seed, the TensorDataset fast path,
and a compiled training step fed by a DataLoader. Worker processes: test_data_workers.py."""
from __future__ import annotations

import collections
import math
import types
import warnings

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.random import Generator
from fusegrad.utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    StackDataset,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    WorkerInfo,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)
from fusegrad.utils.data.fetch import MapDatasetFetcher
from fusegrad.utils.data.sampler import draw_seed


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": torch.tensor([float(i), float(i * i)]), "i": i}


class Count(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


class CountWithLen(Count):
    def __len__(self):
        return self.n


# ---------------------------------------------------------------- datasets

def test_tensor_dataset_items_length_and_size_mismatch():
    x = torch.arange(12).reshape(6, 2)
    y = torch.arange(6) * 10
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    a, b = ds[4]
    assert a.tolist() == [8, 9] and b.item() == 40
    assert [t.tolist() for t in ds[-1]] == [[10, 11], 50]
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(x, torch.arange(5))


def test_concat_subset_stack_and_chain_datasets():
    a, b = Squares(3), Squares(2)
    cat = a + b
    assert isinstance(cat, ConcatDataset) and len(cat) == 5 and cat.cumulative_sizes == [3, 5]
    assert [cat[i]["i"] for i in range(5)] == [0, 1, 2, 0, 1]
    assert cat[-1]["i"] == 1 and cat[-5]["i"] == 0
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        cat[-6]
    with pytest.raises(AssertionError, match="datasets should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        ConcatDataset([a, Count(3)])

    sub = Subset(Squares(10), [7, 2, 5])
    assert len(sub) == 3 and sub[0]["i"] == 7 and sub[-1]["i"] == 5
    assert [s["i"] for s in sub.__getitems__([2, 0])] == [5, 7]

    st = StackDataset(Squares(4), list("abcd"))
    assert st[2][0]["i"] == 2 and st[2][1] == "c" and len(st) == 4
    named = StackDataset(sq=Squares(4), letter=list("abcd"))
    items = named.__getitems__([3, 1])
    assert [(d["sq"]["i"], d["letter"]) for d in items] == [(3, "d"), (1, "b")]
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        StackDataset(Squares(4), [1, 2])

    chain = Count(3) + CountWithLen(2)
    assert isinstance(chain, ChainDataset) and list(chain) == [0, 1, 2, 0, 1]
    assert len(ChainDataset([CountWithLen(3), CountWithLen(4)])) == 7


def test_random_split_lengths_fractions_disjointness_and_generator():
    ds = list(range(11))
    parts = random_split(ds, [6, 5], generator=Generator(3))
    assert [len(p) for p in parts] == [6, 5]
    got = [x for p in parts for x in (p[i] for i in range(len(p)))]
    assert sorted(got) == ds                                      # disjoint, and together all of it
    again = random_split(ds, [6, 5], generator=Generator(3))
    assert [list(p.indices) for p in again] == [list(p.indices) for p in parts]
    other = random_split(ds, [6, 5], generator=Generator(4))
    assert [list(p.indices) for p in other] != [list(p.indices) for p in parts]
    # fractions: floors 5, 3, 2 (10 of 11); the remaining one goes to the first split
    fractions = random_split(ds, [0.5, 0.3, 0.2], generator=Generator(0))
    assert [len(p) for p in fractions] == [6, 3, 2]
    assert sorted(i for p in fractions for i in p.indices) == ds
    # 7 items in 4 quarters: floors 1 each, the 3 left go round-robin from the first
    assert [len(p) for p in random_split(range(7), [0.25] * 4, generator=Generator(0))] == [2, 2, 2, 1]
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset!"):
        random_split(ds, [5, 5])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(range(3), [0.9, 0.1], generator=Generator(0))


def test_random_split_fraction_lengths_match_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch (optional) is the oracle for split lengths")
    for n, fractions in [(11, [0.5, 0.3, 0.2]), (7, [0.25] * 4), (100, [0.7, 0.2, 0.1]), (5, [1 / 3] * 3)]:
        ours = [len(p) for p in random_split(range(n), fractions, generator=Generator(0))]
        theirs = [len(p) for p in pt.utils.data.random_split(range(n), fractions)]
        assert ours == theirs, (n, fractions)


def test_random_split_with_the_default_generator_follows_manual_seed():
    torch.manual_seed(5)
    a = [list(p.indices) for p in random_split(range(20), [10, 10])]
    torch.manual_seed(5)
    b = [list(p.indices) for p in random_split(range(20), [10, 10])]
    assert a == b and sorted(a[0] + a[1]) == list(range(20))


# ---------------------------------------------------------------- samplers

def test_sequential_random_and_subset_random_samplers():
    assert list(SequentialSampler(range(5))) == [0, 1, 2, 3, 4] and len(SequentialSampler(range(5))) == 5
    perm = list(RandomSampler(range(10), generator=Generator(1)))
    assert sorted(perm) == list(range(10)) and perm != list(range(10))
    assert list(RandomSampler(range(10), generator=Generator(1))) == perm
    assert list(RandomSampler(range(10), generator=Generator(1))) == torch.randperm(10, generator=Generator(1)).tolist()
    # more samples than items without replacement: whole permutations, then part of one more
    long = list(RandomSampler(range(5), num_samples=12, generator=Generator(2)))
    assert len(long) == 12 and sorted(long[:5]) == sorted(long[5:10]) == list(range(5)) and len(set(long[10:])) == 2
    drawn = list(RandomSampler(range(4), replacement=True, num_samples=70, generator=Generator(3)))
    assert len(drawn) == 70 and set(drawn) == {0, 1, 2, 3}
    assert len(RandomSampler(range(4), replacement=True, num_samples=70)) == 70
    with pytest.raises(TypeError, match="replacement should be a boolean value, but got replacement=1"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=0"):
        RandomSampler(range(3), num_samples=0)
    sub = list(SubsetRandomSampler([10, 20, 30, 40], generator=Generator(0)))
    assert sorted(sub) == [10, 20, 30, 40]


def test_random_sampler_draws_its_seed_from_the_default_generator():
    torch.manual_seed(11)
    expected = torch.randperm(10, generator=Generator(draw_seed())).tolist()
    torch.manual_seed(11)
    assert list(RandomSampler(range(10))) == expected
    sampler = RandomSampler(range(10))
    first, second = list(sampler), list(sampler)
    assert first != second and sorted(first) == sorted(second) == list(range(10))


def test_weighted_random_sampler_draws_as_multinomial():
    weights = [1.0, 0.0, 3.0, 2.0, 0.0, 4.0]
    with_rep = list(WeightedRandomSampler(weights, 40, generator=Generator(7)))
    expected = torch.multinomial(torch.tensor(weights, dtype=torch.float64), 40, True, generator=Generator(7))
    assert with_rep == expected.tolist() and not {1, 4} & set(with_rep)
    without = list(WeightedRandomSampler(weights, 4, replacement=False, generator=Generator(8)))
    expected = torch.multinomial(torch.tensor(weights, dtype=torch.float64), 4, False, generator=Generator(8))
    assert without == expected.tolist() and sorted(without) == [0, 2, 3, 5]
    counts = np.bincount(list(WeightedRandomSampler([1, 2, 7], 20000, generator=Generator(0))), minlength=3)
    np.testing.assert_allclose(counts / 20000, [0.1, 0.2, 0.7], atol=0.015)
    with pytest.raises(ValueError, match="weights should be a 1d sequence but given weights have shape"):
        WeightedRandomSampler([[1.0, 2.0]], 2)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
        WeightedRandomSampler([1.0], 0)
    with pytest.raises(RuntimeError, match="probability tensor contains either `inf`, `nan` or element < 0"):
        list(WeightedRandomSampler([1.0, -1.0], 2))
    with pytest.raises(RuntimeError, match="cannot sample n_sample > prob_dist.size"):
        list(WeightedRandomSampler([1.0, 1.0], 3, replacement=False))


def test_batch_sampler_lists_drop_last_and_length():
    assert list(BatchSampler(SequentialSampler(range(10)), 3, False)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert list(BatchSampler(SequentialSampler(range(10)), 3, True)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert len(BatchSampler(range(10), 3, False)) == 4 and len(BatchSampler(range(10), 3, True)) == 3
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value, but got drop_last=1"):
        BatchSampler(range(3), 2, 1)


# ---------------------------------------------------------------- collation

Point = collections.namedtuple("Point", ["x", "label"])


class FrozenMapping(collections.abc.Mapping):
    """A Mapping that cannot be copied and updated, only built from a dict."""

    def __init__(self, d):
        self._d = dict(d)

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)


def test_default_collate_numbers_strings_and_nested_structures():
    batch = default_collate([
        {"x": torch.tensor([1.0, 2.0]), "meta": (3, "a", True, 0.5), "p": Point(np.array([1, 2]), 7)},
        {"x": torch.tensor([3.0, 4.0]), "meta": (4, "b", False, 1.5), "p": Point(np.array([3, 4]), 8)},
    ])
    assert set(batch) == {"x", "meta", "p"}
    assert batch["x"].dtype is torch.float32 and batch["x"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    ints, strings, bools, floats = batch["meta"]                 # a tuple of fields becomes a list
    assert isinstance(batch["meta"], list)
    assert ints.dtype is torch.int64 and ints.tolist() == [3, 4]
    assert strings == ("a", "b")                                 # the transposed samples, as PyTorch
    assert bools.dtype is torch.bool and bools.tolist() == [True, False]
    assert floats.dtype is torch.float64 and floats.tolist() == [0.5, 1.5]
    assert isinstance(batch["p"], Point) and batch["p"].x.tolist() == [[1, 2], [3, 4]]
    assert batch["p"].x.dtype is torch.int64 and batch["p"].label.tolist() == [7, 8]
    # lists are transposed; mapping types are kept where they can be rebuilt
    lists = default_collate([[1, 2.5], [3, 4.5]])
    assert isinstance(lists, list) and lists[0].tolist() == [1, 3] and lists[1].tolist() == [2.5, 4.5]
    ordered = default_collate([collections.OrderedDict(a=1), collections.OrderedDict(a=2)])
    assert type(ordered) is collections.OrderedDict and ordered["a"].tolist() == [1, 2]
    frozen = default_collate([FrozenMapping({"a": 1}), FrozenMapping({"a": 2})])
    assert type(frozen) is FrozenMapping and frozen["a"].tolist() == [1, 2]
    scalars = default_collate([np.float32(1.5), np.float32(2.5)])
    assert scalars.dtype is torch.float32 and scalars.tolist() == [1.5, 2.5]
    halves = default_collate([np.ones(3, np.float16), np.zeros(3, np.float16)])
    assert halves.dtype is torch.float16 and halves.tolist() == [[1, 1, 1], [0, 0, 0]]


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0 and "
                                           r"\[3\] at entry 1"):
        default_collate([torch.ones(2), torch.ones(3)])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0 and "
                                           r"\[3\] at entry 1"):
        default_collate([np.ones(2), np.ones(3)])
    msg = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
    with pytest.raises(TypeError, match=msg.format("<U1")):
        default_collate([np.array(["a"]), np.array(["b"])])
    with pytest.raises(TypeError, match=msg.format("object")):
        default_collate([np.array([None]), np.array([None])])
    with pytest.raises(TypeError, match=msg.format("<class 'object'>")):
        default_collate([object(), object()])


def test_default_collate_stacks_into_one_fresh_buffer_keeping_the_dtype():
    rows = torch.tensor(np.linspace(-2, 2, 12).reshape(4, 3), dtype=torch.bfloat16)
    batch = default_collate([rows[2], rows[0], rows[3]])
    assert batch.dtype is torch.bfloat16 and tuple(batch.shape) == (3, 3)
    np.testing.assert_array_equal(batch._view_array(), rows._realize()._view_array()[[2, 0, 3]])   # the bits
    assert torch.program_of(batch) is None                 # made from data: no graph, no program ran
    half = default_collate([torch.ones(2, dtype=torch.float16), torch.zeros(2, dtype=torch.float16)])
    assert half.dtype is torch.float16 and half.tolist() == [[1, 1], [0, 0]]
    # a pending sample is computed first; mixed dtypes promote as fusegrad.stack does
    pending = default_collate([torch.arange(3) * 2, torch.arange(3) + 1])
    assert pending.tolist() == [[0, 2, 4], [1, 2, 3]]
    mixed = default_collate([torch.ones(2), torch.ones(2, dtype=torch.float64)])
    assert mixed.dtype is torch.float64 and mixed.tolist() == [[1, 1], [1, 1]]
    # samples that need autograd keep their history
    w = torch.ones(2, requires_grad=True)
    stacked = default_collate([w * 2, w * 3])
    stacked.sum().backward()
    assert w.grad.tolist() == [5.0, 5.0]


def test_default_collate_matches_pytorch_on_a_nested_sample():
    pt = pytest.importorskip("torch", reason="PyTorch (optional) is the oracle for default_collate")

    def samples(m):
        return [{"a": m.tensor([i, i + 1.0]), "b": (i, float(i) / 2, f"s{i}"), "c": [np.arange(3) + i, i % 2 == 0]}
                for i in range(4)]

    ours, theirs = default_collate(samples(torch)), pt.utils.data.default_collate(samples(pt))

    def plain(x, tensor_type):
        if isinstance(x, tensor_type):
            return (str(x.dtype).split(".")[-1], x.tolist())
        if isinstance(x, dict):
            return {k: plain(v, tensor_type) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x).__name__, [plain(v, tensor_type) for v in x]
        return x
    assert plain(ours, torch.Tensor) == plain(theirs, pt.Tensor)


def test_default_convert():
    out = default_convert({"a": np.array([1, 2]), "b": (np.float64(3.0), "s"), "c": [1, 2]})
    assert isinstance(out["a"], torch.Tensor) and out["a"].tolist() == [1, 2] and out["a"].dtype is torch.int64
    assert isinstance(out["b"], list) and out["b"][0].dtype is torch.float64 and out["b"][1] == "s"
    assert out["c"] == [1, 2]
    strings = np.array(["x", "y"])
    assert default_convert(strings) is strings


# ---------------------------------------------------------------- DataLoader

def test_batches_drop_last_and_length():
    ds = Squares(10)
    batches = list(DataLoader(ds, batch_size=4))
    assert len(DataLoader(ds, batch_size=4)) == 3 and len(batches) == 3
    assert [b["i"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[2]["x"].tolist() == [[8.0, 64.0], [9.0, 81.0]]
    dropped = list(DataLoader(ds, batch_size=4, drop_last=True))
    assert len(DataLoader(ds, batch_size=4, drop_last=True)) == len(dropped) == 2
    # batch_size=None: no batching, default_convert on each sample
    single = list(DataLoader([np.array([1, 2]), np.array([3, 4])], batch_size=None))
    assert [s.tolist() for s in single] == [[1, 2], [3, 4]] and isinstance(single[0], torch.Tensor)
    # a batch_sampler gives the batches
    custom = DataLoader(ds, batch_sampler=[[9, 0], [5]])
    assert [b["i"].tolist() for b in custom] == [[9, 0], [5]] and len(custom) == 2


def test_lengths_match_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch (optional) is the oracle for len(DataLoader)")
    for n in (1, 7, 8, 9):
        for bs in (1, 3, 8, None):
            for drop_last in (False, True):
                if bs is None and drop_last:
                    continue
                ours = len(DataLoader(range(n), batch_size=bs, drop_last=drop_last))
                assert ours == len(pt.utils.data.DataLoader(range(n), batch_size=bs, drop_last=drop_last))
                it_ours = len(DataLoader(CountWithLen(n), batch_size=bs, drop_last=drop_last))
                assert it_ours == (n if bs is None else n // bs if drop_last else math.ceil(n / bs))


def test_iterable_dataset_loading_and_length():
    assert [b.tolist() for b in DataLoader(Count(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.tolist() for b in DataLoader(Count(7), batch_size=3, drop_last=True)] == [[0, 1, 2], [3, 4, 5]]
    assert list(DataLoader(Count(3), batch_size=None)) == [0, 1, 2]
    with pytest.raises(TypeError, match="has no len"):
        len(DataLoader(Count(3)))
    assert len(DataLoader(CountWithLen(7), batch_size=3)) == 3
    with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified shuffle option, "
                                         "but got shuffle=True"):
        DataLoader(Count(3), shuffle=True)
    assert get_worker_info() is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_workers=-1), "num_workers option should be non-negative; use num_workers=0 to disable multiprocessing."),
    (dict(timeout=-1), "timeout option should be non-negative"),
    (dict(prefetch_factor=2), "prefetch_factor option could only be specified in multiprocessing.let num_workers > 0 "
                              "to enable multiprocessing, otherwise set prefetch_factor to None."),
    (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
    (dict(sampler=[0, 1], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                              "sampler, and drop_last"),
    (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually exclusive with batch_size, "
                                                "shuffle, sampler, and drop_last"),
    (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching and is mutually "
                                            "exclusive with drop_last"),
    (dict(multiprocessing_context="fork"), "multiprocessing_context can only be used with multi-process loading "
                                           "(num_workers > 0), but got num_workers=0"),
])
def test_argument_errors_are_pytorchs(kwargs, message):
    with pytest.raises(ValueError) as err:
        DataLoader(list(range(4)), **kwargs)
    assert str(err.value) == message
    pt = pytest.importorskip("torch", reason="PyTorch (optional) is the oracle for the messages")
    with pytest.raises(ValueError) as theirs:
        pt.utils.data.DataLoader(list(range(4)), **kwargs)
    assert str(theirs.value) == message


def test_attributes_are_frozen_and_pin_memory_warns_without_an_accelerator():
    loader = DataLoader(range(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after DataLoader is initialized"):
        loader.batch_size = 3
    loader.num_workers = 0          # not frozen in PyTorch either
    if torch.accelerator.is_available():
        pytest.skip("an accelerator is present: no warning")
    with pytest.warns(UserWarning, match="'pin_memory' argument is set as true but no accelerator is found, then "
                                         "device pinned memory won't be used."):
        batches = list(DataLoader(range(4), batch_size=2, pin_memory=True))
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3]]


def test_shuffle_follows_manual_seed_and_changes_every_epoch():
    def epochs(loader, n=3):
        return [[i for b in loader for i in b.tolist()] for _ in range(n)]
    loader = DataLoader(range(20), batch_size=6, shuffle=True)
    torch.manual_seed(0)
    first = epochs(loader)
    torch.manual_seed(0)
    assert epochs(loader) == first                                    # same seed: same orders
    torch.manual_seed(1)
    assert epochs(loader) != first                                    # another seed: other orders
    assert all(sorted(e) == list(range(20)) for e in first)           # each index once per epoch
    assert first[0] != first[1] != first[2] and first[0] != first[2]  # a new order every epoch
    # a generator of its own: independent of the default generator
    g_orders = [epochs(DataLoader(range(20), batch_size=6, shuffle=True, generator=Generator(9)), 2)
                for _ in range(2)]
    assert g_orders[0] == g_orders[1] and g_orders[0][0] != g_orders[0][1]


def test_dataset_getitems_is_used_for_batches():
    class Batched(Dataset):
        calls: list = []

        def __len__(self):
            return 5

        def __getitem__(self, i):
            raise AssertionError("per-item access: __getitems__ should have been used")

        def __getitems__(self, indices):
            self.calls.append(list(indices))
            return [i * 10 for i in indices]
    batches = [b.tolist() for b in DataLoader(Batched(), batch_size=2)]
    assert batches == [[0, 10], [20, 30], [40]] and Batched.calls == [[0, 1], [2, 3], [4]]


def test_tensor_dataset_fast_path_equals_per_sample_collation():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((23, 3, 2)).astype(np.float32))
    y = torch.tensor(rng.integers(0, 5, 23))
    h = torch.tensor(rng.standard_normal((23, 4)), dtype=torch.bfloat16)
    for ds in (TensorDataset(x, y, h), random_split(TensorDataset(x, y, h), [13, 10], generator=Generator(1))[0],
               Subset(Subset(TensorDataset(x, y, h), list(range(20, 2, -1))), [-1, 0, 5, 7, 3, 2, 4])):
        assert MapDatasetFetcher(ds, True, default_collate, False).fast is not None
        for kw in (dict(batch_size=5), dict(batch_size=4, shuffle=True)):
            fast = list(DataLoader(ds, generator=Generator(2), **kw))
            slow = list(DataLoader(ds, generator=Generator(2), collate_fn=lambda b: default_collate(b), **kw))
            assert len(fast) == len(slow) > 0
            for f, s in zip(fast, slow):
                assert isinstance(f, list) and [t.dtype for t in f] == [torch.float32, torch.int64, torch.bfloat16]
                for a, b in zip(f, s):
                    assert a.dtype is b.dtype and a.shape == b.shape
                    np.testing.assert_array_equal(a._view_array(), b._view_array())    # bfloat16: the same bits
    # out of range: the per-sample path's IndexError
    with pytest.raises(IndexError):
        list(DataLoader(TensorDataset(x), batch_sampler=[[0, 23]]))


def test_bfloat16_batches():
    values = np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2)
    data = torch.tensor(values, dtype=torch.bfloat16)
    batches = list(DataLoader(TensorDataset(data), batch_size=3))
    assert [b[0].dtype for b in batches] == [torch.bfloat16] * 2
    got = np.concatenate([b[0]._host_values() for b in batches])
    np.testing.assert_array_equal(got, data._host_values())
    per_sample = list(DataLoader([data[i] for i in range(4)], batch_size=3))       # a list dataset: collated
    assert per_sample[0].dtype is torch.bfloat16
    np.testing.assert_array_equal(per_sample[0]._host_values(), data._host_values()[:3])


def test_compiled_step_on_loader_batches_traces_once_with_drop_last():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((42, 4)).astype(np.float32))
    y = torch.tensor(rng.standard_normal((42, 2)).astype(np.float32))

    def train(compiled, drop_last=True, epochs=2):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for p in model.parameters():        # gradients exist before the first call: it creates no state
            p.grad = torch.zeros_like(p)

        def step(xb, yb):
            opt.zero_grad(set_to_none=False)
            loss = ((model(xb) - yb) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        step = torch.compile(step) if compiled else step
        loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, drop_last=drop_last)
        losses = [step(xb, yb).item() for _ in range(epochs) for xb, yb in loader]
        return step, losses, [p.detach().numpy().copy() for p in model.parameters()]

    step, losses, params = train(compiled=True)
    assert len(losses) == 10 and step.stats["traces"] == 1 and step.stats["replays"] == 9
    _, eager_losses, eager_params = train(compiled=False)
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    for c, e in zip(params, eager_params):
        np.testing.assert_allclose(c, e, rtol=1e-5, atol=1e-7)
    ragged, _, _ = train(compiled=True, drop_last=False, epochs=1)    # a last batch of 2: another shape
    assert ragged.stats["traces"] == 2


def test_worker_info_is_a_frozen_record():
    info = WorkerInfo(id=1, num_workers=2, seed=5, dataset=None)
    with pytest.raises(AttributeError):
        info.id = 3
    assert (info.id, info.num_workers, info.seed) == (1, 2, 5)


def test_module_docstrings_and_public_names():
    import fusegrad.utils.data as data
    for name in data.__all__:
        assert hasattr(data, name), name
    for module in ("dataset", "sampler", "collate", "fetch", "worker", "dataloader"):
        mod = getattr(data, module)
        assert isinstance(mod, types.ModuleType) and mod.__doc__ and len(mod.__doc__) > 40, module
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a plain loop warns about nothing
        assert [b.tolist() for b in DataLoader(range(3), batch_size=2)] == [[0, 1], [2]]

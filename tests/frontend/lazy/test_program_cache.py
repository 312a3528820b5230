"""The eager program cache (issue 12, parts 3 and 4): IR nodes never change, the frontend
keeps what it knows about values (buffers) in its own table, and a realization finds its
program by a key made of the nodes' own structural keys plus where the walk stopped."""
from __future__ import annotations

import gc
import weakref

import numpy as np

import fusegrad
from fusegrad import realize
from fusegrad.compiler.ir import Node


def test_program_cache_info_counts_hits_misses_and_size():
    info = fusegrad.program_cache_info()
    assert set(info) >= {"hits", "misses", "evictions", "size", "maxsize"}
    assert info["maxsize"] == realize.MAX_PROGRAMS
    x = fusegrad.tensor(np.arange(7, dtype=np.float32))
    before = fusegrad.program_cache_info()
    for k in range(5):
        assert (x * 2 + k).sum().item() == float((np.arange(7) * 2 + k).sum())
    after = fusegrad.program_cache_info()
    # the constants differ (they are attributes), so each k may be its own program; the same
    # structure with other data is a hit
    y = fusegrad.tensor(np.ones(7, dtype=np.float32))
    h = after["hits"]
    assert (y * 2 + 4).sum().item() == 7 * 2 + 4 * 7
    assert fusegrad.program_cache_info()["hits"] == h + 1
    assert after["misses"] >= before["misses"]
    assert 0 < fusegrad.program_cache_info()["size"] <= realize.MAX_PROGRAMS


def test_same_tree_other_sharing_of_leaves_is_another_program():
    a = fusegrad.tensor([1.0, 2.0])
    b = fusegrad.tensor([10.0, 20.0])
    # as trees over leaves of one type these are the same; which leaf each reads differs
    r1 = (a * 2 + a * 3 + b * 5).numpy()
    r2 = (a * 2 + b * 3 + a * 5).numpy()
    np.testing.assert_allclose(r1, [55.0, 110.0])
    np.testing.assert_allclose(r2, [37.0, 74.0])
    u, w = a.exp(), b.exp()
    s1 = (u * 2 + u * 3 + w * 5).numpy()   # a shared pending node, then another
    s2 = (u * 2 + w * 3 + u * 5).numpy()
    ea, eb = np.exp([1.0, 2.0]), np.exp([10.0, 20.0])
    np.testing.assert_allclose(s1, 5 * ea + 5 * eb, rtol=1e-5)
    np.testing.assert_allclose(s2, 7 * ea + 3 * eb, rtol=1e-5)


def test_shared_subgraph_position_is_part_of_the_key():
    a = fusegrad.tensor([1.0])
    b = fusegrad.tensor([2.0])
    ga, gb = a.exp(), b.exp()
    f1 = fusegrad.stack([ga, ga, gb]).numpy()
    ga2, gb2 = a.exp(), b.exp()
    f2 = fusegrad.stack([ga2, gb2, ga2]).numpy()
    np.testing.assert_allclose(f1[:, 0], np.exp([1.0, 1.0, 2.0]), rtol=1e-6)
    np.testing.assert_allclose(f2[:, 0], np.exp([1.0, 2.0, 1.0]), rtol=1e-6)


def test_nodes_hold_no_runtime_facts_and_never_change():
    x = fusegrad.tensor([1.0, 2.0])
    assert not hasattr(x._storage.node, "buffer") and not hasattr(x._storage.node, "depth")
    assert set(Node.__slots__) <= {"op", "inputs", "attrs", "shape", "dtype", "loc", "sig", "key", "height",
                                   "__weakref__"}
    y = x * 2
    node = y._storage.node
    inputs = node.inputs
    z = y + 1                      # built on y's pending node
    y.numpy()
    assert node.inputs is inputs   # realizing did not cut the node's inputs
    assert y._storage.node is not node and y._storage.node.inputs == ()   # a fresh leaf holds the value
    x.add_(10)                     # z reads y's computed value, not x's new one
    np.testing.assert_allclose(z.numpy(), [3.0, 5.0])


def test_realized_history_is_freed():
    x = fusegrad.tensor(np.ones(4, dtype=np.float32))
    y = x
    for _ in range(50):
        y = y + 1
    ref = weakref.ref(y._storage.node)
    y.numpy()
    gc.collect()
    assert ref() is None           # nobody else held the pending node: gone with its history
    assert y.numpy()[0] == 51.0


def test_a_chain_hits_the_cache_every_round():
    x = fusegrad.ones(100)
    for _ in range(3):
        for _ in range(300):
            x = x + 1
        x.numpy()
    hits = fusegrad.program_cache_info()["hits"]
    for _ in range(300):
        x = x + 1
    x.numpy()
    assert fusegrad.program_cache_info()["hits"] == hits + 1
    assert x.numpy()[0] == 1 + 4 * 300


def test_node_keys_are_structural():
    a = fusegrad.tensor([1.0, 2.0])._storage.node
    b = fusegrad.tensor([5.0, 6.0])._storage.node
    from fusegrad.compiler.ir import make
    assert make("add", (a, a)).key == make("add", (b, b)).key == make("add", (a, b)).key
    assert make("add", (a, a)).key != make("mul", (a, a)).key
    assert make("exp", (a,)).height == 2


def test_a_pending_value_built_on_a_computed_one_keeps_its_old_value_after_an_update():
    x = fusegrad.tensor([1.0, 2.0])
    y = x * 2
    z = y + 1                      # holds y's pending node
    y.numpy()                      # y's value computed; z will read it
    y.add_(5)                      # y's buffer is overwritten in place when realized
    np.testing.assert_allclose(y.numpy(), [7.0, 9.0])
    np.testing.assert_allclose(z.numpy(), [3.0, 5.0])
    y.mul_(0)
    np.testing.assert_allclose((z + y).numpy(), [3.0, 5.0])

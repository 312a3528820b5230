"""runtime/buffers.py: aligned buffers, the address cache, and the pool of large buffers."""
import numpy as np

from fusegrad.runtime import buffers


def _address(a):
    return a.__array_interface__["data"][0]


def test_buffers_are_aligned_and_their_addresses_cached():
    for shape, dtype in [((3,), np.float32), ((7, 5), np.int64), ((2048, 1024), np.float32)]:
        a = buffers.aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert _address(a) % buffers.ALIGN == 0 and buffers.address(a) == _address(a)


def test_large_buffers_are_reused_only_once_nothing_refers_to_them():
    shape = (buffers.POOL_MIN_BYTES // 4 + 13,)
    a = buffers.aligned_empty(shape, np.float32)
    a[:] = 1.0
    b = buffers.aligned_empty(shape, np.float32)          # a is alive: other memory
    assert not np.shares_memory(a, b)
    view, where = a[10:], _address(a)
    del a
    c = buffers.aligned_empty(shape, np.float32)          # a view keeps a's memory in use
    assert not np.shares_memory(c, view)
    np.testing.assert_array_equal(view, 1.0)
    c[:] = 2.0
    np.testing.assert_array_equal(view, 1.0)
    del view
    d = buffers.aligned_empty(shape, np.float32)          # now it is free again
    assert _address(d) == where
    del b, c, d


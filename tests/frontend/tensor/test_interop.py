"""Exchanging data with other libraries without copies: numpy's array protocol (`np.asarray`,
numpy 2's `copy=`), DLPack both ways (`Tensor.__dlpack__`, `fusegrad.utils.dlpack.from_dlpack` /
`to_dlpack`), and what `fusegrad.tensor` / `as_tensor` read (array-likes, buffers, numpy scalars,
other libraries' tensors). Memory sharing is checked by writing through one side and reading
through the other. PyTorch, when installed, is the oracle for its own side of DLPack."""
import array
import gc
import warnings
import weakref

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.utils.dlpack import DLDeviceType, from_dlpack, to_dlpack

BF16_VALUES = [1.5, -2.25, 0.0, 3.0e38, 1.0 / 3.0]


def _pt():
    return pytest.importorskip("torch", reason="PyTorch is the other side of the exchange")


class _ArrayLike:
    """An object numpy reads through `__array__` only."""

    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a


# ---------------------------------------------------------------- numpy's array protocol

def test_asarray_shares_the_tensors_memory():
    t = torch.arange(6.0).view(2, 3)
    a = np.asarray(t)
    assert a.dtype == np.float32 and np.shares_memory(a, t.numpy())
    a[0, 0] = 100.0                       # numpy writes, the tensor sees it
    assert t[0, 0].item() == 100.0
    t.mul_(2)                             # an in-place op lands in the same memory
    np.testing.assert_array_equal(a, [[200.0, 2.0, 4.0], [6.0, 8.0, 10.0]])
    assert np.shares_memory(np.asarray(t.t()), a) and np.asarray(t.t()).strides == (4, 12)
    col = np.asarray(t[:, 1])
    assert np.shares_memory(col, a) and col.tolist() == [2.0, 8.0]


def test_asarray_of_a_pending_tensor_realizes_it():
    x = torch.tensor([1.0, 2.0])
    y = x * 3 + 1                         # lazy until read
    a = np.asarray(y)
    np.testing.assert_array_equal(a, [4.0, 7.0])
    y.add_(1)
    np.testing.assert_array_equal(a, [5.0, 8.0])


def test_asarray_of_an_expanded_view_is_a_writable_view():
    base = torch.tensor([1.0, 2.0, 3.0])
    a = np.asarray(base.expand(2, 3))
    assert a.strides == (0, 4) and a.flags.writeable and np.shares_memory(a, base.numpy())
    a[0, 1] = 20.0
    assert base.tolist() == [1.0, 20.0, 3.0]


def test_array_protocol_copy_keyword():
    t = torch.tensor([1.0, 2.0])
    assert not np.shares_memory(np.array(t), t.numpy())            # np.array copies (copy=True)
    assert not np.shares_memory(np.asarray(t, copy=True), t.numpy())
    assert np.shares_memory(np.asarray(t, copy=False), t.numpy())
    assert np.shares_memory(np.asarray(t, dtype=np.float32, copy=False), t.numpy())
    with pytest.raises(ValueError, match="Unable to avoid copy.*float32 and float64 was asked for"):
        np.asarray(t, dtype=np.float64, copy=False)
    converted = np.asarray(t, dtype=np.float64)
    assert converted.dtype == np.float64 and converted.tolist() == [1.0, 2.0]


def test_array_protocol_of_bfloat16_gives_float32_values_copied():
    t = torch.tensor(BF16_VALUES, dtype=torch.bfloat16)
    a = np.asarray(t)
    expected = np.array(BF16_VALUES, dtype=np.float32).view(np.uint32) + 0x8000 & 0xFFFF0000  # round to nearest
    assert a.dtype == np.float32 and a.view(np.uint32).tolist() == expected.tolist()
    with pytest.raises(ValueError, match="Unable to avoid copy.*numpy has no bfloat16"):
        np.asarray(t, copy=False)


# ---------------------------------------------------------------- DLPack: fusegrad exports

def test_numpy_reads_a_tensor_through_dlpack():
    t = torch.arange(12, dtype=torch.int64).view(3, 4)
    assert t.__dlpack_device__() == (DLDeviceType.kDLCPU, 0)
    a = np.from_dlpack(t)
    assert a.dtype == np.int64 and np.shares_memory(a, t.numpy())
    t.add_(100)
    assert a[2, 3] == 111
    view = np.from_dlpack(t[::2, 1:].t())          # strided and transposed: the same memory
    assert view.shape == (3, 2) and view.strides == (8, 64) and np.shares_memory(view, a)
    np.testing.assert_array_equal(view, [[101, 109], [102, 110], [103, 111]])
    view[0, 0] = -1
    assert t[0, 1].item() == -1


def test_dlpack_export_of_every_numpy_dtype():
    for dt, values in [(torch.float32, [1.5, -2.0]), (torch.float64, [1e300, -0.5]), (torch.float16, [0.5, 65504.0]),
                       (torch.int32, [-7, 2**31 - 1]), (torch.int64, [2**62, -3]), (torch.uint8, [0, 255]),
                       (torch.bool, [True, False])]:
        t = torch.tensor(values, dtype=dt)
        a = np.from_dlpack(t)
        assert a.dtype == dt.np and a.tolist() == values, dt


def test_dlpack_export_capsules_and_keywords():
    t = torch.tensor([1.0, 2.0, 3.0])
    assert "dltensor_versioned" in repr(t.__dlpack__(max_version=(1, 0)))
    assert '"dltensor"' in repr(t.__dlpack__()) and '"dltensor"' in repr(to_dlpack(t))
    copied = np.from_dlpack(t, copy=True)
    assert not np.shares_memory(copied, t.numpy()) and copied.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(AssertionError, match="stream should be None on cpu"):
        t.__dlpack__(stream=5)
    with pytest.raises(BufferError):
        t.__dlpack__(dl_device=(DLDeviceType.kDLCUDA, 0))


def test_dlpack_export_refuses_a_tensor_that_requires_grad():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(BufferError, match=r"Can't export tensors that require gradient, use tensor.detach\(\)"):
        w.__dlpack__()
    with pytest.raises(BufferError, match="require gradient"):
        np.from_dlpack(w * 2)
    assert np.from_dlpack(w.detach()).tolist() == [1.0, 1.0]
    assert from_dlpack(to_dlpack(w)).tolist() == [1.0, 1.0]       # the legacy to_dlpack exports the data


# ---------------------------------------------------------------- DLPack: fusegrad imports

def test_from_dlpack_shares_a_numpy_arrays_memory():
    n = np.arange(6.0).reshape(2, 3)
    t = from_dlpack(n)
    assert t.dtype is torch.float64 and t.shape == (2, 3) and t.tolist() == n.tolist()
    n[1, 2] = -5.0
    assert t[1, 2].item() == -5.0
    t.add_(1)
    np.testing.assert_array_equal(n, [[1.0, 2.0, 3.0], [4.0, 5.0, -4.0]])
    cols = n[:, ::2]                                        # a strided array: a view, no copy
    s = from_dlpack(cols)
    assert s.tolist() == cols.tolist()
    s.mul_(10)
    np.testing.assert_array_equal(n, [[10.0, 2.0, 30.0], [40.0, 5.0, -40.0]])


def test_from_dlpack_of_capsules():
    n = np.array([1, 2, 3], dtype=np.int32)
    capsule = n.__dlpack__()
    t = from_dlpack(capsule)
    assert t.dtype is torch.int32 and t.tolist() == [1, 2, 3]
    with pytest.raises(RuntimeError, match="from_dlpack received an invalid capsule"):
        from_dlpack(capsule)                             # consumed once
    with pytest.raises(RuntimeError, match="from_dlpack received an invalid capsule"):
        from_dlpack(object())
    back = from_dlpack(to_dlpack(t))
    back.add_(1)
    assert n.tolist() == [2, 3, 4]


def test_from_dlpack_of_a_fusegrad_tensor_is_an_alias():
    x = torch.tensor([1.0, 2.0])
    y = from_dlpack(x)
    x.add_(1)
    assert y.tolist() == [2.0, 3.0] and not y.requires_grad
    with pytest.raises(BufferError, match="require gradient"):
        from_dlpack(torch.ones(2, requires_grad=True))
    z = from_dlpack(x, copy=True)
    x.add_(1)
    assert z.tolist() == [2.0, 3.0]


def test_from_dlpack_errors():
    with pytest.raises(TypeError, match="fusegrad has no dtype for int16 data"):
        from_dlpack(np.zeros(2, dtype=np.int16))
    with pytest.raises(TypeError, match="complex64"):
        from_dlpack(np.zeros(2, dtype=np.complex64))
    with pytest.raises(BufferError, match="negative strides"):
        from_dlpack(np.arange(4.0)[::-1])
    with pytest.raises(AssertionError, match="not supported when ext_tensor is already a DLPack capsule"):
        from_dlpack(np.arange(2.0).__dlpack__(), copy=True)

    class OnGpu:
        def __dlpack__(self, **kwargs):
            raise AssertionError("not asked for: the device is read first")

        def __dlpack_device__(self):
            return (2, 0)
    with pytest.raises(BufferError, match="host memory only.*CUDA:0"):
        from_dlpack(OnGpu())


def test_imported_memory_lives_as_long_as_the_tensors_over_it():
    """The producer's deleter runs when the last tensor over its memory dies, not before (the
    numpy array a capsule exports stays alive while the capsule's manager holds it)."""
    n = np.arange(4.0)
    alive = weakref.ref(n)
    t = from_dlpack(n)
    view = t[1:]
    del n, t
    gc.collect()
    assert alive() is not None and view.tolist() == [1.0, 2.0, 3.0]
    del view
    gc.collect()
    assert alive() is None
    refused = np.zeros(2, dtype=np.int16)           # a capsule taken, then refused: freed as well
    alive = weakref.ref(refused)
    with pytest.raises(TypeError):
        from_dlpack(refused)
    del refused
    gc.collect()
    assert alive() is None


def test_cuda_tensors_are_not_exported_yet():
    t = torch.tensor([1.0, 2.0])
    t._storage.device = torch.device("cuda", 0)     # (a stand-in: no GPU here) the device, not the buffer
    assert t.__dlpack_device__() == (DLDeviceType.kDLCUDA, 0)
    with pytest.raises(BufferError, match="cannot export CUDA tensors through DLPack yet"):
        t.__dlpack__()
    with pytest.raises(ValueError, match="Unable to avoid copy.*CUDA device"):
        np.asarray(t, copy=False)


def test_from_dlpack_of_read_only_memory_copies_on_write():
    n = np.frombuffer(bytearray(np.arange(3, dtype=np.float32).tobytes()), dtype=np.float32)
    n.flags.writeable = False
    with pytest.warns(UserWarning, match="read-only"):
        t = from_dlpack(n)
    assert t.tolist() == [0.0, 1.0, 2.0]
    t.add_(1)
    assert t.tolist() == [1.0, 2.0, 3.0] and n.tolist() == [0.0, 1.0, 2.0]


# ---------------------------------------------------------------- tensor() and as_tensor() inputs

def test_tensor_reads_buffers_as_pytorch_does():
    """PyTorch reads buffer-protocol objects as sequences of Python numbers (ints: int64, floats:
    the default float dtype) and refuses bytes."""
    _check(torch.tensor(memoryview(b"abc")), [97, 98, 99], torch.int64)
    _check(torch.tensor(bytearray(b"\x01\xff")), [1, 255], torch.int64)
    _check(torch.tensor(array.array("d", [1.5, 2.0])), [1.5, 2.0], torch.float32)
    _check(torch.tensor(array.array("i", [-1, 7])), [-1, 7], torch.int64)
    _check(torch.as_tensor(memoryview(np.arange(4.0).reshape(2, 2))), [[0.0, 1.0], [2.0, 3.0]], torch.float32)
    _check(torch.tensor(range(2, 5)), [2, 3, 4], torch.int64)
    with pytest.raises(TypeError, match="new\\(\\): invalid data type 'bytes'"):
        torch.tensor(b"abc")
    with pytest.raises(TypeError, match="new\\(\\): invalid data type 'str'"):
        torch.tensor(array.array("u", "ab"))


def test_tensor_and_as_tensor_of_array_likes():
    a = np.array([[1, 2], [3, 4]], dtype=np.int32)
    t = torch.tensor(_ArrayLike(a))
    _check(t, [[1, 2], [3, 4]], torch.int32)
    a[0, 0] = 9
    assert t[0, 0].item() == 1                          # tensor() copies
    shared = torch.as_tensor(_ArrayLike(a))
    a[0, 1] = 8
    assert shared.tolist() == [[9, 8], [3, 4]]          # as_tensor shares
    _check(torch.as_tensor(_ArrayLike(a), dtype=torch.float64), [[9.0, 8.0], [3.0, 4.0]], torch.float64)


def test_numpy_scalars_and_arrays_in_lists_promote_as_in_pytorch():
    """PyTorch promotes the elements' dtypes: numpy scalars keep theirs (the expected dtypes are
    PyTorch 2.13's)."""
    _check(torch.tensor([np.float64(1.5), 2]), [1.5, 2.0], torch.float64)
    _check(torch.tensor([np.float16(0.5), 1]), [0.5, 1.0], torch.float16)
    _check(torch.tensor([np.float16(0.5), 1.0]), [0.5, 1.0], torch.float32)
    _check(torch.tensor([np.int32(3), True]), [3, 1], torch.int32)
    _check(torch.tensor([np.int32(3), 4]), [3, 4], torch.int64)
    _check(torch.tensor([np.uint8(200), True]), [200, 1], torch.uint8)
    _check(torch.tensor([np.int8(-3), 4]), [-3, 4], torch.int64)        # (no int8 in fusegrad: a Python int's)
    _check(torch.tensor([np.array([1.0, 2.0]), np.array([3, 4])]), [[1.0, 2.0], [3.0, 4.0]], torch.float64)
    _check(torch.tensor([torch.tensor(1.5, dtype=torch.float64), 1]), [1.5, 1.0], torch.float64)
    _check(torch.tensor([torch.tensor([2.5]), torch.tensor([1])]), [2.5, 1.0], torch.float32)   # 1 element: a number


def _check(t, values, dtype):
    assert t.dtype is dtype and t.tolist() == values, (t.dtype, t.tolist())


# ---------------------------------------------------------------- PyTorch on the other side

PT_DTYPES = ["float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool"]


def _pt_values(pt, name):
    rng = np.random.default_rng(7)
    if name == "bool":
        return pt.from_numpy(rng.random((3, 4)) < 0.5)
    if name in ("int32", "int64", "uint8"):
        return pt.from_numpy(rng.integers(0, 200, size=(3, 4))).to(getattr(pt, name))
    return (pt.from_numpy(rng.standard_normal((3, 4))) * 100).to(getattr(pt, name))


def _pt_bits(pt, x):
    """A PyTorch tensor's elements as comparable integers (16-bit floats by their bit patterns)."""
    x = x.contiguous()
    if x.dtype in (pt.bfloat16, pt.float16):
        x = x.view(pt.int16)
    return x.numpy().tolist()


def test_pytorch_reads_fusegrad_tensors_of_every_dtype():
    pt = _pt()
    for name in PT_DTYPES:
        src = _pt_values(pt, name)
        t = torch.tensor(src)                             # PyTorch -> fusegrad (a copy)
        assert t.dtype is getattr(torch, name), name
        back = pt.from_dlpack(t)                          # fusegrad -> PyTorch (shared)
        assert back.dtype == src.dtype and _pt_bits(pt, back) == _pt_bits(pt, src), name
        view = pt.from_dlpack(t.t()[1:, ::2])
        assert view.stride() == (1, 8) and _pt_bits(pt, view) == _pt_bits(pt, src.t()[1:, ::2]), name


def test_memory_is_shared_with_pytorch_both_ways():
    pt = _pt()
    for name in ("float32", "bfloat16", "int64"):
        p = pt.arange(6).to(getattr(pt, name)).view(2, 3)
        f = from_dlpack(p)                                # PyTorch's memory in fusegrad
        assert f.dtype is getattr(torch, name) and f.tolist() == p.tolist()
        p[0, 1] = 40
        assert f[0, 1].item() == 40
        f.mul_(2)
        assert p.tolist() == [[0, 80, 4], [6, 8, 10]]
        g = pt.from_dlpack(f.t())                         # fusegrad's memory (PyTorch's) back in PyTorch
        g[2, 1] = -1
        assert f[1, 2].item() == -1 and p[1, 2].item() == -1


def test_pytorch_bfloat16_bits_survive_both_ways():
    pt = _pt()
    p = pt.tensor(BF16_VALUES + [float("inf"), -0.0], dtype=pt.bfloat16)
    f = from_dlpack(p)
    assert f.dtype is torch.bfloat16 and f.tolist() == p.float().tolist()
    assert _pt_bits(pt, pt.from_dlpack(f)) == _pt_bits(pt, p)
    mine = torch.tensor(BF16_VALUES, dtype=torch.bfloat16)       # fusegrad's own rounding, read by PyTorch
    assert pt.from_dlpack(mine).tolist() == pt.tensor(BF16_VALUES, dtype=pt.bfloat16).tolist()


def test_tensor_and_as_tensor_of_pytorch_tensors():
    pt = _pt()
    p = pt.tensor([[1.5, 2.0], [3.0, 4.0]], dtype=pt.float64)
    t = torch.tensor(p)
    assert t.dtype is torch.float64 and t.tolist() == p.tolist()
    p[0, 0] = 0.0
    assert t[0, 0].item() == 1.5                                  # tensor() copies
    shared = torch.as_tensor(p.t())
    p[1, 0] = 9.0
    assert shared.tolist() == [[0.0, 9.0], [2.0, 4.0]]             # as_tensor shares (a strided view)
    converted = torch.as_tensor(p, dtype=torch.float32)
    assert converted.dtype is torch.float32 and converted.tolist() == [[0.0, 2.0], [9.0, 4.0]]
    w = pt.tensor([1.0, 2.0], requires_grad=True)
    for make in (torch.tensor, torch.as_tensor):
        c = make(w)                                               # copied, detached: not refused
        assert c.tolist() == [1.0, 2.0] and not c.requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                           # PyTorch warns about lists of tensors
        for data in ([pt.tensor(1.5, dtype=pt.float64), 1], [pt.tensor(2, dtype=pt.uint8), True],
                     [pt.tensor(1.0, dtype=pt.bfloat16), np.float16(2.0)], [[pt.tensor(3)], [pt.tensor(4)]]):
            expected = pt.tensor(data)
            got = torch.tensor(data)
            assert got.dtype.name == str(expected.dtype).split(".")[1] and got.tolist() == expected.tolist(), data
    with pytest.raises(TypeError, match="int16"):
        torch.tensor(pt.zeros(2, dtype=pt.int16))
    with pytest.raises(TypeError, match="no dtype for DLPack data of type float8_e4m3fn"):
        from_dlpack(pt.zeros(2, dtype=pt.float8_e4m3fn))
    assert torch.tensor(pt.zeros(2, dtype=pt.int16), dtype=torch.int32).dtype is torch.int32


def test_pytorch_legacy_capsules():
    pt = _pt()
    p = pt.arange(4, dtype=pt.int32)
    f = from_dlpack(pt.utils.dlpack.to_dlpack(p))
    f.add_(1)
    assert p.tolist() == [1, 2, 3, 4]
    back = pt.utils.dlpack.from_dlpack(to_dlpack(f))
    back[0] = 10
    assert f.tolist() == [10, 2, 3, 4]

"""fusegrad.utils.safetensors: the format byte for byte (header length, compact JSON padded with
spaces, tensors ordered by dtype width then name, little-endian row-major data), round trips of
every dtype and shape, metadata, what is refused when saving (shared memory), every way a file
can be invalid, and — where the `safetensors` package or PyTorch is installed — files exchanged
with the reference implementation in both directions."""
import json
import struct

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.utils.safetensors import SafetensorError, load, load_file, safe_open, save, save_file

SPECIAL = [0.0, -0.0, 1.5, -2.75, float("inf"), float("-inf"), float("nan"), 1e-3]


def _dtype_cases():
    """(name, fusegrad dtype, numpy values) for each dtype, bfloat16's as float32 values it holds."""
    return [
        ("F32", torch.float32, np.array(SPECIAL + [3.4e38, -1e-40], dtype=np.float32)),
        ("F64", torch.float64, np.array(SPECIAL + [1e300, 5e-324], dtype=np.float64)),
        ("F16", torch.float16, np.array(SPECIAL + [65504.0, 6e-8], dtype=np.float16)),
        ("BF16", torch.bfloat16, np.array(SPECIAL + [3.0e38, 1.0 / 128], dtype=np.float32)),
        ("I32", torch.int32, np.array([0, -1, 2**31 - 1, -(2**31)], dtype=np.int32)),
        ("I64", torch.int64, np.array([0, -1, 2**63 - 1, -(2**63)], dtype=np.int64)),
        ("U8", torch.uint8, np.array([0, 1, 127, 255], dtype=np.uint8)),
        ("BOOL", torch.bool, np.array([True, False, False, True])),
    ]


def _parse(data):
    """(header dict, data bytes) of safetensors bytes, read by hand."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:], n


def _file(header, data=b"", raw_header=None):
    """Safetensors bytes with `header` (a dict, or `raw_header` bytes as they are) and `data`."""
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _same(a, b):
    assert a.dtype is b.dtype and tuple(a.shape) == tuple(b.shape)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------------- round trips and the format

def test_round_trip_of_every_dtype_and_shape(tmp_path):
    tensors = {}
    for name, dt, values in _dtype_cases():
        tensors[f"{name}.flat"] = torch.tensor(values, dtype=dt)
        tensors[f"{name}.scalar"] = torch.tensor(values[1], dtype=dt)              # 0-d
        tensors[f"{name}.empty"] = torch.tensor(values[:0], dtype=dt).view(0, 1)   # no elements
        tensors[f"{name}.matrix"] = torch.tensor(values, dtype=dt).view(2, -1)
    for loaded in (load(save(tensors)), _via_file(tensors, tmp_path)):
        assert sorted(loaded) == sorted(tensors)
        for key, t in tensors.items():
            _same(loaded[key], t)


def _via_file(tensors, tmp_path, metadata=None):
    path = tmp_path / "model.safetensors"
    save_file(tensors, path, metadata=metadata)
    assert path.read_bytes() == save(tensors, metadata=metadata)
    return load_file(str(path))


def test_bfloat16_and_float16_bits_are_kept_exactly():
    bits = np.array([0x7FC1, 0xFF80, 0x0001, 0x8000, 0x3F80], dtype=np.uint16)   # a NaN payload, -inf, tiny, -0, 1
    data = _file({"x": {"dtype": "BF16", "shape": [5], "data_offsets": [0, 10]},
                  "y": {"dtype": "F16", "shape": [5], "data_offsets": [10, 20]}}, bits.tobytes() * 2)
    loaded = load(data)
    assert loaded["x"].dtype is torch.bfloat16 and loaded["y"].dtype is torch.float16
    assert loaded["y"].numpy().view(np.uint16).tolist() == bits.tolist()
    _, body, _ = _parse(save(loaded))
    assert body == bits.tobytes() * 2                                            # NaN payload included


def test_the_bytes_follow_the_format():
    tensors = {"b": torch.tensor([1.0, 2.0]), "a": torch.tensor([[3, 4]], dtype=torch.int64),
               "mask": torch.tensor([True]), "half": torch.tensor([0.5], dtype=torch.bfloat16),
               "c": torch.tensor(5.0)}
    data = save(tensors, metadata={"format": "pt"})
    header, body, n = _parse(data)
    text = data[8:8 + n].rstrip(b" ")
    assert n % 8 == 0 and n - len(text) < 8 and text.endswith(b"}")                 # JSON, then < 8 spaces
    assert text.startswith(b'{"__metadata__":{"format":"pt"},"a":{"dtype":"I64","shape":[1,2],')    # compact
    order = [k for k in header if k != "__metadata__"]
    assert order == ["a", "b", "c", "half", "mask"]            # widest dtype first (I64, F32, BF16, BOOL), then name
    assert header["b"] == {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}
    assert header["c"] == {"dtype": "F32", "shape": [], "data_offsets": [24, 28]}
    expected = (np.array([3, 4], "<i8").tobytes() + np.array([1.0, 2.0], "<f4").tobytes()
                + np.array(5.0, "<f4").tobytes() + np.array([0x3F00], "<u2").tobytes() + b"\x01")
    assert body == expected
    assert save({}) == b"\x08" + b"\x00" * 7 + b"{}" + b" " * 6


def test_metadata(tmp_path):
    meta = {"format": "pt", "note": "ünïcode, \"quotes\"\n"}
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.ones(2)}, path, metadata=meta)
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == meta and f.keys() == ["w"]
    with safe_open(_write(tmp_path, save({"w": torch.ones(1)})), framework="pt") as f:
        assert f.metadata() is None
    with pytest.raises(TypeError, match="metadata must map str to str"):
        save({"w": torch.ones(1)}, metadata={"epoch": 3})


def test_non_contiguous_tensors_are_saved_by_value():
    w = torch.arange(6.0).view(2, 3)
    for view, expected in [(w.t(), [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]), (w[:, ::2], [[0.0, 2.0], [3.0, 5.0]]),
                           (w[0].expand(2, 3), [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])]:
        loaded = load(save({"v": view}))["v"]
        assert loaded.tolist() == expected and np.asarray(loaded).flags.c_contiguous


def test_pending_values_are_computed_and_saved():
    x = torch.tensor([1.0, 2.0])
    assert load(save({"y": x * 2 + 1}))["y"].tolist() == [3.0, 5.0]


def test_tensors_sharing_memory_are_refused():
    w = torch.arange(8.0)
    for tensors in ({"a": w, "b": w}, {"a": w, "b": w.view(2, 4).t()}, {"a": w[:5], "b": w[4:]},
                    {"a": w, "b": w.detach()}):
        with pytest.raises(RuntimeError, match=r"Some tensors share memory.*\[\{'a', 'b'\}\].*clone"):
            save(tensors)
    halves = load(save({"a": w[:4], "b": w[4:], "c": w.view(2, 4)[1:, ::2].clone()}))   # side by side: saved
    assert halves["a"].tolist() == [0.0, 1.0, 2.0, 3.0] and halves["b"].tolist() == [4.0, 5.0, 6.0, 7.0]


def test_bad_arguments_to_save():
    with pytest.raises(ValueError, match="Expected a dict"):
        save([torch.ones(1)])
    with pytest.raises(ValueError, match="Key `x` is invalid, expected fusegrad.Tensor"):
        save({"x": np.ones(1)})
    with pytest.raises(ValueError, match="__metadata__"):
        save({"__metadata__": torch.ones(1)})


def test_safe_open(tmp_path):
    path = _write(tmp_path, save({"z": torch.tensor([1, 2], dtype=torch.int32), "a": torch.tensor([0.5]),
                                  "m": torch.tensor([[1.0, 2.0]], dtype=torch.float64)}))
    with safe_open(path, framework="pt", device="cpu") as f:
        assert f.keys() == ["a", "m", "z"] and f.offset_keys() == ["m", "a", "z"]
        assert f.get_tensor("z").tolist() == [1, 2] and f.get_tensor("m").dtype is torch.float64
        with pytest.raises(SafetensorError, match="File does not contain tensor nope"):
            f.get_tensor("nope")
    with pytest.raises(SafetensorError, match="closed"):
        f.get_tensor("a")
    with pytest.raises(ValueError, match="framework"):
        safe_open(path, framework="tf")


def _write(tmp_path, data, name="x.safetensors"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- invalid files

GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}}
GOOD_DATA = bytes(range(16))


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00", "fewer than the 8 of the header length"),
    (_file(GOOD, GOOD_DATA)[:-3], "the tensors' data takes 16 bytes but the file has 13.*truncated"),
    (_file(GOOD, GOOD_DATA)[:40], "invalid header length"),
    (_file(GOOD, GOOD_DATA + b"xx"), "file has 18 after the header.*no tensor covers"),
    (struct.pack("<Q", 100_000_001) + b"{}", "header too large"),
    (struct.pack("<Q", 2**64 - 1) + b"{}", "header too large"),
    (_file(None, raw_header=b'{"a": '), "not valid JSON"),
    (_file(None, raw_header=b'{"\xff": 1}'), "not valid UTF-8"),
    (_file([1, 2]), "not a JSON object but a list"),
    (_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)), "'b': it overlaps"),
    (_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)), "'a': it leaves a gap"),
    (_file({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)),
     "'a' has 8 bytes of data but dtype F32 and shape \\[3\\] need 12"),
    (_file({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, bytes(2)), "need 1.5"),
    (_file({"a": {"dtype": "Q8", "shape": [1], "data_offsets": [0, 1]}}, bytes(1)), "unknown dtype 'Q8'"),
    (_file({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}), "invalid shape"),
    (_file({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, bytes(4)), "invalid shape"),
    (_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, bytes(8)), "invalid data_offsets"),
    (_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, bytes(4)), "invalid data_offsets"),
    (_file({"a": {"dtype": "F32", "shape": [1]}}, bytes(4)), "has no data_offsets"),
    (_file({"a": 3}), "not an object"),
    (_file(None, raw_header=b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}'),
     "names 'a' twice"),
    (_file({"__metadata__": {"k": 1}}), "__metadata__ must be an object of strings"),
])
def test_invalid_files_are_refused(tmp_path, data, message):
    with pytest.raises(SafetensorError, match=message):
        load(data)
    with pytest.raises(SafetensorError, match=message):
        load_file(_write(tmp_path, data))


def test_a_dtype_fusegrad_lacks(tmp_path):
    data = _file({"small": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]},
                  "w": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}},
                 b"\x01\x02" + np.array([1.5], "<f4").tobytes())
    with pytest.raises(SafetensorError, match="tensor 'small' has dtype I8, which fusegrad does not have"):
        load(data)
    path = _write(tmp_path, data)
    with pytest.raises(SafetensorError, match="I8"):
        load_file(path)
    with safe_open(path, framework="pt") as f:          # the others are still readable one by one
        assert f.keys() == ["small", "w"] and f.get_tensor("w").tolist() == [1.5]
        with pytest.raises(SafetensorError, match="I8"):
            f.get_tensor("small")


def test_bool_bytes_other_than_one_read_as_true():
    t = load(_file({"m": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}}, b"\x00\x02\xff"))["m"]
    assert t.tolist() == [False, True, True] and t.numpy().view(np.uint8).tolist() == [0, 1, 1]


# ---------------------------------------------------------------- the reference implementation

def test_files_written_by_fusegrad_load_in_the_reference(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy", reason="the safetensors package is the reference")
    tensors = {f"{name}.{i}": torch.tensor(values, dtype=dt).view(shape)
               for name, dt, values in _dtype_cases() for i, shape in enumerate([(-1,), (2, -1)])}
    tensors["scalar"], tensors["empty"] = torch.tensor(7, dtype=torch.int32), torch.zeros(0, 2, dtype=torch.float64)
    no_bf16 = {k: v for k, v in tensors.items() if v.dtype is not torch.bfloat16}
    path = tmp_path / "f.safetensors"
    save_file(no_bf16, path, metadata={"format": "np"})
    loaded = st_numpy.load_file(str(path))
    assert sorted(loaded) == sorted(no_bf16)
    for key, t in no_bf16.items():
        assert loaded[key].dtype == t.dtype.np and loaded[key].shape == tuple(t.shape)
        np.testing.assert_array_equal(loaded[key], t.numpy())
    pt = pytest.importorskip("torch", reason="PyTorch reads bfloat16 with the reference")
    import safetensors.torch as st_torch
    data = save(tensors, metadata={"format": "pt"})
    as_pt = {k: pt.from_dlpack(v) for k, v in tensors.items()}
    assert data == st_torch.save(as_pt, metadata={"format": "pt"})          # byte for byte
    for key, t in st_torch.load(data).items():
        assert pt.equal(t, as_pt[key]) or (t.is_floating_point() and pt.allclose(t, as_pt[key], equal_nan=True))


def test_files_written_by_the_reference_load_in_fusegrad(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy", reason="the safetensors package is the reference")
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "ids": np.array([[1, -2]], dtype=np.int64),
              "flag": np.array(True), "half": np.array([0.5, -1.0], dtype=np.float16),
              "bytes": np.array([0, 200], dtype=np.uint8), "none": np.zeros((0,), dtype=np.int32)}
    path = tmp_path / "ref.safetensors"
    st_numpy.save_file(arrays, str(path), metadata={"source": "numpy"})
    loaded = load_file(path)
    for key, a in arrays.items():
        assert loaded[key].dtype.np == a.dtype and tuple(loaded[key].shape) == a.shape
        np.testing.assert_array_equal(loaded[key].numpy(), a)
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == {"source": "numpy"}
    pt = pytest.importorskip("torch", reason="PyTorch writes bfloat16 with the reference")
    import safetensors.torch as st_torch
    src = {"bf": pt.tensor([1.5, -0.0, float("inf"), 3.0e38], dtype=pt.bfloat16), "d": pt.tensor(2.5, dtype=pt.float64)}
    got = load(st_torch.save(src))
    assert got["bf"].dtype is torch.bfloat16 and got["bf"].tolist() == src["bf"].float().tolist()
    assert got["d"].dtype is torch.float64 and got["d"].item() == 2.5

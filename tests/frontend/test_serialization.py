"""fusegrad.save / fusegrad.load (PyTorch's zip checkpoint format), pickling and deepcopy of
tensors, and resuming training from a checkpoint (issue 16)."""
from __future__ import annotations

import copy
import io
import os
import pickle
import zipfile
from collections import OrderedDict
from fractions import Fraction

import numpy as np
import pytest

import fusegrad as t
from fusegrad import serialization

DTYPES = [t.float32, t.float64, t.float16, t.bfloat16, t.int32, t.int64, t.uint8, t.bool]


def _round_trip(obj, **load_args):
    buf = io.BytesIO()
    t.save(obj, buf)
    buf.seek(0)
    return t.load(buf, **load_args)


def _values(dtype, shape):
    rng = np.random.default_rng(len(shape) + dtype.itemsize)
    if dtype is t.bool:
        return t.tensor(rng.random(shape) > 0.5)
    if dtype.is_floating_point:
        a = (rng.standard_normal(shape) * 100).astype(np.float32)
        if a.size >= 3:
            a.reshape(-1)[:3] = [np.inf, -np.inf, np.nan]
        return t.tensor(a, dtype=dtype)
    return t.tensor(rng.integers(0, 250, shape), dtype=dtype)


def _same(a, b):
    assert a.dtype is b.dtype and tuple(a.shape) == tuple(b.shape)
    np.testing.assert_array_equal(a.float().numpy() if a.dtype is t.bfloat16 else a.numpy(),
                                  b.float().numpy() if b.dtype is t.bfloat16 else b.numpy())


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_every_dtype_and_shape_round_trips_bit_for_bit(dtype):
    tensors = {str(shape): _values(dtype, shape) for shape in [(), (0,), (5,), (3, 4), (2, 0, 3)]}
    back = _round_trip(tensors)
    assert list(back) == list(tensors)
    for k in tensors:
        _same(back[k], tensors[k])


def test_views_share_one_record_and_stay_shared_after_loading():
    x = t.arange(24.0).reshape(4, 6).clone()
    views = {"x": x, "col": x[:, 1], "t": x.t(), "every_other": x[::2, 1::2], "row": x[2], "flat": x.view(-1),
             "expanded": x[0].expand(3, 6)}
    buf = io.BytesIO()
    t.save(views, buf)
    records = [n for n in zipfile.ZipFile(io.BytesIO(buf.getvalue())).namelist() if "/data/" in n]
    assert records == ["archive/data/0"]          # one storage for all seven tensors
    buf.seek(0)
    back = t.load(buf)
    for k, v in views.items():
        _same(back[k], v)
    back["x"].mul_(-1)            # an in-place write through one is seen by the others
    np.testing.assert_array_equal(back["col"].numpy(), -x[:, 1].numpy())
    np.testing.assert_array_equal(back["t"].numpy(), -x.t().numpy())
    np.testing.assert_array_equal(back["expanded"].numpy(), -x[0].expand(3, 6).numpy())
    back["row"].add_(1000)
    assert back["x"][2, 3].item() == 1000 - x[2, 3].item()


def test_records_are_aligned_stored_and_laid_out_as_torch_writes_them():
    buf = io.BytesIO()
    t.save({"a": t.ones(3), "b": t.zeros(5, dtype=t.int64)}, buf)
    raw = buf.getvalue()
    zf = zipfile.ZipFile(io.BytesIO(raw))
    names = zf.namelist()
    assert names[0] == "archive/data.pkl" and "archive/version" in names and "archive/byteorder" in names
    assert zf.read("archive/version") == b"3\n"
    for info in zf.infolist():
        assert info.compress_type == zipfile.ZIP_STORED
        name_len, extra_len = np.frombuffer(raw[info.header_offset + 26:info.header_offset + 30], "<u2")
        assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename
    assert zf.read("archive/data/1") == np.zeros(5, np.int64).tobytes()


def test_plain_python_values_containers_dtypes_and_sizes():
    sd = OrderedDict(w=t.ones(2))
    sd._metadata = {"": {"version": 1}}
    obj = {"n": [1, 2.5, None, "s", True, b"by", (3, 4)], "dt": t.float16, "size": t.Size([2, 3]),
           "dev": t.device("cpu"), "sd": sd, "set": {1, 2}}
    back = _round_trip(obj)
    assert back["n"] == [1, 2.5, None, "s", True, b"by", (3, 4)]
    assert back["dt"] is t.float16 and back["size"] == t.Size([2, 3]) and isinstance(back["size"], t.Size)
    assert back["dev"] == t.device("cpu") and back["set"] == {1, 2}
    assert isinstance(back["sd"], OrderedDict) and back["sd"]._metadata == {"": {"version": 1}}


def test_parameters_and_requires_grad_survive():
    p = t.nn.Parameter(t.tensor([1.0, 2.0]))
    q = t.tensor([3.0]).requires_grad_()
    back = _round_trip([p, q])
    assert isinstance(back[0], t.nn.Parameter) and back[0].requires_grad
    assert back[1].requires_grad and back[1].is_leaf and not isinstance(back[1], t.nn.Parameter)
    _same(back[0].detach(), p.detach())


def test_save_to_a_path_and_load_with_map_location(tmp_path):
    path = tmp_path / "ck.pt"
    t.save({"x": t.arange(4)}, path)
    for ml in (None, "cpu", t.device("cpu"), {"cpu": "cpu"}, lambda storage, loc: storage):
        assert t.load(path, map_location=ml)["x"].tolist() == [0, 1, 2, 3]
    assert t.load(str(path), weights_only=True)["x"].device == t.device("cpu")


def test_a_cuda_checkpoint_without_cuda_says_to_map_it_to_the_cpu(monkeypatch, tmp_path):
    layout = serialization.host_layout
    monkeypatch.setattr(serialization, "host_layout", lambda x: layout(x)[:4] + ("cuda:0",))
    t.save(t.ones(2), tmp_path / "gpu.pt")
    monkeypatch.undo()
    if not t.cuda.is_available():
        with pytest.raises(RuntimeError, match="map_location"):
            t.load(tmp_path / "gpu.pt")
    assert t.load(tmp_path / "gpu.pt", map_location="cpu").tolist() == [1.0, 1.0]
    assert t.load(tmp_path / "gpu.pt", map_location={"cuda:0": "cpu"}).tolist() == [1.0, 1.0]


# ------------------------------------------------------------------------ security

class _RunsCommand:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def _checkpoint_with(obj) -> io.BytesIO:
    """A zip checkpoint whose data.pkl is the plain pickle of `obj` (what a hostile file holds)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr("archive/version", "3\n")
    buf.seek(0)
    return buf


def test_weights_only_refuses_a_foreign_global_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    hostile = _checkpoint_with({"w": [1, 2], "payload": _RunsCommand(marker)})
    with pytest.raises(pickle.UnpicklingError, match=r"(posix|os|nt)\.system"):
        t.load(hostile)
    hostile.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        t.load(hostile, weights_only=True)
    assert not marker.exists()


def test_weights_only_false_and_add_safe_globals_load_other_globals():
    ck = _checkpoint_with({"f": Fraction(1, 3)})
    with pytest.raises(pickle.UnpicklingError, match="fractions.Fraction"):
        t.load(ck)
    ck.seek(0)
    assert t.load(ck, weights_only=False) == {"f": Fraction(1, 3)}
    serialization.add_safe_globals([Fraction])
    try:
        ck.seek(0)
        assert t.load(ck)["f"] == Fraction(1, 3)
    finally:
        serialization.clear_safe_globals()


def _saved_bytes(obj) -> bytes:
    buf = io.BytesIO()
    t.save(obj, buf)
    return buf.getvalue()


def test_truncated_files_raise_a_clear_error():
    raw = _saved_bytes({"w": t.arange(100.0), "b": t.ones(3)})
    for cut in (0, 10, 100, len(raw) // 2, len(raw) - 30, len(raw) - 1):
        with pytest.raises(serialization.CheckpointError, match="not a zip checkpoint|damaged") as e:
            t.load(io.BytesIO(raw[:cut]))
        assert "(at test_serialization.py:" in str(e.value)          # the user's line


def test_a_flipped_byte_in_a_storage_is_a_checksum_error():
    raw = bytearray(_saved_bytes({"w": t.arange(100.0)}))
    zf = zipfile.ZipFile(io.BytesIO(bytes(raw)))
    info = zf.getinfo("archive/data/0")
    name_len, extra_len = np.frombuffer(bytes(raw[info.header_offset + 26:info.header_offset + 30]), "<u2")
    raw[info.header_offset + 30 + name_len + extra_len + 17] ^= 0xFF
    with pytest.raises(serialization.CheckpointError, match="CRC|damaged"):
        t.load(io.BytesIO(bytes(raw)))


def _rewrite(raw: bytes, name: str, payload: bytes) -> io.BytesIO:
    """The archive with record `name` replaced by `payload`."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for n in src.namelist():
            zf.writestr(n, payload if n == name else src.read(n))
    out.seek(0)
    return out


def test_inconsistent_sizes_and_missing_records_are_refused():
    raw = _saved_bytes({"w": t.arange(6.0).reshape(2, 3).clone()})
    short = _rewrite(raw, "archive/data/0", b"\0" * 20)
    with pytest.raises(serialization.CheckpointError, match="holds 20 bytes"):
        t.load(short)
    pkl = zipfile.ZipFile(io.BytesIO(raw)).read("archive/data.pkl")
    missing = _rewrite(raw, "archive/data.pkl", pkl.replace(b"X\x01\x00\x00\x000", b"X\x01\x00\x00\x009"))
    with pytest.raises(serialization.CheckpointError, match="damaged"):
        t.load(missing)
    # a tensor whose size reaches past its storage: (2, 3) -> (2, 9) in the pickle
    past = _rewrite(raw, "archive/data.pkl", pkl.replace(b"K\x02K\x03\x86", b"K\x02K\x09\x86", 1))
    with pytest.raises(serialization.CheckpointError, match="past the end of its storage"):
        t.load(past)
    with pytest.raises(serialization.CheckpointError, match="not a zip checkpoint"):
        t.load(io.BytesIO(pickle.dumps({"old": "format"})))


# ------------------------------------------------------------------------ pickle and deepcopy

def test_pickle_realizes_tensors_and_keeps_views_shared():
    x = t.arange(12.0).reshape(3, 4).clone() * 2        # pending until pickled
    col = x[:, 1]
    a, b, bf = pickle.loads(pickle.dumps((x, col, t.tensor([1.5, -2.0], dtype=t.bfloat16))))
    np.testing.assert_array_equal(a.numpy(), np.arange(12.0).reshape(3, 4) * 2)
    a.add_(1)
    np.testing.assert_array_equal(b.numpy(), np.arange(12.0).reshape(3, 4)[:, 1] * 2 + 1)
    assert bf.dtype is t.bfloat16 and bf.tolist() == [1.5, -2.0]


def test_modules_and_parameters_pickle_and_deepcopy():
    t.manual_seed(0)
    model = t.nn.Sequential(t.nn.Linear(3, 4), t.nn.ReLU(), t.nn.Linear(4, 2))
    x = t.randn(5, 3)
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert all(isinstance(p, t.nn.Parameter) and p.requires_grad for p in clone.parameters())
        np.testing.assert_array_equal(clone(x).detach().numpy(), model(x).detach().numpy())
        with t.no_grad():
            next(iter(clone.parameters())).add_(1.0)       # the copy's parameters are its own
        assert not np.array_equal(clone(x).detach().numpy(), model(x).detach().numpy())


def test_deepcopy_follows_pytorch():
    leaf = t.tensor([1.0, 2.0]).requires_grad_()
    (leaf * 3).sum().backward()
    c = copy.deepcopy(leaf)
    assert c.requires_grad and c.is_leaf and c.grad.tolist() == [3.0, 3.0] and c.grad is not leaf.grad
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(leaf * 2)
    base = t.arange(6.0).reshape(2, 3).clone()
    b, view = copy.deepcopy((base, base[:, 0]))
    b.fill_(7.0)
    assert view.tolist() == [7.0, 7.0] and base[:, 0].tolist() == [0.0, 3.0]


def test_rng_state_round_trips():
    state = t.get_rng_state()
    assert state.dtype is t.uint8 and state.shape == (16,)
    first = t.rand(4).tolist()
    t.set_rng_state(_round_trip(state))
    assert t.rand(4).tolist() == first
    g = t.Generator().manual_seed(5)
    saved = g.get_state()
    drawn = t.randn(3, generator=g).tolist()
    g.set_state(saved)
    assert t.randn(3, generator=g).tolist() == drawn
    with pytest.raises(RuntimeError, match="16 bytes"):
        t.set_rng_state(t.zeros(3, dtype=t.uint8))


# ------------------------------------------------------------------------ resuming training

def _setup():
    t.manual_seed(0)
    model = t.nn.Sequential(t.nn.Linear(4, 8), t.nn.ReLU(), t.nn.Dropout(0.3), t.nn.Linear(8, 1))
    opt = t.optim.Adam(model.parameters(), lr=0.05)
    sched = t.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return model, opt, sched


def _train(model, opt, sched, steps, compiled):
    rng = np.random.default_rng(0)
    x = t.tensor(rng.standard_normal((16, 4)).astype(np.float32))
    y = x.sum(1, keepdim=True)

    def step(x, y):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    run = t.compile(step) if compiled else step
    for _ in range(steps):
        run(x, y)
        sched.step()


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_parameters(compiled, tmp_path):
    model, opt, sched = _setup()
    _train(model, opt, sched, 6, compiled)
    expected = [p.detach().numpy().copy() for p in model.parameters()]

    model, opt, sched = _setup()
    _train(model, opt, sched, 3, compiled)
    t.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
            "rng": t.get_rng_state()}, tmp_path / "ck.pt")
    t.manual_seed(1234)                   # whatever happened since is undone by the checkpoint
    ck = t.load(tmp_path / "ck.pt")
    model, opt, sched = _setup()
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    sched.load_state_dict(ck["sched"])
    t.set_rng_state(ck["rng"])
    _train(model, opt, sched, 3, compiled)
    for want, p in zip(expected, model.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), want)


# ------------------------------------------------------------------------ PyTorch as the oracle

def test_pytorch_loads_fusegrad_checkpoints_and_fusegrad_loads_pytorchs(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle (not installed in CI)")
    t.manual_seed(0)
    model = t.nn.Linear(3, 2)
    opt = t.optim.Adam(model.parameters(), lr=0.01)
    model(t.ones(4, 3)).pow(2).sum().backward()
    opt.step()
    x = t.arange(12.0).reshape(3, 4).clone()
    t.save({"model": model.state_dict(), "opt": opt.state_dict(), "col": x[:, 1], "x": x,
            "bf": t.tensor([1.5, 2.0], dtype=t.bfloat16), "i": t.arange(3)}, tmp_path / "fg.pt")
    ck = torch.load(tmp_path / "fg.pt")                  # torch's own weights_only=True default
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(ck["model"][k].numpy(), v.numpy())
    assert ck["opt"]["param_groups"][0]["lr"] == 0.01
    np.testing.assert_array_equal(ck["opt"]["state"][0]["exp_avg"].numpy(),
                                  opt.state_dict()["state"][0]["exp_avg"].numpy())
    assert ck["col"].untyped_storage().data_ptr() == ck["x"].untyped_storage().data_ptr()
    assert ck["bf"].dtype == torch.bfloat16 and ck["bf"].tolist() == [1.5, 2.0] and ck["i"].dtype == torch.int64

    # PyTorch -> fusegrad: a torch model and Adam state continue training in fusegrad as in torch
    torch.manual_seed(0)
    tm = torch.nn.Linear(3, 2)
    topt = torch.optim.Adam(tm.parameters(), lr=0.01)
    data = np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32)
    for _ in range(2):
        topt.zero_grad()
        tm(torch.tensor(data)).pow(2).mean().backward()
        topt.step()
    torch.save({"model": tm.state_dict(), "opt": topt.state_dict(), "view": torch.arange(10.0)[2::3]},
               tmp_path / "pt.pt")
    ck = t.load(tmp_path / "pt.pt")
    assert ck["view"].tolist() == [2.0, 5.0, 8.0]
    fm = t.nn.Linear(3, 2)
    fm.load_state_dict(ck["model"])
    fopt = t.optim.Adam(fm.parameters(), lr=0.01)
    fopt.load_state_dict(ck["opt"])
    for _ in range(3):
        topt.zero_grad()
        tm(torch.tensor(data)).pow(2).mean().backward()
        topt.step()
        fopt.zero_grad()
        fm(t.tensor(data)).pow(2).mean().backward()
        fopt.step()
    np.testing.assert_allclose(fm.weight.detach().numpy(), tm.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fm.bias.detach().numpy(), tm.bias.detach().numpy(), rtol=1e-5, atol=1e-6)

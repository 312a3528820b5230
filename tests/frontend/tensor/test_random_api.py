"""PyTorch's random API signatures: randint's (high, size) and (low, high, size) forms, the
accelerator queries of torch.accelerator, and torch.cuda.manual_seed_all."""
import numpy as np
import pytest

import fusegrad as torch
from fusegrad.random import Generator


def values(t):
    return t.numpy()


def test_randint_high_and_size():
    t = torch.randint(10, (3,))
    assert t.dtype == torch.int64 and tuple(t.shape) == (3,)
    assert ((values(t) >= 0) & (values(t) < 10)).all()


def test_randint_low_high_size_covers_the_half_open_range():
    v = values(torch.randint(3, 10, (2000,)))
    assert set(v.tolist()) == set(range(3, 10))


def test_randint_negative_range():
    v = values(torch.randint(-5, 0, (500,)))
    assert v.min() == -5 and v.max() == -1


@pytest.mark.parametrize("call, shape", [
    (lambda: torch.randint(10, size=(2, 2)), (2, 2)),
    (lambda: torch.randint(low=2, high=5, size=(4,)), (4,)),
    (lambda: torch.randint(high=4, size=[3]), (3,)),
    (lambda: torch.randint(2, high=5, size=(1, 3)), (1, 3)),
    (lambda: torch.randint(10, ()), ()),
    (lambda: torch.randint(10, torch.Size([2, 1])), (2, 1)),
])
def test_randint_keyword_forms(call, shape):
    t = call()
    assert tuple(t.shape) == shape and t.dtype == torch.int64


def test_randint_dtype_device_generator():
    a = torch.randint(0, 100, (8,), generator=Generator(7), dtype=torch.float32, device="cpu")
    b = torch.randint(0, 100, (8,), generator=Generator(7), dtype=torch.float32, device="cpu")
    assert a.dtype == torch.float32 and str(a.device) == "cpu"
    np.testing.assert_array_equal(values(a), values(b))
    assert (values(a) == np.floor(values(a))).all()


def test_randint_follows_manual_seed():
    torch.manual_seed(11)
    a = values(torch.randint(1000, (6,)))
    torch.manual_seed(11)
    np.testing.assert_array_equal(a, values(torch.randint(1000, (6,))))


@pytest.mark.parametrize("call, error, message", [
    (lambda: torch.randint(10, 3), TypeError, "argument 'size' (position 2) must be tuple of ints, not int"),
    (lambda: torch.randint(2.5, (2,)), TypeError, "argument 'high' (position 1) must be int, not float"),
    (lambda: torch.randint(10), TypeError, "randint()"),
    (lambda: torch.randint(5, 5, (3,)), RuntimeError,
     "random_ expects 'from' to be less than 'to', but got from=5 >= to=5"),
    (lambda: torch.randint(10, (3,), requires_grad=True), RuntimeError,
     "Only Tensors of floating point and complex dtype can require gradients"),
])
def test_randint_bad_arguments_raise_as_pytorch(call, error, message):
    with pytest.raises(error) as e:
        call()
    assert message in str(e.value)


# ---------------------------------------------------------------- torch.accelerator

def test_accelerator_agrees_with_cuda():
    acc = torch.accelerator.current_accelerator()
    if torch.cuda.is_available():
        assert acc == torch.device("cuda") and acc.index is None
    else:
        assert acc is None
    assert torch.accelerator.current_accelerator(check_available=True) == acc
    assert torch.accelerator.is_available() is torch.cuda.is_available()
    assert torch.accelerator.device_count() == torch.cuda.device_count()


def test_accelerator_on_a_cpu_only_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch.accelerator.current_accelerator() is None
    assert torch.accelerator.is_available() is False
    assert torch.accelerator.device_count() == 0


def test_accelerator_with_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    acc = torch.accelerator.current_accelerator()
    assert acc.type == "cuda" and acc.index is None and repr(acc) == "device(type='cuda')"
    assert torch.accelerator.is_available() is True
    assert torch.accelerator.device_count() == 2


# ---------------------------------------------------------------- torch.cuda.manual_seed_all

def test_manual_seed_all_without_a_gpu_records_the_seed_and_leaves_the_cpu_stream(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    torch.manual_seed(3)
    first = values(torch.rand(4))
    torch.manual_seed(3)
    torch.cuda.manual_seed_all(1234)
    np.testing.assert_array_equal(values(torch.rand(4)), first)
    assert torch.cuda.SEED_ALL[0] == 1234


def test_manual_seed_all_with_a_gpu_seeds_the_stream_gpu_tensors_draw_from(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    torch.manual_seed(5)
    seeded = values(torch.rand(4))
    torch.manual_seed(99)
    torch.cuda.manual_seed_all(5)
    np.testing.assert_array_equal(values(torch.rand(4)), seeded)

"""In-place ops, seen through every alias PyTorch programs hold: the tensor itself, `.data`,
`.detach()`, views made by view/slicing/transposing, and `.numpy()` arrays. fusegrad
implements them by functionalization; these tests only look at what users observe."""
import numpy as np
import pytest
from support import check

import fusegrad as torch

BASE = np.array([[1.0, -2.0, 3.0], [4.0, -5.0, 6.0]], np.float32)

# (name, call, what the values become)
OPS = [
    ("add_", lambda t: t.add_(5), BASE + 5),
    ("add_ tensor", lambda t: t.add_(torch.tensor([1.0, 2.0, 3.0])), BASE + [1, 2, 3]),
    ("add_ alpha", lambda t: t.add_(torch.ones(2, 3), alpha=-2), BASE - 2),
    ("sub_", lambda t: t.sub_(1.5), BASE - 1.5),
    ("mul_", lambda t: t.mul_(torch.tensor(3.0)), BASE * 3),
    ("div_", lambda t: t.div_(4), BASE / 4),
    ("zero_", lambda t: t.zero_(), np.zeros_like(BASE)),
    ("fill_", lambda t: t.fill_(7), np.full_like(BASE, 7)),
    ("fill_ tensor", lambda t: t.fill_(torch.tensor(2.5)), np.full_like(BASE, 2.5)),
    ("copy_", lambda t: t.copy_(torch.tensor([[9, 8, 7], [6, 5, 4]])), [[9, 8, 7], [6, 5, 4]]),
    ("copy_ broadcast", lambda t: t.copy_(torch.tensor([1.0, 2.0, 3.0])), [[1, 2, 3], [1, 2, 3]]),
    ("clamp_", lambda t: t.clamp_(-1, 4), np.clip(BASE, -1, 4)),
    ("clamp_ min", lambda t: t.clamp_(min=0), np.maximum(BASE, 0)),
    ("masked_fill_", lambda t: t.masked_fill_(t < 0, 0.5), np.where(BASE < 0, 0.5, BASE)),
    ("+=", lambda t: t.__iadd__(1), BASE + 1),
    ("-=", lambda t: t.__isub__(torch.tensor([[1.0], [2.0]])), BASE - [[1], [2]]),
    ("*=", lambda t: t.__imul__(-1), -BASE),
    ("/=", lambda t: t.__itruediv__(2), BASE / 2),
]
IDS = [name for name, _, _ in OPS]


@pytest.mark.parametrize("name, op, expected", OPS, ids=IDS)
def test_inplace_updates_the_tensor_and_returns_it(name, op, expected):
    t = torch.tensor(BASE)
    assert op(t) is t
    check(t, expected, torch.float32)


@pytest.mark.parametrize("alias", ["data", "detach"])
@pytest.mark.parametrize("name, op, expected", OPS, ids=IDS)
def test_inplace_through_data_and_detach_is_seen_by_the_tensor(alias, name, op, expected):
    t = torch.tensor(BASE, requires_grad=True)
    a = t.data if alias == "data" else t.detach()
    op(a)
    check(t.detach(), expected, torch.float32)
    assert t.requires_grad and t.is_leaf


@pytest.mark.parametrize("name, op, expected", OPS, ids=IDS)
def test_inplace_on_the_tensor_is_seen_by_detached_aliases(name, op, expected):
    t = torch.tensor(BASE)
    d, data = t.detach(), t.data
    op(t)
    check(d, expected, torch.float32)
    check(data, expected, torch.float32)


@pytest.mark.parametrize("name, op, expected", OPS, ids=IDS)
def test_inplace_is_seen_by_numpy_arrays(name, op, expected):
    t = torch.tensor(BASE)
    a = t.numpy()
    op(t)
    np.testing.assert_array_equal(a, np.asarray(expected, np.float32))


@pytest.mark.parametrize("name, op, expected", OPS, ids=IDS)
def test_inplace_on_a_from_numpy_tensor_writes_the_array(name, op, expected):
    a = BASE.copy()
    op(torch.from_numpy(a))
    np.testing.assert_array_equal(a, np.asarray(expected, np.float32))


# views: (make the view, the numpy view of BASE it corresponds to)
VIEWS = {
    "view": (lambda t: t.view(3, 2), lambda a: a.reshape(3, 2)),
    "row": (lambda t: t[1], lambda a: a[1]),
    "column": (lambda t: t[:, 1], lambda a: a[:, 1]),
    "strided slice": (lambda t: t[:, ::2], lambda a: a[:, ::2]),
    "transpose": (lambda t: t.t(), lambda a: a.T),
    "unsqueeze": (lambda t: t.unsqueeze(0), lambda a: a[None]),
    "slice of transpose": (lambda t: t.T[1:], lambda a: a.T[1:]),
    "view of a row": (lambda t: t[1].view(3, 1), lambda a: a[1].reshape(3, 1)),
}
VIEW_OPS = [
    ("add_", lambda v: v.add_(10), lambda a: a + 10),
    ("mul_", lambda v: v.mul_(-2), lambda a: a * -2),
    ("zero_", lambda v: v.zero_(), lambda a: a * 0),
    ("fill_", lambda v: v.fill_(0.25), lambda a: a * 0 + 0.25),
    ("clamp_", lambda v: v.clamp_(0, 3), lambda a: np.clip(a, 0, 3)),
    ("sub_", lambda v: v.sub_(1), lambda a: a - 1),
    ("div_", lambda v: v.div_(2), lambda a: a / 2),
    ("+=", lambda v: v.__iadd__(1), lambda a: a + 1),
    ("copy_", lambda v: v.copy_(v * 0 - 1), lambda a: a * 0 - 1),
]


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("name, op, ref", VIEW_OPS, ids=[n for n, _, _ in VIEW_OPS])
def test_inplace_through_a_view_writes_the_base(view, name, op, ref):
    make, np_view = VIEWS[view]
    t = torch.tensor(BASE)
    array = t.numpy()
    v = make(t)
    op(v)
    expected = BASE.copy()
    np_view(expected)[...] = ref(np_view(BASE))
    check(t, expected, torch.float32)
    check(v, np_view(expected), torch.float32)
    np.testing.assert_array_equal(array, expected)


def test_inplace_on_the_base_is_seen_by_views():
    t = torch.tensor(BASE)
    row, col, tr = t[1], t[:, 2], t.t()
    t.add_(1)
    check(row, BASE[1] + 1, torch.float32)
    check(col, BASE[:, 2] + 1, torch.float32)
    check(tr, BASE.T + 1, torch.float32)


def test_inplace_through_data_of_a_view():
    t = torch.tensor(BASE)
    t[0].data.mul_(0)
    check(t, [[0, 0, 0], [4, -5, 6]], torch.float32)


def test_numpy_array_of_a_view_sees_updates():
    t = torch.tensor(BASE)
    a = t[:, 1:].numpy()
    t[:, 1:] += 1
    np.testing.assert_array_equal(a, BASE[:, 1:] + 1)


def test_training_loop_updates():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(2):
        loss = (w * w).sum()
        loss.backward()
        w.data.add_(-0.1 * w.grad.data)
        w.grad.zero_()
    check(w.detach(), [0.64, 1.28], torch.float32)
    v = torch.tensor([1.0, 2.0], requires_grad=True)
    (v * v).sum().backward()
    with torch.no_grad():
        v -= 0.5 * v.grad
    check(v.detach(), [0.0, 0.0], torch.float32)
    assert v.requires_grad and v.is_leaf
    check(v.grad, [2.0, 4.0], torch.float32)


def test_inplace_on_a_leaf_requiring_grad_raises():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        w.add_(1)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        w[0].add_(1)


def test_inplace_result_must_fit_the_dtype():
    x = torch.tensor([1, 2])
    for op in (lambda: x.div_(2), lambda: x.add_(1.5), lambda: x.mul_(torch.tensor(1.5)), lambda: x.clamp_(0.5, 1.5)):
        with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type"):
            op()
    check(x, [1, 2], torch.int64)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        x /= 2
    b = torch.tensor([True, False])
    with pytest.raises(RuntimeError, match="result type Long can't be cast to the desired output type Bool"):
        b.add_(1)


def test_integer_inplace_ops():
    x = torch.tensor([1, 2])
    x.mul_(2)
    x += True
    x.div_(2, rounding_mode="floor")
    check(x, [1, 2], torch.int64)
    u = torch.tensor([1, 2], dtype=torch.uint8)
    u.mul_(-1)
    check(u, [255, 254], torch.uint8)
    i = torch.tensor([1, 2], dtype=torch.int32)
    i.add_(torch.tensor([1, 2]))
    check(i, [2, 4], torch.int32)
    f = torch.tensor([1.0, 2.0])
    f.add_(torch.tensor([1, 2], dtype=torch.float64))
    check(f, [2.0, 4.0], torch.float32)


def test_random_():
    t = torch.zeros(1000)
    t.random_(10)
    v = t.numpy()
    assert set(np.unique(v)) == set(range(10))
    t.random_(2, 5)
    assert set(np.unique(t.numpy())) == {2.0, 3.0, 4.0}
    assert set(np.unique(v)) == {2.0, 3.0, 4.0}          # the numpy alias sees it


def test_uniform_and_normal_():
    t = torch.zeros(20000, dtype=torch.float64)
    d = t.detach()
    t.uniform_()
    v = d.numpy()
    assert v.min() >= 0 and v.max() < 1 and abs(v.mean() - 0.5) < 0.02
    t.uniform_(2, 3)
    assert d.numpy().min() >= 2 and d.numpy().max() < 3
    t.normal_()
    assert abs(v.mean()) < 0.05 and abs(v.std() - 1) < 0.05
    t.normal_(5, 2)
    assert abs(v.mean() - 5) < 0.1 and abs(v.std() - 2) < 0.1


def test_random_fills_through_a_view():
    t = torch.zeros(4, 5)
    t[1:3].uniform_(1, 2)
    v = t.numpy()
    assert (v[[0, 3]] == 0).all()
    assert (v[1:3] >= 1).all() and (v[1:3] < 2).all()
    t[:, 0].normal_()
    assert (v[:, 0] != 0).all()


@pytest.mark.parametrize("write", [
    lambda y: y.data.mul_(2), lambda y: y.detach().add_(1), lambda y: _under_no_grad(lambda: y.add_(1))],
    ids=[".data", ".detach()", "no_grad"])
def test_an_unrecorded_write_keeps_the_tensors_history(write):
    """As PyTorch: the values change, the grad_fn and the gradient do not."""
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    y = a * 2
    write(y)
    assert y.grad_fn is not None and y.grad_fn.name() == "MulBackward0"
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])


def _under_no_grad(fn):
    with torch.no_grad():
        fn()

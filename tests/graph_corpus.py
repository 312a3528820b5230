"""A fixed corpus of IR graphs for the whole-pipeline sweeps (text round trip, PTX assembly).

Each entry is a small program over every kind of op the IR has — elementwise math in each
dtype, comparisons, casts, reductions, movement, indexing, matmul with epilogues, random
numbers, in-place updates through views, autograd, optimizer steps — traced with
`fusegrad.compile(fn).lower(...)`, which builds the graph without running it and without
consulting any cache. So the corpus is the same whichever tests ran before.
"""
from __future__ import annotations

import functools

import numpy as np

import fusegrad
from fusegrad import nn


def _t(shape, dtype="float32", seed=0, requires_grad=False, low=-2.0, high=2.0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return fusegrad.tensor(rng.random(shape) < 0.5)
    if dtype in ("int32", "int64", "uint8"):
        return fusegrad.tensor(rng.integers(0 if dtype == "uint8" else -9, 9, size=shape).astype(dtype))
    a = rng.uniform(low, high, size=shape).astype(dtype)
    return fusegrad.tensor(a, requires_grad=requires_grad)


def _elementwise(dtype):
    def f(x, y):
        z = x + y * 2 - x / (y.abs() + 1)
        if z.dtype.is_floating_point:
            z = (z.exp() + 1).log() + z.sin() * z.cos() - z.tanh() + z.abs().sqrt() + z.floor() + z.round()
            z = z + fusegrad.pow(z.abs() + 1, 0.5) + z.reciprocal().clamp(-3, 3) + z.sigmoid() + z.fmod(1.5)
        return fusegrad.where(x < y, z, x.maximum(y)) + (x == y).to(z.dtype) + x.minimum(y)
    return f


def _reductions(x):
    centered = x - x.mean(1, keepdim=True)
    return (x.sum(), x.sum(1), x.amax(0, keepdim=True), x.amin(-1), x.prod(1), x.mean(0), (centered ** 2).mean(1),
            x.softmax(-1), x.logsumexp(1), x.argmax(1), x.argmin(0))


def _movement(x):
    y = x.reshape(4, 6).permute(1, 0)[1:5:2]
    z = fusegrad.cat([x.reshape(-1)[:8], x.reshape(-1)[-4:]]).unsqueeze(0).expand(3, 12)
    return y * 2, z + 1, x.narrow(1, 2, 3).sum(0), fusegrad.stack([x, x * 2]).transpose(0, 1)


def _indexing(x, idx):
    src = fusegrad.zeros(4, 6)
    return (x[idx], x[:, idx % 6], x.index_select(1, idx),
            src.scatter_add(1, (idx % 6).reshape(4, 1).expand(4, 3), x[:, :3]),
            x.gather(1, (idx % 6).reshape(4, 1).expand(4, 3)))


def _inplace(x):
    y = x.clone()
    y[1:3, ::2] += 1
    y[:, 0] = 7.0
    y.mul_(2)
    return y


def _matmuls(a, b, c, bias):
    return (a @ b, fusegrad.relu(a @ b + bias), (c @ c.transpose(1, 2)).sum(), fusegrad.matmul(a[0], b))


def _grads(x, w):
    y = ((x @ w).tanh() ** 2).sum() + (x[1:4, ::2].sigmoid() * w.sum()).mean() + x.amax(1).sum()
    return fusegrad.autograd.grad(y, (x, w), create_graph=False)


def _random(x):
    return x * fusegrad.rand(*x.shape) + fusegrad.randn(*x.shape), fusegrad.nn.functional.dropout(x, 0.5)


def _casts(x, i, b):
    return (x.to(fusegrad.int32), i.to(fusegrad.float64) / 3, b.to(fusegrad.float32) + x, (i // 2) % 3,
            i.to(fusegrad.uint8))


def _training_step(optimizer_type, **options):
    fusegrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = optimizer_type(model.parameters(), lr=0.05, **options)
    loss_fn = nn.MSELoss()

    def step(x, y):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _programs():
    x46, y46 = _t((4, 6)), _t((4, 6), seed=1)
    yield "elementwise f32", _elementwise("float32"), (x46, y46)
    yield "elementwise f64", _elementwise("float64"), (_t((3, 5), "float64"), _t((5,), "float64", 1))
    yield "elementwise i32", _elementwise("int32"), (_t((4, 6), "int32"), _t((4, 6), "int32", 1))
    yield "elementwise i64 u8", lambda a, b: a * b + (a > 0).to(fusegrad.int64), (_t((7,), "int64"), _t((7,), "uint8"))
    yield "bool logic", lambda a, b: (a & b) | ~a, (_t((9,), "bool"), _t((9,), "bool", 1))
    yield "reductions", _reductions, (_t((6, 40)),)
    yield "wide reductions", _reductions, (_t((64, 4096)),)
    yield "tall reductions", lambda x: (x.sum(0), x.amax(0), x.softmax(0)), (_t((4096, 3)),)
    yield "long reductions", lambda x: (x.sum(), x.amax(), (x * x).mean()), (_t((1 << 16,)),)
    yield "movement", _movement, (x46,)
    yield "indexing", _indexing, (x46, fusegrad.tensor([0, 3, 1, 2]))
    yield "in-place through views", _inplace, (x46,)
    yield "matmuls", _matmuls, (_t((2, 5, 7)), _t((7, 3)), _t((3, 4, 5)), _t((3,)))
    yield "large matmuls", _matmuls, (_t((2, 130, 256)), _t((256, 96)), _t((3, 64, 80)), _t((96,)))
    yield "f64 matmul", lambda a, b: (a @ b).relu(), (_t((33, 17), "float64"), _t((17, 9), "float64"))
    yield "integer matmul", lambda a, b: a @ b, (_t((5, 6), "int64"), _t((6, 4), "int64"))
    yield "autograd", _grads, (_t((5, 4), requires_grad=True), _t((4, 2), requires_grad=True))
    yield "random", _random, (x46,)
    yield "casts", _casts, (x46, _t((4, 6), "int64"), _t((4, 6), "bool"))
    yield "sgd step", _training_step(fusegrad.optim.SGD, momentum=0.9, nesterov=True), (_t((16, 6)), _t((16, 3)))
    yield "adam step", _training_step(fusegrad.optim.Adam, weight_decay=0.01), (_t((16, 6)), _t((16, 3)))
    yield "rmsprop step", _training_step(fusegrad.optim.RMSprop), (_t((16, 6), "float32"), _t((16, 3)))
    yield "elementwise f16", _elementwise("float16"), (_t((4, 6), "float16"), _t((4, 6), "float16", 1))
    yield "bf16 reductions and matmul", lambda x, w: _reductions(x.bfloat16()) + ((x.bfloat16() @ w.bfloat16()).relu(),
                                                                                 x.half().sum(0)), (_t((6, 40)),
                                                                                                    _t((40, 5)))


@functools.lru_cache(maxsize=None)
def corpus() -> tuple:
    """(name, Graph) for each program of the corpus, traced once per test session."""
    graphs = []
    for name, fn, args in _programs():
        graphs.append((name, fusegrad.compile(fn).lower(*args).graph))
    return tuple(graphs)

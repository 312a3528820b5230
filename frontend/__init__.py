"""fusegrad: PyTorch-style tensors that compile to fused kernels.

    import fusegrad as torch

Tensors are lazy: ops build an IR graph (fusegrad.compiler) and values are computed when
asked for, by compiling the pending graph into fused LLVM kernels run by fusegrad.runtime.
`fusegrad.compile` traces a whole function (a training step) once per signature and
replays it as one native call.
"""
from __future__ import annotations

import builtins as _builtins
from importlib.metadata import PackageNotFoundError as _NotFound, version as _version
from typing import TYPE_CHECKING as _TYPE_CHECKING

from . import autograd, compiler, runtime
from .autograd import enable_grad, no_grad, set_grad_enabled
from .compound import (addbmm, addcdiv, addcmul, addmm, baddbmm, isfinite, isinf, isnan, isneginf, isposinf, lerp,
                       norm, std, std_mean, var, var_mean)
from .grad_mode import inference_mode, is_grad_enabled, is_inference_mode_enabled
from .creation import (BoolTensor, ByteTensor, DoubleTensor, FloatTensor, IntTensor, LongTensor, arange, as_tensor,
                       empty, empty_like, eye, from_numpy, full, full_like, linspace, manual_seed, normal, ones,
                       ones_like, rand, rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like)
from .device import device
from .dtypes import (bfloat16, bool_ as bool, double, float, float16, float32, float64, get_default_dtype, half, int,
                     int32, int64, long, promote_types, set_default_dtype, uint8)
from .dtypes import DType as dtype
from .einsum import einsum
from .dtypes import result_type as _result_type
from .ops import (abs, add, all, amax, amin, any, argmax, argmin, bmm, ceil, clamp, cos, div, dot, eq, erf, exp, floor,
                  floor_divide, fmod, ge, gt, le, log, log_softmax, logical_and, logical_not, logical_or, logical_xor,
                  logsumexp, lt, matmul, max, maximum, mean, min, minimum, mm, mul, ne, neg, pow, prod, reciprocal,
                  relu, remainder, round, rsqrt, sigmoid, sign, sin, softmax, sqrt, sub, sum, tanh, where)
from .printing import get_printoptions, set_printoptions
from .random import Generator, get_rng_state, initial_seed, seed, set_rng_state
from .indexing import index_select
from .sampling import multinomial
from .scattering import index_add, index_fill, scatter, scatter_add, scatter_reduce
from .sorting import argsort, cumprod, cumsum, msort, sort, topk
from .rearrange import (chunk, flip, fliplr, flipud, repeat_interleave, roll, split, split_with_sizes, tensor_split,
                        tril, triu, unbind)
from .shape_ops import cat, clone, flatten, permute, reshape, squeeze, stack, transpose, unsqueeze
from .tensor import Size, Tensor
from . import accelerator, cuda, linalg
from . import nn, optim  # noqa: E402  (they build on everything above)
from . import distributed, ir, profiler, roofline, serialization, utils, viz
from .serialization import load, save
from .utils.dlpack import from_dlpack
from .internal_errors import InternalError
from .jit import compile
from .realize import program_cache_info

if _TYPE_CHECKING:
    from .compiler.program import Program

try:
    __version__ = _version("fusegrad")
except _NotFound:
    __version__ = "0+unknown"

clip = clamp
concat = concatenate = cat
negative = neg
true_divide = divide = div
multiply = mul
subtract = sub
absolute = abs


def square(x: Tensor) -> Tensor:
    return mul(x, x)


def is_tensor(x: object) -> _builtins.bool:
    return isinstance(x, Tensor)


def numel(x: Tensor) -> _builtins.int:
    return x.numel()


def result_type(a: object, b: object) -> dtype:
    return _result_type(a, b)


def gather(x: Tensor, dim: _builtins.int, index: Tensor) -> Tensor:
    return x.gather(dim, index)


def program_of(t: Tensor) -> Program | None:
    """The compiled Program that computed `t`'s value. A pending tensor is realized first (as
    `.numpy()` would); None for a value no program computed (made from data, e.g. `tensor([1.])`)."""
    if not t._storage.realized:
        t._realize()
    return t._storage.program

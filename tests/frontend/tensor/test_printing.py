"""Tests for fusegrad.printing: tensor reprs must match PyTorch character for character.

The literal expectations below were recorded from PyTorch 2.13.0 (CPU build;
the ``device='cuda:0'`` cases from a tensor made to report that device), with
``torch.`` replaced by ``fusegrad.``.  ``test_matches_torch_on_random_tensors``
re-checks against a live PyTorch when one is installed.
"""

import random

import numpy as np
import pytest

from fusegrad.printing import format_tensor, get_printoptions, set_printoptions

nan, inf = float("nan"), float("inf")

NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32,
                "int64": np.int64, "uint8": np.uint8, "bool": np.bool_}
DEFAULT_OPTIONS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80,
                   "sci_mode": None}


@pytest.fixture(autouse=True)
def default_printoptions():
    set_printoptions(profile="default")
    yield
    set_printoptions(profile="default")


# values, dtype_name, suffixes, device, print options, expected repr
RECORDED_CASES = [
    pytest.param(6.0, 'float32', [], None, {},
                 'tensor(6.)',
                 id='scalar_integral_float'),
    pytest.param(3.14159265, 'float32', [], None, {},
                 'tensor(3.1416)',
                 id='scalar_fraction'),
    pytest.param(6.0, 'float64', [], None, {},
                 'tensor(6., dtype=fusegrad.float64)',
                 id='scalar_float64'),
    pytest.param(True, 'bool', [], None, {},
                 'tensor(True)',
                 id='scalar_bool'),
    pytest.param(7, 'int64', [], None, {},
                 'tensor(7)',
                 id='scalar_int64'),
    pytest.param(-7, 'int32', [], None, {},
                 'tensor(-7, dtype=fusegrad.int32)',
                 id='scalar_int32'),
    pytest.param(200, 'uint8', [], None, {},
                 'tensor(200, dtype=fusegrad.uint8)',
                 id='scalar_uint8'),
    pytest.param(nan, 'float32', [], None, {},
                 'tensor(nan)',
                 id='scalar_nan'),
    pytest.param(-0.0, 'float32', [], None, {},
                 'tensor(-0.)',
                 id='scalar_negative_zero'),
    pytest.param(1e-5, 'float32', [], None, {},
                 'tensor(1.0000e-05)',
                 id='scalar_tiny_is_scientific'),
    pytest.param(2.5, 'float32', ['requires_grad=True'], None, {},
                 'tensor(2.5000, requires_grad=True)',
                 id='scalar_requires_grad'),
    pytest.param([1.0, 2.0], 'float32', [], None, {},
                 'tensor([1., 2.])',
                 id='vector_integral_floats'),
    pytest.param([1.5, 2.25, -3.125], 'float32', [], None, {},
                 'tensor([ 1.5000,  2.2500, -3.1250])',
                 id='vector_fractions'),
    pytest.param([0.1, 0.12345, 123.456789], 'float32', [], None, {},
                 'tensor([1.0000e-01, 1.2345e-01, 1.2346e+02])',
                 id='vector_rounding'),
    pytest.param([1, 2], 'int32', [], None, {},
                 'tensor([1, 2], dtype=fusegrad.int32)',
                 id='vector_int32'),
    pytest.param([1.0, 2.0], 'float64', [], None, {},
                 'tensor([1., 2.], dtype=fusegrad.float64)',
                 id='vector_float64'),
    pytest.param([0.1, 0.2], 'float64', [], None, {},
                 'tensor([0.1000, 0.2000], dtype=fusegrad.float64)',
                 id='vector_float64_fractions'),
    pytest.param([True, False], 'bool', [], None, {},
                 'tensor([ True, False])',
                 id='vector_bool'),
    pytest.param([0, 255, 7], 'uint8', [], None, {},
                 'tensor([  0, 255,   7], dtype=fusegrad.uint8)',
                 id='vector_uint8'),
    pytest.param([10, 1], 'int64', [], None, {},
                 'tensor([10,  1])',
                 id='vector_int_alignment'),
    pytest.param([-100, 5, 42], 'int64', [], None, {},
                 'tensor([-100,    5,   42])',
                 id='vector_negative_ints'),
    pytest.param([[1, 2], [3, 4]], 'int64', [], None, {},
                 (
                     'tensor([[1, 2],\n'
                     '        [3, 4]])'
                 ),
                 id='matrix_int'),
    pytest.param([[1.5, -2.0], [3.25, 100.0]], 'float32', [], None, {},
                 (
                     'tensor([[  1.5000,  -2.0000],\n'
                     '        [  3.2500, 100.0000]])'
                 ),
                 id='matrix_float'),
    pytest.param(np.arange(12).reshape(2, 2, 3), 'int64', [], None, {},
                 (
                     'tensor([[[ 0,  1,  2],\n'
                     '         [ 3,  4,  5]],\n'
                     '\n'
                     '        [[ 6,  7,  8],\n'
                     '         [ 9, 10, 11]]])'
                 ),
                 id='tensor_3d'),
    pytest.param(np.arange(16.0).reshape(2, 2, 2, 2) / 4, 'float32', [], None, {},
                 (
                     'tensor([[[[0.0000, 0.2500],\n'
                     '          [0.5000, 0.7500]],\n'
                     '\n'
                     '         [[1.0000, 1.2500],\n'
                     '          [1.5000, 1.7500]]],\n'
                     '\n'
                     '\n'
                     '        [[[2.0000, 2.2500],\n'
                     '          [2.5000, 2.7500]],\n'
                     '\n'
                     '         [[3.0000, 3.2500],\n'
                     '          [3.5000, 3.7500]]]])'
                 ),
                 id='tensor_4d'),
    pytest.param(np.arange(3.0).reshape(1, 3, 1), 'float32', [], None, {},
                 (
                     'tensor([[[0.],\n'
                     '         [1.],\n'
                     '         [2.]]])'
                 ),
                 id='size_one_dims'),
    pytest.param([1e-5, 1.0], 'float32', [], None, {},
                 'tensor([1.0000e-05, 1.0000e+00])',
                 id='scientific_small'),
    pytest.param([1e9, 1.5], 'float32', [], None, {},
                 'tensor([1.0000e+09, 1.5000e+00])',
                 id='scientific_large'),
    pytest.param([0.001, 2.5], 'float32', [], None, {},
                 'tensor([1.0000e-03, 2.5000e+00])',
                 id='scientific_ratio'),
    pytest.param([1e10, 1.0], 'float32', [], None, {},
                 'tensor([1.0000e+10, 1.0000e+00])',
                 id='scientific_integral'),
    pytest.param([-1.5e-7, 3.0e3], 'float64', [], None, {},
                 'tensor([-1.5000e-07,  3.0000e+03], dtype=fusegrad.float64)',
                 id='scientific_negative'),
    pytest.param([nan, inf, -inf, 1.5], 'float32', [], None, {},
                 'tensor([   nan,    inf,   -inf, 1.5000])',
                 id='nan_and_inf'),
    pytest.param([1.0, nan, inf], 'float32', [], None, {},
                 'tensor([1., nan, inf])',
                 id='integral_with_nonfinite'),
    pytest.param([1e-8, nan, -inf], 'float32', [], None, {},
                 'tensor([1.0000e-08,        nan,       -inf])',
                 id='scientific_with_nonfinite'),
    pytest.param(np.zeros(3), 'float32', [], None, {},
                 'tensor([0., 0., 0.])',
                 id='all_zeros'),
    pytest.param([nan, inf], 'float32', [], None, {},
                 'tensor([nan, inf])',
                 id='all_nonfinite'),
    pytest.param([-0.0, 1.5], 'float32', [], None, {},
                 'tensor([-0.0000, 1.5000])',
                 id='negative_zero_fraction'),
    pytest.param([-0.0, 2.0], 'float32', [], None, {},
                 'tensor([-0., 2.])',
                 id='negative_zero_integral'),
    pytest.param(np.zeros(0), 'float32', [], None, {},
                 'tensor([])',
                 id='empty_float32'),
    pytest.param(np.zeros(0), 'int64', [], None, {},
                 'tensor([], dtype=fusegrad.int64)',
                 id='empty_int64'),
    pytest.param(np.zeros(0), 'float64', [], None, {},
                 'tensor([], dtype=fusegrad.float64)',
                 id='empty_float64'),
    pytest.param(np.zeros(0), 'bool', [], None, {},
                 'tensor([], dtype=fusegrad.bool)',
                 id='empty_bool'),
    pytest.param(np.zeros((0, 3)), 'float32', [], None, {},
                 'tensor([], size=(0, 3))',
                 id='empty_2d'),
    pytest.param(np.zeros((2, 0, 3)), 'int32', [], None, {},
                 'tensor([], size=(2, 0, 3), dtype=fusegrad.int32)',
                 id='empty_3d_int32'),
    pytest.param(np.arange(30.0) / 3, 'float32', [], None, {},
                 (
                     'tensor([0.0000, 0.3333, 0.6667, 1.0000, 1.3333, 1.6667, 2.0000, 2.3333, 2.6667,\n'
                     '        3.0000, 3.3333, 3.6667, 4.0000, 4.3333, 4.6667, 5.0000, 5.3333, 5.6667,\n'
                     '        6.0000, 6.3333, 6.6667, 7.0000, 7.3333, 7.6667, 8.0000, 8.3333, 8.6667,\n'
                     '        9.0000, 9.3333, 9.6667])'
                 ),
                 id='wrap_floats'),
    pytest.param(np.arange(40) * 1000, 'int64', [], None, {},
                 (
                     'tensor([    0,  1000,  2000,  3000,  4000,  5000,  6000,  7000,  8000,  9000,\n'
                     '        10000, 11000, 12000, 13000, 14000, 15000, 16000, 17000, 18000, 19000,\n'
                     '        20000, 21000, 22000, 23000, 24000, 25000, 26000, 27000, 28000, 29000,\n'
                     '        30000, 31000, 32000, 33000, 34000, 35000, 36000, 37000, 38000, 39000])'
                 ),
                 id='wrap_ints'),
    pytest.param(np.arange(30) % 3 == 0, 'bool', [], None, {},
                 (
                     'tensor([ True, False, False,  True, False, False,  True, False, False,  True,\n'
                     '        False, False,  True, False, False,  True, False, False,  True, False,\n'
                     '        False,  True, False, False,  True, False, False,  True, False, False])'
                 ),
                 id='wrap_bools'),
    pytest.param(np.arange(36.0).reshape(2, 18) / 7, 'float32', [], None, {},
                 (
                     'tensor([[0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,\n'
                     '         1.2857, 1.4286, 1.5714, 1.7143, 1.8571, 2.0000, 2.1429, 2.2857, 2.4286],\n'
                     '        [2.5714, 2.7143, 2.8571, 3.0000, 3.1429, 3.2857, 3.4286, 3.5714, 3.7143,\n'
                     '         3.8571, 4.0000, 4.1429, 4.2857, 4.4286, 4.5714, 4.7143, 4.8571, 5.0000]])'
                 ),
                 id='wrap_matrix_rows'),
    pytest.param(np.arange(2000.0), 'float32', [], None, {},
                 (
                     'tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n'
                     '        1.9990e+03])'
                 ),
                 id='summarize_1d'),
    pytest.param(np.arange(1001), 'int64', [], None, {},
                 'tensor([   0,    1,    2,  ...,  998,  999, 1000])',
                 id='summarize_1d_int'),
    pytest.param(np.arange(1200).reshape(40, 30), 'int64', [], None, {},
                 (
                     'tensor([[   0,    1,    2,  ...,   27,   28,   29],\n'
                     '        [  30,   31,   32,  ...,   57,   58,   59],\n'
                     '        [  60,   61,   62,  ...,   87,   88,   89],\n'
                     '        ...,\n'
                     '        [1110, 1111, 1112,  ..., 1137, 1138, 1139],\n'
                     '        [1140, 1141, 1142,  ..., 1167, 1168, 1169],\n'
                     '        [1170, 1171, 1172,  ..., 1197, 1198, 1199]])'
                 ),
                 id='summarize_2d'),
    pytest.param(np.arange(2000.0).reshape(10, 10, 20) / 7, 'float32', [], None, {},
                 (
                     'tensor([[[0.0000e+00, 1.4286e-01, 2.8571e-01,  ..., 2.4286e+00,\n'
                     '          2.5714e+00, 2.7143e+00],\n'
                     '         [2.8571e+00, 3.0000e+00, 3.1429e+00,  ..., 5.2857e+00,\n'
                     '          5.4286e+00, 5.5714e+00],\n'
                     '         [5.7143e+00, 5.8571e+00, 6.0000e+00,  ..., 8.1429e+00,\n'
                     '          8.2857e+00, 8.4286e+00],\n'
                     '         ...,\n'
                     '         [2.0000e+01, 2.0143e+01, 2.0286e+01,  ..., 2.2429e+01,\n'
                     '          2.2571e+01, 2.2714e+01],\n'
                     '         [2.2857e+01, 2.3000e+01, 2.3143e+01,  ..., 2.5286e+01,\n'
                     '          2.5429e+01, 2.5571e+01],\n'
                     '         [2.5714e+01, 2.5857e+01, 2.6000e+01,  ..., 2.8143e+01,\n'
                     '          2.8286e+01, 2.8429e+01]],\n'
                     '\n'
                     '        [[2.8571e+01, 2.8714e+01, 2.8857e+01,  ..., 3.1000e+01,\n'
                     '          3.1143e+01, 3.1286e+01],\n'
                     '         [3.1429e+01, 3.1571e+01, 3.1714e+01,  ..., 3.3857e+01,\n'
                     '          3.4000e+01, 3.4143e+01],\n'
                     '         [3.4286e+01, 3.4429e+01, 3.4571e+01,  ..., 3.6714e+01,\n'
                     '          3.6857e+01, 3.7000e+01],\n'
                     '         ...,\n'
                     '         [4.8571e+01, 4.8714e+01, 4.8857e+01,  ..., 5.1000e+01,\n'
                     '          5.1143e+01, 5.1286e+01],\n'
                     '         [5.1429e+01, 5.1571e+01, 5.1714e+01,  ..., 5.3857e+01,\n'
                     '          5.4000e+01, 5.4143e+01],\n'
                     '         [5.4286e+01, 5.4429e+01, 5.4571e+01,  ..., 5.6714e+01,\n'
                     '          5.6857e+01, 5.7000e+01]],\n'
                     '\n'
                     '        [[5.7143e+01, 5.7286e+01, 5.7429e+01,  ..., 5.9571e+01,\n'
                     '          5.9714e+01, 5.9857e+01],\n'
                     '         [6.0000e+01, 6.0143e+01, 6.0286e+01,  ..., 6.2429e+01,\n'
                     '          6.2571e+01, 6.2714e+01],\n'
                     '         [6.2857e+01, 6.3000e+01, 6.3143e+01,  ..., 6.5286e+01,\n'
                     '          6.5429e+01, 6.5571e+01],\n'
                     '         ...,\n'
                     '         [7.7143e+01, 7.7286e+01, 7.7429e+01,  ..., 7.9571e+01,\n'
                     '          7.9714e+01, 7.9857e+01],\n'
                     '         [8.0000e+01, 8.0143e+01, 8.0286e+01,  ..., 8.2429e+01,\n'
                     '          8.2571e+01, 8.2714e+01],\n'
                     '         [8.2857e+01, 8.3000e+01, 8.3143e+01,  ..., 8.5286e+01,\n'
                     '          8.5429e+01, 8.5571e+01]],\n'
                     '\n'
                     '        ...,\n'
                     '\n'
                     '        [[2.0000e+02, 2.0014e+02, 2.0029e+02,  ..., 2.0243e+02,\n'
                     '          2.0257e+02, 2.0271e+02],\n'
                     '         [2.0286e+02, 2.0300e+02, 2.0314e+02,  ..., 2.0529e+02,\n'
                     '          2.0543e+02, 2.0557e+02],\n'
                     '         [2.0571e+02, 2.0586e+02, 2.0600e+02,  ..., 2.0814e+02,\n'
                     '          2.0829e+02, 2.0843e+02],\n'
                     '         ...,\n'
                     '         [2.2000e+02, 2.2014e+02, 2.2029e+02,  ..., 2.2243e+02,\n'
                     '          2.2257e+02, 2.2271e+02],\n'
                     '         [2.2286e+02, 2.2300e+02, 2.2314e+02,  ..., 2.2529e+02,\n'
                     '          2.2543e+02, 2.2557e+02],\n'
                     '         [2.2571e+02, 2.2586e+02, 2.2600e+02,  ..., 2.2814e+02,\n'
                     '          2.2829e+02, 2.2843e+02]],\n'
                     '\n'
                     '        [[2.2857e+02, 2.2871e+02, 2.2886e+02,  ..., 2.3100e+02,\n'
                     '          2.3114e+02, 2.3129e+02],\n'
                     '         [2.3143e+02, 2.3157e+02, 2.3171e+02,  ..., 2.3386e+02,\n'
                     '          2.3400e+02, 2.3414e+02],\n'
                     '         [2.3429e+02, 2.3443e+02, 2.3457e+02,  ..., 2.3671e+02,\n'
                     '          2.3686e+02, 2.3700e+02],\n'
                     '         ...,\n'
                     '         [2.4857e+02, 2.4871e+02, 2.4886e+02,  ..., 2.5100e+02,\n'
                     '          2.5114e+02, 2.5129e+02],\n'
                     '         [2.5143e+02, 2.5157e+02, 2.5171e+02,  ..., 2.5386e+02,\n'
                     '          2.5400e+02, 2.5414e+02],\n'
                     '         [2.5429e+02, 2.5443e+02, 2.5457e+02,  ..., 2.5671e+02,\n'
                     '          2.5686e+02, 2.5700e+02]],\n'
                     '\n'
                     '        [[2.5714e+02, 2.5729e+02, 2.5743e+02,  ..., 2.5957e+02,\n'
                     '          2.5971e+02, 2.5986e+02],\n'
                     '         [2.6000e+02, 2.6014e+02, 2.6029e+02,  ..., 2.6243e+02,\n'
                     '          2.6257e+02, 2.6271e+02],\n'
                     '         [2.6286e+02, 2.6300e+02, 2.6314e+02,  ..., 2.6529e+02,\n'
                     '          2.6543e+02, 2.6557e+02],\n'
                     '         ...,\n'
                     '         [2.7714e+02, 2.7729e+02, 2.7743e+02,  ..., 2.7957e+02,\n'
                     '          2.7971e+02, 2.7986e+02],\n'
                     '         [2.8000e+02, 2.8014e+02, 2.8029e+02,  ..., 2.8243e+02,\n'
                     '          2.8257e+02, 2.8271e+02],\n'
                     '         [2.8286e+02, 2.8300e+02, 2.8314e+02,  ..., 2.8529e+02,\n'
                     '          2.8543e+02, 2.8557e+02]]])'
                 ),
                 id='summarize_3d'),
    pytest.param(np.where(np.arange(2000) == 1000, 1e6, 1.0), 'float32', [], None, {},
                 'tensor([1., 1., 1.,  ..., 1., 1., 1.])',
                 id='summarize_width_from_shown_values'),
    pytest.param(np.arange(12), 'int64', [], None, {'threshold': 12},
                 'tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11])',
                 id='not_summarized_at_threshold'),
    pytest.param(np.arange(13), 'int64', [], None, {'threshold': 12},
                 'tensor([ 0,  1,  2,  ..., 10, 11, 12])',
                 id='summarized_past_threshold'),
    pytest.param([1.0, 2.0], 'float32', ['requires_grad=True'], None, {},
                 'tensor([1., 2.], requires_grad=True)',
                 id='requires_grad'),
    pytest.param([2.0, 4.0], 'float32', ['grad_fn=<AddBackward0>'], None, {},
                 'tensor([2., 4.], grad_fn=<AddBackward0>)',
                 id='grad_fn'),
    pytest.param([2.5, 2.5, 0.5, 1e10], 'float64', ['grad_fn=<AddBackward0>'], None, {},
                 (
                     'tensor([2.5000e+00, 2.5000e+00, 5.0000e-01, 1.0000e+10], dtype=fusegrad.float64,\n'
                     '       grad_fn=<AddBackward0>)'
                 ),
                 id='grad_fn_wraps_after_dtype'),
    pytest.param([1e-5, nan, 0.0, 0.5], 'float64', [], None, {},
                 'tensor([1.0000e-05,        nan, 0.0000e+00, 5.0000e-01], dtype=fusegrad.float64)',
                 id='dtype_wraps_to_new_line'),
    pytest.param([[0.25, -1.5, 3.0], [2.0, 0.125, -7.75]], 'float32', ['requires_grad=True'], None, {},
                 (
                     'tensor([[ 0.2500, -1.5000,  3.0000],\n'
                     '        [ 2.0000,  0.1250, -7.7500]], requires_grad=True)'
                 ),
                 id='matrix_requires_grad'),
    pytest.param(np.arange(20.0) / 3, 'float32', ['grad_fn=<AddBackward0>'], None, {},
                 (
                     'tensor([0.0000, 0.3333, 0.6667, 1.0000, 1.3333, 1.6667, 2.0000, 2.3333, 2.6667,\n'
                     '        3.0000, 3.3333, 3.6667, 4.0000, 4.3333, 4.6667, 5.0000, 5.3333, 5.6667,\n'
                     '        6.0000, 6.3333], grad_fn=<AddBackward0>)'
                 ),
                 id='multiline_grad_fn'),
    pytest.param([1.0, 2.0], 'float32', [], 'cuda:0', {},
                 "tensor([1., 2.], device='cuda:0')",
                 id='device_cuda'),
    pytest.param([1.0, 2.0], 'float64', ['requires_grad=True'], 'cuda:0', {},
                 "tensor([1., 2.], device='cuda:0', dtype=fusegrad.float64, requires_grad=True)",
                 id='device_before_dtype_and_grad'),
    pytest.param(np.zeros((0, 3)), 'int32', [], 'cuda:0', {},
                 "tensor([], device='cuda:0', size=(0, 3), dtype=fusegrad.int32)",
                 id='device_empty'),
    pytest.param(True, 'bool', [], 'cuda:0', {},
                 "tensor(True, device='cuda:0')",
                 id='device_scalar'),
    pytest.param(np.arange(24.0).reshape(2, 12) / 9, 'float32', ['grad_fn=<AddBackward0>'], 'cuda:0', {},
                 (
                     'tensor([[0.0000, 0.1111, 0.2222, 0.3333, 0.4444, 0.5556, 0.6667, 0.7778, 0.8889,\n'
                     '         1.0000, 1.1111, 1.2222],\n'
                     '        [1.3333, 1.4444, 1.5556, 1.6667, 1.7778, 1.8889, 2.0000, 2.1111, 2.2222,\n'
                     "         2.3333, 2.4444, 2.5556]], device='cuda:0', grad_fn=<AddBackward0>)"
                 ),
                 id='device_matrix_grad_fn'),
    pytest.param([1.23456, 2.5], 'float32', [], None, {'precision': 2},
                 'tensor([1.23, 2.50])',
                 id='option_precision'),
    pytest.param([1e-5, 1.0], 'float32', [], None, {'sci_mode': False},
                 'tensor([0.0000, 1.0000])',
                 id='option_sci_mode_off'),
    pytest.param([1.5, 2.0], 'float32', [], None, {'sci_mode': True},
                 'tensor([1.5000e+00, 2.0000e+00])',
                 id='option_sci_mode_on'),
    pytest.param(np.arange(10), 'int64', [], None, {'threshold': 5},
                 'tensor([0, 1, 2,  ..., 7, 8, 9])',
                 id='option_threshold'),
    pytest.param(np.arange(30).reshape(6, 5), 'int64', [], None, {'threshold': 5, 'edgeitems': 1},
                 (
                     'tensor([[ 0,  ...,  4],\n'
                     '        ...,\n'
                     '        [25,  ..., 29]])'
                 ),
                 id='option_edgeitems'),
    pytest.param(np.arange(10.0), 'float32', [], None, {'threshold': 5, 'edgeitems': 0},
                 'tensor([...], size=(10,))',
                 id='option_edgeitems_zero'),
    pytest.param(np.arange(12.0).reshape(3, 4), 'float32', [], None, {'threshold': 5, 'edgeitems': 0},
                 'tensor([...], size=(3, 4))',
                 id='option_edgeitems_zero_matrix'),
    pytest.param(np.arange(10.0) / 3, 'float32', [], None, {'linewidth': 30},
                 (
                     'tensor([0.0000, 0.3333,\n'
                     '        0.6667, 1.0000,\n'
                     '        1.3333, 1.6667,\n'
                     '        2.0000, 2.3333,\n'
                     '        2.6667, 3.0000])'
                 ),
                 id='option_linewidth'),
    pytest.param([1.23456, 1e-3], 'float32', [], None, {'profile': 'short'},
                 'tensor([1.23e+00, 1.00e-03])',
                 id='option_profile_short'),
]


@pytest.mark.parametrize("values, dtype_name, suffixes, device, options, expected", RECORDED_CASES)
def test_matches_recorded_torch_output(values, dtype_name, suffixes, device, options, expected):
    set_printoptions(**options)
    array = np.array(values, dtype=NUMPY_DTYPES[dtype_name])
    assert format_tensor(array, dtype_name=dtype_name, suffixes=suffixes, device=device) == expected


def test_prefix_sets_indentation():
    # Recorded from a torch.Tensor subclass named MyTensor.
    values = (np.arange(24.0).reshape(2, 12) / 9).astype(np.float32)
    assert format_tensor(values, dtype_name="float32", prefix="MyTensor(") == (
        "MyTensor([[0.0000, 0.1111, 0.2222, 0.3333, 0.4444, 0.5556, 0.6667, 0.7778,\n"
        "           0.8889, 1.0000, 1.1111, 1.2222],\n"
        "          [1.3333, 1.4444, 1.5556, 1.6667, 1.7778, 1.8889, 2.0000, 2.1111,\n"
        "           2.2222, 2.3333, 2.4444, 2.5556]])"
    )


def test_values_are_cast_to_the_named_dtype():
    assert format_tensor(np.array([0.1, 2.0]), dtype_name="float32") == "tensor([0.1000, 2.0000])"
    assert format_tensor(np.array([1.9, -1.0]), dtype_name="int64") == "tensor([ 1, -1])"


def test_get_printoptions_defaults():
    assert get_printoptions() == DEFAULT_OPTIONS


def test_set_printoptions_profile_then_overrides():
    set_printoptions(profile="short", precision=3)
    assert get_printoptions() == {"precision": 3, "threshold": 1000, "edgeitems": 2,
                                  "linewidth": 80, "sci_mode": None}
    set_printoptions(profile="full")
    assert get_printoptions()["threshold"] == inf


def test_set_printoptions_always_resets_sci_mode():
    set_printoptions(sci_mode=True)
    assert get_printoptions()["sci_mode"] is True
    set_printoptions(linewidth=100)
    assert get_printoptions() == dict(DEFAULT_OPTIONS, linewidth=100)


def test_get_printoptions_round_trips():
    set_printoptions(precision=2, edgeitems=1, sci_mode=False)
    saved = get_printoptions()
    set_printoptions(profile="default")
    set_printoptions(**saved)
    assert get_printoptions() == saved


# --- Oracle: compare with a live PyTorch on random tensors -----------------

ORACLE_CASES = 300


def _random_shape(rng):
    ndim = rng.choice([0, 1, 1, 2, 2, 3, 4])
    large = rng.random() < 0.15
    limit = {1: 2500, 2: 50, 3: 14, 4: 8}.get(ndim, 1)
    shape = []
    for _ in range(ndim):
        roll = rng.random()
        if roll < 0.08:
            shape.append(0)
        elif roll < 0.25:
            shape.append(1)
        else:
            shape.append(rng.randint(1, limit) if large else rng.randint(2, 6))
    return tuple(shape)


def _random_values(rng, shape, dtype_name):
    count = int(np.prod(shape))
    gen = np.random.default_rng(rng.randrange(2**31))
    if dtype_name == "bool":
        return (gen.random(count) < rng.random()).reshape(shape)
    if dtype_name in ("int32", "int64", "uint8"):
        info = np.iinfo(NUMPY_DTYPES[dtype_name])
        high = min(int(info.max), 10 ** rng.randint(0, 18))
        low = max(int(info.min), -high) if rng.random() < 0.7 else 0
        return gen.integers(low, high, size=count, endpoint=True).astype(dtype_name).reshape(shape)
    kind = rng.choice(["normal", "integral", "wide", "tiny", "huge", "zeros"])
    if kind == "normal":
        values = gen.normal(size=count) * 10 ** rng.uniform(-3, 4)
    elif kind == "integral":
        values = np.round(gen.normal(size=count) * 10 ** rng.randint(0, 9))
    elif kind == "wide":
        values = gen.normal(size=count) * 10 ** gen.uniform(-8, 8, size=count)
    elif kind == "tiny":
        values = gen.normal(size=count) * 1e-6
    elif kind == "huge":
        values = gen.normal(size=count) * 10 ** rng.choice([8, 20, 300])
    else:
        values = np.zeros(count)
    if count and rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            values[gen.integers(0, count)] = rng.choice([nan, inf, -inf, -0.0])
    with np.errstate(over="ignore"):
        return values.astype(dtype_name).reshape(shape)


def _random_options(rng):
    if rng.random() < 0.6:
        return {}
    choices = {"precision": [0, 2, 6], "threshold": [0, 5, 100, inf], "edgeitems": [0, 1, 4],
               "linewidth": [20, 50, 120], "profile": ["short", "full"], "sci_mode": [True, False]}
    return {name: rng.choice(values) for name, values in choices.items() if rng.random() < 0.3}


def _torch_repr(torch, values, dtype_name, grad):
    tensor = torch.from_numpy(values.copy())
    if grad:
        tensor = tensor.clone().requires_grad_(True)
        if grad == "grad_fn":
            tensor = tensor * 1
    return repr(tensor).replace("torch.", "fusegrad.")


def test_matches_torch_on_random_tensors():
    try:
        import torch
    except ImportError:
        pytest.skip("PyTorch not installed")
    rng = random.Random(20240501)
    saved = torch._tensor_str.get_printoptions()
    mismatches = []
    try:
        for _ in range(ORACLE_CASES):
            dtype_name = rng.choice(sorted(NUMPY_DTYPES))
            values = _random_values(rng, _random_shape(rng), dtype_name)
            grad = rng.choice([None, "requires_grad", "grad_fn"]) if values.dtype.kind == "f" else None
            suffixes = {None: [], "requires_grad": ["requires_grad=True"],
                        "grad_fn": ["grad_fn=<MulBackward0>"]}[grad]
            options = _random_options(rng)
            torch.set_printoptions(profile="default")
            torch.set_printoptions(**options)
            set_printoptions(profile="default")
            set_printoptions(**options)
            expected = _torch_repr(torch, values, dtype_name, grad)
            got = format_tensor(values, dtype_name=dtype_name, suffixes=suffixes)
            if got != expected:
                mismatches.append((values.shape, dtype_name, options, expected, got))
    finally:
        torch.set_printoptions(**saved)
    assert not mismatches, mismatches[:3]

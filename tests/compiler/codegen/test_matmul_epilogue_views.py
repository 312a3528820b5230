"""The CPU matmul kernel's fused epilogue reads its other operands through their own buffers.

Regression: the epilogue keyed the pointers it reads through by each load's movement base as
well as by the load, so when a matmul operand was a materialized copy of a view of `a` (a
reshaped permute, written to a temp by an earlier kernel) and the epilogue also read a view
of `a` itself (a sliced, expanded bias), the bias was read from the temp's buffer.
"""
import numpy as np

import fusegrad


def test_epilogue_reads_a_view_of_the_base_of_a_copied_operand():
    a = np.arange(60.0).reshape(4, 5, 3)
    x = fusegrad.tensor(a)
    product = x.permute(1, 0, 2).reshape(5, 12) @ x.transpose(1, 2)[:, :, :4].reshape(12, 4)
    out = x[0, :, :1].expand(5, 4) + product
    expected = a[0, :, :1] + a.transpose(1, 0, 2).reshape(5, 12) @ a.transpose(0, 2, 1)[:, :, :4].reshape(12, 4)
    np.testing.assert_array_equal(out.numpy(), expected)
    kernels = fusegrad.program_of(out).text("kernels").split("kernel k")[1:]
    assert any("matmul over" in k and "expand" in k and "add" in k for k in kernels)   # the epilogue path


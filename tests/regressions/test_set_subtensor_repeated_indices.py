"""Found by the fuzzer (tests/test_fuzz.py, theme 'integer'): set_subtensor with a repeated
advanced index races on the kernel backends. NumPy (the reference) keeps the last write; the
scatter kernel writes all of them in parallel, so emu's checking mode reports "the result
depends on the order of the threads" (and a plain emu/cuda run is order-dependent).
inc_subtensor with repeats is fine. The fuzzer draws unique indices for set_subtensor until
this was fixed. Fixed: in set mode each element looks along the index dims for a later element
landing on the same place and skips its write if there is one (kernels/scatter.cu.j2), so the
last assignment wins as in NumPy, with no race."""
import numpy as np
import pytest

import theta
import theta.tensor as T

from fuzz import check


@pytest.mark.parametrize("dtype", ["int32", "float64"])
def test_set_subtensor_with_repeated_indices(dtype):
    a = T.tensor(dtype, shape=(5, 3), name="a")
    i = T.tensor("int64", shape=(4,), name="i")
    v = T.tensor(dtype, shape=(4, 3), name="v")
    out = T.set_subtensor(a[i], v)
    values = [np.arange(15).reshape(5, 3).astype(dtype), np.array([1, 1, 3, 1]),
              (np.arange(12).reshape(4, 3) - 8).astype(dtype)]
    check([a, i, v], [out], values, grad=False)

"""Found by the fuzzer (tests/test_fuzz.py, theme 'integer'): set_subtensor with a repeated
advanced index races on the kernel backends. NumPy (the reference) keeps the last write; the
scatter kernel writes all of them in parallel, so emu's checking mode reports "the result
depends on the order of the threads" (and a plain emu/cuda run is order-dependent).
inc_subtensor with repeats is fine. The fuzzer draws unique indices for set_subtensor until
this is fixed (the fix: last-writer-wins in the scatter lowering, e.g. a gather-form kernel)."""
import numpy as np
import pytest

import theta
import theta.tensor as T

from fuzz import check


@pytest.mark.xfail(strict=True, reason="set_subtensor with repeated indices races in the scatter kernel")
@pytest.mark.parametrize("dtype", ["int32", "float64"])
def test_set_subtensor_with_repeated_indices(dtype):
    a = T.tensor(dtype, shape=(5, 3), name="a")
    i = T.tensor("int64", shape=(4,), name="i")
    v = T.tensor(dtype, shape=(4, 3), name="v")
    out = T.set_subtensor(a[i], v)
    values = [np.arange(15).reshape(5, 3).astype(dtype), np.array([1, 1, 3, 1]),
              (np.arange(12).reshape(4, 3) - 8).astype(dtype)]
    check([a, i, v], [out], values, grad=False)

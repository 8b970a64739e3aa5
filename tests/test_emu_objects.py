"""emu libraries linked from one object per kernel (runtime.emu_build.render_objects): what a
Program's kernels are built as. Kernels that differ only in their name are built once; a
module that differs from a built one in one kernel builds that kernel's object (and links)."""
from __future__ import annotations

import numpy as np
import pytest

from theta.runtime.cache import KernelCache
from theta.runtime.emu_build import EmuModule, KernelSig, Param, unique_kernels

# a block-wide sum through dynamic shared memory (one `extern __shared__` name in both kernels)
TEMPLATE = r"""
__global__ void NAME(const float* __restrict__ x, float* __restrict__ out, int n) {
    extern __shared__ float buf[];
    int t = threadIdx.x;
    buf[t] = t < n ? x[t] * SCALE : 0.0f;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) buf[t] += buf[t + s];
        __syncthreads();
    }
    if (t == 0) out[0] = buf[0];
}
"""
PARAMS = (Param("x", "const float*"), Param("out", "float*"), Param("n", "int"))


def kernel(name: str, scale: str) -> tuple[str, KernelSig]:
    return TEMPLATE.replace("NAME", name).replace("SCALE", scale), KernelSig(name, PARAMS)


def module(kernels, cache, **kw) -> EmuModule:
    sources, sigs = [s for s, _ in kernels], [k for _, k in kernels]
    return EmuModule("\n".join(sources), sigs, cache=cache, kernel_sources=sources, **kw)


def run(mod: EmuModule, name: str, x: np.ndarray) -> float:
    out = np.zeros(1, np.float32)
    mod.launch(name, 1, 64, [x, out, x.size], shared_bytes=64 * 4)
    return float(out[0])


def test_same_kernels_but_for_their_names_are_found_alike():
    (a, ka), (b, kb), (c, kc) = kernel("k0", "2.0f"), kernel("k1", "2.0f"), kernel("k2", "3.0f")
    keep, alias = unique_kernels([a, b, c], [ka, kb, kc])
    assert keep == [0, 2] and alias == {"k0": "k0", "k1": "k0", "k2": "k2"}


@pytest.mark.parametrize("check", [False, True])
def test_objects_share_dynamic_shared_memory_and_rebuild_one_kernel(tmp_path, check):
    cache = KernelCache(tmp_path)
    x = np.arange(50, dtype=np.float32)
    first = module([kernel("k0", "2.0f"), kernel("k1", "2.0f"), kernel("k2", "3.0f")], cache, check=check)
    assert [run(first, k, x) for k in ("k0", "k1", "k2")] == [2 * x.sum(), 2 * x.sum(), 3 * x.sum()]
    objects = sorted(tmp_path.glob("*/*.o"))
    assert len(objects) == 3   # k0 (k1 is k0 renamed), k2, and the shared runtime unit
    misses = cache.misses
    # the same module again: the library is found, nothing is built
    again = module([kernel("k0", "2.0f"), kernel("k1", "2.0f"), kernel("k2", "3.0f")], cache, check=check)
    assert cache.misses == misses and again.path == first.path
    # one kernel differs: its object and the library are built, the other objects are found
    changed = module([kernel("k0", "2.0f"), kernel("k1", "2.0f"), kernel("k2", "5.0f")], cache, check=check)
    assert cache.misses == misses + 2
    assert len(sorted(tmp_path.glob("*/*.o"))) == 4
    assert run(changed, "k2", x) == 5 * x.sum() and run(changed, "k1", x) == 2 * x.sum()

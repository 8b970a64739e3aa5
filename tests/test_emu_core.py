"""emu: hand-written CUDA kernels compiled with g++ against kernels/emu.h, checked against numpy.

KERNELS is plain CUDA C (tests/test_nvcc.py compiles the same source with nvcc). Modules
are built once per test module into a temporary cache; each g++ build is ~1-3 s.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import numpy as np
import pytest

from theta.runtime.cache import KernelCache
from theta.runtime.emu_build import (
    EmuCompileError,
    EmuLaunchError,
    EmuModule,
    KernelSig,
    Param,
    render_source,
    uses_sync,
)

KERNELS = r"""
#include <assert.h>

#define FULL_MASK 0xffffffffu
#define TILE 16

__global__ void axpy(const int n, const float a, const float* __restrict__ x, float* __restrict__ const y) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + y[i];
}

// One block per row: 1 + log2(blockDim.x) barriers (9 with 256 threads).
__global__ void row_sum(const float* __restrict__ x, float* __restrict__ out, int ncols) {
    __shared__ float partial[1024];
    const int tid = threadIdx.x;
    const float* row = x + (size_t)blockIdx.x * ncols;
    float acc = 0.0f;
    for (int c = tid; c < ncols; c += blockDim.x) acc += row[c];
    partial[tid] = acc;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (tid < stride) partial[tid] += partial[tid + stride];
        __syncthreads();
    }
    if (tid == 0) out[blockIdx.x] = partial[0];
}

// Each thread publishes a value and reads its neighbour's, then the block writes back
// in reverse: right only if every barrier holds all threads until all have arrived.
__global__ void rotate(int* out) {
    __shared__ int s[1024];
    const int t = threadIdx.x, n = blockDim.x;
    s[t] = t * 7 + blockIdx.x * 100000;
    __syncthreads();
    const int v = s[(t + 1) % n];
    __syncthreads();
    s[n - 1 - t] = v;
    __syncthreads();
    out[blockIdx.x * n + t] = s[t];
}

// The same without barriers: a data race, shown to give a different answer.
__global__ void rotate_racy(int* out) {
    __shared__ int s[1024];
    const int t = threadIdx.x, n = blockDim.x;
    s[t] = t * 7 + blockIdx.x * 100000;
    const int v = s[(t + 1) % n];
    s[n - 1 - t] = v;
    out[blockIdx.x * n + t] = s[t];
}

__global__ void warp_ops(const float* __restrict__ x, float* sum, float* maxv, float* scan, float* bcast,
                         unsigned* ballot) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int lane = threadIdx.x % 32, warp = i / 32;
    const float v = x[i];
    float s = v;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(FULL_MASK, s, off);
    if (lane == 0) sum[warp] = s;
    float m = v;
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(FULL_MASK, m, off));
    maxv[i] = m;
    float c = v;
    for (int off = 1; off < 32; off <<= 1) {
        const float up = __shfl_up_sync(FULL_MASK, c, off);
        if (lane >= off) c += up;
    }
    scan[i] = c;
    bcast[i] = __shfl_sync(FULL_MASK, v, 5);
    const unsigned b = __ballot_sync(FULL_MASK, v > 0.0f);
    if (lane == 0) ballot[warp] = b;
}

// Butterfly over 8-lane segments (width 8), in double: every lane gets its segment's sum.
__global__ void segment_sum(const double* __restrict__ x, double* __restrict__ out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    double s = x[i];
    for (int off = 4; off > 0; off >>= 1) s += __shfl_xor_sync(FULL_MASK, s, off, 8);
    out[i] = s;
}

// Blocks that are not a multiple of 32 threads leave the last warp partial.
__global__ void partial_warp_sum(const float* __restrict__ x, float* __restrict__ out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int lane = threadIdx.x % 32;
    const unsigned mask = __ballot_sync(__activemask(), 1);
    const int lanes = __popc(mask);
    float s = x[i];
    for (int off = 16; off > 0; off >>= 1) {
        const float o = __shfl_down_sync(mask, s, off);
        if (lane + off < lanes) s += o;
    }
    if (lane == 0) out[blockIdx.x * ((blockDim.x + 31) / 32) + threadIdx.x / 32] = s;
}

__global__ void atomics(const int* __restrict__ bins, const float* __restrict__ x, int n, int* hist, float* fsum,
                        double* dsum, unsigned long long* count, int* imax, int* imin, int* per_block) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        atomicAdd(&hist[bins[i]], 1);
        atomicAdd(fsum, x[i]);
        atomicAdd(dsum, (double)x[i]);
        atomicAdd(count, 1ull);
        atomicMax(imax, bins[i] * 3 - 7);
        atomicMin(imin, bins[i] * 3 - 7);
    }
    if (threadIdx.x == 0) {  // a CAS loop: one increment per block
        int old = atomicAdd(per_block, 0), assumed;
        do {
            assumed = old;
            old = atomicCAS(per_block, assumed, assumed + 1);
        } while (old != assumed);
    }
}

__global__ void transpose(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
    __shared__ float tile[TILE][TILE + 1];
    int c = blockIdx.x * TILE + threadIdx.x, r = blockIdx.y * TILE + threadIdx.y;
    if (r < rows && c < cols) tile[threadIdx.y][threadIdx.x] = in[r * cols + c];
    __syncthreads();
    c = blockIdx.y * TILE + threadIdx.x;
    r = blockIdx.x * TILE + threadIdx.y;
    if (r < cols && c < rows) out[r * rows + c] = tile[threadIdx.x][threadIdx.y];
}

__global__ void index3d(int* out, int* votes) {
    const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const int bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int nthreads = blockDim.x * blockDim.y * blockDim.z;
    out[bid * nthreads + tid] = ((blockIdx.z * 16 + blockIdx.y) * 16 + blockIdx.x) * 10000
                              + (threadIdx.z * 16 + threadIdx.y) * 16 + threadIdx.x;
    const int even = __syncthreads_count(threadIdx.x % 2 == 0);
    const int all = __syncthreads_and(tid >= 0);
    const int any = __syncthreads_or(tid == nthreads + 1);
    if (tid == 0) {
        votes[3 * bid] = even;
        votes[3 * bid + 1] = all;
        votes[3 * bid + 2] = any;
    }
}

__global__ void reverse_block(const float* __restrict__ in, float* __restrict__ out) {
    extern __shared__ __align__(16) float buf[];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    buf[t] = in[base + t];
    __syncthreads();
    out[base + t] = buf[blockDim.x - 1 - t];
}

// One warp: math intrinsics, bit tricks, vector loads and the sm_80 warp ops.
__global__ void intrinsics(const float* __restrict__ x, float* __restrict__ f, int* __restrict__ k) {
    const int i = threadIdx.x;
    const float v = x[i];  // in (0, 1)
    f[8 * i + 0] = __expf(v) + __logf(v);
    f[8 * i + 1] = rsqrtf(v) * __fdividef(1.0f, v);
    f[8 * i + 2] = erfinvf(2.0f * v - 1.0f);
    f[8 * i + 3] = normcdff(v) + __saturatef(3.0f * v - 1.0f);
    f[8 * i + 4] = __int_as_float(__float_as_int(v)) + min(v, 0.5f) + max(i, 3);
    const float4 q = reinterpret_cast<const float4*>(x)[i / 4];
    f[8 * i + 5] = q.x + q.y + q.z + q.w;
    f[8 * i + 6] = __ldg(&x[(i + 1) % 32]) + sinpif(v) + cospif(v);
    f[8 * i + 7] = (float)__shfl_sync(FULL_MASK, (double)v, 31 - i);
    k[4 * i + 0] = __popc(i) + 100 * __clz(i + 1);
    k[4 * i + 1] = __reduce_add_sync(FULL_MASK, i);
    k[4 * i + 2] = (int)__match_any_sync(FULL_MASK, i % 4);
    k[4 * i + 3] = __shfl_xor_sync(FULL_MASK, i, 1) + __ffs(i);
    __syncwarp();
}

// Bugs the emulator must report rather than hang on or crash with.
__global__ void early_exit(float* out) {
    if (threadIdx.x >= 16) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void split_warp(float* out) {
    float v = threadIdx.x;
    if (threadIdx.x < 16) v = __shfl_down_sync(FULL_MASK, v, 1);
    else __syncthreads();
    out[threadIdx.x] = v;
}

__global__ void checked(const int* __restrict__ x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) assert(x[i] >= 0);
}
"""


def remove_repro_files(message: str) -> None:
    """Deletes the source a compile error kept for its repro command (and its output)."""
    for path in re.findall(r"/\S*theta_repro_\w+\.\w+", message):
        Path(path).unlink(missing_ok=True)


def _sig(name: str, *params: str) -> KernelSig:
    """_sig("axpy", "int n", "const float* x") -> KernelSig; the last word is the name."""
    return KernelSig(name, tuple(Param(p.rsplit(" ", 1)[1], p.rsplit(" ", 1)[0]) for p in params))


SIGS = [
    _sig("axpy", "const int n", "const float a", "const float* __restrict__ x", "float* __restrict__ const y"),
    _sig("row_sum", "const float* x", "float* out", "int ncols"),
    _sig("rotate", "int* out"),
    _sig("rotate_racy", "int* out"),
    _sig("warp_ops", "const float* x", "float* sum", "float* maxv", "float* scan", "float* bcast", "unsigned* ballot"),
    _sig("segment_sum", "const double* x", "double* out"),
    _sig("partial_warp_sum", "const float* x", "float* out"),
    _sig("atomics", "const int* bins", "const float* x", "int n", "int* hist", "float* fsum", "double* dsum",
         "unsigned long long* count", "int* imax", "int* imin", "int* per_block"),
    _sig("transpose", "const float* in", "float* out", "int rows", "int cols"),
    _sig("index3d", "int* out", "int* votes"),
    _sig("reverse_block", "const float* in", "float* out"),
    _sig("intrinsics", "const float* x", "float* f", "int* k"),
    _sig("early_exit", "float* out"),
    _sig("split_warp", "float* out"),
    _sig("checked", "const int* x", "int n"),
]

# No synchronisation primitive by name: runs in direct mode (threads as plain calls).
DIRECT_KERNELS = r"""
#include <assert.h>
__global__ void scale(int n, float a, const float* x, float* y) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) y[i] = a * x[i];
}
__global__ void checked(const int* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) assert(x[i] >= 0);
}
// Hides a barrier from the detector: must fail loudly, not run without a barrier.
#define SYNC(what) __sync##what()
__global__ void hidden_barrier(float* y) { y[threadIdx.x] = 1.0f; SYNC(threads); }
"""
DIRECT_SIGS = [
    _sig("scale", "int n", "float a", "const float* x", "float* y"),
    _sig("checked", "const int* x", "int n"),
    _sig("hidden_barrier", "float* y"),
]

ASAN_KERNELS = r"""
__global__ void row_sum(const float* __restrict__ x, float* __restrict__ out, int ncols) {
    __shared__ float partial[256];
    const int tid = threadIdx.x;
    float acc = 0.0f;
    for (int c = tid; c < ncols; c += blockDim.x) acc += x[blockIdx.x * ncols + c];
    partial[tid] = acc;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (tid < stride) partial[tid] += partial[tid + stride];
        __syncthreads();
    }
    if (tid == 0) out[blockIdx.x] = partial[0];
}
__global__ void off_by_one(float* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0f;  // the bug: i == n is one past the end
}
// p and q are overlapping views of one buffer: writes through either must land.
__global__ void overlap(float* p, float* q) {
    const int i = threadIdx.x;
    if (i < 50) p[50 + i] = 1.0f;   // inside q's range too
    else q[50 + i] = 2.0f;          // i in [50, 100): the buffer's last 50 floats
}
"""
ASAN_SIGS = [_sig("row_sum", "const float* x", "float* out", "int ncols"), _sig("off_by_one", "float* out", "int n"),
             _sig("overlap", "float* p", "float* q")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> KernelCache:
    return KernelCache(tmp_path_factory.mktemp("emu-cache"))


@pytest.fixture(scope="module")
def mod(cache: KernelCache) -> EmuModule:
    return EmuModule(KERNELS, SIGS, cache=cache, workers=2)


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_grid_stride_axpy(mod: EmuModule, rng: np.random.Generator) -> None:
    n = 10007
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    expected = 2.5 * x + y
    mod.launch("axpy", grid=8, block=128, args=[n, 2.5, x, y])
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_row_sum_shared_memory_and_barriers(mod: EmuModule, rng: np.random.Generator) -> None:
    x = rng.random((64, 1000), dtype=np.float32)
    out = np.zeros(64, np.float32)
    mod.launch("row_sum", grid=64, block=256, args=[x, out, 1000])
    np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("threads", [32, 256, 1000, 1024])
def test_barrier_holds_every_thread(mod: EmuModule, threads: int) -> None:
    blocks = 5
    out = np.zeros(blocks * threads, np.int32)
    mod.launch("rotate", grid=blocks, block=threads, args=[out])
    t = np.arange(threads)
    expected = np.concatenate([((threads - t) % threads) * 7 + b * 100000 for b in range(blocks)])
    np.testing.assert_array_equal(out, expected)
    # Without the barriers the answer changes: the kernel above really depends on them.
    racy = np.zeros_like(out)
    mod.launch("rotate_racy", grid=blocks, block=threads, args=[racy])
    assert not np.array_equal(racy, expected)


def test_warp_shuffles_and_ballot(mod: EmuModule, rng: np.random.Generator) -> None:
    n = 4 * 128
    x = rng.standard_normal(n).astype(np.float32)
    nwarps = n // 32
    sums, ballots = np.zeros(nwarps, np.float32), np.zeros(nwarps, np.uint32)
    maxv, scan, bcast = (np.zeros(n, np.float32) for _ in range(3))
    mod.launch("warp_ops", grid=4, block=128, args=[x, sums, maxv, scan, bcast, ballots])
    w = x.reshape(nwarps, 32)
    np.testing.assert_allclose(sums, w.sum(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(maxv, np.repeat(w.max(axis=1), 32))
    np.testing.assert_allclose(scan, np.cumsum(w, axis=1).ravel(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(bcast, np.repeat(w[:, 5], 32))
    bits = ((w > 0) * (1 << np.arange(32, dtype=np.uint64))).sum(axis=1).astype(np.uint32)
    np.testing.assert_array_equal(ballots, bits)


def test_shuffle_width_segments_in_double(mod: EmuModule, rng: np.random.Generator) -> None:
    x = rng.standard_normal(2 * 64)
    out = np.zeros_like(x)
    mod.launch("segment_sum", grid=2, block=64, args=[x, out])
    np.testing.assert_allclose(out, np.repeat(x.reshape(-1, 8).sum(axis=1), 8), rtol=1e-12)


def test_partial_warp(mod: EmuModule, rng: np.random.Generator) -> None:
    x = rng.standard_normal(3 * 48).astype(np.float32)
    out = np.zeros(3 * 2, np.float32)
    mod.launch("partial_warp_sum", grid=3, block=48, args=[x, out])
    blocks = x.reshape(3, 48)
    expected = np.stack([blocks[:, :32].sum(axis=1), blocks[:, 32:].sum(axis=1)], axis=1).ravel()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_atomics_across_blocks(mod: EmuModule, rng: np.random.Generator) -> None:
    n, nbins, blocks = 50000, 37, 64
    bins = rng.integers(0, nbins, n).astype(np.int32)
    x = rng.random(n, dtype=np.float32)
    hist = np.zeros(nbins, np.int32)
    fsum, dsum = np.zeros(1, np.float32), np.zeros(1, np.float64)
    count = np.zeros(1, np.uint64)
    imax, imin = np.array([-(2**31)], np.int32), np.array([2**31 - 1], np.int32)
    per_block = np.zeros(1, np.int32)
    mod.launch("atomics", grid=blocks, block=128,
               args=[bins, x, n, hist, fsum, dsum, count, imax, imin, per_block])
    np.testing.assert_array_equal(hist, np.bincount(bins, minlength=nbins))
    assert count[0] == n and per_block[0] == blocks
    assert imax[0] == bins.max() * 3 - 7 and imin[0] == bins.min() * 3 - 7
    np.testing.assert_allclose(dsum[0], x.astype(np.float64).sum(), rtol=1e-12)
    np.testing.assert_allclose(fsum[0], x.astype(np.float64).sum(), rtol=1e-4)


def test_transpose_2d_grid(mod: EmuModule, rng: np.random.Generator) -> None:
    rows, cols = 70, 45
    a = rng.standard_normal((rows, cols)).astype(np.float32)
    out = np.zeros((cols, rows), np.float32)
    mod.launch("transpose", grid=((cols + 15) // 16, (rows + 15) // 16), block=(16, 16), args=[a, out, rows, cols])
    np.testing.assert_array_equal(out, a.T)


def test_3d_indexing_and_barrier_votes(mod: EmuModule) -> None:
    grid, block = (3, 2, 2), (4, 3, 2)
    nthreads, nblocks = 24, 12
    out = np.zeros(nblocks * nthreads, np.int32)
    votes = np.zeros(3 * nblocks, np.int32)
    mod.launch("index3d", grid=grid, block=block, args=[out, votes])
    expected = [((bz * 16 + by) * 16 + bx) * 10000 + (tz * 16 + ty) * 16 + tx
                for bz in range(2) for by in range(2) for bx in range(3)
                for tz in range(2) for ty in range(3) for tx in range(4)]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(votes.reshape(nblocks, 3), [[12, 1, 0]] * nblocks)


def test_dynamic_shared_memory(mod: EmuModule, rng: np.random.Generator) -> None:
    x = rng.standard_normal(4 * 200).astype(np.float32)
    out = np.zeros_like(x)
    mod.launch("reverse_block", grid=4, block=200, args=[x, out], shared_bytes=200 * 4)
    np.testing.assert_array_equal(out.reshape(4, 200), x.reshape(4, 200)[:, ::-1])


def test_math_and_bit_intrinsics(mod: EmuModule, rng: np.random.Generator) -> None:
    x = rng.uniform(0.05, 0.95, 32).astype(np.float32)
    f, k = np.zeros((32, 8), np.float32), np.zeros((32, 4), np.int32)
    mod.launch("intrinsics", grid=1, block=32, args=[x, f, k])
    v, i = x.astype(np.float64), np.arange(32)
    close = functools.partial(np.testing.assert_allclose, rtol=2e-5, atol=2e-6)
    close(f[:, 0], np.exp(v) + np.log(v))
    close(f[:, 1], v**-1.5)
    close([math.erf(e) for e in f[:, 2]], 2 * v - 1)
    close(f[:, 3], [0.5 * math.erfc(-e / math.sqrt(2)) for e in v] + np.clip(3 * v - 1, 0, 1))
    close(f[:, 4], v + np.minimum(v, 0.5) + np.maximum(i, 3))
    close(f[:, 5], np.repeat(v.reshape(8, 4).sum(axis=1), 4))
    close(f[:, 6], np.roll(v, -1) + np.sin(np.pi * v) + np.cos(np.pi * v))
    np.testing.assert_array_equal(f[:, 7], x[::-1])
    clz = np.array([32 - int(j + 1).bit_length() for j in i])
    np.testing.assert_array_equal(k[:, 0], [bin(j).count("1") for j in i] + 100 * clz)
    np.testing.assert_array_equal(k[:, 1], 496)
    np.testing.assert_array_equal(k[:, 2].view(np.uint32), [sum(1 << j for j in range(r, 32, 4)) for r in i % 4])
    np.testing.assert_array_equal(k[:, 3], (i ^ 1) + [(int(j) & -int(j)).bit_length() for j in i])


def test_many_blocks_on_many_workers(mod: EmuModule, cache: KernelCache, rng: np.random.Generator) -> None:
    x = rng.random((300, 333), dtype=np.float32)
    results = []
    for workers in (1, 4):
        hits = cache.hits
        m = EmuModule(KERNELS, SIGS, cache=cache, workers=workers)  # same source: a cache hit
        assert cache.hits == hits + 1
        out = np.zeros(300, np.float32)
        m.launch("row_sum", grid=300, block=128, args=[x, out, 333])
        results.append(out)
    np.testing.assert_allclose(results[0], x.sum(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(results[0], results[1])  # each block is deterministic


def test_divergent_barrier_is_reported(mod: EmuModule, cache: KernelCache) -> None:
    out = np.zeros(64, np.float32)
    with pytest.raises(EmuLaunchError, match=r"divergent __syncthreads: 48 of 64 threads exited"):
        mod.launch("early_exit", grid=2, block=64, args=[out])
    lenient = EmuModule(KERNELS, SIGS, cache=cache, exited_threads_arrive=True)
    lenient.launch("early_exit", grid=2, block=64, args=[out])
    np.testing.assert_array_equal(out[:16], 1.0)


def test_deadlock_is_reported(mod: EmuModule) -> None:
    with pytest.raises(EmuLaunchError, match=r"deadlock: .*mask 0xffffffff but lanes 0xffff0000"):
        mod.launch("split_warp", grid=1, block=64, args=[np.zeros(64, np.float32)])


def test_assert_is_reported(mod: EmuModule) -> None:
    x = np.arange(1000, dtype=np.int32)
    mod.launch("checked", grid=8, block=128, args=[x, 1000])
    x[777] = -1
    with pytest.raises(EmuLaunchError, match=r"thread \(9,0,0\) of block \(6,0,0\): kernel.cu:\d+: .*x\[i\] >= 0"):
        mod.launch("checked", grid=8, block=128, args=[x, 1000])


def test_invalid_launches(mod: EmuModule) -> None:
    out = np.zeros(4096, np.int32)
    with pytest.raises(EmuLaunchError, match="2048 threads"):
        mod.launch("rotate", grid=1, block=2048, args=[out])
    with pytest.raises(EmuLaunchError, match="dynamic shared memory"):
        mod.launch("reverse_block", grid=1, block=32, args=[out.view(np.float32), out.view(np.float32)],
                   shared_bytes=1 << 20)
    with pytest.raises(ValueError, match="positive"):
        mod.launch("rotate", grid=0, block=32, args=[out])


def test_argument_checks(mod: EmuModule) -> None:
    x = np.zeros(64, np.float32)
    with pytest.raises(TypeError, match="float32"):
        mod.launch("axpy", 1, 32, [64, 1.0, x.astype(np.float64), x])
    with pytest.raises(ValueError, match="C-contiguous"):
        mod.launch("axpy", 1, 32, [32, 1.0, x[::2], x])
    with pytest.raises(ValueError, match="read-only"):
        ro = x.copy()
        ro.flags.writeable = False
        mod.launch("axpy", 1, 32, [64, 1.0, x, ro])
    with pytest.raises(OverflowError):
        mod.launch("axpy", 1, 32, [2**40, 1.0, x, x])
    with pytest.raises(TypeError, match="takes 4 arguments"):
        mod.launch("axpy", 1, 32, [64, 1.0, x])
    with pytest.raises(KeyError, match="no kernel"):
        mod.launch("nope", 1, 32, [])


def test_direct_mode(cache: KernelCache, rng: np.random.Generator) -> None:
    assert uses_sync(KERNELS) and not uses_sync(DIRECT_KERNELS)
    m = EmuModule(DIRECT_KERNELS, DIRECT_SIGS, cache=cache)
    assert m.fibers is False
    x = rng.standard_normal(5000).astype(np.float32)
    y = np.zeros_like(x)
    m.launch("scale", grid=7, block=96, args=[5000, -3.0, x, y])
    np.testing.assert_allclose(y, -3.0 * x, rtol=1e-6)
    bad = np.arange(300, dtype=np.int32)
    bad[299] = -5
    with pytest.raises(EmuLaunchError, match=r"thread \(43,0,0\) of block \(2,0,0\): .*assertion"):
        m.launch("checked", grid=3, block=128, args=[bad, 300])
    with pytest.raises(EmuLaunchError, match="without fibers"):
        m.launch("hidden_barrier", grid=1, block=32, args=[y])


def test_ucontext_fallback(cache: KernelCache, rng: np.random.Generator) -> None:
    m = EmuModule(KERNELS, SIGS, cache=cache, extra_flags=("-DTHETA_EMU_UCONTEXT",))
    x = rng.random((16, 300), dtype=np.float32)
    out = np.zeros(16, np.float32)
    m.launch("row_sum", grid=16, block=256, args=[x, out, 300])
    np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-5)
    seg = rng.standard_normal(64)
    seg_out = np.zeros_like(seg)
    m.launch("segment_sum", grid=1, block=64, args=[seg, seg_out])
    np.testing.assert_allclose(seg_out, np.repeat(seg.reshape(-1, 8).sum(axis=1), 8), rtol=1e-12)


def test_compile_error_shows_the_failing_line(cache: KernelCache) -> None:
    src = "__global__ void k(float* y) {\n    int i = threadIdx.x;\n    y[i] = undefined_name * 2.0f;\n}\n"
    with pytest.raises(EmuCompileError) as info:
        EmuModule(src, [_sig("k", "float* y")], cache=cache)
    message = str(info.value)
    assert "kernel.cu:3:" in message and "undefined_name" in message
    assert ">> 3 |     y[i] = undefined_name * 2.0f;" in message
    assert "repro: g++" in message
    remove_repro_files(message)


def test_rendered_source_is_template_output() -> None:
    text = render_source(KERNELS, SIGS)
    assert text.count('extern "C"') == 0  # exported through THETA_EMU_EXPORT
    assert text.count("THETA_EMU_EXPORT int theta_launch_") == len(SIGS)
    assert "thread_local float\n    buf[theta_emu::kMaxDynamicShared / sizeof(float)];" in text


def test_asan_catches_out_of_bounds_write(cache: KernelCache, rng: np.random.Generator) -> None:
    m = EmuModule(ASAN_KERNELS, ASAN_SIGS, cache=cache, asan=True)
    # A correct launch (fibers and barriers included) runs clean and writes its results back.
    x = rng.random((6, 300), dtype=np.float32)
    out = np.zeros(6, np.float32)
    m.launch("row_sum", grid=6, block=256, args=[x, out, 300])
    np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-5)
    arena = np.zeros(200, np.float32)
    m.launch("overlap", grid=1, block=100, args=[arena[:150], arena[50:]])
    np.testing.assert_array_equal(arena, np.repeat([0.0, 1.0, 0.0, 2.0], 50))
    bug_line = next(i for i, line in enumerate(ASAN_KERNELS.splitlines(), 1) if "the bug" in line)
    with pytest.raises(EmuLaunchError, match=rf"heap-buffer-overflow(.|\n)*off_by_one.*kernel.cu:{bug_line}"):
        m.launch("off_by_one", grid=1, block=128, args=[np.zeros(100, np.float32), 100])

"""GEMM family on the emu backend: Dot / BatchedDot (and fused epilogues) vs the reference.

Each test compiles one function with many outputs (one g++ build per function: the builds
dominate the runtime) and compares every output with the NumPy reference backend on the same
inputs: float32 within 1e-4 relative (to the output's largest magnitude), float64 within 1e-10,
integers exactly. The rendered kernels also compile with nvcc for sm_80 and sm_90.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler.lowering import gemm
from theta.runtime.nvcc import find_nvcc, launch_problems, resources

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

TOL = {"float32": 1e-4, "float64": 1e-10}


def _arrays(rng: np.random.Generator, shapes, dtype: str) -> list[np.ndarray]:
    if dtype.startswith("int"):
        return [rng.integers(-5, 6, size=s).astype(dtype) for s in shapes]
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _compare(inputs, outputs, arrays, updates=None):
    """Runs the graph on emu and on the reference; returns the emu program."""
    f = theta.function(inputs, outputs, updates=updates, backend="emu")
    ref = theta.function(inputs, outputs, updates=updates, backend="reference")
    got, want = f(*arrays), ref(*arrays)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, (k, g.dtype, w.dtype, g.shape, w.shape)
        if w.dtype.kind == "f":
            scale = max(float(np.max(np.abs(w))), 1e-30) if w.size else 1.0
            err = float(np.max(np.abs(g.astype("float64") - w))) / scale if w.size else 0.0
            assert err < TOL[w.dtype.name], f"output {k} ({outputs[k]}): relative error {err:.3g}"
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"output {k}")
    return f.specialization(*arrays).program


def _modes(program) -> list[str]:
    return [k.source.split("theta gemm kernel ", 1)[1].split("(", 1)[1].split(":", 1)[0]
            for k in program.kernels if k.family == "gemm"]


# (M, K, N): every size of 1, 3, 17, 33, 65, 130 in every position, tiles ragged and exact
MATMAT = [(1, 1, 1), (3, 1, 17), (17, 3, 3), (3, 17, 33), (33, 33, 17), (17, 65, 130), (130, 130, 65),
          (65, 3, 130), (130, 17, 1), (1, 33, 65), (64, 64, 64), (2, 130, 2)]
MATVEC = [(1, 1), (3, 17), (65, 130), (130, 1), (17, 33)]          # (M, K) . (K,)
VECVEC = [1, 3, 130, 4099]                                          # 4099: a block per product


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_dot_shapes(dtype, rng):
    ins, outs, shapes = [], [], []
    for m, k, n in MATMAT:
        x, y = T.matrix(dtype=dtype), T.matrix(dtype=dtype)
        ins += [x, y]
        shapes += [(m, k), (k, n)]
        outs.append(T.dot(x, y))
    for m, k in MATVEC:
        a, v, w = T.matrix(dtype=dtype), T.vector(dtype=dtype), T.vector(dtype=dtype)
        ins += [a, v, w]
        shapes += [(m, k), (k,), (m,)]
        outs += [T.dot(a, v), T.dot(w, a)]                           # matrix-vector, vector-matrix
    for k in VECVEC:
        u, v = T.vector(dtype=dtype), T.vector(dtype=dtype)
        ins += [u, v]
        shapes += [(k,), (k,)]
        outs.append(T.dot(u, v))
    prog = _compare(ins, outs, _arrays(rng, shapes, dtype))
    assert len(prog.kernels) == len(outs)
    modes = _modes(prog)
    assert modes[:len(MATMAT)] == ["tiled" if m > 1 and n > 1 else "reduce" for m, _, n in MATMAT]
    assert set(modes[len(MATMAT):]) == {"reduce"}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dot_strided_operands(dtype, rng):
    """Transposed, sliced, reversed, offset (misaligned) operands are read through strides."""
    cases = []   # (input shapes, builder)
    cases.append((((33, 20), (33, 65)), lambda x, y: T.dot(x.T, y)))              # A contiguous along m
    cases.append((((17, 32), (65, 32)), lambda x, y: T.dot(x, y.T)))              # B contiguous along k
    cases.append((((33, 17), (65, 33)), lambda x, y: T.dot(x.T, y.T)))
    cases.append((((17, 34), (34, 66)), lambda x, y: T.dot(x[:, 1:], y[1:, :65])))  # offset 1: misaligned
    cases.append((((34, 20), (20, 9)), lambda x, y: T.dot(x[::2, :], y[:, ::-1])))  # step 2, reversed
    cases.append((((17 * 32 + 1,), (32, 20)), lambda v, y: T.dot(T.reshape(v[1:], (17, 32)), y)))  # vk, misaligned
    cases.append((((17 * 32 + 4,), (32, 20)), lambda v, y: T.dot(T.reshape(v[4:], (17, 32)), y)))  # vk, aligned
    cases.append((((20,), (5 * 20 + 1,)), lambda u, v: T.dot(T.reshape(u, (5, 4)), T.reshape(v[1:], (4, 25)))))
    cases.append((((65, 33),), lambda x: T.dot(x, x.T)))                          # one input, both operands
    cases.append((((33, 130), (33,)), lambda a, v: T.dot(a.T, v)))                # thread per output
    cases.append((((33, 130), (130,)), lambda a, v: T.dot(a, v)))                 # warp per output
    cases.append((((33, 130), (130, 5)), lambda a, m: T.dot(a, m[:, 2])))          # strided vector
    cases.append((((33, 130), (33,)), lambda b, v: T.dot(v, b)))                  # thread per output
    cases.append((((130, 33), (33,)), lambda b, v: T.dot(v, b.T)))                # warp per output
    cases.append((((17, 17),), lambda x: T.dot(x[1, :], x[:, 0])))                # vector . vector, strided
    cases.append((((3, 65), (65, 1)), lambda x, y: T.dot(x, y)))                  # N == 1 matrix
    cases.append((((17, 33), (33, 5)), lambda x, y: T.dot(x, y).T))               # the result read as a view
    ins, outs, shapes = [], [], []
    for in_shapes, build in cases:
        xs = [T.tensor(dtype, shape=(None,) * len(s)) for s in in_shapes]
        ins += xs
        shapes += list(in_shapes)
        outs.append(build(*xs))
    prog = _compare(ins, outs, _arrays(rng, shapes, dtype))
    assert len(prog.kernels) == len(outs)     # no copies of views: one kernel per product
    sources = [k.source for k in prog.kernels]
    if dtype == "float32":
        assert "128-bit loads along x" in sources[0] and "128-bit loads along k" not in sources[0]
        assert "128-bit loads along k" in sources[1] and "128-bit loads along k" in sources[5]
        assert "team of 1 thread" in sources[9] and "team of 32 thread" in sources[10]
        assert "team of 1 thread" in sources[12] and "team of 32 thread" in sources[13]


def test_batched_dot(rng):
    ins, outs, shapes = [], [], []
    for dtype in ("float32", "float64", "int32"):
        for b, m, k, n in [(1, 1, 1, 1), (3, 17, 33, 5), (2, 65, 3, 130), (4, 1, 33, 1), (3, 33, 17, 1)]:
            x, y = T.tensor3(dtype=dtype), T.tensor3(dtype=dtype)
            ins += [x, y]
            shapes += [(b, m, k), (b, k, n)]
            outs.append(T.batched_dot(x, y))
    x, y = T.tensor3(), T.tensor3()
    ins += [x, y]
    shapes += [(3, 33, 17), (3, 65, 33)]
    outs.append(T.batched_dot(x.dimshuffle(0, 2, 1), y.dimshuffle(0, 2, 1)))     # both transposed per batch
    arrays = [a for k in range(0, len(shapes), 2) for a in
              _arrays(rng, shapes[k:k + 2], ins[k].dtype)]
    prog = _compare(ins, outs, arrays)
    assert len(prog.kernels) == len(outs)
    tiled = [(k, s) for k, s in zip(prog.kernels, shapes[::2]) if "(tiled" in k.source]
    assert tiled and all(k.grid[2] == s[0] for k, s in tiled)    # one grid layer per batch


def test_mixed_dtypes(rng):
    """Operands of different dtypes are converted to the result dtype while loading."""
    x, y, v = T.matrix(dtype="int32"), T.matrix(dtype="float32"), T.vector(dtype="float64")
    arrays = [rng.integers(-5, 6, (17, 33)).astype("int32"), rng.standard_normal((33, 65)).astype("float32"),
              rng.standard_normal(33)]
    _compare([x, y, v], [T.dot(x, y), T.dot(x, v), T.dot(y.T, x.T)], arrays)


def test_epilogue_fusion(rng):
    """Bias + activation, an SGD update, extra outputs: each one kernel with its product."""
    x, W, b, a, v = T.matrix(), T.matrix(), T.vector(), T.matrix(), T.vector()
    z = T.dot(x, W)
    outs = [T.tanh(z + b),                                    # tiled epilogue, a broadcast bias
            T.nnet.sigmoid(T.dot(a, v) + 0.5),                # matrix-vector epilogue, a constant
            T.batched_dot(x.dimshuffle("x", 0, 1), W.dimshuffle("x", 0, 1)) * 2.0 + 1.0]
    arrays = _arrays(rng, [(17, 33), (33, 65), (65,), (130, 33), (33,)], "float32")
    prog = _compare([x, W, b, a, v], outs, arrays)
    assert len(prog.kernels) == 3
    # the product itself is an output too: one kernel writes both
    prog = _compare([x, W, b], [z, T.maximum(z + b, 0.0), z * x[:, :1]], arrays[:3])
    assert len(prog.kernels) == 1 and sum(p.name.startswith("out") for p in prog.kernels[0].params) == 3
    # an epilogue that reads an operand of the product (W square)
    Ws = arrays[1][:, :33].copy()
    prog = _compare([x, W], [T.dot(x, W) - x], [arrays[0], Ws])
    assert len(prog.kernels) == 1


def test_epilogue_reading_a_view_of_the_product(rng):
    x, W = T.matrix(), T.matrix()
    z = T.dot(x, W)
    # fusion must not put z + z.T into the product's epilogue (it would read unwritten results)
    prog = _compare([x, W], [z + z.T], _arrays(rng, [(17, 17), (17, 17)], "float32"))
    assert len(prog.kernels) == 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_update_is_one_kernel(dtype, rng):
    h_val, g_val, w0 = _arrays(rng, [(17, 33), (17, 65), (33, 65)], dtype)
    W = theta.shared(w0.copy(), name="W")
    h, g = T.matrix(dtype=dtype), T.matrix(dtype=dtype)
    f = theta.function([h, g], [], updates=[(W, W - 0.1 * T.dot(h.T, g))], backend="emu")
    f(h_val, g_val)
    f(h_val, g_val)
    want = w0.astype("float64") - 0.2 * (h_val.T.astype("float64") @ g_val)
    err = np.max(np.abs(W.get_value() - want)) / np.max(np.abs(want))
    assert err < TOL[dtype]
    kernels = f.specialization(h_val, g_val).program.kernels
    assert len(kernels) == 1 and kernels[0].family == "gemm"


def test_big_tiles(rng, monkeypatch):
    """The 128 x 128 (8 x 8 per thread) configuration, forced onto small odd problems."""
    monkeypatch.setattr(gemm, "MANY_TILES", 1)
    x, y, u, w, b = T.matrix(), T.matrix(), T.matrix(), T.matrix(), T.vector()
    outs = [T.dot(x, y), T.dot(u.T, w.T), T.tanh(T.dot(x[:, 1:], y[1:, :]) + b)]
    arrays = _arrays(rng, [(130, 33), (33, 131), (33, 130), (131, 33), (131,)], "float32")
    prog = _compare([x, y, u, w, b], outs, arrays)
    assert all("BM = 128" in k.source for k in prog.kernels) and len(prog.kernels) == 3


@functools.lru_cache(maxsize=1)
def _coverage_kernels() -> tuple:
    """One program holding every kernel variant: tiled 64 (float32/float64/int32, vector and
    scalar loads, epilogue), tiled 128, batched, and reduce teams of 1, 32 and 256."""
    rng = np.random.default_rng(0)
    x, y, b, xd, yd, xi, yi = (T.matrix(), T.matrix(), T.vector(), T.matrix(dtype="float64"),
                              T.matrix(dtype="float64"), T.matrix(dtype="int32"), T.matrix(dtype="int32"))
    u, v, w, p, q = T.vector(), T.vector(), T.vector(), T.tensor3(), T.tensor3()
    outs = [T.tanh(T.dot(x, y) + b), T.dot(x[:, 1:], y[1:, :]), T.dot(xd, yd), T.dot(xi, yi),
            T.dot(xd.T, xd[:, ::-1]), T.dot(x.T, u), T.dot(x, v), T.dot(w, w), T.batched_dot(p, q) + 1.0]
    f = theta.function([x, y, b, xd, yd, xi, yi, u, v, w, p, q], outs, backend="emu")
    arrays = [rng.standard_normal((160, 64)).astype("float32"), rng.standard_normal((64, 1024)).astype("float32"),
              rng.standard_normal(1024).astype("float32"), rng.standard_normal((33, 16)), rng.standard_normal((16, 8)),
              rng.integers(0, 3, (8, 16)).astype("int32"), rng.integers(0, 3, (16, 8)).astype("int32"),
              rng.standard_normal(160).astype("float32"), rng.standard_normal(64).astype("float32"),
              rng.standard_normal(2100).astype("float32"),
              rng.standard_normal((2, 8, 16)).astype("float32"), rng.standard_normal((2, 16, 8)).astype("float32")]
    old = gemm.MANY_TILES
    gemm.MANY_TILES = 10      # the first product (2 x 8 tiles of 128) takes the big configuration
    try:
        kernels = f.specialization(*arrays).program.kernels
    finally:
        gemm.MANY_TILES = old
    return tuple(k for k in kernels if k.family == "gemm")


def test_coverage_program_modes():
    sources = [k.source for k in _coverage_kernels()]
    assert "BM = 128" in sources[0] and "BM = 64" in sources[2]
    for team in (1, 32, 256):
        assert any(f"team of {team} thread" in s for s in sources), team


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc not found: install the CUDA toolkit or set THETA_NVCC")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_with_nvcc(arch):
    kernels = _coverage_kernels()
    info = resources("\n".join(k.source for k in kernels), arch)
    for k in kernels:
        assert k.name in info, k.name
        assert info[k.name]["spill_stores"] == 0, (k.name, info[k.name])
        assert not launch_problems(info[k.name], k.block[0] * k.block[1] * k.block[2]), (k.name, info[k.name])

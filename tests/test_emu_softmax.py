"""The row-softmax kernel family (compiler/lowering/softmax.py, kernels/softmax.cu.j2) on emu.

Every op of compiler/ops/nnet.py is compiled with backend='emu' and compared with the NumPy
reference backend on the same inputs: many shapes (size-1 rows and columns, rows shorter and
longer than a warp, rows longer than a block), float32 and float64, strided inputs (a
transposed, a sliced and a reversed matrix, a broadcast gradient), the numerically hard rows
(huge spreads, -inf, +inf, NaN), out-of-range labels (an IndexingError), fused epilogues, and
the Theano idiom categorical_crossentropy(softmax(z), y).mean() with its gradient. The lowering's
tuning knobs are monkeypatched to force each code path (warp or block per row, row cached in
registers or re-read with an online max, a single block looping over all rows) on small
shapes. Every rendered kernel also goes through nvcc for sm_80 and sm_90.

To keep g++ time down, each test compiles one function holding many kernels (all ops, shapes
and dtypes at once): one shared library per test.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import theta
from theta.errors import IndexingError
import theta.tensor as T
from theta.compiler.lowering import softmax as lowering
from theta.compiler.ops.nnet import (CrossentropySoftmaxInt, CrossentropySoftmaxIntGrad, LogSoftmax, Softmax,
                                     SoftmaxGrad)

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

OPS = ("softmax", "logsoftmax", "softmax_grad", "xent", "xent_grad")
SHAPES = [(1, 1), (1, 9), (6, 1), (5, 7), (33, 1000), (64, 10)]
# Forced code paths: (WARP_MAX_K, CACHE_REGS). The default (warp per row up to K = 1024, row
# in registers) is what SHAPES run with.
PATHS = {"warp-online": (1024, 0), "block-cached": (0, 64), "block-online": (0, 0)}
PATH_SHAPES = [(1, 1), (3, 1), (5, 7), (4, 700), (70, 3)]


# ------------------------------------------------------------------------------------ helpers

def _ops(x, gz, sm, y, gl) -> list:
    """All five ops over one set of symbolic operands, in OPS order."""
    return [Softmax()(x), LogSoftmax()(x), SoftmaxGrad()(gz, sm), CrossentropySoftmaxInt()(x, y),
            CrossentropySoftmaxIntGrad()(gl, x, y)]


def _values(rng: np.random.Generator, n: int, k: int, dtype: str) -> list:
    """Inputs for _ops: logits, a gradient, a softmax, labels in [0, k), a loss gradient."""
    x = (rng.standard_normal((n, k)) * 3).astype(dtype)
    gz = rng.standard_normal((n, k)).astype(dtype)
    e = np.exp(rng.standard_normal((n, k)))
    sm = (e / e.sum(axis=1, keepdims=True)).astype(dtype)
    y = rng.integers(0, k, n).astype("int32")
    gl = rng.standard_normal(n).astype(dtype)
    return [x, gz, sm, y, gl]


def _symbols(values: list) -> list:
    return [T.tensor(v.dtype.name, shape=(None,) * v.ndim, name=f"in{i}") for i, v in enumerate(values)]


def _compile(inputs: list, outputs: list):
    """(emu function, reference function) over the same graph."""
    emu = theta.function(inputs, outputs, backend="emu", on_unused_input="ignore")
    ref = theta.function(inputs, outputs, backend="reference", on_unused_input="ignore")
    return emu, ref


def _tolerances(op: str, dtype: str) -> tuple:
    """(rtol, atol relative to the largest magnitude). Softmax (tiny probabilities included),
    and in float32 log-softmax and the loss, are compared purely relatively. The gradients
    subtract (gz - dot, softmax - 1), so one rounding step of the operands of that subtraction
    is allowed absolutely. So is one float64 rounding of log(sum) for float64 log-softmax and
    loss: a row dominated by one value has log(sum) ~ 1e-4 whose last bit depends on the
    summation order (pairwise in NumPy, per lane then a tree here); float32 rounds it away."""
    if dtype == "float32":
        return 1e-5, (2e-7 if op in ("softmax_grad", "xent_grad") else 0.0)
    return 1e-12, (1e-15 if op != "softmax" else 0.0)


def _check(got: np.ndarray, want: np.ndarray, op: str, what: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, got.shape, want.dtype, want.shape)
    rtol, atol = _tolerances(op, want.dtype.name)
    finite = want[np.isfinite(want)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(scale, 1.0), equal_nan=True, err_msg=what)


def _kernels(fn, *args) -> list:
    return fn.specialization(*args).program.kernels


def _run_ops_grid(rng: np.random.Generator, shapes: list, dtypes: tuple) -> list:
    """Compile all ops over every (shape, dtype) into one emu function, compare with the
    reference, and return the kernels."""
    values, inputs, outputs, names = [], [], [], []
    for dtype in dtypes:
        for n, k in shapes:
            vals = _values(rng, n, k, dtype)
            syms = _symbols(vals)
            values += vals
            inputs += syms
            outputs += _ops(*syms)
            names += [(op, f"{op} {dtype} {(n, k)}") for op in OPS]
    emu, ref = _compile(inputs, outputs)
    got, want = emu(*values), ref(*values)
    for (op, what), g, w in zip(names, got, want):
        _check(g, w, op, what)
    kernels = _kernels(emu, *values)
    assert len(kernels) == len(outputs) and all(k.family == "softmax" for k in kernels)
    return kernels


# -------------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_op_every_shape(dtype: str, rng: np.random.Generator) -> None:
    kernels = _run_ops_grid(rng, SHAPES, (dtype,))
    # the default lowering: warp per row, the row cached in registers, for all these shapes
    assert all(k.block == (lowering.WARP_THREADS, 1, 1) for k in kernels)


@pytest.mark.parametrize("path", list(PATHS))
def test_forced_code_paths(path: str, rng: np.random.Generator, monkeypatch) -> None:
    warp_max_k, cache_regs = PATHS[path]
    monkeypatch.setattr(lowering, "WARP_MAX_K", warp_max_k)
    monkeypatch.setattr(lowering, "CACHE_REGS", cache_regs)
    monkeypatch.setattr(lowering, "MAX_GRID", 1)   # one block walks all rows: the grid-stride loop
    kernels = _run_ops_grid(rng, PATH_SHAPES, ("float32", "float64"))
    assert all(k.grid == (1, 1, 1) for k in kernels)
    want_block = lowering.WARP_THREADS if path.startswith("warp") else lowering.BLOCK_THREADS
    assert all(k.block == (want_block, 1, 1) for k in kernels)
    cached = ["T xv[" in k.source or "gv[" in k.source for k in kernels]
    assert all(cached) if path.endswith("cached") else not any(cached)


def _hard_rows(dtype: str) -> np.ndarray:
    big = np.finfo(dtype).max
    rows = [
        [999, 990, -10, 0],
        [-10, 990, 999, 5],
        [-1000, -1001, -1002, -1003],
        [-np.inf, 0, 1, -np.inf],
        [1e-30, -1e30, 0, 1],
        [big, -big, 0, 1],
        [-big, -big, -big, -big],
        [20, 20, 20, 20],
        [-np.inf, -np.inf, -np.inf, -np.inf],   # NaN in NumPy (-inf - -inf); NaN here too
        [np.inf, 0, 1, 2],                      # NaN (inf - inf)
        [np.nan, 0, 1, 2],                      # NaN
    ]
    return np.array(rows, dtype=dtype)


@pytest.mark.parametrize("path", ["default", "block-online"])
def test_stable_rows(path: str, rng: np.random.Generator, monkeypatch) -> None:
    """Rows with huge spreads, infinities and NaN: short rows (one lane each value) and the
    same values spread over a long row (-inf elsewhere), so that partial results of lanes and
    warps that saw only -inf are merged with ones that saw the max."""
    if path != "default":
        monkeypatch.setattr(lowering, "WARP_MAX_K", PATHS[path][0])
        monkeypatch.setattr(lowering, "CACHE_REGS", PATHS[path][1])
    values, inputs, outputs, names = [], [], [], []
    for dtype in ("float32", "float64"):
        short = _hard_rows(dtype)
        wide = np.full((short.shape[0], 700), -np.inf, dtype=dtype)
        wide[:, [3, 290, 611, 699]] = short          # different lanes, and different warps in block mode
        for x in (short, wide):
            n, k = x.shape
            y = (np.arange(n) % 4).astype("int64")
            y = np.array([3, 290, 611, 699])[y] if k == 700 else y
            gz = rng.standard_normal((n, k)).astype(dtype)
            sm = np.abs(rng.standard_normal((n, k))).astype(dtype)
            gl = rng.standard_normal(n).astype(dtype)
            vals = [x, gz, sm, y, gl]
            syms = _symbols(vals)
            values += vals
            inputs += syms
            outputs += _ops(*syms)
            names += [(op, f"{op} {dtype} {x.shape}") for op in OPS]
    emu, ref = _compile(inputs, outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # NumPy's inf - inf
        want = ref(*values)
    got = emu(*values)
    for (op, what), g, w in zip(names, got, want):
        _check(g, w, op, what)
    # spot checks on the hardest row, against values computed by hand
    ls = got[1][0].astype("float64")
    np.testing.assert_allclose(ls[:3], [-np.log1p(np.exp(-9.0)), -9 - np.log1p(np.exp(-9.0)), -1009], rtol=1e-5)
    assert np.isnan(got[0][8]).all() and np.isnan(got[0][9]).all() and np.isnan(got[0][10]).all()


def test_out_of_range_labels_raise(rng: np.random.Generator) -> None:
    """Labels outside [0, K) are never used as indices (AddressSanitizer checks it) and are
    reported: the runtime raises IndexingError, as the reference backend does."""
    theta.config.emu_asan = True
    x = rng.standard_normal((6, 5)).astype("float32")
    gl = rng.standard_normal(6).astype("float32")
    xs, ys, gs = T.fmatrix("x"), T.ivector("y"), T.fvector("gl")
    for op in (lambda: CrossentropySoftmaxInt()(xs, ys), lambda: CrossentropySoftmaxIntGrad()(gs, xs, ys)):
        f = theta.function([xs, ys, gs], op(), backend="emu", on_unused_input="ignore")
        f(x, np.array([0, 1, 4, 2, 3, 0], dtype="int32"), gl)
        for bad in ([0, -1, 4, 2, 3, 0], [0, 5, 4, 2, 3, 0], [1 << 30, 1, 1, 1, 1, 1]):
            with pytest.raises(IndexingError, match="out of range"):
                f(x, np.array(bad, dtype="int32"), gl)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strided_inputs(dtype: str, rng: np.random.Generator) -> None:
    """Operands that are views: a transposed matrix (column stride N), every other row of a
    matrix read backwards (row stride 2K, column stride -1), strided int64 labels, a
    row-broadcast gradient and a scalar-broadcast loss gradient (stride 0)."""
    z = T.matrix("z", dtype=dtype)          # stored (K, N): x = z.T
    w = T.matrix("w", dtype=dtype)          # stored (2N, K): x = w[1::2, ::-1]
    yy = T.lvector("yy")                    # stored (2N,): y = yy[::2]
    v = T.vector("v", dtype=dtype)          # a (K,) gradient broadcast over rows
    c = T.vector("c", dtype=dtype)          # (1,): gl = alloc(c[0], N), stride 0 (a 0-d input hits the
                                            # emu runtime's np.ascontiguousarray(0-d) -> (1,) reshape)
    n, k = 9, 45
    outs = []
    for x in (z.T, w[1::2, ::-1]):
        y = yy[::2]
        gl = T.alloc(c[0], n)
        outs += [Softmax()(x), LogSoftmax()(x), SoftmaxGrad()(v.dimshuffle("x", 0), x),
                 SoftmaxGrad()(x, w[::2]), CrossentropySoftmaxInt()(x, y), CrossentropySoftmaxIntGrad()(gl, x, y)]
    ops = ["softmax", "logsoftmax", "softmax_grad", "softmax_grad", "xent", "xent_grad"] * 2
    zv = rng.standard_normal((k, n)).astype(dtype)
    wv = rng.standard_normal((2 * n, k)).astype(dtype)
    yv = rng.integers(0, k, 2 * n).astype("int64")
    vv = rng.standard_normal(k).astype(dtype)
    cv = np.asarray([0.37], dtype=dtype)
    emu, ref = _compile([z, w, yy, v, c], outs)
    got, want = emu(zv, wv, yv, vv, cv), ref(zv, wv, yv, vv, cv)
    for i, (op, g, wnt) in enumerate(zip(ops, got, want)):
        _check(g, wnt, op, f"output {i} ({op})")
    kernels = _kernels(emu, zv, wv, yv, vv, cv)
    assert len(kernels) == len(outs) and all(kn.family == "softmax" for kn in kernels)   # no copies of views
    assert "p0 + row * (1)" in kernels[0].source and f"col) * ({n})" in kernels[0].source


def test_epilogue_fusion(rng: np.random.Generator) -> None:
    """Elementwise consumers of the row op's result run in its kernel, before the write: a scale
    and a broadcast bias, both the op and its consumer as outputs, an SGD-like update of a
    loss-gradient, and a weighted loss."""
    x, b, p = T.fmatrix("x"), T.fvector("b"), T.fmatrix("p")
    y, wl = T.ivector("y"), T.fvector("wl")
    sm = T.nnet.softmax(x)
    outs = [
        -2 * sm + b.dimshuffle("x", 0),                               # one kernel, epilogue only
        sm, sm * sm,                                                   # main and epilogue both written
        p - 0.1 * CrossentropySoftmaxIntGrad()(wl, x, y),              # an update of p
        T.nnet.crossentropy_softmax_int(x, y) * wl + 1,                # a per-row epilogue
        T.exp(T.nnet.log_softmax(x)) - 1,
    ]
    xv = rng.standard_normal((7, 13)).astype("float32")
    vals = [xv, rng.standard_normal(13).astype("float32"), rng.standard_normal((7, 13)).astype("float32"),
            rng.integers(0, 13, 7).astype("int32"), rng.standard_normal(7).astype("float32")]
    emu, ref = _compile([x, b, p, y, wl], outs)
    got, want = emu(*vals), ref(*vals)
    for i, (g, w) in enumerate(zip(got, want)):
        _check(g, w, "softmax_grad", f"output {i}")
    kernels = _kernels(emu, *vals)
    # softmax(x) with its epilogues, the loss gradient + update, the loss + weighting, and
    # log_softmax with exp(.) - 1: one launch each
    assert [k.family for k in kernels] == ["softmax"] * 4, kernels
    assert all("ep0" in k.source for k in kernels)


def test_crossentropy_of_softmax_mean_and_grad(rng: np.random.Generator) -> None:
    """Theano's idiom: categorical_crossentropy(softmax(z), y).mean() and its gradient. The
    stabilize pass turns it into CrossentropySoftmaxInt and the gradient into
    CrossentropySoftmaxIntGrad with a broadcast (stride 0) 1/N: one softmax kernel each."""
    z, y = T.fmatrix("z"), T.ivector("y")
    losses = T.nnet.categorical_crossentropy(T.nnet.softmax(z), y)
    cost = losses.mean()
    g = theta.grad(cost, z)
    zv = (rng.standard_normal((64, 10)) * 4).astype("float32")
    yv = rng.integers(0, 10, 64).astype("int32")
    # the per-row losses and the gradient need no other kernel family
    emu, ref = _compile([z, y], [losses, g])
    got, want = emu(zv, yv), ref(zv, yv)
    _check(got[0], want[0], "xent", "losses")
    _check(got[1], want[1], "xent_grad", "gradient")
    kernels = _kernels(emu, zv, yv)
    assert [k.family for k in kernels] == ["softmax", "softmax"]
    assert "xent over 64 rows of 10" in kernels[0].source and "xent_grad over 64 rows" in kernels[1].source
    # the mean needs the reduce family's lowering too
    emu, ref = _compile([z, y], [cost, g])
    got, want = emu(zv, yv), ref(zv, yv)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4)
    _check(got[1], want[1], "xent_grad", "gradient of the mean")


# -------------------------------------------------------------------------------------- nvcc

def _render_all() -> list:
    """Every kernel variant, rendered without g++: (label, source of one program's kernels)."""
    from theta.compiler.pipeline import build_program
    rng = np.random.default_rng(0)
    sources = []
    for path, knobs in [("default", None)] + list(PATHS.items()):
        old = lowering.WARP_MAX_K, lowering.CACHE_REGS
        if knobs is not None:
            lowering.WARP_MAX_K, lowering.CACHE_REGS = knobs
        try:
            values, inputs, outputs = [], [], []
            # Shapes only change constants: one shape per branch of the template is enough
            # (the default's rows of 8 lanes, 4 per warp; its warp per row with 32 cached
            # values per lane; its block per row).
            shapes = [(5, 7), (33, 1000), (3, 5000)] if knobs is None else [(5, 700)]
            for dtype in ("float32", "float64"):
                for n, k in shapes:
                    vals = _values(rng, n, k, dtype)
                    syms = _symbols(vals)
                    values += vals
                    inputs += syms
                    outputs += _ops(*syms)
                    outputs.append(-T.exp(Softmax()(syms[0]) * 2) + syms[1])    # a matrix epilogue
                    outputs.append(CrossentropySoftmaxInt()(syms[0], syms[3]) * syms[4])  # a row epilogue
            fn = theta.function(inputs, outputs, backend="reference", on_unused_input="ignore")
            spec = fn.specialization(*values)
            program = build_program(spec.outputs, spec.concrete, [])
        finally:
            lowering.WARP_MAX_K, lowering.CACHE_REGS = old
        assert all(k.family == "softmax" for k in program.kernels)
        sources.append((path, program.kernels))
    return sources


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles_every_variant(arch: str) -> None:
    from theta.runtime import nvcc
    if nvcc.find_nvcc() is None:
        pytest.skip("nvcc not found (looked at $THETA_NVCC, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    for path, kernels in _render_all():
        source = "\n".join(k.source for k in kernels)   # one module per program, as a backend loads it
        res = nvcc.resources(source, arch)
        for k in kernels:
            info = res[k.name]
            assert not nvcc.launch_problems(info, k.block[0] * k.block[1] * k.block[2]), (path, k.name, info)
            # The cached row lives in registers: no local-memory stack frame, no spills. (float64
            # only: the slow path of double exp() is a real call, around which ptxas may spill a
            # few live doubles of a large cached row; measured 36 bytes for K = 5000.)
            if "typedef float T;" in k.source:
                assert info["spill_stores"] == 0 and info["stack_frame"] == 0, (path, k.name, info)

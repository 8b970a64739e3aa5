"""The reduce kernel family on emu against the reference backend.

Reduce (sum/prod/max/min/mean over any axis set), ArgReduce and SumTo groups, with fused
elementwise prologues and epilogues, over strided (transposed, sliced, broadcast) inputs;
the thread mappings the lowering chooses (row / column, split over blocks); the accumulation
contract (float64 / int64 accumulators, NaN propagation, empty reductions); and nvcc
compiling every kind of rendered reduce kernel for sm_80 and sm_90.

Each theta.function compiles all its kernels into one g++ library, so most tests put many
reductions into one function to keep the number of compiles (the runtime) low.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler.ops.elemwise import SumTo
from theta.binding import KernelRunner
from theta.compiler.pipeline import build_program
from theta.runtime.emu import device as emu_device
from theta.runtime.nvcc import find_nvcc, launch_problems, resources

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

KINDS = {"sum": T.sum, "prod": T.prod, "max": T.max, "min": T.min, "mean": T.mean}
AXES = [None, 0, 1, (0, 2), -1, (2, 0)]
RTOL = {"float32": 2e-6, "float64": 1e-13}


def compare(inputs: list, outputs: list, args: list, rtol: float | None = None):
    """Run ``outputs`` on emu and on the reference; every result must match in shape, dtype and
    value. Plain float reductions: both accumulate in float64 and round once, so they agree
    within an ulp or two; with elementwise prologues (expf vs NumPy's exp differ by an ulp per
    term) pass the looser ``rtol``. Returns the emu function."""
    f_emu = theta.function(inputs, outputs, backend="emu")
    f_ref = theta.function(inputs, outputs, backend="reference")
    got, want = f_emu(*args), f_ref(*args)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, f"output {k}: {outputs[k]}", rtol)
    return f_emu


def assert_same(got, want, what: str = "", rtol: float | None = None) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f":
        rtol = rtol or RTOL[want.dtype.name]
        finite = np.abs(want[np.isfinite(want)])
        scale = float(finite.max()) if finite.size else 1.0
        # absolute slack for results that cancel to near zero
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-2 * max(scale, 1.0), err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def n_kernels(f, *args) -> int:
    return len(f.specialization(*args).program.kernels)


def data(rng, shape, dtype: str) -> np.ndarray:
    if dtype.startswith("float"):
        return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)).astype(dtype)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -9), min(info.max, 9), shape, endpoint=True).astype(dtype)


# -- every kind over every axis set ------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_kinds_by_axes(rng, dtype):
    """sum/prod/max/min/mean x axes None/0/1/(0,2)/-1/(2,0) x keepdims, on an odd shape and on
    one with size-1 dims, in one function per shape."""
    x = T.tensor(dtype, shape=(None, None, None), name="x")
    outs = []
    for name, fn in KINDS.items():
        for axis in AXES:
            outs.append(fn(x, axis=axis))
            # keepdims: a view of the result, returned as such or read by the next kernel
            outs.append(fn(x, axis=axis, keepdims=True))
            outs.append(fn(x, axis=axis, keepdims=True) * x)
    for shape in [(3, 5, 7), (1, 6, 1)]:
        compare([x], outs, [data(rng, shape, dtype)])


def test_small_int_and_bool_types(rng):
    """int8/uint8/int16/bool inputs: sums widen to (u)int64 and never overflow, max/min keep
    the dtype, mean gives floatX."""
    outs, inputs, args = [], [], []
    for dtype in ["int8", "uint8", "int16", "bool"]:
        v = T.tensor(dtype, shape=(None, None), name=dtype)
        inputs.append(v)
        outs += [T.sum(v, axis=0), T.sum(v), T.max(v, axis=1), T.min(v, axis=0), T.mean(v, axis=1), T.prod(v, axis=1)]
        if dtype == "bool":
            args.append(rng.random((300, 7)) < 0.7)
        else:
            info = np.iinfo(dtype)
            args.append(rng.integers(info.max - 3, info.max, (300, 7), endpoint=True).astype(dtype))
    f = compare(inputs, outs, args)
    got = f(*args)
    assert got[0].dtype == "int64" and got[0][0] == args[0][:, 0].astype("int64").sum() > 127 * 250
    assert got[6].dtype == "uint64" and got[6][0] == args[1][:, 0].astype("uint64").sum()


# -- argmax / argmin ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_argreduce(rng, dtype):
    """Ties go to the first occurrence, a NaN wins (the first NaN); axes 0, 1, -1, None, keepdims,
    and a transposed input."""
    x = T.tensor(dtype, shape=(None, None), name="x")
    outs = [T.argmax(x, axis=0), T.argmin(x, axis=0), T.argmax(x, axis=1), T.argmin(x, axis=-1),
            T.argmax(x), T.argmin(x), T.argmax(x.T, axis=1), T.argmin(x.T[::2], axis=0),
            T.argmax(x, axis=1, keepdims=True) + 1, T.argmin(x, axis=0, keepdims=True)]
    # few distinct values: many ties
    a = rng.integers(-2, 3, (37, 300)).astype(dtype)
    if dtype == "float32":
        a[5, 7] = a[9, 7] = a[20, 100] = np.nan
        a[30, :] = np.nan
    compare([x], outs, [a])
    long = rng.integers(-3, 4, (3, 5000)).astype(dtype)   # long rows: lanes and warps combine
    long[1, 4000] = long[1, 4001] = 50
    compare([x], outs, [long])


# -- fusion --------------------------------------------------------------------------------------

def test_prologue_fusion(rng):
    """Elementwise producers are computed while reading: one kernel per reduction, including
    broadcast (row/column) and transposed prologue inputs, and prologues of argmax."""
    x, y = T.matrix("x"), T.matrix("y")
    r, c = T.row("r"), T.col("c")
    cases = [
        ([x, y], T.sum(T.exp(x) * y, axis=1)),
        ([x, r], T.max(abs(x - r), axis=0)),
        ([x, c], T.mean(T.tanh(x.T) * c.T, axis=1)),
        ([x, y], T.argmax(x * 2 + y, axis=1)),
        ([x, y], T.prod(T.sqrt(abs(x * y)) + 0.5, axis=0)),
        ([x, y], T.sum(T.log1p(x * x) - y, axis=None)),
    ]
    a, b = data(rng, (41, 67), "float32"), data(rng, (41, 67), "float32")
    values = {"x": a, "y": b, "r": data(rng, (1, 67), "float32"), "c": data(rng, (41, 1), "float32")}
    for inputs, out in cases:
        args = [values[v.name] for v in inputs]
        f = compare(inputs, [out], args, rtol=1e-4)
        assert n_kernels(f, *args) == 1, f"{out} was not fused into one kernel"


def test_epilogue_fusion(rng):
    """Elementwise consumers over the output shape run before the write: T.mean(x, 0) * 2 + b
    and the SGD update of a bias are one kernel; main and epilogue may both be outputs."""
    x, b = T.matrix("x"), T.vector("b")
    args = [data(rng, (45, 70), "float32"), data(rng, (70,), "float32")]
    f = compare([x, b], [T.mean(x, axis=0) * 2 + b], args)
    assert n_kernels(f, *args) == 1
    # float64; the sum is an output and feeds its epilogue; argmax takes no epilogue
    x2, b2 = T.dmatrix("x"), T.dvector("b")
    args2 = [data(rng, (45, 70), "float64"), data(rng, (45,), "float64")]
    s2 = T.sum(x2 ** 2, axis=1)
    f = compare([x2, b2], [s2, T.sqrt(s2) + b2, T.argmax(x2, axis=1)], args2)
    assert n_kernels(f, *args2) == 2
    # an epilogue may not read the result through a view (other outputs' values): s + s.T
    t = T.tensor3("t")
    s3 = T.sum(t, axis=0)
    compare([t], [s3 + s3.T], [data(rng, (3, 8, 8), "float32")])

    # the SGD update of a bias, b - lr * sum(g, axis=0), with a runtime learning rate
    g, lr = T.matrix("g"), T.scalar("lr")
    bias = theta.shared(np.zeros(70, "float32"), name="bias")
    start = data(rng, (70,), "float32")
    grad = data(rng, (45, 70), "float32")
    bias.set_value(start)
    new = bias - lr * T.sum(g, axis=0)
    f = theta.function([g, lr], new, backend="emu", updates=[(bias, new)])
    assert n_kernels(f, grad, np.float32(0.1)) == 1
    out = f(grad, np.float32(0.1))
    want = start - np.float32(0.1) * grad.astype("float64").sum(axis=0).astype("float32")
    np.testing.assert_allclose(out, want, rtol=1e-6)
    np.testing.assert_allclose(bias.get_value(), want, rtol=1e-6)


def test_strided_and_broadcast_inputs(rng):
    """Reductions read views through strides: transposes, slices with steps and offsets,
    dimshuffles of 3-D tensors, broadcast (stride-0) dims, reshapes of non-contiguous views."""
    x, t, v = T.matrix("x"), T.tensor3("t"), T.vector("v")
    outs = [T.sum(x.T, axis=0), T.max(x.T, axis=1), T.sum(x[::2, 1:], axis=0), T.min(x[3:, ::-3], axis=1),
            T.sum(t.dimshuffle(2, 0, 1), axis=(0, 2)), T.mean(t.dimshuffle(1, 2, 0), axis=1),
            T.sum(T.alloc(v, 6, 11), axis=0), T.sum(v.dimshuffle("x", 0) * x[:1], axis=None),
            T.sum(x[:, 2]), T.max(t[1], axis=0),
            # copy-reshapes of transposed data read in the source's order, inside the prologue
            T.sum(T.exp(T.reshape(x.T, (23, 11))), axis=0), T.max(T.reshape(x.T, (253,)))]
    compare([x, t, v], outs, [data(rng, (23, 11), "float32"), data(rng, (4, 9, 13), "float32"),
                              data(rng, (11,), "float32")], rtol=1e-5)


# -- thread mappings -----------------------------------------------------------------------------

def test_mappings_and_split(rng):
    """Shapes that take each mapping: long rows (a block per output), short rows (several
    outputs per warp), column sums (a thread per output, lanes over rows), tall-narrow column
    sums and full reductions split over blocks. A second call checks that a split kernel's
    arrival counters were reset."""
    x, y, w = T.matrix("x"), T.matrix("y"), T.vector("w")
    outs = [T.sum(w), T.max(w), T.argmin(w),                  # split full reductions
            T.sum(x, axis=0), T.argmax(x, axis=0),            # tall narrow: col, split
            T.mean(x, axis=1), T.min(x, axis=1),              # short rows
            T.sum(y, axis=1), T.argmax(y, axis=1),            # long rows
            T.sum(y, axis=0), T.max(y.T, axis=1)]             # many columns
    f = compare([x, y, w], outs, args := [data(rng, (30000, 3), "float32"), data(rng, (5, 3000), "float32"),
                                          data(rng, (70001,), "float32")])
    kernels = f.specialization(*args).program.kernels
    assert any(k.grid[1] > 1 for k in kernels), "no reduction was split over blocks"
    assert {k.block[0] for k in kernels} & {256}
    args[2] = data(rng, (70001,), "float32")
    args[0] = data(rng, (30000, 3), "float32")
    got = f(*args)
    assert_same(got[0], np.float32(args[2].astype("float64").sum()))
    assert_same(got[3], args[0].astype("float64").sum(axis=0).astype("float32"))
    assert got[2] == np.argmin(args[2]) and (got[4] == np.argmax(args[0], axis=0)).all()


def test_capped_grid(rng, monkeypatch):
    """Blocks loop over output tiles when the grid is capped below the tile count, split
    kernels included (each tile still sees every split's arrival exactly once)."""
    import theta.compiler.lowering.reduce as lowering
    monkeypatch.setattr(lowering, "MAX_GRID", 3)
    x, y = T.matrix("x"), T.matrix("y")
    outs = [T.sum(x, axis=0), T.argmin(x, axis=0), T.mean(y, axis=1) + 1, T.max(y.T, axis=0)]
    args = [data(rng, (5000, 300), "float32"), data(rng, (50, 3000), "float32")]
    f = compare([x, y], outs, args)
    grids = [k.grid for k in f.specialization(*args).program.kernels]
    assert all(g[0] <= 3 for g in grids) and any(g[1] > 1 for g in grids), grids
    assert_same(f(*args)[0], args[0].astype("float64").sum(axis=0).astype("float32"))   # counters reset


# -- numerics ------------------------------------------------------------------------------------

def test_accumulation_precision():
    """float32 means and sums accumulate in float64 (Theano's acc_dtype contract)."""
    v = T.vector("v")
    f = theta.function([v], [T.mean(v), T.sum(v)], backend="emu")
    mean, total = f(np.array([1e8, 1, -1e8], "float32"))
    assert abs(mean - 1 / 3) < 1e-6 and total == 1
    many = np.full(1_000_001, 0.1, "float32")
    mean, total = f(many)
    assert total == np.float32(many.astype("float64").sum()) and mean == np.float32(0.1)


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_nan_inf_and_empty(rng):
    """max/min propagate NaN like NumPy; empty reductions give 0 (sum), 1 (prod), nan (mean)."""
    x = T.matrix("x")
    outs = [T.max(x, axis=1), T.min(x, axis=0), T.max(x), T.sum(x, axis=1), T.mean(x, axis=0)]
    a = data(rng, (6, 70), "float32")
    a[2, 5] = np.nan
    a[4, 9] = np.inf
    a[:, 60] = -np.inf
    compare([x], outs, [a])
    empty = [T.sum(x, axis=0), T.prod(x, axis=0), T.mean(x, axis=0), T.sum(x), T.prod(x), T.mean(x),
             T.sum(x, axis=1)]
    for shape in [(0, 4), (4, 0)]:
        compare([x], empty, [np.zeros(shape, "float32")])


def test_sum_to():
    """SumTo (the gradient of broadcasting) lowers directly too: keepdims shape, int8 wraps
    after an int64 sum as NumPy's astype does."""
    g32 = T.tensor("float32", shape=(4, 5, 6), name="g")
    like32 = T.tensor("float32", shape=(1, 5, 1), name="like")
    g8 = T.tensor("int8", shape=(40, 3), name="g8")
    like8 = T.tensor("int8", shape=(1, 3), name="like8")
    outs = [SumTo()(g32, like32), SumTo()(g8, like8)]
    prog = KernelRunner(build_program(outs, [g32, like32, g8, like8], []), emu_device())
    assert len(prog.kernels) == 2
    rng = np.random.default_rng(0)
    gv = rng.standard_normal((4, 5, 6)).astype("float32")
    g8v = rng.integers(-128, 128, (40, 3)).astype("int8")
    got = prog.run([gv, np.zeros((1, 5, 1), "float32"), g8v, np.zeros((1, 3), "int8")], [])
    for k, (g, like) in enumerate([(gv, (1, 5, 1)), (g8v, (1, 3))]):
        assert_same(got[k], SumTo().perform(g, np.zeros(like)), f"SumTo {k}")


# -- nvcc ----------------------------------------------------------------------------------------

def _representative_program():
    """One Program holding every kind of reduce kernel: each kind and dtype family, both
    mappings, lanes 1..256, splits, prologues and epilogues, arg-reductions (built without
    g++: the reference specialization's optimized graph lowered by build_program)."""
    from theta.compiler.pipeline import build_program
    x, y, w = T.matrix("x"), T.matrix("y"), T.vector("w")
    i8, u8, bl = T.tensor("int8", shape=(None, None)), T.tensor("uint8", shape=(None, None)), \
        T.tensor("bool", shape=(None, None))
    d = T.dmatrix("d")
    outs = [T.sum(w), T.max(w), T.argmin(w), T.sum(x, axis=0), T.argmax(x, axis=0), T.mean(x, axis=1),
            T.prod(x, axis=1), T.sum(y, axis=1), T.argmax(y, axis=1), T.min(y.T, axis=1),
            T.sum(T.exp(x) * x, axis=0) * 2 + 1, T.mean(d, axis=0), T.argmin(d, axis=1), T.max(d),
            T.sum(i8, axis=0), T.max(i8), T.max(i8, axis=1), T.prod(u8, axis=1), T.sum(bl), T.mean(i8, axis=0),
            T.min(bl, axis=1)]
    inputs = [x, y, w, i8, u8, bl, d]
    args = [np.zeros((30000, 3), "float32"), np.zeros((5, 3000), "float32"), np.zeros(70001, "float32"),
            np.zeros((300, 40), "int8"), np.zeros((40, 300), "uint8"), np.zeros((64, 700), bool),
            np.zeros((7, 3000))]
    spec = theta.function(inputs, outs, backend="reference").specialization(*args)
    prog = build_program(spec.outputs, spec.concrete, [])
    assert all(k.family == "reduce" for k in prog.kernels)
    return prog


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc not found on PATH: install the CUDA toolkit, "
                                                "or set THETA_NVCC / CUDA_HOME")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles(arch):
    prog = _representative_program()
    header = re.compile(r"// mapping: (\w+), (\d+) lanes x (\d+) outputs per block, split (\d+)")
    mappings = {header.search(k.source).groups() for k in prog.kernels}
    assert {m[0] for m in mappings} == {"row", "col"}
    assert {int(m[1]) for m in mappings} >= {1, 8, 256}
    assert any(1 < int(m[1]) < 32 for m in mappings if m[0] == "row")   # several outputs per warp
    assert {m[0] for m in mappings if int(m[3]) > 1} == {"row", "col"}   # both split over blocks
    source = "\n".join(k.source for k in prog.kernels)
    info = resources(source, arch)
    assert set(info) == {k.name for k in prog.kernels}
    spilled = {name: r for name, r in info.items() if r["spill_stores"] or r["spill_loads"]}
    for k in prog.kernels:
        assert not launch_problems(info[k.name], k.block[0] * k.block[1] * k.block[2]), (k.name, info[k.name])
    assert not spilled, spilled

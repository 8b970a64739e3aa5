"""emu vs reference for the indexing kernel families: gather (advanced indexing), scatter
(set_subtensor / inc_subtensor, the gradient of indexing) and concat.

Every test compiles one function with several outputs (one g++ build each; the emu cache
under THETA_CACHE_DIR reuses libraries between runs), runs it on the emu backend and on the
reference (NumPy) backend with the same inputs and compares. The last tests compile every
kernel these families render with nvcc for sm_80 and sm_90.
"""
from __future__ import annotations

import numpy as np
import pytest

import theta
from theta.errors import IndexingError
import theta.tensor as T
from theta.compiler.graph import Variable
from theta.compiler.ops.args import Adv, Arg
from theta.compiler.ops.index import IncSubtensor, Subtensor
from theta.compiler.pipeline import build_program
from theta.compiler.types import TensorType
from theta.runtime import nvcc

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

FAMILIES = ("gather", "scatter", "concat")


# -- helpers ---------------------------------------------------------------------------------

def sym(name: str, a: np.ndarray) -> Variable:
    """A symbolic input typed like ``a`` (dims unknown until the call)."""
    return T.tensor(a.dtype.name, shape=(None,) * a.ndim, name=name)


def compare(inputs, outputs, args, rtol: float = 0.0, atol: float = 0.0, calls=None):
    """Compile ``outputs`` for emu and reference, run both on ``args`` (and on each argument
    tuple of ``calls``), compare; returns the emu function."""
    fe = theta.function(inputs, outputs, backend="emu")
    fr = theta.function(inputs, outputs, backend="reference")
    for call in calls or [args]:
        got, want = fe(*call), fr(*call)
        for k, (g, w) in enumerate(zip(got, want)):
            assert g.dtype == w.dtype, f"output {k}: dtype {g.dtype} != {w.dtype}"
            assert g.shape == w.shape, f"output {k}: shape {g.shape} != {w.shape}"
            if rtol == 0 and atol == 0:
                np.testing.assert_array_equal(g, w, err_msg=f"output {k}")
            else:
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"output {k}")
    return fe


def kernels(f, *args) -> list:
    spec = f.specialization(*args)
    return [k for p in spec.programs for k in p.kernels]


def count(f, args, family: str) -> int:
    return sum(k.family == family for k in kernels(f, *args))


def tol(dtype: str) -> dict:
    return {"float32": dict(rtol=2e-6, atol=1e-6), "float64": dict(rtol=1e-13, atol=1e-13)}.get(dtype, {})


def values(rng, shape, dtype: str) -> np.ndarray:
    if dtype.startswith("float"):
        return (rng.standard_normal(shape)).astype(dtype)
    return rng.integers(-50, 50, size=shape).astype(dtype)


# -- gather ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_gather(dtype, rng):
    x = values(rng, (5, 4, 3), dtype)
    idx = np.array([[0, 4, -1], [2, 2, -5]], dtype="int32")      # duplicates, negatives (axis 0)
    j = np.array([3, -4, 1], dtype="int64")                        # axis 1
    k = np.array([2, 0, -1], dtype="int8")                         # axis 2
    u = np.array([0, 3, 3, 1], dtype="uint8")                      # axis 1, unsigned
    X, I, J, K, U = (sym(n, a) for n, a in zip("xijku", (x, idx, j, k, u)))
    outs = [
        X[I],                            # embedding lookup: (2, 3, 4, 3)
        X[1:, J],                        # slice then advanced: (4, 3, 3)
        X[I[0], 2],                      # advanced and int, adjacent: (3, 3)
        X[I[1], :, K],                   # separated advanced: broadcast dims first, (3, 4)
        X[:, J, K],                      # adjacent pair in the middle: (5, 3)
        X.dimshuffle(2, 0, 1)[K],        # transposed source: (3, 5, 4)
        X[::-2, ::-1][:, U],             # negative strides: (3, 4, 3)
        X[I[:, :1], J],                  # broadcasting index arrays (2, 1) x (3,): (2, 3, 3)
        X[2, U],                         # int then advanced: (4, 3)
        X[U, 1:3, 2],                    # advanced, slice, int: not adjacent -> (4, 2)
    ]
    args = (x, idx, j, k, u)
    f = compare([X, I, J, K, U], outs, args)
    assert count(f, args, "gather") == len(outs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_embedding_and_nll_gradients(dtype, rng):
    """emb[idx] with repeated rows and its gradient (a scatter-add that must accumulate the
    duplicates), and the picked log-probabilities of a negative log-likelihood."""
    theta.config.floatX = dtype
    emb = values(rng, (7, 4), dtype)
    idx = np.array([[0, 6, 6, 1, 0], [3, 3, 3, 6, -1], [2, 0, 5, 5, 4]], dtype="int32")
    w = values(rng, (3, 5, 4), dtype)
    p = rng.uniform(0.1, 1.0, (6, 5)).astype(dtype)
    lab = np.array([4, 0, 0, 2, 1, 4], dtype="int32")
    E, I, W, P, L = (sym(n, a) for n, a in zip(("emb", "idx", "w", "p", "lab"), (emb, idx, w, p, lab)))
    y = E[I]
    g_emb = theta.grad(T.sum(y * W), E)
    picked = T.log(P)[T.arange(P.shape[0]), L]
    g_p = theta.grad(-T.mean(picked), P)
    args = (emb, idx, w, p, lab)
    f = compare([E, I, W, P, L], [y, g_emb, picked, g_p], args, **tol(dtype))
    assert count(f, args, "gather") >= 2
    assert count(f, args, "scatter") >= 2


# -- runtime indices -------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["vector-element", "lscalar"])
def test_runtime_indices(source, float32, rng):
    """x[i] and data[i*bs:(i+1)*bs] with a symbolic int64 i (Theano's givens pattern): the
    index becomes a runtime scalar, so minibatches of one size share one program."""
    bs = 4
    data = values(rng, (10, 3), "float32")
    cols = np.array([2, 0, 2, -1], dtype="int64")
    D, C = sym("data", data), sym("cols", cols)
    if source == "lscalar":
        i_in = T.lscalar("i")
        i = i_in
        wrap = int
    else:
        i_in = T.lvector("i")
        i = i_in[0]
        wrap = lambda v: np.array([v], dtype="int64")  # noqa: E731
    batch = D[i * bs:(i + 1) * bs]
    outs = [
        batch * 2,                                   # a view with a runtime offset
        D[i] + 1,
        D[i, C],                                     # runtime point + advanced
        batch[:, C],                                 # runtime-start slice + advanced (a view, then gather)
        D[i * bs:(i + 1) * bs, C],                   # the same in one Subtensor
        T.set_subtensor(D[i], -3.0),                 # scatter at a runtime row
        T.inc_subtensor(batch, 1.0),                 # scatter into a runtime slice
        theta.grad(T.sum(batch ** 2), D),            # inc into zeros at a runtime offset
        theta.grad(T.sum(D[i, C] * T.arange(4).astype("float32")), D),   # runtime point + duplicates
    ]
    calls = [(data, wrap(v)) for v in (0, 1, 2, -1)]   # 2: partial last batch; -1: last row, empty batch
    f = compare([D, C, i_in], outs, None, calls=[(d, cols, v) for d, v in calls], rtol=1e-6, atol=1e-6)
    # batches 0 and 1 share a program: 3 programs for the 3 batch lengths (4, 2, 0)
    assert len(f.specialization(data, cols, wrap(0)).programs) == 3
    assert count(f, (data, cols, wrap(0)), "gather") >= 3


# -- scatter ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_scatter(dtype, rng):
    x = values(rng, (5, 4), dtype)
    dup = np.array([1, 3, 1, -1, 1], dtype="int32")
    uniq = np.array([4, 0, 2], dtype="int64")
    jdup = np.array([0, 3, 0], dtype="int32")
    y1, y2, y3 = values(rng, (4, 2), dtype), values(rng, (5, 4), dtype), values(rng, (3, 4), dtype)
    row, v5 = values(rng, (4,), dtype), values(rng, (5,), dtype)
    col, yT = values(rng, (5, 1), dtype), values(rng, (2, 5), dtype)
    arrays = dict(x=x, dup=dup, uniq=uniq, jdup=jdup, y1=y1, y2=y2, y3=y3, row=row, v5=v5, col=col, yT=yT)
    S = {n: sym(n, a) for n, a in arrays.items()}
    X = S["x"]
    outs = [
        T.inc_subtensor(X[1:, ::2], S["y1"]),            # basic region: plain add
        T.set_subtensor(X[1:4, 2], 7),                   # basic region, broadcast scalar
        T.set_subtensor(X[-1], S["row"]),                # negative int
        T.inc_subtensor(X[S["dup"]], S["y2"]),           # duplicates accumulate (atomics)
        T.inc_subtensor(X[S["dup"]], S["row"]),          # ... with a broadcast row
        T.set_subtensor(X[S["uniq"]], S["y3"]),          # set at unique advanced indices
        T.inc_subtensor(X[S["dup"], 2], S["v5"]),        # advanced + int, duplicates
        T.inc_subtensor(X[:, S["jdup"]], S["col"]),      # advanced on axis 1, broadcast column
        T.inc_subtensor(X.T[1:3], S["yT"]),              # a transposed target: strided copy
    ]
    args = tuple(arrays.values())
    f = compare(list(S.values()), outs, args, **tol(dtype))
    assert count(f, args, "scatter") == 2 * len(outs)   # copy + update each


def test_scatter_gradients(float64, rng):
    x, w = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    y, ys = rng.standard_normal((6, 4)), rng.standard_normal((4, 3))
    dup = np.array([1, 3, 1, -1, 1, 0], dtype="int32")
    cols = np.array([2, 0, 1], dtype="int32")
    X, W, Y, YS, DUP, COLS = (sym(n, a) for n, a in zip(("x", "w", "y", "ys", "dup", "cols"),
                                                       (x, w, y, ys, dup, cols)))
    inc = T.inc_subtensor(X[DUP], Y)
    st = T.set_subtensor(X[1:, COLS], YS)
    outs = theta.grad(T.sum(inc * W), [X, Y]) + theta.grad(T.sum(st * W), [X, YS])
    compare([X, W, Y, YS, DUP, COLS], outs, (x, w, y, ys, dup, cols), rtol=1e-13, atol=1e-13)


def test_scatter_small_integer_dtypes(rng):
    """inc_subtensor with duplicates for every integer width: atomics on 64-bit, 16-bit (CAS)
    and 8-bit (CAS on the enclosing word) elements, wrapping like NumPy."""
    dup = np.array([0, 2, 0, 0, -1], dtype="int32")
    inputs, outs, args = [], [], []
    D = sym("dup", dup)
    for dtype in ("int8", "uint8", "int16", "uint16", "int64", "uint64", "uint32"):
        x = rng.integers(0, 100, (3, 5)).astype(dtype)
        y = rng.integers(0, 100, (5, 5)).astype(dtype)
        X, Y = sym(f"x_{dtype}", x), sym(f"y_{dtype}", y)
        inputs += [X, Y]
        args += [x, y]
        outs.append(T.inc_subtensor(X[D], Y))
    compare(inputs + [D], outs, tuple(args) + (dup,))


# -- concat ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_concatenate(dtype, rng):
    a, b, c = values(rng, (3, 5), dtype), values(rng, (2, 5), dtype), values(rng, (1, 5), dtype)
    d, e = values(rng, (3, 1), dtype), values(rng, (5, 3), dtype)
    z = values(rng, (0, 5), dtype)
    A, B, C, D, E, Z = (sym(n, v) for n, v in zip("abcdez", (a, b, c, d, e, z)))
    outs = [
        T.concatenate([A, B, C], axis=0),            # (6, 5)
        T.concatenate([D, A, E.T, D], axis=1),       # odd widths, a transposed input: (3, 12)
        T.concatenate([A, Z, B], axis=0),            # an empty input
        T.concatenate([A[:, ::2], D], axis=1),       # a strided input: (3, 4)
        T.stack([A, A[::-1]], axis=1),               # (3, 2, 5)
    ]
    args = (a, b, c, d, e, z)
    f = compare([A, B, C, D, E, Z], outs, args)
    assert count(f, args, "concat") == len(outs)


# -- indices out of range: NumPy raises, so do the kernels ------------------------------------

@pytest.mark.parametrize("which", ["gather", "scatter"])
def test_out_of_range_indices_raise_and_stay_contained(which, float64, rng):
    """A kernel reports an out-of-range index in the program's status word and the runtime
    raises IndexingError; under AddressSanitizer no access leaves its buffer on the way."""
    theta.config.emu_asan = True
    x = rng.standard_normal((4, 3))
    y = rng.standard_normal((4, 3))
    X, I, Y = sym("x", x), sym("idx", np.zeros(4, "int64")), sym("y", y)
    out = X[I] if which == "gather" else T.inc_subtensor(X[I], Y)
    f = theta.function([X, I, Y], out, backend="emu", on_unused_input="ignore")
    good = np.array([1, 3, -4, 0], dtype="int64")
    want = theta.function([X, I, Y], out, on_unused_input="ignore")(x, good, y)
    np.testing.assert_array_equal(f(x, good, y), want)
    for bad in ([1, 7, 0, 3], [0, -9, 1, 2]):
        with pytest.raises(IndexingError, match="out of range"):
            f(x, np.array(bad, dtype="int64"), y)


def test_index_from_a_tensor_value(rng):
    """An Arg whose value is a 0-d tensor in memory (not a runtime scalar parameter) is read
    through a pointer and normalized in the kernel (wrapped if negative). The graph is built
    by hand: specialization would make the index a runtime scalar. (The 0-d value is a view
    of a 1-element vector: runtime/emu.py cannot take 0-d leaves yet.)"""
    from theta.binding import KernelRunner
    from theta.compiler.pipeline import build_program
    from theta.runtime.emu import device
    x = Variable(TensorType("float32", (4, 3, 5)), name="x")
    iv1 = Variable(TensorType("int32", (1,)), name="i")
    i = Subtensor((0,))(iv1)
    idx = Variable(TensorType("int64", (2,)), name="idx")
    y = Variable(TensorType("float32", (2, 5)), name="y")
    picked = Subtensor((Arg(1), Adv(2)))(x, i, idx)
    updated = IncSubtensor((Arg(2), Adv(3)), False)(x, y, i, idx)
    prog = KernelRunner(build_program([picked, updated], [x, iv1, idx, y], []), device())
    xv = rng.standard_normal((4, 3, 5)).astype("float32")
    yv = rng.standard_normal((2, 5)).astype("float32")
    iv = np.array([0, -1], dtype="int64")
    for ival in (2, -1):
        got_pick, got_upd = prog.run([xv, np.array([ival], dtype="int32"), iv, yv], [])
        np.testing.assert_array_equal(got_pick, xv[ival, iv])
        want = xv.copy()
        np.add.at(want, (ival, iv), yv)
        np.testing.assert_allclose(got_upd, want, rtol=1e-6)


# -- nvcc -----------------------------------------------------------------------------------

def _specialized_programs(inputs, outputs, args) -> list:
    """Programs (without building them for emu) for every specialization ``args`` reach."""
    f = theta.function(inputs, outputs, backend="reference")
    spec = f.specialization(*args)
    if spec.plan.empty:
        return [build_program(spec.outputs, spec.concrete, [])]
    f(*args)
    return [build_program(outs, spec.concrete, [leaf for leaf, _ in implicit])
            for _, implicit, outs in spec._variants.values()]


def _family_source(rng) -> str:
    """One source holding every kernel of the indexing families that a representative set of
    graphs renders (kernels renamed per program, so the names stay unique)."""
    programs = []
    x = rng.standard_normal((6, 5)).astype("float32")
    idx = np.array([[0, 4, -1], [2, 2, 3]], dtype="int32")
    X, I = sym("x", x), sym("idx", idx)
    lv = np.array([1], dtype="int64")
    LV = T.lvector("i")
    i = LV[0]
    programs += _specialized_programs(
        [X, I, LV],
        [X[I], X[1:, I[0]], X[I[0], :2], X[i, I[1]], X[i * 2:(i + 1) * 2, I[0] % 5],
         T.set_subtensor(X[i], 0.0), T.inc_subtensor(X[I], 1.0), T.set_subtensor(X[I[0]], 2.0),
         T.inc_subtensor(X[1:, ::2], 3.0), theta.grad(T.sum(X[I] * 2), X),
         T.concatenate([X, X[::-1, ::-1], X[::2]], axis=0), T.concatenate([X, X], axis=1)],
        (x, idx, lv))
    for dtype in ("float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "bool"):
        xv = np.zeros((6, 5), dtype=dtype)
        Xd = sym("x", xv)
        programs += _specialized_programs([Xd, I], [Xd[I], T.inc_subtensor(Xd[I], Xd[I])], (xv, idx))
    # an index read from a 0-d tensor in memory
    x0 = Variable(TensorType("float32", (4, 3)), name="x")
    i1 = Variable(TensorType("int64", (1,)), name="i")
    i0 = Subtensor((0,))(i1)
    j0 = Variable(TensorType("int32", (2,)), name="j")
    programs.append(build_program([Subtensor((Arg(1), Adv(2)))(x0, i0, j0),
                                   IncSubtensor((Arg(2), Adv(3)), True)(x0, x0[0, :2], i0, j0)],
                                  [x0, i1, j0], []))
    sources = []
    for n, p in enumerate(programs):
        for k in p.kernels:
            if k.family in FAMILIES:
                sources.append(k.source.replace(f"{k.name}(", f"{k.name}_p{n}("))
    return "\n".join(sources)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles_every_kernel(arch, rng):
    if nvcc.find_nvcc() is None:
        pytest.skip("nvcc not found (looked at $THETA_NVCC, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    rendered = _family_source(rng)
    for marker in ("theta gather kernel", "theta scatter kernel", "theta copy kernel", "_concat_p0(",
                   "theta_atomic_add(unsigned char*", "theta_atomic_add(short*", "theta_atomic_add(long long*",
                   "theta_atomic_add(bool*", "theta_atomic_add(double*", "uint4", "[0];"):
        assert marker in rendered, f"the nvcc set renders no {marker!r}"
    info = nvcc.resources(rendered, arch)
    assert len(info) == rendered.count("extern \"C\" __global__")
    for name, res in info.items():
        assert res["spill_stores"] == 0, f"{name} spills on {arch}: {res}"

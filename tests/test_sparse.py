"""theta.sparse: CSR inputs, structured_dot and its gradients (compiler/sparse.py,
compiler/ops/sparse.py, kernels/sparse.cu.j2).

Forward results are checked against scipy's own product on both backends; gradients against
central finite differences on the reference backend (float64) and against the reference on
emu (checking mode); a bag-of-words logistic regression trains on both; bad inputs raise typed
errors; every kernel the family renders compiles with nvcc. Each test compiles one function
for many cases at once (one g++ build).
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

import theta
import theta.sparse as sparse
import theta.tensor as T
from theta.errors import DTypeError, InputError, ShapeError
from theta.compiler.pipeline import build_program
from theta.runtime import nvcc

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-12)}


def matrices(rng, dtype: str) -> dict:
    """CSR values covering the edge cases: empty rows, a full row, nnz = 0, odd sizes, an
    unsorted matrix with duplicates (canonicalized on binding), a COO value."""
    a = sp.random(7, 13, density=0.25, format="csr", random_state=rng, dtype=dtype).tolil()
    a[2, :] = 0
    a[5, :] = 0
    a[4, :] = np.arange(1, 14)          # a row with every column
    odd = sp.random(33, 50, density=0.1, format="csr", random_state=rng, dtype=dtype)
    dup = sp.csr_matrix((np.array([1.0, 2.0, 3.0, 4.0], dtype=dtype), np.array([3, 0, 3, 1]),
                         np.array([0, 3, 3, 4])), shape=(3, 5))     # row 0: cols 3, 0, 3 (unsorted, twice)
    return {"a": a.tocsr(), "empty": sp.csr_matrix((4, 6), dtype=dtype), "odd": odd.tocoo(), "dup": dup}


# -- forward ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_structured_dot_matches_scipy(backend, dtype, rng):
    ms = matrices(rng, dtype)
    dense = {"a": rng.standard_normal((13, 5)), "empty": rng.standard_normal((6, 3)),
             "odd": rng.standard_normal((37, 50)), "dup": rng.standard_normal((5, 1))}
    dense = {k: v.astype(dtype) for k, v in dense.items()}
    S = {k: sparse.csr_matrix(k, dtype=dtype) for k in ms}
    D = {k: T.tensor(dtype, shape=(None, None), name=f"d_{k}") for k in ms}
    outs = [sparse.structured_dot(S["a"], D["a"]),
            sparse.dot(S["empty"], D["empty"]),                 # the alias; nnz = 0
            sparse.structured_dot(S["odd"], D["odd"].T),         # a transposed (strided) dense view
            sparse.structured_dot(S["dup"], D["dup"]),           # n = 1
            sparse.structured_dot(S["a"], D["a"] * 2)]           # a computed dense operand
    wide = T.dmatrix("wide")                                     # float64 dense: the product upcasts
    outs.append(sparse.structured_dot(S["a"], wide))
    f = theta.function([S[k] for k in ms] + [D[k] for k in ms] + [wide], outs, backend=backend)
    w = rng.standard_normal((13, 300))       # more columns than one tile (32 lanes x 4)
    got = f(*ms.values(), *dense.values(), w)
    want = [ms["a"] @ dense["a"], ms["empty"] @ dense["empty"], ms["odd"] @ dense["odd"].T,
            ms["dup"] @ dense["dup"], ms["a"] @ (dense["a"] * 2), ms["a"].astype("float64") @ w]
    for k, (g, wt) in enumerate(zip(got, want)):
        assert g.dtype == (np.float64 if k == 5 else np.dtype(dtype)), (k, g.dtype)
        np.testing.assert_allclose(g, np.asarray(wt), err_msg=f"output {k}", **TOL[dtype])
    assert float(got[1].sum()) == 0 and got[1].shape == (4, 3)
    if backend == "emu":
        assert sum(k.family == "sparse" for k in f.kernels) == len(outs)   # nnz = 0 writes zeros
    # the caller's matrices are not modified (the duplicates are summed on a copy)
    assert ms["dup"].nnz == 4 and not ms["dup"].has_sorted_indices


def test_dense_fallback_and_keywords(rng):
    x, y = T.dmatrix("x"), T.dmatrix("y")
    assert sparse.dot(x, y).op == T.dot(x, y).op
    S, W = sparse.csr_matrix("S"), T.dmatrix("W")
    f = theta.function([S, W], sparse.structured_dot(S, W))
    a, w = sp.random(3, 4, density=0.5, format="csr", random_state=rng), rng.standard_normal((4, 2))
    np.testing.assert_allclose(f(W=w, S=a), a @ w)
    np.testing.assert_allclose(f(a.tocsc(), w), a @ w)          # anything with .tocsr()


# -- gradients --------------------------------------------------------------------------------

def _grad_graph():
    """cost1 = sum(S.W * P); its gradients (S^T.P and the sampled dot), and costs of those, so
    the second-order gradients (the transposed product's, the sampled dot's) are checked too."""
    S, W, P = sparse.csr_matrix("S"), T.dmatrix("W"), T.dmatrix("P")
    Q, R = T.dmatrix("Q"), T.dvector("R")
    cost1 = T.sum(sparse.structured_dot(S, W) * P)
    gW, gdata = theta.grad(cost1, [W, S.data])
    cost2 = T.sum(gW * Q)                      # S^T . P: a function of S.data and P
    cost3 = T.sum(gdata * R)                   # sampled dot: a function of P and W
    cost4 = T.sum(gdata)                       # its gradient reads a broadcast (stride 0) value
    grads = (theta.grad(cost1, [W, S.data]) + theta.grad(cost2, [P, S.data])
             + theta.grad(cost3, [P, W]) + theta.grad(cost4, [W]))
    return [S, W, P, Q, R], [cost1, cost2, cost3, cost4], grads


def _grad_values(rng):
    a = sp.random(6, 5, density=0.4, format="lil", random_state=rng)
    a[3, :] = 0                                # an empty row
    a = a.tocsr()
    a.eliminate_zeros()
    return a, rng.standard_normal((5, 3)), rng.standard_normal((6, 3)), \
        rng.standard_normal((5, 3)), rng.standard_normal(a.nnz)


def _numeric(cost, arrays, k, eps=1e-6):
    """Central differences of cost(*arrays) w.r.t. arrays[k] (a dense array, or a sparse
    matrix's stored values)."""
    base = arrays[k]
    flat = (base.data if sp.issparse(base) else base).ravel()
    out = np.zeros(flat.size)
    for i in range(flat.size):
        vals = []
        for sign in (1, -1):
            moved = base.copy()
            (moved.data if sp.issparse(moved) else moved).ravel()[i] += sign * eps
            vals.append(float(cost(*arrays[:k], moved, *arrays[k + 1:])))
        out[i] = (vals[0] - vals[1]) / (2 * eps)
    return out.reshape((base.data if sp.issparse(base) else base).shape)


def test_gradients_against_finite_differences(float64, rng):
    inputs, costs, grads = _grad_graph()
    args = _grad_values(rng)
    got = theta.function(inputs, grads, backend="reference", on_unused_input="ignore")(*args)
    wrt = [(0, 1), (0, 0), (1, 2), (1, 0), (2, 2), (2, 1), (3, 1)]   # (cost, argument) per gradient
    fs = [theta.function(inputs, c, backend="reference", on_unused_input="ignore") for c in costs]
    for g, (c, k) in zip(got, wrt):
        np.testing.assert_allclose(g, _numeric(fs[c], list(args), k), rtol=1e-6, atol=1e-7,
                                   err_msg=f"d cost{c + 1} / d input {k}")


def test_gradients_emu_match_reference(float64, rng):
    inputs, _, grads = _grad_graph()
    args = _grad_values(rng)
    want = theta.function(inputs, grads, backend="reference", on_unused_input="ignore")(*args)
    got = theta.function(inputs, grads, backend="emu", on_unused_input="ignore")(*args)
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"gradient {k}")


def test_bag_of_words_logistic_regression(float32, rng):
    """A few SGD steps of softmax regression on sparse word counts (nnz varies per batch):
    emu matches the reference step by step, and the loss goes down."""
    vocab, classes, batch = 60, 4, 16
    docs = [sp.random(batch, vocab, density=d, format="csr", random_state=rng, dtype="float32")
            for d in (0.05, 0.08, 0.05, 0.08)]
    for d in docs:
        d.data[:] = np.ceil(d.data * 3)            # word counts
    labels = [rng.integers(0, classes, batch).astype("int32") for _ in docs]
    results = {}
    for backend in ("reference", "emu"):
        X, y = sparse.csr_matrix("X", dtype="float32"), T.ivector("y")
        W = theta.shared(np.zeros((vocab, classes), dtype="float32"), name="W")
        b = theta.shared(np.zeros(classes, dtype="float32"), name="b")
        p = T.nnet.softmax(sparse.structured_dot(X, W) + b)
        cost = T.nnet.categorical_crossentropy(p, y).mean()
        gW, gb = theta.grad(cost, [W, b])
        step = theta.function([X, y], cost, updates=[(W, W - 0.5 * gW), (b, b - 0.5 * gb)], backend=backend)
        losses = [float(step(d, lab)) for _ in range(2) for d, lab in zip(docs, labels)]
        results[backend] = (losses, W.get_value(), b.get_value())
    (lr, wr, br), (le, we, be) = results["reference"], results["emu"]
    np.testing.assert_allclose(le, lr, rtol=1e-5)
    np.testing.assert_allclose(we, wr, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(be, br, rtol=1e-4, atol=1e-6)
    assert lr[-1] < lr[0]


# -- bad input --------------------------------------------------------------------------------

def test_bad_inputs(rng):
    S, W = sparse.csr_matrix("S", dtype="float32"), T.fmatrix("W"); line = _line()
    f = theta.function([S, W], sparse.structured_dot(S, W), backend="reference")
    a = sp.random(4, 6, density=0.5, format="csr", random_state=rng, dtype="float32")
    w = rng.standard_normal((6, 2)).astype("float32")
    with pytest.raises(ShapeError) as e:        # W's rows disagree with S's columns: at call time
        f(a, w[:5])
    msg = str(e.value)
    assert "'S' float32[4, 6]" in msg and "'W'" in msg and "[5, 2]" in msg and line in msg, msg
    with pytest.raises(InputError, match=r"input 0 'S'.*scipy.sparse.*ndarray of shape \(4, 6\)"):
        f(a.toarray(), w)                        # a dense value for the sparse input
    with pytest.raises(DTypeError, match=r"'S'.*float64; pass float32"):
        f(a.astype("float64"), w)                # a narrowing cast is refused...
    g = theta.function([S, W], sparse.structured_dot(S, W), allow_input_downcast=True)
    np.testing.assert_allclose(g(a.astype("float64"), w), a @ w, rtol=1e-6)   # ...unless allowed
    with pytest.raises(InputError, match="S.data"):
        f(a, w, **{"S.data": a.data})           # the arrays come from a sparse value only
    with pytest.raises(ShapeError, match="first operand must be a sparse matrix"):
        sparse.structured_dot(W, W)
    with pytest.raises(DTypeError):
        sparse.csr_matrix("i", dtype="int32")
    with pytest.raises(InputError, match="takes 2 inputs, got 3"):
        f(a, w, w)


def _line() -> str:
    """'file:line' of the caller's line, as theta records it for the variables made there."""
    import inspect
    frame = inspect.currentframe().f_back
    return f"test_sparse.py:{frame.f_lineno}"


# -- nvcc -------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles_every_kernel(arch, rng):
    if nvcc.find_nvcc() is None:
        pytest.skip("nvcc not found (looked at $THETA_NVCC, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    inputs, _, grads = _grad_graph()
    args = _grad_values(rng)
    wide = T.fmatrix("wide")
    S32 = sparse.csr_matrix("S32", dtype="float32")
    outs = grads + [sparse.structured_dot(S32, wide.T)]
    f = theta.function(inputs + [S32, wide], outs, backend="reference", on_unused_input="ignore")
    big = sp.random(40, 300, density=0.2, format="csr", random_state=rng, dtype="float32")
    spec = f.specialization(*args, big, rng.standard_normal((1000, 300)).astype("float32"))
    program = build_program(spec.outputs, spec.concrete, [])
    kernels = [k for k in program.kernels if k.family == "sparse"]
    source = "\n".join(k.source for k in program.kernels)
    for marker in ("(spmm)", "(sddmm)", "const float* __restrict__", "u < 4"):
        assert marker in source, f"the nvcc set renders no {marker!r}"
    info = nvcc.resources(source, arch)
    for k in kernels:
        res = info[k.name]
        assert res["spill_stores"] == 0, f"{k.name} spills on {arch}: {res}"
        assert not nvcc.launch_problems(res, k.block[0] * k.block[1] * k.block[2]), (k.name, res)
    assert re.search(r"theta_k\d+_sparse", source)

"""Sparse matrices met with plausible wrong usage (issue 29): a valid CSR with unsorted indices
(and duplicates) gets S.data's gradient in its own order (item 6); a malformed CSR is refused
with a typed error naming the field when it is bound; ``S * 2`` scales the stored values as
Theano's sparse does, and operators theta's sparse matrices lack are typed errors that say what
to use."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import theta
import theta.sparse as sparse
import theta.tensor as T
from theta.errors import DTypeError, IndexingError, ShapeError

pytestmark = pytest.mark.usefixtures("emu_check")


def _unsorted() -> sp.csr_matrix:
    """Row 0: columns 3, 0, 3 (unsorted, a duplicate); row 1 empty; row 2: columns 4, 1."""
    m = sp.csr_matrix((np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([3, 0, 3, 4, 1]),
                       np.array([0, 3, 3, 5])), shape=(3, 5))
    assert not m.has_sorted_indices
    return m


def _cost_graph():
    S, W, P = sparse.csr_matrix("S"), T.dmatrix("W"), T.dmatrix("P")
    cost = T.sum(sparse.structured_dot(S, W) * P) + T.sum(sparse.structured_dot(S, W) ** 2)
    return [S, W, P], cost, theta.grad(cost, S.data)


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_grad_wrt_data_of_an_unsorted_csr_lines_up_with_its_data(backend, rng):
    inputs, cost, g = _cost_graph()
    S = _unsorted()
    W, P = rng.standard_normal((5, 2)), rng.standard_normal((3, 2))
    grad = theta.function(inputs, g, backend=backend)(S, W, P)
    f = theta.function(inputs, cost, backend="reference")
    eps, numeric = 1e-6, np.zeros(S.nnz)
    for i in range(S.nnz):
        up, down = S.copy(), S.copy()
        up.data[i] += eps
        down.data[i] -= eps
        numeric[i] = (float(f(up, W, P)) - float(f(down, W, P))) / (2 * eps)
    assert grad.shape == (S.nnz,)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)
    assert not S.has_sorted_indices and S.nnz == 5          # the caller's matrix is untouched


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_products_of_an_unsorted_csr_with_duplicates_match_scipy(backend, rng):
    S_, W = sparse.csr_matrix("S"), T.dmatrix("W")
    G = T.dmatrix("G")
    f = theta.function([S_, W, G], [sparse.structured_dot(S_, W), theta.grad(T.sum(sparse.structured_dot(S_, W) * G), W)],
                       backend=backend)
    S = _unsorted()
    w, gv = rng.standard_normal((5, 4)), rng.standard_normal((3, 4))
    out, gw = f(S, w, gv)
    np.testing.assert_allclose(out, S @ w, rtol=1e-12)
    np.testing.assert_allclose(gw, S.T @ gv, rtol=1e-12)


def _malformed(indices, indptr, shape=(2, 3)):
    return sp.csr_matrix((np.ones(len(indices)), np.array(indices), np.array(indptr)), shape=shape)


@pytest.mark.parametrize("backend", ["reference", "emu"])
@pytest.mark.parametrize("indices, indptr, error, match", [
    ([1, 2, 3], [0, 2, 3], IndexingError, r"column indices must lie in \[0, 3\).*indices\[2\] = 3"),
    ([-1, 0, 1], [0, 2, 3], IndexingError, r"column indices must lie in \[0, 3\).*indices\[0\] = -1"),
    ([0, 1, 2], [0, 3, 2], ShapeError, r"indptr must start at 0 and never decrease.*indptr\[1\] = 3 > indptr\[2\] = 2"),
], ids=["1-based", "negative", "decreasing indptr"])
def test_malformed_csr_is_refused_when_bound(backend, indices, indptr, error, match):
    S, W = sparse.csr_matrix("S"), T.dmatrix("W")
    f = theta.function([S, W], sparse.structured_dot(S, W), backend=backend)
    with pytest.raises(error, match=match) as info:
        f(_malformed(indices, indptr), np.ones((3, 2)))
    assert "'S'" in str(info.value) and "test_sparse_regressions.py" in str(info.value)


def test_indptr_past_the_stored_entries_is_refused():
    S, W = sparse.csr_matrix("S"), T.dmatrix("W")
    f = theta.function([S, W], sparse.structured_dot(S, W), backend="reference")
    m = _malformed([0, 1, 2], [0, 2, 3])
    m.indptr[-1] = 7          # scipy does not look again
    with pytest.raises(ShapeError, match=r"indptr ends at 7 but only 3"):
        f(m, np.ones((3, 2)))


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_scalar_times_sparse_scales_the_stored_values(backend, rng):
    S, W, c = sparse.csr_matrix("S"), T.dmatrix("W"), T.dscalar("c")
    outs = [sparse.structured_dot(S * 2, W), sparse.structured_dot(3 * S, W),
            sparse.structured_dot(c * S, W), sparse.structured_dot(-S / 4, W)]
    g = theta.grad(T.sum(outs[2]), [S.data, c])
    f = theta.function([S, W, c], outs + g, backend=backend)
    a, w = _unsorted(), rng.standard_normal((5, 2))
    got = f(a, w, 1.5)
    for out, want in zip(got, [2 * a @ w, 3 * a @ w, 1.5 * a @ w, -(a @ w) / 4]):
        np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_allclose(got[4], 1.5 * w[a.indices].sum(axis=1))       # d/d S.data, S's order
    np.testing.assert_allclose(got[5], float((a @ w).sum()), rtol=1e-12)      # d/d c


@pytest.mark.parametrize("use, match", [
    (lambda S: S + 1, r"sparse 'S'.*\+.*structured_dot"),
    (lambda S: S * T.dmatrix("D"), r"sparse 'S'.*a scalar.*structured_dot"),
    (lambda S: S * np.ones((2, 2)), r"sparse 'S'.*a scalar"),
    (lambda S: S @ T.dmatrix("D"), r"sparse 'S'.*structured_dot"),
    (lambda S: 1 / S, r"sparse 'S'"),
    (lambda S: T.dmatrix("D") @ S, r"sparse 'S'.*used as a dense tensor.*structured_dot"),
    (lambda S: T.dscalar("c") - S, r"sparse 'S'.*used as a dense tensor"),
    (lambda S: T.exp(S), r"sparse 'S'.*used as a dense tensor"),
], ids=["add", "times matrix", "times array", "matmul", "rdiv", "dense matmul sparse", "dense minus sparse", "exp"])
def test_unsupported_operators_are_typed_errors_that_say_what_to_use(use, match):
    S = sparse.csr_matrix("S")
    with pytest.raises(DTypeError, match=match) as info:
        use(S)
    assert str(info.value).count("test_sparse_regressions.py") >= 2     # S's line and the operator's


def test_a_scaled_sparse_matrix_is_not_an_input():
    S, W = sparse.csr_matrix("S"), T.dmatrix("W")
    with pytest.raises(Exception) as info:
        theta.function([S * 2, W], sparse.structured_dot(S, W))
    assert "pass the sparse matrix" in str(info.value) or "csr_matrix" in str(info.value)

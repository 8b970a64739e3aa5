"""Sparse-times-dense products over a CSR matrix S (m, k), the ops behind theta.sparse.

A symbolic sparse matrix is not a graph node: it is its arrays (compiler/sparse.py), and these
ops take them as ordinary inputs, always in the order of ``CSR_FIELDS``:

    data       (nnz,)  the stored values (float)
    indices    (nnz,)  int32, the column of each stored value (rows in order; a row's as given)
    indptr     (m+1,)  int32, row i's values are data[indptr[i]:indptr[i+1]]
    t_indptr   (k+1,)  int32  \\  the CSR of S^T, computed on the host when a value is bound:
    t_indices  (nnz,)  int32   > column c's entries are q in t_indptr[c]:t_indptr[c+1], at row
    t_perm     (nnz,)  int32  /  t_indices[q], with value data[t_perm[q]]

With the transpose's CSR at hand, S^T . G is a row-wise product like S . D: every output row is
summed by one thread in a fixed order, so no product needs atomics and every backend is
deterministic. m and k are the lengths of indptr and t_indptr minus one, so a function is
specialized per (m, k, nnz) like any shape; no kernel source depends on nnz.

    CsrMM(transpose=False)(data, *csr, D)   S . D    (m, k) x (k, n) -> (m, n)
    CsrMM(transpose=True)(data, *csr, G)    S^T . G  (k, m) x (m, n) -> (k, n)
    SampledDot()(*csr, G, D)                g[p] = dot(G[row(p)], D[col(p)]), (nnz,)

SampledDot is the *structured* gradient of both products with respect to ``data`` (only the
stored entries get one); its own gradient is two CsrMMs with ``data`` replaced by its output
gradient, so every derivative of every order stays in these two ops.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DTypeError, ShapeError, describe
from ..graph import Op, Variable
from ..types import TensorType, is_float, upcast

#: the arrays of a CSR matrix, in the order the ops take them (``data`` first)
CSR_FIELDS = ("data", "indices", "indptr", "t_indptr", "t_indices", "t_perm")


def _dims(csr: tuple) -> tuple:
    """(m, k) of S from its index arrays (None where not known yet)."""
    indptr, t_indptr = csr[1], csr[2]
    m = None if indptr.type.shape[0] is None else indptr.type.shape[0] - 1
    k = None if t_indptr.type.shape[0] is None else t_indptr.type.shape[0] - 1
    return m, k


def describe_sparse(csr: tuple, dtype: str = "") -> str:
    """sparse 'S' float64[m, k] (created at ...) for messages; ``csr`` is (indices, ...) as ops
    take it, ``dtype`` that of its values where known.
    The name and the line come from the ``indices`` leaf, which compiler/sparse.py names
    '<S>.indices' and creates on the user's line."""
    indices = csr[0]
    m, k = _dims(csr)
    name = (indices.name or "").rsplit(".", 1)[0] or "sparse matrix"
    at = f" (created at {indices.trace})" if indices.trace else ""
    shape = ", ".join("?" if d is None else str(d) for d in (m, k))
    return f"sparse '{name}' {dtype}[{shape}]{at}"


def _check_csr(csr: tuple) -> None:
    for field, arr in zip(CSR_FIELDS[1:], csr):
        if arr.ndim != 1 or arr.dtype != "int32":
            raise DTypeError(f"{describe_sparse(csr)}: its {field} must be an int32 vector, got {describe(arr)}")


def _check_dense(what: str, dense: Variable) -> None:
    if dense.ndim != 2:
        raise ShapeError(f"{what}: the dense operand must be a matrix, got {describe(dense)}")
    if dense.dtype == "bool":
        raise DTypeError(f"{what}: the dense operand {describe(dense)} must be numeric")


def _same(a, b) -> bool:
    return a is None or b is None or a == b


def _rows(indptr: np.ndarray) -> np.ndarray:
    """The row of every stored entry (COO rows), from indptr."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


@dataclasses.dataclass(frozen=True)
class CsrMM(Op):
    """S . D, or S^T . D with ``transpose``; see the module docstring for the inputs."""

    transpose: bool = False
    family = "sparse"

    def make_type(self, data: Variable, *rest: Variable) -> TensorType:
        csr, dense = rest[:-1], rest[-1]
        if len(csr) != len(CSR_FIELDS) - 1:
            raise ShapeError(f"{self} takes data, {len(CSR_FIELDS) - 1} index arrays and a dense matrix")
        _check_csr(csr)
        what = "structured_dot" + (" (transposed)" if self.transpose else "")
        if data.ndim != 1 or not is_float(data.dtype):
            raise DTypeError(f"{what}: the values of {describe_sparse(csr)} must be a float vector, "
                             f"got {describe(data)}")
        sparse = describe_sparse(csr, data.dtype)
        _check_dense(what, dense)
        m, k = _dims(csr)
        inner, outer = (m, k) if self.transpose else (k, m)
        if not _same(inner, dense.type.shape[0]):
            side = "rows" if self.transpose else "columns"
            raise ShapeError(f"{what}: {sparse} has {inner} {side} but the dense operand "
                             f"{describe(dense)} has {dense.type.shape[0]} rows")
        return TensorType(upcast(data.dtype, dense.dtype), (outer, dense.type.shape[1]))

    def perform(self, data, indices, indptr, t_indptr, t_indices, t_perm, dense) -> np.ndarray:
        m, k = len(indptr) - 1, len(t_indptr) - 1
        inner, outer = (m, k) if self.transpose else (k, m)
        if dense.shape[0] != inner:
            raise ShapeError(f"structured_dot: a sparse matrix of shape {(m, k)} and a dense {dense.shape}")
        dtype = upcast(data.dtype.name, dense.dtype.name)
        rows = _rows(indptr)
        src, dst = (rows, indices) if self.transpose else (indices, rows)
        out = np.zeros((outer, dense.shape[1]), dtype=dtype)
        # np.add.at adds in entry order: each output row sums its terms in increasing order of
        # the other index, as the kernels do (S^T's CSR lists a column's rows in order)
        np.add.at(out, dst, data.astype(dtype)[:, None] * dense[src].astype(dtype))
        return out

    def grad(self, inputs, output, gout):
        data, csr, dense = inputs[0], tuple(inputs[1:-1]), inputs[-1]
        g_dense = CsrMM(not self.transpose)(data, *csr, gout)
        # d out[r, :] / d data[p] pairs the row of p on the output side with its column on the
        # dense side (swapped when transposed)
        g_data = SampledDot()(*csr, dense, gout) if self.transpose else SampledDot()(*csr, gout, dense)
        return [g_data] + [None] * len(csr) + [g_dense if is_float(dense.dtype) else None]

    def __str__(self) -> str:
        return "CsrMM{T}" if self.transpose else "CsrMM"


@dataclasses.dataclass(frozen=True)
class SampledDot(Op):
    """g[p] = dot(G[row(p)], D[col(p)]) for every stored entry p of S: G (m, n), D (k, n)."""

    family = "sparse"

    def make_type(self, *inputs: Variable) -> TensorType:
        csr, g, d = inputs[:-2], inputs[-2], inputs[-1]
        if len(csr) != len(CSR_FIELDS) - 1:
            raise ShapeError(f"{self} takes {len(CSR_FIELDS) - 1} index arrays and two dense matrices")
        _check_csr(csr)
        _check_dense("sampled dot", g)
        _check_dense("sampled dot", d)
        m, k = _dims(csr)
        if not (_same(m, g.type.shape[0]) and _same(k, d.type.shape[0]) and _same(g.type.shape[1], d.type.shape[1])):
            raise ShapeError(f"sampled dot over {describe_sparse(csr)}: {describe(g)} and {describe(d)} do not fit")
        return TensorType(upcast(g.dtype, d.dtype), (csr[0].type.shape[0],))

    def perform(self, indices, indptr, t_indptr, t_indices, t_perm, g, d) -> np.ndarray:
        dtype = upcast(g.dtype.name, d.dtype.name)
        out = np.zeros(len(indices), dtype=dtype)
        if len(indices) and g.shape[1]:
            terms = g[_rows(indptr)].astype(dtype) * d[indices].astype(dtype)
            # summed column by column, left to right, like the kernel
            out = terms[:, 0].copy()
            for j in range(1, terms.shape[1]):
                out += terms[:, j]
        return out

    def grad(self, inputs, output, gout):
        csr, g, d = tuple(inputs[:-2]), inputs[-2], inputs[-1]
        # out is bilinear in (G, D) through S's pattern weighted by gout
        g_g = CsrMM(False)(gout, *csr, d)
        g_d = CsrMM(True)(gout, *csr, g)
        return [None] * len(csr) + [g_g if is_float(g.dtype) else None, g_d if is_float(d.dtype) else None]

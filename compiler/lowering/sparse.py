"""Lowering of the sparse family (compiler/ops/sparse.py) to kernels/sparse.cu.j2.

Each CSR row goes to a group of ``tpr`` consecutive threads (a power of two, at most a warp);
the template explains the two modes. The group size is chosen per product:

- ``CsrMM`` (S . D, and S^T . G over the transpose's CSR): lanes own output columns, so
  ``tpr`` is the power of two covering the dense width n (capped at 32) and each lane keeps
  ``cpt`` accumulators (n / tpr, at most 4) per tile of columns: a row's nonzeros are read
  once per tile and the dense rows they select are read by consecutive threads (coalesced).
- ``SampledDot``: lanes take the row's stored entries in turn, so ``tpr`` follows the mean
  entries per row (nnz / m, a power of two up to 32): a bucket, not nnz itself, so the source
  of a minibatch's kernel rarely changes with its nnz.

Operands are read through their layouts (a transposed or broadcast dense matrix is not copied;
the values may be a broadcast gradient). CSR index arrays are the host's (compiler/sparse.py
checks every one it binds), so the kernels report nothing; they still clamp column indices,
so a bad array given some other way cannot make them read outside the dense operand.
"""
from __future__ import annotations

from ..codegen import Kernel, KernelBuilder
from ..cprint import CTYPES
from ..fuse import Group
from ..ops.sparse import CsrMM, SampledDot
from .common import BLOCK, MAX_GRID, grid_for, index_type, size, span

WARP = 32
MAX_CPT = 4      # accumulators per lane: more costs registers and buys little reuse


def _pow2_at_least(n: int, cap: int = WARP) -> int:
    p = 1
    while p < min(n, cap):
        p *= 2
    return p


def _launch(rows: int, tpr: int) -> tuple[int, int]:
    """(grid, groups per block) for ``rows`` row groups of ``tpr`` threads in BLOCK-thread blocks."""
    groups_per_block = BLOCK // tpr
    return grid_for(rows, groups_per_block, MAX_GRID), groups_per_block


def _vector_stride(kb: KernelBuilder, var) -> int:
    lay = kb.layout(var)
    return lay.strides[0] if lay.shape and lay.shape[0] != 1 else 0


def lower(group: Group, kb: KernelBuilder) -> list[Kernel]:
    """Kernels for a sparse group (one op; the family fuses nothing)."""
    if group.prologue or group.body or group.epilogue:
        raise NotImplementedError(f"sparse groups take no fused elementwise code: {group}")
    node = group.main
    if isinstance(node.op, CsrMM):
        kernel = _spmm(kb, node)
        return [kernel] if kernel is not None else []
    if isinstance(node.op, SampledDot):
        return [_sddmm(kb, node)] if size(node.type.shape) else []
    raise NotImplementedError(f"the sparse family cannot lower {node.op}")


def _spmm(kb: KernelBuilder, node) -> Kernel | None:
    data, indices, indptr, t_indptr, t_indices, t_perm, dense = node.inputs
    rows, cols = node.type.shape
    if rows * cols == 0:
        return None
    if node.op.transpose:   # S^T . G: the rows of S^T are the transpose's CSR
        ptr, col, perm = t_indptr, t_indices, t_perm
    else:
        ptr, col, perm = indptr, indices, None
    inner = dense.type.shape[0]
    tpr = _pow2_at_least(cols)
    cpt = min(MAX_CPT, -(-cols // tpr))
    grid, gpb = _launch(rows, tpr)
    dlay = kb.layout(dense)
    ds0 = dlay.strides[0] if inner != 1 else 0
    ds1 = dlay.strides[1] if cols != 1 else 0
    params = dict(ptr=kb.pointer(ptr), col=kb.pointer(col), val=kb.pointer(data),
                  perm=kb.pointer(perm) if perm is not None else None, dense=kb.pointer(dense))
    out = kb.pointer(node, write=True, prefix="out")
    # offsets: r * cols + j into the output, c * ds0 + j * ds1 into the dense operand, and a
    # column tile may start up to tpr * cpt past the last column
    index_t = index_type(rows * cols + WARP * MAX_CPT, span(dlay.shape, dlay.strides) + WARP * MAX_CPT,
                         rows + MAX_GRID * BLOCK)
    return kb.kernel("sparse.cu.j2", grid, BLOCK, mode="spmm", index_t=index_t, acc_t=CTYPES[node.dtype],
                     rows=rows, cols=cols, inner=inner, tpr=tpr, cpt=cpt, groups_per_block=gpb,
                     val_stride=_vector_stride(kb, data), ds0=ds0, ds1=ds1, out=out, **params)


def _sddmm(kb: KernelBuilder, node) -> Kernel:
    indices, indptr, t_indptr, t_indices, t_perm, g, d = node.inputs
    nnz = node.type.shape[0]
    rows, cols = g.type.shape
    inner = d.type.shape[0]
    tpr = _pow2_at_least(max(1, nnz // max(rows, 1)))
    grid, gpb = _launch(rows, tpr)
    glay, dlay = kb.layout(g), kb.layout(d)
    gs0, gs1 = (s if n != 1 else 0 for s, n in zip(glay.strides, glay.shape))
    dd0, dd1 = (s if n != 1 else 0 for s, n in zip(dlay.strides, dlay.shape))
    params = dict(ptr=kb.pointer(indptr), col=kb.pointer(indices), g=kb.pointer(g), d=kb.pointer(d))
    out = kb.pointer(node, write=True, prefix="out")
    index_t = index_type(nnz, span(glay.shape, glay.strides), span(dlay.shape, dlay.strides),
                         rows + MAX_GRID * BLOCK)
    return kb.kernel("sparse.cu.j2", grid, BLOCK, mode="sddmm", index_t=index_t, acc_t=CTYPES[node.dtype],
                     rows=rows, cols=cols, inner=inner, tpr=tpr, cpt=1, groups_per_block=gpb,
                     gs0=gs0, gs1=gs1, dd0=dd0, dd1=dd1, out=out, **params)

"""Lowering of Dot / BatchedDot groups (and their fused epilogues) to kernels/gemm.cu.j2.

Every product is put in one canonical form, C[b] (M x N) = A[b] (M x K) . B[b] (K x N), with
each operand read through its strides (a transposed or sliced operand is a strided view, never
a copy): vectors are 1 x K (left) or K x 1 (right) matrices, and Dot has one batch. Each
operand is described along its "outer" dim x (M for A, N for B) and k, which is what lets one
tile loader in the template serve both A and B.

Two template modes, chosen by shape:

- ``tiled`` (both M and N > 1): shared-memory tiles with 2D register blocking (DESIGN.md's
  GEMM step 1). 256 threads; each computes a TM x TN micro-tile made of 4 x 4 chunks spaced a
  warp-width apart (conflict-free float4 shared reads, coalesced stores). A/B tiles are loaded
  with 128-bit loads when the operand is contiguous along k or along x and the strides keep
  every vector 16-byte aligned, checked at run time with a scalar fallback.
- ``reduce`` (M == 1 or N == 1: vector-vector, matrix-vector, vector-matrix): each output is
  a dot product computed by a team of 1 thread (the matrix is contiguous along the outputs, so
  neighbouring threads read neighbouring elements), a warp (contiguous along k: lanes stride
  over k, then shuffle) or a whole block (a few long dot products).

The epilogue (bias add, activation, SGD update ...) is applied per element before the store.
Accumulation is in the output dtype (float32 in float32 like cuBLAS, float64 in float64,
integers in their own width with wrap-around like NumPy), bool in int.
"""
from __future__ import annotations

import dataclasses
import math

from ..codegen import (Kernel, KernelBuilder, bind_random_states, broadcast_strides, elemwise_statements,
                       offset_expr)
from ..layout import c_strides
from ..cprint import CTYPES
from ..fuse import Group
from ..graph import Variable
from ..layout import Layout
from ..ops.blas import BatchedDot, Dot
from .common import MAX_GRID, index_type

THREADS = 256
MAX_GRID_X = 2 ** 31 - 1
# 128-bit vector types by element dtype (the tile loader's and the store's vectors).
VEC_TYPES = {"float32": ("float4", 4), "float64": ("double2", 2), "int32": ("int4", 4)}
# Accumulator by output dtype: small integers and bool accumulate in int (same result modulo
# 2^bits as NumPy's wrap-around in the narrow type; bool: any product true <=> count != 0).
ACC_DTYPES = {"bool": "int32", "int8": "int32", "int16": "int32", "uint8": "uint32", "uint16": "uint32"}
INDEX_NAMES = {"b": "bz", "i": "gi", "j": "gj"}   # C names of the output's batch/row/col index


@dataclasses.dataclass(frozen=True)
class Tile:
    """A tiled-mode configuration: block tile BM x BN, k-step BK, per-thread TM x TN."""
    bm: int
    bn: int
    bk: int
    tm: int
    tn: int

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)


TILE_64 = {4: Tile(64, 64, 16, 4, 4), 8: Tile(64, 64, 8, 4, 4)}   # by accumulator size in bytes
TILE_128 = Tile(128, 128, 8, 8, 8)
MANY_TILES = 128   # about one block per SM of a large GPU: below it, bigger tiles starve the machine


@dataclasses.dataclass(frozen=True)
class Operand:
    """One canonical operand: element (b, x, k) is at ``param[b*sb + x*sx + k*sk]``."""
    var: Variable
    X: int          # the outer extent (M for A, N for B)
    sb: int
    sx: int
    sk: int


def lower(group: Group, kb: KernelBuilder) -> list[Kernel]:
    main = group.main
    if not isinstance(main.op, (Dot, BatchedDot)):
        raise NotImplementedError(f"the gemm lowering handles Dot and BatchedDot, not {main.op}")
    _check_epilogue_reads(group, kb)
    a, b, batch, K, labels = _canonical(main, kb)
    kb.pointer(a.var), kb.pointer(b.var)   # the operands come first in the kernel's parameters
    M, N = a.X, b.X
    out_dtype = main.dtype
    acc_dtype = ACC_DTYPES.get(out_dtype, out_dtype)
    mode, team, tile = choose_mode(batch, M, N, K, a, b, acc_dtype)

    names: dict = {id(main): "dv"}
    for state in bind_random_states(kb, group.epilogue, names):
        names[state] = None               # read by random draws only: no per-element load
    epi_inputs = _epilogue_inputs(group, kb, labels, names)
    names["index"] = INDEX_NAMES[labels[-1]] if labels else "0"   # an Arange over main's only axis
    # a random draw's element: the C-order flat index of (bz, gi, gj) in main's shape
    names["flat"] = offset_expr(c_strides(main.type.shape), [INDEX_NAMES[l] for l in labels]) if labels else "0"
    epilogue = elemwise_statements(group.epilogue, names, "e")
    vec_n = N % 4 == 0   # 4-column chunks of a row are then all in or all out of bounds
    outputs = []
    for k, o in enumerate(group.outputs):
        vt, vw = VEC_TYPES.get(o.dtype, (None, 1))
        outputs.append({"param": kb.pointer(o, write=True, prefix="out"), "value": names[id(o)],
                        "ctype": CTYPES[o.dtype], "var": f"o{k}",
                        "vec_t": vt if (mode == "tiled" and vec_n) else None, "vec_w": vw})

    ctx = dict(mode=mode, batch=batch, M=M, N=N, K=K, acc_t=CTYPES[acc_dtype], out_t=CTYPES[out_dtype],
               epi_inputs=epi_inputs, epilogue=epilogue, outputs=outputs,
               index_t=index_type(batch * M * N + MAX_GRID * THREADS, K + MAX_GRID, *_extents(kb, group, a, b)))
    if mode == "reduce":
        ctx.update(team=team, a=_reduce_operand(kb, a), b=_reduce_operand(kb, b))
        teams = THREADS // team
        grid = max(1, min(math.ceil(batch * M * N / teams), MAX_GRID))
        return [kb.kernel("gemm.cu.j2", grid, THREADS, **ctx)]

    acc_size = _itemsize(acc_dtype)
    smem_vec = {"float32": ("float4", 4), "float64": ("double2", 2)}.get(acc_dtype, (None, 1))
    ctx.update(tile=tile, threads_n=tile.bn // tile.tn, threads_m=tile.bm // tile.tm, pad=16 // acc_size,
               smem_vec_t=smem_vec[0], smem_vec_w=smem_vec[1],
               a=_tiled_operand(kb, a, "a", tile.bm, tile), b=_tiled_operand(kb, b, "b", tile.bn, tile))
    grid = (max(1, min(math.ceil(N / tile.bn), MAX_GRID_X)), max(1, min(math.ceil(M / tile.bm), MAX_GRID)),
            max(1, min(batch, MAX_GRID)))
    return [kb.kernel("gemm.cu.j2", grid, tile.threads, **ctx)]


def choose_mode(batch: int, M: int, N: int, K: int, a: Operand, b: Operand,
                acc_dtype: str) -> tuple[str, int, Tile | None]:
    """(mode, team size for reduce mode, tile for tiled mode) for this problem's shape."""
    if M == 1 and N == 1:
        # vector . vector (possibly batched): a block per long dot product, else a warp each
        return "reduce", (THREADS if K >= 2048 else 32), None
    if M == 1 or N == 1:
        # matrix . vector: one thread per output when the matrix is contiguous along the outputs
        # (coalesced across threads), else a warp per output striding along k
        mat = b if M == 1 else a
        return "reduce", (1 if mat.sx == 1 else 32), None
    return "tiled", 0, choose_tile(batch, M, N, acc_dtype)


def choose_tile(batch: int, M: int, N: int, acc_dtype: str) -> Tile:
    """128 x 128 tiles (8 x 8 per thread) when there are enough of them to fill a GPU, else 64 x 64."""
    size = _itemsize(acc_dtype)
    if size == 4 and batch * math.ceil(M / 128) * math.ceil(N / 128) >= MANY_TILES:
        return TILE_128
    return TILE_64[size]


# -- canonical form --------------------------------------------------------------------------------

def _canonical(main: Variable, kb: KernelBuilder) -> tuple[Operand, Operand, int, int, list[str]]:
    """A, B, batch count, K, and which index (b/i/j) each axis of main's shape is."""
    x, y = main.inputs
    lx, ly = kb.layout(x), kb.layout(y)
    if isinstance(main.op, BatchedDot):
        (batch, M, K), (_, _, N) = lx.shape, ly.shape
        a = Operand(x, M, *_norm(lx.shape, lx.strides))
        sb, sk, sn = _norm(ly.shape, ly.strides)
        return a, Operand(y, N, sb, sn, sk), batch, K, ["b", "i", "j"]
    K = lx.shape[-1]
    if x.ndim == 2:
        sm, sk = _norm(lx.shape, lx.strides)
        a = Operand(x, lx.shape[0], 0, sm, sk)
    else:
        a = Operand(x, 1, 0, 0, _norm(lx.shape, lx.strides)[0])
    if y.ndim == 2:
        sk, sn = _norm(ly.shape, ly.strides)
        b = Operand(y, ly.shape[1], 0, sn, sk)
    else:
        b = Operand(y, 1, 0, 0, _norm(ly.shape, ly.strides)[0])
    labels = (["i"] if x.ndim == 2 else []) + (["j"] if y.ndim == 2 else [])
    return a, b, 1, K, labels


def _norm(shape, strides) -> tuple:
    """Strides with 0 along size-1 dims (their index is always 0): keeps mode choices honest."""
    return tuple(0 if d == 1 else s for d, s in zip(shape, strides))


def _tiled_operand(kb: KernelBuilder, op: Operand, name: str, bx: int, tile: Tile) -> dict:
    """Template context of a tiled-mode operand, with its 128-bit load mode:
    ``vk`` vectors along k (row-major A, transposed B), ``vx`` along x (transposed A, row-major
    B), ``s`` scalar only. A vector mode needs every vector to start 16-byte aligned: the other
    strides multiples of the width here, the pointer checked at run time (a scalar fallback
    otherwise). The ragged end of a row (extent not a multiple of the width) loads per element."""
    vt, vw = VEC_TYPES.get(op.var.dtype, (None, 1))
    mode = "s"
    if vt is not None and (bx * tile.bk) % (vw * tile.threads) == 0:
        if op.sk == 1 and op.sx % vw == 0 and op.sb % vw == 0:
            mode = "vk"
        elif op.sx == 1 and op.sk % vw == 0 and op.sb % vw == 0:
            mode = "vx"
    # scalar loads walk the smaller-stride dim fastest (coalescing); a 0 stride is a size-1 dim
    key = [abs(s) if s != 0 else math.inf for s in (op.sk, op.sx)]
    return {"name": name, "param": kb.pointer(op.var), "ctype": CTYPES[op.var.dtype], "X": op.X,
            "sb": op.sb, "sx": op.sx, "sk": op.sk, "bx": bx, "mode": mode, "vec_t": vt, "vec_w": vw,
            "vec_iters": bx * tile.bk // (vw * tile.threads), "scalar_iters": bx * tile.bk // tile.threads,
            "k_fast": key[0] <= key[1], "comps": ["x", "y", "z", "w"][:vw]}


def _reduce_operand(kb: KernelBuilder, op: Operand) -> dict:
    return {"param": kb.pointer(op.var), "ctype": CTYPES[op.var.dtype], "sb": op.sb, "sx": op.sx, "sk": op.sk}


# -- epilogue --------------------------------------------------------------------------------------

def _epilogue_inputs(group: Group, kb: KernelBuilder, labels: list[str], names: dict) -> list[dict]:
    """Loads of the values the epilogue reads besides main, each through its strides broadcast
    to main's shape (a bias vector reads with stride 0 along the rows)."""
    shape = group.main.type.shape
    members = {id(n) for n in group.nodes}
    index = [INDEX_NAMES[l] for l in labels]
    out = []
    for node in group.epilogue:
        for var in node.inputs:
            if id(var) in members or id(var) in names:
                continue
            lay = kb.layout(var)
            lead = len(shape) - len(lay.shape)   # a lower-rank operand broadcasts from the left
            lay = dataclasses.replace(lay, shape=(1,) * lead + tuple(lay.shape),
                                      strides=(0,) * lead + tuple(lay.strides))
            strides = broadcast_strides(lay, shape) if shape else ()
            names[id(var)] = f"ev{len(out)}"
            out.append({"param": kb.pointer(var), "var": names[id(var)], "ctype": CTYPES[var.dtype],
                        "offset": offset_expr(strides, index)})
    return out


def _check_epilogue_reads(group: Group, kb: KernelBuilder) -> None:
    """An epilogue reading a *view* of a value this kernel writes (``dot(x, W) + dot(x, W).T``)
    would read other threads' results before they exist: refuse instead of racing."""
    members = {id(n) for n in group.nodes}
    for node in group.epilogue:
        for var in node.inputs:
            if id(var) not in members and id(kb.layout(var).base) in members:
                raise NotImplementedError(
                    f"the epilogue of {group} reads a view of a value the same kernel computes; "
                    "fusion must not merge it (see compiler/fuse.py merge_kind)")


# -- sizes -----------------------------------------------------------------------------------------

def _extents(kb: KernelBuilder, group: Group, a: Operand, b: Operand) -> list[int]:
    """The largest element offset each operand's indexing reaches (index_t must hold them)."""
    out = []
    for var in [a.var, b.var] + [i for n in group.epilogue for i in n.inputs]:
        lay: Layout = kb.layout(var)
        out.append(sum(max(d - 1, 0) * abs(s) for d, s in zip(lay.shape, lay.strides)))
    return out


def _itemsize(dtype: str) -> int:
    import numpy as np
    return np.dtype(dtype).itemsize

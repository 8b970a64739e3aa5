"""Lowering of the convolution family (compiler/ops/conv.py) to kernels/conv.cu.j2.

Each op is an implicit GEMM, C (M x NC) = A (M x R) . B (R x NC), whose operands are gathered
from the 4-D tensors (read through their layouts' strides) while the tiles are loaded:

    Conv2d             M = N*OH*OW,  NC = K,          R = C*KH*KW    A: the padded input, B: filters
    Conv2dGradInputs   M = N*H*W,    NC = C,          R = K*KH*KW    A: gy (where a window reaches), B: filters
    Conv2dGradWeights  M = K,        NC = C*KH*KW,    R = N*OH*OW    A: gy, B: the padded input

The elementwise epilogue (bias add and activation after the forward op, the SGD update after
the filters' gradient) runs per output element before the store, as in the gemm family.
Accumulation is in the output dtype (float32 like cuDNN's default, float64 in float64).

The tile shape is picked from three configurations of 256 threads (a warp along m) by the
least padded work, so a layer with few output channels does not waste most of a 64-wide tile.
"""
from __future__ import annotations

import dataclasses
import math

from ..codegen import Kernel, KernelBuilder, broadcast_strides, elemwise_statements, offset_expr
from ..cprint import CTYPES
from ..fuse import Group
from ..graph import Variable
from ..ops.conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from .common import MAX_GRID, index_type, span

WARP = 32
THREADS = 256
# (TM, TN) per thread with TX = 32 threads along m and TY = 8 along j: tiles of 64 x 64,
# 128 x 16 (few columns) and 32 x 64 (few rows).
CONFIGS = ((2, 8), (4, 2), (1, 8))
BK = {"float32": 16, "float64": 8}   # the reduction step: two tiles of about 8 KB of shared memory
MODES = {Conv2d: "fwd", Conv2dGradInputs: "gi", Conv2dGradWeights: "gw"}
OUT_INDEX = ("o0", "o1", "o2", "o3")   # C names of the output element's index in the template


def lower(group: Group, kb: KernelBuilder) -> list[Kernel]:
    main = group.main
    mode = MODES.get(type(main.op))
    if mode is None or group.prologue or group.body:
        raise NotImplementedError(f"the conv lowering handles Conv2d and its gradients with an epilogue, not {group}")
    # fwd: (x, w), gi: (gy, w); gw takes (x, gy) but contracts gy (A, rows k) with x (B)
    a_var, b_var = main.inputs[:2] if mode != "gw" else main.inputs[1::-1]
    geo = _geometry(main, mode)
    M, NC, R = _gemm_sizes(geo, mode)
    if M == 0 or NC == 0:
        return []   # nothing to write
    a, b = _operand(kb, a_var, "x" if mode != "gw" else "r"), _operand(kb, b_var, "r")

    names: dict = {id(main): "dv"}
    epi_inputs = _epilogue_inputs(group, kb, names)
    epilogue = elemwise_statements(group.epilogue, names, "e")
    out_dims = main.type.shape
    assert all(o.type.shape == out_dims for o in group.outputs), group
    outputs = [{"param": kb.pointer(o, write=True, prefix="out"), "value": names[id(o)]} for o in group.outputs]

    tm, tn = min(CONFIGS, key=lambda c: _padded_work(M, NC, WARP * c[0], THREADS // WARP * c[1]))
    bm, bn = WARP * tm, THREADS // WARP * tn
    grid = (max(1, min(math.ceil(M / bm), MAX_GRID)), max(1, min(math.ceil(NC / bn), MAX_GRID)))
    acc_dtype = main.dtype
    spans = [span(kb.layout(v).shape, kb.layout(v).strides) for v in [a_var, b_var] + _epilogue_reads(group)]
    # tile loops step up to one grid's worth of tiles past their bound before the test fails
    itype = index_type(M * NC, M + MAX_GRID * bm, NC + MAX_GRID * bn, R + BK[acc_dtype], *spans)
    return [kb.kernel("conv.cu.j2", grid, THREADS, mode=mode, acc_t=CTYPES[acc_dtype], out_t=CTYPES[main.dtype],
                      index_t=itype, M=M, NC=NC, R=R, geo=geo, TX=WARP, TY=THREADS // WARP, TM=tm, TN=tn,
                      BK=BK[acc_dtype], a=a, b=b, out_dims=list(out_dims), epi_inputs=epi_inputs,
                      epilogue=epilogue, outputs=outputs)]


def _geometry(main: Variable, mode: str) -> dict:
    """Every size of the convolution (compile-time constants of the kernel)."""
    op = main.op
    first, second = (i.type.shape for i in main.inputs[:2])
    if mode == "fwd":
        (n, c, h, w), (k, _, kh, kw), (oh, ow) = first, second, main.type.shape[2:]
    elif mode == "gi":
        (n, k, oh, ow), (_, c, kh, kw), (h, w) = first, second, main.type.shape[2:]
    else:
        (n, c, h, w), (_, k, oh, ow), (kh, kw) = first, second, main.type.shape[2:]
    ph, pw = op.pads(kh, kw)
    return dict(N=n, C=c, H=h, W=w, K=k, KH=kh, KW=kw, OH=oh, OW=ow, PH=ph, PW=pw,
                SH=op.subsample[0], SW=op.subsample[1], DH=op.filter_dilation[0], DW=op.filter_dilation[1],
                FLIP=op.filter_flip)


def _gemm_sizes(g: dict, mode: str) -> tuple[int, int, int]:
    taps = g["KH"] * g["KW"]
    if mode == "fwd":
        return g["N"] * g["OH"] * g["OW"], g["K"], g["C"] * taps
    if mode == "gi":
        return g["N"] * g["H"] * g["W"], g["C"], g["K"] * taps
    return g["K"], g["C"] * taps, g["N"] * g["OH"] * g["OW"]


def _padded_work(M: int, NC: int, bm: int, bn: int) -> int:
    return math.ceil(M / bm) * bm * math.ceil(NC / bn) * bn


def _operand(kb: KernelBuilder, var: Variable, fast: str) -> dict:
    """A 4-D operand read at ``param[i0*s0 + i1*s1 + i2*s2 + i3*s3]``; ``fast`` says which tile
    index consecutive threads walk when loading it (its contiguous direction, for coalescing)."""
    lay = kb.layout(var)
    return {"param": kb.pointer(var), "ctype": CTYPES[var.dtype], "s": list(lay.strides), "fast": fast}


def _epilogue_reads(group: Group) -> list[Variable]:
    members = {id(n) for n in group.nodes}
    return [i for n in group.epilogue for i in n.inputs if id(i) not in members]


def _epilogue_inputs(group: Group, kb: KernelBuilder, names: dict) -> list[dict]:
    """Loads of the values the epilogue reads besides main, each broadcast to main's shape
    (a bias b.dimshuffle('x', 0, 'x', 'x') reads with stride 0 but along the channels)."""
    shape = group.main.type.shape
    out = []
    for var in _epilogue_reads(group):
        if id(var) in names:
            continue
        lay = kb.layout(var)
        lead = len(shape) - len(lay.shape)   # a lower-rank operand broadcasts from the left
        lay = dataclasses.replace(lay, shape=(1,) * lead + tuple(lay.shape), strides=(0,) * lead + tuple(lay.strides))
        names[id(var)] = f"ev{len(out)}"
        out.append({"param": kb.pointer(var), "var": names[id(var)], "ctype": CTYPES[var.dtype],
                    "offset": offset_expr(broadcast_strides(lay, shape), OUT_INDEX)})
    return out

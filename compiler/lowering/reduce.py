"""Lowering of reduction groups (Reduce, ArgReduce, SumTo + fused prologue/epilogue) to reduce.cu.j2.

The reduced input X (the reduce's input, or the last node of an elementwise prologue computed
while reading) is viewed logically as (kept dims, reduced dims) through strides, whatever the
axis set: output element ``o`` is the linear index over the kept dims (C order, which is also
the output's own linear index), ``r`` the linear index over the reduced dims. No copy or
transpose is ever made; consecutive kept (or reduced) dims whose strides chain are merged so
the index arithmetic stays short. Prologue inputs are read through their own strides,
broadcast to X; a copy-reshape in the prologue reads its (non-contiguous) source at X's linear
index.

Every kernel is the same shape of loop (see the template): a block takes ``opb`` outputs at a
time and gives each ``lanes`` threads that stride over ``r``; the lanes then combine (warp
shuffles and/or shared memory) and one thread per output runs the epilogue and writes. How
threads map to (output, lane) is chosen per shape so global reads coalesce:

- ``row`` mode, when memory runs fastest along a reduced dim (row sums, full reductions):
  ``lanes`` consecutive threads share one output and read consecutive elements; ``lanes`` grows
  with the reduction length up to 256 (one block per output), ``opb = threads / lanes``.
- ``col`` mode, when memory runs fastest along a kept dim (column sums such as
  ``db = sum(g, axis=0)``): consecutive threads take consecutive outputs, and up to 8 lanes per
  output split the rows (more when there are few outputs); with short reductions this is one
  thread per output.

When there are too few output tiles to fill the GPU but long reductions (a full reduction to a
scalar, a column sum of a tall matrix), the reduced range is split over ``split`` blocks
(grid.y); each block leaves its partial in a per-kernel ``__device__`` scratch array and the
last block to arrive at a tile (a counter per tile) combines the partials in a fixed order
(deterministic) and runs the epilogue.

Accumulation follows compiler/ops/reduce.py: float sums/products/means in double, integer
ones in 64 bits (unsigned arithmetic, so overflow wraps like NumPy's int64 instead of being
undefined behaviour), max/min in the input type with NaN propagation, argmax/argmin as
(value, index) pairs with NumPy's rule (first NaN, else first extreme).
"""
from __future__ import annotations

import math

from ..codegen import Kernel, KernelBuilder, bind_random_states, broadcast_strides, elemwise_statements
from ..cprint import CTYPES
from ..fuse import Group
from ..graph import Variable
from ..layout import c_strides
from ..ops.elemwise import SumTo
from ..ops.reduce import ArgReduce, Reduce
from ..ops.shape import Reshape
from ..types import acc_dtype, is_float
from .common import MAX_GRID, index_type, size

THREADS = 256          # threads per block (every mode)
TARGET_BLOCKS = 264    # ~2 blocks per SM on an H100 (132 SMs): below this, split long reductions
MIN_PER_THREAD = 32    # a split never leaves a thread fewer elements than this per block
MAX_SPLIT = 256
MAX_SCRATCH = 1 << 20  # accumulator slots a split kernel may keep in device scratch


def lower(group: Group, kb: KernelBuilder) -> list[Kernel]:
    main = group.main
    x = main.inputs[0]
    kind, axes = _kind_and_axes(main)
    xshape = tuple(x.type.shape)
    out_shape = tuple(main.type.shape)
    kept_axes = [a for a in range(len(xshape)) if a not in axes]
    n_out = size([xshape[a] for a in kept_axes])
    n_red = size([xshape[a] for a in axes])
    assert n_out == size(out_shape), (group, xshape, out_shape)

    # -- the operands read at each element of X: x itself, or the prologue's external inputs --
    # Each gets an offset "stream" over X (its strides, broadcast). A copy-reshape in the
    # prologue reads its source in the source's own order instead: at X's linear index (one
    # shared stream with X's C strides), decomposed over the source's shape and strides.
    members = {id(n) for n in group.prologue}
    names: dict = {}
    if group.prologue:
        assert group.prologue[-1] is x, group
    reshaped = {id(n.inputs[0]) for n in group.prologue if isinstance(n.op, Reshape)}
    if any(i in members for i in reshaped):
        raise NotImplementedError(f"a reshape of a fused elementwise value in a reduce prologue ({group})")
    sources = _unique(i for n in group.prologue for i in n.inputs if id(i) not in members) if group.prologue \
        else [x]
    operands, streams = [], []
    linear_stream = None
    for k, var in enumerate(sources):
        lay = kb.layout(var)
        op = {"param": kb.pointer(var), "var": f"x{k}", "ctype": CTYPES[var.dtype], "linear": None}
        if id(var) in reshaped:
            if linear_stream is None:
                linear_stream = len(streams)
                streams.append(c_strides(xshape))
            op["stream"] = linear_stream
            op["linear"] = [{"size": d, "stride": st} for d, st in zip(lay.shape, lay.strides)]
        else:
            op["stream"] = len(streams)
            streams.append(_strides_over(lay, var, xshape))
        names[id(var)] = op["var"]
        operands.append(op)
    kept = _coalesce([(xshape[a], tuple(s[a] for s in streams)) for a in kept_axes])
    red = _coalesce([(xshape[a], tuple(s[a] for s in streams)) for a in axes])
    names["index"] = "r"   # an Arange prologue is 1-D: its index is the reduced index
    computed = [n for n in group.prologue if not isinstance(n.op, Reshape)]
    for n in group.prologue:
        if isinstance(n.op, Reshape):
            names[id(n)] = names[id(n.inputs[0])]
    prologue = elemwise_statements(computed, names, "q")
    value = names[id(x)]

    # -- epilogue: elementwise code over the output shape, applied by the writing thread --
    main_var = "res"
    names[id(main)] = main_var
    epi_members = {id(n) for n in group.epilogue} | {id(main)}
    epi_inputs, epi_sources = [], []
    draw_states = bind_random_states(kb, group.epilogue, names)   # read as two words, not per element
    names["flat"] = "o"   # a random draw in the epilogue: the output's flat index
    for k, var in enumerate(_unique(i for n in group.epilogue for i in n.inputs
                                    if id(i) not in epi_members and id(i) not in draw_states)):
        lay = kb.layout(var)
        strides = _strides_over(lay, var, out_shape)
        names[id(var)] = f"y{k}"
        epi_inputs.append({"param": kb.pointer(var), "var": f"y{k}", "ctype": CTYPES[var.dtype],
                           "contiguous": _contiguous(strides, out_shape),
                           "dims": list(out_shape), "strides": list(strides)})
        epi_sources.append(var)
    epilogue = elemwise_statements(group.epilogue, names, "e")
    outputs = [{"param": kb.pointer(o, write=True, prefix="out"), "value": names[id(o)],
                "ctype": CTYPES[o.dtype]} for o in group.outputs]

    # -- the thread mapping and the split --
    plan = _plan(kept, red, n_out, n_red, streams)
    n_tiles = math.ceil(n_out / plan["opb"]) if n_out else 0
    split = _split(n_tiles, plan["opb"], plan["lanes"], n_red)
    grid = (max(1, min(n_tiles, MAX_GRID)), split)
    # 32-bit indexing when every index and offset (either sign) fits, and the tile loop's last
    # `tile += gridDim.x` (past n_tiles by up to MAX_GRID) does not overflow
    extent = max([n_out, n_red, n_tiles * plan["opb"] * split, size(xshape)]
                 + [_span(kb.layout(v).shape, kb.layout(v).strides) for v in sources + epi_sources])
    logical = _logical_acc_dtype(kind, x.dtype, main.dtype)
    # int64 sums and products wrap in uint64; max/min compare, so they stay signed
    acc = "uint64" if logical == "int64" and kind in ("sum", "prod", "mean") else logical
    return [kb.kernel("reduce.cu.j2", grid, plan["threads"], kind=kind, arg=kind in ("argmax", "argmin"),
                      val_t=CTYPES[x.dtype], acc_dtype=acc, acc_t=CTYPES[acc], logical_dtype=logical,
                      out_t=CTYPES[main.dtype],
                      index_t=index_type(extent + 2 * THREADS * split + 1, n_tiles + MAX_GRID),
                      n_out=n_out, n_red=n_red,
                      mode=plan["mode"], lanes=plan["lanes"], opb=plan["opb"], n_tiles=n_tiles, split=split,
                      chunk=math.ceil(n_red / split) if n_red else 0,
                      kept=[{"size": d, "strides": list(s)} for d, s in kept],
                      red=[{"size": d, "strides": list(s)} for d, s in red],
                      operands=operands, n_streams=len(streams), prologue=prologue, value=value, main_var=main_var,
                      epi_inputs=epi_inputs, epilogue=epilogue, outputs=outputs)]


def _kind_and_axes(main: Variable) -> tuple[str, tuple]:
    op = main.op
    if isinstance(op, Reduce):
        return op.kind, tuple(op.axes)
    if isinstance(op, ArgReduce):
        return op.kind, (op.axis,)
    if isinstance(op, SumTo):
        # SumTo(g, like): sum over the axes where like has 1 and g does not (keepdims); like is
        # only a shape and is never read.
        g, like = main.inputs
        if g.ndim != like.ndim:
            raise NotImplementedError(f"SumTo between ranks {g.ndim} and {like.ndim}")
        return "sum", tuple(a for a, (gs, s) in enumerate(zip(g.type.shape, like.type.shape)) if s == 1 and gs != 1)
    raise NotImplementedError(f"the reduce family does not lower {op}")


def _logical_acc_dtype(kind: str, x_dtype: str, out_dtype: str) -> str:
    """The accumulator of compiler/ops/reduce.py's contract. (The kernel accumulates int64 in
    uint64: the same bits, but wrap-around is defined in C; it converts back before the cast.)"""
    if kind in ("max", "min", "argmax", "argmin"):
        return x_dtype
    if kind == "mean" and is_float(out_dtype):
        return "float64"
    return acc_dtype(x_dtype)


def _unique(vars_) -> list:
    return list({id(v): v for v in vars_}.values())


def _strides_over(lay, var: Variable, shape: tuple) -> tuple:
    """Strides reading ``var`` at each index of ``shape`` (broadcast along its size-1 dims)."""
    if not lay.shape:
        return (0,) * len(shape)
    if len(lay.shape) != len(shape):
        raise NotImplementedError(f"{var} (rank {len(lay.shape)}) read over rank-{len(shape)} iteration")
    return broadcast_strides(lay, shape)


def _contiguous(strides: tuple, shape: tuple) -> bool:
    return all(s == c for s, c, d in zip(strides, c_strides(shape), shape) if d != 1)


def _span(shape: tuple, strides: tuple) -> int:
    """The largest |offset| a layout reaches from its first element."""
    return sum(max(d - 1, 0) * abs(s) for d, s in zip(shape, strides))


def _coalesce(dims: list) -> list:
    """Drop size-1 dims and merge a dim into its predecessor where every operand's strides
    chain (stride_outer == stride_inner * size_inner): the linear index is unchanged."""
    out: list = []
    for d, st in dims:
        if d == 1:
            continue
        if out and all(so == si * d for so, si in zip(out[-1][1], st)):
            out[-1] = (out[-1][0] * d, st)
        else:
            out.append((d, st))
    return out


def _pow2ceil(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n))) if n > 1 else 1


def _plan(kept: list, red: list, n_out: int, n_red: int, streams: list) -> dict:
    """Row or column mapping, lanes per output and outputs per block (see the module doc)."""
    mode = "row"
    if kept and red:
        # The operand that costs the most traffic decides: the one with the fewest broadcast
        # (zero-stride) dims. Its fastest-moving dim says whether neighbouring threads should
        # walk the reduction (row) or neighbouring outputs (col).
        def unit(dims: list, j: int) -> int:
            nz = [abs(s[j]) for _, s in dims if s[j] != 0]
            return min(nz) if nz else 1 << 62
        j = min(range(len(streams)), key=lambda j: sum(s == 0 for s in streams[j]))
        if unit(kept, j) < unit(red, j):
            mode = "col"
    if mode == "row":
        lanes = min(THREADS, _pow2ceil(math.ceil(n_red / 4)))
        opb = min(THREADS // lanes, _pow2ceil(n_out))
        opb = max(opb, 32 // lanes)   # whole warps: the lane shuffles use the full mask
    else:
        # up to 8 lanes when there are 32+ outputs (a warp reads 32 neighbours); few outputs
        # (a tall, narrow matrix) get more lanes so the block still fills
        lanes = min(THREADS // min(32, _pow2ceil(n_out)), _pow2ceil(math.ceil(n_red / 8)))
        opb = min(THREADS // lanes, _pow2ceil(n_out))
    return {"mode": mode, "lanes": lanes, "opb": opb, "threads": lanes * opb}


def _split(n_tiles: int, opb: int, lanes: int, n_red: int) -> int:
    """How many blocks share each tile's reduction (1: none), so that small outputs over long
    reductions still occupy the whole GPU."""
    if n_tiles == 0 or n_tiles >= TARGET_BLOCKS:
        return 1
    split = min(math.ceil(TARGET_BLOCKS / n_tiles), n_red // (lanes * MIN_PER_THREAD), MAX_SPLIT,
                MAX_SCRATCH // (n_tiles * opb))
    return max(1, split)

"""Lowering of the row-softmax family (compiler/ops/nnet.py) to kernels/softmax.cu.j2.

Every op of the family reduces each row of a matrix (its last axis) and then, for the ops
with a matrix result, writes the row once more:

    Softmax, LogSoftmax      (max, sum of exp(x - max)) per row, then exp(x - max - log(sum))
    CrossentropySoftmaxInt   the same reduction, then one loss per row: log(sum) - (x[y] - max)
    CrossentropySoftmaxIntGrad  the same reduction, then gz[i] * (softmax(x[i]) - onehot(y[i]))
    SoftmaxGrad(gz, sm)      sum(gz * sm) per row, then (gz - dot) * sm

An elementwise epilogue over main's output shape (a negation, a scale, an SGD update...) is
computed before each element is written, so the fused group is still a single launch.

Work assignment, chosen here from the row length K (compile-time constant):

- K <= WARP_MAX_K: one warp per row (or, for K <= 16, a segment of the next power of two
  >= K lanes per row, several rows per warp), several rows per block, reductions by warp
  shuffles only (no shared memory, no block barrier);
- otherwise one block of BLOCK_THREADS threads per row: shuffles within each warp, then the
  warps' partial results through shared memory.

Rows are a grid-stride loop in both cases, so any grid is correct. When each thread's share of
the row fits in registers (CACHE_REGS), the row is read from memory exactly once: the values
stay in a register array between the reduction and the write pass, and the reduction is
exact two-pass (max, then sum of exp). Otherwise the reduction is one pass with an online
max (the running sum is rescaled when the max grows) and the write pass reads the row again.

Numerics match compiler/ops/nnet.py's NumPy definitions: x - max and exp in the input dtype,
the row sum accumulated in float64 for float32 and float64 alike (NumPy's reference sums in
float64, and a float32 sum would lose log(sum) of a row dominated by one element, where
log-softmax is tiny), log(sum) rounded once to the input dtype. Rows holding +inf or only
-inf give NaN, like NumPy's x - max. A label outside [0, K) cannot be read out of bounds: its
row's loss (CrossentropySoftmaxInt) or gradient row (CrossentropySoftmaxIntGrad) is NaN (the
reference backend raises IndexingError instead).

The knobs below are module constants so tests can force each code path on small shapes.
"""
from __future__ import annotations

import dataclasses
import math

from ..codegen import Kernel, KernelBuilder, bind_random_states, broadcast_strides, elemwise_statements
from ..cprint import CTYPES
from ..fuse import Group
from ..graph import Variable
from ..ops.elemwise import Elemwise
from ..ops.nnet import CrossentropySoftmaxInt, CrossentropySoftmaxIntGrad, LogSoftmax, Softmax, SoftmaxGrad
from ..ops.random import RandomDraw
from ..ops.shape import Arange
from .common import MAX_GRID, index_type

WARP = 32
WARP_MAX_K = 1024      # rows up to this long get one warp each (up to 32 values per lane)
WARP_THREADS = 256     # threads per block in warp mode (8 warps, each one or more rows)
BLOCK_THREADS = 256    # threads per block in block-per-row mode
CACHE_REGS = 64        # 32-bit registers per thread we allow for caching the row's values

_OPS = {Softmax: "softmax", LogSoftmax: "logsoftmax", SoftmaxGrad: "softmax_grad",
        CrossentropySoftmaxInt: "xent", CrossentropySoftmaxIntGrad: "xent_grad"}


def lower(group: Group, kb: KernelBuilder) -> list[Kernel]:
    """One kernel for a softmax-family group: main's row op, its epilogue, its outputs."""
    main = group.main
    op = _OPS.get(type(main.op))
    if op is None:
        raise NotImplementedError(f"the softmax family cannot lower {main.op}")
    if group.prologue or group.body:
        raise NotImplementedError(f"softmax groups take no prologue/body: {group}")

    # The row matrix every op reduces over: x, or sm for SoftmaxGrad (same shape as gz).
    matrix = main.inputs[1] if op in ("softmax_grad", "xent_grad") else main.inputs[0]
    n_rows, k = matrix.type.shape
    out_shape = main.type.shape
    assert all(o.type.shape == out_shape for o in group.outputs), group
    if n_rows == 0 or (k == 0 and op != "xent"):
        return []   # nothing to write (rows of length 0 still get a loss: NaN, as no label is valid)

    ctype = CTYPES[main.dtype]
    row_vars = [main.inputs[0], main.inputs[1]] if op == "softmax_grad" else [matrix]
    rows = [_operand(kb, v, (n_rows, k), f"x{i}") for i, v in enumerate(row_vars)]

    label = gz_row = None
    if op in ("xent", "xent_grad"):
        y = main.inputs[1] if op == "xent" else main.inputs[2]
        label = _operand(kb, y, (n_rows,), "lbl")
    if op == "xent_grad":
        gz_row = _operand(kb, main.inputs[0], (n_rows,), "gzr")

    # Work assignment and register caching.
    warp_mode = k <= WARP_MAX_K
    threads = WARP_THREADS if warp_mode else BLOCK_THREADS
    if warp_mode:
        # Rows shorter than a warp share it: segments of the next power of two >= K lanes.
        lanes = min(WARP, 1 << (max(k, 1) - 1).bit_length())
        segs = WARP // lanes
        rows_per_block = threads // WARP * segs
    else:
        lanes, segs, rows_per_block = threads, 1, 1
    elems = max(1, math.ceil(k / lanes))
    words = 2 if any(v.dtype == "float64" for v in row_vars) else 1
    cache = elems * len(rows) * words <= CACHE_REGS
    grid = max(1, min(math.ceil(n_rows / rows_per_block), MAX_GRID))

    # Epilogue: elementwise statements evaluated per written element, after main's value "r".
    vector_out = len(out_shape) == 1
    names: dict = {id(main): "r", "index": "row", "flat": "row" if vector_out else "(row * K + col)"}
    members = {id(n) for n in group.nodes}
    draw_states = bind_random_states(kb, group.epilogue, names)   # read as two words, not per element
    ep_inputs = []
    for var in group.inputs:
        if id(var) in draw_states or not any(any(i is var for i in n.inputs) for n in group.epilogue):
            continue
        operand = _operand(kb, var, out_shape, f"ev{len(ep_inputs)}")
        names[id(var)] = operand["var"]
        ep_inputs.append(operand)
    for n in group.epilogue:
        if not isinstance(n.op, (Elemwise, Arange, RandomDraw)) or (isinstance(n.op, Arange) and not vector_out):
            raise NotImplementedError(f"softmax epilogue node {n.op} is not elementwise over rows")
    epilogue = elemwise_statements(group.epilogue, names, "ep")
    outputs = [{"param": kb.pointer(o, write=True, prefix="out"), "value": names[id(o)]} for o in group.outputs]
    assert all(id(o) in members for o in group.outputs)

    # the row loop's last `base += gridDim.x * rows_per_block` and the column loops' last
    # `col += LANES` step past n_rows / k before their tests fail: they must not overflow
    extents = [n_rows * k, n_rows + MAX_GRID * rows_per_block, k + lanes]
    for operand in rows + ep_inputs:
        extents.append(abs(operand["rs"]) * n_rows + abs(operand["cs"]) * k)
    for operand in (label, gz_row):
        if operand is not None:
            extents.append(abs(operand["rs"]) * n_rows)

    if label is not None:
        kb.status()  # an out-of-range label is reported, as the reference raises
    return [kb.kernel("softmax.cu.j2", grid, threads, op=op, ctype=ctype, n_rows=n_rows, k=k,
                      warp_mode=warp_mode, lanes=lanes, segs=segs, rows_per_block=rows_per_block,
                      warps=threads // WARP, elems=elems, cache=cache, index_t=index_type(*extents),
                      rows=rows, label=label, gz_row=gz_row, vector_out=vector_out,
                      ep_inputs=ep_inputs, epilogue=epilogue, outputs=outputs)]


def _operand(kb: KernelBuilder, var: Variable, shape: tuple, cname: str) -> dict:
    """``var`` read at [row, col] (``shape`` (rows, K)) or [row] (``shape`` (rows,)) through its
    layout's strides: ``rs`` and ``cs`` (0 for vectors) in elements, 0 where it broadcasts (a
    lower-rank operand is aligned to the right, as NumPy broadcasts)."""
    lay = kb.layout(var)
    lead = len(shape) - len(lay.shape)
    padded = dataclasses.replace(lay, shape=(1,) * lead + tuple(lay.shape), strides=(0,) * lead + tuple(lay.strides))
    strides = broadcast_strides(padded, shape)
    return {"param": kb.pointer(var), "var": cname, "ctype": CTYPES[var.dtype],
            "rs": strides[0], "cs": strides[1] if len(shape) == 2 else 0}

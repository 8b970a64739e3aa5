"""Lowering of the pooling family (compiler/ops/pool.py) to kernels/pool.cu.j2.

One thread per element of the op's result, in a grid-stride loop, so every element is
computed by exactly one thread and nothing is accumulated across threads (no atomics, no
shared memory):

- ``forward`` (Pool of every mode, MaxPoolGradGrad): a thread per output window walks the
  window's rows and columns inside the input (its padded part only counts, for
  average_inc_pad, in the divisor);
- ``backward`` (MaxPoolGrad, AveragePoolGrad): a thread per input element gathers from the
  windows that contain it, the range ``[r_lo, r_hi]`` of window rows (and columns) whose span
  covers it, instead of each window scattering into its elements.

Both follow compiler/ops/pool.py's perform term by term (the same window order, the average's
per-window division before the sum), in the input's dtype. Operands are read through their
layouts' strides (a transposed or sliced input is not copied); leading axes are a batch
decomposed per operand. An elementwise epilogue over the result's shape (relu after max
pooling, the previous layer's activation derivative after a pooling gradient) is computed by
the writing thread before it writes.
"""
from __future__ import annotations

from ..codegen import Kernel, KernelBuilder, broadcast_strides, elemwise_statements
from ..cprint import CTYPES
from ..fuse import Group
from ..layout import c_strides
from ..ops.pool import AveragePoolGrad, MaxPoolGrad, MaxPoolGradGrad, Pool
from .common import BLOCK, grid_for, loop_index_type, size, span


def lower(group: Group, kb: KernelBuilder) -> list[Kernel]:
    main = group.main
    op = main.op
    if group.prologue or group.body:
        raise NotImplementedError(f"pool groups take no prologue/body: {group}")
    x = main.inputs[0]
    in_shape, out_shape = tuple(x.type.shape), tuple(op.out_shape(x))
    if isinstance(op, Pool):
        direction, mode, roles = "forward", op.mode, {"x": x}
    elif isinstance(op, MaxPoolGradGrad):
        direction, mode, roles = "forward", "maxsel", {"x": x, "m": main.inputs[1], "g": main.inputs[2]}
    elif isinstance(op, MaxPoolGrad):
        direction, mode, roles = "backward", "max", {"x": x, "m": main.inputs[1], "g": main.inputs[2]}
    elif isinstance(op, AveragePoolGrad):
        direction, mode, roles = "backward", op.mode, {"g": main.inputs[1]}   # x: only its shape
    else:
        raise NotImplementedError(f"the pool family cannot lower {op}")
    shape = out_shape if direction == "forward" else in_shape
    assert tuple(main.type.shape) == shape, (main, shape)
    n = size(shape)
    if n == 0:
        return []
    lead = list(shape[:-2])

    operands, spans = {}, []
    for role, var in roles.items():
        lay = kb.layout(var)
        strides = tuple(lay.strides) if lay.shape else (0,) * len(shape)
        operands[role] = {"param": kb.pointer(var), "ctype": CTYPES[var.dtype], "var": role,
                          "lead": list(strides[:-2]), "sr": strides[-2], "sc": strides[-1]}
        spans.append(span(lay.shape, lay.strides))

    # -- epilogue: elementwise code over the result's shape, run by the writing thread --
    names: dict = {id(main): "res", "index": "i"}
    members = {id(v) for v in group.nodes}
    epi_inputs = []
    for var in group.inputs:
        if not any(any(i is var for i in e.inputs) for e in group.epilogue):
            continue
        lay = kb.layout(var)
        if len(lay.shape) not in (0, len(shape)):
            raise NotImplementedError(f"pool epilogue operand {var} of rank {len(lay.shape)} over {shape}")
        strides = broadcast_strides(lay, shape) if lay.shape else (0,) * len(shape)
        name = f"y{len(epi_inputs)}"
        names[id(var)] = name
        epi_inputs.append({"param": kb.pointer(var), "var": name, "ctype": CTYPES[var.dtype],
                           "contiguous": tuple(strides) == c_strides(shape), "dims": list(shape),
                           "strides": list(strides)})
        spans.append(span(shape, strides))
    epilogue = elemwise_statements(group.epilogue, names, "e")
    outputs = [{"param": kb.pointer(o, write=True, prefix="out"), "value": names[id(o)]} for o in group.outputs]
    assert all(id(o) in members for o in group.outputs)

    (ws0, ws1), (st0, st1), (pad0, pad1) = op.ws, op.stride, op.pad
    return [kb.kernel("pool.cu.j2", grid_for(n), BLOCK, direction=direction, mode=mode,
                      val_t=CTYPES[main.dtype], dtype=main.dtype, n=n, index_t=loop_index_type(n, *spans),
                      lead=lead, H=in_shape[-2], W=in_shape[-1], PH=out_shape[-2], PW=out_shape[-1],
                      ws0=ws0, ws1=ws1, st0=st0, st1=st1, pad0=pad0, pad1=pad1,
                      operands=operands, epi_inputs=epi_inputs, epilogue=epilogue, outputs=outputs)]

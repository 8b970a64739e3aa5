"""Lowering of fused elementwise groups (and strided reshape copies) to elemwise.cu.j2."""
from __future__ import annotations

from ..codegen import Kernel, KernelBuilder, broadcast_strides, elemwise_statements
from ..cprint import CTYPES
from ..fuse import Group
from ..layout import c_strides
from ..ops.random import RandomDraw
from ..ops.shape import Arange, Reshape
from .common import BLOCK, grid_for, loop_index_type, size, span


def lower(group: Group, kb: KernelBuilder) -> list[Kernel]:
    shape = group.outputs[0].type.shape
    assert all(o.type.shape == shape for o in group.outputs), group
    n = size(shape)
    members = {id(v) for v in group.body}
    names: dict = {}
    inputs = []
    for k, var in enumerate(group.inputs):
        lay = kb.layout(var)
        param = kb.pointer(var)
        readers = [m for m in group.body if any(i is var for i in m.inputs)]
        if any(isinstance(m.op, RandomDraw) for m in readers):
            names[("state", id(var))] = param      # a random state: draws read its two words
            if all(isinstance(m.op, RandomDraw) for m in readers):
                continue
        if any(isinstance(m.op, Reshape) for m in readers):
            dims, strides = lay.shape, lay.strides       # a reshape copy reads in its source's order
        else:
            dims = shape
            strides = broadcast_strides(lay, shape) if lay.shape else (0,) * len(shape)
        contiguous = tuple(dims) == tuple(shape) and tuple(strides) == c_strides(shape) if shape else True
        if not shape:
            contiguous = True
        var_name = f"v{k}"
        names[id(var)] = var_name
        inputs.append({"param": param, "var": var_name, "ctype": CTYPES[var.dtype], "contiguous": contiguous,
                       "dims": list(dims), "strides": list(strides)})
    names["index"] = names["flat"] = "i"
    compute = [m for m in group.body if not isinstance(m.op, Reshape)]
    for m in group.body:
        if isinstance(m.op, Reshape):
            names[id(m)] = names[id(m.inputs[0])]
    body = elemwise_statements(compute, names, "e")
    outputs = [{"param": kb.pointer(o, write=True, prefix="out"), "value": names[id(o)]} for o in group.outputs]
    vec = (n >= 4 and all(i["contiguous"] for i in inputs)
           and all(v.dtype == "float32" for v in list(group.inputs) + list(group.outputs))
           and not any(isinstance(m.op, (Arange, RandomDraw)) for m in group.body))
    assert not members - {id(m) for m in group.body}
    # a strided (non-contiguous) input computes offsets up to its span, which may pass n
    spans = [span(i["dims"], i["strides"]) for i in inputs if not i["contiguous"]]
    return [kb.kernel("elemwise.cu.j2", grid_for(n), BLOCK, n=n, index_t=loop_index_type(n, *spans),
                      dims=list(shape), inputs=inputs, body=body, outputs=outputs, vec=vec)]

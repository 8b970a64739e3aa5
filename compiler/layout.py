"""Memory layouts: how each value of a specialized graph sits in memory.

A value is either *materialized* (a leaf, a constant, or a kernel's result: one C-contiguous
block of its own) or a *view* of another value's block: dimshuffles, broadcasting allocs,
basic slicing and indexing, and reshapes of contiguous data only change (shape, strides,
offset). Kernels read views through strides, so none of these ops costs a copy. A slice
with a runtime start (a minibatch) has a runtime offset: ``dyn`` lists (scalar leaf,
coefficient) terms the host adds to the static offset at launch.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from .graph import Variable, toposort
from .grad import DisconnectedGrad
from .ops.args import Adv, Arg, DSlice, Slice
from .ops.shape import Alloc, DimShuffle, Reshape
from .ops.index import Subtensor


def c_strides(shape: Sequence[int]) -> tuple:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= max(d, 1)
    return tuple(reversed(strides))


@dataclasses.dataclass(frozen=True)
class Layout:
    base: Variable                 # the materialized value whose memory this reads
    shape: tuple
    strides: tuple                 # in elements; 0 along broadcast dims
    offset: int = 0                # static element offset
    dyn: tuple = ()                # ((scalar leaf, coefficient), ...) runtime offset terms

    @property
    def contiguous(self) -> bool:
        want = c_strides(self.shape)
        return all(s == w for s, w, d in zip(self.strides, want, self.shape) if d != 1)

    @property
    def dense(self) -> bool:
        """Contiguous and starting at its base (the whole base, read as-is)."""
        return self.contiguous and self.offset == 0 and not self.dyn


def materialized(v: Variable) -> Layout:
    return Layout(v, v.type.shape, c_strides(v.type.shape))


def view_layout(v: Variable, src: Layout) -> Layout | None:
    """The layout of view node ``v`` over its source's layout, or None when ``v`` cannot be a
    view (a reshape of non-contiguous data, an advanced index) and needs a kernel."""
    op = v.op
    if isinstance(op, DisconnectedGrad):
        return src
    if isinstance(op, DimShuffle):
        return dataclasses.replace(src, shape=v.type.shape,
                                   strides=tuple(0 if a == "x" else src.strides[a] for a in op.order))
    if isinstance(op, Alloc):
        lead = len(v.type.shape) - len(src.shape)
        strides = [0] * lead + [0 if (s == 1 and d != 1) else st
                                for s, d, st in zip(src.shape, v.type.shape[lead:], src.strides)]
        return dataclasses.replace(src, shape=v.type.shape, strides=tuple(strides))
    if isinstance(op, Reshape):
        if not src.contiguous:
            return None
        return dataclasses.replace(src, shape=v.type.shape, strides=c_strides(v.type.shape))
    if isinstance(op, Subtensor):
        if any(isinstance(e, Adv) for e in op.entries):
            return None
        x = v.inputs[0]
        shape, strides, offset, dyn = [], [], src.offset, list(src.dyn)
        for axis, e in enumerate(op.entries):
            n, st = x.type.shape[axis], src.strides[axis]
            if isinstance(e, int):
                offset += (e % n) * st
            elif isinstance(e, Arg):       # runtime index, already normalized to [0, n)
                dyn.append((v.inputs[e.k], st))
            elif isinstance(e, DSlice):    # runtime start, static length
                dyn.append((v.inputs[e.k], st))
                shape.append(e.length)
                strides.append(st * e.step)
            elif isinstance(e, Slice):
                start, stop, step = slice(e.start, e.stop, e.step).indices(n)
                length = len(range(start, stop, step))
                offset += start * st if length else 0
                shape.append(length)
                strides.append(st * step)
        shape += list(src.shape[len(op.entries):])
        strides += list(src.strides[len(op.entries):])
        return Layout(src.base, tuple(shape), tuple(strides), offset, tuple(dyn))
    return None


_VIEW_OPS = (DisconnectedGrad, DimShuffle, Alloc, Reshape, Subtensor)


def layouts(outputs: Sequence[Variable]) -> dict:
    """id(var) -> Layout for every value; views resolve to their base's memory."""
    out: dict[int, Layout] = {}
    for v in toposort(outputs):
        if not v.is_leaf and isinstance(v.op, _VIEW_OPS):
            lay = view_layout(v, out[id(v.inputs[0])])
            if lay is not None:
                out[id(v)] = lay
                continue
        out[id(v)] = materialized(v)
    return out


def is_view(v: Variable, lays: dict) -> bool:
    return not v.is_leaf and lays[id(v)].base is not v

"""Schedule: fused groups -> buffers, an arena plan by liveness, and the ordered launches.

Every materialized value gets a buffer: inputs, shared variables and constants are external;
results the function returns (outputs and update values) get buffers of their own; every
other result lives in one arena at an offset, reused once the value is dead (first fit over
the execution order). Kernel parameters point at a buffer plus an element offset, static or
plus runtime terms (a minibatch start), which the runtime adds at launch.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from .graph import Variable, toposort
from .layout import Layout
from .program import Buffer, Ref
from .fuse import Group

ALIGN = 256  # bytes: every arena block starts 256-byte aligned (128-bit vector loads, coalescing)


@dataclasses.dataclass
class Plan:
    buffers: list[Buffer]
    buffer_of: dict      # id(materialized var) -> buffer index
    scalar_slot: dict    # id(runtime scalar leaf) -> slot
    arena_bytes: int
    naive_bytes: int     # what the temps would take without reuse (for the report)


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def plan_buffers(groups: Sequence[Group], lays: dict, inputs: Sequence[Variable], shared: Sequence[Variable],
                 scalars: Sequence[Variable], outputs: Sequence[Variable]) -> Plan:
    buffers: list[Buffer] = []
    buffer_of: dict[int, int] = {}

    def add(var: Variable, kind: str, slot: int = -1, arena_offset: int = -1) -> None:
        buffer_of[id(var)] = len(buffers)
        buffers.append(Buffer(len(buffers), kind, var.dtype, _size(var.type.shape), slot, arena_offset))

    for k, v in enumerate(inputs):
        add(v, "input", k)
    for k, v in enumerate(shared):
        add(v, "shared", k)
    consts = [v for v in toposort(outputs) if v.is_constant]
    for k, v in enumerate(consts):
        add(v, "const", k)
    scalar_slot = {id(v): k for k, v in enumerate(scalars)}

    out_ids = {id(o) for o in outputs}
    # liveness of each group result in group steps, through views
    produced = {}
    for step, g in enumerate(groups):
        for v in g.outputs:
            produced[id(v)] = (step, v)
    last_use: dict[int, int] = {}
    for step, g in enumerate(groups):
        for i in g.inputs:
            base = lays[id(i)].base
            if id(base) in produced:
                last_use[id(base)] = max(last_use.get(id(base), -1), step)
    for k, o in enumerate(outputs):
        base = lays[id(o)].base
        if id(base) in produced and id(base) not in buffer_of and id(o) == id(base):
            add(base, "output", k)

    # first-fit arena allocation in execution order
    live: list[tuple[int, int, int]] = []  # (offset, nbytes, dies_after_step)
    arena, naive = 0, 0
    for step, g in enumerate(groups):
        live = [blk for blk in live if blk[2] >= step]
        for v in g.outputs:
            if id(v) in buffer_of:
                continue
            nbytes = _size(v.type.shape) * _itemsize(v.dtype)
            nbytes = max(ALIGN, (nbytes + ALIGN - 1) // ALIGN * ALIGN)
            naive += nbytes
            dies = last_use.get(id(v), step)
            if id(v) in out_ids or any(lays[id(o)].base is v for o in outputs):
                dies = len(groups)  # read back after the last launch
            offset = _first_fit(live, nbytes)
            live.append((offset, nbytes, dies))
            arena = max(arena, offset + nbytes)
            add(v, "temp", -1, offset)
    return Plan(buffers, buffer_of, scalar_slot, arena, naive)


def _first_fit(live, nbytes: int) -> int:
    offset = 0
    for start, size, _ in sorted(live):
        if offset + nbytes <= start:
            return offset
        offset = max(offset, start + size)
    return offset


def _itemsize(dtype: str) -> int:
    import numpy as np
    return np.dtype(dtype).itemsize


def ref_of(layout: Layout, plan: Plan) -> Ref:
    return Ref(plan.buffer_of[id(layout.base)], layout.offset,
               tuple((plan.scalar_slot[id(s)], coef) for s, coef in layout.dyn))

"""Schedule: fused groups -> buffers, an arena plan by liveness, and the ordered launches.

Every materialized value gets a buffer: inputs, shared variables and constants are external;
results the function returns (outputs and update values) get buffers of their own; every
other result lives in one arena at an offset, reused once the value is dead (first fit over
the execution order). Kernel parameters point at a buffer plus an element offset, static or
plus runtime terms (a minibatch start), which the runtime adds at launch.

Updates in place. The kernel computing a shared variable's new value writes it straight into
the variable's buffer when nothing can see the difference (``inplace_updates``): no later
kernel and no output reads the old value, the writing kernel reads it only at the element it
writes (W - lr * gW in an elementwise body or a gemm/reduce/softmax epilogue; never in a gemm's
or reduction's main loop, where other threads still read elements being written), and no kernel
from this one on can report bad input (earlier reports stop it: such kernels are guarded by the
status word, see codegen.KernelBuilder.pointer). Any other update is computed into a buffer of
its own and copied into the variable's after the step, once the status word is known clean.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from .graph import Variable, toposort
from .layout import Layout
from .program import Buffer, Ref
from .fuse import Group
from .ops.nnet import CrossentropySoftmaxInt, CrossentropySoftmaxIntGrad

ALIGN = 256  # bytes: every arena block starts 256-byte aligned (128-bit vector loads, coalescing)


@dataclasses.dataclass
class Plan:
    buffers: list[Buffer]
    buffer_of: dict      # id(materialized var) -> buffer index
    scalar_slot: dict    # id(runtime scalar leaf) -> slot
    arena_bytes: int
    naive_bytes: int     # what the temps would take without reuse (for the report)
    inplace: frozenset = frozenset()   # leaf buffers some kernel updates in place


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def plan_buffers(groups: Sequence[Group], lays: dict, inputs: Sequence[Variable], shared: Sequence[Variable],
                 scalars: Sequence[Variable], outputs: Sequence[Variable], n_updates: int = 0,
                 update_targets: Sequence[int] = ()) -> Plan:
    """``outputs``: the function outputs, then ``n_updates`` update values; ``update_targets[k]``
    is the index (among ``inputs + shared``) of the leaf update k writes."""
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

    leaves = list(inputs) + list(shared)
    inplace = inplace_updates(groups, lays, leaves, outputs, n_updates, update_targets)
    for value_id, target in inplace.items():
        buffer_of[value_id] = buffer_of[id(leaves[target])]

    out_ids = {id(o) for o in outputs}
    read_back = {id(lays[id(o)].base) for o in outputs}   # values the outputs are (views of)
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
            if id(v) in out_ids or id(v) in read_back:
                dies = len(groups)  # read back after the last launch
            offset = _first_fit(live, nbytes)
            live.append((offset, nbytes, dies))
            arena = max(arena, offset + nbytes)
            add(v, "temp", -1, offset)
    return Plan(buffers, buffer_of, scalar_slot, arena, naive,
                frozenset(buffer_of[id(leaves[t])] for t in inplace.values()))


def inplace_updates(groups: Sequence[Group], lays: dict, leaves: Sequence[Variable], outputs: Sequence[Variable],
                    n_updates: int, update_targets: Sequence[int]) -> dict:
    """id(update value) -> leaf index, for the updates its kernel may write in place (see the
    module docstring for the rules)."""
    n_out = len(outputs) - n_updates
    step_of = {id(n): i for i, g in enumerate(groups) for n in g.nodes}
    last_report = max((i for i, g in enumerate(groups) if _may_report(g)), default=-1)
    reads: dict[int, list] = {}   # id(leaf) -> [(step, node, input read)], through views
    for i, g in enumerate(groups):
        for n in g.nodes:
            for x in n.inputs:
                base = lays[id(x)].base
                if base.is_leaf:
                    reads.setdefault(id(base), []).append((i, n, x))
    read_after = {id(lays[id(o)].base) for o in outputs}   # values the caller reads after the step
    chosen = {}
    for k, target in enumerate(update_targets):
        value, leaf = outputs[n_out + k], leaves[target]
        step = step_of.get(id(value))
        if step is None or lays[id(value)].base is not value:
            continue   # a leaf, a constant or a view: copied after the step
        g = groups[step]
        if sum(o is value for o in outputs) != 1 or id(leaf) in read_after or step <= last_report \
                or g.family not in ("elemwise", "gemm", "reduce", "softmax", "conv") \
                or value.type.shape != leaf.type.shape or value.dtype != leaf.dtype:
            continue
        same_element = {id(n) for n in g.body + g.epilogue if n.type.shape == leaf.type.shape}
        if all(i < step or (i == step and x is leaf and id(n) in same_element)
               for i, n, x in reads.get(id(leaf), [])):
            chosen[id(value)] = target
    return chosen


def _may_report(g: Group) -> bool:
    """Can this group's kernels report bad input in the status word (an index out of range)?"""
    return g.family in ("gather", "scatter", "scan", "check") or (
        g.main is not None and isinstance(g.main.op, (CrossentropySoftmaxInt, CrossentropySoftmaxIntGrad)))


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

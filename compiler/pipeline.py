"""The compile pipeline after rewriting: a specialized, optimized graph to a Program.

    layout    which values are views (read through strides, never copied)
    fuse      kernel groups: elementwise regions, prologues and epilogues
    schedule  a buffer for every materialized value; temporaries share an arena by liveness
    codegen   each group lowered to CUDA C by its family's template (compiler/lowering/)

Specialization and the rewrite passes run before (compiler.function); the Program that comes
out is data (compiler.program) that any executor runs and that saves without pickle.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .fuse import fuse, replicate_draws
from .graph import Variable, toposort
from .layout import layouts
from .lowering import lower_group
from .program import IOSpec, Kernel, Loop, OutputSpec, Program
from .schedule import plan_buffers, ref_of


def _unique_names(leaves: Sequence[Variable]) -> list[str]:
    """Leaf names for the manifest and the saved state: the variable's name, made unique."""
    names, seen = [], set()
    for k, v in enumerate(leaves):
        name = v.name or f"leaf{k}"
        while name in seen:
            name = f"{name}_{k}"
        seen.add(name)
        names.append(name)
    return names


def _check_lowerable(outputs: Sequence[Variable]) -> None:
    """Loops the kernel backends cannot run (yet) are refused here, by name, before any stage:
    a scan needs its length when it is compiled (the function is specialized on it)."""
    from .errors import BackendError, describe
    for node in toposort(outputs):
        if node.op is not None and node.op.family == "scan":
            if node.op.until:
                raise BackendError(f"{node.op} ({describe(node)}) stops on a condition (until): its length "
                                   "depends on the data, which only backend='reference' runs for now")
            if not node.type.is_concrete:
                raise BackendError(f"{node.op} ({describe(node)}) has a length or step shapes unknown when the "
                                   "function is compiled: the kernel backends cannot run it")


def _contiguous(shape, strides) -> bool:
    acc = 1
    for d, s in zip(reversed(tuple(shape)), reversed(tuple(strides))):
        if d != 1 and s != acc:
            return False
        acc *= d
    return True


def _dense_loop_inputs(outputs: list) -> list:
    """A loop binds its step to rows of its inputs: a value it reads through a view that is not
    row-contiguous (a broadcast initial state, a transposed sequence) is copied first."""
    from .ops import scalar as S
    from .ops.elemwise import Elemwise
    lays = layouts(outputs)
    memo: dict = {}
    changed = False
    for node in toposort(outputs):   # one pass in order, so loops feeding loops see the copies
        if node.is_leaf:
            memo[id(node)] = node
            continue
        new = [memo[id(i)] for i in node.inputs]
        if node.op.family == "scan":
            for k, v in enumerate(node.inputs[1:], 1):
                lay = lays[id(v)]
                rows = k - 1 < node.op.n_seqs
                shape, strides = (lay.shape[1:], lay.strides[1:]) if rows else (lay.shape, lay.strides)
                if not v.is_leaf and not _contiguous(shape, strides):
                    new[k] = Elemwise(S.symbols(1)[0], v.dtype, 1, "copy")(new[k])
        if any(a is not b for a, b in zip(new, node.inputs)):
            memo[id(node)] = node.op.rebuild(new, None)
            changed = True
        else:
            memo[id(node)] = node
    return [memo[id(o)] for o in outputs] if changed else outputs


def _lower_loop(g, plan, lays, guard: bool = False, debug: bool = False) -> Loop:
    """The Loop of a scan group: its step compiled as a Program of its own, its bindings to the
    outer buffers (rows of sequences and stacked outputs)."""
    from .errors import BackendError, describe
    from .layout import c_strides
    op, inputs = g.main.op, g.main.inputs
    n_seqs, n_states = op.n_seqs, op.n_states
    outer = inputs[1:]
    from .rewrite import optimize
    from .specialize import DynamicPlan
    step_outputs = optimize(list(op.inner_outputs), "fast_run")
    if not DynamicPlan(step_outputs).empty:
        raise BackendError(f"{op}: its step indexes or slices with values it computes or reads per step "
                           "(x[i] with i a sequence element, say); the kernel backends cannot run such a step "
                           "yet: compile this function with backend='reference'")
    step = build_program(step_outputs, list(op.inner_inputs), [], guard=guard, debug=debug)

    def dense(v: Variable, rows: bool):
        lay = lays[id(v)]
        inner = tuple(lay.shape[1:]) if rows else tuple(lay.shape)
        strides = tuple(lay.strides[1:]) if rows else tuple(lay.strides)
        if not _contiguous(inner, strides):   # _dense_loop_inputs copied these: a theta bug
            raise BackendError(f"{op}: {describe(v)} is read through a strided view the loop cannot bind a "
                               "step to (rows must be contiguous)")
        return ref_of(lay, plan), (lay.strides[0] if rows else 0)

    n_steps = int(inputs[0].data)
    seqs = []
    for v in outer[:n_seqs]:
        if v.type.shape[0] < n_steps:
            from .errors import ShapeError
            raise ShapeError(f"{op}: {describe(v)} has {v.type.shape[0]} rows, fewer than the loop's {n_steps} steps")
        seqs.append(dense(v, True) + (v.type.shape[0],))
    initial = [dense(v, False)[0] for v in outer[n_seqs:n_seqs + n_states]]
    nonseqs = [dense(v, False)[0] for v in outer[n_seqs + n_states:]]
    by_index = {n.op.index: n for n in g.nodes}
    outputs = []
    for k, o in enumerate(op.inner_outputs):
        node = by_index.get(k)
        row = int(np.prod(o.type.shape)) if o.type.shape else 1
        if node is not None and id(lays[id(node)].base) in plan.buffer_of:
            outputs.append((ref_of(lays[id(node)], plan), row))
        else:
            outputs.append((None, row))   # not read outside: the executor gives it scratch rows
    return Loop(step, n_steps, op.go_backwards, seqs, initial, nonseqs, outputs, n_states)


def build_program(outputs: Sequence[Variable], leaves: Sequence[Variable], scalars: Sequence[Variable],
                  n_updates: int = 0, update_targets: Sequence[int] = (), guard: bool = False,
                  n_inputs: int | None = None, debug: bool = False) -> Program:
    """Lower a specialized, rewritten graph to a Program: fuse -> plan buffers -> lower groups.
    ``guard``: record what the NaN guard needs (compiler.guard) in ``Program.guard``, where the
    first ``n_inputs`` leaves are named inputs and the others shared variables. ``debug``
    (DebugMode): record the same, for the executor to check every kernel against the reference."""
    outputs, lays, groups = fused_groups(outputs)
    plan = plan_buffers(groups, lays, list(leaves), [], list(scalars), outputs, n_updates, update_targets)
    kernels: list[Kernel] = []
    loops: list[Loop] = []
    schedule: list = []
    lowered: list = []   # (group, [(kernel index, kernel)]) for the NaN guard
    for g in groups:
        if g.family == "scan":
            schedule.append(("loop", len(loops)))
            loops.append(_lower_loop(g, plan, lays, guard, debug))
            continue
        # status code k+1 names kernel k (the group's first) when a kernel reports bad input
        new = lower_group(g, f"theta_k{len(kernels)}_{g.family}", plan, lays, code=len(kernels) + 1)
        schedule += [("kernel", len(kernels) + i) for i in range(len(new))]
        lowered.append((g, [(len(kernels) + i, k) for i, k in enumerate(new)]))
        kernels += new
    consts = [v for v in toposort(outputs) if v.is_constant]
    out_specs = []
    for o in outputs:
        lay = lays[id(o)]
        out_specs.append(OutputSpec(o.dtype, o.type.shape, lay.strides, ref_of(lay, plan)))
    program = Program(kernels, plan.buffers, plan.arena_bytes, plan.naive_bytes,
                   [IOSpec(name, v.dtype, v.type.shape) for name, v in zip(_unique_names(leaves), leaves)],
                   [v.name or f"scalar{k}" for k, v in enumerate(scalars)], out_specs,
                   [np.asarray(c.data) for c in consts], n_updates, list(update_targets),
                   loops=loops, schedule=schedule if loops else [])
    program.origins = [tuple(g.nodes) for g, ks in lowered for _ in ks]   # kernel -> its group's nodes
    if guard or debug:
        from .guard import program_guard
        program.guard = program_guard(lowered, plan, lays, list(leaves), n_inputs, nan=bool(guard), debug=debug)
    return program


def fused_groups(outputs: Sequence[Variable]) -> tuple:
    """(outputs, layouts, kernel groups) of a specialized, rewritten graph: the stages before
    buffer planning (theta.printing.pydotprint draws the groups)."""
    outputs = list(outputs)
    _check_lowerable(outputs)
    outputs = _dense_loop_inputs(outputs)
    outputs = replicate_draws(outputs)     # each kernel recomputes the random numbers it reads
    lays = layouts(outputs)
    return outputs, lays, fuse(outputs, lays)

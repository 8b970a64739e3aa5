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

from .fuse import fuse
from .graph import Variable, toposort
from .layout import layouts
from .lowering import lower_group
from .program import IOSpec, Kernel, OutputSpec, Program
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
    """Ops the kernel backends cannot run yet are refused here, by name, before any stage."""
    from .errors import BackendError, describe
    for node in toposort(outputs):
        if node.op is not None and node.op.family == "scan":
            raise BackendError(f"the kernel backends cannot run {node.op} ({describe(node)}) yet: scans run "
                               "on backend='reference' for now")


def build_program(outputs: Sequence[Variable], leaves: Sequence[Variable], scalars: Sequence[Variable],
                  n_updates: int = 0, update_targets: Sequence[int] = ()) -> Program:
    """Lower a specialized, rewritten graph to a Program: fuse -> plan buffers -> lower groups."""
    outputs = list(outputs)
    _check_lowerable(outputs)
    lays = layouts(outputs)
    groups = fuse(outputs, lays)
    plan = plan_buffers(groups, lays, list(leaves), [], list(scalars), outputs, n_updates, update_targets)
    kernels: list[Kernel] = []
    for g in groups:
        # status code k+1 names kernel k (the group's first) when a kernel reports bad input
        kernels += lower_group(g, f"theta_k{len(kernels)}_{g.family}", plan, lays, code=len(kernels) + 1)
    consts = [v for v in toposort(outputs) if v.is_constant]
    out_specs = []
    for o in outputs:
        lay = lays[id(o)]
        out_specs.append(OutputSpec(o.dtype, o.type.shape, lay.strides, ref_of(lay, plan)))
    return Program(kernels, plan.buffers, plan.arena_bytes, plan.naive_bytes,
                   [IOSpec(name, v.dtype, v.type.shape) for name, v in zip(_unique_names(leaves), leaves)],
                   [v.name or f"scalar{k}" for k, v in enumerate(scalars)], out_specs,
                   [np.asarray(c.data) for c in consts], n_updates, list(update_targets))

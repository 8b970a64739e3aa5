"""What the NaN guard needs to know about each kernel of a Program (compiled with nan_guard=True).

A kernel is a fused group of graph nodes; when it writes a NaN or an infinity the runtime must
name the op and the user's line that created it, which a Program (data: sources, bindings)
does not know. ``kernel_guards`` records, per kernel group, the group's nodes in order and where
its inputs and outputs sit in the Program's buffers (as OutputSpecs the executor can read back).
This lives only in the in-memory Program (``Program.guard``), never in a saved one: a loaded
program has no graph to name.

The runtime side (runtime/nan_guard.py) snapshots a group's inputs before its first kernel,
checks its outputs after its last, and, when one is not finite, re-runs the group's nodes with
NumPy on the snapshot to find the first op that produced it.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .errors import describe
from .graph import Variable
from .program import OutputSpec


@dataclasses.dataclass(frozen=True)
class GuardValue:
    """A value a kernel group reads or writes: the variable, and where the executor finds it
    (``spec``; None for a constant inlined in the source: ``var.data`` holds it)."""
    var: Variable
    spec: OutputSpec | None

    @property
    def what(self) -> str:
        return describe(self.var)


@dataclasses.dataclass(frozen=True)
class KernelGuard:
    """The guard of one kernel group: ``first``/``last`` are the indices of its first and last
    kernel in ``Program.kernels`` (a split reduction is two kernels)."""
    first: int
    last: int
    names: tuple            # the group's kernel names
    nodes: tuple            # the group's graph nodes in execution order
    inputs: tuple           # GuardValue of each value read from memory
    outputs: tuple          # GuardValue of each value written to memory
    # id(node) -> the C variable the kernel computes it into (elementwise nodes; see c_names)
    c_names: tuple = ()


@dataclasses.dataclass(frozen=True)
class ProgramGuard:
    """``Program.guard``: the kernel groups' guards, and each leaf described for messages (input
    or shared variable, its name, type and the user's line that declared it)."""
    kernels: tuple
    leaves: tuple
    nan: bool = True       # the NaN guard's checks (nan_guard=True, NanGuardMode)
    debug: bool = False    # DebugMode's: each kernel group's outputs against the reference


def program_guard(groups_and_kernels: list, plan: Any, lays: dict, leaves: list,
                  n_inputs: int | None = None, nan: bool = True, debug: bool = False) -> ProgramGuard:
    n_inputs = len(leaves) if n_inputs is None else n_inputs
    kinds = ["input" if k < n_inputs else "shared variable" for k in range(len(leaves))]
    return ProgramGuard(tuple(kernel_guards(groups_and_kernels, plan, lays)),
                        tuple(f"{kind} {describe(v)}" for kind, v in zip(kinds, leaves)), nan=nan, debug=debug)


def kernel_guards(groups_and_kernels: list, plan: Any, lays: dict) -> list[KernelGuard]:
    """One KernelGuard per (group, [its kernel indices]) with at least one kernel."""
    from .schedule import ref_of
    guards = []

    def where(v: Variable) -> GuardValue:
        if v.is_constant:
            return GuardValue(v, None)
        lay = lays.get(id(v))
        try:
            spec = OutputSpec(v.dtype, tuple(v.type.shape), tuple(lay.strides), ref_of(lay, plan))
        except (KeyError, AttributeError, TypeError):   # not in any buffer the executor can read
            spec = None
        return GuardValue(v, spec)

    for group, indices in groups_and_kernels:
        if not indices:
            continue
        names = tuple(k.name for _, k in indices)
        guards.append(KernelGuard(indices[0][0], indices[-1][0], names, tuple(group.nodes),
                                  tuple(where(v) for v in group.inputs), tuple(where(v) for v in group.outputs),
                                  tuple(c_names(group).items())))
    return guards


# where each family's lowering prints its elementwise nodes (compiler/lowering/*.py call
# codegen.elemwise_statements with these lists and prefixes: node k is "<prefix><k>")
_STATEMENT_LISTS = {"elemwise": (("body", "e"),), "reduce": (("prologue", "q"), ("epilogue", "e")),
                    "softmax": (("epilogue", "ep"),)}


def c_names(group) -> dict:
    """id(node) -> the name of the C variable the group's kernel computes that elementwise node
    into, as the lowerings name them; used to quote the generated line in DebugMode's errors
    (a best effort: a name that is not in the source is simply not quoted)."""
    from .ops.shape import Reshape
    out = {}
    for attr, prefix in _STATEMENT_LISTS.get(group.family, (("epilogue", "e"),)):
        nodes = [n for n in getattr(group, attr, []) if not isinstance(n.op, Reshape)]
        for k, n in enumerate(nodes):
            out[id(n)] = f"{prefix}{k}"
    return out

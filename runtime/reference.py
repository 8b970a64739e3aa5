"""The reference backend: executes a graph node by node with each op's NumPy ``perform``.

This is the oracle every other backend is tested against, and the CPU fallback. It honours
dtypes exactly (float32 stays float32; float sums accumulate in float64) and frees each
intermediate after its last use.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..compiler.errors import ThetaError, describe
from ..compiler.graph import Variable, clients, toposort


class ReferenceProgram:
    """A compiled-for-numpy graph: ``run(leaf_values) -> output values``."""

    backend = "reference"

    def __init__(self, outputs: Sequence[Variable], nan_guard: bool = False, debug: bool = False) -> None:
        self.outputs = list(outputs)
        # check every float result for NaN/Inf as it is computed (runtime/nan_guard.py)
        self.nan_guard = nan_guard
        # DebugMode: check every op's result against the type its rule promised (check_type)
        self.debug = debug
        self.order = [n for n in toposort(self.outputs) if not n.is_leaf]
        users = clients(self.order)
        keep = {id(o) for o in self.outputs}
        # after running step i, these values are dead
        position = {id(n): i for i, n in enumerate(self.order)}
        self._free_after: list[list[int]] = [[] for _ in self.order]
        for node in toposort(self.outputs):
            if id(node) in keep or node.is_leaf:
                continue
            last = max((position[id(u)] for u in users.get(id(node), [])), default=None)
            if last is not None:
                self._free_after[last].append(id(node))

    @property
    def n_nodes(self) -> int:
        return len(self.order)

    def run(self, leaf_values: dict[int, np.ndarray]) -> list[np.ndarray]:
        values = {k: host_value(v) for k, v in leaf_values.items()}
        guard = self.nan_guard
        if guard:
            from . import nan_guard
            nan_guard.check_leaves([n for n in toposort(self.outputs) if n.is_leaf], values, leaf_values)
        for step, node in enumerate(self.order):
            args = []
            for i in node.inputs:
                v = values.get(id(i))
                if v is None:
                    v = i.data if i.is_constant else None
                    if v is None:
                        raise ThetaError(f"no value for {describe(i)}")
                args.append(v)
            try:
                out = node.op.perform(*args)
            except ThetaError as e:
                raise type(e)(f"{e}\n  while computing {node.op} (from {describe(node)})") from e
            out = np.asarray(out)
            if self.debug:
                check_type(node, out)
            if out.dtype.name != node.dtype:
                out = out.astype(node.dtype)
            if node.type.is_concrete and out.shape != node.type.shape:
                raise ThetaError(f"{node.op} produced shape {out.shape}, its shape rule said {node.type.shape}")
            if guard:
                nan_guard.check_node(node, args, out)
            values[id(node)] = out
            for dead in self._free_after[step]:
                values.pop(dead, None)
        return [values[id(o)] if not o.is_constant else o.data for o in self.outputs]


def check_type(node: Variable, out: np.ndarray) -> None:
    """DebugMode on the reference backend: the value an op's ``perform`` returned must have the
    rank, the known dimensions and the kind of dtype (bool, integer, float, complex) of the
    type its shape/dtype rule gave the node (the precision may differ: a float32 sum
    accumulates in float64 and is rounded after)."""
    from ..compiler.errors import DebugModeError
    want = node.type
    problem = ""
    if out.ndim != len(want.shape):
        problem = f"rank {out.ndim} (shape {out.shape}), its type says rank {len(want.shape)}"
    elif any(d is not None and d != g for d, g in zip(want.shape, out.shape)):
        problem = f"shape {out.shape}, its type says {tuple(want.shape)}"
    else:
        kind, have = np.dtype(want.dtype).kind, out.dtype.kind
        same = {"b": "b", "i": "iu", "u": "iu", "f": "f", "c": "fc"}.get(kind, kind)
        if have not in same:
            problem = f"dtype {out.dtype.name}, its type says {want.dtype}"
    if problem:
        raise DebugModeError(f"DebugMode: {node.op} returned a value of {problem}\n  op: {describe(node)}")


def host_value(v):
    """A leaf's value as a host array (shared variables hand over their current value; device
    arrays are downloaded)."""
    if hasattr(v, "get_value"):
        return v.get_value(borrow=True)
    return v if isinstance(v, np.ndarray) else np.asarray(v)


def evaluate(outputs: Sequence[Variable], leaf_values: dict[Variable, np.ndarray]) -> list[np.ndarray]:
    """One-shot evaluation of ``outputs`` given values for their leaves (testing, prep scalars)."""
    return ReferenceProgram(outputs).run({id(k): np.asarray(v) for k, v in leaf_values.items()})

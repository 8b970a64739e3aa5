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

    def __init__(self, outputs: Sequence[Variable]) -> None:
        self.outputs = list(outputs)
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
            if out.dtype.name != node.dtype:
                out = out.astype(node.dtype)
            if node.type.is_concrete and out.shape != node.type.shape:
                raise ThetaError(f"{node.op} produced shape {out.shape}, its shape rule said {node.type.shape}")
            values[id(node)] = out
            for dead in self._free_after[step]:
                values.pop(dead, None)
        return [values[id(o)] if not o.is_constant else o.data for o in self.outputs]


def host_value(v):
    """A leaf's value as a host array (shared variables hand over their current value; device
    arrays are downloaded)."""
    if hasattr(v, "get_value"):
        return v.get_value(borrow=True)
    return v if isinstance(v, np.ndarray) else np.asarray(v)


def evaluate(outputs: Sequence[Variable], leaf_values: dict[Variable, np.ndarray]) -> list[np.ndarray]:
    """One-shot evaluation of ``outputs`` given values for their leaves (testing, prep scalars)."""
    return ReferenceProgram(outputs).run({id(k): np.asarray(v) for k, v in leaf_values.items()})

"""Specialization: from a graph with unknown dims to one with every shape concrete.

A compiled function is specialized per input shape signature (like a jit). Level 1 replaces
each input and shared variable by a leaf of concrete shape and re-runs every shape rule;
shape-derived scalars (``x.shape[0] * 2``) fold into constants on the way.

What remains symbolic after level 1 are parameters that depend on input *values*: the bounds
of ``data[i*bs:(i+1)*bs]``, an index ``x[i]``, a reshape to a dim given by an input. Level 2
handles them per call: their scalars are evaluated on the host (``prep``), a slice becomes a
``DSlice`` of static length whose start is a runtime scalar (so every minibatch of the same
size shares one compiled program, and only the partial last batch compiles another), and
value-dependent sizes (reshape/alloc/arange) become constants and part of the cache key.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import GraphError, IndexingError, SizeError, describe
from .graph import Variable, constant, rebuild, toposort
from .ops.args import Arg, DSlice, Slice
from .ops.index import IncSubtensor, Subtensor
from .ops.scan import Scan
from .ops.random import RandomDraw
from .ops.shape import Alloc, Arange, Reshape
from .types import TensorType


def concrete_leaves(leaves: Sequence[Variable], shapes: Sequence[tuple]) -> dict:
    out = {}
    for leaf, shape in zip(leaves, shapes):
        new = Variable(TensorType(leaf.dtype, tuple(shape)), name=leaf.name)
        new.trace = leaf.trace  # errors must point at the user's declaration, not at the call
        out[leaf] = new
    return out


def level1(outputs: Sequence[Variable], leaf_map: dict) -> list[Variable]:
    outs = rebuild(list(outputs), leaf_map)
    check_sizes(outs)
    return outs


# No tensor may need more bytes than this (1 TiB, beyond any host or GPU memory): such a graph
# is a mistake (T.zeros((n, n)) with n = 10**6), refused at once like NumPy's MemoryError
# instead of computing for hours (np.zeros maps untouched pages, so NumPy itself would not stop).
MAX_TENSOR_BYTES = 2 ** 40


def check_sizes(outputs: Sequence[Variable]) -> None:
    """SizeError naming the first variable whose concrete shape needs over MAX_TENSOR_BYTES."""
    for var in toposort(list(outputs)):
        shape = var.type.shape
        if None in shape:
            continue
        nbytes = int(np.prod([int(d) for d in shape], dtype=object)) * np.dtype(var.dtype).itemsize
        if nbytes > MAX_TENSOR_BYTES:
            raise SizeError(f"{describe(var)} needs {nbytes / 2 ** 40:.3g} TiB ({'x'.join(map(str, shape))} "
                            f"elements of {var.dtype}), more than any memory holds (limit "
                            f"{MAX_TENSOR_BYTES // 2 ** 30} GiB per tensor)")


def _index_ops(node: Variable) -> bool:
    return isinstance(node.op, (Subtensor, IncSubtensor))


def _static_ops(node: Variable) -> bool:
    return isinstance(node.op, (Reshape, Alloc, Arange, Scan, RandomDraw))


class DynamicPlan:
    """The value-dependent parameters of a level-1 graph and how to key and specialize them."""

    def __init__(self, outputs: Sequence[Variable]) -> None:
        self.index_nodes = []   # Subtensor/IncSubtensor with Args left
        self.static_vars = []   # scalars whose values fix a size (reshape/alloc/arange)
        scalars: dict[int, Variable] = {}
        for node in toposort(outputs):
            if node.op is None:
                continue
            if _index_ops(node) and _arg_ks(node.op.entries):
                self.index_nodes.append(node)
                for k in _arg_ks(node.op.entries):
                    scalars[id(node.inputs[k])] = node.inputs[k]
            elif _static_ops(node) and len(node.inputs) > (0 if isinstance(node.op, Arange) else 1):
                first = 0 if isinstance(node.op, Arange) else 1
                sizes = node.inputs[:1] if isinstance(node.op, Scan) else node.inputs[first:]   # a scan's n_steps
                for v in sizes:
                    if not v.is_constant:
                        scalars[id(v)] = v
                        self.static_vars.append(v)
        self.scalars = list(scalars.values())

    @property
    def empty(self) -> bool:
        return not self.scalars

    def key(self, values: dict[int, int]) -> tuple:
        parts = [values[id(v)] for v in self.static_vars]
        for node in self.index_nodes:
            x = node.inputs[0]
            for axis, e in enumerate(node.op.entries):
                if isinstance(e, Slice) and any(isinstance(v, Arg) for v in (e.start, e.stop, e.step)):
                    bounds = tuple(values[id(node.inputs[v.k])] if isinstance(v, Arg) else v
                                   for v in (e.start, e.stop, e.step))
                    n = x.type.shape[axis]
                    parts.append(len(range(*slice(*bounds).indices(n))) if n is not None else bounds)
        return tuple(parts)


def _arg_ks(entries) -> list[int]:
    ks = []
    for e in entries:
        if isinstance(e, Arg):
            ks.append(e.k)
        elif isinstance(e, Slice):
            ks.extend(v.k for v in (e.start, e.stop, e.step) if isinstance(v, Arg))
    return ks


class Level2Context:
    """Passed to ``op.rebuild`` during level-2 specialization: turns runtime index scalars into
    implicit int64 inputs whose values are computed on the host each call."""

    def __init__(self, values: dict[int, int]) -> None:
        self.values = values
        self.implicit: list[tuple[Variable, object]] = []  # (leaf, fn(values) -> int)

    def _value(self, var: Variable) -> int:
        if var.is_constant:
            return int(var.data)
        if id(var) in self.values:
            return self.values[id(var)]
        folded = _fold(var)   # rebuilt from sizes that were just made constants (rows - n_steps)
        if folded is None:
            raise GraphError(f"an index or slice bound depends on {describe(var)}, which theta cannot "
                             "evaluate before the call")
        return folded

    def _known(self, var: Variable) -> bool:
        """Is ``var``'s value fixed now (a constant, or a scalar of constants)?"""
        return var.is_constant or _fold(var) is not None

    def _implicit(self, fn, name: str) -> Variable:
        leaf = Variable(TensorType("int64", ()), name=name)
        self.implicit.append((leaf, fn))
        return leaf

    def specialize_index(self, entries: tuple, inputs: list, keep_first: int):
        x = inputs[0]
        inputs = list(inputs)
        out = []
        for axis, e in enumerate(entries):
            n = x.type.shape[axis]
            if isinstance(e, Arg):
                var = inputs[e.k]
                self._check_point(var, n, axis, x)
                if id(var) not in self.values and self._known(var):
                    fixed = self._value(var)
                    leaf = self._implicit(lambda values, v=fixed: v % n, f"index{axis}")
                else:
                    leaf = self._implicit(_point_fn(id(var), n, axis, x), f"index{axis}")
                inputs.append(leaf)
                out.append(Arg(len(inputs) - 1))
            elif isinstance(e, Slice) and any(isinstance(v, Arg) for v in (e.start, e.stop, e.step)):
                if isinstance(e.step, Arg):
                    raise IndexingError("a slice step must be a constant")
                # a bound known now (a constant, or rebuilt from constants) is a constant of the slice
                known = [isinstance(v, Arg) and id(inputs[v.k]) not in self.values and self._known(inputs[v.k])
                         for v in (e.start, e.stop)]
                ids = tuple(id(inputs[v.k]) if isinstance(v, Arg) and not k else None
                            for v, k in zip((e.start, e.stop), known))
                consts = tuple(self._value(inputs[v.k]) if k else (None if isinstance(v, Arg) else v)
                               for v, k in zip((e.start, e.stop), known))
                bounds = [self.values[i] if i is not None else c for i, c in zip(ids, consts)]
                start, stop, step = slice(bounds[0], bounds[1], e.step).indices(n)
                length = len(range(start, stop, step))
                leaf = self._implicit(_slice_fn(ids, consts, e.step, n), f"start{axis}")
                inputs.append(leaf)
                out.append(DSlice(len(inputs) - 1, length, step))
            else:
                out.append(e)
        return tuple(out), inputs

    def _check_point(self, var, n, axis, x):
        v = self._value(var)
        if not -n <= v < n:
            raise IndexingError(f"index {v} is out of bounds for axis {axis} of {describe(x)} (size {n})")


def _fold(var: Variable):
    """The int value of a scalar graph whose leaves are all constants, else None."""
    if var.ndim != 0 or any(v.is_leaf and not v.is_constant for v in toposort([var])):
        return None
    values: dict[int, np.ndarray] = {}
    for node in toposort([var]):
        values[id(node)] = node.data if node.is_constant else np.asarray(node.op.perform(*[values[id(i)] for i in node.inputs]))
    return int(values[id(var)])


def _point_fn(var_id: int, n: int, axis: int, x: Variable):
    def value(values: dict) -> int:
        v = values[var_id]
        if not -n <= v < n:
            raise IndexingError(f"index {v} is out of bounds for axis {axis} of {describe(x)} (size {n})")
        return v % n
    return value


def _slice_fn(ids, consts, step, n):
    def value(values: dict) -> int:
        b = [values[i] if i is not None else c for i, c in zip(ids, consts)]
        return slice(b[0], b[1], step).indices(n)[0]
    return value


def level2(outputs: Sequence[Variable], plan: DynamicPlan, values: dict[int, int]):
    """(outputs with value-dependent parameters specialized, implicit inputs)."""
    replace = {v: constant(np.int64(values[id(v)])) for v in plan.static_vars}
    ctx = Level2Context(values)
    outs = rebuild(list(outputs), replace, ctx)
    check_sizes(outs)
    return outs, ctx.implicit

"""The host-side values a level-2 specialization needs before each call, computed cheaply.

A ``DynamicPlan``'s scalars are of two kinds (see compiler.specialize):

- *direct*: a graph in which every value has a concrete shape, e.g. the slice bounds ``i*bs``
  and ``(i+1)*bs`` of a givens minibatch. Only evaluating tells their values, so they are
  evaluated every call, from just the leaves their graphs read (``i``: never the dataset or
  the weights).
- *derived*: a scalar that reads a value of value-dependent shape, e.g. the
  ``Subtensor{0}(Shape(Crossentropy(Dot(data[i*bs:(i+1)*bs], W), ...)))`` that
  ``T.arange(y.shape[0])`` or a mean's divisor leaves behind. Evaluating it as written would
  run the model's forward pass on the host every step (downloading the weights from the
  device) only to learn a batch length. Instead its graph is rebuilt the way level 2 rebuilds
  the program (compiler.specialize.Level2Context): slices get their static lengths, shapes
  become concrete, and ``Shape``-derived scalars fold to constants. What is left reads no
  leaves, so its value depends only on the slice lengths and the known sizes it was rebuilt
  with: it is cached under those, and a training loop rebuilds once per distinct batch
  length. Only when the rebuilt graph still reads leaves (a size that truly depends on data)
  is it evaluated each call, with just the leaves it reads.

The evaluator is injected (the caller passes the reference backend's): the compiler never
imports the runtime.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import GraphError
from .graph import Variable, constant, rebuild, toposort
from .ops.args import Arg, Slice
from .ops.scan import Scan
from .ops.random import RandomDraw
from .ops.shape import Alloc, Arange, Reshape
from .specialize import DynamicPlan, Level2Context

# evaluate(outputs, env) -> one value per output; env maps id(leaf) -> value and holds (at
# least) every non-constant leaf the outputs read.
Evaluate = Callable[[Sequence[Variable], Mapping[int, Any]], list]


def _size_inputs(node: Variable) -> list[Variable]:
    """The non-constant size operands of a reshape/alloc/arange (DynamicPlan's static vars)."""
    if isinstance(node.op, Arange):
        return [v for v in node.inputs if not v.is_constant]
    if isinstance(node.op, (Reshape, Alloc, RandomDraw)):
        return [v for v in node.inputs[1:] if not v.is_constant]
    if isinstance(node.op, Scan):   # its n_steps
        return [v for v in node.inputs[:1] if not v.is_constant]
    return []


def _leaves(outputs: Sequence[Variable]) -> list[Variable]:
    return [v for v in toposort(outputs) if v.is_leaf and not v.is_constant]


class _Derived:
    """One derived scalar: what its cache key is made of, and its cached rebuilds."""

    def __init__(self, var: Variable, plan: DynamicPlan, earlier: set[int]) -> None:
        self.var = var
        graph = toposort([var])
        inside = {id(n) for n in graph}
        # Substituted as constants before the rebuild (as level2 does), all computed before this
        # one: the sizes of the reshapes/allocs/aranges it reads through (so their shapes become
        # concrete) and the derived scalars it reads. Direct slice bounds stay symbolic, so that
        # a rebuilt graph that reads no leaves cannot depend on them (only on the lengths).
        sizes = {id(v) for n in graph for v in _size_inputs(n)}
        self.substituted = [n for n in graph if n is not var and (id(n) in sizes or id(n) in earlier)]
        # the dynamic slices it reads through: their lengths shape the rebuilt graph
        self.slices = []   # (x's size along the axis or None, start, stop, step): Variables or ints
        for node in plan.index_nodes:
            if id(node) not in inside:
                continue
            x = node.inputs[0]
            for axis, e in enumerate(node.op.entries):
                if isinstance(e, Slice) and any(isinstance(b, Arg) for b in (e.start, e.stop, e.step)):
                    bounds = tuple(node.inputs[b.k] if isinstance(b, Arg) else b for b in (e.start, e.stop, e.step))
                    self.slices.append((x.type.shape[axis],) + bounds)
        self.cache: dict[tuple, tuple] = {}   # key -> ("value", int) | ("graph", rebuilt, leaves, implicit)

    def key(self, values: dict[int, int]) -> tuple:
        """What the rebuilt graph depends on: slice lengths (not starts), substituted sizes."""
        parts: list = []
        for n, *bounds in self.slices:
            b = [values[id(v)] if isinstance(v, Variable) else v for v in bounds]
            parts.append(len(range(*slice(*b).indices(n))) if n is not None else tuple(b))
        parts += [values[id(v)] for v in self.substituted]
        return tuple(parts)


class Prep:
    """``values(env)``: id(var) -> int for every scalar of ``plan``, evaluating as little as
    possible (see the module docstring)."""

    def __init__(self, plan: DynamicPlan, evaluate: Evaluate) -> None:
        self.plan = plan
        self._evaluate = evaluate
        self._direct: list[Variable] = []
        derived: list[Variable] = []
        for var in plan.scalars:
            concrete = all(n.type.is_concrete for n in toposort([var]))
            (self._direct if concrete else derived).append(var)
        self._direct_leaves = _leaves(self._direct)
        # derived scalars in dependency order, so each rebuild can substitute the ones it reads
        position = {id(n): k for k, n in enumerate(toposort(plan.scalars))}
        derived.sort(key=lambda v: position[id(v)])
        done: set[int] = set()
        self._derived = []
        for var in derived:
            self._derived.append(_Derived(var, plan, done))
            done.add(id(var))

    def values(self, env: Mapping[int, Any]) -> dict[int, int]:
        """id(var) -> value of every scalar in ``plan.scalars``; ``env``: id(leaf) -> value for the
        specialization's leaves (only those the scalars need are handed to ``evaluate``)."""
        values: dict[int, int] = {}
        if self._direct:
            sub = {id(leaf): env[id(leaf)] for leaf in self._direct_leaves}
            for var, value in zip(self._direct, self._evaluate(self._direct, sub)):
                values[id(var)] = int(value)
        for d in self._derived:
            key = d.key(values)
            entry = d.cache.get(key)
            if entry is None:
                entry = d.cache[key] = self._rebuild(d, values)
            values[id(d.var)] = self._value(entry, values, env)
        return values

    def _rebuild(self, d: _Derived, values: dict[int, int]) -> tuple:
        """The derived scalar's graph with the sizes of this key made static (the same rebuild
        level2 applies to the program): a constant, or a smaller graph to evaluate per call."""
        replace = {v: constant(np.asarray(values[id(v)], dtype=v.dtype)) for v in d.substituted}
        ctx = Level2Context(values)
        try:
            (out,) = rebuild([d.var], replace, ctx)
        except (GraphError, KeyError):
            # a bound the rebuild cannot resolve from the plan's values: read the scalar as written
            return ("graph", d.var, _leaves([d.var]), [])
        if out.is_constant:
            return ("value", int(out.data))
        leaves = _leaves([out])
        if not leaves:   # arithmetic on folded sizes: nothing but constants to read
            return ("value", int(self._evaluate([out], {})[0]))
        implicit = [(leaf, fn) for leaf, fn in ctx.implicit if any(leaf is v for v in leaves)]
        return ("graph", out, [v for v in leaves if not any(v is leaf for leaf, _ in implicit)], implicit)

    def _value(self, entry: tuple, values: dict[int, int], env: Mapping[int, Any]) -> int:
        if entry[0] == "value":
            return entry[1]
        # the size depends on data, not only on shapes: evaluate it, from the leaves it reads
        _, graph, leaves, implicit = entry
        sub = {id(leaf): env[id(leaf)] for leaf in leaves}
        sub.update({id(leaf): np.asarray(fn(values), dtype="int64") for leaf, fn in implicit})
        return int(self._evaluate([graph], sub)[0])

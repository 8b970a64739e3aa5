"""Applying local rewrites: rebuild a graph bottom-up, trying each rule on each node until none
fires. A rule is a function ``node -> Variable | None``; a pass is an ordered list of rules."""
from __future__ import annotations

from typing import Callable, Sequence

from ..graph import Variable, _counter, toposort

Rule = Callable[[Variable], "Variable | None"]

MAX_ROUNDS = 32  # a rule chain longer than this on one node is a rule bug (ping-pong)


def rewrite(outputs: Sequence[Variable], rules: Sequence[Rule], fixed: dict | None = None,
            misses: dict | None = None) -> list[Variable]:
    """One bottom-up sweep. Rules are pure functions of a node (and nodes are immutable), so what
    a rule made of a node once it makes again: ``fixed`` (id -> node, kept across the sweeps of
    one fixpoint) holds nodes on which no rule of ``rules`` fires, which are not tried again;
    ``misses`` (id -> (node, rules), kept across passes) the rules that did not fire on a node,
    which are not tried on it again."""
    memo: dict[int, Variable] = {}
    if fixed is None:
        fixed = {}
    if misses is None:
        misses = {}

    def visit(node: Variable) -> Variable:
        if id(node) in fixed:
            return node
        for _ in range(MAX_ROUNDS):
            for rule in rules:
                missed = misses.get(id(node))
                if missed is not None and rule in missed[1]:
                    continue
                new = rule(node)
                if new is None or new is node:
                    if missed is None:
                        misses[id(node)] = missed = (node, set())
                    missed[1].add(rule)
                else:
                    if new.type.dtype != node.type.dtype or new.ndim != node.ndim:
                        raise AssertionError(f"rule {rule.__name__} changed the type of {node}: "
                                             f"{node.type} -> {new.type}")
                    node = new
                    if id(node) in fixed:
                        return node
                    break
            else:
                fixed[id(node)] = node
                return node
        return node

    for node in toposort(outputs):
        if node.is_leaf:
            memo[id(node)] = node
            continue
        inputs = [memo[id(i)] for i in node.inputs]
        first_new = next(_counter)
        rebuilt = node if all(a is b for a, b in zip(inputs, node.inputs)) else node.op(*inputs)
        memo[id(node)] = new = visit(rebuilt)
        if new is not node and node.trace:
            _inherit_trace(new, first_new, node.trace)
    return [memo[id(o)] for o in outputs]


def _inherit_trace(new: Variable, first_new: int, trace: str) -> None:
    """Nodes a rule made for ``node`` stand for it: they keep the user's line that created it
    (errors and the NaN guard name it), not the line of the call that compiled the function.
    Only nodes made since ``first_new`` are touched, so the walk stops at the old graph."""
    stack = [new]
    while stack:
        v = stack.pop()
        if v.uid > first_new and v.op is not None and v.trace != trace:
            v.trace = trace
            stack.extend(v.inputs)


def rewrite_to_fixpoint(outputs: Sequence[Variable], rules: Sequence[Rule], max_sweeps: int = 8,
                        misses: dict | None = None) -> list[Variable]:
    """Sweep until nothing changes (a replacement's new inputs may admit further rewrites).
    ``misses``: see ``rewrite`` (passes share it)."""
    outputs = list(outputs)
    fixed: dict[int, Variable] = {}   # nodes no rule changes: a later sweep skips them
    misses = {} if misses is None else misses
    for _ in range(max_sweeps):
        new = rewrite(outputs, rules, fixed, misses)
        if all(a is b for a, b in zip(new, outputs)):
            return new
        outputs = new
    return outputs

"""Applying local rewrites: rebuild a graph bottom-up, trying each rule on each node until none
fires. A rule is a function ``node -> Variable | None``; a pass is an ordered list of rules."""
from __future__ import annotations

from typing import Callable, Sequence

from ..graph import Variable, toposort

Rule = Callable[[Variable], "Variable | None"]

MAX_ROUNDS = 32  # a rule chain longer than this on one node is a rule bug (ping-pong)


def rewrite(outputs: Sequence[Variable], rules: Sequence[Rule]) -> list[Variable]:
    memo: dict[int, Variable] = {}

    def visit(node: Variable) -> Variable:
        for _ in range(MAX_ROUNDS):
            for rule in rules:
                new = rule(node)
                if new is not None and new is not node:
                    if new.type.dtype != node.type.dtype or new.ndim != node.ndim:
                        raise AssertionError(f"rule {rule.__name__} changed the type of {node}: "
                                             f"{node.type} -> {new.type}")
                    node = new
                    break
            else:
                return node
        return node

    for node in toposort(outputs):
        if node.is_leaf:
            memo[id(node)] = node
            continue
        inputs = [memo[id(i)] for i in node.inputs]
        rebuilt = node if all(a is b for a, b in zip(inputs, node.inputs)) else node.op(*inputs)
        memo[id(node)] = visit(rebuilt)
    return [memo[id(o)] for o in outputs]


def rewrite_to_fixpoint(outputs: Sequence[Variable], rules: Sequence[Rule], max_sweeps: int = 8) -> list[Variable]:
    """Sweep until nothing changes (a replacement's new inputs may admit further rewrites)."""
    outputs = list(outputs)
    for _ in range(max_sweeps):
        new = rewrite(outputs, rules)
        if all(a is b for a, b in zip(new, outputs)):
            return new
        outputs = new
    return outputs

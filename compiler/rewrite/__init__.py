"""The rewrite pipeline: named graph-to-graph passes, run in the order listed in ``optimize``."""
from __future__ import annotations

from typing import Sequence

from ..graph import Variable
from . import canonicalize, fold, stabilize
from .engine import rewrite, rewrite_to_fixpoint


def merge(outputs: Sequence[Variable]) -> list[Variable]:
    """Equal subexpressions become one node. Hash-consing (compiler.graph.apply) already makes
    every rebuilt node unique, so re-applying the graph is the whole pass."""
    return rewrite(outputs, [])


def stabilize_graph(outputs: Sequence[Variable]) -> list[Variable]:
    """The stabilize pass alone, on a graph whose shapes may still be unknown (used by theta.grad
    so that gradients are taken of the stable forms)."""
    return rewrite_to_fixpoint(outputs, stabilize.RULES + canonicalize.RULES)


PASSES = [
    ("canonicalize", lambda outs: rewrite_to_fixpoint(outs, canonicalize.RULES)),
    ("constant_fold", lambda outs: rewrite_to_fixpoint(outs, fold.RULES + canonicalize.RULES)),
    ("stabilize", lambda outs: rewrite_to_fixpoint(outs, stabilize.RULES + canonicalize.RULES)),
    ("merge", merge),
]


def optimize(outputs: Sequence[Variable], optimizer: str = "fast_run") -> list[Variable]:
    """Run the passes in order. With optimizer='None' only the passes required for correctness
    (canonicalize lowers shape-dependent gradient ops) run."""
    outputs = list(outputs)
    for name, run in PASSES:
        if optimizer == "None" and name != "canonicalize":
            continue
        outputs = run(outputs)
    return outputs

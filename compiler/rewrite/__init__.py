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


# Each pass takes the outputs and ``misses`` (compiler.rewrite.engine.rewrite: which rules did not
# fire on which nodes, shared by the passes of one optimize, so no rule is tried twice on a node).
PASSES = [
    ("canonicalize", lambda outs, misses=None: rewrite_to_fixpoint(outs, canonicalize.RULES, misses=misses)),
    ("constant_fold", lambda outs, misses=None: rewrite_to_fixpoint(outs, fold.RULES + canonicalize.RULES,
                                                                    misses=misses)),
    ("stabilize", lambda outs, misses=None: rewrite_to_fixpoint(outs, stabilize.RULES + canonicalize.RULES,
                                                                misses=misses)),
    ("merge", lambda outs, misses=None: merge(outs)),
]


# what optimizer='fast_compile' runs: the required pass, and the stable forms of log/exp/softmax
FAST_COMPILE_PASSES = ("canonicalize", "stabilize")


def optimize(outputs: Sequence[Variable], optimizer: str = "fast_run") -> list[Variable]:
    """Run the passes in order. With optimizer='None' only the passes required for correctness
    (canonicalize lowers shape-dependent gradient ops) run; with 'fast_compile' (Theano's
    FAST_COMPILE) those and the ones numerics need (``FAST_COMPILE_PASSES``)."""
    outputs = list(outputs)
    misses: dict = {}
    for name, run in PASSES:
        if optimizer == "None" and name != "canonicalize":
            continue
        if optimizer == "fast_compile" and name not in FAST_COMPILE_PASSES:
            continue
        outputs = run(outputs, misses)
    return outputs

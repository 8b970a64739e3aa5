"""theta.printing.debugprint: the graph as an indented tree, shared subexpressions shown once."""
from __future__ import annotations

import io
import sys
from typing import Sequence

from .graph import Variable


def debugprint(obj, file=None, print_type: bool = True) -> str:
    """Print (and return) a tree of ``obj``: a Variable, a list of them, or a compiled function
    (whose specialized, rewritten graphs are printed)."""
    out = io.StringIO()
    if hasattr(obj, "_specs"):
        roots = obj._graph
        for key, spec in obj._specs.items():
            out.write(f"# specialization for shapes {key}\n")
            for outs in ([spec.outputs] if spec.plan.empty else [v[2] for v in spec._variants.values()]):
                _tree(outs, out, print_type)
        if not obj._specs:
            out.write("# not yet specialized (call it once to see the compiled graph)\n")
            _tree(roots, out, print_type)
    else:
        roots = [obj] if isinstance(obj, Variable) else list(obj)
        _tree(roots, out, print_type)
    text = out.getvalue()
    if file != "str":
        (file or sys.stdout).write(text)
    return text


def _tree(roots: Sequence[Variable], out, print_type: bool) -> None:
    ids: dict[int, str] = {}

    def label(v: Variable) -> str:
        if v.is_constant:
            return repr(v)
        if v.is_leaf:
            return v.name or "<input>"
        expr = getattr(v.op, "expr", None)
        if expr is not None and getattr(v.op, "name", None):
            # the scalar expression too: after rewrites a node named "log" may compute -softplus(x0)
            return f"{v.op.name}{{{expr}}}"
        return str(v.op)

    def visit(v: Variable, depth: int) -> None:
        pad = " |" * depth
        typ = f" {v.type}" if print_type else ""
        if id(v) in ids:
            out.write(f"{pad}{label(v)} [{ids[id(v)]}]{typ} (shown above)\n")
            return
        if not v.is_leaf:
            ids[id(v)] = f"id {chr(65 + len(ids) % 26)}{len(ids) // 26 or ''}"
            out.write(f"{pad}{label(v)} [{ids[id(v)]}]{typ}\n")
            for i in v.inputs:
                visit(i, depth + 1)
        else:
            out.write(f"{pad}{label(v)}{typ}\n")

    for r in roots:
        visit(r, 0)


pprint = debugprint

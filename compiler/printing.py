"""theta.printing: graphs and compiled functions as text and drawings (Theano's module).

The functions::

    debugprint(obj)          the graph as an indented tree, shared subexpressions shown once; for
                             a compiled function its specialized, rewritten graphs and, on a kernel
                             backend, its kernels (family, name, and which op nodes each holds)
    pprint(var)              one line in Theano's infix form: ``(x + (y * 2))``, ``tanh(x)``
    pydotprint(f_or_vars)    a graphviz drawing (png, svg, or the DOT text) of the graph before
                             and after the rewrites, each fused kernel group drawn as a cluster
"""
from __future__ import annotations

import io
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Sequence

import numpy as np

from .graph import Variable, toposort

__all__ = ["debugprint", "pprint", "pydotprint"]


# -- debugprint ----------------------------------------------------------------------------------

def debugprint(obj, file=None, print_type: bool = True) -> str:
    """Print (and return) a tree of ``obj``.

    Parameters
    ----------
    obj : Variable, list of Variable, or a compiled function
        A compiled function prints its specialized, rewritten graphs, then (emu, cuda) its
        kernels: each kernel's name, family, launch shape and the op nodes it computes, by the
        ``[id X]`` labels of the tree.
    file : file-like, "str" or None
        Where to print (None: standard output; "str": nowhere, only return the text).
    print_type : bool
        Show each variable's type.

    Returns
    -------
    str
        The text printed.
    """
    out = io.StringIO()
    if hasattr(obj, "_specs"):
        for key, spec in obj._specs.items():
            out.write(f"# specialization for shapes {key}\n")
            variants = ([(spec.outputs, spec.program)] if spec.plan.empty
                        else [(v[2], v[0]) for v in spec._variants.values()])
            for outs, runner in variants:
                ids: dict = {}
                _tree(outs, out, print_type, ids)
                program = getattr(runner, "program", None)
                if program is not None:
                    out.write(kernel_listing(program, ids))
        if not obj._specs:
            out.write("# not yet specialized (call it once to see the compiled graph)\n")
            _tree(obj._graph, out, print_type, {})
    else:
        roots = [obj] if isinstance(obj, Variable) else list(obj)
        _tree(roots, out, print_type, {})
    text = out.getvalue()
    if file != "str":
        (file or sys.stdout).write(text)
    return text


def _label(v: Variable) -> str:
    if v.is_constant:
        return repr(v)
    if v.is_leaf:
        return v.name or "<input>"
    expr = getattr(v.op, "expr", None)
    if expr is not None and getattr(v.op, "name", None):
        # the scalar expression too: after rewrites a node named "log" may compute -softplus(x0)
        return f"{v.op.name}{{{expr}}}"
    return str(v.op)


def _tree(roots: Sequence[Variable], out, print_type: bool, ids: dict) -> None:
    """Write the tree of ``roots``; ``ids`` (id(node) -> "id A") is filled in for later use."""

    def visit(v: Variable, depth: int) -> None:
        pad = " |" * depth
        typ = f" {v.type}" if print_type else ""
        if id(v) in ids:
            out.write(f"{pad}{_label(v)} [{ids[id(v)]}]{typ} (shown above)\n")
            return
        if not v.is_leaf:
            ids[id(v)] = f"id {chr(65 + len(ids) % 26)}{len(ids) // 26 or ''}"
            out.write(f"{pad}{_label(v)} [{ids[id(v)]}]{typ}\n")
            for i in v.inputs:
                visit(i, depth + 1)
        else:
            out.write(f"{pad}{_label(v)}{typ}\n")

    for r in roots:
        visit(r, 0)


def kernel_listing(program, ids: dict | None = None) -> str:
    """The kernels of ``program``, one line each (name, family, launch shape), then the op nodes
    each computes (``[id X]`` where ``ids`` labels them in a tree printed before)."""
    ids = ids or {}
    origins = list(getattr(program, "origins", []) or [])
    lines = [f"# {len(program.kernels)} kernels"
             + (f", {len(program.loops)} loops" if getattr(program, "loops", None) else "")]
    for k, kernel in enumerate(program.kernels):
        lines.append(f"{kernel.name} ({kernel.family}) grid {kernel.grid} block {kernel.block}")
        nodes = origins[k] if k < len(origins) else ()
        if nodes:
            lines.append("  computes: " + ", ".join(
                f"{_label(n)}" + (f" [{ids[id(n)]}]" if id(n) in ids else "") for n in nodes))
    return "\n".join(lines) + "\n"


# -- pprint --------------------------------------------------------------------------------------

# sympy function name (theta's scalar functions, compiler/ops/scalar.py) -> infix operator
_INFIX = {"gt": ">", "lt": "<", "ge": ">=", "le": "<=", "eq": "==", "neq": "!=", "mod": "%",
          "intdiv": "//", "and_": "&", "or_": "|", "xor": "^"}
_FUNC_NAMES = {"abs_": "abs", "floor_": "floor", "ceil_": "ceil", "invert": "~", "Abs": "abs"}
_CALL_NAMES = {"Dot": "dot", "BatchedDot": "batched_dot"}


def pprint(var, file=None) -> str:
    """``var`` (or a list of variables) as one expression in Theano's infix form, returned as a
    string: arithmetic and comparisons infix and fully parenthesized (``(x + (y * 2))``),
    elementwise functions and every other op in function-call form (``tanh(x)``,
    ``dot(x, W)``, ``Sum{1}(x)``). Leaves are their names; scalar constants their value.
    A subexpression used twice is printed twice.

    Parameters
    ----------
    var : Variable or list of Variable
        One line per variable.
    file : file object or True, optional
        Also write the text there (True: standard output).

    Returns
    -------
    str

    Examples
    --------
    >>> x, y = T.vector("x"), T.vector("y")
    >>> theta.printing.pprint(x + y * 2)
    '(x + (y * 2))'
    """
    if isinstance(var, (list, tuple)):
        text = "\n".join(pprint(v) for v in var)
    else:
        memo: dict = {}
        text = _pp(var, memo)
    if file is not None:
        (sys.stdout if file is True else file).write(text + "\n")
    return text


def _pp(v: Variable, memo: dict) -> str:
    if id(v) in memo:
        return memo[id(v)]
    for node in toposort([v]):   # bottom-up, so deep graphs do not recurse
        if id(node) in memo:
            continue
        memo[id(node)] = _pp_node(node, memo)
    return memo[id(v)]


def _pp_node(v: Variable, memo: dict) -> str:
    if v.is_constant:
        data = np.asarray(v.data)
        return _number(data.item()) if data.size == 1 and data.ndim == 0 else f"TensorConstant{{{_short(data)}}}"
    if v.is_leaf:
        return v.name or f"<{v.type}>"
    args = [memo[id(i)] for i in v.inputs]
    expr = getattr(v.op, "expr", None)
    if expr is not None:
        try:
            return _sympy_infix(expr, args)
        except Exception:   # an expression shape the printer does not know: the op's name
            pass
    name = getattr(v.op, "name", None) if expr is not None else None
    name = name or _CALL_NAMES.get(type(v.op).__name__, str(v.op))
    return f"{name}({', '.join(args)})"


def _number(x) -> str:
    return repr(x) if not isinstance(x, bool) else str(x)


def _short(data: np.ndarray) -> str:
    if data.size <= 6:
        return np.array2string(data, separator=", ").replace("\n", "")
    return f"{data.dtype}{list(data.shape)}"


def _sympy_infix(e, args: list) -> str:
    """An elementwise op's sympy expression with its input symbols replaced by ``args``."""
    import sympy as sp

    from .ops import scalar as S
    symbols = {s: a for s, a in zip(S.symbols(len(args)), args)}

    def p(e) -> str:
        if e.is_Symbol:
            return symbols.get(e, str(e))
        if e.is_Number:
            if e.is_Integer:
                return str(int(e))
            if e.is_Rational:
                return f"({e.p} / {e.q})"
            return repr(float(e))
        if e in (sp.true, sp.false):
            return str(bool(e))
        if e.is_Add:
            terms = list(e.as_ordered_terms())
            out = p(terms[0])
            for t in terms[1:]:
                c, rest = t.as_coeff_Mul()
                if c.is_Number and c < 0:
                    out += " - " + p(-t)
                else:
                    out += " + " + p(t)
            return f"({out})"
        if e.is_Mul:
            c, rest = e.as_coeff_Mul()
            if c == -1:
                return f"-{p(rest)}"
            factors = [f for f in sp.Mul.make_args(rest)]
            num = [f for f in factors if not (f.is_Pow and f.exp.is_Number and f.exp < 0)]
            den = [1 / f for f in factors if f not in num]
            text = " * ".join(p(f) for f in num) or "1"
            if c != 1:
                text = f"{text} * {p(c)}" if num else p(c)
            if len(num) > 1 or (num and c != 1):
                text = f"({text})"
            if den:
                d = " * ".join(p(f) for f in den)
                return f"({text} / {d if len(den) == 1 else '(' + d + ')'})"
            return text
        if e.is_Pow:
            base, exp = e.as_base_exp()
            if exp == -1:
                return f"(1 / {p(base)})"
            if exp == sp.Rational(1, 2):
                return f"sqrt({p(base)})"
            return f"({p(base)} ** {p(exp)})"
        if isinstance(e, sp.Piecewise):
            return "switch(" + ", ".join(f"{p(c)}, {p(v)}" for v, c in e.args) + ")"
        if e.is_Relational:
            return f"({p(e.lhs)} {e.rel_op} {p(e.rhs)})"
        name = getattr(e.func, "__name__", str(e.func))
        if name in _INFIX and len(e.args) == 2:
            return f"({p(e.args[0])} {_INFIX[name]} {p(e.args[1])})"
        name = _FUNC_NAMES.get(name, name)
        if name == "~":
            return f"~{p(e.args[0])}"
        return f"{name}({', '.join(p(a) for a in e.args)})"

    return p(e)


# -- pydotprint ----------------------------------------------------------------------------------

def pydotprint(fct, outfile: str | os.PathLike | None = None, format: str | None = None,
               compact: bool = True, with_ids: bool = False, print_output_file: bool = True,
               **theano_options) -> str:
    """Draw a graph with graphviz (Theano's pydotprint); returns the DOT text.

    Parameters
    ----------
    fct : compiled function, Variable or list of Variables
        A compiled function is drawn twice: its graph as written (before rewrites) and, once it
        has been called (or ``f.specialization(...)`` compiled it), the specialized graph after
        the rewrites, where the nodes each fused kernel computes are drawn inside one cluster
        named after its kernel group. Variables are drawn as they are.
    outfile : path, optional
        The file to write (default ``theta.pydotprint.<format>`` in the current directory).
    format : {'png', 'svg', 'pdf', 'dot'}, optional
        Default: the outfile's suffix, else 'png'. 'dot' writes the DOT text itself; every other
        format needs graphviz's ``dot`` program: without it a BackendError says so, and the DOT
        text is written next to ``outfile`` (its suffix replaced by .dot) anyway.
    """
    from .errors import BackendError, OptionError
    text = dot_text(fct, with_ids=with_ids)
    outfile = pathlib.Path(outfile) if outfile is not None else None
    if format is None:
        format = outfile.suffix[1:] if outfile is not None and outfile.suffix else "png"
    format = format.lower()
    if format not in ("png", "svg", "pdf", "dot", "ps", "jpg", "gif"):
        raise OptionError(f"pydotprint: unknown format {format!r}; use 'png', 'svg', 'pdf' or 'dot'")
    if outfile is None:
        outfile = pathlib.Path(f"theta.pydotprint.{format}")
    if format == "dot":
        outfile.write_text(text)
        return text
    dot = shutil.which("dot")
    dot_file = outfile.with_suffix(".dot")
    if dot is None:
        dot_file.write_text(text)
        raise BackendError(f"pydotprint needs graphviz's `dot` program to write {format}, and it is not installed "
                           f"(apt-get install graphviz, or conda install graphviz); the DOT text was written to "
                           f"{dot_file} (render it later with `dot -T{format} {dot_file} -o {outfile}`), "
                           "or pass format='dot'")
    done = subprocess.run([dot, f"-T{format}", "-o", str(outfile)], input=text.encode(), capture_output=True)
    if done.returncode != 0:
        dot_file.write_text(text)
        raise BackendError(f"pydotprint: graphviz's dot failed ({done.stderr.decode(errors='replace').strip()}); "
                           f"the DOT text is in {dot_file}")
    if print_output_file:
        print(f"The output file is available at {outfile}")
    return text


def dot_text(fct, with_ids: bool = False) -> str:
    """The DOT text pydotprint draws (see pydotprint)."""
    lines = ["digraph theta {", '  rankdir=TB; compound=true; node [fontname="Helvetica", fontsize=10];']
    counter = [0]
    if hasattr(fct, "_specs"):
        lines += _dot_graph(fct._graph, "before", "before rewrites", counter, with_ids)
        for n, (key, spec) in enumerate(fct._specs.items()):
            variants = [spec.outputs] if spec.plan.empty else [v[2] for v in spec._variants.values()]
            for m, outs in enumerate(variants):
                groups = _groups(outs)
                title = f"after rewrites, shapes {key}" + (f" (variant {m})" if len(variants) > 1 else "")
                lines += _dot_graph(groups[0] if groups else outs, f"after{n}_{m}", title, counter, with_ids,
                                    groups[1] if groups else None)
    else:
        roots = [fct] if isinstance(fct, Variable) else list(fct)
        lines += _dot_graph(roots, "graph", "", counter, with_ids)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _groups(outputs):
    """(outputs, kernel groups) as the pipeline fuses them, or None where it cannot."""
    try:
        from .pipeline import fused_groups
        outs, _, groups = fused_groups(outputs)
        return outs, groups
    except Exception:   # a graph the kernel backends do not lower (reference-only): no clusters
        return None


def _quote(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_graph(roots, prefix: str, title: str, counter: list, with_ids: bool, groups=None) -> list:
    nodes = toposort(list(roots))
    name = {id(v): f"{prefix}_n{k}" for k, v in enumerate(nodes)}
    out_ids = {id(r) for r in roots}
    lines = [f"  subgraph cluster_{prefix} {{", f"    label={_quote(title)}; style=dashed; color=gray40;"] if title \
        else []
    pad = "    " if title else "  "
    grouped: dict = {}
    if groups:
        for k, g in enumerate(groups):
            for n in g.nodes:
                grouped.setdefault(id(n), k)
    for v in nodes:
        if v.is_leaf:
            shape = "box"
            label = _label(v) if not v.is_constant else pprint(v)
            style = 'style=filled, fillcolor="#e0ecff"' if not v.is_constant else 'style=filled, fillcolor="#eeeeee"'
        else:
            shape, style = "ellipse", ""
            label = _label(v)
        if with_ids:
            label = f"{label} [{name[id(v)]}]"
        label += f"\n{v.type}"
        if id(v) in out_ids:
            style = 'style="filled,bold", fillcolor="#d8f5d8"' if not v.is_leaf else style
        if id(v) in grouped:
            continue   # drawn inside its kernel's cluster below
        lines.append(f"{pad}{name[id(v)]} [label={_quote(label)}, shape={shape}{', ' + style if style else ''}];")
    if groups:
        for k, g in enumerate(groups):
            members = [n for n in g.nodes if grouped.get(id(n)) == k and id(n) in name]
            if not members:
                continue
            lines.append(f"{pad}subgraph cluster_{prefix}_k{k} {{")
            lines.append(f"{pad}  label={_quote(f'kernel group {k}: {g.family}')}; style=filled; "
                         f'fillcolor="#fff4d6"; color="#c08000";')
            for n in members:
                label = _label(n) + (f" [{name[id(n)]}]" if with_ids else "") + f"\n{n.type}"
                bold = ', style="filled,bold", fillcolor="#d8f5d8"' if id(n) in out_ids else ""
                lines.append(f"{pad}  {name[id(n)]} [label={_quote(label)}, shape=ellipse{bold}];")
            lines.append(f"{pad}}}")
    for v in nodes:
        if v.is_leaf:
            continue
        for pos, i in enumerate(v.inputs):
            edge = f' [label="{pos}"]' if len(v.inputs) > 1 else ""
            lines.append(f"{pad}{name[id(i)]} -> {name[id(v)]}{edge};")
    if title:
        lines.append("  }")
    counter[0] += len(nodes)
    return lines

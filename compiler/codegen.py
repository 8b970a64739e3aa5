"""Codegen: lower each fused group to CUDA C kernels through the templates in kernels/.

A family lowerer (compiler/lowering/) receives the group and a ``KernelBuilder`` that hands
out kernel parameters (pointers to the values the group reads and writes, runtime scalars)
and renders templates. Python only computes the context; every line of C comes from a
template (elementwise expressions are printed by compiler.cprint, one statement per node).
"""
from __future__ import annotations

import functools
import pathlib
from typing import Sequence

import jinja2
import numpy as np

from .cprint import CTYPES, print_statements
from .errors import InternalError, describe
from .graph import Variable
from .layout import Layout
from .ops import scalar as S
from .ops.elemwise import Elemwise
from .ops.random import RandomDraw, c_constants as random_constants
from .ops.shape import Arange
from .program import Binding, Kernel, Param
from .schedule import Plan, ref_of

KERNELS_DIR = pathlib.Path(__file__).resolve().parent.parent / "kernels"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    # compiled templates are kept between processes (jinja2's per-user cache directory, checked
    # against the template's source): compiling them is most of a first render in a process
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(KERNELS_DIR)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             bytecode_cache=_bytecode_cache())
    env.filters["ctype"] = lambda dtype: CTYPES[dtype]
    env.globals["rng"] = random_constants()   # the prelude's random-number series (one definition)
    return env


def _bytecode_cache():
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):   # no private temporary directory: compile in every process
        return None


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


class KernelBuilder:
    """Hands out parameters for one kernel and renders it."""

    def __init__(self, name: str, family: str, plan: Plan, lays: dict, code: int = 0, group=None) -> None:
        self.name, self.family, self.plan, self.lays = name, family, plan, lays
        self.group = group  # the fused group being lowered, named in internal errors
        self.code = code  # what this group's kernels write into the status word on bad input
        self.params: list[Param] = []
        self.bindings: list[Binding] = []
        self._by_key: dict = {}
        self._guarded = False

    def layout(self, var: Variable) -> Layout:
        return self.lays[id(var)]

    def pointer(self, var: Variable, write: bool = False, prefix: str = "p") -> str:
        """A parameter pointing at the first element of ``var`` (read through its layout's strides)."""
        base = self.lays[id(var)].base
        if id(base) not in self.plan.buffer_of:
            # fusion computed this value inside some kernel and never wrote it to memory
            raise InternalError(
                f"kernel {self.name} ({self.group or self.family}) needs {describe(var)} from memory, "
                f"but the buffer plan does not materialize "
                f"{'it' if base is var else 'the value it views, ' + describe(base)}: "
                f"fusion and lowering disagree (a theta bug; please report it with this graph)")
        ref = ref_of(self.lays[id(var)], self.plan)
        if write and self.plan.buffers[ref.buffer].kind in ("input", "shared"):
            # an update written in place: skipped once an earlier kernel reported bad input, so
            # the variable keeps its value when the step raises
            self._guarded = True
            self.status()
        key = ("ptr", ref, write, var.dtype)
        reach = _extent(self.lays[id(var)])
        if key in self._by_key:   # another view through the same pointer: the binding covers both
            j = [p.name for p in self.params].index(self._by_key[key])
            lo, hi = self.bindings[j].extent
            self.bindings[j] = Binding("ptr", ref, extent=(min(lo, reach[0]), max(hi, reach[1])))
        if key not in self._by_key:
            name = f"{prefix}{len(self.params)}"
            # a buffer some kernel updates in place may be read and written by one kernel (at the
            # same element): no __restrict__ on it
            restrict = "" if ref.buffer in self.plan.inplace else " __restrict__"
            ctype = f"{CTYPES[var.dtype]}*" if write else f"const {CTYPES[var.dtype]}*{restrict}"
            self.params.append(Param(name, ctype, carries=_carries(var)))
            self.bindings.append(Binding("ptr", ref, extent=reach))
            self._by_key[key] = name
        return self._by_key[key]

    def scalar(self, leaf: Variable) -> str:
        key = ("scalar", id(leaf))
        if key not in self._by_key:
            name = f"s{len(self.params)}"
            self.params.append(Param(name, "long long", carries=_carries(leaf)))
            self.bindings.append(Binding("scalar", slot=self.plan.scalar_slot[id(leaf)]))
            self._by_key[key] = name
        return self._by_key[key]

    def status(self) -> str:
        """A parameter pointing at the program's status word, for kernels that can meet bad
        input (an index out of range): they call ``theta_report(status, code)``."""
        key = ("status",)
        if key not in self._by_key:
            self.params.append(Param("status", "int*"))
            self.bindings.append(Binding("status"))
            self._by_key[key] = "status"
        return "status"

    def kernel(self, template: str, grid, block, shared_bytes: int = 0, **context) -> Kernel:
        """Render ``template`` with the kernel's name, parameters, launch shape, status word
        (``status_param``/``status_code``) and ``context``."""
        status = self._by_key.get(("status",))
        source = render(template, name=self.name, params=self.params, grid=_dim3(grid), block=_dim3(block),
                        threads=_dim3(block)[0] * _dim3(block)[1] * _dim3(block)[2],
                        status_param=status, status_code=self.code,
                        guard_param=status if self._guarded else None, **context)
        return Kernel(self.name, self.family, source, list(self.params), list(self.bindings),
                      _dim3(grid), _dim3(block), shared_bytes, origin=status_origin(self.group))


def _extent(lay: Layout) -> tuple:
    """(lo, hi): the elements a kernel reaches reading ``lay`` from its first element."""
    if not all(lay.shape):
        return (0, 0)
    lo = sum(s * (d - 1) for s, d in zip(lay.strides, lay.shape) if s < 0)
    hi = sum(s * (d - 1) for s, d in zip(lay.strides, lay.shape) if s > 0)
    return (lo, hi + 1)


def _carries(var: Variable) -> str:
    """What a parameter carries, for ``print(f.program)``: the variable's name, or the op that
    computes it, and its type."""
    what = var.name or (f"the {var.op} result" if var.op is not None else "an unnamed input")
    return f"{what} {var.type}"


def status_origin(group) -> str:
    """The node of ``group`` that can meet bad input (an index or label out of range), as
    describe() shows it (op, type, user's line); the status code names the group, this names
    the variable. Every kernel of the group carries it: the code is the group's first kernel."""
    from .ops.check import ArgCheck
    from .ops.index import IncSubtensor, Subtensor
    nodes = list(getattr(group, "nodes", ()) or ())
    if any(isinstance(n.op, ArgCheck) for n in nodes):   # a check's message says it all
        return next(n.op.message for n in nodes if isinstance(n.op, ArgCheck))
    checked = [n for n in nodes if n.op is not None and (isinstance(n.op, (Subtensor, IncSubtensor))
                                                          or "crossentropy" in type(n.op).__name__.lower())]
    if not checked:
        return ""
    def one(n) -> str:
        named = [f"'{i.name}'" for i in n.inputs[1:] if i.name and i.dtype.startswith(("int", "uint"))]
        return describe(n) + (f" (indices or labels {', '.join(named)})" if named else "")
    return "; ".join(one(n) for n in checked[:3])


def _dim3(v) -> tuple:
    v = (v,) if isinstance(v, (int, np.integer)) else tuple(v)
    return tuple(int(x) for x in v) + (1,) * (3 - len(v))


def elemwise_statements(nodes: Sequence[Variable], names: dict, prefix: str) -> list[str]:
    """C statements computing each elementwise node of ``nodes`` (in order) into a variable
    named ``names[id(node)]`` (assigned here), reading inputs by ``names`` too. Arange nodes
    read the index variable ``names['index']`` (their only axis); random draws read
    ``names['flat']`` as their flat element index (fusion puts a draw only where
    the kernel's elements are the draw's own) and their state through the pointer
    ``names[('state', id(state))]`` (see ``bind_random_states``)."""
    lines: list[str] = []
    for k, node in enumerate(nodes):
        out = f"{prefix}{k}"
        if isinstance(node.op, Elemwise):
            syms = S.symbols(node.op.nin)
            reads = tuple(names[id(i)] for _, i in zip(syms, node.inputs))
            lines += _statements(node.op.expr, reads, out, node.dtype, tuple(i.dtype for i in node.inputs))
        elif isinstance(node.op, Arange):
            start, step = node.op.start, node.op.step
            lines.append(f"const {CTYPES[node.dtype]} {out} = ({CTYPES[node.dtype]})"
                         f"({start}LL + {step}LL * (long long)({names['index']}));")
        elif isinstance(node.op, RandomDraw) and node.op.dist == "permutation":
            lines.append(f"const long long {out} = theta_rand_permutation("
                         f"{names[('state', id(node.inputs[0]))]}, {node.op.stream}ULL, "
                         f"(unsigned long long)({names['flat']}), {int(node.type.shape[-1])}ULL);")
        elif isinstance(node.op, RandomDraw):
            ctype = CTYPES[node.dtype]
            lines.append(f"const {ctype} {out} = theta_rand_{node.op.dist}<{ctype}>("
                         f"{names[('state', id(node.inputs[0]))]}, {node.op.stream}ULL, "
                         f"(unsigned long long)({names['flat']}));")
        else:
            raise NotImplementedError(f"{node.op} is not elementwise")
        names[id(node)] = out
    return lines


@functools.lru_cache(maxsize=4096)
def _statements(expr, input_names: tuple, out: str, dtype: str, input_dtypes: tuple) -> tuple:
    """print_statements, cached: the layers of a deep model print the same expressions into the
    same names (sympy's CSE and printing are most of the time spent rendering a kernel)."""
    syms = S.symbols(len(input_names))
    return tuple(print_statements(expr, dict(zip(syms, input_names)), out, dtype, f"{out}_t", list(input_dtypes)))


def bind_random_states(kb: KernelBuilder, nodes: Sequence[Variable], names: dict) -> set:
    """Pointer parameters for the states that random draws among ``nodes`` read (two words each,
    not a per-element operand): sets ``names[('state', id(state))]`` and returns the ids of the
    states that nothing but draws reads (the caller loads no element of those)."""
    only_draws = set()
    for n in nodes:
        if isinstance(n.op, RandomDraw):
            state = n.inputs[0]
            names[("state", id(state))] = kb.pointer(state)
            if all(isinstance(m.op, RandomDraw) for m in nodes if any(i is state for i in m.inputs)):
                only_draws.add(id(state))
    return only_draws


def offset_expr(strides: Sequence[int], index_names: Sequence[str]) -> str:
    """C expression of a strided offset (skipping zero strides)."""
    terms = [f"{i} * {s}" if s != 1 else i for s, i in zip(strides, index_names) if s != 0]
    return " + ".join(terms) if terms else "0"


def broadcast_strides(layout: Layout, shape: Sequence[int]) -> tuple:
    """Strides to read ``layout`` at each index of the (broadcast, same-rank) ``shape``."""
    return tuple(0 if (d == 1 and n != 1) else s for s, d, n in zip(layout.strides, layout.shape, shape))

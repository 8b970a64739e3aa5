"""DebugMode on the kernel backends: every kernel group checked against the reference.

``theta.function(..., mode='DebugMode')`` compiles a Program that carries the NaN guard's
per-kernel records (compiler/guard.py: each kernel group's graph nodes and where its inputs and
outputs sit) with ``ProgramGuard.debug`` set. The executor snapshots a group's inputs before its
first kernel (runtime/nan_guard.py, the same check items as the NaN guard) and, after its last,
``check_kernel`` re-runs the group's nodes with NumPy on that snapshot (``nan_guard.rerun``) and
compares every output the kernels wrote, each value to its own error bound (compiler/tolerance.py:
from the dtype's precision and the error bound of each op that computed it). The first group
that disagrees raises DebugModeError naming the kernel, the op whose value is wrong (the first
group output, in execution order, that differs), the largest error, and the generated C line
that computes that op where the kernel source has one. A group whose nodes NumPy cannot re-run
on their own (a value not in memory) is counted in ``executor.debug_unchecked`` and not checked.

On the reference backend DebugMode checks each op's result against its type instead
(runtime/reference.py ``check_type``).
"""
from __future__ import annotations

import re

import numpy as np

from ..compiler import tolerance
from ..compiler.errors import DebugModeError, describe
from . import nan_guard


def check_kernel(executor, guard, saved: dict, base: list, scalars: list) -> None:
    """Compare the outputs group ``guard`` (a compiler.guard.KernelGuard) wrote with the
    reference evaluation of its nodes on ``saved`` (its inputs, read before its first kernel),
    each to its own error bound (compiler/tolerance.py)."""
    outputs = [v for v in guard.outputs if v.spec is not None]
    if not outputs:
        return
    env = nan_guard.rerun(guard.nodes, saved)
    if env is None:
        executor.__dict__.setdefault("debug_unchecked", []).append(guard.names)
        return
    with np.errstate(all="ignore"):
        bounds = tolerance.kernel_bounds(guard.nodes, env)
    for v in outputs:
        want = env.get(id(v.var))
        if want is None:
            continue
        got = nan_guard._read(executor, v.spec, base, scalars)
        bound = bounds.get(id(v.var))
        bad = compare(got, np.asarray(want), np.zeros(np.shape(want)) if bound is None else bound)
        if bad is not None:
            raise kernel_mismatch(executor, guard, v.var, got, np.asarray(want), bad, saved)
    executor.__dict__["debug_checked"] = executor.__dict__.get("debug_checked", 0) + 1


def compare(got: np.ndarray, want: np.ndarray, bound: np.ndarray) -> str | None:
    """None when ``got`` matches ``want`` within ``tolerance.allowed(bound)`` (NaN where NaN,
    the same infinities), else a description of the largest error. ``bound`` (want's shape) is
    the error bound of each reference value (tolerance.kernel_bounds); integer and bool values
    must be equal except where their bound says they are uncertain (a near tie)."""
    if got.shape != want.shape:
        return f"shape {got.shape}, the reference's is {want.shape}"
    if got.size == 0:
        return None
    allowed = tolerance.allowed(bound, got.dtype)
    if got.dtype.kind not in "fc":
        diff = (got != want) & ~(np.abs(got.astype(np.float64) - want.astype(np.float64)) <= allowed)
        if not diff.any():
            return None
        k = np.unravel_index(int(np.argmax(diff)), got.shape)
        return (f"{int(diff.sum())} of {got.size} values differ; first at index {tuple(int(i) for i in k)}: "
                f"kernel {_num(got[k])}, reference {_num(want[k])}")
    g, w = got.astype(np.float64 if got.dtype.kind == "f" else np.complex128), want.astype(got.dtype)
    with np.errstate(all="ignore"):
        nan_g, nan_w = np.isnan(g), np.isnan(w)
        err = np.where(nan_g | nan_w, np.where(nan_g == nan_w, 0.0, np.inf), np.abs(g - w))
        err = np.where(np.isinf(w) & (g == w), 0.0, err)
        wrong = err > allowed
    if not wrong.any():
        return None
    # the worst value: the largest error in units of its allowance
    with np.errstate(all="ignore"):
        ratio = np.where(wrong, err / np.maximum(allowed, 1e-300), -1.0)
    k = np.unravel_index(int(np.argmax(ratio)), got.shape)
    at = tuple(int(i) for i in k)
    rel = err[k] / max(abs(complex(w[k])), 1e-30) if np.isfinite(err[k]) else np.inf
    return (f"max error {err[k]:.6g} (relative {rel:.3g}) at index {at}: kernel {_num(got[k])}, "
            f"reference {_num(want[k])}, allowed {allowed[k]:.3g} ({tolerance.SAFETY:g} x the error bound "
            f"of the ops that computed it); {int(wrong.sum())} of {got.size} values outside their bound")


def _num(x) -> str:
    x = np.asarray(x).item()
    return f"{x:.7g}" if isinstance(x, float) else repr(x)


def kernel_mismatch(executor, guard, var, got, want, what: str, saved: dict) -> DebugModeError:
    program = executor.program
    kernels = [program.kernels[k] for k in range(guard.first, guard.last + 1)]
    names = ", ".join(f"{k.name} ({k.family})" for k in kernels)
    op = var.op if var.op is not None else "its input"
    lines = [f"DebugMode: kernel {names} disagrees with the reference evaluation of its nodes",
             f"  first wrong value: {describe(var)}, computed by {op}",
             f"  {what}"]
    # the C lines computing the wrong value: its own statement, then those of the group's nodes
    # it is computed from (the mistake may be in any of them)
    c_names = dict(guard.c_names)
    quoted = []
    for node in [var] + _ancestors_in(guard.nodes, var)[::-1]:
        quoted += [q for q in source_lines(kernels, c_names.get(id(node))) if q not in quoted]
    quoted = quoted[:8]
    for kname, number, text in quoted:
        lines.append(f"  generated source {kname}.cu line {number}: {text.strip()}")
    lines.append("  the kernel computes: " + ", ".join(
        str(n.op) + (f" (created at {n.trace})" if n.trace else "") for n in guard.nodes[:12])
        + (" ..." if len(guard.nodes) > 12 else ""))
    lines.append("  its inputs:")
    for v in guard.inputs:
        value = saved.get(id(v.var))
        lines.append(f"    {nan_guard._input(v.var)}: "
                     f"{nan_guard.summary(value) if value is not None else 'not readable'}")
    err = DebugModeError("\n".join(lines))
    err.kernel, err.op, err.variable, err.got, err.expected = kernels[-1].name, op, var, got, want
    err.source_lines = quoted
    return err


def _ancestors_in(nodes, var) -> list:
    """The nodes among ``nodes`` (a group, in execution order) that ``var`` is computed from."""
    members = {id(n): n for n in nodes}
    found, stack = {}, [var]
    while stack:
        for i in stack.pop().inputs or ():
            if id(i) in members and id(i) not in found:
                found[id(i)] = i
                stack.append(i)
    return [n for n in nodes if id(n) in found]


def source_lines(kernels, c_name: str | None) -> list:
    """[(kernel name, line number, text)] of the C statements defining ``c_name`` (and the
    temporaries printed for it, ``<c_name>_t<k>``) in the kernels' sources."""
    if not c_name:
        return []
    pattern = re.compile(rf"\b{re.escape(c_name)}(_t\d+)?\s*=[^=]")
    found = []
    for k in kernels:
        for number, text in enumerate(k.source.splitlines(), 1):
            if pattern.search(text) and not text.lstrip().startswith("//"):
                found.append((k.name, number, text))
    return found[:6]

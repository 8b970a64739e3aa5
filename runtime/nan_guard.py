"""The NaN guard: stop at the first op (reference) or kernel (emu, cuda) that produces a NaN or Inf.

``theta.function(..., nan_guard=True)`` (or ``theta.config.nan_guard``) compiles a function
whose every float result is checked as soon as it is computed, and raises a NanError naming
the op, the user's line that created it and the ranges of its inputs. A value that was already
NaN or Inf when the step began (an input, a shared variable) is reported as such rather than
blamed on the first op that reads it. Integer and boolean values are never checked.

It costs nothing when off: the reference interpreter tests one flag per op, and an executor
over a Program compiled without ``Program.guard`` gets no check items in its launch order. On
a kernel backend, a guarded group's inputs are read back before its first kernel (a kernel may
write over an input whose last use it is), its outputs after its last kernel; when an output is
not finite, the group's nodes are re-run with NumPy on the saved inputs to find the first op
that produced a NaN or Inf (falling back to naming the whole kernel and its ops).

DebugMode (runtime/debug_mode.py) uses the same check items and the same re-run (``rerun``):
a Program's ``guard.nan`` and ``guard.debug`` say which checks its groups get.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..compiler.errors import NanError, describe
from ..compiler.program import OutputSpec, Ref
from ..compiler.program_check import c_strides


# -- summaries -----------------------------------------------------------------------------------

def bad_counts(a: np.ndarray) -> tuple[int, int]:
    """(number of NaN, number of +-Inf) in a float array; (0, 0) for anything else."""
    a = np.asarray(a)
    if a.dtype.kind not in "fc" or a.size == 0:
        return 0, 0
    finite = np.isfinite(a)
    if finite.all():
        return 0, 0
    n_nan = int(np.isnan(a).sum())
    return n_nan, int(a.size - finite.sum()) - n_nan


def summary(a: Any) -> str:
    """The range of a value for a message: min/max of its finite elements, NaN and Inf counts."""
    a = np.asarray(a)
    if a.size == 0:
        return "empty"
    if a.dtype.kind not in "fc":
        return f"min {a.min()}, max {a.max()}" if a.dtype.kind in "iub" else f"{a.dtype} values"
    finite = a[np.isfinite(a)]
    parts = [f"min {finite.min():.6g}, max {finite.max():.6g}" if finite.size else "no finite value"]
    n_nan, n_inf = bad_counts(a)
    n_pos = int(np.isposinf(a).sum()) if a.dtype.kind == "f" else n_inf
    parts.append(f"{n_nan} NaN, {n_pos} +Inf, {n_inf - n_pos} -Inf" if n_nan or n_inf else "no NaN or Inf")
    return ", ".join(parts)


def _what_bad(a: np.ndarray) -> str:
    n_nan, n_inf = bad_counts(a)
    kinds = [f"NaN ({n_nan} of {a.size} values)" if n_nan else "", f"Inf ({n_inf} of {a.size} values)" if n_inf else ""]
    return " and ".join(k for k in kinds if k)


# -- errors --------------------------------------------------------------------------------------

def leaf_error(what: str, value: np.ndarray) -> NanError:
    """A value that held NaN/Inf before any op ran: ``what`` is e.g. "input 'x' float32[3]"."""
    return NanError(f"NaN guard: {what} contains {_what_bad(value)} before any op ran ({summary(value)}); "
                    "the NaN/Inf comes from the data or from an earlier call, not from this function's ops")


def node_error(node, args: Sequence, out: np.ndarray, kernel: str = "") -> NanError:
    """The op ``node`` (run on ``args``) produced ``out``, which holds NaN/Inf."""
    inside = f" (inside kernel {kernel})" if kernel else ""
    lines = [f"NaN guard: {node.op} produced {_what_bad(out)}{inside}",
             f"  op: {describe(node)}", "  its inputs:"]
    for var, value in zip(node.inputs, args):
        lines.append(f"    {_input(var)}: {summary(value)}")
    return NanError("\n".join(lines))


def kernel_error(guard, value, out: np.ndarray, inputs: dict) -> NanError:
    """A kernel group wrote NaN/Inf into ``value`` (a GuardValue) and no single op could be
    singled out by re-running it: name the kernel, every op it computes and its inputs' ranges."""
    lines = [f"NaN guard: kernel {guard.names[-1]} produced {_what_bad(out)} in {value.what}",
             "  it computes:"]
    lines += [f"    {n.op}" + (f" (created at {n.trace})" if n.trace else "") for n in guard.nodes]
    lines.append("  its inputs:")
    for v in guard.inputs:
        got = inputs.get(id(v.var))
        lines.append(f"    {_input(v.var)}: {summary(got) if got is not None else 'not readable'}")
    return NanError("\n".join(lines))


def _input(var) -> str:
    if var.is_constant:   # describe() would call it 'Variable'
        data = np.asarray(var.data)
        shown = data.item() if data.size == 1 else f"{data.dtype}{list(data.shape)}"
        return f"the constant {shown}"
    return describe(var)


# -- the reference backend -----------------------------------------------------------------------

def check_node(node, args: Sequence, out: np.ndarray) -> None:
    """After the reference backend ran ``node``: raise if it made a float NaN/Inf."""
    if out.dtype.kind in "fc" and out.size and not np.isfinite(out).all():
        raise node_error(node, args, out)


def check_leaves(leaves: Sequence, values: dict, given: dict) -> None:
    """Before the reference backend runs: raise if an input or shared value holds NaN/Inf
    (``given``: what the caller bound to each leaf, a shared variable itself for a shared one)."""
    for var in leaves:
        value = values.get(id(var))
        if value is not None and any(bad_counts(value)):
            kind = "shared variable" if hasattr(given.get(id(var)), "get_value") else "input"
            raise leaf_error(f"{kind} {describe(var)}", value)


def rerun(nodes: Sequence, env: dict, stop: Callable | None = None):
    """Re-run ``nodes`` (in order) with NumPy from ``env`` (id -> value of each node input that
    is not itself one of ``nodes``): the reference evaluation of a kernel group on the inputs the
    kernel read. Returns ``env`` with every node's value added, or None when that cannot be done
    (a value not available, an op that fails on its own). ``stop(node, args, out)`` is called
    after each node; when it returns True, ``(node, args, out)`` is returned instead."""
    env = dict(env)
    with np.errstate(all="ignore"):
        for node in nodes:
            args = []
            for i in node.inputs:
                v = env.get(id(i))
                if v is None:
                    v = i.data if i.is_constant else None
                    if v is None:
                        return None
                args.append(v)
            try:
                out = np.asarray(node.op.perform(*args))
            except Exception:   # a draw needing state, an op NumPy cannot run alone
                return None
            if out.dtype.name != node.dtype:
                out = out.astype(node.dtype)
            if stop is not None and stop(node, args, out):
                return node, args, out
            env[id(node)] = out
    return env


def localize(nodes: Sequence, env: dict):
    """(node, args, out) of the first of ``nodes`` (re-run from ``env`` as ``rerun`` does) whose
    float result is not finite, or None (a value not available, an op that fails, or every
    result finite): the NaN guard then names the whole kernel."""
    found = rerun(nodes, env, stop=lambda node, args, out: bool(out.dtype.kind in "fc" and out.size
                                                                  and not np.isfinite(out).all()))
    return found if isinstance(found, tuple) else None


# -- the kernel backends -------------------------------------------------------------------------

def guarded_order(executor, order: list) -> list:
    """``order`` (the executor's launch order) with the guard's check items: the leaves' check
    first (not in a loop's step, whose leaves are rows the outer program checked), then around
    each kernel group a snapshot of its inputs and a check of its outputs."""
    program = executor.program
    index = {id(plan): i for i, plan in enumerate(executor._launches)}
    before: dict[int, list] = {}
    after: dict[int, list] = {}
    for g in program.guard.kernels:
        saved: dict = {}
        before.setdefault(g.first, []).append(("check", _snapshot(executor, g, saved)))
        after.setdefault(g.last, []).append(("check", _check_outputs(executor, g, saved)))
    nan = getattr(program.guard, "nan", True)
    out = [] if executor.relocatable or not nan else [("check", _check_leaves(executor))]
    for kind, item in order:
        k = index.get(id(item)) if kind == "kernel" else None
        out += before.get(k, [])
        out.append((kind, item))
        out += after.get(k, [])
    return out


def _allocated(spec: OutputSpec, base: list) -> bool:
    """Whether ``spec``'s buffer has memory in this call (an input the kernels do not read for
    these values, like an empty sparse matrix's index arrays, may have none): one that has not
    is not snapshot, and the group's re-run then says it cannot check it."""
    return 0 in tuple(spec.shape) or base[spec.ref.buffer] is not None


def _read(executor, spec: OutputSpec, base: list, scalars: list) -> np.ndarray:
    if 0 in tuple(spec.shape):   # an empty value has no memory (its buffer is never allocated)
        return np.empty(tuple(spec.shape), dtype=spec.dtype)
    return executor._strided(spec, executor.address(spec.ref, base, scalars))


def _reported(executor) -> bool:
    """A kernel already reported bad input in the status word: its error is raised after the
    launches (executor.check_status); what follows it is garbage not worth blaming."""
    status = getattr(executor, "_status", None)
    return status is not None and bool(status.read())


def _check_leaves(executor) -> Callable:
    program = executor.program

    def check(base: list, scalars: list) -> None:
        executor.device.synchronize()
        for slot in executor._bound:
            spec, buf = program.leaves[slot], program.buffers[executor._leaf_buffer[slot]]
            if np.dtype(spec.dtype).kind not in "fc":
                continue
            value = _read(executor, OutputSpec(spec.dtype, tuple(spec.shape), c_strides(spec.shape), Ref(buf.index)),
                          base, scalars)
            if any(bad_counts(value)):
                raise leaf_error(program.guard.leaves[slot], value)
    return check


def _snapshot(executor, guard, saved: dict) -> Callable:
    debug = getattr(executor.program.guard, "debug", False)

    def snapshot(base: list, scalars: list) -> None:
        saved.clear()
        if not debug and not any(is_float(v.var.dtype) for v in guard.outputs):
            return
        executor.device.synchronize()
        for v in guard.inputs:
            if v.spec is not None and _allocated(v.spec, base):
                saved[id(v.var)] = _read(executor, v.spec, base, scalars)
            elif v.var.is_constant:
                saved[id(v.var)] = v.var.data
    return snapshot


def _check_outputs(executor, guard, saved: dict) -> Callable:
    nan = getattr(executor.program.guard, "nan", True)
    debug = getattr(executor.program.guard, "debug", False)

    def check(base: list, scalars: list) -> None:
        outputs = [v for v in guard.outputs if v.spec is not None and is_float(v.var.dtype)] if nan else []
        if not outputs and not debug:
            return
        executor.device.synchronize()
        if _reported(executor):
            return
        if debug:   # DebugMode: the group's outputs against the reference evaluation of its nodes
            from .debug_mode import check_kernel
            check_kernel(executor, guard, saved, base, scalars)
        for v in outputs:
            out = _read(executor, v.spec, base, scalars)
            if out.size and not np.isfinite(out).all():
                found = localize(guard.nodes, saved)
                if found is not None:
                    raise node_error(*found, kernel=guard.names[-1])
                raise kernel_error(guard, v, out, saved)
    return check


def is_float(dtype: str) -> bool:
    return np.dtype(dtype).kind in "fc"


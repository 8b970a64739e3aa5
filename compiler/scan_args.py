"""theta.scan's arguments read as Theano reads them (compiler/scan.py builds the loop from them).

Sequences and outputs_info entries with their taps, the step's return value (outputs, updates
as a dict or a list of pairs, an ``until`` condition), the number of steps, the shared variables
a step carries from step to step, and the checks that a fed-back output keeps its state's dtype
and shape. Every refusal is a typed error naming the scan and its step function's line.
"""
from __future__ import annotations

import numpy as np

from .errors import DTypeError, GraphError, ShapeError, describe
from .graph import Variable, constant, toposort


def where(fn) -> str:
    """The step function's name and the file:line where it is defined."""
    code = getattr(fn, "__code__", None)
    label = getattr(fn, "__name__", type(fn).__name__)
    return f"{label} at {code.co_filename}:{code.co_firstlineno}" if code is not None else label


def as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _is_int(t) -> bool:
    return isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_))


def sequence(s, label: str) -> tuple:
    """(the sequence, its taps). Theano's taps for a sequence: a list, a single int (wrapped in
    a list) or None/absent (``[0]``)."""
    from .tensor.basic import as_tensor_variable
    taps = [0]
    if isinstance(s, dict):
        if "input" not in s:
            raise GraphError(f"{label}: a sequence given as a dict needs an 'input' entry, got keys {sorted(s)}")
        given = s.get("taps")
        taps = [0] if given is None else ([given] if _is_int(given) else given)
        s = s["input"]
    if not isinstance(taps, (list, tuple)) or not taps or not all(_is_int(t) for t in taps):
        raise GraphError(f"{label}: sequence taps must be a list of integers, got {taps!r}")
    s = as_tensor_variable(s)
    if s.ndim == 0:
        raise ShapeError(f"{label}: a sequence must have a leading axis to iterate over, got {describe(s)}")
    return s, [int(t) for t in taps]


def sequence_cut(taps: list) -> tuple[int, int]:
    """The lowest and highest row a step reads relative to its own (Theano cuts a sequence as if
    tap 0 were read too: with taps [1], step 0 reads row 1 and the loop runs len - 1 steps)."""
    return min(min(taps), 0), max(max(taps), 0)


def output_info(o, label: str):
    """None (not fed back), or (initial value, taps). Theano's rules: a dict's ``taps`` is a list
    of distinct negative integers, or None/absent (``[-1]``); a dict without an initial value is
    an output that is not fed back."""
    from .tensor.basic import as_tensor_variable
    if o is None:
        return None
    taps = [-1]
    if isinstance(o, dict):
        if o.get("initial") is None:
            if o.get("taps") is not None:
                raise GraphError(f"{label}: an outputs_info dict with taps {o['taps']!r} needs an 'initial' entry "
                                 "(the output's values before the first step)")
            return None
        taps = o.get("taps")
        taps = [-1] if taps is None else taps
        o = o["initial"]
    if not isinstance(taps, (list, tuple)):
        raise GraphError(f"{label}: output taps must be negative integers, in a list: got {taps!r} "
                         f"(write 'taps': [{taps!r}])")
    if not taps or not all(_is_int(t) and t < 0 for t in taps):
        raise GraphError(f"{label}: output taps must be negative integers, in a list: got {list(taps)!r}")
    taps = [int(t) for t in taps]
    if len(set(taps)) != len(taps):
        raise GraphError(f"{label}: output taps must be different, got {taps!r}")
    init = as_tensor_variable(o)
    window = max(-t for t in taps)
    if taps != [-1] and (init.ndim == 0 or (init.type.shape[0] is not None and init.type.shape[0] < window)):
        raise ShapeError(f"{label}: output taps {taps} need an initial value with at least "
                         f"{window} rows, got {describe(init)}")
    return init, taps


def check_state(k: int, out: Variable, init: Variable, row_shape: tuple, label: str) -> None:
    """A fed-back output must have its state's dtype and shape (Theano refuses the dtype too):
    the state is stored in the initial value's dtype and read back at its shape."""
    if out.ndim != len(row_shape):
        raise ShapeError(f"{label}: output {k} of the step is {describe(out)}, but its initial value "
                         f"{describe(init)} gives states of rank {len(row_shape)}: ranks differ")
    if out.dtype != init.dtype:
        raise DTypeError(
            f"{label}: output {k} of the step is {out.dtype} ({describe(out)}), but its state is {init.dtype} "
            f"(the initial value {_initial(init)}): a step must return its state's dtype. Give the initial "
            f"value the output's dtype (T.zeros((), dtype='{out.dtype}'), T.constant(0.0, dtype='{out.dtype}') "
            f"or T.zeros_like(...) rather than a plain number), or cast the output: T.cast(..., '{init.dtype}')")
    shape = tuple(out.type.shape)
    if any(a is not None and b is not None and a != b for a, b in zip(shape, row_shape)):
        raise ShapeError(f"{label}: output {k} of the step has shape {_fmt(shape)} ({describe(out)}), but the "
                         f"state it feeds has shape {_fmt(row_shape)}: a state must keep its shape from step to step")


def _initial(init: Variable) -> str:
    """A constant initial value (often a Python number the user passed) by its value."""
    if init.is_constant and np.size(init.data) <= 4:
        return f"{np.asarray(init.data).tolist()!r}, {init.dtype}"
    return describe(init)


def _fmt(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def step_result(result, label: str):
    """(the step's outputs, its until condition or None, its updates as (var, expr) pairs), read
    as Theano reads them: outputs (a variable or a list of them), updates (a dict or a list of
    (shared variable, new value) pairs) and an ``until`` condition, in that order, each optional."""
    from .scan import until
    from .tensor.basic import as_tensor_variable
    parts = list(result) if isinstance(result, tuple) else [result]
    if result is None:
        parts = []
    condition = None
    if parts and isinstance(parts[-1], until):
        condition = parts.pop().condition
        if condition.ndim != 0:
            raise GraphError(f"{label}: until needs a scalar condition, got {describe(condition)}")
    updates: list = []
    if parts and _is_updates(parts[-1]):
        updates = _pairs(parts.pop())
    elif parts and isinstance(parts[0], dict):      # Theano also accepted (updates, outputs)
        updates = _pairs(parts.pop(0))
    if len(parts) == 1 and isinstance(parts[0], (list, tuple)):
        parts = list(parts[0])
    outs = []
    for k, o in enumerate(parts):
        if not isinstance(o, (Variable, int, float, np.number, np.ndarray)) or getattr(o, "dtype", None) == object:
            raise GraphError(f"{label}: the step returns {o!r} as output {k}; a step returns its outputs (variables), "
                             "then optionally its updates (a dict or a list of (shared variable, new value) pairs), "
                             "then optionally theta.scan_module.until(condition)")
        outs.append(as_tensor_variable(o))
    return outs, condition, updates


def _is_updates(x) -> bool:
    if isinstance(x, dict):
        return True
    return isinstance(x, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in x)


def _pairs(x) -> list:
    return list(x.items()) if isinstance(x, dict) else [tuple(p) for p in x]


def carried_updates(step_updates: list, step_outs: list, label: str) -> list:
    """[(shared variable, its value after a step)]: the step's own updates, then the default
    updates (random streams' counters) of the shared variables the step reads."""
    from .scan_streams import advanced_default_update
    from .shared import SharedVariable
    from .tensor.basic import as_tensor_variable, cast
    carried = []
    for var, expr in step_updates:
        if not isinstance(var, SharedVariable):
            raise GraphError(f"{label}: the step's updates update {var!r}, which is not a shared variable")
        expr = as_tensor_variable(expr)
        if expr.ndim != var.ndim or (expr.dtype != var.dtype and not _same_kind(expr.dtype, var.dtype)):
            raise GraphError(f"{label}: the step updates {describe(var)} with {describe(expr)}: types differ")
        shape = tuple(expr.type.shape)
        if any(a is not None and a != b for a, b in zip(shape, var.value_shape)):
            raise ShapeError(f"{label}: the step updates {describe(var)} of shape {_fmt(var.value_shape)} with "
                             f"{describe(expr)} of shape {_fmt(shape)}: a state must keep its shape from step to step")
        carried.append((var, cast(expr, var.dtype) if expr.dtype != var.dtype else expr))
    pending = step_outs + [e for _, e in carried]
    graph = list(pending)
    seen = {id(v) for v, _ in carried}
    while pending:
        leaves = [v for v in toposort(pending) if isinstance(v, SharedVariable) and id(v) not in seen]
        pending = []
        for var in leaves:
            seen.add(id(var))
            upd = getattr(var, "default_update", None)
            if upd is not None:
                # a loop inside the step may carry the same stream: move past what it drew
                upd = advanced_default_update(var, upd, graph)
                carried.append((var, upd))
                pending.append(upd)
    return carried


def _same_kind(src: str, dst: str) -> bool:
    return bool(np.can_cast(src, dst, "same_kind"))


def n_steps_of(n_steps, seqs: list, label: str) -> Variable:
    from .tensor.basic import as_tensor_variable, cast, minimum
    if n_steps is None:
        if not seqs:
            raise GraphError(f"{label}: n_steps is needed when there are no sequences")
        steps = seqs[0].shape[0]
        for s in seqs[1:]:   # Theano: the shortest sequence
            steps = minimum(steps, s.shape[0])
    else:
        steps = as_tensor_variable(n_steps)
        if steps.ndim or steps.dtype.startswith("float") or (
                steps.is_constant and (int(steps.data) != steps.data or int(steps.data) < 0)):
            raise GraphError(f"{label}: n_steps must be a non-negative integer, got "
                             f"{steps.data if steps.is_constant else describe(steps)}")
    steps = cast(steps, "int64") if steps.dtype != "int64" else steps
    return constant(int(steps.data), dtype="int64") if steps.is_constant else steps

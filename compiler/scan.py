"""theta.scan and its shorthands (map, reduce, foldl, foldr), with Theano's calling convention.

    outputs, updates = theta.scan(fn, sequences=None, outputs_info=None, non_sequences=None,
                                  n_steps=None, go_backwards=False, truncate_gradient=-1, ...)

``fn`` is called once, on placeholders, in Theano's argument order: for each sequence its
slices at each tap, for each output with an initial value its previous values at each tap,
then the non-sequences. Whatever else it reads (shared variables, outer expressions) becomes a
non-sequence of the loop automatically. It returns the step's outputs in ``outputs_info``
order, optionally with ``theta.scan_module.until(cond)`` to stop after the step where ``cond``
holds. The loop is one op (compiler/ops/scan.py); its gradient is a backwards scan.

Taps are rewritten before the op sees them: a sequence read at taps [-1, 0, 1] becomes three
shifted views of it (the loop runs len - 2 steps), and an output read at taps [-2, -1] is
carried as a window of its last two values (the initial value's last two rows to start with).

``updates`` maps the shared variables the step updates to their values after the last step:
the step's own returned updates, and the state of every random stream the step draws from
(carried from step to step, so each step draws new numbers). Pass them to theta.function. The kernel backends run a scan as a Loop
of its step's kernels (compiler/pipeline.py, runtime/loop.py), except a loop that stops on a
condition (``until``) or a step that indexes with values it reads per step (reference only).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from .errors import GraphError, ShapeError, describe
from .graph import Variable, constant, rebuild, toposort
from .ops.scan import Scan
from .types import TensorType


class until:
    """The stopping condition a scan step may return (Theano's ``theano.scan_module.until``).

    Return ``(outputs, theta.scan_module.until(cond))`` (or with updates: ``(outputs, updates,
    until(cond))``) from the step: the loop stops after the step where ``cond`` is true, and the
    results have as many rows as steps run. Such a loop runs on the reference backend only.

    Parameters
    ----------
    condition : scalar tensor-like
        Nonzero stops the loop.
    """

    def __init__(self, condition) -> None:
        from .tensor.basic import as_tensor_variable
        self.condition = as_tensor_variable(condition)


def scan(fn: Callable, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient: int = -1, go_backwards: bool = False, mode=None, name: str | None = None,
         strict: bool = False, return_list: bool = False):
    """Loop a step function over sequences, carrying state (Theano's ``theano.scan``).

    The loop is one op whose gradient is backpropagation through time, itself a scan running
    backwards. On the kernel backends the step's kernels are compiled once and run ``n_steps``
    times on the device, reading and writing rows of the sequences and results in place.

    Parameters
    ----------
    fn : callable
        The step. Called once, on placeholders, in Theano's argument order: each sequence's
        slices (one per tap), then each output's previous values (one per tap), then the
        non-sequences.
    sequences : Variable, dict or list of them, optional
        Iterated over their first axis. A dict ``{'input': x, 'taps': [-1, 0]}`` reads several
        rows per step.
    outputs_info : Variable, dict, None or list of them, optional
        One entry per output of the step: an initial value (the output is fed back: the step
        receives its previous value), a dict ``{'initial': h0, 'taps': [-2, -1]}`` (the initial
        value then has one row per tap), or None (the output is not fed back).
    non_sequences : list of Variable, optional
        Passed unchanged to every step. Anything else the step reads (shared variables, outer
        expressions) becomes a non-sequence automatically.
    n_steps : int or integer scalar Variable, optional
        The number of steps; default the length of the shortest sequence.
    truncate_gradient : int, optional
        Backpropagate through at most this many steps (-1, the default: all).
    go_backwards : bool, optional
        Iterate the sequences from the end.
    mode : optional
        Accepted for Theano compatibility (the function's mode applies).
    name : str, optional
        Shown in errors and printing.
    strict : bool, optional
        Accepted for Theano compatibility.
    return_list : bool, optional
        Always return a list of outputs, even for one.

    Returns
    -------
    outputs : Variable or list of Variable
        Each output stacked over the steps (first axis: the step).
    updates : OrderedDict
        Shared variables the step updates (its own returned updates and the states of the
        random streams it draws from) with their values after the last step: pass them to
        :func:`theta.function`.

    Raises
    ------
    GraphError
        A step that returns the wrong number of outputs, an output whose shape or dtype changes
        from step to step, a bad ``truncate_gradient``.
    ShapeError
        A sequence too short for its taps.

    Examples
    --------
    >>> x, h0 = T.dmatrix("x"), T.dvector("h0")
    >>> W = theta.shared(np.eye(3) * 0.5, name="W")
    >>> H, updates = theta.scan(lambda xt, h: T.tanh(xt + T.dot(h, W)), sequences=x, outputs_info=h0)
    >>> cost = (H[-1] ** 2).sum()
    >>> step = theta.function([x, h0], cost, updates=[(W, W - 0.1 * theta.grad(cost, W))])
    """
    from .tensor.basic import as_tensor_variable, cast
    name = name or "scan"
    label = f"{name} (step function {_where(fn)})"
    if not isinstance(truncate_gradient, int) or (truncate_gradient < 1 and truncate_gradient != -1):
        raise GraphError(f"{label}: truncate_gradient must be -1 or a positive number of steps, "
                         f"got {truncate_gradient!r}")

    # sequences: one shifted view per tap
    seqs, seq_names = [], []
    for var, taps in (_sequence(s, label) for s in _as_list(sequences)):
        lo, hi = min(taps), max(taps)
        if var.type.shape[0] is not None and var.type.shape[0] < hi - lo + 1:
            raise ShapeError(f"{label}: taps {taps} need a sequence of at least {hi - lo + 1} rows, "
                             f"got {describe(var)}")
        for tap in taps:
            start, cut = tap - lo, hi - tap
            seqs.append(var[start:-cut] if cut else (var[start:] if start else var))
            seq_names.append(f"{var.name or 'seq'}[t{tap:+d}]" if tap else f"{var.name or 'seq'}[t]")
    # outputs fed back: the initial state (or a window of the last values, for taps other than [-1])
    infos = [_output_info(o, label) for o in _as_list(outputs_info)]
    nonseqs = [as_tensor_variable(v) for v in _as_list(non_sequences)]

    seq_in = [_placeholder(s.type.shape[1:], s.dtype, n) for s, n in zip(seqs, seq_names)]
    state_in, step_state_args = [], []
    for info in infos:
        if info is None:
            continue
        init, taps = info
        if taps == [-1]:
            p = _placeholder(init.type.shape, init.dtype, f"{init.name or 'state'}[t-1]")
            step_state_args.append(p)
        else:
            window = max(-t for t in taps)
            p = _placeholder((window,) + tuple(init.type.shape[1:]), init.dtype, f"{init.name or 'state'}[window]")
            step_state_args += [p[window + t] for t in taps]
        state_in.append(p)
    nonseq_in = [_placeholder(v.type.shape, v.dtype, v.name) for v in nonseqs]
    result = fn(*seq_in, *step_state_args, *nonseq_in)
    outs, condition, step_updates = _step_result(result, label)
    if not infos:
        infos = [None] * len(outs)
    if len(outs) != len(infos):
        raise GraphError(f"{label}: the step returns {len(outs)} outputs, outputs_info lists {len(infos)}")

    # states first (fed back), then the outputs that are not
    state_outs, plain_outs, initial, windows = [], [], [], []
    for k, (o, info) in enumerate(zip(outs, infos)):
        if info is None:
            plain_outs.append(o)
            continue
        init, taps = info
        value_ndim = init.ndim if taps == [-1] else init.ndim - 1
        if o.ndim != value_ndim:
            raise ShapeError(f"{label}: output {k} of the step is {describe(o)}, but its initial value "
                             f"{describe(init)} gives states of rank {value_ndim}: ranks differ")
        if o.dtype != init.dtype:
            if strict:
                raise GraphError(f"{label}: output {k} of the step is {describe(o)}, its state is {init.dtype}")
            o = cast(o, init.dtype)
        if taps == [-1]:
            state_outs.append(o)
            initial.append(init)
            windows.append(0)
        else:
            window = max(-t for t in taps)
            p = state_in[len(state_outs)]
            state_outs.append(_shift_in(p, o))
            initial.append(init[-window:])
            windows.append(window)

    # Shared variables the step updates (its returned updates, and the default updates of the
    # random streams it draws from) are carried from step to step as hidden states; their last
    # values are scan's updates.
    carried = _carried_updates(step_updates, state_outs + plain_outs + ([condition] if condition is not None else []),
                               label)
    hidden_in = [_placeholder(v.type.shape, v.dtype, f"{v.name or 'shared'}[t-1]") for v, _ in carried]
    n_user_states = len(state_outs)
    step_outs = state_outs + [e for _, e in carried] + plain_outs + ([condition] if condition is not None else [])
    if carried:
        step_outs = rebuild(step_outs, {v: p for (v, _), p in zip(carried, hidden_in)})
    state_in += hidden_in
    initial += [v for v, _ in carried]
    windows += [0] * len(carried)
    n_states = n_user_states + len(carried)

    # Everything else the step reads becomes a non-sequence (placeholder in, outer value passed).
    inner_inputs = seq_in + state_in + nonseq_in
    known = {id(p) for p in inner_inputs}
    free = [v for v in toposort(step_outs) if v.is_leaf and not v.is_constant and id(v) not in known]
    lifted = {v: _placeholder(v.type.shape, v.dtype, v.name) for v in free}
    inner_outs = rebuild(step_outs, lifted) if lifted else step_outs
    inner_inputs += list(lifted.values())
    outer = seqs + initial + nonseqs + list(lifted)
    steps = _n_steps(n_steps, seqs, label)

    op = Scan(tuple(inner_inputs), tuple(inner_outs), len(seqs), n_states, bool(go_backwards), 0, name,
              condition is not None, truncate_gradient)
    stacked = [op.at(k)(steps, *outer) for k in range(n_states + len(plain_outs))]
    stacked = [s[:, -1] if w else s for s, w in zip(stacked, windows)] + stacked[n_states:]
    updates = OrderedDict((v, stacked[n_user_states + k][-1]) for k, (v, _) in enumerate(carried))
    stacked = stacked[:n_user_states] + stacked[n_states:]
    # back in the user's order
    results, s_it, p_it = [], iter(stacked[:n_user_states]), iter(stacked[n_user_states:])
    for info in infos:
        results.append(next(p_it) if info is None else next(s_it))
    if len(results) == 1 and not return_list:
        return results[0], updates
    return results, updates


def map(fn: Callable, sequences, non_sequences=None, go_backwards: bool = False, name: str | None = None):
    """Apply ``fn`` to each row of the sequences (Theano's ``theano.map``): a scan without state.

    Parameters
    ----------
    fn : callable
        The step. Called once, on placeholders, in Theano's argument order: each sequence's
        slices (one per tap), then each output's previous values (one per tap), then the
        non-sequences.
    sequences : Variable or list of Variable
    non_sequences : list of Variable, optional
    go_backwards : bool, optional
    name : str, optional

    Returns
    -------
    (outputs, updates)
        As :func:`scan`.

    Examples
    --------
    >>> squares, _ = theta.map(lambda v: v ** 2, sequences=T.vector("v"))
    """
    return scan(fn, sequences, None, non_sequences, go_backwards=go_backwards, name=name or "map")


def reduce(fn: Callable, sequences, outputs_info, non_sequences=None, go_backwards: bool = False,
           name: str | None = None):
    """The final state of a scan (Theano's ``theano.reduce``).

    Parameters
    ----------
    fn : callable
        The step. Called once, on placeholders, in Theano's argument order: each sequence's
        slices (one per tap), then each output's previous values (one per tap), then the
        non-sequences.
    sequences : Variable or list of Variable
    outputs_info : Variable or list
        The initial accumulators.
    non_sequences : list of Variable, optional
    go_backwards : bool, optional
    name : str, optional

    Returns
    -------
    (outputs, updates)
        The outputs' values after the last step (not stacked), and the updates.

    Examples
    --------
    >>> total, _ = theta.reduce(lambda v, acc: acc + v, sequences=x, outputs_info=T.zeros(()))
    """
    outs, updates = scan(fn, sequences, outputs_info, non_sequences, go_backwards=go_backwards,
                         name=name or "reduce")
    if isinstance(outs, list):
        return [o[-1] for o in outs], updates
    return outs[-1], updates


def foldl(fn: Callable, sequences, outputs_info, non_sequences=None, name: str | None = None):
    """Left fold: :func:`reduce` from the first row to the last (Theano's ``theano.foldl``).

    Parameters
    ----------
    fn : callable
        The step. Called once, on placeholders, in Theano's argument order: each sequence's
        slices (one per tap), then each output's previous values (one per tap), then the
        non-sequences.
    sequences : Variable or list of Variable
    outputs_info : Variable or list
        The initial accumulators.
    non_sequences : list of Variable, optional
    name : str, optional

    Returns
    -------
    (outputs, updates)
    """
    return reduce(fn, sequences, outputs_info, non_sequences, False, name or "foldl")


def foldr(fn: Callable, sequences, outputs_info, non_sequences=None, name: str | None = None):
    """Right fold: :func:`reduce` from the last row to the first (Theano's ``theano.foldr``).

    Parameters
    ----------
    fn : callable
        The step. Called once, on placeholders, in Theano's argument order: each sequence's
        slices (one per tap), then each output's previous values (one per tap), then the
        non-sequences.
    sequences : Variable or list of Variable
    outputs_info : Variable or list
        The initial accumulators.
    non_sequences : list of Variable, optional
    name : str, optional

    Returns
    -------
    (outputs, updates)
    """
    return reduce(fn, sequences, outputs_info, non_sequences, True, name or "foldr")


def _where(fn) -> str:
    code = getattr(fn, "__code__", None)
    label = getattr(fn, "__name__", type(fn).__name__)
    return f"{label} at {code.co_filename}:{code.co_firstlineno}" if code is not None else label


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _placeholder(shape, dtype: str, name: str | None) -> Variable:
    return Variable(TensorType(dtype, tuple(shape)), name=name)


def _shift_in(window: Variable, value: Variable) -> Variable:
    """The window of the last values after ``value``: drop the oldest, append ``value``."""
    from .tensor.basic import concatenate
    return concatenate([window[1:], value.dimshuffle("x", *range(value.ndim))], axis=0)


def _step_result(result, label: str):
    """(the step's outputs, its until condition or None, its updates as a dict)."""
    from .tensor.basic import as_tensor_variable
    parts = list(result) if isinstance(result, tuple) else [result]
    condition = None
    if parts and isinstance(parts[-1], until):
        condition = parts.pop().condition
        if condition.ndim != 0:
            raise GraphError(f"{label}: until needs a scalar condition, got {describe(condition)}")
    updates: dict = {}
    if parts and isinstance(parts[-1], dict):
        updates = parts.pop()
    elif parts and isinstance(parts[0], dict):      # Theano also accepts (updates, outputs)
        updates = parts.pop(0)
    if len(parts) == 1 and isinstance(parts[0], (list, tuple)):
        parts = list(parts[0])
    return [as_tensor_variable(o) for o in parts], condition, updates


def _carried_updates(step_updates: dict, step_outs: list, label: str) -> list:
    """[(shared variable, its value after a step)]: the step's own updates, then the default
    updates (random streams' counters) of the shared variables the step reads."""
    from .shared import SharedVariable
    from .tensor.basic import as_tensor_variable, cast
    carried = []
    for var, expr in (step_updates.items() if isinstance(step_updates, dict) else step_updates):
        if not isinstance(var, SharedVariable):
            raise GraphError(f"{label}: the step updates {describe(var)}, which is not a shared variable")
        expr = as_tensor_variable(expr)
        if expr.ndim != var.ndim or (expr.dtype != var.dtype and not _same_kind(expr.dtype, var.dtype)):
            raise GraphError(f"{label}: the step updates {describe(var)} with {describe(expr)}: types differ")
        carried.append((var, cast(expr, var.dtype) if expr.dtype != var.dtype else expr))
    pending = step_outs + [e for _, e in carried]
    seen = {id(v) for v, _ in carried}
    while pending:
        leaves = [v for v in toposort(pending) if isinstance(v, SharedVariable) and id(v) not in seen]
        pending = []
        for var in leaves:
            seen.add(id(var))
            upd = getattr(var, "default_update", None)
            if upd is not None:
                carried.append((var, upd))
                pending.append(upd)
    return carried


def _same_kind(src: str, dst: str) -> bool:
    import numpy as np
    return bool(np.can_cast(src, dst, "same_kind"))


def _n_steps(n_steps, seqs: list, label: str) -> Variable:
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


def _sequence(s, label: str) -> tuple:
    from .tensor.basic import as_tensor_variable
    taps = [0]
    if isinstance(s, dict):
        if "input" not in s:
            raise GraphError(f"{label}: a sequence given as a dict needs an 'input' entry, got keys {sorted(s)}")
        taps = list(s.get("taps", [0]))
        s = s["input"]
    if not taps or any(not isinstance(t, int) for t in taps):
        raise GraphError(f"{label}: sequence taps must be a list of integers, got {taps!r}")
    s = as_tensor_variable(s)
    if s.ndim == 0:
        raise ShapeError(f"{label}: a sequence must have a leading axis to iterate over, got {describe(s)}")
    return s, taps


def _output_info(o, label: str):
    """None, or (initial value, taps)."""
    from .tensor.basic import as_tensor_variable
    if o is None:
        return None
    taps = [-1]
    if isinstance(o, dict):
        if "initial" not in o:
            raise GraphError(f"{label}: an outputs_info dict needs an 'initial' entry, got keys {sorted(o)}")
        taps = list(o.get("taps", [-1]))
        o = o["initial"]
    if not taps or any(not isinstance(t, int) or t >= 0 for t in taps):
        raise GraphError(f"{label}: output taps must be negative integers, got {taps!r}")
    init = as_tensor_variable(o)
    if taps != [-1] and (init.ndim == 0 or (init.type.shape[0] is not None and init.type.shape[0] < max(-t for t in taps))):
        raise ShapeError(f"{label}: output taps {taps} need an initial value with at least "
                         f"{max(-t for t in taps)} rows, got {describe(init)}")
    return init, taps

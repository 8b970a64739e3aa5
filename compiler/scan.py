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
As in Theano, a sequence is cut as if tap 0 were read too: taps [1] read rows 1, 2, ... (len - 1
steps), taps [-2, -1] read rows (0, 1), (1, 2), ... (len - 2 steps). A fed-back output keeps its
state's dtype and shape (checked when the scan is built, when shapes become known, and on the
reference backend at every step).

``updates`` maps the shared variables the step updates to their values after the last step:
the step's own returned updates, and the state of every random stream the step draws from
(carried from step to step, so each step draws new numbers). Pass them to theta.function; a
stream whose update is not passed still moves past the numbers the loop drew (the stream's
default update does, compiler/scan_streams.py), so no two calls repeat them. The kernel
backends run a scan as a Loop of its step's kernels (compiler/pipeline.py, runtime/loop.py),
except a loop that stops on a condition (``until``) or a step that indexes with values it reads
per step (reference only).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from .errors import GraphError, ShapeError, describe
from .graph import Variable, rebuild, toposort
from .ops.scan import Scan
from .scan_args import (as_list, carried_updates, check_state, n_steps_of, output_info, sequence, sequence_cut,
                        step_result, where)
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
        rows per step (the sequence is cut as if tap 0 were read too, as in Theano).
    outputs_info : Variable, dict, None or list of them, optional
        One entry per output of the step: an initial value (the output is fed back: the step
        receives its previous value; the step must return the same dtype and shape), a dict
        ``{'initial': h0, 'taps': [-2, -1]}`` (the initial value then has one row per tap), or
        None (the output is not fed back).
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
        A step that returns the wrong number of outputs or something that is not outputs,
        updates and a condition; malformed taps; a bad ``truncate_gradient``.
    DTypeError
        A fed-back output whose dtype differs from its initial value's (as in Theano; give the
        initial value the output's dtype, e.g. ``T.zeros((), dtype='float64')``).
    ShapeError
        A sequence too short for its taps; a fed-back output (or a shared variable the step
        updates) whose rank or shape differs from its state's.

    Examples
    --------
    >>> x, h0 = T.dmatrix("x"), T.dvector("h0")
    >>> W = theta.shared(np.eye(3) * 0.5, name="W")
    >>> H, updates = theta.scan(lambda xt, h: T.tanh(xt + T.dot(h, W)), sequences=x, outputs_info=h0)
    >>> cost = (H[-1] ** 2).sum()
    >>> step = theta.function([x, h0], cost, updates=[(W, W - 0.1 * theta.grad(cost, W))])
    """
    from .tensor.basic import as_tensor_variable
    name = name or "scan"
    label = f"{name} (step function {where(fn)})"
    if not isinstance(truncate_gradient, int) or (truncate_gradient < 1 and truncate_gradient != -1):
        raise GraphError(f"{label}: truncate_gradient must be -1 or a positive number of steps, "
                         f"got {truncate_gradient!r}")

    # sequences: one shifted view per tap, cut as if tap 0 were read too (Theano's rule)
    seqs, seq_names = [], []
    for var, taps in (sequence(s, label) for s in as_list(sequences)):
        lo, hi = sequence_cut(taps)
        if var.type.shape[0] is not None and var.type.shape[0] < hi - lo + 1:
            raise ShapeError(f"{label}: taps {taps} need a sequence of at least {hi - lo + 1} rows, "
                             f"got {describe(var)}")
        for tap in taps:
            start, cut = tap - lo, hi - tap
            seqs.append(var[start:-cut] if cut else (var[start:] if start else var))
            seq_names.append(f"{var.name or 'seq'}[t{tap:+d}]" if tap else f"{var.name or 'seq'}[t]")
    # outputs fed back: the initial state (or a window of the last values, for taps other than [-1])
    infos = [output_info(o, label) for o in as_list(outputs_info)]
    nonseqs = [as_tensor_variable(v) for v in as_list(non_sequences)]

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
    outs, condition, step_updates = step_result(result, label)
    if not infos:
        infos = [None] * len(outs)
    if len(outs) != len(infos):
        raise GraphError(f"{label}: the step returns {len(outs)} outputs, outputs_info lists {len(infos)}")

    # states first (fed back), then the outputs that are not; each state's new value (before a
    # window shifts it in) is checked against the state's shape at every step (Scan.state_values)
    state_outs, plain_outs, initial, windows, values, names = [], [], [], [], [], []
    for k, (o, info) in enumerate(zip(outs, infos)):
        if info is None:
            plain_outs.append(o)
            continue
        init, taps = info
        row_shape = tuple(init.type.shape) if taps == [-1] else tuple(init.type.shape[1:])
        check_state(k, o, init, row_shape, label)
        values.append(o)
        names.append(f"output {k} of the step")
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
    carried = carried_updates(step_updates, state_outs + plain_outs + ([condition] if condition is not None else []),
                              label)
    hidden_in = [_placeholder(v.type.shape, v.dtype, f"{v.name or 'shared'}[t-1]") for v, _ in carried]
    n_user_states = len(state_outs)
    step_outs = state_outs + [e for _, e in carried] + plain_outs + ([condition] if condition is not None else [])
    values += [e for _, e in carried]
    names += [f"the step's update of {describe(v)}" for v, _ in carried]
    if carried:
        step_outs, values = _split(rebuild(step_outs + values, {v: p for (v, _), p in zip(carried, hidden_in)}),
                                   len(step_outs))
    state_in += hidden_in
    initial += [v for v, _ in carried]
    windows += [0] * len(carried)
    n_states = n_user_states + len(carried)

    # Everything else the step reads becomes a non-sequence (placeholder in, outer value passed).
    inner_inputs = seq_in + state_in + nonseq_in
    known = {id(p) for p in inner_inputs}
    free = [v for v in toposort(step_outs) if v.is_leaf and not v.is_constant and id(v) not in known]
    lifted = {v: _placeholder(v.type.shape, v.dtype, v.name) for v in free}
    inner_outs = step_outs
    if lifted:
        inner_outs, values = _split(rebuild(step_outs + values, lifted), len(step_outs))
    inner_inputs += list(lifted.values())
    outer = seqs + initial + nonseqs + list(lifted)
    steps = n_steps_of(n_steps, seqs, label)

    op = Scan(tuple(inner_inputs), tuple(inner_outs), len(seqs), n_states, bool(go_backwards), 0, name,
              condition is not None, truncate_gradient, tuple(values), label, tuple(names))
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


def _placeholder(shape, dtype: str, name: str | None) -> Variable:
    return Variable(TensorType(dtype, tuple(shape)), name=name)


def _split(values: list, n: int) -> tuple[list, list]:
    return list(values[:n]), list(values[n:])


def _shift_in(window: Variable, value: Variable) -> Variable:
    """The window of the last values after ``value``: drop the oldest, append ``value``."""
    from .tensor.basic import concatenate
    return concatenate([window[1:], value.dimshuffle("x", *range(value.ndim))], axis=0)

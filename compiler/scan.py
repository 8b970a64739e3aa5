"""theta.scan and its shorthands (map, reduce, foldl, foldr), with Theano's calling convention.

    outputs, updates = theta.scan(fn, sequences=None, outputs_info=None, non_sequences=None,
                                  n_steps=None, go_backwards=False, truncate_gradient=-1, ...)

``fn`` is called once, on placeholders, in Theano's argument order: one slice of each
sequence, the previous value of each output that has an initial value in ``outputs_info``,
then the non-sequences. Whatever else it reads (shared variables, outer expressions) becomes a
non-sequence of the loop automatically. It returns the step's outputs, in ``outputs_info``
order. The loop is one op (compiler/ops/scan.py) whose gradient is a backwards scan.

What this first step supports: sequence taps [0] and output taps [-1], ``None`` in
``outputs_info`` for outputs that are not fed back, symbolic or constant ``n_steps`` (the
shortest sequence when not given), ``go_backwards``. ``updates`` is always empty (no random
streams yet). The reference backend runs scans; the kernel backends do not lower them yet.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from .errors import GraphError, ShapeError, describe
from .graph import Variable, rebuild, toposort
from .ops.scan import Scan
from .types import TensorType


def scan(fn: Callable, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient: int = -1, go_backwards: bool = False, mode=None, name: str | None = None,
         strict: bool = False, return_list: bool = False):
    """Theano's scan: (outputs, updates). See the module docstring."""
    from .graph import constant
    from .tensor.basic import as_tensor_variable, cast, minimum
    name = name or "scan"
    seqs = [_sequence(s, name) for s in _as_list(sequences)]
    infos = [_output_info(o, name) for o in _as_list(outputs_info)]
    nonseqs = [as_tensor_variable(v) for v in _as_list(non_sequences)]
    if truncate_gradient != -1:
        raise NotImplementedError(f"{name}: truncate_gradient is not supported yet (full backpropagation "
                                  "through time only)")

    seq_in = [_placeholder(s.type.shape[1:], s.dtype, f"{s.name or 'seq'}[t]") for s in seqs]
    state_in = [_placeholder(i.type.shape, i.dtype, f"{i.name or 'state'}[t-1]") for i in infos if i is not None]
    nonseq_in = [_placeholder(v.type.shape, v.dtype, v.name) for v in nonseqs]
    result = fn(*seq_in, *state_in, *nonseq_in)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        result, updates = result
        if updates:
            raise NotImplementedError(f"{name}: a step that returns updates needs random streams (not yet)")
    outs = [as_tensor_variable(o) for o in (result if isinstance(result, (list, tuple)) else [result])]
    if not infos:
        infos = [None] * len(outs)
    if len(outs) != len(infos):
        raise GraphError(f"{name}: the step returns {len(outs)} outputs, outputs_info lists {len(infos)}")

    # states first (fed back), then the outputs that are not
    state_outs, plain_outs = [], []
    initial = []
    for o, info in zip(outs, infos):
        if info is None:
            plain_outs.append(o)
            continue
        if o.ndim != info.ndim:
            raise ShapeError(f"{name}: the step returns {describe(o)} for the state whose initial value is "
                             f"{describe(info)}: ranks differ")
        if o.dtype != info.dtype:
            if strict:
                raise GraphError(f"{name}: the step returns {describe(o)} for a state of dtype {info.dtype}")
            o = cast(o, info.dtype)
        state_outs.append(o)
        initial.append(info)

    # Everything else the step reads becomes a non-sequence (placeholder in, outer value passed).
    inner_inputs = seq_in + state_in + nonseq_in
    known = {id(p) for p in inner_inputs}
    free = [v for v in toposort(state_outs + plain_outs) if v.is_leaf and not v.is_constant and id(v) not in known]
    lifted = {v: _placeholder(v.type.shape, v.dtype, v.name) for v in free}
    inner_outs = rebuild(state_outs + plain_outs, lifted) if lifted else state_outs + plain_outs
    inner_inputs += list(lifted.values())
    outer = seqs + initial + nonseqs + list(lifted)

    if n_steps is None:
        if not seqs:
            raise GraphError(f"{name}: n_steps is needed when there are no sequences")
        lengths = [s.shape[0] for s in seqs]
        steps = lengths[0]
        for length in lengths[1:]:   # Theano: the shortest sequence
            steps = minimum(steps, length)
    else:
        steps = as_tensor_variable(n_steps)
        if steps.is_constant and (steps.data.ndim or int(steps.data) != steps.data or int(steps.data) < 0):
            raise GraphError(f"{name}: n_steps must be a non-negative integer, got {steps.data}")
    steps = cast(steps, "int64") if steps.dtype != "int64" else steps
    if steps.is_constant:
        steps = constant(int(steps.data), dtype="int64")

    op = Scan(tuple(inner_inputs), tuple(inner_outs), len(seqs), len(state_outs), bool(go_backwards), 0, name)
    stacked = [op.at(k)(steps, *outer) for k in range(len(inner_outs))]
    # back in the user's order
    results, s, p = [], iter(stacked[:len(state_outs)]), iter(stacked[len(state_outs):])
    for info in infos:
        results.append(next(p) if info is None else next(s))
    if len(results) == 1 and not return_list:
        return results[0], OrderedDict()
    return results, OrderedDict()


def map(fn: Callable, sequences, non_sequences=None, go_backwards: bool = False, name: str | None = None):
    return scan(fn, sequences, None, non_sequences, go_backwards=go_backwards, name=name or "map")


def reduce(fn: Callable, sequences, outputs_info, non_sequences=None, go_backwards: bool = False,
           name: str | None = None):
    """The last value of a scan (Theano's reduce)."""
    outs, updates = scan(fn, sequences, outputs_info, non_sequences, go_backwards=go_backwards,
                         name=name or "reduce")
    if isinstance(outs, list):
        return [o[-1] for o in outs], updates
    return outs[-1], updates


def foldl(fn: Callable, sequences, outputs_info, non_sequences=None, name: str | None = None):
    return reduce(fn, sequences, outputs_info, non_sequences, False, name or "foldl")


def foldr(fn: Callable, sequences, outputs_info, non_sequences=None, name: str | None = None):
    return reduce(fn, sequences, outputs_info, non_sequences, True, name or "foldr")


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _placeholder(shape, dtype: str, name: str | None) -> Variable:
    return Variable(TensorType(dtype, tuple(shape)), name=name)


def _sequence(s, name: str) -> Variable:
    from .tensor.basic import as_tensor_variable
    if isinstance(s, dict):
        if list(s.get("taps", [0])) != [0]:
            raise NotImplementedError(f"{name}: sequence taps other than [0] are not supported yet")
        s = s["input"]
    s = as_tensor_variable(s)
    if s.ndim == 0:
        raise ShapeError(f"{name}: a sequence must have a leading axis to iterate over, got {describe(s)}")
    return s


def _output_info(o, name: str):
    from .tensor.basic import as_tensor_variable
    if o is None:
        return None
    if isinstance(o, dict):
        if list(o.get("taps", [-1])) != [-1]:
            raise NotImplementedError(f"{name}: output taps other than [-1] are not supported yet")
        o = o["initial"]
    return as_tensor_variable(o)


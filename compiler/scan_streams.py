"""A random stream's counter after the loops that drew from it.

A scan step that draws from a stream carries the stream's state ``[key, counter]`` from step
to step (compiler/scan.py): step t draws at counter c + t and the loop ends at c + n. Its final
state is one of scan's ``updates``; a user who does not pass them to theta.function still gets
the stream's default update, which by itself adds one to the counter, so the next call would
draw again at counters c + 1 ... c + n - 1: the same numbers shifted by one step. Instead, the
default update of a stream's state moves the counter past every counter the graph's loops used:
``max(c + 1, each loop's final counter)``. Two calls therefore never share a number (Theano
repeats them), and the numbers stay the same on every backend, since the update is graph algebra.
"""
from __future__ import annotations

from .graph import Variable, toposort


def advanced_default_update(var: Variable, update: Variable, outputs: list) -> Variable:
    """``update`` (the default update of ``var``), raised past the final state of every loop in
    ``outputs``' graph that carries ``var`` as a state, where ``var`` is a random stream's state
    (other default updates are returned unchanged: only a counter can be raised)."""
    if not getattr(var, "is_stream_state", False):
        return update
    from .tensor.basic import concatenate, maximum
    finals, seen = [], set()
    for node in toposort(list(outputs)):
        op = node.op
        if op is None or op.family != "scan":
            continue
        first = 1 + op.n_seqs
        for j in range(op.n_states):
            if node.inputs[first + j] is not var:
                continue
            states = op.at(j)(*node.inputs)     # hash-consed: the node scan's updates read
            if id(states) in seen:
                continue
            seen.add(id(states))
            # the state before the first step leads, so a loop of no steps ends where it began
            finals.append(concatenate([var.dimshuffle("x", 0), states], axis=0)[-1])
    for final in finals:
        update = maximum(update, final)
    return update

"""Backpropagation through time: the vector-Jacobian product of a Scan is a Scan running backwards.

For the gradient ``G`` of forward output k (stacked over steps), the backward loop visits the
forward steps last to first. Its sequences are the forward step's inputs in step order (the
sequence slices, each state's previous value) and the slices of ``G``; its states carry the
gradient reaching each forward state from later steps and the running sum of the
non-sequences' gradients. Its step is the forward step's vector-Jacobian product, built once
by theta.grad with known gradients on the step's outputs. Afterwards the carries hold the
gradients of the initial states and non-sequences; the per-step gradients of the sequence
slices are put back in sequence order.

With ``truncate_gradient=k`` only the last k steps are visited (Theano's truncated BPTT): the
earlier steps, and the initial states when there are more than k steps, get no gradient. With
``until``, the loop ran as many steps as its outputs have rows.
"""
from __future__ import annotations

from .graph import Variable
from .ops.scan import Scan
from .types import TensorType, is_float


def scan_vjp(op: Scan, inputs: list, gout: Variable) -> list:
    from .grad import grad
    from .tensor import basic as T
    steps, outer = inputs[0], inputs[1:]
    n_seqs, n_states = op.n_seqs, op.n_states
    seqs = outer[:n_seqs]
    initial = outer[n_seqs:n_seqs + n_states]
    nonseqs = outer[n_seqs + n_states:]
    seq_in = op.inner_inputs[:n_seqs]
    prev_in = op.inner_inputs[n_seqs:n_seqs + n_states]
    nonseq_in = op.inner_inputs[n_seqs + n_states:]

    # the steps the loop ran, and the ones the gradient goes back through
    n = op.at(0)(steps, *outer).shape[0] if op.until else steps
    first = T.maximum(n - op.truncate, 0) if op.truncate > 0 else T.constant(0, dtype="int64")
    # the forward step's inputs in step order, from step `first` on
    step_seqs = [(s[::-1][:n] if op.go_backwards else s[:n])[first:] for s in seqs]
    states = [op.at(j)(steps, *outer) for j in range(n_states)]
    prev = [T.concatenate([_padleft(i), h[:-1]], axis=0)[first:] for i, h in zip(initial, states)]
    count = n - first

    # the backward step: carries in, the forward step's VJP out
    g_slice = _placeholder(gout.type.shape[1:], gout.dtype, "g[t]")
    carries = [_placeholder(i.type.shape, i.dtype, "d_state") for i in initial]
    float_nonseqs = [k for k, w in enumerate(nonseq_in) if is_float(w.dtype)]
    accums = [_placeholder(nonseq_in[k].type.shape, nonseq_in[k].dtype, f"d_{nonseq_in[k].name}")
              for k in float_nonseqs]
    known = {}
    for j, out in enumerate(op.inner_outputs):
        g = None
        if j < n_states and is_float(out.dtype):
            g = carries[j]
        if j == op.index:
            g = g_slice if g is None else g + g_slice
        if g is not None:
            known[out] = g
    wrt = list(seq_in) + list(prev_in) + [nonseq_in[k] for k in float_nonseqs]
    float_wrt = [w for w in wrt if is_float(w.dtype)]
    grads = dict(zip(map(id, float_wrt), grad(None, float_wrt, known_grads=known, disconnected_inputs="ignore")))
    new_carries = [_cast(grads[id(p)], p.dtype) if id(p) in grads else T.zeros_like(c)
                   for p, c in zip(prev_in, carries)]
    new_accums = [a + _cast(grads[id(nonseq_in[k])], a.dtype) for a, k in zip(accums, float_nonseqs)]
    float_seqs = [k for k, x in enumerate(seq_in) if is_float(x.dtype)]
    seq_grads = [_cast(grads[id(seq_in[k])], seq_in[k].dtype) for k in float_seqs]

    back = Scan(tuple(seq_in) + tuple(prev_in) + (g_slice,) + tuple(carries) + tuple(accums) + tuple(nonseq_in),
                tuple(new_carries) + tuple(new_accums) + tuple(seq_grads),
                n_seqs + n_states + 1, n_states + len(accums), True, 0, f"grad_of_{op.name}")
    back_outer = (step_seqs + prev + [gout[first:]] + [T.zeros_like(i) for i in initial]
                  + [T.zeros_like(nonseqs[k]) for k in float_nonseqs] + list(nonseqs))
    outs = [back.at(k)(count, *back_outer) for k in range(len(back.inner_outputs))]

    def last(stack: Variable, like: Variable) -> Variable:
        # the final carry (zero when there are no steps)
        return T.concatenate([_padleft(T.zeros_like(like)), stack], axis=0)[-1]

    result: list = [None]   # n_steps: an integer
    seq_result: dict[int, Variable] = {}
    for m, k in enumerate(float_seqs):
        per_step = outs[n_states + len(accums) + m]          # backward order: forward steps n-1 .. first
        # forward step s read row s (row len-1-s going backwards)
        rows = seqs[k].shape[0]
        target = T.zeros_like(seqs[k])[rows - n:rows - first] if op.go_backwards else T.zeros_like(seqs[k])[first:n]
        seq_result[k] = T.inc_subtensor(target, per_step if op.go_backwards else per_step[::-1])
    result += [seq_result.get(k) for k in range(n_seqs)]
    for j in range(n_states):   # the initial state's gradient, unless truncation stopped short of it
        if not is_float(initial[j].dtype):
            result.append(None)
            continue
        g0 = last(outs[j], initial[j])
        result.append(g0 if op.truncate <= 0 else T.switch(T.eq(first, 0), g0, T.zeros_like(g0)))
    acc_result = {k: last(outs[n_states + m], nonseqs[k]) for m, k in enumerate(float_nonseqs)}
    result += [acc_result.get(k) for k in range(len(nonseqs))]
    return result


def _padleft(x: Variable) -> Variable:
    return x.dimshuffle("x", *range(x.ndim))


def _placeholder(shape, dtype: str, name: str) -> Variable:
    return Variable(TensorType(dtype, tuple(shape)), name=name)


def _cast(v: Variable, dtype: str) -> Variable:
    from .tensor.basic import cast
    return v if v.dtype == dtype else cast(v, dtype)

"""The loop op behind theta.scan (compiler/scan.py builds it from a step function).

A ``Scan`` node runs a step graph ``n_steps`` times. The step graph (``inner_inputs`` ->
``inner_outputs``) reads, at step t, one slice of each sequence, the previous value of each
recurrent state, and the non-sequences (everything else the step reads, lifted into the
node's inputs, shared variables included, so the outer function sees them). Its outputs are
the new states, then the outputs that are not fed back. The node's inputs are

    n_steps, sequences..., initial states..., non-sequences...

and node ``index`` k is output k stacked over the steps (the op is one node per output, as
theta's graph has one value per node; the reference runs the loop once per output node).

The gradient is backpropagation through time, itself a ``Scan`` running backwards: its step
is the vector-Jacobian product of the forward step (theta.grad with known_grads), carrying
the gradient of each state and accumulating the non-sequences' gradients.

The reference backend interprets the step's graph with each op's NumPy ``perform``; the kernel
backends compile the step once and run it as a Loop (compiler/pipeline.py, runtime/loop.py).
Going backwards, each sequence is read from its own last row (Theano reverses, then truncates).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import GraphError, ShapeError, describe
from ..graph import Op, Variable, toposort
from ..types import TensorType


@dataclasses.dataclass(frozen=True, eq=False)
class Scan(Op):
    inner_inputs: tuple      # placeholders: sequence slices, previous states, non-sequences
    inner_outputs: tuple     # new states, then outputs not fed back
    n_seqs: int
    n_states: int
    go_backwards: bool = False
    index: int = 0           # which output this node is
    name: str = "scan"
    until: bool = False      # the last inner output is a condition: stop after the step where it holds
    truncate: int = -1       # backpropagate through the last ``truncate`` steps only (-1: all)
    # Each state's new value as the step computes it (the inner output itself, or for a window of
    # taps the value shifted into it): its shape is checked against the state's at every step.
    # Empty: the states' inner outputs.
    state_values: tuple = ()
    where: str = ""          # the scan and its step function's line, for errors
    state_names: tuple = ()  # what each state's value is to the user ("output 0 of the step"), for errors
    family = "scan"

    # Equality by the step graph's identity and the parameters (Variables hash by identity).
    def _key(self) -> tuple:
        return (self.inner_inputs, self.inner_outputs, self.n_seqs, self.n_states, self.go_backwards,
                self.index, self.until, self.truncate, self.state_values)

    def __eq__(self, other) -> bool:
        return isinstance(other, Scan) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return f"{self.name}[{self.index}]"

    @property
    def n_nonseqs(self) -> int:
        return len(self.inner_inputs) - self.n_seqs - self.n_states

    def at(self, index: int) -> "Scan":
        return dataclasses.replace(self, index=index)

    def values_of_states(self) -> tuple:
        return self.state_values or tuple(self.inner_outputs[:self.n_states])

    def state_checks(self) -> list[tuple]:
        """[(state j, its value in the step, the step's placeholder of the state)]: the value has
        the placeholder's shape (a window's placeholder has one more axis, the window)."""
        first = self.n_seqs
        return [(j, v, self.inner_inputs[first + j]) for j, v in enumerate(self.values_of_states())]

    def check_state_shapes(self, values, inner_inputs) -> None:
        """Each state's value against its placeholder, where both shapes are known."""
        for j, (value, p) in enumerate(zip(values, inner_inputs[self.n_seqs:self.n_seqs + self.n_states])):
            want, got = tuple(p.type.shape[p.ndim - value.ndim:]), tuple(value.type.shape)
            if any(a is not None and b is not None and a != b for a, b in zip(got, want)):
                raise self.shape_mismatch(j, value, p, got, want)

    def shape_mismatch(self, j: int, value: Variable, placeholder: Variable, got: tuple, want: tuple) -> ShapeError:
        what = self.state_names[j] if j < len(self.state_names) else f"output {j} of the step"
        return ShapeError(f"{self.where or self.name}: {what} has shape {_fmt(got)} ({describe(value)}), but the "
                          f"state {placeholder.name!r} it feeds has shape {_fmt(want)}: a state must keep its shape "
                          "from step to step")

    def make_type(self, n_steps: Variable, *inputs: Variable) -> TensorType:
        if n_steps.ndim != 0 or n_steps.dtype not in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"):
            raise GraphError(f"{self.name}: n_steps must be an integer scalar, got {describe(n_steps)}")
        if len(inputs) != len(self.inner_inputs):
            raise GraphError(f"{self.name}: {len(inputs)} inputs for {len(self.inner_inputs)} step inputs")
        for k, (outer, inner) in enumerate(zip(inputs, self.inner_inputs)):
            want = inner.ndim + 1 if k < self.n_seqs else inner.ndim
            if outer.ndim != want or outer.dtype != inner.dtype:
                raise ShapeError(f"{self.name}: {describe(outer)} does not fit the step's input {describe(inner)}")
        self.check_state_shapes(self.values_of_states(), self.inner_inputs)   # known shapes: checked now
        steps = int(n_steps.data) if n_steps.is_constant and not self.until else None
        out = self.inner_outputs[self.index]
        return TensorType(out.dtype, (steps,) + tuple(out.type.shape))

    def rebuild(self, inputs, ctx) -> Variable:
        """Re-apply on new outer inputs; where their shapes are more concrete than the step's
        placeholders (a specialization), the step graph is specialized too, once per loop and
        input types (so the nodes of one loop's outputs stay one loop)."""
        shapes = [tuple(v.type.shape[1:]) if k < self.n_seqs else tuple(v.type.shape)
                  for k, v in enumerate(inputs[1:])]
        if all(tuple(p.type.shape) == s for p, s in zip(self.inner_inputs, shapes)):
            return self(*inputs)
        key = (self.at(0), tuple(shapes))
        base = _specialized.get(key)
        if base is None:
            from ..graph import rebuild
            placeholders = [Variable(TensorType(p.dtype, s), name=p.name) for p, s in zip(self.inner_inputs, shapes)]
            n = len(self.inner_outputs)
            mapping = dict(zip(self.inner_inputs, placeholders))
            # the states' values first: a wrong shape is named before the step graph trips on it
            self.check_state_shapes(rebuild(list(self.values_of_states()), mapping), placeholders)
            outs = rebuild(list(self.inner_outputs) + list(self.state_values), mapping)
            base = dataclasses.replace(self.at(0), inner_inputs=tuple(placeholders), inner_outputs=tuple(outs[:n]),
                                       state_values=tuple(outs[n:]))
            if len(_specialized) > 512:
                _specialized.clear()
            _specialized[key] = base
        return base.at(self.index)(*inputs)

    def perform(self, n_steps, *values):
        n = np.asarray(n_steps)
        if n.ndim or int(n) != n:
            raise GraphError(f"{self.name}: n_steps must be an integer, got {n_steps!r}")
        outs = run_loop(self, int(n), values)
        return outs[self.index]

    def grad(self, inputs, output, gout):
        from ..scan_grad import scan_vjp
        return scan_vjp(self, list(inputs), gout)


# (loop, step input shapes) -> the loop with its step graph specialized to them
_specialized: dict = {}


def run_loop(op: Scan, n_steps: int, values) -> list[np.ndarray]:
    """Every output of the scan, stacked over its ``n_steps`` steps (NumPy)."""
    if n_steps < 0:
        raise GraphError(f"{op.name}: n_steps must not be negative, got {n_steps}")
    seqs = values[:op.n_seqs]
    states = list(values[op.n_seqs:op.n_seqs + op.n_states])
    nonseqs = values[op.n_seqs + op.n_states:]
    for s in seqs:
        if len(s) < n_steps:
            raise ShapeError(f"{op.name}: a sequence of length {len(s)} is shorter than the {n_steps} steps")
    order = [n for n in toposort(list(op.inner_outputs) + list(op.values_of_states())) if not n.is_leaf]
    outputs = op.inner_outputs[:-1] if op.until else op.inner_outputs
    # each state's value must keep the initial state's shape (a window's: its rows' shape)
    checks = {id(v): (j, v, p, np.shape(states[j])[p.ndim - v.ndim:]) for j, v, p in op.state_checks()}
    stacked: list[list] = [[] for _ in outputs]
    for step in range(n_steps):
        # going backwards, each sequence is read from its own end (Theano reverses, then truncates)
        rows = [s[len(s) - 1 - step] if op.go_backwards else s[step] for s in seqs]
        env = {id(p): v for p, v in zip(op.inner_inputs, rows + states + list(nonseqs))}
        results = _interpret(order, op.inner_outputs, env, lambda key, value: _check(op, checks, key, value))
        for k in range(len(outputs)):
            stacked[k].append(results[k])
        states = [np.asarray(r, dtype=o.dtype) for r, o in zip(results[:op.n_states], op.inner_outputs)]
        if op.until and bool(np.asarray(results[-1])):
            break
    outs = []
    for k, o in enumerate(outputs):
        if stacked[k]:
            outs.append(np.stack([np.asarray(r, dtype=o.dtype) for r in stacked[k]]))
        else:
            shape = tuple(d if d is not None else 0 for d in o.type.shape)
            if k < op.n_states:
                shape = np.shape(values[op.n_seqs + k])
            outs.append(np.zeros((0,) + tuple(shape), dtype=o.dtype))
    return outs


def _interpret(order, outputs, env: dict, check=None) -> list[np.ndarray]:
    """The step graph's outputs given its inputs in ``env``, node by node with NumPy;
    ``check(id of a variable, value)`` sees every value as it is computed (the inputs first)."""
    values = dict(env)
    if check is not None:
        for key, value in env.items():
            check(key, value)
    for node in order:
        args = [values[id(i)] if id(i) in values else i.data for i in node.inputs]
        out = np.asarray(node.op.perform(*args))
        values[id(node)] = out = out.astype(node.dtype) if out.dtype.name != node.dtype else out
        if check is not None:
            check(id(node), out)
    return [values[id(o)] if id(o) in values else o.data for o in outputs]


def _check(op: Scan, checks: dict, key: int, value: np.ndarray) -> None:
    """A state's new value must have the state's shape, before anything reads it."""
    entry = checks.get(key)
    if entry is not None and np.shape(value) != entry[3]:
        j, v, p, want = entry
        raise op.shape_mismatch(j, v, p, np.shape(value), want)


def _fmt(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")

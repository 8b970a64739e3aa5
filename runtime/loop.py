"""Running a Loop (a scan) inside a Program: its step, compiled once, issued n_steps times.

The step has an executor of its own (its kernels, arena and constants are loaded once, as a
module of their own, so a new sequence length reuses the step's built kernels). At step t its
leaves are bound to rows of the outer buffers: row t of each sequence (row n-1-t when the scan
goes backwards, counted from that sequence's own end), each state's previous value (the initial value at step 0, then row t-1 of
that state's stacked output) and the non-sequences; its outputs are written straight into row
t of the stacked outputs. Nothing goes through the host between steps: on cuda every step is
queued on the stream, and the recurrent state stays on the device.
"""
from __future__ import annotations

import numpy as np

from ..compiler.program import Loop


class LoopRunner:
    def __init__(self, loop: Loop, outer_program, device) -> None:
        from .executor import Executor
        self.loop = loop
        self.step = Executor(loop.step, device, relocatable=True)
        self._item_of = lambda ref: np.dtype(outer_program.buffers[ref.buffer].dtype).itemsize
        out_specs = loop.step.outputs
        # rows of outputs the outer graph does not read (a state still needs its previous row)
        self._scratch = {}
        for k, (ref, row) in enumerate(loop.outputs):
            if ref is None:
                nbytes = max(loop.n_steps * row * np.dtype(out_specs[k].dtype).itemsize, 1)
                self._scratch[k] = device.alloc(nbytes)
        self._row_bytes = [row * np.dtype(spec.dtype).itemsize for (_, row), spec in zip(loop.outputs, out_specs)]

    def issue(self, outer, base: list, scalars: list) -> None:
        """Queue every step; ``outer`` (the Program's executor) resolves the outer refs."""
        loop = self.loop
        seqs = [(outer.address(ref, base, scalars), stride * self._item_of(ref), rows) for ref, stride, rows in loop.seqs]
        initial = [outer.address(ref, base, scalars) for ref in loop.initial]
        nonseqs = [outer.address(ref, base, scalars) for ref in loop.nonseqs]
        outs = [int(self._scratch[k]) if ref is None else outer.address(ref, base, scalars)
                for k, (ref, _) in enumerate(loop.outputs)]
        n = loop.n_steps
        for t in range(n):
            # going backwards, each sequence from its own last row (Theano: reverse, then truncate)
            leaves = [a + ((rows - 1 - t) if loop.go_backwards else t) * stride for a, stride, rows in seqs]
            leaves += [initial[j] if t == 0 else outs[j] + (t - 1) * self._row_bytes[j] for j in range(loop.n_states)]
            leaves += nonseqs
            self.step.issue_step(leaves, [a + t * rb for a, rb in zip(outs, self._row_bytes)])

    def check_status(self) -> None:
        self.step.check_status()

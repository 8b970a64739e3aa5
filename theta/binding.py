"""Binding compiled graphs to backends: the one place that knows both the compiler and the runtime.

theta.compiler turns graphs into Programs (data) and never imports theta.runtime; the runtime
executes Programs and never builds them. A compiled function asks this module (handed to the
compiler once, by theta/__init__.py) for something that runs its specialized graph:

    reference   runtime.reference interprets the graph with NumPy (the oracle)
    emu, cuda   compiler.pipeline builds a Program, runtime.executor runs it over the device

Each runner has ``run(leaf_values, scalar_values) -> results`` and ``applies_updates``: the
reference returns the update values for the function to store; a kernel backend writes them
into the shared variables' device buffers itself and returns only the outputs.
"""
from __future__ import annotations

from typing import Sequence


class ReferenceRunner:
    backend = "reference"
    applies_updates = False
    kernels: list = []

    def __init__(self, outputs: Sequence, leaves: Sequence, scalars: Sequence, nan_guard: bool = False,
                 debug: bool = False) -> None:
        from .runtime.reference import ReferenceProgram
        self.graph = ReferenceProgram(outputs, nan_guard, debug=debug)
        self.leaves, self.scalars = list(leaves), list(scalars)

    def run(self, leaf_values: Sequence, scalar_values: Sequence) -> list:
        import numpy as np
        env = {id(v): x for v, x in zip(self.leaves, leaf_values)}
        env.update({id(s): np.asarray(x, dtype="int64") for s, x in zip(self.scalars, scalar_values)})
        return self.graph.run(env)


class KernelRunner:
    """A Program run by the executor over a device; updates are applied on the device."""

    applies_updates = True

    def __init__(self, program, device, outputs_on_device: bool = False) -> None:
        from .runtime.executor import Executor
        self.program, self.backend = program, device.name
        self.executor = Executor(program, device)
        self.outputs_on_device = outputs_on_device

    @property
    def kernels(self) -> list:
        return self.program.kernels

    def run(self, leaf_values: Sequence, scalar_values: Sequence) -> list:
        return self.executor.run(leaf_values, scalar_values, self.outputs_on_device)


def device(backend: str, options=None):
    """The runtime device of a kernel backend name ("emu", "cuda"; "auto" resolved first)."""
    from .runtime import backends
    return backends.device(backends.resolve(backend), asan=bool(getattr(options, "emu_asan", False)),
                           check=bool(getattr(options, "emu_check", False)))


def build(outputs: Sequence, options, leaves: Sequence = (), scalars: Sequence = (), n_outputs: int | None = None,
          update_targets: Sequence[int] = (), n_inputs: int | None = None):
    """A runner for the specialized, rewritten graph ``outputs`` (function outputs, then one update
    value per entry of ``update_targets``: the leaf index it writes) on ``options.backend``; the
    leaves are ``n_inputs`` inputs, then shared variables (None: all inputs)."""
    from .runtime import backends
    backend = backends.resolve(options.backend)
    if backend == "reference":
        return ReferenceRunner(outputs, leaves, scalars, bool(getattr(options, "nan_guard", False)),
                               debug=bool(getattr(options, "debug_mode", False)))
    from .compiler.pipeline import build_program
    program = build_program(outputs, leaves, scalars, len(update_targets), list(update_targets),
                            guard=bool(getattr(options, "nan_guard", False)), n_inputs=n_inputs,
                            debug=bool(getattr(options, "debug_mode", False)))
    return KernelRunner(program, device(backend, options))


def reference(outputs: Sequence, leaves: Sequence = (), scalars: Sequence = ()) -> ReferenceRunner:
    """The NumPy interpreter of ``outputs`` (value-dependent index scalars are computed with it)."""
    return ReferenceRunner(outputs, leaves, scalars)


def save_function(path, program, state: dict, **meta):
    """Write a compiled function for theta.load (its Program, artifacts, metadata and state)."""
    from .runtime.loaded import save_function as save
    return save(path, program, state, **meta)

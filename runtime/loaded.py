"""theta.load: run a saved Program (a compiled training step, say) without the graph.

``f.save(path)`` writes the Program of ``f``'s latest specialization together with the
current values of its shared variables; ``theta.load(path)`` returns a callable that takes
the function's inputs, returns its outputs, and applies its updates to the state it loaded
(readable with ``get_value(name)``, writable with ``set_value``, and saved back with
``save_state``). Nothing in the directory is unpickled or executed as Python.
"""
from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Sequence

import numpy as np

from ..compiler.errors import ArtifactError, InputError, ShapeError
from ..compiler.program import Program

STATE = "state.npz"


class LoadedFunction:
    def __init__(self, program: Program, state: dict[str, np.ndarray], n_inputs: int, backend: str = "auto",
                 single: bool = False, n_outputs: int | None = None) -> None:
        from .backends import resolve
        self.program = program
        self.n_inputs = n_inputs
        self.single = single
        self.n_outputs = len(program.outputs) - program.n_updates if n_outputs is None else n_outputs
        self._state_names = [leaf.name for leaf in program.leaves[n_inputs:]]
        missing = [n for n in self._state_names if n not in state]
        if missing:
            raise ArtifactError(f"saved state lacks values for {missing}")
        self.state = {n: np.array(state[n], copy=True) for n in self._state_names}
        for leaf in program.leaves[n_inputs:]:
            if self.state[leaf.name].shape != tuple(leaf.shape) or self.state[leaf.name].dtype.name != leaf.dtype:
                raise ArtifactError(f"saved value of {leaf.name} is {self.state[leaf.name].dtype}"
                                    f"{list(self.state[leaf.name].shape)}, the program needs {leaf.dtype}{list(leaf.shape)}")
        backend = resolve(backend)
        if backend == "cuda":
            from .cuda import CudaExecutor
            self.executor = CudaExecutor(program)
        elif backend in ("emu", "reference"):
            # a Program holds kernels, not a graph: without a GPU it runs on emu
            from .emu import EmuExecutor
            self.executor = EmuExecutor(program)
        else:
            raise InputError(f"unknown backend {backend!r}")

    def __call__(self, *inputs, scalars: Sequence[int] = ()):
        if len(inputs) != self.n_inputs:
            raise InputError(f"this program takes {self.n_inputs} inputs, got {len(inputs)}")
        values = []
        for spec, value in zip(self.program.leaves, inputs):
            arr = np.asarray(value)
            if arr.dtype.name != spec.dtype:
                if not np.can_cast(arr.dtype, spec.dtype, "same_kind"):
                    raise InputError(f"input {spec.name} needs {spec.dtype}, got {arr.dtype}")
                arr = arr.astype(spec.dtype)
            if arr.shape != tuple(spec.shape):
                raise ShapeError(f"input {spec.name} needs shape {tuple(spec.shape)}, got {arr.shape} "
                                 "(a saved program is specialized to the shapes it was compiled for)")
            values.append(arr)
        values += [self.state[n] for n in self._state_names]
        if len(scalars) != len(self.program.scalars):
            raise InputError(f"this program takes {len(self.program.scalars)} runtime scalars "
                             f"({', '.join(self.program.scalars) or 'none'}), got {len(scalars)}")
        results = self.executor.run_values(values, list(scalars))
        outs = results[:self.n_outputs]
        for target, value in zip(self.program.update_targets, results[self.n_outputs:]):
            name = self._state_names[target - self.n_inputs]
            self.state[name] = np.array(value, copy=True)
        return outs[0] if self.single else outs

    def get_value(self, name: str) -> np.ndarray:
        if name not in self.state:
            raise InputError(f"no state named {name!r}; known: {', '.join(self._state_names)}")
        return self.state[name].copy()

    def set_value(self, name: str, value) -> None:
        old = self.get_value(name)
        arr = np.asarray(value, dtype=old.dtype)
        if arr.shape != old.shape:
            raise ShapeError(f"set_value({name!r}): shape {arr.shape}, the program needs {old.shape}")
        self.state[name] = arr.copy()

    def save_state(self, path: str | os.PathLike) -> None:
        write_state(pathlib.Path(path), self.state)


def write_state(directory: pathlib.Path, state: dict[str, np.ndarray]) -> None:
    """Atomically (temp file + rename) write the state next to a program."""
    fd, tmp = tempfile.mkstemp(prefix=".state.", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **state)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / STATE)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike, backend: str = "auto") -> LoadedFunction:
    """Load a directory written by ``f.save(path)`` (inputs in, outputs out, updates applied to
    the loaded state) or by ``f.program.save(path)`` (every input and shared value passed in,
    outputs and update values returned)."""
    import json
    path = pathlib.Path(path)
    program = Program.load(path)
    if not (path / "function.json").exists():
        # A bare Program (f.program.save): every leaf is an input, every result an output.
        return LoadedFunction(program, {}, len(program.leaves), backend, False, len(program.outputs))
    try:
        meta = json.loads((path / "function.json").read_text())
        with np.load(path / STATE, allow_pickle=False) as npz:
            state = {k: npz[k] for k in npz.files}
    except FileNotFoundError as e:
        raise ArtifactError(f"{path} is a bare program, not a saved function ({e.filename} missing)") from e
    except (ValueError, OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path}: corrupt saved function ({e})") from e
    return LoadedFunction(program, state, int(meta["n_inputs"]), backend, bool(meta["single"]), int(meta["n_outputs"]))

"""theta.load: run a saved Program (a compiled training step, say) without the graph.

``f.save(path)`` writes the Program of ``f``'s latest specialization (with its artifacts:
runtime.artifacts) together with ``function.json`` (how many inputs and outputs, whether
input downcasts are allowed) and ``state.npz`` (the current values of its shared
variables), all checksummed (compiler.savedir). ``theta.load(path)`` returns a callable that
takes the function's inputs, checked as theta.function checks them (compiler.convert),
returns its outputs, and applies its updates to the state it loaded (readable with
``get_value(name)``, writable with ``set_value``, and saved back with ``save_state``).

Nothing in the directory is unpickled or executed as Python, and loading imports neither
the compiler's graph (sympy) nor jinja2.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pathlib
import zipfile
from typing import Any, Sequence

import numpy as np

from ..compiler import program_check, savedir
from ..compiler.convert import MISSING, convert_input, place_arguments
from ..compiler.errors import ArtifactError, DTypeError, InputError, ThetaError, public_entry
from ..compiler.program import Program
from .backends import device, resolve
from .device import Resident
from .executor import Executor

STATE = "state.npz"
META = "function.json"
SPECIALIZED = "(a saved program is specialized to the shapes it was compiled for)"


class LoadedFunction:
    def __init__(self, program: Program, state: dict[str, np.ndarray], n_inputs: int, backend: str = "auto",
                 single: bool = False, n_outputs: int | None = None, *, allow_input_downcast: bool = False,
                 name: str | None = None, path: str | os.PathLike | None = None,
                 specialized: dict[int, Any] | None = None,
                 inputs: Sequence[tuple[str | None, Any]] | None = None) -> None:
        """``inputs``: per input, the keyword it may be passed by and its default value (None:
        none), as theta.function's ``In``; by default the leaves' names and no defaults."""
        self.program = program
        self.inputs = list(inputs) if inputs is not None else \
            [(leaf.name, None) for leaf in program.leaves[:n_inputs]]
        self._names: dict[str, int] = {}
        for pos, (key, _) in enumerate(self.inputs):
            if key:
                self._names.setdefault(key, pos)
        self.specialized = dict(specialized or {})   # input position -> the value compiled for
        self.n_inputs = n_inputs
        self.single = single
        self.n_outputs = len(program.outputs) - program.n_updates if n_outputs is None else n_outputs
        self.allow_input_downcast = allow_input_downcast
        self.name = name
        self.path = None if path is None else pathlib.Path(path)  # where save_state() writes by default
        self._state_names = [leaf.name for leaf in program.leaves[n_inputs:]]
        missing = [n for n in self._state_names if n not in state]
        if missing:
            raise ArtifactError(f"saved state lacks values for {missing}")
        for leaf in program.leaves[n_inputs:]:
            value = state[leaf.name]
            if value.shape != tuple(leaf.shape) or value.dtype.name != leaf.dtype:
                raise ArtifactError(f"saved value of {leaf.name} is {value.dtype}{list(value.shape)}, "
                                    f"the program needs {leaf.dtype}{list(leaf.shape)}")
        # the state lives on the device between calls; updates are written there in place
        self.state = {n: Resident(state[n]) for n in self._state_names}
        backend = resolve(backend, need_nvcc=False)   # a saved program carries its cubins and PTX
        if backend not in ("cuda", "emu", "reference"):
            raise InputError(f"unknown backend {backend!r}")
        # a Program holds kernels, not a graph: without a GPU it runs on emu
        self.executor = Executor(program, device("cuda" if backend == "cuda" else "emu"))
        self._bare = n_inputs == len(program.leaves)   # update values are returned, not kept
        self._runtime_refs = program_check.runtime_accesses(program)   # checked with each call's scalars

    def _what(self) -> str:
        return f"loaded function {self.name!r}" if self.name else "loaded function"

    def _bind(self, args: tuple, kwargs: dict) -> list:
        """The inputs in order from positional and keyword arguments and defaults, as
        theta.function binds them (compiler/function.py, Function._bind)."""
        slots = place_arguments(args, kwargs, self._names, self.n_inputs, self._what())
        for pos, value in enumerate(slots):
            if value is MISSING:
                default = self.inputs[pos][1]
                if default is None:
                    spec = self.program.leaves[pos]
                    raise InputError(f"{self._what()}: missing input {pos} '{spec.name}' {spec.dtype}{list(spec.shape)}")
                slots[pos] = default
        return slots

    @public_entry
    def __call__(self, *args, scalars: Sequence[int] = (), **kwargs):
        inputs = self._bind(args, kwargs)
        values: list[Any] = []
        for pos, (spec, value) in enumerate(zip(self.program.leaves, inputs)):
            where = f"{self._what()}: input {pos} '{spec.name}' {spec.dtype}{list(spec.shape)}"
            values.append(convert_input(value, spec.dtype, spec.shape, where,
                                        allow_downcast=self.allow_input_downcast, shape_note=SPECIALIZED))
        values += [self.state[n] for n in self._state_names]
        if len(scalars) != len(self.program.scalars):
            raise InputError(f"this program takes {len(self.program.scalars)} runtime scalars "
                             f"({', '.join(self.program.scalars) or 'none'}), got {len(scalars)}")
        scalars = [_scalar(v, f"{self._what()}: runtime scalar {k} '{n}'")
                   for k, (n, v) in enumerate(zip(self.program.scalars, scalars))]
        program_check.check_scalars(self.program, scalars, self._what(), self._runtime_refs)
        for pos, want in self.specialized.items():
            if not np.array_equal(np.asarray(values[pos]), np.asarray(want)):
                spec = self.program.leaves[pos]
                raise InputError(f"{self._what()}: input {pos} '{spec.name}' is {np.asarray(values[pos]).tolist()}, "
                                 f"but this program was compiled for {want} (a size or a loop length, fixed in "
                                 "its kernels): compile the function again with theta.function for other values")
        outs = self.executor.run(values, list(scalars), with_updates=self._bare)
        return outs[0] if self.single else outs

    def get_value(self, name: str) -> np.ndarray:
        if name not in self.state:
            raise InputError(f"no state named {name!r}; known: {', '.join(self._state_names)}")
        return self.state[name].get()

    def set_value(self, name: str, value) -> None:
        """Replace a state value. A numpy array of another dtype kind (ints for a float
        weight) is refused rather than cast; within a kind it is cast (float64 -> float32)."""
        old = self.get_value(name)
        where = f"{self._what()}: set_value({name!r}) of {old.dtype}{list(old.shape)}"
        if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind != old.dtype.kind:
            raise DTypeError(f"{where} got a {np.asarray(value).dtype} array (a different kind of number); "
                             f"pass {old.dtype}")
        arr = convert_input(value, old.dtype.name, old.shape, where, allow_downcast=True)
        self.state[name].set(np.asarray(arr, dtype=old.dtype))

    def save_state(self, path: str | os.PathLike | None = None) -> pathlib.Path:
        """Write the current state: into the directory it was loaded from (default; state.npz and
        its checksum are replaced), or as a complete saved function at another ``path``."""
        if self.n_inputs == len(self.program.leaves) and not self.state:
            raise InputError(f"{self._what()} is a bare program (every leaf an input): it has no state to save")
        target = pathlib.Path(path) if path is not None else self.path
        if target is None:
            raise InputError(f"{self._what()} was not loaded from a directory: pass save_state(path)")
        state = {n: r.get() for n, r in self.state.items()}
        if self.path is not None and target.exists() and target.resolve() == self.path.resolve():
            write_state(target, state)
        else:
            save_function(target, self.program, state, n_inputs=self.n_inputs, single=self.single,
                          n_outputs=self.n_outputs, name=self.name, allow_input_downcast=self.allow_input_downcast,
                          artifacts=False, specialized=self.specialized, inputs=self.inputs)
        return target


def _state_bytes(state: dict[str, np.ndarray]) -> bytes:
    """The npz of ``state`` (what np.savez writes, but any name works: np.savez(**state) would
    take a variable named "file" for its own argument)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, value in state.items():
            with zf.open(f"{name}.npy", "w") as fh:
                np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)
    return buf.getvalue()


def write_state(directory: str | os.PathLike, state: dict[str, np.ndarray]) -> None:
    """Replace the state of the saved function in ``directory`` (state.npz and its checksum,
    each by an atomic rename)."""
    savedir.replace(directory, {STATE: _state_bytes(state)})


def save_function(path: str | os.PathLike, program: Program, state: dict[str, np.ndarray], *, n_inputs: int,
                  single: bool, n_outputs: int, name: str | None = None, allow_input_downcast: bool = False,
                  artifacts: bool = True, specialized: dict | None = None,
                  inputs: Sequence[tuple[str | None, Any]] | None = None) -> pathlib.Path:
    """Save a function for theta.load: ``program`` (whose leaves are the ``n_inputs`` inputs,
    then the shared variables named in ``state``; its ``n_updates``/``update_targets`` set), its
    artifacts (built here unless ``artifacts=False``: then those ``program`` holds are kept),
    function.json and state.npz, as one checksummed directory written atomically. ``inputs``:
    per input, its keyword name and default value (None: none), as theta.function's ``In``."""
    if artifacts:
        from .artifacts import build_artifacts
        program = _with_artifacts(program, build_artifacts)
    meta = {"n_inputs": n_inputs, "single": single, "n_outputs": n_outputs, "name": name,
            "allow_input_downcast": allow_input_downcast,
            # inputs whose values the program was compiled for (sizes, loop lengths)
            "specialized_inputs": {str(pos): value for pos, value in (specialized or {}).items()}}
    if inputs is not None:   # the call forms of theta.function: keywords and defaults
        meta["inputs"] = [{"name": key, "default": np.asarray(value).tolist() if _numeric(value) else None}
                          for key, value in inputs]
    return program.save(path, extra_files={META: json.dumps(meta).encode(), STATE: _state_bytes(state)})


def _with_artifacts(program: Program, build) -> Program:
    """``program`` (and its loops' steps, recursively) with their artifacts built."""
    loops = [dataclasses.replace(loop, step=_with_artifacts(loop.step, build)) for loop in program.loops]
    return dataclasses.replace(program, artifacts=build(program), loops=loops)


def _function_meta(meta: Any, program: Program, where: str) -> dict:
    """function.json's fields, checked against the program (ArtifactError if malformed)."""
    def bad(what: str) -> ArtifactError:
        return ArtifactError(f"{where}/{META} is malformed: {what}")
    if not isinstance(meta, dict):
        raise bad("not a JSON object")
    n_leaves, n_results = len(program.leaves), len(program.outputs)
    n_inputs, n_outputs = meta.get("n_inputs"), meta.get("n_outputs")
    if type(n_inputs) is not int or not 0 <= n_inputs <= n_leaves:
        raise bad(f"n_inputs must be an integer in [0, {n_leaves}]")
    if type(n_outputs) is not int or n_outputs + program.n_updates != n_results:
        raise bad(f"n_outputs must be {n_results - program.n_updates} (outputs besides the {program.n_updates} updates)")
    if len(program.update_targets) != program.n_updates or any(t < n_inputs for t in program.update_targets):
        raise bad("the program's updates must each write a shared variable")
    if not isinstance(meta.get("single"), bool):   # it decides what a call returns: never defaulted
        raise bad("single must be true or false")
    if not isinstance(meta.get("allow_input_downcast", False), bool):
        raise bad("allow_input_downcast must be true or false")
    if meta.get("name") is not None and not isinstance(meta["name"], str):
        raise bad("name must be a string or null")
    specialized = meta.get("specialized_inputs", {})
    if not isinstance(specialized, dict) or any(not k.isdigit() or int(k) >= n_inputs for k in specialized) \
            or any(not isinstance(v, (int, list)) or isinstance(v, bool) for v in specialized.values()):
        raise bad("specialized_inputs must map input positions to the values compiled for")
    entries = meta.get("inputs")
    if entries is not None and (not isinstance(entries, list) or len(entries) != n_inputs or any(
            not isinstance(e, dict) or set(e) != {"name", "default"} or not isinstance(e["name"], (str, type(None)))
            or not _json_value(e["default"]) for e in entries)):
        raise bad(f"inputs must list, for each of the {n_inputs} inputs, its name (a string or null) and "
                  "its default (a number, a list of numbers or null)")
    return meta


def _json_value(v: Any) -> bool:
    """A default value function.json may hold: null, a number, or nested lists of numbers."""
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return True
    return isinstance(v, list) and all(x is not None and _json_value(x) for x in v)


def _scalar(value: Any, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{where} must be an integer, got {value!r}"[:300])
    return int(value)


def _numeric(value: Any) -> bool:
    """A default saved with the function (a number or an array of numbers; others stay behind)."""
    try:
        return value is not None and np.asarray(value).dtype.kind in "biuf"
    except (TypeError, ValueError):
        return False



@public_entry
def load(path: str | os.PathLike, backend: str = "auto", allow_input_downcast: bool | None = None) -> LoadedFunction:
    """Load a saved training step or Program and return a callable that runs it (no compiler needed).

    ``f.save(path)`` writes the Program (kernels, launches, buffers), the shared variables'
    values and the built artifacts, each listed with its sha256. ``load`` checks them, never
    unpickles anything and imports neither sympy nor jinja2.

    Parameters
    ----------
    path : str or os.PathLike
        A directory written by ``f.save(path)`` (the callable takes the inputs, returns the
        outputs and applies the updates to its own copy of the state) or by
        ``f.program.save(path)`` (every input and shared value passed in; outputs and update
        values returned).
    backend : {'auto', 'emu', 'cuda'}, optional
        Where to run the kernels (``auto``: cuda when available, else emu).
    allow_input_downcast : bool, optional
        Let a float64 array into a float32 input; None (default) keeps what was saved.

    Returns
    -------
    LoadedFunction
        Callable with the call forms of ``theta.function``'s (inputs by position or keyword,
        ``In`` defaults; a program with runtime scalars also takes ``scalars=[...]``);
        ``get_value(name)``/``set_value(name, v)`` access its state and ``save_state(path)``
        writes it back.

    Raises
    ------
    ArtifactError
        A missing or changed file, a directory that is not a saved function, or a manifest
        whose fields disagree with each other, the kernels' sources or the device's limits
        (compiler.program_check): the message names the file and the field.

    Examples
    --------
    >>> train.save("step")
    >>> job = theta.load("step")
    >>> job(xb, yb); job.get_value("W")
    """
    path = pathlib.Path(path)
    files = savedir.read(path)       # every file checked against checksums.json first
    program = Program.from_files(path, files)   # every field checked (compiler.program_check)
    program_check.check_files(program, files, [META, STATE] if META in files else [], str(path))
    if META not in files and (path / META).exists():
        raise ArtifactError(f"{path}/{META} is not covered by {savedir.CHECKSUMS}: it was added or the "
                            "function saved by an older theta; save it again")
    if META not in files:
        # A bare Program (f.program.save): every leaf is an input, every result an output.
        return LoadedFunction(program, {}, len(program.leaves), backend, False, len(program.outputs),
                              allow_input_downcast=bool(allow_input_downcast), path=path)
    if STATE not in files:
        raise ArtifactError(f"{path} is a saved function without {STATE} in its checksums")
    try:
        meta = _function_meta(json.loads(files[META].decode()), program, str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}/{META} is corrupt: {e}") from e
    try:
        with np.load(io.BytesIO(files[STATE]), allow_pickle=False) as npz:
            state = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise ArtifactError(f"{path}/{STATE} is corrupt: {e}") from e
    downcast = meta.get("allow_input_downcast", False) if allow_input_downcast is None else allow_input_downcast
    inputs = None
    if meta.get("inputs") is not None:
        inputs = []
        for pos, (entry, spec) in enumerate(zip(meta["inputs"], program.leaves)):
            default = entry["default"]
            if default is not None:
                try:
                    default = convert_input(default, spec.dtype, spec.shape, f"default of input {pos}",
                                            allow_downcast=True)
                except (ThetaError, ValueError, TypeError, OverflowError) as e:
                    raise ArtifactError(f"{path}/{META} is malformed: inputs[{pos}].default is not a value of "
                                        f"input {pos} '{spec.name}' {spec.dtype}{list(spec.shape)} ({e})") from None
            inputs.append((entry["name"], default))
    return LoadedFunction(program, state, meta["n_inputs"], backend, meta.get("single", False), meta["n_outputs"],
                          specialized={int(k): v for k, v in meta.get("specialized_inputs", {}).items()},
                          allow_input_downcast=downcast, name=meta.get("name"), path=path, inputs=inputs)

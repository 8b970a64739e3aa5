"""Program: the compiled form of one specialization, as data.

A Program lists its kernels (CUDA C source, parameters, launch configuration, what each
parameter is bound to), its buffers and arena size, its I/O signature, and ``artifacts``:
binaries and extra sources built from its kernels (runtime.artifacts.build_artifacts) that
let a loaded program run without the compiler: "emu.cpp" (the emu translation unit, so no
jinja2 is needed to run it on the CPU), "sm_80.cubin"/"sm_90.cubin" and "compute_90.ptx"
(for GPUs without a matching cubin) where nvcc was available at save time.

It is serializable without pickle. ``save(path)`` writes a directory (compiler.savedir):

    manifest.json   kernels, buffers, I/O, artifact names (compiler.manifest; format 2)
    <kernel>.cu     one CUDA C source per kernel
    constants.npz   the graph's constants (read back with allow_pickle=False)
    <artifact>      one file per artifact, under its own name
    ...             ``extra_files`` of the caller: a saved function adds function.json and
                    state.npz (runtime.loaded)
    checksums.json  the sha256 of every file above, written last; the only list of files

``load`` reads checksums.json, checks every listed file's sha256 before parsing anything
(a flipped byte anywhere, checksums.json included, is an ArtifactError naming the file),
and opens only plain file names that list holds, so no name in a manifest leaves the
directory. Loading imports numpy, json and hashlib only: no sympy, no jinja2.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pathlib
import zipfile

import numpy as np

from .errors import ArtifactError

@dataclasses.dataclass(frozen=True)
class Buffer:
    index: int
    kind: str            # "input" | "shared" | "const" | "output" | "temp"
    dtype: str
    size: int            # elements
    slot: int = -1       # input/shared/const/output number; -1 for temps
    arena_offset: int = -1  # bytes, temps only

    @property
    def nbytes(self) -> int:
        import numpy as np
        return self.size * np.dtype(self.dtype).itemsize


@dataclasses.dataclass(frozen=True)
class Ref:
    """Where a kernel parameter points: a buffer, an element offset, runtime offset terms."""
    buffer: int
    offset: int = 0
    dyn: tuple = ()      # ((scalar slot, coefficient in elements), ...)


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    ctype: str


@dataclasses.dataclass(frozen=True)
class Binding:
    """What the runtime passes for one parameter: a pointer (Ref), a runtime scalar slot, or
    the status word the kernel reports bad input in."""
    kind: str                 # "ptr" | "scalar" | "status"
    ref: Ref | None = None
    slot: int = -1


@dataclasses.dataclass
class Kernel:
    name: str
    family: str
    source: str
    params: list[Param]
    bindings: list[Binding]
    grid: tuple
    block: tuple
    shared_bytes: int = 0
    def __repr__(self) -> str:
        return f"<Kernel {self.name} ({self.family}) grid={self.grid} block={self.block}>"


CONSTANTS = "constants.npz"


@dataclasses.dataclass(frozen=True)
class IOSpec:
    name: str
    dtype: str
    shape: tuple


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    dtype: str
    shape: tuple
    strides: tuple          # elements, of the view the output is read through
    ref: Ref


@dataclasses.dataclass
class Loop:
    """A scan: ``step`` (a Program of its own, compiled once) run ``n_steps`` times. Its leaves
    are bound per step to rows of outer buffers: sequence rows (``seqs``: the ref of row 0 and
    the row stride in elements, negative when read backwards), each state's previous value
    (the initial value at step 0, then the previous row of that state's stacked output), the
    non-sequences; its outputs are written into row t of the stacked outputs (``outputs``:
    ref, or None where the outer graph does not read that output, and the row stride)."""
    step: "Program"
    n_steps: int
    go_backwards: bool
    seqs: list          # [(Ref, row stride, rows)]
    initial: list       # [Ref]
    nonseqs: list       # [Ref]
    outputs: list       # [(Ref | None, row stride)] per step output
    n_states: int


@dataclasses.dataclass
class Program:
    kernels: list[Kernel]
    buffers: list[Buffer]
    arena_bytes: int
    naive_bytes: int
    leaves: list[IOSpec]       # external buffers in order (function inputs, then shared variables)
    scalars: list[str]         # runtime int64 scalars (minibatch starts, indices)
    outputs: list[OutputSpec]  # function outputs, then update values
    constants: list[np.ndarray]
    n_updates: int = 0
    update_targets: list = dataclasses.field(default_factory=list)  # leaf index each update writes
    # name -> bytes saved with the program (see the module docstring); not used to compile
    artifacts: dict[str, bytes] = dataclasses.field(default_factory=dict)
    loops: list = dataclasses.field(default_factory=list)      # Loop entries (scans)
    # the launch order: ("kernel", i) and ("loop", j); empty: the kernels in order
    schedule: list = dataclasses.field(default_factory=list)

    @property
    def n_kernels(self) -> int:
        return len(self.kernels)

    def summary(self) -> str:
        lines = [f"{len(self.kernels)} kernels, arena {self.arena_bytes} bytes "
                 f"(without reuse: {self.naive_bytes} bytes)"]
        lines += [f"  {k.name}: grid {k.grid} block {k.block}" for k in self.kernels]
        return "\n".join(lines)

    # -- serialization ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, extra_files: dict[str, bytes] | None = None) -> pathlib.Path:
        """Write the program (and ``extra_files``, name -> bytes, checksummed with it) to the
        directory ``path``, atomically; see the module docstring for the layout."""
        from . import manifest, savedir
        files: dict[str, bytes] = {}

        def add(name: str, data: bytes) -> None:
            savedir.check_name(name, f"saving {path}")
            if name in files or name == manifest.MANIFEST:
                raise ValueError(f"saving {path}: two files named {name!r}")
            files[name] = data

        doc = self._encode("", add)
        for name, data in (extra_files or {}).items():
            add(name, bytes(data))
        files[manifest.MANIFEST] = json.dumps(doc, indent=1).encode()
        return savedir.write(path, files)

    def _encode(self, prefix: str, add) -> dict:
        """This program's manifest entry, its files handed to ``add`` under ``prefix`` (a loop's
        step is a program of its own: "loop0." and so on, nested)."""
        from . import manifest
        kernel_files = [f"{prefix}{k.name}.cu" for k in self.kernels]
        for k, fname in zip(self.kernels, kernel_files):
            add(fname, k.source.encode())
        artifact_files = []
        for name, data in sorted(self.artifacts.items()):
            add(prefix + name, bytes(data))
            artifact_files.append(prefix + name)
        buf = io.BytesIO()
        np.savez(buf, **{f"c{i}": c for i, c in enumerate(self.constants)})
        add(prefix + CONSTANTS, buf.getvalue())
        steps = [loop.step._encode(f"{prefix}loop{j}.", add) for j, loop in enumerate(self.loops)]
        return manifest.encode(self, kernel_files, artifact_files, prefix + CONSTANTS, steps)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Program":
        """The program saved in directory ``path``; ArtifactError if anything is corrupt."""
        from . import savedir
        return cls.from_files(path, savedir.read(path))

    @classmethod
    def from_files(cls, path: str | os.PathLike, files: dict[str, bytes]) -> "Program":
        """The program in ``files`` (name -> bytes, already checked by compiler.savedir.read)."""
        from . import manifest
        where = str(path)
        if manifest.MANIFEST not in files or CONSTANTS not in files:
            raise ArtifactError(f"{where} is not a saved theta program (its checksums list no "
                                f"{manifest.MANIFEST} or {CONSTANTS})")
        try:
            doc = json.loads(files[manifest.MANIFEST].decode())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{where}/{manifest.MANIFEST} is corrupt: {e}") from e
        return cls._decode(doc, files, where)

    @classmethod
    def _decode(cls, doc, files: dict[str, bytes], where: str) -> "Program":
        from . import manifest
        fields, kernel_files, artifact_files, constants_file = manifest.decode(doc, files, where, cls._decode)
        try:
            sources = [files[f].decode() for f in kernel_files]
        except UnicodeDecodeError as e:
            raise ArtifactError(f"{where}: a kernel source is not UTF-8 text ({e})") from e
        n = fields.pop("n_constants")
        try:
            with np.load(io.BytesIO(files[constants_file]), allow_pickle=False) as npz:
                names = sorted(npz.files)
                constants = [npz[f"c{i}"] for i in range(n)] if names == sorted(f"c{i}" for i in range(n)) else None
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:  # not an npz, pickled data
            raise ArtifactError(f"{where}/{constants_file} is corrupt: {e}") from e
        if constants is None:
            raise ArtifactError(f"{where}/{constants_file} holds {names}, the manifest wants {n} constants")
        kernels = [dataclasses.replace(k, source=s) for k, s in zip(fields.pop("kernels"), sources)]
        prefix = constants_file[:-len(CONSTANTS)]   # a loop's step: its artifacts under its prefix
        return cls(kernels=kernels, constants=constants,
                   artifacts={a[len(prefix):]: files[a] for a in artifact_files}, **fields)


def raise_status(program: "Program", status: int) -> None:
    """Raise the error a kernel reported in the status word (0: none)."""
    if not status:
        return
    from .errors import IndexingError
    k = program.kernels[status - 1] if 0 < status <= len(program.kernels) else None
    where = f"kernel {k.name} ({k.family})" if k else f"a kernel (status {status})"
    raise IndexingError(f"{where} met an index out of range (an advanced index, or a crossentropy label "
                        "outside [0, classes)); nothing was updated. The reference backend "
                        "(backend='reference') names the offending value.")


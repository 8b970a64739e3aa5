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
    # the variable it carries, for people reading a Program (``print(f.program)``): its name, or
    # the op that computes it, and its type; in memory only (a loaded Program has "")
    carries: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(frozen=True)
class Binding:
    """What the runtime passes for one parameter: a pointer (Ref), a runtime scalar slot, or
    the status word the kernel reports bad input in."""
    kind: str                 # "ptr" | "scalar" | "status"
    ref: Ref | None = None
    slot: int = -1
    # a pointer's reach: (lo, hi), the elements [ref + lo, ref + hi) the kernel may touch through
    # it over its whole grid (the views it reads or writes); () where not known
    extent: tuple = ()


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
    # the op node (describe(), with the user's line) whose bad input this kernel's group reports
    # in the status word: named by raise_status, saved in the manifest
    origin: str = ""

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
    # compiled with nan_guard=True: a compiler.guard.ProgramGuard (each kernel group's graph nodes
    # and where their values sit) for the executor's checks; in memory only, never saved
    guard: object = dataclasses.field(default=None, compare=False, repr=False)
    # per kernel, the graph nodes of the group it computes (in memory only, for printing)
    origins: list = dataclasses.field(default_factory=list, compare=False, repr=False)

    @property
    def n_kernels(self) -> int:
        return len(self.kernels)

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """A readable listing: I/O signature, buffers, then each kernel in launch order with its
        parameters (what each pointer carries and which buffer it points into) and the op nodes
        it computes; loops' steps indented below them."""
        buffer_names = self._buffer_names()
        n_out = len(self.outputs) - self.n_updates
        lines = [f"Program: {len(self.kernels)} kernels, {len(self.loops)} loops, {len(self.buffers)} buffers, "
                 f"arena {self.arena_bytes} bytes (without reuse {self.naive_bytes})"]
        lines.append("  leaves (inputs, then shared variables):")
        lines += [f"    {k}: {leaf.name} {leaf.dtype}{list(leaf.shape)}" for k, leaf in enumerate(self.leaves)]
        if self.scalars:
            lines.append("  runtime scalars: " + ", ".join(self.scalars))
        lines.append("  outputs:")
        for k, spec in enumerate(self.outputs):
            what = f"output {k}" if k < n_out else \
                f"update of {self.leaves[self.update_targets[k - n_out]].name}" if self.update_targets else f"update {k}"
            lines.append(f"    {what}: {spec.dtype}{list(spec.shape)} in {_ref_text(spec.ref, buffer_names)}")
        lines.append("  buffers:")
        for b in self.buffers:
            where = f" at arena offset {b.arena_offset}" if b.kind == "temp" and b.arena_offset >= 0 else ""
            lines.append(f"    {buffer_names[b.index]}: {b.kind} {b.dtype}[{b.size}]{where}")
        lines.append("  kernels, in launch order:")
        order = self.schedule or [("kernel", i) for i in range(len(self.kernels))]
        origins = list(self.origins or [])
        for kind, i in order:
            if kind == "loop":
                loop = self.loops[i]
                lines.append(f"    loop {i}: {loop.n_steps} steps{' backwards' if loop.go_backwards else ''}, step:")
                lines += ["      " + line for line in loop.step.describe().splitlines()]
                continue
            k = self.kernels[i]
            lines.append(f"    {k.name} ({k.family}) grid {k.grid} block {k.block}"
                         + (f" shared {k.shared_bytes} bytes" if k.shared_bytes else ""))
            for p, b in zip(k.params, k.bindings):
                if b.kind == "ptr":
                    bound = _ref_text(b.ref, buffer_names)
                elif b.kind == "scalar":
                    bound = f"runtime scalar {self.scalars[b.slot] if 0 <= b.slot < len(self.scalars) else b.slot}"
                else:
                    bound = "the status word"
                carries = f" carries {p.carries}," if p.carries else ""
                lines.append(f"      {p.ctype} {p.name}:{carries} {bound}")
            if i < len(origins) and origins[i]:
                lines.append("      computes: " + ", ".join(str(n.op) for n in origins[i]))
        return "\n".join(lines)

    def _buffer_names(self) -> list:
        names = []
        for b in self.buffers:
            if b.kind in ("input", "shared") and 0 <= b.slot < len(self.leaves):
                names.append(f"buffer {b.index} ({self.leaves[b.slot].name})")
            elif b.kind == "output":
                names.append(f"buffer {b.index} (output {b.slot})")
            elif b.kind == "const":
                names.append(f"buffer {b.index} (constant {b.slot})")
            else:
                names.append(f"buffer {b.index} ({b.kind})")
        return names

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
        program = cls._decode(doc, files, where)
        from . import program_check   # the fields against each other, the sources, the device's limits
        program_check.check(program, where)
        return program

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
                # (the count first: n comes from the manifest and may be huge)
                ok = len(names) == n and names == sorted(f"c{i}" for i in range(n))
                constants = [npz[f"c{i}"] for i in range(n)] if ok else None
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:  # not an npz, pickled data
            raise ArtifactError(f"{where}/{constants_file} is corrupt: {e}") from e
        if constants is None:
            raise ArtifactError(f"{where}/{constants_file} holds {names}, the manifest wants {n} constants")
        kernels = [dataclasses.replace(k, source=s) for k, s in zip(fields.pop("kernels"), sources)]
        prefix = constants_file[:-len(CONSTANTS)]   # a loop's step: its files under its prefix
        if not constants_file.endswith(CONSTANTS):
            raise ArtifactError(f"{where}: malformed manifest: constants must name a file ending in {CONSTANTS}")
        for i, (k, f) in enumerate(zip(kernels, kernel_files)):
            if f != f"{prefix}{k.name}.cu":   # the name save gives it: no kernel runs another's source
                raise ArtifactError(f"{where}: malformed manifest: kernels[{i}].file must be {prefix}{k.name}.cu")
        for i, a in enumerate(artifact_files):
            if not a.startswith(prefix) or artifact_files.count(a) > 1:
                raise ArtifactError(f"{where}: malformed manifest: artifacts[{i}] must be a distinct file "
                                    f"named {prefix}<artifact>")
        return cls(kernels=kernels, constants=constants,
                   artifacts={a[len(prefix):]: files[a] for a in artifact_files}, **fields)


def _ref_text(ref: Ref, buffer_names: list) -> str:
    text = buffer_names[ref.buffer] if 0 <= ref.buffer < len(buffer_names) else f"buffer {ref.buffer}"
    if ref.offset:
        text += f" + {ref.offset}"
    for slot, coef in ref.dyn:
        text += f" + {coef} * scalar {slot}"
    return text


def raise_status(program: "Program", status: int) -> None:
    """Raise the error a kernel reported in the status word (0: none)."""
    if not status:
        return
    from .errors import IndexingError
    k = program.kernels[status - 1] if 0 < status <= len(program.kernels) else None
    if k is not None and k.family == "check":   # a run-time argument check: origin is its message
        from .errors import GraphError
        raise GraphError(f"{k.origin} (found when the function ran; nothing was updated)")
    where = f"kernel {k.name} ({k.family})" if k else f"a kernel (status {status})"
    if k is not None and k.origin:
        where = f"{k.origin}, in {where},"
    raise IndexingError(f"{where} met an index out of range (an advanced index, or a crossentropy label "
                        "outside [0, classes)); nothing was updated. The reference backend "
                        "(backend='reference') names the offending value.")


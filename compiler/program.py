"""Program: the compiled form of one specialization, as data.

A Program lists its kernels (CUDA C source, parameters, launch configuration, what each
parameter is bound to), its buffers and arena size, and its I/O signature. It is
serializable without pickle: ``save(path)`` writes a directory with ``manifest.json``, one
``.cu`` file per kernel and ``constants.npz`` (allow_pickle=False); ``load`` checks every
file's sha256 against the manifest, so a corrupt or tampered artifact is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import tempfile

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


FORMAT = "theta-program"
VERSION = 1


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

    @property
    def n_kernels(self) -> int:
        return len(self.kernels)

    def summary(self) -> str:
        lines = [f"{len(self.kernels)} kernels, arena {self.arena_bytes} bytes "
                 f"(without reuse: {self.naive_bytes} bytes)"]
        lines += [f"  {k.name}: grid {k.grid} block {k.block}" for k in self.kernels]
        return "\n".join(lines)

    # -- serialization ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Write the program to directory ``path`` atomically (a temp dir renamed into place)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        files = {}
        for k in self.kernels:
            fname = f"{k.name}.cu"
            (tmp / fname).write_text(k.source)
            files[fname] = _sha256((tmp / fname).read_bytes())
        with open(tmp / "constants.npz", "wb") as fh:
            np.savez(fh, **{f"c{i}": c for i, c in enumerate(self.constants)})
        files["constants.npz"] = _sha256((tmp / "constants.npz").read_bytes())
        manifest = {
            "format": FORMAT, "version": VERSION, "files": files,
            "kernels": [{"name": k.name, "family": k.family, "file": f"{k.name}.cu",
                         "params": [[p.name, p.ctype] for p in k.params],
                         "bindings": [_binding_json(b) for b in k.bindings],
                         "grid": list(k.grid), "block": list(k.block), "shared_bytes": k.shared_bytes}
                        for k in self.kernels],
            "buffers": [dataclasses.asdict(b) for b in self.buffers],
            "arena_bytes": self.arena_bytes, "naive_bytes": self.naive_bytes,
            "leaves": [[s.name, s.dtype, list(s.shape)] for s in self.leaves],
            "scalars": self.scalars,
            "outputs": [{"dtype": o.dtype, "shape": list(o.shape), "strides": list(o.strides),
                         "ref": _ref_json(o.ref)} for o in self.outputs],
            "n_constants": len(self.constants),
            "n_updates": self.n_updates, "update_targets": self.update_targets,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if path.exists():
            import shutil
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Program":
        path = pathlib.Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except OSError as e:  # missing, not a directory, unreadable
            raise ArtifactError(f"{path} is not a saved theta program (cannot read {path}/manifest.json: "
                                f"{e.strerror or e})") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{path}/manifest.json is corrupt: {e}") from e
        try:
            if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
                raise ArtifactError(f"{path} is not a theta program of version {VERSION}")
            for fname, digest in manifest["files"].items():
                if "/" in fname or "\\" in fname or fname.startswith("."):
                    raise ArtifactError(f"{path}: manifest names a file outside the program: {fname!r}")
                data = (path / fname).read_bytes()
                if _sha256(data) != digest:
                    raise ArtifactError(f"{path}/{fname} does not match its checksum: the program is corrupt "
                                        "or was modified after it was saved")
            with np.load(path / "constants.npz", allow_pickle=False) as npz:
                constants = [npz[f"c{i}"] for i in range(manifest["n_constants"])]
            kernels = [Kernel(k["name"], k["family"], (path / k["file"]).read_text(),
                              [Param(n, t) for n, t in k["params"]],
                              [_binding_from(b) for b in k["bindings"]], tuple(k["grid"]), tuple(k["block"]),
                              k["shared_bytes"]) for k in manifest["kernels"]]
            buffers = [Buffer(**b) for b in manifest["buffers"]]
            outputs = [OutputSpec(o["dtype"], tuple(o["shape"]), tuple(o["strides"]), _ref_from(o["ref"]))
                       for o in manifest["outputs"]]
            leaves = [IOSpec(n, d, tuple(s)) for n, d, s in manifest["leaves"]]
            return cls(kernels, buffers, manifest["arena_bytes"], manifest["naive_bytes"], leaves,
                       list(manifest["scalars"]), outputs, constants, manifest["n_updates"],
                       list(manifest["update_targets"]))
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise ArtifactError(f"{path}: malformed program ({type(e).__name__}: {e})") from e


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ref_json(r: Ref) -> dict:
    return {"buffer": r.buffer, "offset": r.offset, "dyn": [list(t) for t in r.dyn]}


def _ref_from(d: dict) -> Ref:
    return Ref(int(d["buffer"]), int(d["offset"]), tuple((int(a), int(b)) for a, b in d["dyn"]))


def _binding_json(b: Binding) -> dict:
    return {"kind": b.kind, "ref": _ref_json(b.ref) if b.ref else None, "slot": b.slot}


def _binding_from(d: dict) -> Binding:
    return Binding(d["kind"], _ref_from(d["ref"]) if d["ref"] else None, int(d["slot"]))



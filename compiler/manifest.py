"""A Program's manifest.json: encoding, and decoding with every field checked.

A manifest comes from disk, so ``decode`` trusts nothing in it: each field must have its
type and range (buffer and scalar indices inside the program, temporaries inside the arena,
file names plain names of files the directory's checksums list), and anything else is an
ArtifactError naming the field, never a KeyError or TypeError from deep inside an executor.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable

import numpy as np

from .errors import ArtifactError
from .program import Binding, Buffer, IOSpec, Kernel, Loop, OutputSpec, Param, Program, Ref
from .savedir import check_name

MANIFEST = "manifest.json"
FORMAT = "theta-program"
VERSION = 2   # 2: file checksums moved to checksums.json, artifacts listed
_IDENT_RE = re.compile(r"[A-Za-z_]\w{0,199}")
_BUFFER_KINDS = ("input", "shared", "const", "output", "temp")


def encode(program: Program, kernel_files: list[str], artifact_files: list[str], constants_file: str,
           steps: list) -> dict:
    """The manifest entry of ``program``; ``steps``: the entries of its loops' step programs."""
    doc = {
        "format": FORMAT, "version": VERSION,
        "kernels": [{"name": k.name, "family": k.family, "file": f,
                     "params": [[p.name, p.ctype] for p in k.params],
                     "bindings": [_binding_json(b) for b in k.bindings],
                     "grid": list(k.grid), "block": list(k.block), "shared_bytes": k.shared_bytes,
                     **({"origin": k.origin} if k.origin else {})}
                    for k, f in zip(program.kernels, kernel_files)],
        "buffers": [dataclasses.asdict(b) for b in program.buffers],
        "arena_bytes": program.arena_bytes, "naive_bytes": program.naive_bytes,
        "leaves": [[s.name, s.dtype, list(s.shape)] for s in program.leaves],
        "scalars": list(program.scalars),
        "outputs": [{"dtype": o.dtype, "shape": list(o.shape), "strides": list(o.strides),
                     "ref": _ref_json(o.ref)} for o in program.outputs],
        "n_constants": len(program.constants),
        "n_updates": program.n_updates, "update_targets": list(program.update_targets),
        "artifacts": artifact_files,
        "constants": constants_file,
    }
    if program.loops:
        doc["loops"] = [{"step": step, "n_steps": loop.n_steps, "go_backwards": loop.go_backwards,
                         "seqs": [[_ref_json(r), s, n] for r, s, n in loop.seqs],
                         "initial": [_ref_json(r) for r in loop.initial],
                         "nonseqs": [_ref_json(r) for r in loop.nonseqs],
                         "outputs": [[_ref_json(r) if r is not None else None, row] for r, row in loop.outputs],
                         "n_states": loop.n_states}
                        for loop, step in zip(program.loops, steps)]
        doc["schedule"] = [[kind, i] for kind, i in program.schedule]
    return doc


def _ref_json(r: Ref) -> dict:
    return {"buffer": r.buffer, "offset": r.offset, "dyn": [list(t) for t in r.dyn]}


def _binding_json(b: Binding) -> dict:
    return {"kind": b.kind, "ref": _ref_json(b.ref) if b.ref else None, "slot": b.slot,
            **({"extent": list(b.extent)} if b.extent else {})}


# -- decoding ------------------------------------------------------------------------------------

class _Reader:
    """Typed access to one JSON document; every failure names the field's path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, want: str) -> ArtifactError:
        return ArtifactError(f"{self.where}: malformed manifest: {field} must be {want}")

    def get(self, d: Any, key: str, field: str) -> Any:
        if not isinstance(d, dict) or key not in d:
            raise self.fail(f"{field}.{key}".lstrip("."), "present")
        return d[key]

    def integer(self, v: Any, field: str, lo: int | None = None, hi: int | None = None) -> int:
        # bool is an int in Python, never in a manifest; hi is exclusive
        if type(v) is not int or (lo is not None and v < lo) or (hi is not None and v >= hi):
            rng = f" in [{lo}, {hi})" if hi is not None else (f" >= {lo}" if lo is not None else "")
            raise self.fail(field, f"an integer{rng} (got {v!r})"[:200])
        return v

    def text(self, v: Any, field: str, pattern: re.Pattern | None = None) -> str:
        if not isinstance(v, str) or (pattern is not None and not pattern.fullmatch(v)):
            raise self.fail(field, f"a {'name' if pattern else 'string'} (got {v!r})"[:200])
        return v

    def seq(self, v: Any, field: str, length: int | None = None) -> list:
        if not isinstance(v, list) or (length is not None and len(v) != length):
            raise self.fail(field, "a list" + (f" of {length}" if length is not None else ""))
        return v

    def items(self, v: Any, field: str, item: Callable[[Any, str], Any]) -> list:
        return [item(x, f"{field}[{i}]") for i, x in enumerate(self.seq(v, field))]

    def dtype(self, v: Any, field: str) -> str:
        try:
            if isinstance(v, str) and np.dtype(v).name == v and np.dtype(v).kind in "biuf":
                return v
        except (TypeError, ValueError):
            pass
        raise self.fail(field, f"a numeric dtype name (got {v!r})"[:200])

    def dims(self, v: Any, field: str, lo: int | None = 0) -> tuple:
        return tuple(self.items(v, field, lambda x, f: self.integer(x, f, lo)))


def decode(doc: Any, files: dict[str, bytes], where: str,
           decode_step: Callable | None = None) -> tuple[dict, list[str], list[str], str]:
    """Check the manifest ``doc`` and return (fields for Program minus kernels' sources and
    constants, kernel file names, artifact file names, the constants' file name). ``files``
    are the checksummed files; ``decode_step(doc, files, where)`` makes a loop's step Program."""
    r = _Reader(where)
    if not isinstance(doc, dict):
        raise r.fail("the manifest", "a JSON object")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ArtifactError(f"{where}: not a theta program of format version {VERSION} "
                            f"(format {doc.get('format')!r}, version {doc.get('version')!r})")

    def listed(v: Any, field: str) -> str:
        name = check_name(v, f"{where}: {field}")
        if name not in files:
            raise ArtifactError(f"{where}: {field} names {name!r}, which the checksums do not list")
        return name

    leaves = r.items(r.get(doc, "leaves", ""), "leaves",
                     lambda v, f: IOSpec(r.text(r.seq(v, f, 3)[0], f + "[0]"), r.dtype(v[1], f + "[1]"),
                                         r.dims(v[2], f + "[2]")))
    scalars = r.items(r.get(doc, "scalars", ""), "scalars", r.text)
    n_constants = r.integer(r.get(doc, "n_constants", ""), "n_constants", 0)
    arena = r.integer(r.get(doc, "arena_bytes", ""), "arena_bytes", 0)

    def buffer(v: Any, f: str) -> Buffer:
        index = r.integer(r.get(v, "index", f), f + ".index")
        kind = r.get(v, "kind", f)
        if kind not in _BUFFER_KINDS:
            raise r.fail(f + ".kind", f"one of {_BUFFER_KINDS}")
        b = Buffer(index, kind, r.dtype(r.get(v, "dtype", f), f + ".dtype"),
                   r.integer(r.get(v, "size", f), f + ".size", 0), r.integer(r.get(v, "slot", f), f + ".slot"),
                   r.integer(r.get(v, "arena_offset", f), f + ".arena_offset"))
        if set(v) != {fld.name for fld in dataclasses.fields(Buffer)}:
            raise r.fail(f, "an object with exactly the fields of a buffer")
        if kind in ("input", "shared"):
            r.integer(b.slot, f + ".slot", 0, len(leaves))
            if leaves[b.slot].dtype != b.dtype or int(np.prod(leaves[b.slot].shape)) != b.size:
                raise r.fail(f, f"of the dtype and size of leaf {b.slot}")
        elif kind == "const":
            r.integer(b.slot, f + ".slot", 0, n_constants)
        elif kind == "temp" and not (0 <= b.arena_offset and b.arena_offset + b.nbytes <= arena):
            raise r.fail(f + ".arena_offset", f"a range inside the arena of {arena} bytes")
        return b

    buffers = r.items(r.get(doc, "buffers", ""), "buffers", buffer)
    for i, b in enumerate(buffers):
        r.integer(b.index, f"buffers[{i}].index", i, i + 1)

    def ref(v: Any, f: str) -> Ref:
        dyn = r.items(r.get(v, "dyn", f), f + ".dyn",
                      lambda p, g: (r.integer(r.seq(p, g, 2)[0], g + "[0]", 0, len(scalars)), r.integer(p[1], g + "[1]")))
        return Ref(r.integer(r.get(v, "buffer", f), f + ".buffer", 0, len(buffers)),
                   r.integer(r.get(v, "offset", f), f + ".offset"), tuple(dyn))

    def binding(v: Any, f: str) -> Binding:
        kind = r.get(v, "kind", f)
        fields = {"kind", "ref", "slot"} | ({"extent"} if kind == "ptr" and "extent" in v else set())
        if set(v) != fields or (kind != "ptr" and v["ref"] is not None):
            raise r.fail(f, "an object of kind, ref (null unless a pointer), slot (and a pointer's extent)")
        if kind == "ptr":
            extent = tuple(r.items(v["extent"], f + ".extent", r.integer)) if "extent" in v else ()
            if extent and (len(extent) != 2 or extent[0] > extent[1]):
                raise r.fail(f + ".extent", f"[lo, hi] with lo <= hi (got {list(extent)})")
            return Binding("ptr", ref(r.get(v, "ref", f), f + ".ref"), r.integer(r.get(v, "slot", f), f + ".slot"),
                           extent)
        if kind == "scalar":
            return Binding("scalar", None, r.integer(r.get(v, "slot", f), f + ".slot", 0, len(scalars)))
        if kind == "status":
            return Binding("status", None, r.integer(r.get(v, "slot", f), f + ".slot"))
        raise r.fail(f + ".kind", "'ptr', 'scalar' or 'status'")

    def launch_dims(v: Any, f: str) -> tuple:
        dims = r.dims(v, f, 1)
        if not 1 <= len(dims) <= 3:
            raise r.fail(f, "1 to 3 positive integers")
        # CUDA's limits (grid x < 2**31, y and z < 2**16; a block of at most 1024 threads):
        # anything beyond is a tampered manifest, not a launch to attempt
        limits = (2 ** 31 - 1, 65535, 65535) if f.endswith(".grid") else (1024, 1024, 64)
        if any(d > lim for d, lim in zip(dims, limits)) or (f.endswith(".block") and math.prod(dims) > 1024):
            raise r.fail(f, f"within CUDA's launch limits (got {list(dims)})")
        return dims

    kernel_files: list[str] = []

    def kernel(v: Any, f: str) -> Kernel:
        params = r.items(r.get(v, "params", f), f + ".params",
                         lambda p, g: Param(r.text(r.seq(p, g, 2)[0], g + "[0]", _IDENT_RE), r.text(p[1], g + "[1]")))
        bindings = r.items(r.get(v, "bindings", f), f + ".bindings", binding)
        if len(bindings) != len(params):
            raise r.fail(f + ".bindings", "one per parameter")
        kernel_files.append(listed(r.get(v, "file", f), f + ".file"))
        return Kernel(r.text(r.get(v, "name", f), f + ".name", _IDENT_RE), r.text(r.get(v, "family", f), f + ".family"),
                      "", params, bindings, launch_dims(r.get(v, "grid", f), f + ".grid"),
                      launch_dims(r.get(v, "block", f), f + ".block"),
                      r.integer(r.get(v, "shared_bytes", f), f + ".shared_bytes", 0),
                      origin=r.text(v.get("origin", ""), f + ".origin") if isinstance(v, dict) else "")

    kernels = r.items(r.get(doc, "kernels", ""), "kernels", kernel)
    if len({k.name for k in kernels}) != len(kernels):
        raise r.fail("kernels", "of distinct names")
    outputs = r.items(r.get(doc, "outputs", ""), "outputs", lambda v, f: OutputSpec(
        r.dtype(r.get(v, "dtype", f), f + ".dtype"), r.dims(r.get(v, "shape", f), f + ".shape"),
        r.dims(r.get(v, "strides", f), f + ".strides", None), ref(r.get(v, "ref", f), f + ".ref")))
    n_updates = r.integer(r.get(doc, "n_updates", ""), "n_updates", 0, len(outputs) + 1)
    targets = r.items(r.get(doc, "update_targets", ""), "update_targets",
                      lambda v, f: r.integer(v, f, 0, len(leaves)))
    if targets and len(targets) != n_updates:
        raise r.fail("update_targets", f"a list of n_updates ({n_updates}) leaf indices")
    artifacts = r.items(r.get(doc, "artifacts", ""), "artifacts", listed)
    constants = listed(doc.get("constants", "constants.npz"), "constants")

    def loop(v: Any, f: str) -> Loop:
        if decode_step is None:
            raise r.fail(f, "no loop")
        step = decode_step(r.get(v, "step", f), files, f"{where} ({f}.step)")
        seqs = r.items(r.get(v, "seqs", f), f + ".seqs",
                       lambda p, g: (ref(r.seq(p, g, 3)[0], g + "[0]"), r.integer(p[1], g + "[1]"),
                                     r.integer(p[2], g + "[2]", 0)))
        initial = r.items(r.get(v, "initial", f), f + ".initial", ref)
        nonseqs = r.items(r.get(v, "nonseqs", f), f + ".nonseqs", ref)
        outs = r.items(r.get(v, "outputs", f), f + ".outputs",
                       lambda p, g: (None if r.seq(p, g, 2)[0] is None else ref(p[0], g + "[0]"),
                                     r.integer(p[1], g + "[1]", 0)))
        n_states = r.integer(r.get(v, "n_states", f), f + ".n_states", 0, len(outs) + 1)
        if len(seqs) + len(initial) + len(nonseqs) != len(step.leaves) or len(initial) != n_states \
                or len(outs) != len(step.outputs):
            raise r.fail(f, "bindings for each of its step's leaves and outputs")
        backwards = r.get(v, "go_backwards", f)
        if not isinstance(backwards, bool):
            raise r.fail(f + ".go_backwards", "true or false")
        n_steps = r.integer(r.get(v, "n_steps", f), f + ".n_steps", 0)
        if any(rows < n_steps for _, _, rows in seqs):
            raise r.fail(f + ".seqs", f"sequences of at least n_steps ({n_steps}) rows")
        return Loop(step, n_steps, backwards, seqs, initial, nonseqs, outs, n_states)

    loops = r.items(doc.get("loops", []), "loops", loop)
    schedule = r.items(doc.get("schedule", []), "schedule", lambda v, f: (
        r.seq(v, f, 2)[0], r.integer(v[1], f + "[1]", 0, len(loops) if v[0] == "loop" else len(kernels))))
    if any(kind not in ("kernel", "loop") for kind, _ in schedule) or (
            schedule and sorted(schedule) != sorted([("kernel", i) for i in range(len(kernels))]
                                                   + [("loop", j) for j in range(len(loops))])):
        raise r.fail("schedule", "every kernel and loop once")
    if loops and not schedule:
        raise r.fail("schedule", "the order of the kernels and loops")
    fields = dict(kernels=kernels, buffers=buffers, arena_bytes=arena,
                  naive_bytes=r.integer(r.get(doc, "naive_bytes", ""), "naive_bytes", 0), leaves=leaves,
                  scalars=scalars, outputs=outputs, n_constants=n_constants, n_updates=n_updates,
                  update_targets=targets, loops=loops, schedule=list(schedule))
    return fields, kernel_files, artifacts, constants

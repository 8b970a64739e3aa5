"""Checking a decoded Program against itself, its kernel sources and the device's limits.

compiler.manifest checks each field of a manifest for its type and its own range; a saved
program is a checksummed directory, but checksums catch accidents, not edits (anyone can
recompute them). This module checks what the fields must agree on, so that no edited integer
reaches the executor, where it would be a pointer past a buffer (a crash, or garbage):

- sizes: no buffer, leaf, output or loop scratch needs more than ``MAX_BYTES`` (the compiler's
  own limit per tensor), and the arena is exactly what its temporaries need (so a huge
  ``arena_bytes`` is refused before anything is allocated);
- the buffer table: every leaf bound by one input/shared buffer, constants of the size and
  dtype of the saved arrays, temporaries aligned inside the arena, the others outside it;
- kernels: name, parameters and block size as their source declares them (the signature line
  and ``__launch_bounds__`` every template renders), pointer parameters of their buffer's C
  type, a grid within CUDA's limits and no larger than the work of the kernel's buffers;
- references: every place the executor reads or writes through (kernel pointers, outputs with
  their shapes and strides, a loop's sequence rows, states and stacked output rows over all
  its ``n_steps``) lies inside its buffer, of the buffer's dtype. A reference with runtime
  offset terms (a minibatch start) is checked when the scalars are known (``check_scalars``).

Each failure is an ArtifactError naming the manifest field ("loops[0].outputs[0][1]"); loop
steps are checked recursively, their fields prefixed "loops[j].step.". Imports numpy and the
standard library only (theta.load runs this without sympy or jinja2).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Iterator, Sequence

import numpy as np

from .errors import ArtifactError, InputError
from .program import Program, Ref

# The compiler refuses a tensor of more bytes than this (compiler.specialize.MAX_TENSOR_BYTES:
# beyond any host or GPU memory); no buffer of a program it wrote can be larger.
MAX_BYTES = 2 ** 40
# compiler.schedule.ALIGN: every arena block starts at a multiple of it and spans a multiple of it
ARENA_ALIGN = 256
# CUDA: a grid's x < 2**31, y and z < 2**16; static plus default dynamic shared memory 48 KiB
GRID_LIMITS = (2 ** 31 - 1, 65535, 65535)
MAX_DYNAMIC_SHARED = 48 * 1024
# numpy dtype -> the C type a kernel parameter points to (compiler.cprint.CTYPES, which imports
# sympy; tests/test_manifest_validation.py checks the two agree)
C_TYPES = {
    "bool": "bool", "int8": "signed char", "int16": "short", "int32": "int", "int64": "long long",
    "uint8": "unsigned char", "uint16": "unsigned short", "uint32": "unsigned int",
    "uint64": "unsigned long long", "float32": "float", "float64": "double",
}
# the signature line every kernel template renders: extern "C" __global__ void
# __launch_bounds__(threads) name(ctype name, ...)
_SIGNATURE = r'extern "C" __global__ void __launch_bounds__\((\d+)\) {name}\(([^)]*)\)'


@dataclasses.dataclass(frozen=True)
class Access:
    """Elements ``[ref.offset + lo, ref.offset + hi)`` (plus the runtime terms of ``ref.dyn``)
    of buffer ``ref.buffer`` are read or written through the manifest field ``field``."""
    field: str
    ref: Ref
    lo: int
    hi: int


def check(program: Program, where: str) -> None:
    """ArtifactError naming the first field of ``program`` (decoded from ``where``) that does not
    agree with the rest of the program, its kernels' sources or the device's limits."""
    _Checker(where).program(program, "")


def check_files(program: Program, files: Sequence[str], extra: Sequence[str], where: str) -> None:
    """Every checksummed file is one the manifest names (kernel sources, artifacts, constants,
    its loops' steps' too) or one of ``extra``: a kernel dropped from the manifest leaves its
    source behind and is refused, instead of silently not running."""
    named = set(extra) | set(_named_files(program, ""))
    unnamed = sorted(set(files) - named)
    if unnamed:
        raise ArtifactError(f"{where}: malformed manifest: it names no use of the checksummed file(s) "
                            f"{unnamed[:5]} (a kernel, artifact or loop left out of it?)")


def runtime_accesses(program: Program) -> list[Access]:
    """The references whose offset has runtime terms (for ``check_scalars``, computed once)."""
    return [a for a in _accesses(program, "") if a.ref.dyn]


def check_scalars(program: Program, scalars: Sequence[int], what: str,
                  accesses: Sequence[Access] | None = None) -> None:
    """InputError if a runtime scalar (a minibatch start) puts a reference outside its buffer;
    ``accesses``: ``runtime_accesses(program)``, if the caller keeps it."""
    for access in runtime_accesses(program) if accesses is None else accesses:
        if access.ref.dyn:
            lo, hi = _extent(access, scalars)
            size = program.buffers[access.ref.buffer].size
            if lo < 0 or hi > size:
                names = ", ".join(f"{program.scalars[s]}={scalars[s]}" for s, _ in access.ref.dyn)
                raise InputError(f"{what}: the runtime scalars {names} put {access.field} at elements "
                                 f"[{lo}, {hi}) of a buffer of {size}")


def _named_files(program: Program, prefix: str) -> Iterator[str]:
    from .manifest import MANIFEST
    from .program import CONSTANTS
    if not prefix:
        yield MANIFEST
    yield from (f"{prefix}{k.name}.cu" for k in program.kernels)
    yield from (prefix + a for a in program.artifacts)
    yield prefix + CONSTANTS
    for j, loop in enumerate(program.loops):
        yield from _named_files(loop.step, f"{prefix}loop{j}.")


def _extent(access: Access, scalars: Sequence[int] | None) -> tuple[int, int]:
    base = access.ref.offset + sum(scalars[s] * c for s, c in access.ref.dyn) if scalars is not None \
        else access.ref.offset
    return base + access.lo, base + access.hi


def _strided_extent(shape: Sequence[int], strides: Sequence[int]) -> tuple[int, int]:
    """[lo, hi): the element offsets a view of ``shape`` and ``strides`` touches ((0, 0) if empty)."""
    if not all(shape):
        return 0, 0
    lo = sum(s * (d - 1) for s, d in zip(strides, shape) if s < 0)
    hi = sum(s * (d - 1) for s, d in zip(strides, shape) if s > 0)
    return lo, hi + 1


def c_strides(shape: Sequence[int]) -> tuple:
    """The element strides of a C-contiguous array of this shape."""
    strides, acc = [], 1
    for d in reversed(tuple(shape)):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def _accesses(program: Program, prefix: str) -> Iterator[Access]:
    """Every reference of ``program`` into its own buffers, with the extent used through it (a
    kernel pointer's: its binding's ``extent``, the views the kernel reaches through it; in a
    manifest without one, its start). A loop's step is a program of its own; its references
    are into its own buffers (``_Checker.program`` walks them with the step)."""
    for i, k in enumerate(program.kernels):
        for j, b in enumerate(k.bindings):
            if b.kind == "ptr":
                lo, hi = b.extent or (0, 0)
                yield Access(f"{prefix}kernels[{i}].bindings[{j}].ref.offset", b.ref, lo, hi)
    for i, o in enumerate(program.outputs):
        lo, hi = _strided_extent(o.shape, o.strides)
        yield Access(f"{prefix}outputs[{i}].ref.offset", o.ref, lo, hi)
    for j, loop in enumerate(program.loops):
        f, step, n = f"{prefix}loops[{j}]", loop.step, loop.n_steps
        for s, (ref, stride, rows) in enumerate(loop.seqs):
            size = math.prod(step.leaves[s].shape)
            # the whole sequence, all its rows (a loop reads rows 0 .. n-1, or the last n backwards)
            ends = [0, (rows - 1) * stride] if rows else []
            lo, hi = (min(ends), max(ends) + size) if ends and size else (0, 0)
            yield Access(f"{f}.seqs[{s}]", ref, lo, hi)
        for s, ref in enumerate(loop.initial):
            yield Access(f"{f}.initial[{s}]", ref, 0, math.prod(step.leaves[len(loop.seqs) + s].shape))
        for s, ref in enumerate(loop.nonseqs):
            leaf = step.leaves[len(loop.seqs) + len(loop.initial) + s]
            yield Access(f"{f}.nonseqs[{s}]", ref, 0, math.prod(leaf.shape))
        for s, (ref, row) in enumerate(loop.outputs):
            size = math.prod(step.outputs[s].shape)
            if ref is not None:
                yield Access(f"{f}.outputs[{s}]", ref, 0, (n - 1) * row + size if n and size else 0)


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, want: str) -> ArtifactError:
        return ArtifactError(f"{self.where}: malformed manifest: {field} must be {want}"[:600])

    def program(self, p: Program, prefix: str) -> None:
        self.buffers(p, prefix)
        for i, k in enumerate(p.kernels):
            self.kernel(p, k, f"{prefix}kernels[{i}]")
        self.outputs(p, prefix)
        for j, loop in enumerate(p.loops):
            self.loop(p, loop, f"{prefix}loops[{j}]")
        used = {s for k in p.kernels for b in k.bindings if b.kind == "scalar" for s in [b.slot]}
        used |= {s for a in _accesses(p, prefix) for s, _ in a.ref.dyn}
        for s in range(len(p.scalars)):
            if s not in used:
                raise self.fail(f"{prefix}scalars[{s}]", "a runtime scalar some kernel or reference uses")
        for a in _accesses(p, prefix):
            # a reference with runtime terms is checked here as if they were 0 (a minibatch from
            # the start), and again with the scalars of each call (check_scalars)
            buf = p.buffers[a.ref.buffer]
            lo, hi = _extent(a, None)
            if lo < 0 or hi > buf.size:
                raise self.fail(a.field, f"a reference inside buffer {buf.index} of {buf.size} elements "
                                         f"(it reaches elements [{lo}, {hi}))")
            for t, (_, coef) in enumerate(a.ref.dyn):
                if not 0 < abs(coef) <= buf.size:
                    raise self.fail(f"{a.field.removesuffix('.offset')}.dyn[{t}][1]",
                                    f"a stride of buffer {buf.index} of {buf.size} elements (got {coef})")

    def bytes_(self, nbytes: int, field: str) -> None:
        if nbytes > MAX_BYTES:
            raise self.fail(field, f"at most {MAX_BYTES} bytes, the largest tensor theta compiles (got {nbytes})")

    def buffers(self, p: Program, prefix: str) -> None:
        bound: dict[int, int] = {}
        arena_end, naive = 0, 0
        for i, b in enumerate(p.buffers):
            f = f"{prefix}buffers[{i}]"
            self.bytes_(b.nbytes, f + ".size")
            if b.kind in ("input", "shared"):
                if b.slot in bound:
                    raise self.fail(f + ".slot", f"a leaf no other buffer holds (buffer {bound[b.slot]} does)")
                bound[b.slot] = i
            if b.kind == "output" and not 0 <= b.slot < len(p.outputs):
                raise self.fail(f + ".slot", f"the number of an output, in [0, {len(p.outputs)})")
            if b.kind == "const":
                c = p.constants[b.slot]
                if c.dtype.name != b.dtype or c.size != b.size:
                    raise self.fail(f, f"of the dtype and size of constant {b.slot} ({c.dtype.name}[{c.size}])")
            if b.kind == "temp":
                if b.slot != -1 or b.arena_offset % ARENA_ALIGN:
                    raise self.fail(f + ".arena_offset", f"a multiple of {ARENA_ALIGN} (and slot -1)")
                span = max(ARENA_ALIGN, -(-b.nbytes // ARENA_ALIGN) * ARENA_ALIGN)
                arena_end, naive = max(arena_end, b.arena_offset + span), naive + span
            elif b.arena_offset != -1:
                raise self.fail(f + ".arena_offset", "-1 (only a temporary lies in the arena)")
        if p.arena_bytes != arena_end:
            raise self.fail(f"{prefix}arena_bytes", f"the extent of the temporaries, {arena_end} bytes "
                                                    f"(got {p.arena_bytes})")
        if p.naive_bytes != naive:
            raise self.fail(f"{prefix}naive_bytes", f"the temporaries' total, {naive} bytes (got {p.naive_bytes})")
        for s, leaf in enumerate(p.leaves):
            self.bytes_(math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize, f"{prefix}leaves[{s}][2]")
            if s not in bound:
                raise self.fail(f"{prefix}leaves[{s}]", "a leaf some input or shared buffer holds")

    def kernel(self, p: Program, k, f: str) -> None:
        match = re.search(_SIGNATURE.format(name=re.escape(k.name)), k.source)
        if match is None:
            raise self.fail(f + ".name", f"the name of the kernel its source defines ({k.name!r} is not)")
        threads, declared = int(match.group(1)), match.group(2)
        params = ", ".join(f"{q.ctype} {q.name}" for q in k.params)
        if declared != params:
            raise self.fail(f + ".params", f"the parameters its source declares ({declared})")
        if tuple(k.block) != (threads,) + (1,) * (len(k.block) - 1):
            raise self.fail(f + ".block", f"[{threads}], the block its source is compiled for (got {list(k.block)})")
        if any(d > lim for d, lim in zip(k.grid, GRID_LIMITS)):
            raise self.fail(f + ".grid", f"within CUDA's limits {list(GRID_LIMITS)} (got {list(k.grid)})")
        # every kernel strides over its work: no more blocks than the elements it reads or writes
        work = max([p.buffers[b.ref.buffer].size for b in k.bindings if b.kind == "ptr"], default=0)
        if math.prod(k.grid) > max(work, 1):
            raise self.fail(f + ".grid", f"at most one block per element of its buffers ({work}; got {list(k.grid)})")
        if k.shared_bytes > MAX_DYNAMIC_SHARED:
            raise self.fail(f + ".shared_bytes", f"at most {MAX_DYNAMIC_SHARED} (got {k.shared_bytes})")
        for j, (q, b) in enumerate(zip(k.params, k.bindings)):
            g = f"{f}.bindings[{j}]"
            if b.kind == "ptr":
                dtype = p.buffers[b.ref.buffer].dtype
                pointee = q.ctype.split("*")[0].replace("const ", "").strip()
                if b.slot != -1 or "*" not in q.ctype or pointee != C_TYPES[dtype]:
                    raise self.fail(g, f"a pointer of its parameter's type {q.ctype!r} into a buffer of that "
                                       f"type (buffer {b.ref.buffer} holds {dtype}), slot -1")
            elif b.kind == "scalar" and q.ctype != "long long":
                raise self.fail(g, f"bound to a 'long long' parameter (got {q.ctype!r})")
            elif b.kind == "status" and (b.slot != -1 or q.ctype != "int*"):
                raise self.fail(g, "bound to the 'int*' status parameter, slot -1")

    def outputs(self, p: Program, prefix: str) -> None:
        for i, o in enumerate(p.outputs):
            f = f"{prefix}outputs[{i}]"
            if len(o.strides) != len(o.shape):
                raise self.fail(f + ".strides", f"one stride per dimension of shape {list(o.shape)}")
            if o.dtype != p.buffers[o.ref.buffer].dtype:
                raise self.fail(f + ".dtype", f"the dtype of buffer {o.ref.buffer} "
                                              f"({p.buffers[o.ref.buffer].dtype})")
            self.bytes_(math.prod(o.shape) * np.dtype(o.dtype).itemsize, f + ".shape")
        n_out = len(p.outputs) - p.n_updates
        for k, target in enumerate(p.update_targets):
            if p.outputs[n_out + k].dtype != p.leaves[target].dtype:
                raise self.fail(f"{prefix}update_targets[{k}]", f"a leaf of the dtype of output {n_out + k}")

    def loop(self, p: Program, loop, f: str) -> None:
        self.program(loop.step, f + ".step.")
        step = loop.step
        refs = [(f"{f}.seqs[{s}]", r, step.leaves[s].dtype) for s, (r, _, _) in enumerate(loop.seqs)]
        leaves = step.leaves[len(loop.seqs):]
        refs += [(f"{f}.initial[{s}]", r, leaves[s].dtype) for s, r in enumerate(loop.initial)]
        leaves = leaves[len(loop.initial):]
        refs += [(f"{f}.nonseqs[{s}]", r, leaves[s].dtype) for s, r in enumerate(loop.nonseqs)]
        refs += [(f"{f}.outputs[{s}]", r, step.outputs[s].dtype) for s, (r, _) in enumerate(loop.outputs) if r]
        for field, ref, dtype in refs:
            if p.buffers[ref.buffer].dtype != dtype:
                raise self.fail(field, f"a reference into a buffer of {dtype}, the step's "
                                       f"(buffer {ref.buffer} holds {p.buffers[ref.buffer].dtype})")
        for s, (ref, row) in enumerate(loop.outputs):
            spec = step.outputs[s]
            if row < math.prod(spec.shape):
                raise self.fail(f"{f}.outputs[{s}][1]", f"a row of at least the step output's "
                                                       f"{math.prod(spec.shape)} elements (got {row})")
            self.bytes_(loop.n_steps * row * np.dtype(spec.dtype).itemsize, f"{f}.n_steps")
        for j in range(loop.n_states):   # a state is read back from its previous output row
            leaf, out = step.leaves[len(loop.seqs) + j], step.outputs[j]
            if (leaf.dtype, tuple(leaf.shape)) != (out.dtype, tuple(out.shape)):
                raise self.fail(f"{f}.n_states", f"the number of step outputs that feed a state of their "
                                                 f"own type (output {j} is {out.dtype}{list(out.shape)}, "
                                                 f"its state {leaf.dtype}{list(leaf.shape)})")

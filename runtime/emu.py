"""The emu backend: runs a Program's CUDA C on the CPU.

All kernels of a Program are compiled into one shared library by g++ against kernels/emu.h
(cached on disk by source hash, see runtime.cache) and launched with the Program's grid and
block shapes; a CUDA block's threads really run concurrently up to each barrier. Buffers are
numpy arrays: leaves are passed in, results get fresh arrays, and temporaries live in one
arena sized by the Program's buffer plan.
"""
from __future__ import annotations

import shutil
from typing import Sequence

import numpy as np

from ..compiler.errors import BackendError, ShapeError
from ..compiler.layout import c_strides
from ..compiler.program import Program, raise_status
from .emu_build import EmuCompileError, EmuLaunchError, EmuModule, KernelSig, Param


class EmuExecutor:
    backend = "emu"

    def __init__(self, program: Program, asan: bool = False) -> None:
        self.program = program
        self.asan = asan
        source = "\n".join(k.source for k in program.kernels)
        sigs = [KernelSig(k.name, tuple(Param(p.name, p.ctype) for p in k.params)) for k in program.kernels]
        from .emu_build import CXX
        if program.kernels and shutil.which(CXX) is None:
            raise BackendError(f"the emu backend compiles kernels with {CXX}, which is not on PATH here; "
                               "install it (Debian: apt-get install g++) or use backend='reference'")
        try:
            self.module = EmuModule(source, sigs, asan=asan) if program.kernels else None
        except EmuCompileError as e:  # a theta bug, shown with the failing source line
            raise BackendError(f"emu could not build this program's kernels:\n{e}") from e
        self._arena = np.zeros(max(program.arena_bytes, 1), dtype=np.uint8)
        self._consts = [np.ascontiguousarray(c) for c in program.constants]

    def run_values(self, leaf_values: Sequence[np.ndarray], scalar_values: Sequence[int]) -> list[np.ndarray]:
        prog = self.program
        if len(leaf_values) != len(prog.leaves):
            raise BackendError(f"program takes {len(prog.leaves)} leaf values, got {len(leaf_values)}")
        arrays: list[np.ndarray | None] = []
        for buf in prog.buffers:
            if buf.kind in ("input", "shared"):
                spec = prog.leaves[buf.slot]
                a = np.asarray(leaf_values[buf.slot], dtype=buf.dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
                if a.shape != tuple(spec.shape):
                    raise ShapeError(f"program input {spec.name} needs shape {spec.shape}, got {a.shape}")
                arrays.append(a.reshape(-1))
            elif buf.kind == "const":
                arrays.append(self._consts[buf.slot].reshape(-1))
            elif buf.kind == "output" or self.asan:
                # Under AddressSanitizer every temporary is its own allocation, so an overflow
                # out of one is caught instead of landing in a neighbour inside the arena.
                arrays.append(np.empty(buf.size, dtype=buf.dtype))
            else:
                arrays.append(self._arena[buf.arena_offset:buf.arena_offset + buf.nbytes].view(buf.dtype))
        scalars = [int(s) for s in scalar_values]

        def pointer(ref) -> tuple:
            # (buffer, byte offset of the element the parameter points at): the kernel may read
            # before it through negative strides, so the whole buffer is the extent
            a = arrays[ref.buffer]
            return a, (ref.offset + sum(scalars[slot] * coef for slot, coef in ref.dyn)) * a.itemsize

        status = np.zeros(1, dtype=np.int32)  # a kernel that meets bad input reports it here

        def arg(b):
            if b.kind == "ptr":
                return pointer(b.ref)
            return status if b.kind == "status" else scalars[b.slot]

        for k in prog.kernels:
            args = [arg(b) for b in k.bindings]
            try:
                self.module.launch(k.name, k.grid, k.block, args, k.shared_bytes)
            except EmuLaunchError as e:
                raise BackendError(f"kernel {k.name} ({k.family}) failed on emu: {e}") from e

        raise_status(prog, int(status[0]))
        outs = []
        for o in prog.outputs:
            a = arrays[o.ref.buffer]
            offset = o.ref.offset + sum(scalars[slot] * coef for slot, coef in o.ref.dyn)
            buf = prog.buffers[o.ref.buffer]
            if buf.kind == "output" and offset == 0 and c_strides(o.shape) == tuple(o.strides):
                outs.append(a.reshape(o.shape))
                continue
            view = np.lib.stride_tricks.as_strided(a[offset:] if a.size else a, shape=o.shape,
                                                   strides=tuple(s * a.itemsize for s in o.strides), writeable=False)
            outs.append(np.array(view, copy=True))
        return outs


class EmuProgram:
    """Adapter with the reference backend's interface: ``run(env)`` with env id(leaf) -> value."""

    backend = "emu"

    def __init__(self, outputs, leaves: Sequence, scalars: Sequence, asan: bool = False) -> None:
        from ..compiler.pipeline import build_program
        self.leaves, self.scalars = list(leaves), list(scalars)
        self.program = build_program(outputs, self.leaves, self.scalars)
        self.executor = EmuExecutor(self.program, asan=asan)

    @property
    def kernels(self):
        return self.program.kernels

    def run(self, env: dict) -> list[np.ndarray]:
        from .reference import host_value
        return self.executor.run_values([host_value(env[id(v)]) for v in self.leaves],
                                        [int(np.asarray(env[id(s)])) for s in self.scalars])

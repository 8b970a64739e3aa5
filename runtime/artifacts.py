"""What a saved Program carries besides its sources, so loading it needs no compiler.

    "emu.cpp"          the emu translation unit (runtime.emu_build.render_source), compiled
                       by g++ at load without jinja2
    "sm_80.cubin"      the kernels compiled by nvcc for sm_80 and sm_90 (runtime.nvcc,
    "sm_90.cubin"      same source and flags as the cuda backend)
    "compute_90.ptx"   PTX a newer GPU's driver can JIT when no cubin matches it

The nvcc ones are left out, without an error, where nvcc is not installed. Every build
goes through the on-disk KernelCache, so saving a program again costs nothing.
"""
from __future__ import annotations

from ..compiler.program import Program
from .cache import KernelCache

EMU_TU = "emu.cpp"
CUBIN_ARCHS = ("sm_80", "sm_90")
PTX_ARCHS = ("compute_90",)


def kernel_source(program: Program) -> str:
    """The one CUDA C source all of a program's kernels are compiled from (by every backend)."""
    return "\n".join(k.source for k in program.kernels)


def build_artifacts(program: Program, *, cache: KernelCache | None = None) -> dict[str, bytes]:
    """The artifacts to save with ``program`` (name -> bytes; none for a program without kernels)."""
    from .emu_build import KernelSig, Param, render_source, uses_sync
    from .nvcc import compile_cubin, compile_ptx, find_nvcc
    if not program.kernels:
        return {}
    source = kernel_source(program)
    sigs = [KernelSig(k.name, tuple(Param(p.name, p.ctype) for p in k.params)) for k in program.kernels]
    # fibers as EmuModule picks them by default, so the saved unit is the one emu would build
    artifacts = {EMU_TU: render_source(source, sigs, fibers=uses_sync(source)).encode()}
    if find_nvcc() is not None:
        for arch in CUBIN_ARCHS:
            artifacts[f"{arch}.cubin"] = compile_cubin(source, arch, cache=cache)
        for arch in PTX_ARCHS:
            artifacts[f"{arch}.ptx"] = compile_ptx(source, arch, cache=cache)
    return artifacts

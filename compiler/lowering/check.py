"""Lowering of run-time argument checks (compiler/ops/check.py) to kernels/check.cu.j2.

One thread reads the count of bad elements (a scalar another kernel reduced), reports a non-zero
count in the program's status word, and writes the zero the checked value adds. The status code
names this kernel, and its ``origin`` carries the check's message (codegen.status_origin), so
compiler.program.raise_status raises what the reference backend raises.
"""
from __future__ import annotations

from ..codegen import Kernel, KernelBuilder
from ..cprint import CTYPES
from ..fuse import Group
from ..ops.check import ArgCheck


def lower(group: Group, kb: KernelBuilder) -> list[Kernel]:
    node = group.main
    if group.prologue or group.body or group.epilogue or not isinstance(node.op, ArgCheck):
        raise NotImplementedError(f"a check group is one ArgCheck, nothing fused: {group}")
    count = kb.pointer(node.inputs[0], prefix="bad")
    out = kb.pointer(node, write=True, prefix="out")
    status = kb.status()
    return [kb.kernel("check.cu.j2", 1, 1, count=count, count_ctype=CTYPES[node.inputs[0].dtype],
                      out=out, ctype=CTYPES[node.dtype], status=status)]

"""Family lowerers: each turns one fused group into kernels (see compiler.codegen).

    elemwise -> elemwise.cu.j2        reduce  -> reduce.cu.j2       gemm -> gemm.cu.j2
    softmax  -> softmax.cu.j2         gather  -> gather.cu.j2       scatter -> copy + scatter.cu.j2
    concat   -> copy.cu.j2            conv    -> conv.cu.j2         pool -> pool.cu.j2
    sparse   -> sparse.cu.j2           check   -> check.cu.j2 (run-time argument checks)
"""
from __future__ import annotations

from ..codegen import Kernel, KernelBuilder
from ..fuse import Group
from ..schedule import Plan
from . import check, conv, elemwise, gemm, index, pool, reduce, softmax, sparse

LOWERERS = {
    "elemwise": elemwise.lower,
    "reduce": reduce.lower,
    "gemm": gemm.lower,
    "softmax": softmax.lower,
    "gather": index.lower_gather,
    "scatter": index.lower_scatter,
    "concat": index.lower_concat,
    "pool": pool.lower,
    "conv": conv.lower,
    "sparse": sparse.lower,
    "check": check.lower,
}


def lower_group(group: Group, name: str, plan: Plan, lays: dict, code: int = 0) -> list[Kernel]:
    """Kernels for ``group``; ``code`` is what they report in the status word on bad input."""
    lower = LOWERERS.get(group.family)
    if lower is None:
        from ..errors import BackendError
        raise BackendError(f"the kernel backends cannot run {group.main.op if group.main is not None else group} "
                           f"yet (no lowering for the {group.family} family): compile this function with "
                           "backend='reference'")
    return lower(group, KernelBuilder(name, group.family, plan, lays, code, group))

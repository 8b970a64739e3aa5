"""Family lowerers: each turns one fused group into kernels (see compiler.codegen)."""
from __future__ import annotations

from ..codegen import Kernel, KernelBuilder
from ..fuse import Group
from ..schedule import Plan


def lower_group(group: Group, name: str, plan: Plan, lays: dict) -> list[Kernel]:
    from . import elemwise
    lowerers = {"elemwise": elemwise.lower}
    for fam, module in (("reduce", "reduce"), ("gemm", "gemm"), ("softmax", "softmax"),
                        ("gather", "index"), ("scatter", "index"), ("concat", "index")):
        try:
            mod = __import__(f"{__name__}.{module}", fromlist=["lower"])
        except ImportError:
            continue
        lowerers.setdefault(fam, getattr(mod, f"lower_{fam}" if fam in ("gather", "scatter", "concat") else "lower"))
    lower = lowerers.get(group.family)
    if lower is None:
        raise NotImplementedError(f"no lowering for the {group.family} family yet ({group})")
    return lower(group, KernelBuilder(name, group.family, plan, lays))

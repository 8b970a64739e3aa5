"""constant_fold: evaluate nodes whose inputs are all constants (small results only, so a
large ``zeros((4096, 4096))`` stays an Alloc instead of becoming a 64 MB literal)."""
from __future__ import annotations

from ..graph import Variable, constant
from ..ops.shape import Alloc

MAX_FOLDED_ELEMENTS = 1 << 12


def fold_constants(node: Variable):
    if node.op is None or not node.inputs or not all(i.is_constant for i in node.inputs):
        return None
    if isinstance(node.op, Alloc) and (not node.type.is_concrete or _size(node) > 1):
        return None
    if not node.type.is_concrete or _size(node) > MAX_FOLDED_ELEMENTS:
        return None
    return constant(node.op.perform(*(i.data for i in node.inputs)), node.dtype)


def _size(node: Variable) -> int:
    n = 1
    for d in node.type.shape:
        n *= d
    return n


RULES = [fold_constants]

"""constant_fold: evaluate nodes whose inputs are all constants (small results only, so a
large ``zeros((4096, 4096))`` stays an Alloc instead of becoming a 64 MB literal)."""
from __future__ import annotations

from ..graph import Variable, constant
from ..ops.shape import Alloc

MAX_FOLDED_ELEMENTS = 1 << 12


def fold_constants(node: Variable):
    # A node with no inputs at all (an arange whose bounds were all folded into its parameters)
    # is as constant as one whose inputs all are.
    if node.op is None or not all(i.is_constant for i in node.inputs):
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


def fold_broadcast_constants(node: Variable):
    """An elementwise op whose inputs are all broadcast constants computes one value: fold it
    and broadcast the result (the 1/n that a mean's gradient spreads over its input)."""
    from ..ops.elemwise import Elemwise
    if not isinstance(node.op, Elemwise) or not node.type.is_concrete:
        return None
    values = []
    for i in node.inputs:
        if i.is_constant and i.data.size == 1:
            values.append(i.data.reshape(()))
        elif isinstance(i.op, Alloc) and len(i.inputs) == 1 and i.inputs[0].is_constant and i.inputs[0].data.size == 1:
            values.append(i.inputs[0].data.reshape(()))
        else:
            return None
    if all(i.is_constant for i in node.inputs):
        return None  # fold_constants' case
    value = constant(node.op.perform(*values), node.dtype)
    return Alloc(node.type.shape)(value)


RULES = [fold_constants, fold_broadcast_constants]

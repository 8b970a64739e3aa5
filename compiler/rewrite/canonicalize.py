"""canonicalize: put the graph in a normal form the later passes and the lowering expect.

Scalar constants are folded into elementwise expressions, identity casts/dimshuffles/reshapes
disappear, consecutive dimshuffles compose, and the shape-dependent ops that the gradient
introduced (SumTo, Alloc of a value that already has the shape) become plain ops or nothing.
"""
from __future__ import annotations

import sympy as sp

from ..graph import Variable
from ..ops import scalar as S
from ..ops.elemwise import Elemwise, SumTo, make
from ..ops.reduce import Reduce, expand_reduced
from ..ops.shape import Alloc, DimShuffle, Reshape


def inline_scalar_constants(node: Variable):
    """x + Constant(2.0) -> Elemwise(x0 + 2.0): constants of size 1 that broadcast away."""
    if not isinstance(node.op, Elemwise):
        return None
    xs = S.symbols(node.op.nin)
    subs, keep = {}, []
    for sym, inp in zip(xs, node.inputs):
        if inp.is_constant and inp.data.size == 1 and inp.dtype != "bool":
            subs[sym] = sp.sympify(inp.data.reshape(()).item())
        else:
            keep.append((sym, inp))
    if not subs or not keep:
        return None
    if any(inp.ndim and inp.data.shape != (1,) * inp.ndim for inp in node.inputs if inp.is_constant and inp.data.size == 1):
        return None
    expr = node.op.expr.xreplace(subs)
    if S.has_special(expr) and not S.has_special(node.op.expr):
        return None   # x/0 would fold to zoo*x: keep the zero an input, so IEEE gives inf, -inf or nan
    # Keep the output shape: the remaining inputs must still broadcast to it.
    from ..types import broadcast_shapes
    shape = broadcast_shapes([v.type.shape for _, v in keep], lambda: "")
    if shape != node.type.shape:
        return None
    renum = {sym: S.symbols(len(keep))[i] for i, (sym, _) in enumerate(keep)}
    expr = expr.xreplace(renum)
    if not expr.free_symbols:
        return None
    return make(expr, [v for _, v in keep], node.dtype, name=node.op.name)


def remove_identity_elemwise(node: Variable):
    """Elemwise(x0) or a cast to the dtype x already has: just x."""
    if not isinstance(node.op, Elemwise) or node.op.nin != 1:
        return None
    (x,) = node.inputs
    expr = node.op.expr
    x0 = S.symbols(1)[0]
    if x.type == node.type and (expr == x0 or (isinstance(expr, sp.Function) and getattr(type(expr), "dtype", None)
                                               == x.dtype and expr.args == (x0,))):
        return x
    return None


def compose_dimshuffles(node: Variable):
    if not isinstance(node.op, DimShuffle):
        return None
    (x,) = node.inputs
    if node.op.order == tuple(range(x.ndim)):
        return x
    if isinstance(x.op, DimShuffle):
        inner = x.op.order
        order = tuple("x" if a == "x" else inner[a] for a in node.op.order)
        dropped_ok = all(a in order for a in inner if a != "x")
        if dropped_ok:
            return DimShuffle(order)(x.inputs[0])
    return None


def remove_identity_reshape(node: Variable):
    if isinstance(node.op, Reshape) and len(node.inputs) == 1:
        x = node.inputs[0]
        if x.type.is_concrete and x.type.shape == node.type.shape:
            return x
        if isinstance(x.op, Reshape) and len(x.inputs) == 1:
            return Reshape(node.op.shape)(x.inputs[0])
    return None


def lower_sum_to(node: Variable):
    """SumTo with concrete shapes: a sum over the broadcast axes, or nothing."""
    if not isinstance(node.op, SumTo):
        return None
    g, like = node.inputs
    if not (g.type.is_concrete and like.type.is_concrete):
        return None
    axes = tuple(a for a, (gs, s) in enumerate(zip(g.type.shape, like.type.shape)) if s == 1 and gs != 1)
    if not axes:
        return g
    return expand_reduced(Reduce("sum", axes, g.dtype)(g), axes, g.ndim)


def remove_useless_alloc(node: Variable):
    if isinstance(node.op, Alloc) and len(node.inputs) == 1:
        v = node.inputs[0]
        if v.type.is_concrete and v.type.shape == node.type.shape:
            return v
    return None


def inline_unary_producers(node: Variable):
    """f(g(x)) with g unary and elementwise over the same shape -> one expression, when that
    simplifies it (chains like neg(neg(x)) cancel)."""
    if not isinstance(node.op, Elemwise):
        return None
    xs = S.symbols(node.op.nin)
    subs, inputs = {}, list(node.inputs)
    for i, inp in enumerate(node.inputs):
        if isinstance(inp.op, Elemwise) and inp.op.nin == 1 and inp.type.shape == inp.inputs[0].type.shape \
                and inp.type.shape == node.type.shape:
            subs[xs[i]] = inp.op.expr.xreplace({S.symbols(1)[0]: xs[i]})
            inputs[i] = inp.inputs[0]
    if not subs:
        return None
    expr = node.op.expr.xreplace(subs)
    if S.has_special(expr) and not S.has_special(node.op.expr):
        return None   # log(0*x) would fold to zoo, not NumPy's -inf
    # Only when the composition simplifies (neg(neg(x)) -> x): otherwise the producer may be
    # needed anyway (an activation the backward pass reads) and inlining would recompute it.
    before = sp.count_ops(node.op.expr) + sum(sp.count_ops(node.inputs[i].op.expr)
                                              for i, sym in enumerate(xs) if sym in subs)
    if sp.count_ops(expr) >= before:
        return None
    return make(expr, inputs, node.dtype, name=node.op.name)


RULES = [inline_unary_producers, inline_scalar_constants, remove_identity_elemwise, compose_dimshuffles, remove_identity_reshape,
         lower_sum_to, remove_useless_alloc]

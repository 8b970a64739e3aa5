"""Second order: L-op, R-op, Jacobians and Hessians through scan, Hessian-vector products.

    Lop(f, wrt, u)         u^T (df/dwrt): one reverse pass (theta.grad with known gradients)
    Rop(f, wrt, v)         (df/dwrt) v:   the transpose of the L-op, itself by a reverse pass.
                           Lop(f, wrt, u) is linear in u, so Rop = d/du <Lop(f, wrt, u), v>;
                           the placeholder u disappears from the result. Every op with a
                           gradient gets an R-op this way, at about twice a gradient's cost.
    hessian_vector_product(cost, wrt, v)   H v = Rop(grad(cost, wrt), wrt, v) (Pearlmutter):
                           a small constant times a gradient, never the n x n Hessian.
    jacobian(f, wrt), hessian(cost, wrt)   one row per element of f, by theta.scan over the
                           rows (a loop in the graph, not one copy of the graph per row).
"""
from __future__ import annotations

from typing import Sequence

from .errors import GraphError, describe
from .graph import Variable
from .types import TensorType, is_float


def _as_list(x) -> tuple[list, bool]:
    if isinstance(x, (list, tuple)):
        return list(x), False
    return [x], True


def Lop(f, wrt, eval_points):
    """Theano's T.Lop: eval_points^T times the Jacobian of ``f`` with respect to ``wrt``."""
    from .grad import grad
    from .tensor.basic import as_tensor_variable
    fs, _ = _as_list(f)
    us, _ = _as_list(eval_points)
    if len(fs) != len(us):
        raise GraphError(f"Lop: {len(fs)} expressions but {len(us)} eval points")
    known = {}
    for fi, ui in zip(fs, us):
        ui = as_tensor_variable(ui)
        if ui.ndim != fi.ndim:
            raise GraphError(f"Lop: eval point {describe(ui)} does not match {describe(fi)}")
        known[fi] = ui
    return grad(None, wrt, known_grads=known, disconnected_inputs="ignore")


def Rop(f, wrt, eval_points):
    """Theano's T.Rop: the Jacobian of ``f`` with respect to ``wrt`` times ``eval_points``."""
    from .grad import grad
    from .graph import rebuild
    from .tensor.basic import as_tensor_variable, sum as tsum, zeros_like
    fs, single_f = _as_list(f)
    xs, _ = _as_list(wrt)
    vs, _ = _as_list(eval_points)
    if len(xs) != len(vs):
        raise GraphError(f"Rop: {len(xs)} variables but {len(vs)} eval points")
    for x, v in zip(xs, vs):
        v = as_tensor_variable(v)
        if v.ndim != x.ndim:
            raise GraphError(f"Rop: eval point {describe(v)} does not match {describe(x)}")
    out = []
    for fi in fs:
        if not is_float(fi.dtype):
            raise GraphError(f"Rop: {describe(fi)} is not a float expression")
        u = Variable(TensorType(fi.dtype, fi.type.shape), name="u")   # the L-op's cotangent
        lops = Lop(fi, xs, u)
        inner = None
        for lop, v in zip(lops, vs):
            term = tsum(lop * as_tensor_variable(v))
            inner = term if inner is None else inner + term
        jvp = grad(inner, u, disconnected_inputs="ignore")
        # the result does not depend on u's value, but may still read its shape: any u of f's
        # shape does (zeros, computed from f's own shape)
        (jvp,) = rebuild([jvp], {u: zeros_like(fi)})
        out.append(jvp)
    return out[0] if single_f else out


def hessian_vector_product(cost: Variable, wrt, vector):
    """H v for the Hessian of the scalar ``cost`` with respect to ``wrt`` (Pearlmutter's trick)."""
    from .grad import grad
    xs, single = _as_list(wrt)
    vs, _ = _as_list(vector)
    gs = grad(cost, xs)
    hv = [Rop(g, xs, vs) for g in gs]
    return hv[0] if single else hv


def jacobian(expression: Variable, wrt, disconnected_inputs: str = "raise"):
    """The Jacobian of a vector ``expression``: row i is grad(expression[i], wrt), one scan
    step per row (Theano's theta.gradient.jacobian)."""
    from .grad import grad
    from .scan import scan
    from .tensor.basic import as_tensor_variable
    from .ops.shape import arange
    expression = as_tensor_variable(expression)
    if expression.ndim != 1:
        raise GraphError(f"jacobian needs a vector expression, got {describe(expression)}")
    xs, single = _as_list(wrt)
    rows, _ = scan(lambda i: grad(expression[i], xs, disconnected_inputs=disconnected_inputs),
                   sequences=arange(expression.shape[0]), name="jacobian", return_list=True)
    return rows[0] if single else rows


def hessian(cost: Variable, wrt, disconnected_inputs: str = "raise"):
    """The Hessian of the scalar ``cost`` with respect to each vector in ``wrt``."""
    from .grad import grad
    xs, single = _as_list(wrt)
    out = []
    for x in xs:
        if x.ndim != 1:
            raise GraphError(f"hessian takes vectors (flatten the variable first), got {describe(x)}")
        out.append(jacobian(grad(cost, x, disconnected_inputs=disconnected_inputs), x,
                            disconnected_inputs=disconnected_inputs))
    return out[0] if single else out


__all__: Sequence[str] = ("Lop", "Rop", "hessian_vector_product", "jacobian", "hessian")

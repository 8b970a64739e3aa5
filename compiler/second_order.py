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
    """Left operator: ``eval_points`` times the Jacobian of ``f`` (Theano's ``T.Lop``), a vector-Jacobian product.

    Computed by reverse mode (``theta.grad`` with ``known_grads``), never forming the Jacobian.

    Parameters
    ----------
    f : Variable or list of Variable
        The expressions.
    wrt : Variable or list of Variable
    eval_points : Variable or list of Variable
        One per ``f``, of its rank (``u`` in ``u^T J``).

    Returns
    -------
    Variable or list of Variable
        One per ``wrt``, of its shape.

    Raises
    ------
    GraphError
        A count or rank mismatch between ``f`` and ``eval_points``.
    """
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
    """Right operator: the Jacobian of ``f`` times ``eval_points`` (Theano's ``T.Rop``), a Jacobian-vector product.

    Forward-mode differentiation expressed through two reverse passes, never forming the
    Jacobian.

    Parameters
    ----------
    f : Variable or list of Variable
    wrt : Variable or list of Variable
    eval_points : Variable or list of Variable
        One per ``wrt``, of its shape (``v`` in ``J v``).

    Returns
    -------
    Variable or list of Variable
        One per ``f``, of its shape.

    Raises
    ------
    GraphError
        A count or shape mismatch between ``wrt`` and ``eval_points``.
    """
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
    """``H v``, the Hessian of a scalar cost times a vector, without forming the Hessian.

    Pearlmutter's trick: the R-op of the gradient, so it costs a small constant times a gradient.
    This is what Hessian-free and other second-order methods need.

    Parameters
    ----------
    cost : scalar Variable
    wrt : Variable or list of Variable
    vector : Variable or list of Variable
        One per ``wrt``, of its shape.

    Returns
    -------
    Variable or list of Variable
        One per ``wrt``, of its shape.

    Examples
    --------
    >>> p, v = T.dvector("p"), T.dvector("v")
    >>> loss = (p ** 4).sum()
    >>> hvp = theta.function([p, v], theta.gradient.hessian_vector_product(loss, p, v))
    """
    from .grad import grad
    xs, single = _as_list(wrt)
    vs, _ = _as_list(vector)
    gs = grad(cost, xs)
    hv = [Rop(g, xs, vs) for g in gs]
    return hv[0] if single else hv


def jacobian(expression: Variable, wrt, disconnected_inputs: str = "raise"):
    """The Jacobian of a vector expression (Theano's ``theano.gradient.jacobian``).

    Row ``i`` is ``grad(expression[i], wrt)``, computed as a scan with one step per row.

    Parameters
    ----------
    expression : vector Variable
    wrt : Variable or list of Variable
    disconnected_inputs : {'raise', 'warn', 'ignore'}, optional
        As for :func:`theta.grad`.

    Returns
    -------
    Variable or list of Variable
        Shape ``(len(expression),) + wrt.shape`` for each ``wrt``.

    Raises
    ------
    GraphError
        ``expression`` is not a vector.
    """
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
    """The Hessian of a scalar cost with respect to vectors (Theano's ``theano.gradient.hessian``).

    The Jacobian of the gradient, row by row (a scan): ``n`` gradient evaluations for an
    ``n``-vector. For large ``n`` prefer :func:`hessian_vector_product`.

    Parameters
    ----------
    cost : scalar Variable
    wrt : vector Variable or list of them
        Flatten matrices first.
    disconnected_inputs : {'raise', 'warn', 'ignore'}, optional

    Returns
    -------
    Variable or list of Variable
        ``(n, n)`` for each ``wrt`` of length ``n``.

    Raises
    ------
    GraphError
        A ``wrt`` that is not a vector.
    """
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

"""theta.gradient.verify_grad: Theano's check of a symbolic gradient against finite differences.

As in Theano, the function's output is projected on a random tensor, so any output shape
reduces to a scalar cost. For each input, the symbolic gradient of that cost, dotted with a
random direction, is compared with the central finite difference of the cost along that
direction: two extra evaluations per input however large it is, and a wrong entry anywhere
in the gradient still shows.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import ThetaError


class GradientError(ThetaError, AssertionError):
    """Raised by :func:`verify_grad` when the symbolic and numeric gradients differ (an AssertionError).

    Parameters
    ----------
    arg : int
        Which input's gradient disagrees.
    abs_err, rel_err : float
        The largest absolute and relative errors found.
    abs_tol, rel_tol : float
        The tolerances they exceeded.
    analytic, numeric : array-like
        The two gradients (the message shows their first entries).
    """

    def __init__(self, arg: int, abs_err: float, rel_err: float, abs_tol: float, rel_tol: float,
                 analytic, numeric) -> None:
        super().__init__(f"gradient of input {arg} does not match finite differences: abs error {abs_err:.3g} "
                         f"(tol {abs_tol:.3g}), rel error {rel_err:.3g} (tol {rel_tol:.3g})\n"
                         f"analytic: {np.asarray(analytic).ravel()[:8]}\nnumeric:  {np.asarray(numeric).ravel()[:8]}")
        self.arg, self.abs_err, self.rel_err = arg, abs_err, rel_err


_DEFAULTS = {"float32": (1e-2, 1e-2, 1e-2), "float64": (1e-7, 1e-4, 1e-4)}  # eps, abs_tol, rel_tol


def verify_grad(fun: Callable, pt: Sequence, n_tests: int = 2, rng=None, eps: float | None = None,
                out_type=None, abs_tol: float | None = None, rel_tol: float | None = None,
                mode=None, cast_to_output_type: bool = False, no_debug_ref: bool = True,
                backend: str | None = None) -> None:
    """Check ``theta.grad`` of a function against finite differences (Theano's ``verify_grad``).

    The cost is ``sum(fun(*inputs) * r)`` for a random projection ``r``; its symbolic gradient
    with respect to every input is compared with central differences at ``pt``.

    Parameters
    ----------
    fun : callable
        Takes one symbolic variable per entry of ``pt``, returns a Variable.
    pt : sequence of array-like
        The point; its dtypes choose the tolerances (float32: eps 1e-2, tolerances 1e-2;
        float64: eps 1e-7, tolerances 1e-4).
    n_tests : int, optional
        Random projections tried.
    rng : numpy Generator or RandomState, optional
    eps : float, optional
        Finite-difference step.
    out_type : optional
        Accepted for Theano compatibility.
    abs_tol, rel_tol : float, optional
        Override the tolerances; the check fails when both are exceeded.
    mode, cast_to_output_type, no_debug_ref : optional
        Accepted for Theano compatibility.
    backend : str, optional
        Where to evaluate (default ``theta.config.backend``).

    Returns
    -------
    None

    Raises
    ------
    GradientError
        The gradients differ beyond the tolerances.

    Examples
    --------
    >>> theta.gradient.verify_grad(lambda x: T.tanh(x) ** 2, [np.random.rand(3, 4)])
    """
    from . import tensor as T
    from .function import function
    from .grad import grad
    if rng is None:
        rng = np.random.default_rng(0)
    elif isinstance(rng, np.random.RandomState):
        rng = np.random.default_rng(rng.randint(2 ** 31))
    pt = [np.array(p) for p in pt]
    for i, p in enumerate(pt):
        if p.dtype.kind != "f":
            raise TypeError(f"verify_grad: point {i} must be a float array, got {p.dtype}")
    dtype = "float32" if all(p.dtype == np.float32 for p in pt) else "float64"
    d_eps, d_abs, d_rel = _DEFAULTS[dtype]
    eps = eps or d_eps
    abs_tol = abs_tol if abs_tol is not None else d_abs
    rel_tol = rel_tol if rel_tol is not None else d_rel

    xs = [T.tensor(p.dtype.name, shape=tuple(None for _ in p.shape), name=f"input{i}") for i, p in enumerate(pt)]
    out = T.as_tensor_variable(fun(*xs))
    f_out = function(xs, out, backend=backend, on_unused_input="ignore")
    o = np.asarray(f_out(*pt))
    for _ in range(n_tests):
        proj = rng.random(o.shape).astype(out.dtype) + 0.5
        t_proj = T.as_tensor_variable(proj)
        cost = T.sum(out * t_proj)
        grads = grad(cost, xs, disconnected_inputs="ignore")
        f_cost = function(xs, cost, backend=backend, on_unused_input="ignore")
        f_grad = function(xs, grads, backend=backend, on_unused_input="ignore")
        analytic = f_grad(*pt)
        for i, p in enumerate(pt):
            # numeric directional derivative along a random direction vs analytic dot direction
            direction = rng.standard_normal(p.shape).astype(p.dtype)
            plus = [q.copy() for q in pt]
            minus = [q.copy() for q in pt]
            plus[i] = (p + eps * direction).astype(p.dtype)
            minus[i] = (p - eps * direction).astype(p.dtype)
            numeric = (float(f_cost(*plus)) - float(f_cost(*minus))) / (2 * eps)
            exact = float(np.sum(np.asarray(analytic[i], dtype="float64") * direction))
            abs_err = abs(numeric - exact)
            rel_err = abs_err / max(abs(numeric) + abs(exact), 1e-8)
            if abs_err > abs_tol and rel_err > rel_tol:
                raise GradientError(i, abs_err, rel_err, abs_tol, rel_tol, exact, numeric)

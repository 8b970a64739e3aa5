"""``T.nnet.bn``: batch normalization (Theano's ``theano.tensor.nnet.bn``).

Composed from theta's own ops (means, elementwise arithmetic), not one opaque op: the kernel
backends then fuse it like any graph (the variance's reduction reads ``(x - mean)**2`` in its
prologue, the inverse standard deviation and the running-variance update ride in its epilogue,
the normalization is one elementwise kernel), and the gradients come from the composition.

Semantics follow Theano's functions (values, returned shapes, argument checks):

    mean   = inputs.mean(axes, keepdims=True)
    var    = inputs.var(axes, keepdims=True)                 (biased: divides by m)
    invstd = 1 / sqrt(var + epsilon)
    out    = (inputs - mean) * (gamma * invstd) + beta
    new_running_mean = running_mean * (1 - factor) + mean * factor
    new_running_var  = running_var * (1 - factor) + (m / (m - 1)) * var * factor

where ``m`` is the number of values averaged per statistic (the unbiased estimate goes into
the running variance). ``axes``: ``'per-activation'`` is ``(0,)``, ``'spatial'`` is ``(0, 2,
3, ...)``, or an explicit tuple.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import DTypeError, GraphError, OptionError, ShapeError, describe
from ..graph import Variable, user_line
from ..options import config
from . import basic as T

__all__ = ["batch_normalization", "batch_normalization_train", "batch_normalization_test"]


def batch_normalization(inputs, gamma, beta, mean, std, mode: str = "low_mem") -> Variable:
    """Normalize ``inputs`` with given statistics: ``(inputs - mean) / std * gamma + beta``.

    Parameters
    ----------
    inputs, gamma, beta, mean, std : tensors
        ``gamma``, ``beta``, ``mean`` and ``std`` broadcast against ``inputs`` (same rank).
    mode : {'low_mem', 'high_mem'}
        Theano's two formulations: ``low_mem`` computes ``(x - mean) / std * gamma + beta``
        per element, ``high_mem`` ``(x - mean) * (gamma / std) + beta``. Both are one fused
        elementwise kernel here; they differ only in rounding.

    Returns
    -------
    Variable
    """
    if mode == "low_mem":
        return T.elemwise(lambda x, m, s, g, b: (x - m) / s * g + b, inputs, mean, std, gamma, beta,
                          name="batch_normalization")
    if mode == "high_mem":
        return (inputs - mean) * (gamma / std) + beta
    raise OptionError(f"batch_normalization: mode must be 'low_mem' or 'high_mem', got {mode!r}, at {user_line()}")


def _prepare_axes(axes, ndim: int) -> tuple[tuple, tuple]:
    """(normalized axes, the others), Theano's rules and messages."""
    if isinstance(axes, str) and axes == "per-activation":
        axes = (0,)
    elif isinstance(axes, str) and axes == "spatial":
        axes = (0,) + tuple(range(2, ndim))
    elif isinstance(axes, (tuple, list, np.ndarray)) and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) for a in axes):
        axes = tuple(int(a) for a in axes)
    else:
        raise OptionError(f"batch normalization: invalid axes {axes!r} (use 'per-activation', 'spatial' or a "
                          f"tuple of ints), at {user_line()}")
    axes = tuple(sorted(axes))
    if not axes:
        raise ShapeError(f"batch normalization: there should be at least one normalization axis, at {user_line()}")
    if min(axes) < 0 or max(axes) >= ndim:
        raise ShapeError(f"batch normalization: axes should be less than ndim (<{ndim}), but {axes} given, "
                         f"at {user_line()}")
    if len(set(axes)) != len(axes):
        raise ShapeError(f"batch normalization: repeated axes {axes}, at {user_line()}")
    return axes, tuple(a for a in range(ndim) if a not in axes)


def _number(value, name: str) -> float:
    """A Python float from a number or a constant (a symbolic value is refused: it is folded
    into the kernels' code, and Theano's checks need it when the graph is built)."""
    if isinstance(value, Variable):
        if not value.is_constant or np.asarray(value.data).size != 1:
            raise DTypeError(f"batch normalization: {name} must be a number known when the graph is built "
                             f"(a Python float), got the symbolic {describe(value)}, at {user_line()}")
        value = np.asarray(value.data).reshape(())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating, np.ndarray)) \
            or np.ndim(value) != 0 or not np.issubdtype(np.asarray(value).dtype, np.number):
        raise DTypeError(f"batch normalization: {name} must be a number, got {value!r}, at {user_line()}")
    value = float(value)
    if not np.isfinite(value):
        raise GraphError(f"batch normalization: {name} must be finite, got {value}, at {user_line()}")
    return value


def _check_epsilon(epsilon) -> float:
    # Theano casts epsilon to floatX before comparing with cuDNN's minimum (so 1e-5 fails
    # in float32, where it rounds below 1e-5): the same rule keeps ported code equivalent.
    epsilon = _number(epsilon, "epsilon")
    eps = np.asarray(epsilon, dtype=config.floatX)
    if eps < 1e-5:
        raise GraphError(f"batch normalization: epsilon must be at least 1e-5, got {eps} (in floatX), "
                         f"at {user_line()}")
    return epsilon


def _params(what: dict, ndim: int, axes: tuple, non_bc_axes: tuple, x: Variable) -> tuple:
    """The parameter tensors broadcast to ``inputs``' rank, and whether they came in reduced
    form (rank ``ndim - len(axes)``: the statistics are then returned in that form too)."""
    tensors = {k: T.as_tensor_variable(v) for k, v in what.items()}
    first = next(iter(tensors.values()))
    reduced = first.ndim != ndim
    want = len(non_bc_axes) if reduced else ndim
    for k, v in tensors.items():
        if v.ndim != want:
            raise ShapeError(f"batch normalization: {k} {describe(v)} should have rank {want} (the number "
                             f"of non-normalized axes {non_bc_axes} of {describe(x)}, or the inputs' rank, "
                             f"with gamma and beta alike), at {user_line()}")
    if reduced:
        pattern = ["x"] * ndim
        for i, a in enumerate(non_bc_axes):
            pattern[a] = i
        tensors = {k: v.dimshuffle(pattern) for k, v in tensors.items()}
    return tensors, reduced


def batch_normalization_train(inputs, gamma, beta, axes="per-activation", epsilon: float = 1e-4,
                              running_average_factor: float = 0.1, running_mean=None, running_var=None):
    """Normalize ``inputs`` with the statistics of the batch itself (training mode).

    Parameters
    ----------
    inputs : tensor
    gamma, beta : tensors
        Scale and shift: the shape of ``inputs`` with the normalized axes of length 1, or
        those axes left out (rank ``inputs.ndim - len(axes)``).
    axes : 'per-activation', 'spatial' or tuple of int
        ``(0,)``; ``(0, 2, 3, ...)``; or the given axes.
    epsilon : float
        Added to the variance; at least 1e-5 (Theano's rule, checked in floatX).
    running_average_factor : float
        Weight of the batch statistics in the new running averages.
    running_mean, running_var : tensors, optional
        Previous running averages (both or neither), laid out like ``gamma``.

    Returns
    -------
    tuple of Variable
        ``(out, mean, invstd)``, plus ``(new_running_mean, new_running_var)`` when the running
        averages are given (use them as ``theta.function`` updates). The statistics are laid
        out like ``gamma``.
    """
    x = T.as_tensor_variable(inputs)
    axes, non_bc_axes = _prepare_axes(axes, x.ndim)
    if (running_mean is None) != (running_var is None):
        raise GraphError("batch_normalization_train: running_mean and running_var must either both be "
                         f"given or both be None, at {user_line()}")
    eps = _check_epsilon(epsilon)
    factor = _number(running_average_factor, "running_average_factor")
    p, reduced = _params({"gamma": gamma, "beta": beta}, x.ndim, axes, non_bc_axes, x)
    if running_mean is not None:
        running = [_reduced_layout(v, k, x, axes, non_bc_axes, reduced)
                   for k, v in (("running_mean", running_mean), ("running_var", running_var))]

    # The statistics are computed without keepdims (shaped like the kept axes), so that the
    # elementwise work on them has the reductions' own shape and runs in their epilogues; the
    # normalization reads them through broadcasting views.
    mean = T.mean(x, axis=axes)
    var = T.mean(T.sqr(x - _expand(mean, axes, x.ndim)), axis=axes)
    invstd = T.elemwise(lambda v: 1 / sp.sqrt(v + eps), var, name="invstd")
    out = T.elemwise(lambda v, m, s, g, b: (v - m) * (g * s) + b, x, _expand(mean, axes, x.ndim),
                     _expand(invstd, axes, x.ndim), p["gamma"], p["beta"], name="batch_normalization")
    stats = [mean, invstd]
    if running_mean is not None:
        f = factor
        m = T.cast(_count(x, axes), var.dtype)
        stats.append(T.elemwise(lambda r, v: r * (1 - f) + v * f, running[0], mean, name="running_mean"))
        stats.append(T.elemwise(lambda r, v, n: r * (1 - f) + (n / (n - 1)) * v * f, running[1], var, m,
                                name="running_var"))
    if not reduced:
        stats = [_expand(v, axes, x.ndim) for v in stats]
    return (out, *stats)


def _expand(v: Variable, axes: tuple, ndim: int) -> Variable:
    """``v`` (shaped like the kept axes) with the normalized axes back as length-1 axes."""
    return v.dimshuffle([k - sum(1 for a in axes if a < k) if k not in axes else "x" for k in range(ndim)])


def _reduced_layout(v, what: str, x: Variable, axes: tuple, non_bc_axes: tuple, reduced: bool) -> Variable:
    """A running statistic laid out like the kept axes of ``x`` (a view of a full-rank one)."""
    v = T.as_tensor_variable(v)
    want = len(non_bc_axes) if reduced else x.ndim
    if v.ndim != want:
        raise ShapeError(f"batch_normalization_train: {what} {describe(v)} should have rank {want}, "
                         f"laid out like gamma, at {user_line()}")
    if reduced:
        return v
    return T.reshape(v, [v.type.shape[a] if v.type.shape[a] is not None else v.shape[a] for a in non_bc_axes])


def _count(x: Variable, axes: tuple):
    """The number of values each statistic averages (a constant once shapes are known)."""
    known = [x.type.shape[a] for a in axes]
    if all(d is not None for d in known):
        return int(np.prod(known))
    n = x.shape[axes[0]]
    for a in axes[1:]:
        n = n * x.shape[a]
    return n


def batch_normalization_test(inputs, gamma, beta, mean, var, axes="per-activation",
                             epsilon: float = 1e-4) -> Variable:
    """Normalize ``inputs`` with given statistics (inference mode):
    ``(inputs - mean) * (gamma / sqrt(var + epsilon)) + beta``.

    Parameters
    ----------
    inputs : tensor
    gamma, beta, mean, var : tensors
        Laid out as in ``batch_normalization_train`` (normalized axes of length 1, or left out).
    axes : 'per-activation', 'spatial' or tuple of int
    epsilon : float
        At least 1e-5 (checked in floatX, as Theano does).

    Returns
    -------
    Variable
    """
    x = T.as_tensor_variable(inputs)
    axes, non_bc_axes = _prepare_axes(axes, x.ndim)
    eps = _check_epsilon(epsilon)
    p, _ = _params({"gamma": gamma, "beta": beta, "mean": mean, "var": var}, x.ndim, axes, non_bc_axes, x)
    return T.elemwise(lambda v, g, b, m, s: (v - m) * (g / sp.sqrt(s + eps)) + b, x, p["gamma"], p["beta"],
                      p["mean"], p["var"], name="batch_normalization_test")

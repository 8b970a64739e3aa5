"""The rules random-stream arguments must keep (compiler/random.py's distributions use them).

NumPy and Theano refuse probabilities outside [0, 1] or not summing to 1, ``low > high``, more
samples without replacement than there are categories, and a ``p`` whose length is not ``a``'s;
so does theta. A constant argument is checked when the graph is built (the error names the
argument, its value and the user's line); a symbolic one when the function runs, by an
ArgCheck (compiler/ops/check.py) whose zero the checked value adds, so the numbers drawn are
unchanged and every backend raises the same GraphError.
"""
from __future__ import annotations

import numpy as np

from .errors import GraphError, ShapeError, describe
from .graph import Variable, user_line
from .ops.check import checked


def require(value: Variable, bad: Variable, constant_bad, message, error=GraphError) -> Variable:
    """``value``, checked by the rule ``bad`` (true where broken): ``constant_bad()`` says
    whether what is known when the graph is built (constants, static shapes) breaks it (True),
    keeps it (False), or cannot tell (None); broken rules raise ``error`` now, undecided ones a
    GraphError when the function runs (compiler/ops/check.py). ``message()`` names the argument
    and its values."""
    broken = constant_bad()
    if broken:
        raise error(f"{message()}, at {user_line()}")
    if broken is not None:
        return value
    return checked(value, bad, f"{message()}, at {user_line()}")


def shown(v: Variable) -> str:
    """A constant's value, or a symbolic variable's description, for messages."""
    if v.is_constant:
        d = np.asarray(v.data)
        return repr(d.item()) if d.ndim == 0 else np.array2string(d, threshold=8)
    return describe(v)


def count_of(k) -> str:
    return str(k) if not isinstance(k, Variable) else "its length, known when the function runs"


def probability(p: Variable, where: str, name: str, value: Variable | None = None) -> Variable:
    """``value`` (default ``p``), checked for ``p`` to hold probabilities in [0, 1] (NaN is not one)."""
    from .tensor import basic as T
    def broken() -> bool | None:
        if not p.is_constant:
            return None
        d = np.asarray(p.data)
        return bool(d.size) and not np.all((d >= 0) & (d <= 1))
    def message() -> str:
        values = ""
        if p.is_constant and np.asarray(p.data).size:
            values = f" with values in [{np.min(p.data)}, {np.max(p.data)}]"
        return f"{where}: {name} must hold probabilities in [0, 1], got {shown(p)}{values}"
    return require(p if value is None else value, T.eq(T.and_(T.ge(p, 0), T.le(p, 1)), 0), broken, message)


def sum_tolerance(dtype: str) -> float:
    """NumPy's choice: a distribution may miss 1 by sqrt(eps) of its dtype (at least float64's)."""
    return float(max(np.sqrt(np.finfo(np.float64).eps), np.sqrt(np.finfo(dtype).eps)))


def distribution(p: Variable, where: str, name: str, value: Variable | None = None) -> Variable:
    """``p``, checked to hold probabilities in [0, 1] whose last axis sums to 1 (NumPy's and
    Theano's rule: a categorical draw from [.2, .2] is not a draw from [.5, .5])."""
    from .tensor import basic as T
    value = probability(p, where, name, value)
    dtype = p.dtype if p.dtype in ("float16", "float32", "float64") else "float64"
    tol = sum_tolerance(dtype)
    total = T.sum(T.cast(p, "float64"), axis=-1)
    def broken() -> bool | None:
        if not p.is_constant:
            return None
        d = np.asarray(p.data, dtype=np.float64)
        return bool(d.shape[-1:] != (0,)) and bool(np.any(np.abs(d.sum(axis=-1) - 1.0) > tol))
    def message() -> str:
        sums = ""
        if p.is_constant:
            sums = f" (sums {np.array2string(np.asarray(p.data, dtype=np.float64).sum(axis=-1), threshold=6)})"
        return (f"{where}: {name} must sum to 1 along its last axis (within {tol:.2g}), got {shown(p)}{sums}; "
                f"normalize it, p / p.sum({'axis=-1, keepdims=True' if p.ndim > 1 else ''})")
    return require(value, T.gt(T.abs_(total - 1.0), tol), broken, message)


def enough(order: Variable, count: int, k, where: str, asked: str, what: str) -> Variable:
    """``order``, checked to have at least ``count`` entries (``k``: int or a scalar): sampling
    without replacement cannot draw more than there is (NumPy and Theano refuse it)."""
    from .tensor import basic as T
    const_k = None if isinstance(k, Variable) else int(k)
    return require(order, T.gt(count, k), lambda: count > const_k if const_k is not None else None,
                    lambda: f"{where}: {asked} asks for {count} samples without replacement, but there are "
                            f"only {const_k if const_k is not None else 'fewer'} {what}")


def ordered(low: Variable, high: Variable) -> Variable:
    """``high``, checked not to be below ``low`` (random_integers' bounds, both included)."""
    from .tensor import basic as T
    both = low.is_constant and high.is_constant
    return require(high, T.gt(low, high), lambda: bool(np.any(low.data > high.data)) if both else None,
                   lambda: f"random_integers: low must not exceed high (NumPy and Theano refuse it), got "
                           f"low={shown(low)} and high={shown(high)}")


def one_per_element(p: Variable, k, value: Variable) -> Variable:
    """``value``, checked for the vector ``p`` to have ``k`` entries (choice: one probability per
    element of ``a``; ``k`` an int or a scalar known when the function runs)."""
    from .tensor import basic as T
    known = p.type.shape[0] is not None and not isinstance(k, Variable)
    return require(value, T.neq(p.shape[0], k), lambda: p.type.shape[0] != k if known else None,
                   lambda: f"choice: p must have one probability per element of a ({count_of(k)}), got "
                           f"{describe(p)}", error=ShapeError)


def nonzero_enough(p: Variable, count: int, value: Variable) -> Variable:
    """``value``, checked for ``p`` to have at least ``count`` non-zero probabilities: a weighted
    sample without replacement never draws a category of probability 0 (NumPy refuses it)."""
    from .tensor import basic as T
    nonzero = T.sum(T.cast(T.gt(p, 0), "int64"))
    const = int(np.count_nonzero(np.asarray(p.data))) if p.is_constant else None
    return require(value, T.lt(nonzero, count), lambda: count > const if const is not None else None,
                   lambda: f"choice (replace=False): {count} samples without replacement, but p "
                           f"({shown(p)}) has {const if const is not None else 'fewer'} non-zero probabilities")

"""Scalar functions that elementwise expressions are built from.

Elementwise algebra is sympy: sympy supplies +, *, pow, exp, log, tanh, sqrt, sin, cos, erf,
log1p/expm1 (sympy.codegen.cfunctions) and their derivatives. The functions below are the ones
sympy lacks or gets wrong for our purposes (stable sigmoid/softplus, comparisons that behave
as 0/1 numbers, switch, casts, rounding); each defines its derivative (``fdiff``), so
``sympy.diff`` differentiates any expression built from them. ``NUMPY`` maps every custom
function to its NumPy implementation, used by the reference runtime through ``lambdify``.
"""
from __future__ import annotations

import functools

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p  # noqa: F401  (re-exported)


def symbols(n: int) -> tuple:
    """The canonical input symbols x0..x{n-1} of an n-ary elementwise expression."""
    return tuple(_symbol(i) for i in range(n))


@functools.lru_cache(maxsize=None)
def _symbol(i: int) -> sp.Symbol:
    return sp.Symbol(f"x{i}", real=True)


# sympy's special values. sympy folds x/0 to zoo*x and x + inf to oo (its real symbols are
# finite), which loses the sign and NaN that NumPy/IEEE give; theta keeps such literals out of
# expressions (has_special) and maps any that still get in to IEEE values (as_ieee).
SPECIAL = (sp.zoo, sp.oo, -sp.oo, sp.nan)


def has_special(expr) -> bool:
    """Whether ``expr`` contains zoo, oo, -oo or nan."""
    return bool(getattr(expr, "has", None)) and expr.has(*SPECIAL)


def as_ieee(expr: sp.Expr) -> sp.Expr:
    """``expr`` with zoo (sympy's unsigned infinity, from 1/0 or log(0)) as +inf: printers know
    inf and nan; ``zoo*x`` then gives NumPy's ``x/0`` (inf, -inf, or nan at 0)."""
    return expr.xreplace({sp.zoo: sp.oo}) if expr.has(sp.zoo) else expr


class _Zero(sp.Function):
    """Base for functions whose derivative is zero everywhere (comparisons, rounding...)."""

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class sigmoid(sp.Function):
    nargs = 1

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)


class softplus(sp.Function):
    """log(1 + exp(x)), computed without overflow."""
    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


class relu(sp.Function):
    nargs = 1

    def fdiff(self, argindex=1):
        return gt(self.args[0], 0)


class abs_(sp.Function):
    nargs = 1

    def fdiff(self, argindex=1):
        return sgn(self.args[0])


class sgn(_Zero):
    nargs = 1


class round_half_even(_Zero):
    nargs = 1


class floor_(_Zero):
    nargs = 1


class ceil_(_Zero):
    nargs = 1


class lt(_Zero):
    nargs = 2


class gt(_Zero):
    nargs = 2


class le(_Zero):
    nargs = 2


class ge(_Zero):
    nargs = 2


class eq(_Zero):
    nargs = 2


class neq(_Zero):
    nargs = 2


class and_(_Zero):
    nargs = 2


class or_(_Zero):
    nargs = 2


class xor(_Zero):
    nargs = 2


class invert(_Zero):
    nargs = 1


class intdiv(_Zero):
    nargs = 2


class mod(sp.Function):
    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sp.Integer(1) if argindex == 1 else -floor_(a / b)


class switch(sp.Function):
    """switch(cond, a, b): a where cond is nonzero, else b."""
    nargs = 3

    def fdiff(self, argindex=1):
        c = self.args[0]
        if argindex == 1:
            return sp.Integer(0)
        return switch(c, 1, 0) if argindex == 2 else switch(c, 0, 1)


class maximum(sp.Function):
    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        # At a tie the gradient goes to the first argument (so clip passes it at its bounds,
        # as Theano's clip does).
        return ge(a, b) if argindex == 1 else lt(a, b)


class minimum(sp.Function):
    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return le(a, b) if argindex == 1 else gt(a, b)


@functools.lru_cache(maxsize=None)
def cast(dtype: str) -> type:
    """The sympy function converting to ``dtype`` (one class per dtype, so it prints and hashes)."""
    is_float = dtype.startswith("float")

    def fdiff(self, argindex=1):
        return sp.Integer(1) if is_float else sp.Integer(0)

    cls = type(f"cast_{dtype}", (sp.Function,), {"nargs": 1, "fdiff": fdiff, "dtype": dtype, "__module__": __name__})
    globals()[cls.__name__] = cls  # so expressions that use it pickle by reference
    return cls


def __getattr__(name: str):
    # unpickling an expression in a fresh process looks the cast classes up by name
    if name.startswith("cast_"):
        return cast(name[len("cast_"):])
    raise AttributeError(name)


# --- NumPy implementations (the reference semantics) ------------------------------------------

def _np_sigmoid(x):
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _np_softplus(x):
    x = np.asarray(x)
    return (np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)).astype(x.dtype, copy=False)


def _np_switch(c, a, b):
    return np.where(np.asarray(c) != 0, a, b)


# NumPy has no erf and sympy's lambdify would fall back to math.erf, which rejects arrays;
# math.erf per element is exact (the reference is the oracle) and fast enough for it.
_np_erf_f64 = np.vectorize(__import__("math").erf, otypes=["float64"])


def _np_erf(x):
    x = np.asarray(x)
    return _np_erf_f64(x).astype(x.dtype if x.dtype.kind == "f" else "float64", copy=False)


def _np_bool(fn):
    return lambda *args: fn(*args)


NUMPY = {
    "sigmoid": _np_sigmoid,
    "softplus": _np_softplus,
    "relu": lambda x: np.maximum(x, np.zeros((), dtype=np.asarray(x).dtype)),
    "abs_": np.abs,
    "sgn": np.sign,
    "round_half_even": np.round,
    "floor_": np.floor,
    "ceil_": np.ceil,
    "lt": np.less, "gt": np.greater, "le": np.less_equal, "ge": np.greater_equal,
    "eq": np.equal, "neq": np.not_equal,
    "and_": lambda a, b: np.logical_and(a, b), "or_": lambda a, b: np.logical_or(a, b),
    "xor": lambda a, b: np.logical_xor(a, b), "invert": lambda a: np.logical_not(a),
    "intdiv": np.floor_divide,
    "mod": np.mod,
    "switch": _np_switch,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "erf": _np_erf,
}


def cast_array(x, dtype: str) -> np.ndarray:
    """``x`` as ``dtype``, as the kernels convert (kernels/prelude.cuh.j2's theta_cast): NumPy's
    ``astype``, except a float that no value of an integer dtype holds, where NumPy's result
    depends on the CPU and the array's length: NaN becomes 0, the rest saturates to the range."""
    x = np.asarray(x)
    target = np.dtype(dtype)
    if x.dtype.kind != "f" or target.kind not in "iu":
        return x.astype(target, copy=False)
    info = np.iinfo(target)
    top = 2.0 ** (info.bits - (1 if target.kind == "i" else 0))    # one past the largest value
    nan, high = np.isnan(x), x >= top
    low = x < -top if target.kind == "i" else x <= -1.0
    out = np.where(nan | high | low, 0, x).astype(target)
    out[high], out[low] = info.max, info.min
    return out


def numpy_cast(dtype: str):
    return lambda x: cast_array(x, dtype)

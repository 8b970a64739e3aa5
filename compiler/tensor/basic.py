"""The user-facing tensor API (``import theta.tensor as T``), with Theano's names and semantics.

Declarations (T.matrix, T.fvector, ...), elementwise math (each an sympy expression),
reductions, shape manipulation, indexing and T.dot. Python numbers mixed with tensors are
"weak": they take the tensor's dtype (a float literal with an integer tensor gives floatX).
Arithmetic on constants folds immediately, so ``x.shape[0] * 2`` of a known shape is a number.
"""
from __future__ import annotations

import builtins
import numbers
from typing import Sequence

import numpy as np
import sympy as sp

from ..errors import DTypeError, ShapeError, describe
from ..graph import Variable, constant
from ..ops import scalar as S
from ..ops.blas import BatchedDot, dot as _dot
from ..ops.elemwise import make as _make_elemwise
from ..ops.index import inc_subtensor as _inc_subtensor, subtensor as _subtensor
from ..ops.reduce import argreduce, reduce
from ..ops.shape import (alloc as _alloc, arange, broadcast_like, Concatenate, dimshuffle as _dimshuffle,  # noqa: F401
                         reshape as _reshape, shape_of)
from ..options import config
from ..types import TensorType, check_dtype, is_float, upcast

# --------------------------------------------------------------------------------------------
# declarations


def tensor(dtype: str | None = None, broadcastable: Sequence[bool] = (), name: str | None = None,
           shape: Sequence | None = None) -> Variable:
    """Declare a symbolic input of any rank and dtype (Theano's ``T.tensor``).

    Parameters
    ----------
    dtype : str, optional
        ``'float32'``, ``'float64'``, ``'int8'`` ... ``'int64'``, ``'uint8'``, ``'bool'``;
        default ``theta.config.floatX``.
    broadcastable : sequence of bool, optional
        Theano's way of giving the rank: one flag per axis, True for an axis of length 1
        (which then broadcasts against any length).
    name : str, optional
        Shown in errors, in printed graphs and in kernel parameter names.
    shape : sequence of int or None, optional
        The rank and any known dims, None where unknown (used instead of ``broadcastable``).

    Returns
    -------
    Variable
        A leaf of type ``TensorType(dtype, shape)``; pass it in the inputs of :func:`theta.function`.

    Raises
    ------
    DTypeError
        An unknown dtype.

    Examples
    --------
    >>> import theta.tensor as T
    >>> x = T.tensor("float32", (False, True), name="x")   # an (n, 1) column
    >>> x.type.shape
    (None, 1)
    """
    dtype = check_dtype(dtype or config.floatX)
    if shape is None:
        shape = tuple(1 if b else None for b in broadcastable)
    return Variable(TensorType(dtype, tuple(shape)), name=name)


def _declarer(ndim_shape: tuple, default_dtype: str | None = None):
    def declare(name: str | None = None, dtype: str | None = None, shape: Sequence | None = None) -> Variable:
        dims = tuple(shape) if shape is not None else ndim_shape
        if len(dims) != len(ndim_shape):
            raise ShapeError(f"shape {dims} has the wrong rank for this declaration (rank {len(ndim_shape)})")
        return tensor(dtype or default_dtype, name=name, shape=dims)
    return declare


scalar = _declarer(())
vector = _declarer((None,))
matrix = _declarer((None, None))
row = _declarer((1, None))
col = _declarer((None, 1))
tensor3 = _declarer((None,) * 3)
tensor4 = _declarer((None,) * 4)
tensor5 = _declarer((None,) * 5)

_PREFIX = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32", "d": "float64"}
_KINDS = {"scalar": (), "vector": (None,), "matrix": (None, None), "row": (1, None), "col": (None, 1),
          "tensor3": (None,) * 3, "tensor4": (None,) * 4, "tensor5": (None,) * 5}
for _p, _dt in _PREFIX.items():
    for _k, _shape in _KINDS.items():
        globals()[_p + _k] = _declarer(_shape, _dt)
        globals()[_p + _k].__name__ = _p + _k


def _plural(declare):
    """Theano's plural declarers: ``T.dmatrices('a', 'b')`` is two dmatrix variables."""
    def many(*names: str, dtype: str | None = None) -> list:
        return [declare(name, dtype=dtype) for name in names]
    many.__doc__ = f"Several ``{declare.__name__}`` variables, one per name."
    return many


for _k, _plural_name in (("scalar", "scalars"), ("vector", "vectors"), ("matrix", "matrices"), ("row", "rows"),
                         ("col", "cols"), ("tensor3", "tensor3s"), ("tensor4", "tensor4s")):
    globals()[_plural_name] = _plural(globals()[_k])
    for _p in _PREFIX:
        globals()[_p + _plural_name] = _plural(globals()[_p + _k])


# The generated declarers' documentation (help(T.fmatrix), the API reference).
_KIND_TEXT = {"scalar": "a 0-d tensor (a scalar)", "vector": "a 1-d tensor", "matrix": "a 2-d tensor",
              "row": "a 1 x n matrix (its first axis has length 1 and broadcasts)",
              "col": "an n x 1 matrix (its second axis has length 1 and broadcasts)",
              "tensor3": "a 3-d tensor", "tensor4": "a 4-d tensor (e.g. images: batch, channels, rows, cols)",
              "tensor5": "a 5-d tensor"}


def _declaration_doc(name: str, kind: str, dtype: str | None) -> str:
    shape = _KINDS[kind]
    dt = f"``{dtype}``" if dtype else "``theta.config.floatX`` (float32 unless configured)"
    return f"""Declare a symbolic input: {_KIND_TEXT[kind]} of dtype {dt} (Theano's ``T.{name}``).

    The variable is a leaf of the graph: list it in the inputs of ``theta.function`` and pass
    a value of this rank when calling (a value of another float dtype is refused unless
    ``allow_input_downcast``). Shapes are specialized when the function is called, so one
    declaration serves any lengths.

    Parameters
    ----------
    name : str, optional
        Shown in errors, printed graphs and the names of kernel parameters.
    dtype : str, optional
        Overrides the dtype{' (default ' + dt + ')' if dtype else ''}.
    shape : sequence of int or None, optional
        {len(shape)} entries, known lengths or None (default ``{shape}``); a value with
        another known length is refused with a ShapeError when the function is called.

    Returns
    -------
    Variable
        A leaf of type ``TensorType(dtype, shape)``.

    Raises
    ------
    ShapeError
        ``shape`` does not have {len(shape)} entries.

    Examples
    --------
    >>> import theta.tensor as T
    >>> x = T.{name}("x")
    """


def _plural_doc(name: str, single: str, dtype: str | None) -> str:
    return f"""Declare several ``{single}`` inputs at once, one per name (Theano's ``T.{name}``).

    Parameters
    ----------
    *names : str
        One variable is made per name.
    dtype : str, optional
        Overrides the dtype ({'default ``' + dtype + '``' if dtype else 'default floatX'}).

    Returns
    -------
    list of Variable

    Examples
    --------
    >>> a, b = T.{name}("a", "b")
    """


for _k in _KINDS:
    for _p, _dt in [("", None), *_PREFIX.items()]:
        globals()[_p + _k].__name__ = globals()[_p + _k].__qualname__ = _p + _k
        globals()[_p + _k].__doc__ = _declaration_doc(_p + _k, _k, _dt)
for _k, _plural_name in (("scalar", "scalars"), ("vector", "vectors"), ("matrix", "matrices"), ("row", "rows"),
                         ("col", "cols"), ("tensor3", "tensor3s"), ("tensor4", "tensor4s")):
    for _p, _dt in [("", None), *_PREFIX.items()]:
        globals()[_p + _plural_name].__name__ = globals()[_p + _plural_name].__qualname__ = _p + _plural_name
        globals()[_p + _plural_name].__doc__ = _plural_doc(_p + _plural_name, _p + _k, _dt)


def as_tensor_variable(x, name: str | None = None, ndim: int | None = None) -> Variable:
    """Convert ``x`` to a symbolic tensor (Theano's ``T.as_tensor_variable``).

    A ``Variable`` is returned as is; a NumPy array, a Python number or a nested list becomes a
    constant (Python ints become int64, floats floatX... as NumPy infers them).

    Parameters
    ----------
    x : Variable, array-like or number
    name : str, optional
        Name of the constant made from a value.
    ndim : int, optional
        When given, the result must have this rank.

    Returns
    -------
    Variable

    Raises
    ------
    DTypeError
        ``x`` cannot be converted (an object array, a string).
    ShapeError
        ``ndim`` is given and differs from the rank of ``x``.
    """
    if isinstance(x, Variable):
        v = x
    elif getattr(x, "theta_sparse_matrix", False):   # compiler/sparse.py: says what a sparse matrix supports
        x.not_a_tensor()
    else:
        try:
            v = constant(x, name=name)
        except (TypeError, ValueError) as e:
            raise DTypeError(f"cannot convert {x!r} to a tensor: {e}") from e
    if ndim is not None and v.ndim != ndim:
        raise ShapeError(f"expected a tensor of rank {ndim}, got {describe(v)}")
    return v


# --------------------------------------------------------------------------------------------
# elementwise


def _is_weak(x) -> bool:
    return isinstance(x, (numbers.Number, np.number)) and not isinstance(x, (bool, np.bool_)) \
        and not isinstance(x, Variable)


def elemwise(fn, *operands, dtype: str | None = None, name: str | None = None, float_inputs: bool = False) -> Variable:
    """Apply a scalar function elementwise to NumPy-broadcast operands (the building block of every math function here).

    ``fn`` receives one sympy symbol per tensor operand and returns a sympy expression; the
    expression is the op (it is differentiated by ``sympy.diff``, printed as C for the kernel
    backends, and fused with its neighbours). Use it for an activation or formula theta lacks.

    Parameters
    ----------
    fn : callable
        Takes as many sympy expressions as there are operands, returns a sympy expression
        (``sympy.exp``, arithmetic, ``theta.compiler.ops.scalar`` helpers such as ``switch``).
    *operands : tensor-like
        Broadcast against each other; lower ranks are padded on the left as in NumPy. Python
        numbers are inlined into the expression as weak literals.
    dtype : str, optional
        The output dtype; default the promoted dtype of the tensor operands.
    name : str, optional
        The op's name in printed graphs and kernel names.
    float_inputs : bool, optional
        Cast integer operands to floatX first (true division, exp of an int...).

    Returns
    -------
    Variable
        A constant when every operand is a small constant (folded at once), else the elementwise node.

    Examples
    --------
    >>> import sympy as sp, theta.tensor as T
    >>> x = T.vector("x")
    >>> swish = T.elemwise(lambda v: v / (1 + sp.exp(-v)), x, name="swish")
    """
    strong = [as_tensor_variable(o) if not _is_weak(o) else None for o in operands]
    strong_dtypes = [v.dtype for v in strong if v is not None]
    weak = [o for o in operands if _is_weak(o)]
    if not strong_dtypes:
        # all Python numbers: a constant
        value = np.asarray(_numpy_of(fn, [np.asarray(w) for w in operands]))
        return constant(value, dtype or (config.floatX if value.dtype.kind == "f" else "int64"))
    base = upcast(*strong_dtypes)
    if any(isinstance(w, (float, np.floating)) for w in weak) and not is_float(base):
        base = config.floatX
    elif weak and base == "bool":
        base = "int64"
    if float_inputs and not is_float(base):
        base = config.floatX
    out_dtype = check_dtype(dtype) if dtype else base
    ndim = builtins.max(v.ndim for v in strong if v is not None)
    args, syms, k = [], [], 0
    for o, v in zip(operands, strong):
        if v is None:
            syms.append(sp.sympify(o.item() if isinstance(o, np.generic) else o))
            continue
        if v.ndim < ndim:
            v = _dimshuffle(v, ("x",) * (ndim - v.ndim) + tuple(range(v.ndim)))
        sym = S.symbols(len(operands))[k]
        if float_inputs and not is_float(v.dtype):
            sym = S.cast(base)(sym)
        syms.append(sym)
        args.append(v)
        k += 1
    expr = sp.sympify(fn(*syms))
    if weak and (S.has_special(expr) or any(S.has_special(s) for s in syms)):
        # sympy would fold a division by a literal zero (or an inf/nan literal) into a value
        # without sign (zoo*x): pass the literals as constant inputs so IEEE arithmetic applies
        return elemwise(fn, *[constant(np.asarray(o, dtype=base)) if _is_weak(o) else o for o in operands],
                        dtype=dtype, name=name, float_inputs=float_inputs)
    node = _make_elemwise(expr, args, out_dtype, name=name)
    if node.op is not None and all(a.is_constant and a.data.size <= 1024 for a in node.inputs):
        return constant(node.op.perform(*(a.data for a in node.inputs)), out_dtype)
    return node


def _numpy_of(fn, values):
    from ..ops.elemwise import _numpy_fn
    expr = sp.sympify(fn(*S.symbols(len(values))))
    return _numpy_fn(expr, len(values))(*values)


def _unary(sfn, name, float_inputs=True):
    def op(x):
        return elemwise(sfn, x, name=name, float_inputs=float_inputs)
    op.__name__ = name
    return op


exp = _unary(sp.exp, "exp")
log = _unary(sp.log, "log")
log2 = _unary(lambda x: sp.log(x) / sp.log(2), "log2")
log10 = _unary(lambda x: sp.log(x) / sp.log(10), "log10")
log1p = _unary(S.log1p, "log1p")
expm1 = _unary(S.expm1, "expm1")
tanh = _unary(sp.tanh, "tanh")
sqrt = _unary(sp.sqrt, "sqrt")
sin = _unary(sp.sin, "sin")
cos = _unary(sp.cos, "cos")
erf = _unary(sp.erf, "erf")
sigmoid = _unary(S.sigmoid, "sigmoid")
softplus = _unary(S.softplus, "softplus")
sqr = _unary(lambda x: x ** 2, "sqr", float_inputs=False)
abs_ = _unary(S.abs_, "abs", float_inputs=False)
sgn = _unary(S.sgn, "sgn", float_inputs=False)
neg = _unary(lambda x: -x, "neg", float_inputs=False)
inv = _unary(lambda x: 1 / x, "inv")
floor = _unary(S.floor_, "floor", float_inputs=False)
ceil = _unary(S.ceil_, "ceil", float_inputs=False)


def round(x, mode: str = "half_to_even"):  # noqa: A001  (Theano's name)
    """Round elementwise to the nearest integer (Theano's ``T.round``), keeping the dtype.

    Parameters
    ----------
    x : tensor-like
    mode : {'half_to_even', 'half_away_from_zero'}, optional
        How ties round: to the even neighbour (NumPy's and Theano's default: ``round(2.5)``
        is 2) or away from zero (Theano's default before 0.9; pass it explicitly for old
        code that relies on it).

    Returns
    -------
    Variable
        Same shape and dtype as ``x``.

    Raises
    ------
    ValueError
        An unknown ``mode``.
    """
    if mode not in ("half_to_even", "half_away_from_zero"):
        raise ValueError(f"round mode must be 'half_to_even' or 'half_away_from_zero', got {mode!r}")
    if mode == "half_to_even":
        return elemwise(S.round_half_even, x, name="round")
    return elemwise(lambda v: S.sgn(v) * S.floor_(S.abs_(v) + sp.Rational(1, 2)), x, name="round")


def add(*xs):
    """Elementwise sum of any number of tensors, NumPy-broadcast (``a + b + ...``; Theano's ``T.add``).

    Parameters
    ----------
    *xs : tensor-like
        Operands; Python numbers are weak literals that take the tensors' dtype.

    Returns
    -------
    Variable
        The broadcast shape, the promoted dtype.
    """
    return elemwise(lambda *s: sp.Add(*s), *xs, name="add")


def sub(a, b):
    """Elementwise ``a - b`` (Theano's ``T.sub``; the ``-`` operator).

    NumPy broadcasting and dtype promotion.

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. The promoted dtype of the operands.
    """
    return elemwise(lambda x, y: x - y, a, b, name="sub")


def mul(*xs):
    """Elementwise product of any number of tensors, NumPy-broadcast (``a * b * ...``; Theano's ``T.mul``).

    Parameters
    ----------
    *xs : tensor-like
        Operands; Python numbers are weak literals that take the tensors' dtype.

    Returns
    -------
    Variable
        The broadcast shape, the promoted dtype.
    """
    sparse = [x for x in xs if getattr(x, "theta_sparse_matrix", False)]
    if len(sparse) == 1 and len(xs) == 2:   # c * S: a sparse matrix with its stored values scaled
        return sparse[0].scaled(next(x for x in xs if x is not sparse[0]))
    return elemwise(lambda *s: sp.Mul(*s), *xs, name="mul")


def true_div(a, b):
    """Elementwise true division ``a / b`` (the ``/`` operator).

    Integer operands are cast to floatX first, so ``int / int`` is a float as in Python 3. As in
    NumPy, ``x / 0`` is ``inf``, ``-inf`` or ``nan``, never an error.

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. A float dtype (floatX when both operands are integers).
    """
    return elemwise(lambda x, y: x / y, a, b, name="true_div", float_inputs=True)


def int_div(a, b):
    """Elementwise floor division ``a // b`` (Theano's ``T.int_div``; the ``//`` operator).

    Rounds toward minus infinity as Python and NumPy do (not toward zero as C does).

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. The promoted dtype of the operands.
    """
    return elemwise(S.intdiv, a, b, name="int_div")


def mod(a, b):
    """Elementwise remainder ``a % b`` with the sign of ``b`` (Python's and NumPy's convention).

    ``a == (a // b) * b + a % b``.

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. The promoted dtype of the operands.
    """
    return elemwise(S.mod, a, b, name="mod")


def pow(a, b):  # noqa: A001
    """Elementwise power ``a ** b`` (Theano's ``T.pow``; the ``**`` operator).

    The gradient with respect to ``b`` is ``a ** b * log(a)``, defined for ``a > 0``.

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. The promoted dtype of the operands.
    """
    return elemwise(lambda x, y: x ** y, a, b, name="pow")


def maximum(a, b):
    """Elementwise maximum of two tensors (Theano's ``T.maximum``).

    The gradient goes to the larger operand.

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. The promoted dtype of the operands.
    """
    return elemwise(S.maximum, a, b, name="maximum")


def minimum(a, b):
    """Elementwise minimum of two tensors (Theano's ``T.minimum``).

    The gradient goes to the smaller operand.

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. The promoted dtype of the operands.
    """
    return elemwise(S.minimum, a, b, name="minimum")


def clip(x, lo, hi):
    """Clip ``x`` elementwise to ``[lo, hi]``: ``minimum(maximum(x, lo), hi)`` (Theano's ``T.clip``).

    Parameters
    ----------
    x : tensor-like
    lo, hi : tensor-like or number
        Bounds, broadcast against ``x``.

    Returns
    -------
    Variable
        The broadcast shape, the promoted dtype. The gradient with respect to ``x`` is 1 inside
        the interval and at its ends (as Theano passes it at the bounds), 0 outside.
    """
    return elemwise(lambda v, a, b: S.minimum(S.maximum(v, a), b), x, lo, hi, name="clip")


def switch(cond, a, b):
    """Elementwise choice: ``a`` where ``cond`` is true, else ``b`` (Theano's ``T.switch``; ``where`` is an alias).

    Both branches are evaluated; the gradient of the branch not taken is zero where it is not
    selected (so a ``nan`` in an unselected branch's *value* does not leak, but guard inputs of
    ``log`` and division that would be ``inf`` in their derivative).

    Parameters
    ----------
    cond : tensor-like
        Any dtype; nonzero is true.
    a, b : tensor-like
        The values, broadcast with ``cond``.

    Returns
    -------
    Variable
        The broadcast shape; the promoted dtype of ``a`` and ``b``.
    """
    return elemwise(S.switch, cond, a, b, name="switch", dtype=_switch_dtype(a, b))


where = switch


def _switch_dtype(a, b):
    ds = [as_tensor_variable(v).dtype for v in (a, b) if not _is_weak(v)]
    weak = [v for v in (a, b) if _is_weak(v)]
    if not ds:
        return None
    d = upcast(*ds)
    if any(isinstance(w, float) for w in weak) and not is_float(d):
        d = config.floatX
    return d


def _comparison(sfn, name):
    def op(a, b):
        return elemwise(sfn, a, b, dtype="bool", name=name)
    op.__name__ = name
    return op


eq = _comparison(S.eq, "eq")
neq = _comparison(S.neq, "neq")
lt = _comparison(S.lt, "lt")
gt = _comparison(S.gt, "gt")
le = _comparison(S.le, "le")
ge = _comparison(S.ge, "ge")


# The generated elementwise functions' documentation.
_UNARY_DOCS = {
    "exp": "Elementwise exponential ``e ** x``.",
    "log": "Elementwise natural logarithm (``-inf`` at 0, ``nan`` below). ``log(1 + x)`` and\n"
           "``log(sigmoid(x))`` forms are rewritten to stable ones (``log1p``, ``-softplus(-x)``).",
    "log2": "Elementwise base-2 logarithm.",
    "log10": "Elementwise base-10 logarithm.",
    "log1p": "Elementwise ``log(1 + x)``, accurate for small ``x``.",
    "expm1": "Elementwise ``exp(x) - 1``, accurate for small ``x``.",
    "tanh": "Elementwise hyperbolic tangent.",
    "sqrt": "Elementwise square root (``nan`` for negative ``x``).",
    "sin": "Elementwise sine (radians).",
    "cos": "Elementwise cosine (radians).",
    "erf": "Elementwise error function.",
    "sigmoid": "Elementwise logistic sigmoid ``1 / (1 + exp(-x))`` (also ``T.nnet.sigmoid``).\n"
               "Computed without overflow for large ``|x|``; ``log(sigmoid(x))`` is rewritten to\n"
               "``-softplus(-x)``.",
    "softplus": "Elementwise ``log(1 + exp(x))``, computed without overflow (also ``T.nnet.softplus``).",
    "sqr": "Elementwise square ``x * x`` (Theano's ``T.sqr``).",
    "abs": "Elementwise absolute value (Theano's ``T.abs_``; the ``abs()`` builtin on a Variable).",
    "sgn": "Elementwise sign: -1, 0 or 1.",
    "neg": "Elementwise negation ``-x``.",
    "inv": "Elementwise reciprocal ``1 / x``.",
    "floor": "Elementwise floor (largest integer not above ``x``), in ``x``'s dtype.",
    "ceil": "Elementwise ceiling (smallest integer not below ``x``), in ``x``'s dtype.",
}
_FLOAT_UNARY = {"exp", "log", "log2", "log10", "log1p", "expm1", "tanh", "sqrt", "sin", "cos", "erf", "sigmoid",
                "softplus", "inv"}


def _unary_doc(name: str, summary: str) -> str:
    summary = summary.replace("\n", "\n    ")
    if name in _FLOAT_UNARY:
        dtype = "``x``'s float dtype; integer inputs are cast to floatX first"
    else:
        dtype = "``x``'s dtype"
    return f"""{summary}

    Parameters
    ----------
    x : tensor-like
        A ``Variable``, or a value ``as_tensor_variable`` accepts (array, number).

    Returns
    -------
    Variable
        The shape of ``x``; {dtype}. Its gradient comes from ``sympy.diff`` of the scalar
        expression, and on the kernel backends it fuses with its neighbours into one kernel.
    """


for _n, _summary in _UNARY_DOCS.items():
    globals()["abs_" if _n == "abs" else _n].__doc__ = _unary_doc(_n, _summary)

_COMPARISON_SYMBOLS = {"eq": "==", "neq": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">="}
for _n, _sym in _COMPARISON_SYMBOLS.items():
    globals()[_n].__doc__ = f"""Elementwise comparison ``a {_sym} b`` as a bool tensor (Theano's ``T.{_n}``).

    {"The ``" + _sym + "`` operator on Variables. " if _n not in ("eq", "neq") else ""}NumPy broadcasting;
    operands of different dtypes are compared in their promoted dtype. The result has no
    gradient (cast it to a float to use it as a mask).

    Parameters
    ----------
    a, b : tensor-like

    Returns
    -------
    Variable
        bool, the broadcast shape of ``a`` and ``b``.
    """


def and_(a, b):
    """Elementwise logical and of two tensors (the ``&`` operator).

    Nonzero is true.

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. bool.
    """
    return elemwise(S.and_, a, b, dtype="bool", name="and")


def or_(a, b):
    """Elementwise logical or of two tensors (the ``|`` operator).

    Nonzero is true.

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. bool.
    """
    return elemwise(S.or_, a, b, dtype="bool", name="or")


def xor(a, b):
    """Elementwise logical exclusive or of two tensors (the ``^`` operator).

    Nonzero is true.

    Parameters
    ----------
    a, b : tensor-like
        Operands, broadcast against each other as in NumPy. A Python number is a weak literal: it
        takes the other operand's dtype (a float literal with an integer tensor gives floatX).

    Returns
    -------
    Variable
        The broadcast shape of the operands. bool.
    """
    return elemwise(S.xor, a, b, dtype="bool", name="xor")


def invert(a):
    """Elementwise logical not (the ``~`` operator): true where ``a`` is zero.

    Parameters
    ----------
    a : tensor-like

    Returns
    -------
    Variable
        bool, the shape of ``a``.
    """
    return elemwise(S.invert, a, dtype="bool", name="invert")


def cast(x, dtype: str) -> Variable:
    """Convert ``x`` to ``dtype`` elementwise (Theano's ``T.cast``; the ``astype`` method).

    Float to integer truncates toward zero, as NumPy's ``astype``; where no value of the
    integer dtype fits (NaN, +-inf, out of range), which NumPy leaves to the CPU, NaN gives 0
    and the rest saturates to the dtype's range, on every backend. Casting to the dtype ``x``
    already has returns ``x`` itself. The gradient flows through a cast between float dtypes
    and is zero through a cast to an integer dtype.

    Parameters
    ----------
    x : tensor-like
    dtype : str
        ``'float32'``, ``'float64'``, ``'int32'``, ``'int64'``, ``'bool'`` ...

    Returns
    -------
    Variable

    Raises
    ------
    DTypeError
        An unknown dtype.
    """
    dtype = check_dtype(dtype)
    x = as_tensor_variable(x)
    if x.dtype == dtype:
        return x
    return elemwise(S.cast(dtype), x, dtype=dtype, name=f"cast_{dtype}")


# --------------------------------------------------------------------------------------------
# allocation and shapes


def alloc(value, *shape) -> Variable:
    """A tensor of the given shape filled with ``value`` (Theano's ``T.alloc``).

    Parameters
    ----------
    value : tensor-like
        A scalar (or a tensor broadcast to ``shape``: its trailing dims must match or be 1).
    *shape : int or integer scalar Variable
        The dims; symbolic dims (``x.shape[0]``) are allowed.

    Returns
    -------
    Variable
        Of ``value``'s dtype. On the kernel backends it is a broadcast view, not a copy, unless
        something writes to it.
    """
    return _alloc(as_tensor_variable(value), *shape)


def zeros_like(x, dtype: str | None = None) -> Variable:
    """Zeros with the shape of ``x`` (Theano's ``T.zeros_like``).

    Parameters
    ----------
    x : tensor-like
    dtype : str, optional
        Default ``x``'s dtype.

    Returns
    -------
    Variable
    """
    x = as_tensor_variable(x)
    return broadcast_like(constant(0, check_dtype(dtype or x.dtype)), x)


def ones_like(x, dtype: str | None = None) -> Variable:
    """Ones with the shape of ``x`` (Theano's ``T.ones_like``).

    Parameters
    ----------
    x : tensor-like
    dtype : str, optional
        Default ``x``'s dtype.

    Returns
    -------
    Variable
    """
    x = as_tensor_variable(x)
    return broadcast_like(constant(1, check_dtype(dtype or x.dtype)), x)


def fill(model, value) -> Variable:
    """``value`` broadcast to the shape of ``model`` (Theano's ``T.fill``).

    Parameters
    ----------
    model : tensor-like
        Gives the shape.
    value : tensor-like
        Usually a scalar; its dtype is kept.

    Returns
    -------
    Variable
    """
    model = as_tensor_variable(model)
    return broadcast_like(as_tensor_variable(value), model)


def zeros(shape, dtype: str | None = None) -> Variable:
    """A tensor of zeros of the given shape (Theano's ``T.zeros``).

    Parameters
    ----------
    shape : int, sequence of int / integer scalars, or an integer vector Variable
        ``x.shape`` works.
    dtype : str, optional
        Default ``theta.config.floatX``.

    Returns
    -------
    Variable
    """
    return alloc(constant(0, check_dtype(dtype or config.floatX)), *_shape_list(shape))


def ones(shape, dtype: str | None = None) -> Variable:
    """A tensor of ones of the given shape (Theano's ``T.ones``).

    Parameters
    ----------
    shape : int, sequence of int / integer scalars, or an integer vector Variable
    dtype : str, optional
        Default ``theta.config.floatX``.

    Returns
    -------
    Variable
    """
    return alloc(constant(1, check_dtype(dtype or config.floatX)), *_shape_list(shape))


def _shape_list(shape):
    if isinstance(shape, Variable):
        return [shape[i] for i in range(shape.type.shape[0])]
    if isinstance(shape, (int, np.integer)):
        return [shape]
    return list(shape)


def reshape(x, newshape, ndim=None) -> Variable:
    """Reshape ``x`` (Theano's ``T.reshape``; also the ``x.reshape(...)`` method).

    Parameters
    ----------
    x : tensor-like
    newshape : sequence of int or integer scalar Variables
        One entry may be ``-1`` (inferred). Symbolic entries such as ``x.shape[0]`` are allowed.
    ndim : int, optional
        Theano's check of the result's rank.

    Returns
    -------
    Variable
        On the kernel backends a view of contiguous data (no copy).

    Raises
    ------
    ShapeError
        The sizes do not match (when known at build time, else when called), or ``ndim`` differs.
    """
    out = _reshape(as_tensor_variable(x), newshape)
    if ndim is not None and out.ndim != ndim:
        raise ShapeError(f"reshape: asked for ndim={ndim} but the shape {newshape} has rank {out.ndim}")
    return out


def flatten(x, ndim: int = 1, outdim: int | None = None) -> Variable:
    """Collapse the trailing axes of ``x`` into one (Theano's ``T.flatten``).

    Parameters
    ----------
    x : tensor-like
    ndim : int, optional
        Rank of the result (default 1): the first ``ndim - 1`` axes are kept, the rest
        flattened into the last.
    outdim : int, optional
        Theano's older name for ``ndim``.

    Returns
    -------
    Variable

    Raises
    ------
    ShapeError
        ``ndim`` is not between 1 and the rank of ``x``.

    Examples
    --------
    >>> x = T.tensor4("x")          # (batch, channels, rows, cols)
    >>> h = T.flatten(x, 2)         # (batch, channels * rows * cols)
    """
    x = as_tensor_variable(x)
    ndim = outdim or ndim
    if not 1 <= ndim <= builtins.max(x.ndim, 1):
        raise ShapeError(f"flatten to {ndim} dims of {describe(x)}")
    lead = [x.type.shape[i] if x.type.shape[i] is not None else x.shape[i] for i in range(ndim - 1)]
    return _reshape(x, lead + [-1])


def dimshuffle(x, *order) -> Variable:
    """Permute axes and insert broadcastable ones (Theano's ``dimshuffle``; also a method).

    Parameters
    ----------
    x : tensor-like
    *order : int or 'x'
        The new axes in order: an int picks an axis of ``x``, ``'x'`` inserts a length-1 axis.
        Axes of ``x`` left out must have length 1. A single list or tuple is accepted too.

    Returns
    -------
    Variable
        A view (no copy on the kernel backends).

    Examples
    --------
    >>> b = T.vector("b")
    >>> b.dimshuffle("x", 0, "x", "x")     # a bias broadcast over (batch, channels, rows, cols)
    """
    if len(order) == 1 and isinstance(order[0], (list, tuple)):
        order = tuple(order[0])
    return _dimshuffle(as_tensor_variable(x), order)


def transpose(x, axes=None) -> Variable:
    """Permute the axes of ``x`` (Theano's ``T.transpose``; ``x.T`` reverses them).

    Parameters
    ----------
    x : tensor-like
    axes : sequence of int, optional
        The permutation; default reverses the axes.

    Returns
    -------
    Variable
        A view (the kernels read it through strides).
    """
    x = as_tensor_variable(x)
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(axes)
    return _dimshuffle(x, axes)


def concatenate(tensors, axis: int = 0) -> Variable:
    """Join tensors along an existing axis (Theano's ``T.concatenate``).

    Parameters
    ----------
    tensors : sequence of tensor-like
        Same rank; equal lengths on every axis but ``axis``. Cast to their promoted dtype.
    axis : int, optional
        Default 0; negative counts from the end.

    Returns
    -------
    Variable

    Raises
    ------
    ShapeError
        No tensors, or mismatched ranks or lengths.
    """
    ts = [as_tensor_variable(t) for t in tensors]
    dtype = upcast(*(t.dtype for t in ts))
    ts = [cast(t, dtype) for t in ts]
    if not ts:
        raise ShapeError("concatenate needs at least one tensor")
    axis = axis % ts[0].ndim if ts[0].ndim else 0
    return Concatenate(axis)(*ts)


def stack(tensors, axis: int = 0) -> Variable:
    """Join tensors of equal shape along a new axis (Theano's ``T.stack``).

    Parameters
    ----------
    tensors : sequence of tensor-like
        Same shape.
    axis : int, optional
        Position of the new axis (default 0).

    Returns
    -------
    Variable
        One more axis than the inputs.
    """
    ts = [as_tensor_variable(t) for t in tensors]
    nd = ts[0].ndim
    axis = axis % (nd + 1)
    order = list(range(nd))
    order.insert(axis, "x")
    return concatenate([_dimshuffle(t, order) for t in ts], axis=axis)


def dot(a, b) -> Variable:
    """Matrix product of vectors and matrices (Theano's ``T.dot``; the ``@`` operator).

    Shapes: ``(m, k) . (k, n) -> (m, n)``, ``(m, k) . (k,) -> (m,)``, ``(k,) . (k, n) -> (n,)``,
    ``(k,) . (k,) -> ()``. On the kernel backends it is a GEMM kernel that absorbs a following bias
    add, activation or SGD update into its epilogue.

    Parameters
    ----------
    a, b : tensor-like
        Rank 1 or 2; the last axis of ``a`` and the first of ``b`` must have the same length.

    Returns
    -------
    Variable
        The promoted dtype of ``a`` and ``b``.

    Raises
    ------
    ShapeError
        A rank above 2 (use :func:`batched_dot` or reshape) or inner dims that differ.

    Examples
    --------
    >>> x, W, b = T.matrix("x"), T.matrix("W"), T.vector("b")
    >>> h = T.tanh(T.dot(x, W) + b)
    """
    return _dot(a, b)


def outer(a, b) -> Variable:
    """Outer product of two vectors: ``(m,) x (n,) -> (m, n)`` (Theano's ``T.outer``).

    Parameters
    ----------
    a, b : vector-like

    Returns
    -------
    Variable

    Raises
    ------
    ShapeError
        An operand that is not a vector.
    """
    a, b = as_tensor_variable(a, ndim=1), as_tensor_variable(b, ndim=1)
    return _dot(_dimshuffle(a, (0, "x")), _dimshuffle(b, ("x", 0)))


def batched_dot(a, b) -> Variable:
    """Batched matrix product: ``(b, m, k) x (b, k, n) -> (b, m, n)`` (Theano's ``T.batched_dot``).

    Parameters
    ----------
    a, b : tensor3-like
        The same batch length ``b`` and inner length ``k``.

    Returns
    -------
    Variable
        The promoted dtype of ``a`` and ``b``.

    Raises
    ------
    ShapeError
        Operands that are not 3-d, or dims that differ.
    """
    return BatchedDot()(as_tensor_variable(a), as_tensor_variable(b))


def set_subtensor(target, value) -> Variable:
    """The whole tensor with an indexed region replaced by ``value`` (Theano's ``T.set_subtensor``).

    Tensors are immutable: the result is a new tensor, the original is unchanged. Used as an
    update (``updates=[(W, T.set_subtensor(W[idx], v))]``) the kernel backends write the region
    in place.

    Parameters
    ----------
    target : Variable
        An indexing expression ``x[...]`` (basic slices, integers, integer arrays).
    value : tensor-like
        Broadcast to the region's shape; cast to ``x``'s dtype.

    Returns
    -------
    Variable
        Shape and dtype of ``x`` (the tensor indexed, not the region).

    Raises
    ------
    IndexingError
        ``target`` is not an indexing expression.

    Examples
    --------
    >>> x = T.vector("x")
    >>> y = T.set_subtensor(x[:2], 0)       # x with its first two entries zeroed
    """
    return _inc_subtensor(target, value, set_instead_of_inc=True)


def inc_subtensor(target, value) -> Variable:
    """The whole tensor with ``value`` added to an indexed region (Theano's ``T.inc_subtensor``).

    With integer-array indices repeated indices accumulate (as ``numpy.add.at``), which is what
    the gradient of an embedding lookup ``E[ids]`` needs.

    Parameters
    ----------
    target : Variable
        An indexing expression ``x[...]``.
    value : tensor-like
        Broadcast to the region's shape; cast to ``x``'s dtype.

    Returns
    -------
    Variable
        Shape and dtype of ``x``.

    Raises
    ------
    IndexingError
        ``target`` is not an indexing expression.
    """
    return _inc_subtensor(target, value, set_instead_of_inc=False)


# --------------------------------------------------------------------------------------------
# reductions


def sum(x, axis=None, keepdims: bool = False, dtype=None, acc_dtype=None):  # noqa: A001
    """Sum of ``x`` over ``axis`` (Theano's ``T.sum``; also ``x.sum()``).

    Float sums keep the input's dtype but accumulate in float64 (a float32 sum of many terms
    stays accurate); small integer types widen (int8 sums to int64) so they do not overflow.

    Parameters
    ----------
    x : tensor-like
    axis : int, sequence of int or None, optional
        Axes to reduce (negative counts from the end); None (default) reduces all of them.
    keepdims : bool, optional
        Keep the reduced axes as broadcastable length-1 axes, so the result broadcasts against ``x``.
    dtype : str, optional
        The output dtype; default ``x``'s (small integer types widened).
    acc_dtype : str, optional
        Accepted for Theano compatibility and ignored: float reductions always accumulate in
        float64 (Theano's ``acc_dtype`` behaviour), so a float32 sum of many terms stays accurate.

    Returns
    -------
    Variable
        ``x`` reduced over ``axis``.

    Raises
    ------
    ShapeError
        An axis out of range for ``x``'s rank.
    """
    return reduce("sum", x, axis, keepdims, dtype)


def prod(x, axis=None, keepdims: bool = False, dtype=None, acc_dtype=None):
    """Product of ``x`` over ``axis`` (Theano's ``T.prod``).

    Its gradient is right at zeros too (not computed by dividing the product by each element).

    Parameters
    ----------
    x : tensor-like
    axis : int, sequence of int or None, optional
        Axes to reduce (negative counts from the end); None (default) reduces all of them.
    keepdims : bool, optional
        Keep the reduced axes as broadcastable length-1 axes, so the result broadcasts against ``x``.
    dtype : str, optional
        The output dtype; default ``x``'s (small integer types widened).
    acc_dtype : str, optional
        Accepted for Theano compatibility and ignored: float reductions always accumulate in
        float64 (Theano's ``acc_dtype`` behaviour), so a float32 sum of many terms stays accurate.

    Returns
    -------
    Variable
        ``x`` reduced over ``axis``.

    Raises
    ------
    ShapeError
        An axis out of range for ``x``'s rank.
    """
    return reduce("prod", x, axis, keepdims, dtype)


def mean(x, axis=None, keepdims: bool = False, dtype=None, acc_dtype=None):
    """Mean of ``x`` over ``axis`` (Theano's ``T.mean``; also ``x.mean()``).

    Accumulates in float64: a float32 mean of ``[1e8, 1, -1e8]`` is 1/3.

    Parameters
    ----------
    x : tensor-like
    axis : int, sequence of int or None, optional
        Axes to reduce (negative counts from the end); None (default) reduces all of them.
    keepdims : bool, optional
        Keep the reduced axes as broadcastable length-1 axes, so the result broadcasts against ``x``.
    dtype : str, optional
        The output dtype; default ``x``'s for floats, floatX for integers.
    acc_dtype : str, optional
        Accepted for Theano compatibility and ignored: float reductions always accumulate in
        float64 (Theano's ``acc_dtype`` behaviour), so a float32 sum of many terms stays accurate.

    Returns
    -------
    Variable
        ``x`` reduced over ``axis``.

    Raises
    ------
    ShapeError
        An axis out of range for ``x``'s rank.
    """
    return reduce("mean", x, axis, keepdims, dtype)


def max(x, axis=None, keepdims: bool = False):  # noqa: A001
    """Maximum of ``x`` over ``axis`` (Theano's ``T.max``; also ``x.max()``).

    The gradient goes to every element equal to the maximum (as Theano).

    Parameters
    ----------
    x : tensor-like
    axis : int, sequence of int or None, optional
        Default None: all axes.
    keepdims : bool, optional
        Keep reduced axes as length-1 axes.

    Returns
    -------
    Variable
        ``x``'s dtype.
    """
    return reduce("max", x, axis, keepdims)


def min(x, axis=None, keepdims: bool = False):  # noqa: A001
    """Minimum of ``x`` over ``axis`` (Theano's ``T.min``; also ``x.min()``).

    Parameters
    ----------
    x : tensor-like
    axis : int, sequence of int or None, optional
        Default None: all axes.
    keepdims : bool, optional
        Keep reduced axes as length-1 axes.

    Returns
    -------
    Variable
        ``x``'s dtype.
    """
    return reduce("min", x, axis, keepdims)


def argmax(x, axis=None, keepdims: bool = False):
    """Index of the maximum along an axis (Theano's ``T.argmax``): the first one on ties.

    Parameters
    ----------
    x : tensor-like
    axis : int or None, optional
        One axis; None (default) indexes the flattened ``x``.
    keepdims : bool, optional
        Keep the reduced axis as a length-1 axis.

    Returns
    -------
    Variable
        int64 indices, with no gradient.

    Examples
    --------
    >>> p = T.nnet.softmax(T.dot(x, W) + b)
    >>> error = T.neq(T.argmax(p, axis=1), y).mean()
    """
    return argreduce("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims: bool = False):
    """Index of the minimum along an axis (Theano's ``T.argmin``): the first one on ties.

    Parameters
    ----------
    x : tensor-like
    axis : int or None, optional
        One axis; None (default) indexes the flattened ``x``.
    keepdims : bool, optional

    Returns
    -------
    Variable
        int64 indices.
    """
    return argreduce("argmin", x, axis, keepdims)


def var(x, axis=None, keepdims: bool = False):
    """Variance of ``x`` over ``axis``: ``mean((x - mean(x))**2)`` (biased, as Theano's ``T.var``).

    Parameters
    ----------
    x : tensor-like
    axis : int, sequence of int or None, optional
    keepdims : bool, optional

    Returns
    -------
    Variable
    """
    m = mean(x, axis, keepdims=True)
    return mean(sqr(x - m), axis, keepdims)


def std(x, axis=None, keepdims: bool = False):
    """Standard deviation of ``x`` over ``axis``: ``sqrt(var(x))`` (biased, as Theano's ``T.std``).

    Parameters
    ----------
    x : tensor-like
    axis : int, sequence of int or None, optional
    keepdims : bool, optional

    Returns
    -------
    Variable
    """
    return sqrt(var(x, axis, keepdims))

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
    """A symbolic input. ``broadcastable`` (Theano) marks dims of length 1; ``shape`` may give
    known dims instead (None for unknown)."""
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


def as_tensor_variable(x, name: str | None = None, ndim: int | None = None) -> Variable:
    if isinstance(x, Variable):
        v = x
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
    """Apply the scalar function ``fn`` (sympy in, sympy out) elementwise, NumPy-broadcast.

    Python numbers are inlined into the expression as weak literals. ``dtype`` fixes the
    output dtype (else the promoted dtype of the operands); ``float_inputs`` casts integer
    operands to floatX first (true division, exp of an int...).
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
    node = _make_elemwise(sp.sympify(fn(*syms)), args, out_dtype, name=name)
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
    if mode not in ("half_to_even", "half_away_from_zero"):
        raise ValueError(f"round mode must be 'half_to_even' or 'half_away_from_zero', got {mode!r}")
    if mode == "half_to_even":
        return elemwise(S.round_half_even, x, name="round")
    return elemwise(lambda v: S.sgn(v) * S.floor_(S.abs_(v) + sp.Rational(1, 2)), x, name="round")


def add(*xs):
    return elemwise(lambda *s: sp.Add(*s), *xs, name="add")


def sub(a, b):
    return elemwise(lambda x, y: x - y, a, b, name="sub")


def mul(*xs):
    return elemwise(lambda *s: sp.Mul(*s), *xs, name="mul")


def true_div(a, b):
    return elemwise(lambda x, y: x / y, a, b, name="true_div", float_inputs=True)


def int_div(a, b):
    return elemwise(S.intdiv, a, b, name="int_div")


def mod(a, b):
    return elemwise(S.mod, a, b, name="mod")


def pow(a, b):  # noqa: A001
    return elemwise(lambda x, y: x ** y, a, b, name="pow")


def maximum(a, b):
    return elemwise(S.maximum, a, b, name="maximum")


def minimum(a, b):
    return elemwise(S.minimum, a, b, name="minimum")


def clip(x, lo, hi):
    return elemwise(lambda v, a, b: S.minimum(S.maximum(v, a), b), x, lo, hi, name="clip")


def switch(cond, a, b):
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


def and_(a, b):
    return elemwise(S.and_, a, b, dtype="bool", name="and")


def or_(a, b):
    return elemwise(S.or_, a, b, dtype="bool", name="or")


def xor(a, b):
    return elemwise(S.xor, a, b, dtype="bool", name="xor")


def invert(a):
    return elemwise(S.invert, a, dtype="bool", name="invert")


def cast(x, dtype: str) -> Variable:
    dtype = check_dtype(dtype)
    x = as_tensor_variable(x)
    if x.dtype == dtype:
        return x
    return elemwise(S.cast(dtype), x, dtype=dtype, name=f"cast_{dtype}")


# --------------------------------------------------------------------------------------------
# allocation and shapes


def alloc(value, *shape) -> Variable:
    return _alloc(as_tensor_variable(value), *shape)


def zeros_like(x, dtype: str | None = None) -> Variable:
    x = as_tensor_variable(x)
    return broadcast_like(constant(0, check_dtype(dtype or x.dtype)), x)


def ones_like(x, dtype: str | None = None) -> Variable:
    x = as_tensor_variable(x)
    return broadcast_like(constant(1, check_dtype(dtype or x.dtype)), x)


def fill(model, value) -> Variable:
    model = as_tensor_variable(model)
    return broadcast_like(as_tensor_variable(value), model)


def zeros(shape, dtype: str | None = None) -> Variable:
    return alloc(constant(0, check_dtype(dtype or config.floatX)), *_shape_list(shape))


def ones(shape, dtype: str | None = None) -> Variable:
    return alloc(constant(1, check_dtype(dtype or config.floatX)), *_shape_list(shape))


def _shape_list(shape):
    if isinstance(shape, Variable):
        return [shape[i] for i in range(shape.type.shape[0])]
    if isinstance(shape, (int, np.integer)):
        return [shape]
    return list(shape)


def reshape(x, newshape, ndim=None) -> Variable:
    out = _reshape(as_tensor_variable(x), newshape)
    if ndim is not None and out.ndim != ndim:
        raise ShapeError(f"reshape: asked for ndim={ndim} but the shape {newshape} has rank {out.ndim}")
    return out


def flatten(x, ndim: int = 1, outdim: int | None = None) -> Variable:
    x = as_tensor_variable(x)
    ndim = outdim or ndim
    if not 1 <= ndim <= builtins.max(x.ndim, 1):
        raise ShapeError(f"flatten to {ndim} dims of {describe(x)}")
    lead = [x.type.shape[i] if x.type.shape[i] is not None else x.shape[i] for i in range(ndim - 1)]
    return _reshape(x, lead + [-1])


def dimshuffle(x, *order) -> Variable:
    if len(order) == 1 and isinstance(order[0], (list, tuple)):
        order = tuple(order[0])
    return _dimshuffle(as_tensor_variable(x), order)


def transpose(x, axes=None) -> Variable:
    x = as_tensor_variable(x)
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(axes)
    return _dimshuffle(x, axes)


def concatenate(tensors, axis: int = 0) -> Variable:
    ts = [as_tensor_variable(t) for t in tensors]
    dtype = upcast(*(t.dtype for t in ts))
    ts = [cast(t, dtype) for t in ts]
    if not ts:
        raise ShapeError("concatenate needs at least one tensor")
    axis = axis % ts[0].ndim if ts[0].ndim else 0
    return Concatenate(axis)(*ts)


def stack(tensors, axis: int = 0) -> Variable:
    ts = [as_tensor_variable(t) for t in tensors]
    nd = ts[0].ndim
    axis = axis % (nd + 1)
    order = list(range(nd))
    order.insert(axis, "x")
    return concatenate([_dimshuffle(t, order) for t in ts], axis=axis)


def dot(a, b) -> Variable:
    return _dot(a, b)


def outer(a, b) -> Variable:
    a, b = as_tensor_variable(a, ndim=1), as_tensor_variable(b, ndim=1)
    return _dot(_dimshuffle(a, (0, "x")), _dimshuffle(b, ("x", 0)))


def batched_dot(a, b) -> Variable:
    return BatchedDot()(as_tensor_variable(a), as_tensor_variable(b))


def set_subtensor(target, value) -> Variable:
    return _inc_subtensor(target, value, set_instead_of_inc=True)


def inc_subtensor(target, value) -> Variable:
    return _inc_subtensor(target, value, set_instead_of_inc=False)


# --------------------------------------------------------------------------------------------
# reductions


def sum(x, axis=None, keepdims: bool = False, dtype=None, acc_dtype=None):  # noqa: A001
    return reduce("sum", x, axis, keepdims, dtype)


def prod(x, axis=None, keepdims: bool = False, dtype=None, acc_dtype=None):
    return reduce("prod", x, axis, keepdims, dtype)


def mean(x, axis=None, keepdims: bool = False, dtype=None, acc_dtype=None):
    return reduce("mean", x, axis, keepdims, dtype)


def max(x, axis=None, keepdims: bool = False):  # noqa: A001
    return reduce("max", x, axis, keepdims)


def min(x, axis=None, keepdims: bool = False):  # noqa: A001
    return reduce("min", x, axis, keepdims)


def argmax(x, axis=None, keepdims: bool = False):
    return argreduce("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims: bool = False):
    return argreduce("argmin", x, axis, keepdims)


def var(x, axis=None, keepdims: bool = False):
    m = mean(x, axis, keepdims=True)
    return mean(sqr(x - m), axis, keepdims)


def std(x, axis=None, keepdims: bool = False):
    return sqrt(var(x, axis, keepdims))


# --------------------------------------------------------------------------------------------
# the Variable's Python protocol: operators and methods, as in Theano


def _getitem(self, key):
    out = _subtensor(self, key)
    if out.op is not None and out.inputs and all(i.is_constant for i in out.inputs):
        return constant(out.op.perform(*(i.data for i in out.inputs)))
    return out


def _shape_prop(self):
    return shape_of(self)


def _T_prop(self):
    return transpose(self)


def _methods():
    r = lambda f: (lambda self, other: f(other, self))  # noqa: E731
    return {
        "__add__": lambda s, o: add(s, o), "__radd__": r(add),
        "__sub__": lambda s, o: sub(s, o), "__rsub__": r(sub),
        "__mul__": lambda s, o: mul(s, o), "__rmul__": r(mul),
        "__truediv__": lambda s, o: true_div(s, o), "__rtruediv__": r(true_div),
        "__floordiv__": lambda s, o: int_div(s, o), "__rfloordiv__": r(int_div),
        "__mod__": lambda s, o: mod(s, o), "__rmod__": r(mod),
        "__pow__": lambda s, o: pow(s, o), "__rpow__": r(pow),
        "__matmul__": lambda s, o: dot(s, o), "__rmatmul__": r(dot),
        "__neg__": neg, "__abs__": abs_, "__invert__": invert,
        "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
        "__and__": and_, "__or__": or_, "__xor__": xor,
        "__rand__": r(and_), "__ror__": r(or_), "__rxor__": r(xor),
        "__getitem__": _getitem,
        # NumPy defers to our reflected operators (ndarray * x -> x.__rmul__) instead of
        # building an object array of Variables; np.exp(x) raises instead of misbehaving.
        "__array_ufunc__": None,
        "shape": property(_shape_prop), "T": property(_T_prop),
        "sum": sum, "mean": mean, "prod": prod, "max": max, "min": min,
        "argmax": argmax, "argmin": argmin, "var": var, "std": std,
        "reshape": lambda s, *shape, ndim=None: reshape(s, shape[0] if len(shape) == 1 else shape, ndim),
        "flatten": flatten, "dimshuffle": dimshuffle, "transpose": lambda s, *axes: transpose(s, axes or None),
        "astype": cast, "dot": dot, "clip": clip, "exp": exp, "log": log, "sqrt": sqrt, "tanh": tanh,
        "round": round,
        "zeros_like": zeros_like, "ones_like": ones_like,
    }


for _name, _fn in _methods().items():
    setattr(Variable, _name, _fn)

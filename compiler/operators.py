"""The Python protocol of a Variable: operators, Theano's methods and its truth value.

``Variable`` (compiler/graph.py) inherits these, so they exist as soon as the class does:
``import theta; theta.shared(1.0) + 1`` works before anything imported ``theta.tensor``. The
algebra itself lives in compiler.tensor (which imports sympy): each method imports it when it
is first called, so that defining the class (and ``theta.load``, which makes no graphs) still
imports neither sympy nor jinja2.
"""
from __future__ import annotations

import weakref

from .errors import TruthValueError, describe


def _T():
    """compiler.tensor.basic, imported on the first operator call (it imports sympy)."""
    from .tensor import basic
    return basic


def _reflected(name: str):
    def method(self, other):
        return getattr(_T(), name)(other, self)
    method.__name__ = f"__r{name}__"
    return method


class TensorOperators:
    """Operators and methods of ``Variable`` (Theano's ``_tensor_py_operators``), each the
    ``theta.tensor`` function of the same meaning applied to ``self``."""

    __slots__ = ()

    # NumPy defers to our reflected operators (ndarray * x -> x.__rmul__) instead of building an
    # object array of Variables; np.exp(x) raises instead of misbehaving.
    __array_ufunc__ = None

    # -- truth value, as Theano's: every variable is true except a comparison's result, whose truth
    # would silently drop a term of ``a < b < c`` (Python's ``(a < b) and (b < c)``) or turn
    # ``if x > 0:`` into a constant branch. The op decides (nodes are hash-consed: ``T.lt(a, b)``
    # is ``a < b``), so a variable needs no flag of its own.
    def __bool__(self) -> bool:
        if self.op is not None and getattr(self.op, "is_ordering", False):
            raise TruthValueError(
                f"bool() of a symbolic comparison, {describe(self)}: it is neither True nor False (a chained "
                "comparison a < b < c, or `if` on a symbolic condition?); use T.switch(cond, a, b) for a choice, "
                "T.and_/T.or_ to combine comparisons")
        return True

    # -- arithmetic ------------------------------------------------------------------------------
    def __add__(self, other):
        return _T().add(self, other)

    def __sub__(self, other):
        return _T().sub(self, other)

    def __mul__(self, other):
        return _T().mul(self, other)

    def __truediv__(self, other):
        return _T().true_div(self, other)

    def __floordiv__(self, other):
        return _T().int_div(self, other)

    def __mod__(self, other):
        return _T().mod(self, other)

    def __pow__(self, other):
        return _T().pow(self, other)

    def __matmul__(self, other):
        return _T().dot(self, other)

    __radd__, __rsub__, __rmul__ = _reflected("add"), _reflected("sub"), _reflected("mul")
    __rtruediv__, __rfloordiv__ = _reflected("true_div"), _reflected("int_div")
    __rmod__, __rpow__, __rmatmul__ = _reflected("mod"), _reflected("pow"), _reflected("dot")

    def __neg__(self):
        return _T().neg(self)

    def __abs__(self):
        return _T().abs_(self)

    def __invert__(self):
        return _T().invert(self)

    # -- comparisons (``==`` stays identity, as in Theano: use T.eq) --------------------------------
    def __lt__(self, other):
        return _T().lt(self, other)

    def __le__(self, other):
        return _T().le(self, other)

    def __gt__(self, other):
        return _T().gt(self, other)

    def __ge__(self, other):
        return _T().ge(self, other)

    # -- bitwise / logical -----------------------------------------------------------------------
    def __and__(self, other):
        return _T().and_(self, other)

    def __or__(self, other):
        return _T().or_(self, other)

    def __xor__(self, other):
        return _T().xor(self, other)

    __rand__, __ror__, __rxor__ = _reflected("and_"), _reflected("or_"), _reflected("xor")

    # -- indexing and shape ----------------------------------------------------------------------
    def __getitem__(self, key):
        T = _T()
        out = T._subtensor(self, key)
        if out.op is not None and out.inputs and all(i.is_constant for i in out.inputs):
            return T.constant(out.op.perform(*(i.data for i in out.inputs)))
        return out

    @property
    def shape(self):
        """The shape as a symbolic int64 vector (``x.shape[0]`` is a symbolic scalar)."""
        return _T().shape_of(self)

    @property
    def T(self):
        """The transpose (all axes reversed)."""
        return _T().transpose(self)

    # -- Theano's methods: x.f(...) is T.f(x, ...) -------------------------------------------------
    def sum(self, axis=None, keepdims=False, dtype=None, acc_dtype=None):
        return _T().sum(self, axis, keepdims, dtype, acc_dtype)

    def mean(self, axis=None, keepdims=False, dtype=None, acc_dtype=None):
        return _T().mean(self, axis, keepdims, dtype, acc_dtype)

    def prod(self, axis=None, keepdims=False, dtype=None, acc_dtype=None):
        return _T().prod(self, axis, keepdims, dtype, acc_dtype)

    def max(self, axis=None, keepdims=False):
        return _T().max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _T().min(self, axis, keepdims)

    def argmax(self, axis=None, keepdims=False):
        return _T().argmax(self, axis, keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _T().argmin(self, axis, keepdims)

    def var(self, axis=None, keepdims=False):
        return _T().var(self, axis, keepdims)

    def std(self, axis=None, keepdims=False):
        return _T().std(self, axis, keepdims)

    def reshape(self, *shape, ndim=None):
        """``x.reshape((2, 3))`` or ``x.reshape(2, 3)``."""
        return _T().reshape(self, shape[0] if len(shape) == 1 else shape, ndim)

    def flatten(self, ndim=1, outdim=None):
        return _T().flatten(self, ndim, outdim)

    def dimshuffle(self, *order):
        return _T().dimshuffle(self, *order)

    def transpose(self, *axes):
        """``x.transpose(2, 0, 1)`` or, as NumPy and Theano, ``x.transpose((2, 0, 1))``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _T().transpose(self, axes or None)

    def astype(self, dtype):
        return _T().cast(self, dtype)

    def dot(self, other):
        return _T().dot(self, other)

    def clip(self, lo, hi):
        return _T().clip(self, lo, hi)

    def exp(self):
        return _T().exp(self)

    def log(self):
        return _T().log(self)

    def sqrt(self):
        return _T().sqrt(self)

    def tanh(self):
        return _T().tanh(self)

    def round(self, mode="half_to_even"):
        return _T().round(self, mode)

    def zeros_like(self, dtype=None):
        return _T().zeros_like(self, dtype)

    def ones_like(self, dtype=None):
        return _T().ones_like(self, dtype)

    def eval(self, inputs_to_values=None):
        """Theano's ``Variable.eval``: the value of this expression, with ``inputs_to_values``
        ({input variable: value}) for the inputs it reads (compiled once per set of inputs)."""
        from .function import function
        given = dict(inputs_to_values or {})
        key = tuple(sorted(id(v) for v in given))
        cache = _eval_cache.setdefault(self, {})
        fn = cache.get(key)
        if fn is None:
            fn = cache[key] = function(list(given), self, on_unused_input="ignore")
        return fn(*given.values())


_eval_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # variable -> {inputs: function}

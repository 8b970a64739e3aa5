"""``theta.tensor``: the Theano-style tensor API (``import theta.tensor as T``).

Declarations of symbolic inputs (``T.matrix``, ``T.fvector``, ``T.lscalar``, ``T.tensor4``...,
and the plural forms ``T.dmatrices('a', 'b')``), elementwise math (each function an sympy
expression, differentiated symbolically and fused into kernels), reductions, shape
manipulation, indexing (``x[i:j]``, ``x[idx]``, ``set_subtensor``/``inc_subtensor``) and
``T.dot``. Submodules: ``T.nnet`` (activations, softmax, crossentropies, ``conv2d``,
``T.nnet.bn``), ``T.signal.pool`` and ``T.shared_randomstreams``. ``T.grad``, ``T.Lop``,
``T.Rop``, ``T.jacobian`` and ``T.hessian`` are the gradient functions (``theta.gradient``).

Python numbers mixed with tensors are "weak": they take the tensor's dtype (a float literal
with an integer tensor gives floatX), so float32 graphs stay float32.

Examples
--------
>>> import numpy as np, theta, theta.tensor as T
>>> x = T.matrix("x")
>>> f = theta.function([x], T.tanh(T.dot(x, x.T)).sum(axis=1))
>>> f(np.eye(2, dtype="float32")).shape
(2,)
"""
from .basic import *  # noqa: F401,F403
from .basic import (as_tensor_variable, cast, elemwise, round, sum, max, min, pow, abs_)  # noqa: F401
from . import nnet  # noqa: F401
from . import signal  # noqa: F401  (theta.tensor.signal.pool)
from . import shared_randomstreams  # noqa: F401  (theta.tensor.shared_randomstreams)
from ..ops.shape import arange  # noqa: F401
from ..graph import Variable as TensorVariable  # noqa: F401
from ..types import TensorType  # noqa: F401
from ..grad import grad  # noqa: F401,E402  (Theano's T.grad)
from ..second_order import Lop, Rop, hessian, jacobian  # noqa: F401,E402  (T.Lop, T.Rop, T.jacobian)
from ..graph import constant  # noqa: F401,E402  (Theano's T.constant)
from .basic import _KINDS as _DECL_KINDS, _PREFIX as _DECL_PREFIX  # noqa: E402

_PLURALS = ("scalars", "vectors", "matrices", "rows", "cols", "tensor3s", "tensor4s")
# The public names (help(theta.tensor) lists these; ``from theta.tensor import *`` imports them).
__all__ = [p + k for k in (*_DECL_KINDS, *_PLURALS) for p in ("", *_DECL_PREFIX)] + [
    "tensor", "as_tensor_variable", "constant", "elemwise", "cast",
    # elementwise math
    "exp", "log", "log2", "log10", "log1p", "expm1", "tanh", "sqrt", "sin", "cos", "erf", "sigmoid", "softplus",
    "sqr", "abs_", "sgn", "neg", "inv", "floor", "ceil", "round",
    "add", "sub", "mul", "true_div", "int_div", "mod", "pow", "maximum", "minimum", "clip", "switch", "where",
    "eq", "neq", "lt", "gt", "le", "ge", "and_", "or_", "xor", "invert",
    # allocation and shapes
    "alloc", "zeros_like", "ones_like", "fill", "zeros", "ones", "arange", "reshape", "flatten", "dimshuffle",
    "transpose", "concatenate", "stack",
    # products, indexing, reductions
    "dot", "outer", "batched_dot", "set_subtensor", "inc_subtensor",
    "sum", "prod", "mean", "max", "min", "argmax", "argmin", "var", "std",
    # gradients and types
    "grad", "Lop", "Rop", "jacobian", "hessian", "TensorVariable", "TensorType",
    # submodules
    "nnet", "signal", "shared_randomstreams",
]

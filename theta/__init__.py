"""theta: a Theano-style symbolic compiler for deep learning.

    import theta
    import theta.tensor as T
    x = T.matrix('x'); W = theta.shared(np.zeros((4, 3), 'float32'), name='W')
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(x, W)), y).mean()
    train = theta.function([x, y], cost, updates=[(W, W - 0.1 * theta.grad(cost, W))])

The implementation lives in theta.compiler (graphs to programs), theta.runtime (executing
them), theta.kernels (CUDA templates) and theta.models; this package re-exports the API.
"""
from __future__ import annotations

import sys as _sys

from .compiler import errors, gradient, printing  # noqa: F401
from .compiler import tensor  # noqa: F401
from .compiler.errors import ThetaError  # noqa: F401
from .compiler.function import Function, In, function  # noqa: F401
from .compiler.grad import grad  # noqa: F401
from .compiler.options import CompileOptions, config  # noqa: F401
from .compiler.shared import SharedVariable, shared  # noqa: F401
from .compiler.graph import Variable  # noqa: F401
from .runtime.loaded import load  # noqa: F401

# Theano's module names: theta.tensor, theta.tensor.nnet, theta.gradient, theta.printing.
_sys.modules[__name__ + ".tensor"] = tensor
_sys.modules[__name__ + ".tensor.nnet"] = tensor.nnet
_sys.modules[__name__ + ".gradient"] = gradient
_sys.modules[__name__ + ".printing"] = printing
_sys.modules[__name__ + ".errors"] = errors

__version__ = "0.1.0"
__all__ = ["function", "In", "grad", "shared", "config", "load", "tensor", "gradient", "printing", "errors",
           "Function", "SharedVariable", "Variable", "ThetaError", "CompileOptions"]

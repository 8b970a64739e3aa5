"""theta: a Theano-style symbolic compiler for deep learning.

    import theta
    import theta.tensor as T
    x = T.matrix('x'); W = theta.shared(np.zeros((4, 3), 'float32'), name='W')
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(x, W)), y).mean()
    train = theta.function([x, y], cost, updates=[(W, W - 0.1 * theta.grad(cost, W))])

The implementation lives in theta.compiler (graphs to programs), theta.runtime (executing
them), theta.kernels (CUDA templates) and theta.models; this package re-exports the API.

Nothing is imported until it is first used (PEP 562 ``__getattr__`` below): ``import theta;
theta.load(path)`` runs a saved program without importing the compiler (sympy) or jinja2.
theta.tensor, theta.gradient, theta.printing, theta.sparse, theta.errors and theta.scan_module are
Theano's module names for compiler modules; the files of those names here make ``import
theta.tensor as T`` work, and each resolves as an attribute of theta on first use.
"""
from __future__ import annotations

import importlib as _importlib

from . import binding as _binding
from .compiler import binder as _binder

# The composition root: hand the compiler what runs its graphs (both modules import nothing heavy).
_binder.install(_binding)

__version__ = "0.1.0"

# public name -> (module, attribute), imported on first access
_LAZY = {
    "function": ("theta.compiler.function", "function"),
    "Function": ("theta.compiler.function", "Function"),
    "In": ("theta.compiler.function", "In"),
    "grad": ("theta.compiler.grad", "grad"),
    "config": ("theta.compiler.options", "config"),
    "CompileOptions": ("theta.compiler.options", "CompileOptions"),
    "Mode": ("theta.compiler.mode", "Mode"),
    "shared": ("theta.compiler.shared", "shared"),
    "SharedVariable": ("theta.compiler.shared", "SharedVariable"),
    "Variable": ("theta.compiler.graph", "Variable"),
    "ThetaError": ("theta.compiler.errors", "ThetaError"),
    "load": ("theta.runtime.loaded", "load"),
    "scan": ("theta.compiler.scan", "scan"),
    "map": ("theta.compiler.scan", "map"),
    "reduce": ("theta.compiler.scan", "reduce"),
    "foldl": ("theta.compiler.scan", "foldl"),
    "foldr": ("theta.compiler.scan", "foldr"),
}
_SUBMODULES = ("tensor", "gradient", "printing", "errors", "compiler", "runtime", "kernels", "models", "sparse",
               "sandbox", "compile", "distributed", "compat", "scan_module")

__all__ = ["function", "In", "grad", "shared", "config", "load", "scan", "map", "reduce", "foldl", "foldr", "tensor", "gradient", "printing", "errors",
           "scan_module", "sparse", "sandbox", "compat",
           "Function", "SharedVariable", "Variable", "ThetaError", "CompileOptions", "Mode", "compile"]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(_importlib.import_module(module), attr)
        globals()[name] = value  # later accesses are plain attribute reads
        return value
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")  # the import binds theta.<name>
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))

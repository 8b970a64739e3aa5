"""Theano scripts on theta: ``theta.compat.install_theano()`` makes ``import theano`` and its
usual submodules resolve to theta, so existing code runs unchanged:

    import theta.compat; theta.compat.install_theano()
    import theano, theano.tensor as T
    from theano.tensor.shared_randomstreams import RandomStreams

Each ``theano.*`` module is a thin module object that forwards attribute reads to the theta
module it stands for, with Theano's quirks where scripts rely on them (``softmax`` of a vector
is a 1 x n matrix; ``theano.config.device = 'cuda'`` picks the GPU backend). A name theta lacks
is an AttributeError saying theta does not support it, and importing a Theano submodule theta
does not provide (``theano.gpuarray``) is an ImportError saying the same.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

from .compiler.errors import NotSupportedError, OptionError

__all__ = ["install_theano", "uninstall_theano", "MODULES"]

# theano module -> the theta module it forwards to
MODULES = {
    "theano": "theta",
    "theano.tensor": "theta.compiler.tensor",
    "theano.tensor.nnet": "theta.compiler.tensor.nnet",
    "theano.tensor.nnet.bn": "theta.compiler.tensor.bn",
    "theano.tensor.nnet.conv": "theta.compiler.tensor.conv",   # the old module of conv2d(image_shape=...)
    "theano.tensor.signal": "theta.compiler.tensor.signal",
    "theano.tensor.signal.pool": "theta.compiler.tensor.signal.pool",
    "theano.tensor.shared_randomstreams": "theta.compiler.tensor.shared_randomstreams",
    "theano.tensor.extra_ops": "theta.compiler.tensor",
    "theano.sandbox": "theta.sandbox",
    "theano.sandbox.rng_mrg": "theta.sandbox.rng_mrg",
    "theano.gradient": "theta.gradient",
    "theano.printing": "theta.printing",
    "theano.compile": "theta.compile",
    "theano.compile.mode": "theta.compile.mode",
    "theano.compile.debugmode": "theta.compile.debugmode",
    "theano.compile.nanguardmode": "theta.compile.nanguardmode",
    "theano.scan_module": "theta.scan_module",
    "theano.sparse": "theta.sparse",
}


def _softmax(x):
    """Theano's softmax: a vector gives a 1 x n matrix (one row of probabilities)."""
    import theta.tensor as T
    from theta.compiler.ops.nnet import Softmax
    x = T.as_tensor_variable(x)
    return Softmax()(x.dimshuffle("x", 0) if x.ndim == 1 else x)


class _Config:
    """``theano.config``: theta's config with Theano's names (device, mode, and the flags
    scripts set but theta has no use for)."""
    _ignored = {"compute_test_value": "off", "exception_verbosity": "low", "optimizer_including": "",
                "warn_float64": "ignore", "cxx": "", "allow_gc": True, "print_active_device": True}

    def __getattr__(self, name):
        import theta
        if name == "device":
            return {"cuda": "cuda", "emu": "cpu", "reference": "cpu", "auto": "cuda"}.get(theta.config.backend, "cpu")
        if name == "mode":
            return theta.config.mode or "FAST_RUN"
        if name in self._ignored:
            return self.__dict__.get(name, self._ignored[name])
        if name.startswith("__"):       # Python's protocol probes (copy, pickle): plain AttributeError
            raise AttributeError(name)
        try:
            return getattr(theta.config, name)
        except AttributeError:
            from .compiler.options import OPTIONS
            raise NotSupportedError(
                f"theta does not support theano.config.{name} (theta.compat knows device, mode, "
                f"{', '.join(sorted(self._ignored))} and theta.config's options {', '.join(OPTIONS)})") from None

    def __setattr__(self, name, value):
        import theta
        if name == "device":
            value = str(value)
            if value.startswith(("cuda", "gpu")):
                theta.config.backend = "cuda"
            elif value == "cpu":
                theta.config.backend = "reference"
            else:
                raise OptionError(f"theano.config.device: theta knows 'cpu', 'cuda' and 'gpu' (with a device "
                                  f"number: 'cuda0'), not {value!r} (theta has no OpenCL backend)")
        elif name == "mode":   # theta.function's default mode (an OptionError for an unknown name)
            theta.config.mode = value
        elif name in self._ignored:
            self.__dict__[name] = value
        else:
            setattr(theta.config, name, value)


OVERRIDES = {
    "theano": {"config": _Config()},
    "theano.tensor.nnet": {"softmax": _softmax},
}


class _Forward(types.ModuleType):
    """A theano.* module: reads fall through to the theta module it stands for."""

    def __init__(self, name: str, target: str) -> None:
        super().__init__(name, f"Theano's {name}, provided by {target} (theta.compat)")
        self.__dict__["_target"] = target
        self.__dict__["__path__"] = []          # a package: its submodules import through the finder

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        override = OVERRIDES.get(self.__name__, {})
        if attr in override and override[attr] is not None:
            return override[attr]
        sub = f"{self.__name__}.{attr}"
        if sub in MODULES:
            return importlib.import_module(sub)
        target = importlib.import_module(self.__dict__["_target"])
        try:
            return getattr(target, attr)
        except AttributeError:
            raise NotSupportedError(f"theta does not support {self.__name__}.{attr} (theta.compat forwards "
                                 f"{self.__name__} to {self.__dict__['_target']}, which has no {attr!r})") from None


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "theano" or fullname.startswith("theano."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        target = MODULES.get(spec.name)
        if target is None:
            raise ImportError(f"theta does not support {spec.name} (theta.compat provides "
                              f"{', '.join(sorted(MODULES))})")
        return _Forward(spec.name, target)

    def exec_module(self, module):
        pass


_FINDER = _Finder()


def install_theano() -> None:
    """Make ``import theano`` (and ``theano.tensor``, ``theano.tensor.nnet``, ...) resolve to theta.

    Installs an import hook: every ``theano.*`` module is a thin module forwarding to the theta
    module it stands for, with Theano's quirks where scripts rely on them. Idempotent; call it
    before the script's first ``import theano``.

    Returns
    -------
    None

    Examples
    --------
    >>> import theta.compat
    >>> theta.compat.install_theano()
    >>> import theano, theano.tensor as T
    >>> f = theano.function([x := T.dvector()], T.nnet.sigmoid(x))
    """
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall_theano() -> None:
    """Undo :func:`install_theano`: remove the import hook and the ``theano`` modules it made.

    Returns
    -------
    None
    """
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == "theano" or n.startswith("theano.")]:
        if isinstance(sys.modules[name], _Forward):
            del sys.modules[name]

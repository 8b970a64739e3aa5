"""The compiler's one hook to the runtime: what runs a compiled graph.

theta.compiler never imports theta.runtime. A compiled function asks the binder installed here
(theta/binding.py, by theta/__init__.py, the composition root) for a runner of its specialized
graph. This module imports nothing, so installing the binder costs no compiler import.
"""
from __future__ import annotations

_binder = None


def install(binder) -> None:
    """Install the binder (``build``, ``reference``): theta.binding."""
    global _binder
    _binder = binder


def binder():
    if _binder is None:
        from .errors import ThetaError
        raise ThetaError("no backends installed: import theta (it installs theta.binding) before compiling")
    return _binder

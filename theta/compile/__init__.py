"""``theta.compile``: Theano's module of compilation modes (``theano.compile.mode``).

    theta.function([x], y, mode=theta.compile.mode.FAST_COMPILE)
    theta.function([x], y, mode=theta.compile.DebugMode())

The modes themselves live in theta.compiler.mode.
"""
from ..compiler.mode import (DEBUG_MODE, FAST_COMPILE, FAST_RUN, NAN_GUARD_MODE, DebugMode, Mode,  # noqa: F401
                             NanGuardMode, get_default_mode, get_mode, predefined_modes)
from ..compiler.function import In, function  # noqa: F401
from ..compiler.shared import shared  # noqa: F401
from . import debugmode, mode, nanguardmode  # noqa: F401

__all__ = ["Mode", "DebugMode", "NanGuardMode", "FAST_RUN", "FAST_COMPILE", "get_mode", "get_default_mode",
           "predefined_modes", "function", "In", "shared", "mode", "debugmode", "nanguardmode"]

"""``theta.compile.mode`` (Theano's ``theano.compile.mode``): Mode, the predefined modes and
get_mode; see theta.compiler.mode."""
from ..compiler.mode import (DEBUG_MODE, FAST_COMPILE, FAST_RUN, NAN_GUARD_MODE, DebugMode, Mode,  # noqa: F401
                              NanGuardMode, get_default_mode, get_mode, predefined_modes)

__all__ = ["Mode", "DebugMode", "NanGuardMode", "FAST_RUN", "FAST_COMPILE", "get_mode", "get_default_mode",
           "predefined_modes"]

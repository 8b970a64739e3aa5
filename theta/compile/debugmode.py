"""``theta.compile.debugmode`` (Theano's ``theano.compile.debugmode``): DebugMode and its error."""
from ..compiler.errors import DebugModeError  # noqa: F401
from ..compiler.mode import DebugMode  # noqa: F401

__all__ = ["DebugMode", "DebugModeError"]

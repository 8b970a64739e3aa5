"""``theta.compile.nanguardmode`` (Theano's ``theano.compile.nanguardmode``): NanGuardMode."""
from ..compiler.mode import NanGuardMode  # noqa: F401

__all__ = ["NanGuardMode"]

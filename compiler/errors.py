"""theta's error hierarchy.

Every error a user can meet is a ThetaError, and also the builtin exception a Python/NumPy
user would expect for that kind of mistake (a shape mismatch is a ValueError, a wrong dtype a
TypeError), so ``except ValueError`` keeps working. Messages name the variable, its shape and
dtype, and the line of user code where it was created (see ``describe``).
"""
from __future__ import annotations

import functools


class ThetaError(Exception):
    """Base class of every error theta raises on purpose."""


class ShapeError(ThetaError, ValueError):
    """Shapes that do not fit together (broadcast, dot, reshape, an input of the wrong shape)."""


class SizeError(ShapeError, MemoryError):
    """A shape too large to ever compute (more elements than any memory holds), refused when
    shapes become concrete instead of running for hours; a MemoryError like NumPy's."""


class OptionError(ThetaError, ValueError):
    """A keyword option with a value theta does not know (on_unused_input, mode, border_mode...)."""


class DTypeError(ThetaError, TypeError):
    """A value or variable of the wrong dtype (or an unsupported one)."""


class InputError(ThetaError, TypeError):
    """A compiled function called with missing, unknown or duplicate arguments."""


class GraphError(ThetaError, ValueError):
    """An ill-formed graph: unused or missing inputs, a cost that is not a scalar, a
    disconnected gradient, an update of something that is not a shared variable."""


class TruthValueError(GraphError, TypeError):
    """``bool()`` of a comparison's result (``a < b < c``, ``if x > 0:``): symbolic, neither True
    nor False. A TypeError, as in Theano; every other variable is true."""


class NotIterableError(GraphError, TypeError):
    """``len()`` of a symbolic variable, or iterating one whose length is not known when the graph
    is built: a TypeError, as in Theano."""


class NotSupportedError(ThetaError, AttributeError):
    """A Theano name theta does not provide (``theano.config.blas`` under theta.compat); an
    AttributeError, so ``hasattr`` and ``getattr(obj, name, default)`` keep working."""


class DisconnectedInputError(GraphError):
    """theta.grad asked for the gradient of an input the cost does not depend on."""


class IndexingError(ThetaError, IndexError):
    """An index out of range, or an indexing form theta does not support."""


class ArtifactError(ThetaError, ValueError):
    """A saved Program, checkpoint or cache entry that is corrupt, truncated or tampered with."""


class BackendError(ThetaError, RuntimeError):
    """A backend that cannot run here (no GPU, no pycuda, no compiler) or failed to build."""


class NanError(ThetaError, FloatingPointError):
    """The NaN guard (``theta.function(..., nan_guard=True)``) or ``theta train`` met a NaN or
    an infinity: the message names the op (or kernel), the user's line that created it and the
    ranges of its inputs, or the input that already held one."""


class DebugModeError(ThetaError, RuntimeError):
    """DebugMode (``theta.function(..., mode='DebugMode')``) found a kernel whose outputs differ
    from the reference evaluation of the graph nodes it computes, or an op whose result does not
    have the type its shape/dtype rule promised: the message names the kernel, the op, the
    largest error and the generated C line where it can be found."""


class InternalError(ThetaError, RuntimeError):
    """A disagreement between theta's own compile stages (a bug in theta, not in the user's
    graph); the message names the stage, the kernel group and the value involved."""


def describe(var) -> str:
    """One-line description of a variable for error messages: name, type and where it was made."""
    shape = ", ".join("?" if d is None else str(d) for d in var.type.shape)
    where = getattr(var, "trace", None)
    at = f" (created at {where})" if where else ""
    name = getattr(var, "name", None)
    if not name and getattr(var, "op", None) is not None:   # an unnamed intermediate: say what made it
        return f"the {var.op} result {var.type.dtype}[{shape}]{at}"
    return f"'{name or var.__class__.__name__}' {var.type.dtype}[{shape}]{at}"


def public_entry(fn):
    """Decorator of theta's public entry points (theta.function and its calls, theta.grad,
    theta.load): a ThetaError leaves with theta's internal frames cut and no chained cause,
    so the user sees their own line and the message once. ``theta.config.debug = True`` (or
    THETA_FLAGS=debug=1) keeps the full traceback and the cause, to debug theta itself."""
    @functools.wraps(fn)
    def entry(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ThetaError as err:
            if _debug():
                raise
            raise err.with_traceback(None) from None
    return entry


def _debug() -> bool:
    from .options import config   # options imports this module: import when first needed
    return bool(getattr(config, "debug", False))

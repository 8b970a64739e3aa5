"""theta's error hierarchy.

Every error a user can meet is a ThetaError, and also the builtin exception a Python/NumPy
user would expect for that kind of mistake (a shape mismatch is a ValueError, a wrong dtype a
TypeError), so ``except ValueError`` keeps working. Messages name the variable, its shape and
dtype, and the line of user code where it was created (see ``describe``).
"""
from __future__ import annotations


class ThetaError(Exception):
    """Base class of every error theta raises on purpose."""


class ShapeError(ThetaError, ValueError):
    """Shapes that do not fit together (broadcast, dot, reshape, an input of the wrong shape)."""


class DTypeError(ThetaError, TypeError):
    """A value or variable of the wrong dtype (or an unsupported one)."""


class InputError(ThetaError, TypeError):
    """A compiled function called with missing, unknown or duplicate arguments."""


class GraphError(ThetaError, ValueError):
    """An ill-formed graph: unused or missing inputs, a cost that is not a scalar, a
    disconnected gradient, an update of something that is not a shared variable."""


class DisconnectedInputError(GraphError):
    """theta.grad asked for the gradient of an input the cost does not depend on."""


class IndexingError(ThetaError, IndexError):
    """An index out of range, or an indexing form theta does not support."""


class ArtifactError(ThetaError, ValueError):
    """A saved Program, checkpoint or cache entry that is corrupt, truncated or tampered with."""


class BackendError(ThetaError, RuntimeError):
    """A backend that cannot run here (no GPU, no pycuda, no compiler) or failed to build."""


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

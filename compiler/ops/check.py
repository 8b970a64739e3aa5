"""Run-time checks of argument values that only exist when a function runs.

    ArgCheck(message, dtype)(bad)  ->  a zero of ``dtype`` (a scalar)

``bad`` is an int64 scalar: how many elements of an argument broke its rule (a probability
outside [0, 1], ``low > high``, more samples than categories...). The caller adds the zero to
the value the rule protects, so every use of that value depends on the check (and runs after
it) while the numbers are unchanged. A constant argument never gets here: it is checked when
the graph is built (compiler/random.py).

The reference backend raises a GraphError with ``message``, which names the argument, its rule
and the user's line. The kernel backends report in the program's status word
(kernels/check.cu.j2), which compiler.program.raise_status raises as the same GraphError
before any update shows.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DTypeError, GraphError, describe
from ..graph import Op, Variable
from ..types import TensorType


@dataclasses.dataclass(frozen=True)
class ArgCheck(Op):
    """Zero of ``dtype``; raises GraphError(``message``) when its input ``bad`` is not 0."""
    message: str
    dtype: str
    family = "check"

    def make_type(self, bad: Variable) -> TensorType:
        if bad.ndim != 0 or not bad.dtype.startswith(("int", "uint")):
            raise DTypeError(f"an argument check counts bad elements in an integer scalar, got {describe(bad)}")
        return TensorType(self.dtype, ())

    def perform(self, bad: np.ndarray) -> np.ndarray:
        if int(bad) != 0:
            raise GraphError(self.message)
        return np.zeros((), dtype=self.dtype)

    def grad(self, inputs, output, gout):
        return [None]    # the zero does not depend on how many elements were bad

    def __str__(self) -> str:
        return "ArgCheck"


def checked(value: Variable, bad: Variable, message: str) -> Variable:
    """``value``, made to depend on a run-time check that raises ``message`` when ``bad`` (a
    boolean tensor of any shape, true where the rule is broken) holds a true element."""
    from ..tensor import basic as T
    count = T.sum(T.cast(bad, "int64"))
    return value + ArgCheck(message, value.dtype)(count)

"""The graph: one node type (Variable) and the Op protocol.

A Variable is either a leaf (a declared input, a constant, or a shared variable) or the result
of applying an Op to input Variables. Apply-nodes are hash-consed: applying an equal Op to the
same inputs returns the very same Variable, so equal subexpressions are one object and common
subexpression elimination comes for free. Ops are frozen dataclasses, so two ops with equal
parameters are equal.

Every Op defines, in one place: its shape/dtype rule (``make_type``), its NumPy semantics
(``perform``), its symbolic gradient (``grad``) and the kernel family that lowers it.
"""
from __future__ import annotations

import itertools
import os
import sys
import weakref
from typing import Iterable, Sequence

import numpy as np

from .errors import DTypeError, GraphError, NotIterableError, ThetaError, describe
from .operators import TensorOperators
from .types import TensorType, check_dtype

_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INTERNAL_DIRS = tuple(os.path.join(_PKG_ROOT, d) + os.sep for d in ("compiler", "runtime", "theta", "kernels"))
_counter = itertools.count()


def user_line() -> str | None:
    """'file:line' of the innermost stack frame outside theta itself (the user's line)."""
    frame = sys._getframe(1)
    while frame is not None:
        fname = frame.f_code.co_filename
        if not fname.startswith(_INTERNAL_DIRS) and "importlib" not in fname:
            return f"{os.path.relpath(fname) if not fname.startswith('<') else fname}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` issued by the calling theta function
    point at the user's line (however deep inside theta the warning is raised)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith(_INTERNAL_DIRS)
                                 or "importlib" in frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


class Variable(TensorOperators):
    """A symbolic tensor: a leaf (an input, a shared variable, a constant) or ``op(*inputs)``.

    Theano's ``TensorVariable`` (``T.TensorVariable`` is this class). Identity is equality, as in
    Theano: ``x == y`` is Python identity, use ``T.eq`` for the elementwise comparison. Apply
    nodes are hash-consed, so building the same expression twice gives the same object. The
    operators (``+ - * / // % ** @``, comparisons ``< <= > >=``, ``& | ^ ~``, indexing
    ``x[i:j]``, ``x[idx_array]``) and Theano's methods (``sum``, ``mean``, ``max``, ``argmax``,
    ``reshape``, ``flatten``, ``dimshuffle``, ``astype``, ``dot``, ``clip``, ``eval``...) and
    properties (``shape``, ``T``) come from ``TensorOperators`` (compiler/operators.py), so they
    work from ``import theta`` on. As in Theano, a variable is true (``if not W:`` tests for
    None) except a comparison's result, whose truth raises a TruthValueError (``a < b < c``).

    You rarely construct one directly: use the declarations (``T.matrix``), :func:`theta.shared`
    and the tensor functions.

    Parameters
    ----------
    type : TensorType
        The dtype and static shape (None for unknown dims).
    op : Op, optional
        The operation computing it; None for a leaf.
    inputs : tuple of Variable, optional
        The op's operands.
    name : str, optional
        Shown in errors, printing and kernel parameter names.
    data : numpy.ndarray, optional
        The value of a constant (read-only), else None.

    Examples
    --------
    >>> x = T.matrix("x")
    >>> y = (x ** 2).sum(axis=1)
    >>> y.ndim, y.dtype
    (1, 'float32')
    """

    __slots__ = ("op", "inputs", "type", "name", "trace", "data", "uid", "__weakref__")

    def __init__(self, type: TensorType, op: "Op | None" = None, inputs: tuple = (), name: str | None = None,
                 data: np.ndarray | None = None) -> None:
        self.type = type
        self.op = op
        self.inputs = inputs
        self.name = name
        self.data = data  # the value of a constant (read-only ndarray), else None
        self.trace = user_line()
        self.uid = next(_counter)

    # -- structure ----------------------------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        return self.op is None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def broadcastable(self) -> tuple:
        return self.type.broadcastable

    def __repr__(self) -> str:
        if self.name:
            return self.name
        if self.is_constant:
            return f"Constant{{{_short_value(self.data)}}}"
        if self.op is not None:
            return f"{self.op}({', '.join(map(repr, self.inputs))})"
        return f"<{self.type}>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other) -> bool:  # identity, like Theano; use T.eq for elementwise equality
        return self is other

    def __iter__(self):
        # As Theano: a vector whose length the graph fixes (``rows, cols = x.shape``, a stack of
        # known pieces) iterates over its elements; anything else is refused rather than looped
        # over by Python (``sum(x)`` for ``T.sum(x)`` would otherwise build a graph per element).
        shape = getattr(self.type, "shape", None)
        if shape is not None and len(shape) == 1 and shape[0] is not None:
            return iter([self[i] for i in range(shape[0])])
        raise NotIterableError(
            f"{describe(self)} is not iterable: only a vector whose length is known when the graph is built "
            "is (x.shape is one); index it with x[i], or use T.sum/T.max rather than Python's sum/max")

    def __len__(self):
        raise NotIterableError(f"len() of {describe(self)} is symbolic; use x.shape[0] (or x.ndim)")

    def clone(self, name: str | None = None) -> "Variable":
        """A fresh leaf of the same type (a new input variable)."""
        return Variable(self.type, name=name or self.name)


def _short_value(data: np.ndarray) -> str:
    if data.ndim == 0:
        return repr(data.item())
    if data.size <= 4:
        return repr(data.tolist())
    return f"{data.dtype}{list(data.shape)}"


class Op:
    """Base class of every operation. Subclasses are frozen dataclasses (equality = params)."""

    #: name of the kernel template family that lowers this op (see compiler.codegen)
    family: str = "none"

    def make_type(self, *inputs: Variable) -> TensorType:  # shape/dtype rule
        raise NotImplementedError

    def perform(self, *values: np.ndarray) -> np.ndarray:  # NumPy semantics
        raise NotImplementedError

    def grad(self, inputs: Sequence[Variable], output: Variable, gout: Variable) -> list:
        """Symbolic vector-Jacobian product: one entry per input (a Variable, or None when the
        input is an integer/discrete quantity or the op is not differentiable there)."""
        raise GraphError(f"{self} is not differentiable")

    def rebuild(self, inputs: Sequence[Variable], ctx) -> Variable:
        """Re-apply this op on new inputs (used when a graph is specialized on concrete shapes).
        Ops whose parameters depend on runtime scalars override this."""
        return self(*inputs)

    def __call__(self, *inputs: Variable) -> Variable:
        return apply(self, inputs)

    def __str__(self) -> str:
        return type(self).__name__


_interned: "weakref.WeakValueDictionary[tuple, Variable]" = weakref.WeakValueDictionary()


def apply(op: Op, inputs: Iterable[Variable]) -> Variable:
    """Apply ``op`` to ``inputs``, returning the existing node if an equal one is alive."""
    inputs = tuple(inputs)
    for i in inputs:
        if not isinstance(i, Variable):
            raise GraphError(f"{op} got a non-symbolic input {i!r}")
    key = (op, inputs)
    node = _interned.get(key)
    if node is None:
        node = Variable(op.make_type(*inputs), op, inputs)
        _interned[key] = node
    return node


_constants: "weakref.WeakValueDictionary[tuple, Variable]" = weakref.WeakValueDictionary()


def constant(value, dtype: str | None = None, name: str | None = None) -> Variable:
    """A constant leaf holding ``value`` (Theano's ``T.constant``).

    Equal constants (same dtype, shape and bytes) are one node, so common subexpressions over
    them merge. Python floats become floatX (Theano's autocast) and Python ints int64.

    Parameters
    ----------
    value : array-like, number or constant Variable
    dtype : str, optional
        Default inferred as above (NumPy arrays keep their dtype).
    name : str, optional

    Returns
    -------
    Variable

    Raises
    ------
    GraphError
        ``value`` is a symbolic (non-constant) Variable.
    """
    if isinstance(value, Variable):
        if value.is_constant:
            return value if dtype is None or dtype == value.dtype else constant(value.data, dtype)
        raise GraphError(f"{value!r} is symbolic, not a constant")
    if dtype is None:
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not isinstance(value, np.ndarray) and arr.dtype != np.float32:
            from .options import config
            dtype = config.floatX  # Python floats become floatX (Theano's autocast)
        elif arr.dtype.kind in "iu" and not isinstance(value, (np.ndarray, np.generic)):
            dtype = "int64"
        else:
            dtype = arr.dtype.name
    dtype = check_dtype(dtype)
    raw = np.asarray(value)
    if raw.dtype.kind == "O":
        raise DTypeError(f"cannot make a constant of {value!r}")
    arr = raw.astype(dtype)
    if arr.dtype.kind in "iub" and raw.dtype.kind == "f" and not np.array_equal(arr, raw):
        raise DTypeError(f"constant {value!r} is not exactly representable as {dtype}")
    arr = np.array(arr, order="C", copy=True)
    arr.setflags(write=False)
    key = (dtype, arr.shape, arr.tobytes())
    node = _constants.get(key)
    if node is None:
        node = Variable(TensorType(dtype, arr.shape), data=arr, name=name)
        _constants[key] = node
    return node


def toposort(outputs: Iterable[Variable]) -> list[Variable]:
    """All variables the outputs depend on, each after its inputs (iterative: deep graphs ok)."""
    order: list[Variable] = []
    seen: set[int] = set()
    for out in outputs:
        stack = [(out, False)]
        while stack:
            var, expanded = stack.pop()
            if expanded:
                order.append(var)
                continue
            if id(var) in seen:
                continue
            seen.add(id(var))
            stack.append((var, True))
            for inp in reversed(var.inputs):
                if id(inp) not in seen:
                    stack.append((inp, False))
    return order


def leaves(outputs: Iterable[Variable]) -> list[Variable]:
    return [v for v in toposort(outputs) if v.is_leaf]


def clients(order: Sequence[Variable]) -> dict[int, list[Variable]]:
    """id(var) -> the nodes that use it (in ``order``)."""
    users: dict[int, list[Variable]] = {}
    for node in order:
        for inp in node.inputs:
            users.setdefault(id(inp), []).append(node)
    return users


def rebuild(outputs: Sequence[Variable], replace: dict, ctx=None) -> list[Variable]:
    """Copy the graph of ``outputs`` with leaves (or subgraphs) substituted per ``replace``
    (a dict Variable -> Variable). Each apply node is re-made through ``op.rebuild``, which
    re-runs its shape rule: this is how a graph declared with unknown dims is specialized."""
    memo: dict[int, Variable] = {id(k): v for k, v in replace.items()}
    for node in toposort(outputs):
        if id(node) in memo:
            continue
        if node.is_leaf:
            memo[id(node)] = node
            continue
        new_inputs = [memo[id(i)] for i in node.inputs]
        if all(a is b for a, b in zip(new_inputs, node.inputs)) and ctx is None:
            memo[id(node)] = node
            continue
        first_new = next(_counter)
        try:
            new = node.op.rebuild(new_inputs, ctx)
        except ThetaError as e:
            # A shape rule failing on the concrete shapes: say which expression of the user's it was.
            where = f" (created at {node.trace})" if node.trace else ""
            noted = _with_note(e, f"in {node.op}{where}")
            if noted is e:
                raise
            raise noted from e
        if new.uid > first_new and new.op is not None:
            # made by this rebuild: it stands for ``node``, so it keeps the user's line
            new.trace = node.trace
        memo[id(node)] = new
    return [memo[id(o)] for o in outputs]


def _with_note(e: Exception, note: str) -> Exception:
    """The same kind of error with a line of context appended (our errors take one message)."""
    try:
        return type(e)(f"{e}\n  {note}")
    except TypeError:
        return e

"""theta.sparse: symbolic CSR matrices and their product with dense matrices (Theano's API).

    import theta.sparse as sparse
    S = sparse.csr_matrix("S", dtype="float32")      # bag-of-words minibatch, (m, vocabulary)
    W = theta.shared(np.zeros((vocab, 10), "float32"), name="W")
    p = T.nnet.softmax(sparse.structured_dot(S, W) + b)
    ...
    f = theta.function([S, y], cost, updates=[(W, W - lr * theta.grad(cost, W))])
    f(scipy.sparse.csr_matrix(counts), labels)

A ``SparseVariable`` is not a graph node: it holds ordinary leaf Variables for the arrays of its
value (``compiler.ops.sparse.CSR_FIELDS``: the CSR arrays and the CSR of the transpose), and
the sparse ops take those as inputs. ``theta.function`` lists a sparse input as its leaves
(``expand_inputs``) and, at call time, turns the scipy.sparse value passed for it into those
arrays (``bind_args``) on the host: the matrix's own entries in its own order (unsorted column
indices and duplicates are kept: a product sums them, and a gradient with respect to
``S.data`` lines up with the caller's ``.data``), checked to be a well-formed CSR, int32
indices, and the transpose by one stable sort of the column indices, O(nnz log nnz), so the
kernels of S^T . G need no atomics and the results are deterministic.

The structured gradient with respect to the stored values is ``theta.grad(cost, S.data)``
(one entry per stored value of ``value.tocsr()``, in its order, zeros and duplicates
included); with respect to the dense operand it is the usual ``theta.grad(cost, W)``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import DTypeError, IndexingError, InputError, ShapeError, describe
from .graph import Variable, user_line
from .ops.sparse import CSR_FIELDS, CsrMM
from .types import TensorType, check_dtype, is_float

__all__ = ["SparseVariable", "csr_matrix", "structured_dot", "dot", "csr_arrays"]


class SparseVariable:
    """A symbolic CSR matrix (Theano's sparse variable), made by :func:`csr_matrix`.

    Its arrays are leaf Variables (``data``, ``indices``, ``indptr`` and the transpose's
    ``t_indptr``, ``t_indices``, ``t_perm``); a compiled function takes a ``scipy.sparse`` matrix
    for it and binds its arrays. Its shape is unknown until called.

    Parameters
    ----------
    name : str or None
    dtype : str
        ``'float32'`` or ``'float64'``: the dtype of the stored values.
    """

    op = None   # a leaf, for ``describe`` and friends
    theta_sparse_matrix = True   # T.mul(c, S) scales it; as_tensor_variable(S) says what to use instead
    __array_ufunc__ = None   # NumPy defers to the operators below (np.float64(2) * S)
    #: the matrix this one scales (``S * 2``), None for an input made by csr_matrix
    base: "SparseVariable | None" = None

    def __init__(self, name: str | None, dtype: str) -> None:
        self.name = name
        self.type = TensorType(dtype, (None, None))
        self.trace = user_line()
        prefix = name or "csr"
        for field in CSR_FIELDS:
            leaf = Variable(TensorType(dtype if field == "data" else "int32", (None,)), name=f"{prefix}.{field}")
            leaf.trace = self.trace
            setattr(self, field, leaf)

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return 2

    @property
    def leaves(self) -> tuple:
        """The leaf Variables in ``CSR_FIELDS`` order (what the sparse ops take)."""
        return tuple(getattr(self, f) for f in CSR_FIELDS)

    def __repr__(self) -> str:
        return self.name or f"<csr {self.dtype}>"

    # -- operators: scaling the stored values, as Theano's sparse matrices do (S * 2, S / n,
    # -S); everything else is a typed error that names what to use instead
    def scaled(self, factor) -> "SparseVariable":
        """The matrix with every stored value multiplied by the scalar ``factor`` (same pattern)."""
        from .tensor.basic import as_tensor_variable
        if isinstance(factor, SparseVariable) or (not isinstance(factor, Variable) and np.ndim(factor) != 0) \
                or (isinstance(factor, Variable) and factor.ndim != 0):
            shown = describe(factor) if isinstance(factor, Variable) else \
                f"{type(factor).__name__} of shape {np.shape(factor)}"
            raise DTypeError(f"{self._what()} * {shown}: a sparse matrix can only be multiplied by a scalar "
                             "(its stored values are scaled); for the matrix product use "
                             f"theta.sparse.structured_dot(S, D) (at {user_line()})")
        factor = as_tensor_variable(factor)
        if not (is_float(factor.dtype) or factor.dtype.startswith(("int", "uint"))):
            raise DTypeError(f"{self._what()} * {describe(factor)}: the factor must be a number")
        out = object.__new__(SparseVariable)
        out.__dict__.update(self.__dict__)
        out.data = self.data * factor
        out.type = TensorType(out.data.dtype, (None, None))
        out.base = self.base or self
        return out

    def __mul__(self, other) -> "SparseVariable":
        return self.scaled(other)

    __rmul__ = __mul__

    def __truediv__(self, other) -> "SparseVariable":
        if isinstance(other, SparseVariable):
            self._unsupported("/")
        if isinstance(other, Variable):
            return self.scaled(1.0 / other)
        return self.scaled(1.0 / float(other) if np.ndim(other) == 0 else other)

    def __neg__(self) -> "SparseVariable":
        return self.scaled(-1)

    def _what(self) -> str:
        from .ops.sparse import describe_sparse
        return describe_sparse(self.leaves[1:], self.dtype)

    def not_a_tensor(self):
        """Raised where a dense tensor was needed (``c + S``, ``D @ S``, ``T.exp(S)``)."""
        self._unsupported("used as a dense tensor")

    def _unsupported(self, op: str, *_):
        raise DTypeError(f"{self._what()} {op} ...: theta's sparse matrices support S * scalar, S / scalar and "
                         "-S (scaling the stored values) and the products theta.sparse.structured_dot(S, D) "
                         "(= theta.sparse.dot); for anything else compute a dense result with structured_dot "
                         f"(at {user_line()})")

    def __add__(self, other):
        self._unsupported("+")

    __radd__ = __add__

    def __sub__(self, other):
        self._unsupported("-")

    __rsub__ = __sub__

    def __matmul__(self, other):
        self._unsupported("@")

    __rmatmul__ = __matmul__

    def __rtruediv__(self, other):
        self._unsupported("/ (a number divided by a sparse matrix)")

    def __pow__(self, other):
        self._unsupported("**")

    def __floordiv__(self, other):
        self._unsupported("//")

    __rfloordiv__ = __rpow__ = __mod__ = __rmod__ = __floordiv__


def csr_matrix(name: str | None = None, dtype: str = "float64") -> SparseVariable:
    """A symbolic sparse matrix in CSR format.

    Parameters
    ----------
    name : str, optional
        Its name in messages, and as a keyword argument of compiled functions.
    dtype : str
        The dtype of its stored values: ``float32``, ``float64`` or ``floatX``.

    Returns
    -------
    SparseVariable
        Passed to ``theta.function`` as an input; called with a ``scipy.sparse`` matrix.
    """
    dtype = check_dtype(dtype)
    if not is_float(dtype):
        raise DTypeError(f"csr_matrix {name!r}: sparse values must be float32 or float64, not {dtype}")
    return SparseVariable(name, dtype)


def structured_dot(S: SparseVariable, D) -> Variable:
    """``S . D``: sparse (m, k) times dense (k, n), a dense (m, n) matrix.

    Parameters
    ----------
    S : SparseVariable
        The sparse operand (``csr_matrix``).
    D : Variable or array_like
        The dense matrix; its rows must match S's columns (checked when the function is
        called, on the concrete shapes).

    Returns
    -------
    Variable
        The product, of dtype ``upcast(S.dtype, D.dtype)``. Its gradient with respect to D is
        ``S^T . gout``; with respect to ``S.data`` it is structured (stored entries only).
    """
    from .tensor.basic import as_tensor_variable
    if not isinstance(S, SparseVariable):
        raise ShapeError(f"structured_dot: the first operand must be a sparse matrix (theta.sparse.csr_matrix), "
                         f"got {describe(S) if isinstance(S, Variable) else type(S).__name__}")
    return CsrMM(False)(*S.leaves, as_tensor_variable(D))


def dot(x, y) -> Variable:
    """``theta.sparse.dot``: :func:`structured_dot` when the first operand is sparse, else ``T.dot``.

    Parameters
    ----------
    x : SparseVariable or tensor-like
    y : tensor-like
        Dense.

    Returns
    -------
    Variable
        Dense.
    """
    if isinstance(x, SparseVariable):
        return structured_dot(x, y)
    if isinstance(y, SparseVariable):
        raise ShapeError("theta.sparse.dot: a sparse second operand is not supported yet; "
                         "use structured_dot(S, D) with the sparse matrix first (transpose the product)")
    from .tensor.basic import dot as dense_dot
    return dense_dot(x, y)


# -- binding values (called by compiler/function.py) ------------------------------------------

def expand_inputs(inputs: Sequence) -> tuple[list, list | None]:
    """``inputs`` with every SparseVariable replaced by its leaves, and the layout ``bind_args``
    needs (None when there is no sparse input, so nothing changes for dense functions)."""
    inputs = list(inputs)
    if not any(isinstance(i, SparseVariable) for i in inputs):
        return list(inputs), None
    flat, layout = [], []
    for i in inputs:
        if isinstance(i, SparseVariable) and i.base is not None:
            raise InputError(f"{i._what()} scaled (S * c) is an expression, not an input: pass the sparse "
                             "matrix made by theta.sparse.csr_matrix and scale it inside the function")
        if isinstance(i, SparseVariable):
            flat.extend(i.leaves)
            layout.append(i)
        else:
            flat.append(i)
            layout.append(None)
    return flat, layout


def bind_args(layout: list, args: Sequence, kwargs: dict, what: str,
              allow_downcast: bool = False) -> tuple[list, dict]:
    """The positional and keyword arguments of a call, each sparse value replaced by its arrays
    (``csr_arrays``), in the order ``expand_inputs`` listed the leaves."""
    if len(args) > len(layout):
        raise InputError(f"{what} takes {len(layout)} inputs, got {len(args)}")
    flat: list = []
    for pos, value in enumerate(args):
        var = layout[pos]
        if var is None:
            flat.append(value)
        else:
            flat.extend(csr_arrays(value, var, f"{what}: input {pos} {describe(var)}", allow_downcast))
    kwargs = dict(kwargs)
    for pos, var in enumerate(layout):
        if var is None:
            continue
        for leaf in var.leaves:
            if leaf.name in kwargs:    # the arrays come from a sparse value only: they are checked here
                raise InputError(f"{what}: pass the sparse matrix {describe(var)} itself, not {leaf.name!r}")
        if var.name is not None and var.name in kwargs:
            if pos < len(args):
                raise InputError(f"{what} got input {var.name!r} twice")
            arrays = csr_arrays(kwargs.pop(var.name), var, f"{what}: input {var.name!r} {describe(var)}",
                                allow_downcast)
            kwargs.update({leaf.name: a for leaf, a in zip(var.leaves, arrays)})
    return flat, kwargs


def _checked_structure(csr: Any, m: int, k: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """indptr and indices (int32) of ``csr``, refused unless they describe an m x k CSR matrix:
    indptr of m + 1 non-decreasing offsets from 0 to at most the stored entries, column indices
    in [0, k) (scipy accepts 1-based or negative ones, and a decreasing indptr)."""
    indptr = np.asarray(csr.indptr).ravel()
    if len(indptr) != m + 1:
        raise ShapeError(f"{where}: a malformed CSR matrix of shape {(m, k)}: indptr has {len(indptr)} "
                         f"entries, not m + 1 = {m + 1}")
    steps = np.diff(indptr)
    if indptr[0] != 0 or (steps < 0).any():
        at = int(np.argmax(steps < 0)) if (steps < 0).any() else 0
        raise ShapeError(f"{where}: a malformed CSR matrix: indptr must start at 0 and never decrease, "
                         f"got indptr[0] = {indptr[0]}" + (f", indptr[{at}] = {indptr[at]} > indptr[{at + 1}] = "
                                                           f"{indptr[at + 1]}" if (steps < 0).any() else ""))
    nnz = int(indptr[-1])
    stored = min(len(np.asarray(csr.indices).ravel()), len(np.asarray(csr.data).ravel()))
    if nnz > stored:
        raise ShapeError(f"{where}: a malformed CSR matrix: indptr ends at {nnz} but only {stored} "
                         "values and column indices are stored")
    indices = np.asarray(csr.indices).ravel()[:nnz]
    bad = (indices < 0) | (indices >= k)
    if bad.any():
        at = int(np.argmax(bad))
        raise IndexingError(f"{where}: a malformed CSR matrix of shape {(m, k)}: column indices must lie in "
                            f"[0, {k}) (0-based), got indices[{at}] = {indices[at]} (range "
                            f"[{indices.min()}, {indices.max()}])")
    return indptr.astype(np.int32), indices.astype(np.int32)


def csr_arrays(value: Any, var: SparseVariable, where: str, allow_downcast: bool = False) -> list[np.ndarray]:
    """The arrays of ``value`` (anything with ``.tocsr()``, e.g. any scipy.sparse matrix) for
    the sparse input ``var``, in ``CSR_FIELDS`` order; a typed error starting with ``where``.

    Parameters
    ----------
    value : scipy.sparse matrix or array
        The value passed for ``var``; the caller's object is never modified.
    var : SparseVariable
        The input it is bound to (its dtype).
    where : str
        Which input of what, for messages.
    allow_downcast : bool
        Accept float64 values for a float32 input.

    Returns
    -------
    list of numpy.ndarray
        data (var's dtype), indices, indptr, t_indptr, t_indices, t_perm (int32).
    """
    if isinstance(value, Variable) or isinstance(value, SparseVariable):
        raise InputError(f"{where} got the symbolic variable {value!r}; pass a scipy.sparse matrix")
    if not callable(getattr(value, "tocsr", None)):
        shape = f" of shape {value.shape}" if hasattr(value, "shape") else ""
        raise InputError(f"{where} is sparse: pass a scipy.sparse matrix (anything with .tocsr()), "
                         f"got {type(value).__name__}{shape}")
    csr = value.tocsr()
    if len(csr.shape) != 2:
        raise ShapeError(f"{where} got a sparse value of shape {csr.shape}; it must be a matrix")
    got = np.dtype(csr.dtype)
    if got.name != var.dtype:
        ok = np.can_cast(got, var.dtype, "safe") or (allow_downcast and np.can_cast(got, var.dtype, "same_kind"))
        if not ok:
            raise DTypeError(f"{where} got a sparse matrix of dtype {got.name}; pass {var.dtype} "
                             "(or compile with allow_input_downcast=True)")
    m, k = (int(d) for d in csr.shape)
    if max(m, k, csr.nnz) >= 2 ** 31 - 1:
        raise ShapeError(f"{where}: shape {csr.shape} with {csr.nnz} stored values does not fit int32 indices")
    # the entries as given (not sorted, duplicates not summed), so that S.data's gradient is in
    # the order of the caller's .data; checked first: a malformed CSR must not reach the kernels
    indptr, indices = _checked_structure(csr, m, k, where)
    data = np.array(csr.data[:len(indices)], dtype=var.dtype)   # a copy: never the caller's buffer
    # the transpose's CSR: entries ordered by column, then (stable sort) by row
    perm = np.argsort(indices, kind="stable").astype(np.int32)
    t_indptr = np.zeros(k + 1, dtype=np.int32)
    np.cumsum(np.bincount(indices, minlength=k), out=t_indptr[1:])
    rows = np.repeat(np.arange(m, dtype=np.int32), np.diff(indptr))
    return [data, np.ascontiguousarray(indices), np.ascontiguousarray(indptr), t_indptr,
            np.ascontiguousarray(rows[perm]), perm]

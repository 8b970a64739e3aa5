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
arrays (``bind_args``) on the host: canonical CSR (sorted indices, duplicates summed), int32
indices, and the transpose by one stable sort of the column indices, O(nnz log nnz), so the
kernels of S^T . G need no atomics and the results are deterministic.

The structured gradient with respect to the stored values is ``theta.grad(cost, S.data)``
(one entry per stored value, zeros included); with respect to the dense operand it is the
usual ``theta.grad(cost, W)``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import DTypeError, InputError, ShapeError, describe
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
    if not getattr(csr, "has_canonical_format", False):
        # sorted column indices and no duplicates (summed), on a copy: the caller's matrix stays as is
        csr = csr.copy()
        csr.sum_duplicates()
    indptr = np.asarray(csr.indptr, dtype=np.int32)
    indices = np.asarray(csr.indices[:csr.nnz], dtype=np.int32)
    data = np.array(csr.data[:csr.nnz], dtype=var.dtype)   # a copy: never the caller's buffer
    # the transpose's CSR: entries ordered by column, then (stable sort) by row
    perm = np.argsort(indices, kind="stable").astype(np.int32)
    t_indptr = np.zeros(k + 1, dtype=np.int32)
    np.cumsum(np.bincount(indices, minlength=k), out=t_indptr[1:])
    rows = np.repeat(np.arange(m, dtype=np.int32), np.diff(indptr))
    return [data, np.ascontiguousarray(indices), np.ascontiguousarray(indptr), t_indptr,
            np.ascontiguousarray(rows[perm]), perm]

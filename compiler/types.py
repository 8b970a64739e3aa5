"""Tensor types and dtype rules.

A TensorType is a dtype plus a static shape whose dims may be unknown (None) at declaration.
A dim declared as 1 is *broadcastable* (Theano's broadcastable pattern: ``T.row`` is (1, None)).
When a function is specialized for the shapes it is called with, every dim becomes concrete.

Dtype promotion follows NumPy between floats and between integers, with one deliberate
difference that matches PyTorch and JAX: an integer or bool combined with a float keeps the
float's dtype, so a float32 graph never silently becomes float64 because an index or a mask
entered it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .errors import DTypeError, ShapeError

BOOL = ("bool",)
INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOATS = ("float32", "float64")
ALL_DTYPES = BOOL + INTS + FLOATS


def check_dtype(dtype) -> str:
    """Normalize a dtype spec ('floatX', np.float32, 'float32') to its canonical name."""
    if isinstance(dtype, str) and dtype == "floatX":
        from .options import config
        return config.floatX
    try:
        name = np.dtype(dtype).name
    except TypeError as e:
        raise DTypeError(f"unknown dtype {dtype!r}") from e
    if name not in ALL_DTYPES:
        raise DTypeError(f"dtype {name} is not supported; theta supports {', '.join(ALL_DTYPES)}")
    return name


def is_float(dtype: str) -> bool:
    return dtype in FLOATS


def is_int(dtype: str) -> bool:
    return dtype in INTS


def upcast(*dtypes: str) -> str:
    """The dtype of an elementwise result of operands with these dtypes (see module doc)."""
    floats = [d for d in dtypes if d in FLOATS]
    if floats:
        return np.result_type(*floats).name
    ints = [d for d in dtypes if d in INTS]
    if ints:
        return np.result_type(*ints).name
    return "bool"


def acc_dtype(dtype: str) -> str:
    """Accumulator for sums/means/products: float64 for floats (Theano's acc_dtype contract,
    so float32 sums do not lose small terms), int64/uint64 for integers and bool."""
    if dtype in FLOATS:
        return "float64"
    if dtype.startswith("uint"):
        return "uint64"
    return "int64"


def sum_dtype(dtype: str) -> str:
    """Output dtype of a sum: floats keep theirs; small ints widen so they do not overflow."""
    if dtype in FLOATS:
        return dtype
    return acc_dtype(dtype)


@dataclasses.dataclass(frozen=True)
class TensorType:
    """The type of a tensor Variable: its dtype and static shape (Theano's ``T.TensorType``).

    Parameters
    ----------
    dtype : str
        ``'float32'``, ``'float64'``, ``'int8'``... ``'int64'``, ``'uint8'``, ``'bool'``.
    shape : tuple of int or None
        One entry per axis: a known length, or None. Theano's ``broadcastable`` flags are the
        entries equal to 1 (``TensorType.broadcastable``).

    Raises
    ------
    ShapeError
        A negative or non-integer dim.
    """
    dtype: str
    shape: tuple  # of int | None

    def __post_init__(self) -> None:
        for d in self.shape:
            if d is not None and (not isinstance(d, (int, np.integer)) or d < 0):
                raise ShapeError(f"invalid dim {d!r} in shape {self.shape}")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def broadcastable(self) -> tuple:
        return tuple(d == 1 for d in self.shape)

    @property
    def is_concrete(self) -> bool:
        return all(d is not None for d in self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(None if d is None else int(d) for d in shape))

    def accepts_shape(self, shape: tuple) -> bool:
        return len(shape) == self.ndim and all(d is None or d == s for d, s in zip(self.shape, shape))

    def __str__(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


def broadcast_shapes(shapes: list, describe_operands) -> tuple:
    """NumPy broadcasting of equal-rank shapes whose dims may be unknown (None).

    An unknown dim against a known dim n > 1 gives n; unknown against unknown stays unknown
    (checked again once the function is specialized on concrete shapes).
    """
    ndim = len(shapes[0])
    out = []
    for axis in range(ndim):
        dims = {s[axis] for s in shapes} - {1}
        known = dims - {None}
        if len(known) > 1:
            raise ShapeError(
                f"shapes do not broadcast along axis {axis}: {describe_operands()}"
            )
        if known:
            out.append(known.pop())
        elif None in dims:
            out.append(None)
        else:
            out.append(1)
    return tuple(out)

"""Matrix products: T.dot for vectors and matrices (lowered to the GEMM template family)."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ShapeError, describe
from ..graph import Op, Variable
from ..types import TensorType, is_float, upcast


@dataclasses.dataclass(frozen=True)
class Dot(Op):
    family = "gemm"

    def make_type(self, x: Variable, y: Variable) -> TensorType:
        if x.ndim not in (1, 2) or y.ndim not in (1, 2):
            raise ShapeError(f"dot of {describe(x)} and {describe(y)}: only vectors and matrices "
                             "(use T.batched_dot or reshape for higher ranks)")
        kx, ky = x.type.shape[-1], y.type.shape[0]
        if kx is not None and ky is not None and kx != ky:
            raise ShapeError(f"dot: inner dims differ: {describe(x)} . {describe(y)}")
        shape = x.type.shape[:-1] + y.type.shape[1:]
        return TensorType(upcast(x.dtype, y.dtype), shape)

    def perform(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if x.shape[-1] != y.shape[0]:
            raise ShapeError(f"dot: inner dims differ: {x.shape} . {y.shape}")
        dtype = upcast(x.dtype.name, y.dtype.name)
        return np.asarray(np.dot(x.astype(dtype, copy=False), y.astype(dtype, copy=False)))

    def grad(self, inputs, output, gout):
        from ..tensor.basic import outer
        x, y = inputs
        if x.ndim == 2 and y.ndim == 2:
            gx, gy = dot(gout, y.T), dot(x.T, gout)
        elif x.ndim == 1 and y.ndim == 2:
            gx, gy = dot(y, gout), outer(x, gout)
        elif x.ndim == 2 and y.ndim == 1:
            gx, gy = outer(gout, y), dot(gout, x)
        else:
            gx, gy = gout * y, gout * x
        return [gx if is_float(x.dtype) else None, gy if is_float(y.dtype) else None]


@dataclasses.dataclass(frozen=True)
class BatchedDot(Op):
    """(b,m,k) x (b,k,n) -> (b,m,n)."""
    family = "gemm"

    def make_type(self, x: Variable, y: Variable) -> TensorType:
        if x.ndim != 3 or y.ndim != 3:
            raise ShapeError(f"batched_dot needs two 3-d tensors: {describe(x)}, {describe(y)}")
        for a, b in ((x.type.shape[0], y.type.shape[0]), (x.type.shape[2], y.type.shape[1])):
            if a is not None and b is not None and a != b:
                raise ShapeError(f"batched_dot: dims differ: {describe(x)}, {describe(y)}")
        return TensorType(upcast(x.dtype, y.dtype), (x.type.shape[0], x.type.shape[1], y.type.shape[2]))

    def perform(self, x, y):
        dtype = upcast(x.dtype.name, y.dtype.name)
        return np.matmul(x.astype(dtype, copy=False), y.astype(dtype, copy=False))

    def grad(self, inputs, output, gout):
        x, y = inputs
        gx = BatchedDot()(gout, y.dimshuffle(0, 2, 1))
        gy = BatchedDot()(x.dimshuffle(0, 2, 1), gout)
        return [gx if is_float(x.dtype) else None, gy if is_float(y.dtype) else None]


def dot(x, y) -> Variable:
    from ..tensor.basic import as_tensor_variable
    return Dot()(as_tensor_variable(x), as_tensor_variable(y))

"""Reductions: sum, prod, max, min, mean over any set of axes; argmax/argmin over one axis.

Accumulation contract (every backend keeps it): float sums, products and means accumulate in
float64 and round once to the output dtype (Theano's acc_dtype), integer ones in (u)int64.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ShapeError, describe
from ..graph import Op, Variable
from .. import tolerance
from ..types import TensorType, acc_dtype, is_float, sum_dtype

KINDS = ("sum", "prod", "max", "min", "mean")


@dataclasses.dataclass(frozen=True)
class Reduce(Op):
    kind: str
    axes: tuple
    dtype: str
    family = "reduce"

    def make_type(self, x: Variable) -> TensorType:
        for a in self.axes:
            if not 0 <= a < x.ndim:
                raise ShapeError(f"{self.kind} over axis {a} of {describe(x)}")
        if self.kind in ("max", "min"):
            for a in self.axes:
                if x.type.shape[a] == 0:
                    raise ShapeError(f"{self.kind} over the empty axis {a} of {describe(x)}")
        return TensorType(self.dtype, tuple(d for a, d in enumerate(x.type.shape) if a not in self.axes))

    def perform(self, x: np.ndarray) -> np.ndarray:
        axes = self.axes
        if self.kind in ("sum", "prod", "mean"):
            acc = acc_dtype(x.dtype.name) if self.kind != "mean" or not is_float(self.dtype) else "float64"
            fn = {"sum": np.sum, "prod": np.prod, "mean": np.mean}[self.kind]
            out = fn(x, axis=axes, dtype=acc)
        else:
            if any(x.shape[a] == 0 for a in axes):
                raise ShapeError(f"{self.kind} of an empty axis (shape {x.shape}, axes {axes})")
            out = (np.max if self.kind == "max" else np.min)(x, axis=axes)
        return np.asarray(out).astype(self.dtype, copy=False)

    def error_bound(self, args, bounds, out) -> np.ndarray:
        """DebugMode's bound (compiler/tolerance.py): a sum or mean is as exact as the sum of its
        |terms| in the accumulator's precision (float64 for floats), plus the rounding to the
        output; max and min move with their terms, prod with its |factors|."""
        (x,), (b,) = args, bounds
        if self.kind == "prod":   # of |x|: perturbations of mixed-sign factors must not cancel
            e = tolerance.eps(acc_dtype(x.dtype.name))
            factors = [np.abs(x)]
            shifts = tolerance.backward(factors, [b], e, tolerance.ULPS_BASIC)
            moved = tolerance.perturbed(self.perform, factors, shifts)
            return moved + tolerance.ULPS_BASIC * tolerance.eps(self.dtype) * np.abs(np.asarray(out, dtype=moved.dtype))
        if self.kind not in ("sum", "mean"):
            return tolerance.generic(self, args, bounds, out)
        n = int(np.prod([x.shape[a] for a in self.axes]))
        x_acc = np.abs(np.asarray(x, dtype=np.float64 if x.dtype.kind != "c" else np.complex128))
        spread = np.sum(np.broadcast_to(b, x.shape), axis=self.axes) \
            + tolerance.growth(n) * tolerance.eps(acc_dtype(x.dtype.name)) * np.sum(x_acc, axis=self.axes)
        if self.kind == "mean":
            spread = spread / max(n, 1)
        return spread + tolerance.ULPS_BASIC * tolerance.eps(self.dtype) * np.abs(np.asarray(out, dtype=spread.dtype))

    def grad(self, inputs, output, gout):
        (x,) = inputs
        if not is_float(x.dtype):
            return [None]
        from .shape import broadcast_like
        from ..tensor import basic as T
        g = broadcast_like(expand_reduced(gout, self.axes, x.ndim), x)
        if self.kind == "sum":
            return [g]
        if self.kind == "mean":
            n = 1
            for a in self.axes:
                n = n * x.shape[a]
            return [T.true_div(g, T.cast(n, x.dtype))]
        out_b = expand_reduced(output, self.axes, x.ndim)
        if self.kind in ("max", "min"):
            return [g * T.eq(x, out_b)]
        # prod: d/dx_i = product of the other elements, exact when some x_j are zero.
        is_zero = T.eq(x, 0)
        zeros = expand_reduced(reduce_sum(T.cast(is_zero, "int64"), self.axes), self.axes, x.ndim)
        prod_nz = expand_reduced(Reduce("prod", self.axes, x.dtype)(T.switch(is_zero, T.ones_like(x), x)),
                                 self.axes, x.ndim)
        others = T.switch(is_zero, T.switch(T.eq(zeros, 1), prod_nz, 0),
                          T.switch(T.eq(zeros, 0), out_b / T.switch(is_zero, 1, x), 0))
        return [g * others]

    def __str__(self) -> str:
        return f"{self.kind.capitalize()}{{{','.join(map(str, self.axes))}}}"


def expand_reduced(v: Variable, axes: tuple, ndim: int) -> Variable:
    """Re-insert reduced axes as length-1 axes (keepdims)."""
    from .shape import dimshuffle
    order, k = [], 0
    for a in range(ndim):
        if a in axes:
            order.append("x")
        else:
            order.append(k)
            k += 1
    return dimshuffle(v, order)


def normalize_axes(axis, ndim: int, what: str = "axis", var=None) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    of = f" of {describe(var)}" if var is not None else ""   # the culprit, with the user's line
    iterable = hasattr(axis, "__iter__") and not isinstance(axis, (str, bytes))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis) if iterable else None
    if axes is None or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
        raise ShapeError(f"{what}{of} must be an int, a tuple of ints or None, got {axis!r}")
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ShapeError(f"{what} {a}{of} is out of range for a tensor of rank {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated {what} in {axis}")
    return tuple(sorted(out))


def reduce(kind: str, x: Variable, axis=None, keepdims: bool = False, dtype: str | None = None) -> Variable:
    from ..tensor.basic import as_tensor_variable
    from ..options import config
    x = as_tensor_variable(x)
    axes = normalize_axes(axis, x.ndim, var=x)
    if dtype is None:
        if kind in ("sum", "prod"):
            dtype = sum_dtype(x.dtype)
        elif kind == "mean":
            dtype = x.dtype if is_float(x.dtype) else config.floatX
        else:
            dtype = x.dtype
    out = Reduce(kind, axes, dtype)(x) if axes else x
    if not axes and out.dtype != dtype:
        from ..tensor.basic import cast
        out = cast(out, dtype)
    return expand_reduced(out, axes, x.ndim) if keepdims else out


def reduce_sum(x: Variable, axes) -> Variable:
    return reduce("sum", x, axes)


@dataclasses.dataclass(frozen=True)
class ArgReduce(Op):
    kind: str  # "argmax" | "argmin"
    axis: int  # the axis; callers flatten first for axis=None
    family = "reduce"

    def make_type(self, x: Variable) -> TensorType:
        if not 0 <= self.axis < x.ndim:
            raise ShapeError(f"{self.kind} over axis {self.axis} of {describe(x)}")
        return TensorType("int64", tuple(d for a, d in enumerate(x.type.shape) if a != self.axis))

    def perform(self, x: np.ndarray) -> np.ndarray:
        if x.shape[self.axis] == 0:
            raise ShapeError(f"{self.kind} of an empty axis (shape {x.shape})")
        return np.asarray((np.argmax if self.kind == "argmax" else np.argmin)(x, axis=self.axis), dtype="int64")

    def error_bound(self, args, bounds, out) -> np.ndarray:
        """DebugMode's bound (compiler/tolerance.py): the index is exact unless another value
        lies within the values' error of the extreme one (a near tie: any of them may win)."""
        (x,), (b,) = args, bounds
        if x.dtype.kind not in "fc" or x.shape[self.axis] == 0:
            return np.zeros(np.shape(out))
        x64 = x.astype(np.float64)
        near = np.broadcast_to(b, x.shape) + tolerance.ULPS_BASIC * tolerance.eps(x.dtype) * np.abs(x64)
        best = np.take_along_axis(x64, np.expand_dims(out, self.axis), self.axis)
        margin = np.take_along_axis(near, np.expand_dims(out, self.axis), self.axis)
        with np.errstate(invalid="ignore"):
            ties = np.sum(np.abs(x64 - best) <= near + margin, axis=self.axis)
        return np.where(ties > 1, np.inf, 0.0)

    def grad(self, inputs, output, gout):
        return [None]

    def __str__(self) -> str:
        return f"{self.kind.capitalize()}{{{self.axis}}}"


def argreduce(kind: str, x: Variable, axis=None, keepdims: bool = False) -> Variable:
    from ..tensor.basic import as_tensor_variable, flatten
    x = as_tensor_variable(x)
    if axis is None:
        out = ArgReduce(kind, 0)(flatten(x, 1))
        return expand_reduced(out, tuple(range(x.ndim)), x.ndim) if keepdims else out
    (a,) = normalize_axes(axis, x.ndim, var=x)
    out = ArgReduce(kind, a)(x)
    return expand_reduced(out, (a,), x.ndim) if keepdims else out

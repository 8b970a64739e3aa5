"""Shape ops: dimshuffle, reshape, shape, alloc (broadcast a value), arange, concatenate."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import ShapeError, describe
from ..graph import Op, Variable, constant
from ..types import TensorType, check_dtype
from .args import Arg, fold, renumber, resolve


@dataclasses.dataclass(frozen=True)
class DimShuffle(Op):
    """Theano's dimshuffle: ``order`` lists input axes and 'x' (a new broadcastable axis);
    input axes left out must have length 1 and are dropped."""
    order: tuple
    family = "view"

    def make_type(self, x: Variable) -> TensorType:
        axes = [a for a in self.order if a != "x"]
        if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
            # 'y', 1.0, None...: Theano takes only axis numbers and 'x'
            raise ShapeError(f"invalid dimshuffle {self.order} of {describe(x)}: the pattern takes input axis "
                             "numbers and 'x' (a new broadcastable axis)")
        if sorted(set(axes)) != sorted(axes) or any(not 0 <= a < x.ndim for a in axes):
            raise ShapeError(f"invalid dimshuffle {self.order} of {describe(x)}")
        for a in set(range(x.ndim)) - set(axes):
            if x.type.shape[a] != 1:
                raise ShapeError(f"dimshuffle {self.order} drops axis {a} of {describe(x)}, "
                                 "which is not known to have length 1")
        return TensorType(x.dtype, tuple(1 if a == "x" else x.type.shape[a] for a in self.order))

    def perform(self, x: np.ndarray) -> np.ndarray:
        axes = [a for a in self.order if a != "x"]
        dropped = tuple(a for a in range(x.ndim) if a not in axes)
        y = np.squeeze(x, axis=dropped) if dropped else x
        remaining = [a for a in range(x.ndim) if a not in dropped]
        y = np.transpose(y, [remaining.index(a) for a in axes])
        return np.reshape(y, tuple(1 if a == "x" else x.shape[a] for a in self.order))

    def grad(self, inputs, output, gout):
        (x,) = inputs
        # Output axes that were 'x' have length 1 and are dropped; input axes that were
        # dropped come back as new length-1 axes.
        g = dimshuffle(gout, [self.order.index(a) if a in self.order else "x" for a in range(x.ndim)])
        return [g]

    def __str__(self) -> str:
        return f"DimShuffle{{{','.join(map(str, self.order))}}}"


def dimshuffle(x: Variable, order) -> Variable:
    order = tuple(order)
    if order == tuple(range(x.ndim)):
        return x
    return DimShuffle(order)(x)


@dataclasses.dataclass(frozen=True)
class Reshape(Op):
    """Reshape to ``shape`` (ints, one -1, or Args naming scalar inputs)."""
    shape: tuple
    family = "view"

    def make_type(self, x: Variable, *args: Variable) -> TensorType:
        if sum(1 for d in self.shape if d == -1) > 1:
            raise ShapeError(f"reshape of {describe(x)} to {self.shape}: at most one dim may be -1")
        dims = [None if isinstance(d, Arg) else d for d in self.shape]
        if -1 in dims and None not in dims and x.type.is_concrete:
            known = math.prod(d for d in dims if d != -1)
            size = math.prod(x.type.shape)
            if known == 0 or size % known:
                raise ShapeError(f"cannot reshape {describe(x)} (size {size}) to {self.shape}")
            dims[dims.index(-1)] = size // known
        dims = [None if d == -1 else d for d in dims]
        if None not in dims and x.type.is_concrete and math.prod(dims) != math.prod(x.type.shape):
            raise ShapeError(f"cannot reshape {describe(x)} (size {math.prod(x.type.shape)}) to {tuple(dims)}")
        return TensorType(x.dtype, tuple(dims))

    def perform(self, x: np.ndarray, *args) -> np.ndarray:
        shape = tuple(resolve(d, (x,) + args) for d in self.shape)
        try:
            return np.reshape(x, shape)
        except ValueError as e:
            raise ShapeError(f"cannot reshape an array of shape {x.shape} to {shape}") from e

    def grad(self, inputs, output, gout):
        return [reshape_like(gout, inputs[0])] + [None] * (len(inputs) - 1)

    def rebuild(self, inputs, ctx):
        shape = tuple(fold(d, inputs) for d in self.shape)
        shape, inputs = renumber(shape, inputs, 1)
        return Reshape(shape)(*inputs)

    def __str__(self) -> str:
        return f"Reshape{{{','.join(map(str, self.shape))}}}"


def symbolic_dims(entries) -> tuple[tuple, list]:
    """Turn a list of ints / scalar Variables into (entries with Args, list of Arg inputs)
    where the Args count from 1 (input 0 is the op's main operand)."""
    from ..tensor.basic import as_tensor_variable
    out, args = [], []
    for d in entries:
        if isinstance(d, (int, np.integer)):
            out.append(int(d))
        else:
            v = as_tensor_variable(d)
            if v.ndim != 0 or not (v.dtype.startswith("int") or v.dtype.startswith("uint")):
                raise ShapeError(f"a dim must be an integer scalar, got {describe(v)}")
            if v.is_constant:
                out.append(int(v.data))
            else:
                out.append(Arg(1 + len(args)))
                args.append(v)
    return tuple(out), args


def reshape(x: Variable, shape) -> Variable:
    if isinstance(shape, Variable):
        if shape.ndim != 1 or shape.type.shape[0] is None:
            raise ShapeError(f"reshape needs a shape of known length, got {describe(shape)}")
        shape = [shape[i] for i in range(shape.type.shape[0])]
    elif isinstance(shape, (int, np.integer)):
        shape = (shape,)
    entries, args = symbolic_dims(shape)
    if entries == x.type.shape and x.type.is_concrete:
        return x
    return Reshape(entries)(x, *args)


def reshape_like(x: Variable, like: Variable) -> Variable:
    if x.type.shape == like.type.shape and like.type.is_concrete:
        return x
    return reshape(x, [d if d is not None else like.shape[i] for i, d in enumerate(like.type.shape)])


@dataclasses.dataclass(frozen=True)
class Shape(Op):
    """The shape of x as an int64 vector; a constant once x's shape is known."""
    family = "host"

    def make_type(self, x: Variable) -> TensorType:
        return TensorType("int64", (x.ndim,))

    def perform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.shape(x), dtype="int64")

    def grad(self, inputs, output, gout):
        return [None]

    def rebuild(self, inputs, ctx):
        (x,) = inputs
        if x.type.is_concrete:
            return constant(np.asarray(x.type.shape, dtype="int64"))
        return self(x)


def shape_of(x: Variable) -> Variable:
    if x.type.is_concrete:
        return constant(np.asarray(x.type.shape, dtype="int64"))
    return Shape()(x)


@dataclasses.dataclass(frozen=True)
class Alloc(Op):
    """Broadcast a value (of rank <= len(shape)) to ``shape`` (ints or Args): T.alloc/fill."""
    shape: tuple
    family = "view"  # a broadcast: read through zero strides

    def make_type(self, value: Variable, *args: Variable) -> TensorType:
        dims = tuple(None if isinstance(d, Arg) else d for d in self.shape)
        if value.ndim > len(dims):
            raise ShapeError(f"alloc: {describe(value)} has more dims than the shape {self.shape}")
        for v, d in zip(value.type.shape[::-1], dims[::-1]):
            if v not in (1, None) and d is not None and v != d:
                raise ShapeError(f"alloc: {describe(value)} does not broadcast to {dims}")
        return TensorType(value.dtype, dims)

    def perform(self, value: np.ndarray, *args) -> np.ndarray:
        shape = tuple(resolve(d, (value,) + args) for d in self.shape)
        try:
            return np.broadcast_to(value, shape)
        except ValueError as e:
            raise ShapeError(f"alloc: a value of shape {np.shape(value)} does not broadcast to {shape}") from e

    def grad(self, inputs, output, gout):
        value = inputs[0]
        g = None
        if value.dtype.startswith("float"):
            from .reduce import reduce_sum
            lead = output.ndim - value.ndim
            g = reduce_sum(gout, tuple(range(lead))) if lead else gout
            from .elemwise import sum_to
            g = sum_to(g, value)
        return [g] + [None] * (len(inputs) - 1)

    def rebuild(self, inputs, ctx):
        shape = tuple(fold(d, inputs) for d in self.shape)
        shape, inputs = renumber(shape, inputs, 1)
        return Alloc(shape)(*inputs)

    def __str__(self) -> str:
        return f"Alloc{{{','.join(map(str, self.shape))}}}"


def alloc(value: Variable, *shape) -> Variable:
    entries, args = symbolic_dims(shape)
    return Alloc(entries)(value, *args)


def broadcast_like(value: Variable, like: Variable) -> Variable:
    """``value`` broadcast to the shape of ``like`` (whose dims may be unknown yet)."""
    dims = [d if d is not None else like.shape[i] for i, d in enumerate(like.type.shape)]
    if value.type.shape == like.type.shape and like.type.is_concrete:
        return value
    return alloc(value, *dims)


@dataclasses.dataclass(frozen=True)
class Arange(Op):
    """T.arange(start, stop, step): entries ints or Args."""
    start: "int | Arg"
    stop: "int | Arg"
    step: "int | Arg"
    dtype: str
    family = "elemwise"

    def make_type(self, *args: Variable) -> TensorType:
        if any(isinstance(v, Arg) for v in (self.start, self.stop, self.step)):
            return TensorType(self.dtype, (None,))
        if self.step == 0:
            raise ShapeError("arange step must not be zero")
        return TensorType(self.dtype, (len(range(self.start, self.stop, self.step)),))

    def perform(self, *args) -> np.ndarray:
        vals = [resolve(v, args) for v in (self.start, self.stop, self.step)]
        return np.arange(*vals, dtype=self.dtype)

    def grad(self, inputs, output, gout):
        return [None] * len(inputs)

    def rebuild(self, inputs, ctx):
        entries = tuple(fold(v, inputs) for v in (self.start, self.stop, self.step))
        entries, inputs = renumber(entries, inputs, 0)
        return Arange(*entries, self.dtype)(*inputs)


def arange(start, stop=None, step=1, dtype: str | None = None) -> Variable:
    """Evenly spaced integers (or floats) ``[start, stop)`` by ``step`` (Theano's ``T.arange``).

    As ``numpy.arange``: ``arange(n)`` is ``0 .. n-1``. The bounds may be symbolic integer
    scalars (``T.arange(x.shape[0])``), which is how rows are indexed per example
    (``p[T.arange(y.shape[0]), y]``).

    Parameters
    ----------
    start : int or integer scalar Variable
        The first value, or the stop when ``stop`` is not given.
    stop : int or integer scalar Variable, optional
    step : int or integer scalar Variable, optional
        Default 1.
    dtype : str, optional
        Default int64.

    Returns
    -------
    Variable
        A vector.
    """
    if stop is None:
        start, stop = 0, start
    entries, args = symbolic_dims([start, stop, step])
    entries = tuple(Arg(e.k - 1) if isinstance(e, Arg) else e for e in entries)
    return Arange(*entries, check_dtype(dtype or "int64"))(*args)


@dataclasses.dataclass(frozen=True)
class Concatenate(Op):
    axis: int
    family = "concat"

    def make_type(self, *xs: Variable) -> TensorType:
        if not xs:
            raise ShapeError("concatenate needs at least one tensor")
        ndim = xs[0].ndim
        if any(x.ndim != ndim for x in xs) or not 0 <= self.axis < ndim:
            raise ShapeError(f"concatenate along axis {self.axis} of " + ", ".join(describe(x) for x in xs))
        dtype = xs[0].dtype
        if any(x.dtype != dtype for x in xs):
            from ..errors import DTypeError
            raise DTypeError("concatenate of mixed dtypes: " + ", ".join(describe(x) for x in xs))
        shape = []
        for a in range(ndim):
            dims = [x.type.shape[a] for x in xs]
            if a == self.axis:
                shape.append(None if None in dims else sum(dims))
            else:
                known = {d for d in dims if d is not None}
                if len(known) > 1:
                    raise ShapeError(f"concatenate along axis {self.axis}: axis {a} differs: "
                                     + ", ".join(describe(x) for x in xs))
                shape.append(known.pop() if known else None)
        return TensorType(dtype, tuple(shape))

    def perform(self, *xs: np.ndarray) -> np.ndarray:
        return np.concatenate(xs, axis=self.axis)

    def grad(self, inputs, output, gout):
        from .index import subtensor
        # Each gradient must keep its input's static shape: a length-1 axis (stack's, or a
        # row appended with dimshuffle('x', 0)) must stay known as 1 for the DimShuffle
        # gradient to drop it. Bounds stay Python ints while the lengths are known; after a
        # symbolic bound the slice's length is unknown, and a reshape restores the known dims.
        grads, start = [], 0
        for x in inputs:
            n = x.type.shape[self.axis]
            stop = start + (n if n is not None else x.shape[self.axis])
            idx = [slice(None)] * self.axis + [slice(start, stop)]
            g = None
            if x.dtype.startswith("float"):
                g = subtensor(gout, tuple(idx))
                if g.type.shape != x.type.shape:
                    g = reshape_like(g, x)
            grads.append(g)
            start = stop
        return grads

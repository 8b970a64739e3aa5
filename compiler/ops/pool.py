"""2-D pooling over the last two axes (Theano's ``theano.tensor.signal.pool`` semantics).

Every op pools the last two axes of a tensor of rank >= 2; leading axes are a batch. The
geometry (``ws`` window, ``stride``, ``pad`` of zeros on both sides, ``ignore_border``) is the
op's static parameters, so the output shape follows from the input's:

    ignore_border:      max(0, (n + 2 pad - ws) // stride + 1)    (n // stride when stride == ws)
    not ignore_border:  (n - 1) // stride + 1                        when stride >= ws
                        max(0, (n - 1 - ws) // stride + 1) + 1       otherwise  (pad must be 0)

Window ``r`` covers padded rows ``[r*stride, min(r*stride + ws, n + 2 pad))``. ``max`` and
``sum`` and ``average_exc_pad`` use only its rows inside the input; ``average_inc_pad``
divides by the size of the whole (padded) window, zeros included.

The gradients, each an op of this family (kernels/pool.cu.j2 computes each element of every
one by a gather, so no atomics): ``MaxPoolGrad`` gives an input element the output gradient
of every window containing it whose max it equals (Theano's MaxPoolGrad: all tied elements
get it); ``AveragePoolGrad`` spreads each window's gradient (divided by its count for the
averages); ``MaxPoolGradGrad``, the transpose of MaxPoolGrad in its gradient argument, sums
over a window the values at the elements equal to its max (Theano's takes one of them; they
differ only at ties). ``perform`` is plain NumPy looping over windows, Theano's formulation,
independent of the kernels' gather.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DTypeError, ShapeError, ThetaError, describe
from ..graph import Op, Variable
from ..types import TensorType, is_float

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")


class PoolArgumentError(ThetaError, ValueError):
    """A pooling parameter out of its domain (an unknown mode)."""


def out_size(n: int, ws: int, stride: int, pad: int, ignore_border: bool) -> int:
    """Theano's number of windows along an axis of length ``n`` (see the module doc)."""
    padded = n + 2 * pad
    if ignore_border:
        return padded // stride if ws == stride else max(0, (padded - ws) // stride + 1)
    if stride >= ws:
        return (padded - 1) // stride + 1
    return max(0, (padded - 1 - ws) // stride + 1) + 1


@dataclasses.dataclass(frozen=True)
class PoolBase(Op):
    """Geometry shared by the pooling ops; checked once, when the op is made."""
    ws: tuple
    stride: tuple
    pad: tuple
    ignore_border: bool
    family = "pool"

    def __post_init__(self) -> None:
        for what, v in (("ws", self.ws), ("stride", self.stride), ("pad", self.pad)):
            if len(v) != 2 or not all(isinstance(d, (int, np.integer)) for d in v):
                raise ShapeError(f"pool: {what} must be two integers, got {v!r}")
        if min(self.ws) < 1 or min(self.stride) < 1:
            raise ShapeError(f"pool: window {self.ws} and stride {self.stride} must be positive")
        if min(self.pad) < 0:
            raise ShapeError(f"pool: padding {self.pad} must not be negative")
        if any(p >= w for p, w in zip(self.pad, self.ws)):
            raise ShapeError(f"pool: padding {self.pad} must be smaller than the window {self.ws} "
                             "(a window of padding alone has no value; Theano refuses it too)")
        if self.pad != (0, 0) and not self.ignore_border:
            raise ShapeError(f"pool: padding {self.pad} needs ignore_border=True (as in Theano)")

    @property
    def geometry(self) -> tuple:
        return (self.ws, self.stride, self.pad, self.ignore_border)

    def out_shape(self, x: Variable) -> tuple:
        """The pooled shape of ``x`` (None where x's dim is unknown); raises ShapeError naming
        ``x`` when a window does not fit."""
        if x.ndim < 2:
            raise ShapeError(f"{self} pools the last two axes of a tensor of rank >= 2, got {describe(x)}")
        dims = []
        for k, n in enumerate(x.type.shape[-2:]):
            if n is None:
                dims.append(None)
                continue
            if self.ignore_border and self.ws[k] > n + 2 * self.pad[k]:
                raise ShapeError(f"{self}: no {self.ws[0]}x{self.ws[1]} window fits in {describe(x)}: axis "
                                 f"{x.ndim - 2 + k} has {n} elements, {n + 2 * self.pad[k]} padded, fewer "
                                 f"than the window (ignore_border=True)")
            dims.append(out_size(n, self.ws[k], self.stride[k], self.pad[k], self.ignore_border))
        return tuple(x.type.shape[:-2]) + tuple(dims)

    def windows(self, n: int, axis: int, exclude_pad: bool) -> list:
        """(start, stop) of each window along ``axis`` (0: rows, 1: cols) in padded coordinates,
        clipped to the input itself when ``exclude_pad`` (Theano's Pool.perform)."""
        ws, st, pad = self.ws[axis], self.stride[axis], self.pad[axis]
        out = []
        for r in range(out_size(n, ws, st, pad, self.ignore_border)):
            start, stop = r * st, min(r * st + ws, n + 2 * pad)
            if exclude_pad:
                start, stop = max(start, pad), min(stop, n + pad)
            out.append((start, stop))
        return out

    def padded(self, x: np.ndarray) -> np.ndarray:
        width = [(0, 0)] * (x.ndim - 2) + [(self.pad[0], self.pad[0]), (self.pad[1], self.pad[1])]
        return np.pad(x, width) if self.pad != (0, 0) else x

    def unpadded(self, y: np.ndarray, shape: tuple) -> np.ndarray:
        return y[..., self.pad[0]:self.pad[0] + shape[-2], self.pad[1]:self.pad[1] + shape[-1]]

    def _check_same(self, what: str, v: Variable, shape: tuple) -> None:
        if v.ndim != len(shape) or any(a is not None and b is not None and a != b for a, b in zip(v.type.shape, shape)):
            raise ShapeError(f"{self}: {what} {describe(v)} should have shape "
                             f"({', '.join('?' if d is None else str(d) for d in shape)})")

    def __str__(self) -> str:
        return (f"{type(self).__name__}{{ws={self.ws}, stride={self.stride}, pad={self.pad}, "
                f"ignore_border={self.ignore_border}}}")


@dataclasses.dataclass(frozen=True)
class Pool(PoolBase):
    """The pooling op behind :func:`pool_2d` (Theano's ``theano.tensor.signal.pool.Pool``).

    Applied to a tensor (``Pool(ws, stride, pad, ignore_border, mode)(x)``) it pools the last two
    axes; :func:`pool_2d` checks the arguments and is the usual entry point.

    Parameters
    ----------
    ws : pair of int
        Window (rows, cols).
    stride : pair of int
        Distance between windows.
    pad : pair of int
        Zero padding on both sides of rows and columns.
    ignore_border : bool
        Only whole windows (True) or a partial window at the end of each axis too.
    mode : {'max', 'sum', 'average_inc_pad', 'average_exc_pad'}

    Raises
    ------
    PoolArgumentError
        An unknown mode.
    """
    mode: str = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in MODES:
            raise PoolArgumentError(f"pool mode must be one of {', '.join(MODES)}; got {self.mode!r}")

    def make_type(self, x: Variable) -> TensorType:
        if self.mode.startswith("average") and not is_float(x.dtype):
            raise DTypeError(f"{self}: averaging needs a float input, got {describe(x)}")
        if x.dtype == "bool":
            raise DTypeError(f"{self}: cannot pool booleans, got {describe(x)}")
        return TensorType(x.dtype, self.out_shape(x))

    def perform(self, x: np.ndarray) -> np.ndarray:
        inc = self.mode == "average_inc_pad"
        y = self.padded(x)
        rows = self.windows(x.shape[-2], 0, exclude_pad=not inc)
        cols = self.windows(x.shape[-1], 1, exclude_pad=not inc)
        out = np.empty(x.shape[:-2] + (len(rows), len(cols)), dtype=x.dtype)
        for r, (r0, r1) in enumerate(rows):
            for c, (c0, c1) in enumerate(cols):
                win = y[..., r0:r1, c0:c1]
                if self.mode == "max":
                    out[..., r, c] = win.max(axis=(-2, -1))
                elif self.mode == "sum":
                    out[..., r, c] = win.sum(axis=(-2, -1), dtype=x.dtype)
                else:
                    out[..., r, c] = win.sum(axis=(-2, -1), dtype=x.dtype) / x.dtype.type((r1 - r0) * (c1 - c0))
        return out

    def grad(self, inputs, output, gout):
        (x,) = inputs
        if not is_float(x.dtype):
            return [None]
        if self.mode == "max":
            return [MaxPoolGrad(*self.geometry)(x, output, gout)]
        return [AveragePoolGrad(*self.geometry, mode=self.mode)(x, gout)]

    def __str__(self) -> str:
        return super().__str__()[:-1] + f", mode={self.mode}}}"


@dataclasses.dataclass(frozen=True)
class MaxPoolGrad(PoolBase):
    """The gradient of max pooling: ``(x, maxout, gz) -> gx``.

    Every element equal to its window's maximum receives the window's ``gz`` (as Theano's
    ``MaxPoolGrad``; ties all receive it). On the kernel backends it gathers from the windows
    holding each input element, with no atomics.

    Parameters
    ----------
    ws, stride, pad : pair of int
    ignore_border : bool
        As for :class:`Pool`.
    """

    def make_type(self, x: Variable, maxout: Variable, gz: Variable) -> TensorType:
        out = self.out_shape(x)
        self._check_same("maxout", maxout, out)
        self._check_same("gz", gz, out)
        return TensorType(x.dtype, x.type.shape)

    def perform(self, x: np.ndarray, maxout: np.ndarray, gz: np.ndarray) -> np.ndarray:
        y = self.padded(x)
        gx = np.zeros(y.shape, dtype=x.dtype)
        rows, cols = self.windows(x.shape[-2], 0, False), self.windows(x.shape[-1], 1, False)
        for r, (r0, r1) in enumerate(rows):
            for c, (c0, c1) in enumerate(cols):
                hit = y[..., r0:r1, c0:c1] == maxout[..., r, c, None, None]
                gx[..., r0:r1, c0:c1] += np.where(hit, gz[..., r, c, None, None], 0).astype(x.dtype)
        return np.ascontiguousarray(self.unpadded(gx, x.shape))

    def grad(self, inputs, output, gout):
        x, maxout, gz = inputs
        # piecewise constant in x and maxout (zero almost everywhere), linear in gz
        return [None, None, MaxPoolGradGrad(*self.geometry)(x, maxout, gout)]


@dataclasses.dataclass(frozen=True)
class MaxPoolGradGrad(PoolBase):
    """(x, maxout, ggx) -> ggz: per window, the sum of ggx where x equals the window's max."""

    def make_type(self, x: Variable, maxout: Variable, ggx: Variable) -> TensorType:
        out = self.out_shape(x)
        self._check_same("maxout", maxout, out)
        self._check_same("ggx", ggx, x.type.shape)
        return TensorType(x.dtype, out)

    def perform(self, x: np.ndarray, maxout: np.ndarray, ggx: np.ndarray) -> np.ndarray:
        y, gy = self.padded(x), self.padded(ggx)
        rows, cols = self.windows(x.shape[-2], 0, False), self.windows(x.shape[-1], 1, False)
        out = np.empty(maxout.shape, dtype=x.dtype)
        for r, (r0, r1) in enumerate(rows):
            for c, (c0, c1) in enumerate(cols):
                hit = y[..., r0:r1, c0:c1] == maxout[..., r, c, None, None]
                out[..., r, c] = np.where(hit, gy[..., r0:r1, c0:c1], 0).sum(axis=(-2, -1), dtype=x.dtype)
        return out

    def grad(self, inputs, output, gout):
        x, maxout, ggx = inputs
        return [None, None, MaxPoolGrad(*self.geometry)(x, maxout, gout)]


@dataclasses.dataclass(frozen=True)
class AveragePoolGrad(PoolBase):
    """The gradient of sum and average pooling: ``(x, gz) -> gx`` (``x`` gives only the shape).

    Parameters
    ----------
    ws, stride, pad : pair of int
    ignore_border : bool
        As for :class:`Pool`.
    mode : {'sum', 'average_inc_pad', 'average_exc_pad'}
    """
    mode: str = "sum"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in MODES[1:]:
            raise PoolArgumentError(f"AveragePoolGrad mode must be one of {', '.join(MODES[1:])}; got {self.mode!r}")

    def make_type(self, x: Variable, gz: Variable) -> TensorType:
        self._check_same("gz", gz, self.out_shape(x))
        return TensorType(gz.dtype, x.type.shape)

    def perform(self, x: np.ndarray, gz: np.ndarray) -> np.ndarray:
        inc = self.mode == "average_inc_pad"
        gx = np.zeros(self.padded(np.zeros(x.shape, dtype=gz.dtype)).shape, dtype=gz.dtype)
        rows = self.windows(x.shape[-2], 0, exclude_pad=not inc)
        cols = self.windows(x.shape[-1], 1, exclude_pad=not inc)
        for r, (r0, r1) in enumerate(rows):
            for c, (c0, c1) in enumerate(cols):
                val = gz[..., r, c, None, None]
                if self.mode != "sum":
                    val = val / gz.dtype.type((r1 - r0) * (c1 - c0))
                gx[..., r0:r1, c0:c1] += val
        return np.ascontiguousarray(self.unpadded(gx, x.shape))

    def grad(self, inputs, output, gout):
        # linear in gz; its transpose is the forward pooling of the same mode
        return [None, Pool(*self.geometry, mode=self.mode)(gout)]

    def __str__(self) -> str:
        return super().__str__()[:-1] + f", mode={self.mode}}}"

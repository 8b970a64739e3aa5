"""Neural-network row ops: softmax, log-softmax, and softmax-crossentropy with integer labels.

Each works on the last axis of a matrix (Theano's convention). They lower to the row-softmax
kernel family. ``CrossentropySoftmaxInt`` is what the stabilize pass turns
``-log(softmax(x))[arange(n), y]`` into; its gradient is its own op, softmax minus one-hot.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import tolerance
from ..errors import ShapeError, describe
from ..graph import Op, Variable
from ..types import TensorType, is_float, is_int


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=-1, keepdims=True)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True, dtype=np.float64)).astype(x.dtype)


def _row_parts(x: np.ndarray, bx) -> tuple:
    """The pieces of the softmax family's error bounds (compiler/tolerance.py), in float64:
    the shifted row z = x - max, log(sum(exp(z))), the softmax, the perturbation of every value
    (its bound, plus the row's largest bound: the max and the sum move with every value) and the
    relative error a correct kernel makes in exp(z - logs): a few ulps for exp itself, and the
    rounding of its argument (z, logs) and of the sum's terms (sum(sm |z|)), each a few ulps of
    those magnitudes; the sum itself is accumulated in float64 on both sides."""
    e = tolerance.eps(x.dtype)
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        m = np.max(x64, axis=-1, keepdims=True)
        z = x64 - m
        logs = np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
        sm = np.exp(z - logs)
        za = np.where(np.isfinite(z), np.abs(z), 0.0)
        la = np.where(np.isfinite(logs), np.abs(logs), 0.0)
    b = np.broadcast_to(np.asarray(bx, dtype=np.float64), x.shape)
    moved = b + (np.max(b, axis=-1, keepdims=True) if b.size else 0.0)
    rel = (e * (tolerance.ULPS_LIBM + tolerance.ULPS_BASIC * (za + la + np.sum(sm * za, axis=-1, keepdims=True)))
           + tolerance.growth(x.shape[-1]) * tolerance.eps("float64"))    # the sum is accumulated in float64
    return z, logs, sm, moved, rel


def _check_matrix(op, x: Variable) -> None:
    if x.ndim != 2 or not is_float(x.dtype):
        raise ShapeError(f"{op} needs a float matrix (rows of logits), got {describe(x)}")


@dataclasses.dataclass(frozen=True)
class Softmax(Op):
    family = "softmax"

    def make_type(self, x: Variable) -> TensorType:
        _check_matrix(self, x)
        return x.type

    def perform(self, x: np.ndarray) -> np.ndarray:
        return np.exp(_np_log_softmax(x)).astype(x.dtype)

    def error_bound(self, args, bounds, out) -> np.ndarray:
        """DebugMode's bound: relative to each value (d sm_i = sm_i (dx_i - sum_j sm_j dx_j))."""
        _, _, sm, moved, rel = _row_parts(args[0], bounds[0])
        return sm * (moved + rel)

    def grad(self, inputs, output, gout):
        return [SoftmaxGrad()(gout, output)]


@dataclasses.dataclass(frozen=True)
class SoftmaxGrad(Op):
    """(gz - sum(gz * sm, axis=-1)) * sm, one row pass."""
    family = "softmax"

    def make_type(self, gz: Variable, sm: Variable) -> TensorType:
        return sm.type

    def perform(self, gz: np.ndarray, sm: np.ndarray) -> np.ndarray:
        dot = np.sum(gz * sm, axis=-1, keepdims=True, dtype=np.float64).astype(sm.dtype)
        return ((gz - dot) * sm).astype(sm.dtype)

    def error_bound(self, args, bounds, out) -> np.ndarray:
        """DebugMode's bound: dot = sum(gz sm) is as exact as sum(|gz sm|); (gz - dot) as
        |gz| + |dot|; the product moves with both factors."""
        shape = np.broadcast_shapes(np.shape(args[0]), np.shape(args[1]))   # gz may be a broadcast row
        gz, sm, bg, bs = (np.broadcast_to(np.asarray(a, dtype=np.float64), shape) for a in list(args) + list(bounds))
        e, k = tolerance.eps(args[1].dtype), gz.shape[-1]
        dot = np.sum(gz * sm, axis=-1, keepdims=True)
        b_dot = (np.sum(np.abs(gz) * bs + bg * np.abs(sm), axis=-1, keepdims=True)
                 + e * (tolerance.ULPS_BASIC + tolerance.growth(k)) * np.sum(np.abs(gz * sm), axis=-1, keepdims=True))
        diff = gz - dot
        return ((bg + b_dot + tolerance.ULPS_BASIC * e * (np.abs(gz) + np.abs(dot))) * np.abs(sm)
                + np.abs(diff) * bs + tolerance.ULPS_BASIC * e * np.abs(diff * sm))

    def grad(self, inputs, output, gout):
        gz, sm = inputs
        from ..tensor import basic as T
        # d/dgz: SoftmaxGrad is linear in gz. d/dsm by the product rule.
        g_gz = SoftmaxGrad()(gout, sm)
        dot = T.sum(gz * sm, axis=-1, keepdims=True)
        g_sm = gout * (gz - dot) - T.sum(gout * sm, axis=-1, keepdims=True) * gz
        return [g_gz, g_sm]


@dataclasses.dataclass(frozen=True)
class LogSoftmax(Op):
    family = "softmax"

    def make_type(self, x: Variable) -> TensorType:
        _check_matrix(self, x)
        return x.type

    def perform(self, x: np.ndarray) -> np.ndarray:
        return _np_log_softmax(x)

    def error_bound(self, args, bounds, out) -> np.ndarray:
        """DebugMode's bound: z - logs moves with z and logs; a few ulps of each."""
        z, logs, _, moved, rel = _row_parts(args[0], bounds[0])
        with np.errstate(invalid="ignore"):
            return moved + rel + tolerance.ULPS_BASIC * tolerance.eps(args[0].dtype) * np.abs(z - logs)

    def grad(self, inputs, output, gout):
        from ..tensor import basic as T
        sm = T.exp(output)
        return [gout - sm * T.sum(gout, axis=-1, keepdims=True)]


@dataclasses.dataclass(frozen=True)
class CrossentropySoftmaxInt(Op):
    """loss[i] = logsumexp(x[i]) - x[i, y[i]]  (= -log softmax(x)[i, y[i]])."""
    family = "softmax"

    def make_type(self, x: Variable, y: Variable) -> TensorType:
        _check_matrix(self, x)
        if y.ndim != 1 or not is_int(y.dtype):
            raise ShapeError(f"{self} needs integer labels of rank 1, got {describe(y)}")
        n, m = x.type.shape[0], y.type.shape[0]
        if n is not None and m is not None and n != m:
            raise ShapeError(f"{self}: {describe(x)} has {n} rows but labels {describe(y)} have {m}")
        return TensorType(x.dtype, (n if n is not None else m,))

    def perform(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        _check_labels(x, y)
        return -_np_log_softmax(x)[np.arange(x.shape[0]), y]

    def error_bound(self, args, bounds, out) -> np.ndarray:
        """DebugMode's bound: LogSoftmax's at the label."""
        x, y = args
        if not x.shape[0]:
            return np.zeros(0)
        at = (np.arange(x.shape[0]), np.asarray(y))
        z, logs, _, moved, rel = _row_parts(x, bounds[0])
        rel = np.broadcast_to(rel, x.shape)
        with np.errstate(invalid="ignore"):
            return moved[at] + rel[at] + tolerance.ULPS_BASIC * tolerance.eps(x.dtype) * np.abs(z - logs)[at]

    def grad(self, inputs, output, gout):
        x, y = inputs
        return [CrossentropySoftmaxIntGrad()(gout, x, y), None]


@dataclasses.dataclass(frozen=True)
class CrossentropySoftmaxIntGrad(Op):
    """gx = gz[:, None] * (softmax(x) - onehot(y)), one row pass."""
    family = "softmax"

    def make_type(self, gz: Variable, x: Variable, y: Variable) -> TensorType:
        return x.type

    def perform(self, gz: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        _check_labels(x, y)
        g = np.exp(_np_log_softmax(x))
        g[np.arange(x.shape[0]), y] -= 1
        return (g * gz[:, None]).astype(x.dtype)

    def error_bound(self, args, bounds, out) -> np.ndarray:
        """DebugMode's bound: (sm - onehot) moves with the softmax (and is as exact as sm + 1 at
        the label); the product with gz moves with both factors."""
        gz, x, y = args
        _, _, sm, moved, rel = _row_parts(x, bounds[1])
        onehot = np.zeros(x.shape)
        onehot[np.arange(x.shape[0]), np.asarray(y)] = 1.0
        g = np.abs(np.asarray(gz, dtype=np.float64))[:, None]
        bg = np.broadcast_to(np.asarray(bounds[0], dtype=np.float64), gz.shape)[:, None]
        e = tolerance.eps(x.dtype)
        return (np.abs(sm - onehot) * (bg + tolerance.ULPS_BASIC * e * g)
                + g * (sm * (moved + rel) + tolerance.ULPS_BASIC * e * (sm + onehot)))

    def grad(self, inputs, output, gout):
        gz, x, y = inputs
        from ..tensor import basic as T
        sm = Softmax()(x)
        # The op is linear in gz: d/dgz is softmax(x) - onehot(y), i.e. the op at gz = 1
        # (recovering it as output / gz would give 0 for rows where gz is 0).
        sm_minus_onehot = CrossentropySoftmaxIntGrad()(T.ones_like(gz), x, y)
        g_gz = T.sum(gout * sm_minus_onehot, axis=1)
        g_x = SoftmaxGrad()(gout * gz.dimshuffle(0, "x"), sm)
        return [g_gz, g_x, None]


def _check_labels(x: np.ndarray, y: np.ndarray) -> None:
    if y.shape[0] != x.shape[0]:
        raise ShapeError(f"crossentropy: {x.shape[0]} rows of logits but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() >= x.shape[1]):
        from ..errors import IndexingError
        raise IndexingError(f"crossentropy: labels must lie in [0, {x.shape[1]}), got range "
                            f"[{y.min()}, {y.max()}]")

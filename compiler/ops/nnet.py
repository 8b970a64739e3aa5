"""Neural-network row ops: softmax, log-softmax, and softmax-crossentropy with integer labels.

Each works on the last axis of a matrix (Theano's convention). They lower to the row-softmax
kernel family. ``CrossentropySoftmaxInt`` is what the stabilize pass turns
``-log(softmax(x))[arange(n), y]`` into; its gradient is its own op, softmax minus one-hot.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ShapeError, describe
from ..graph import Op, Variable
from ..types import TensorType, is_float, is_int


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=-1, keepdims=True)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True, dtype=np.float64)).astype(x.dtype)


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

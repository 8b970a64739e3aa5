"""T.nnet: activations, softmax and the crossentropies."""
from __future__ import annotations

from ..graph import Variable
from ..ops import scalar as S
from ..ops.nnet import CrossentropySoftmaxInt, LogSoftmax, Softmax
from ..types import is_int
from . import basic as T

sigmoid = T.sigmoid
softplus = T.softplus


def relu(x, alpha: float = 0) -> Variable:
    if alpha == 0:
        return T.elemwise(S.relu, x, name="relu")
    return T.elemwise(lambda v: S.relu(v) - alpha * S.relu(-v), x, name="leaky_relu")


def elu(x, alpha: float = 1.0) -> Variable:
    return T.elemwise(lambda v: S.switch(S.gt(v, 0), v, alpha * S.expm1(v)), x, name="elu")


def _rowwise(op, x) -> Variable:
    x = T.as_tensor_variable(x)
    if x.ndim == 1:
        return op(x.dimshuffle("x", 0))[0]
    return op(x)


def softmax(x) -> Variable:
    return _rowwise(Softmax(), x)


def log_softmax(x) -> Variable:
    return _rowwise(LogSoftmax(), x)


logsoftmax = log_softmax


def categorical_crossentropy(coding_dist, true_dist) -> Variable:
    """-sum(true * log(coding), axis=1), or -log(coding[i, true[i]]) for integer labels."""
    p = T.as_tensor_variable(coding_dist)
    t = T.as_tensor_variable(true_dist)
    if is_int(t.dtype):
        return -T.log(p[T.arange(t.shape[0]), t])
    return -T.sum(t * T.log(p), axis=p.ndim - 1)


def crossentropy_softmax_int(logits, labels) -> Variable:
    """The stable fused form: -log(softmax(logits))[i, labels[i]]."""
    return CrossentropySoftmaxInt()(T.as_tensor_variable(logits), T.as_tensor_variable(labels))


def binary_crossentropy(output, target) -> Variable:
    return -(target * T.log(output) + (1 - target) * T.log(1 - output))


def sigmoid_binary_crossentropy(logits, target) -> Variable:
    """binary_crossentropy(sigmoid(logits), target), computed stably."""
    return target * T.softplus(-logits) + (1 - target) * T.softplus(logits)

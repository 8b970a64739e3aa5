"""T.nnet: activations, softmax and the crossentropies."""
from __future__ import annotations

import numbers
import sys

from ..errors import ShapeError, describe
from ..graph import Variable
from ..ops import scalar as S
from ..ops.nnet import CrossentropySoftmaxInt, LogSoftmax, Softmax
from ..types import is_int
from . import basic as T
from . import bn  # T.nnet.bn, Theano's module
from .conv import conv2d  # noqa: F401  (T.nnet.conv2d)

# nnet is a module, not a package: registering bn under its dotted name lets
# `from theta.tensor.nnet.bn import batch_normalization_train` work as in Theano
sys.modules[__name__ + ".bn"] = bn

__all__ = ["sigmoid", "softplus", "relu", "elu", "selu", "hard_sigmoid", "ultra_fast_sigmoid", "softsign", "maxout",
           "h_softmax", "softmax", "log_softmax", "logsoftmax", "categorical_crossentropy", "crossentropy_softmax_int",
           "binary_crossentropy", "sigmoid_binary_crossentropy", "conv2d", "bn", "SELU_ALPHA", "SELU_SCALE"]

sigmoid = T.sigmoid
softplus = T.softplus


def _is_zero_number(alpha) -> bool:
    return isinstance(alpha, numbers.Number) and not isinstance(alpha, Variable) and alpha == 0


def relu(x, alpha=0) -> Variable:
    """Rectifier: ``x`` where ``x > 0``, else ``alpha * x`` (Theano's ``T.nnet.relu``).

    Parameters
    ----------
    x : tensor
    alpha : number or tensor, optional
        Slope of the negative part (0: plain ReLU; a tensor broadcasts against ``x`` and gets
        a gradient too).

    Returns
    -------
    Variable
    """
    if _is_zero_number(alpha):
        return T.elemwise(S.relu, x, name="relu")
    if isinstance(alpha, numbers.Number):
        return T.elemwise(lambda v: S.relu(v) - alpha * S.relu(-v), x, name="leaky_relu")
    return T.elemwise(lambda v, a: S.relu(v) - a * S.relu(-v), x, alpha, name="leaky_relu")


def elu(x, alpha=1.0) -> Variable:
    """Exponential linear unit: ``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Parameters
    ----------
    x : tensor
    alpha : number or tensor, optional

    Returns
    -------
    Variable
    """
    if isinstance(alpha, numbers.Number):
        return T.elemwise(lambda v: S.switch(S.gt(v, 0), v, alpha * S.expm1(v)), x, name="elu")
    return T.elemwise(lambda v, a: S.switch(S.gt(v, 0), v, a * S.expm1(v)), x, alpha, name="elu")


# Klambauer et al. (2017), the constants Theano uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(x) -> Variable:
    """Scaled exponential linear unit: ``scale * elu(x, alpha)`` with the self-normalizing
    constants (``SELU_SCALE``, ``SELU_ALPHA``).

    Parameters
    ----------
    x : tensor

    Returns
    -------
    Variable
    """
    return T.elemwise(lambda v: SELU_SCALE * S.switch(S.gt(v, 0), v, SELU_ALPHA * S.expm1(v)),
                      x, name="selu", float_inputs=True)


def hard_sigmoid(x) -> Variable:
    """Piecewise-linear sigmoid, Theano's: ``clip(0.2 * x + 0.5, 0, 1)``.

    Parameters
    ----------
    x : tensor

    Returns
    -------
    Variable
        In ``x``'s float dtype (floatX for integer ``x``); the gradient is 0.2 inside
        ``(-2.5, 2.5)`` and at its ends (as Theano's clip passes it at its bounds), else 0.
    """
    return T.elemwise(lambda v: S.minimum(S.maximum(0.2 * v + 0.5, 0), 1), x,
                      name="hard_sigmoid", float_inputs=True)


# Theano's ultra_fast_sigmoid (theano/tensor/nnet/sigm.py, UltraFastScalarSigmoid): with
# h = x / 2, a piecewise approximation t(h) of tanh(h) for h >= 0,
#     t(h) = 1.5 h / (1 + h)                                  h < 1.7
#            0.935409070603099 + 0.0458812946797165 (h - 1.7)  1.7 <= h < 3
#            0.99505475368673                                  h >= 3
# mirrored for h < 0 (t(h) = -t(-h)), and the result 0.5 * (t + 1).
_UFS_A, _UFS_B, _UFS_C = 0.935409070603099, 0.0458812946797165, 0.99505475368673


def ultra_fast_sigmoid(x) -> Variable:
    """Theano's fast piecewise approximation of the sigmoid (error below 0.03).

    With ``h = x / 2``: ``0.5 * (t(h) + 1)`` where ``t`` approximates tanh by
    ``1.5 h / (1 + |h|)`` for ``|h| < 1.7``, by ``sgn(h) (0.935409070603099 +
    0.0458812946797165 (|h| - 1.7))`` for ``|h| < 3``, and by ``0.99505475368673 sgn(h)``
    beyond. Theano gives this op no gradient; here its gradient is the exact derivative of
    the piecewise function (0 beyond ``|x| = 6``).

    Parameters
    ----------
    x : tensor

    Returns
    -------
    Variable
    """
    def fn(v):
        # Written over |h| and sgn(h) rather than as Theano's two mirrored branches: every
        # branch is then finite at every x, so the derivative of the unselected branches (which
        # the switch multiplies by 0) never is inf (0 * inf would make the gradient NaN at x = 2).
        h = v / 2
        a = S.abs_(h)
        t = S.switch(S.lt(a, 1.7), 1.5 * h / (1 + a),
                     S.switch(S.lt(a, 3), S.sgn(h) * (_UFS_A + _UFS_B * (a - 1.7)), _UFS_C * S.sgn(h)))
        return (t + 1) / 2
    return T.elemwise(fn, x, name="ultra_fast_sigmoid", float_inputs=True)


def softsign(x) -> Variable:
    """``x / (1 + |x|)``.

    Parameters
    ----------
    x : tensor

    Returns
    -------
    Variable
    """
    return T.elemwise(lambda v: v / (1 + S.abs_(v)), x, name="softsign", float_inputs=True)


def maxout(x, pieces: int) -> Variable:
    """Maxout units: the maximum over groups of ``pieces`` consecutive features.

    The last axis of ``x`` (length ``k * pieces``) is reshaped to ``(k, pieces)`` and the
    maximum taken over ``pieces``: for ``x`` of shape ``(n, k * pieces)`` the result has shape
    ``(n, k)``, unit ``j`` being the max of features ``j*pieces .. j*pieces + pieces - 1``.
    The reshape of a contiguous value is a view, so on the kernel backends a dense layer
    ``maxout(dot(h, W) + b, p)`` is a GEMM (bias in its epilogue) and one reduction.

    Parameters
    ----------
    x : tensor of rank >= 1
    pieces : int
        Group size; must divide the length of the last axis.

    Returns
    -------
    Variable
    """
    x = T.as_tensor_variable(x)
    if not isinstance(pieces, numbers.Integral) or pieces < 1:
        raise ShapeError(f"maxout needs a positive integer number of pieces, got {pieces!r}")
    if x.ndim < 1:
        raise ShapeError(f"maxout needs a tensor of rank >= 1, got {describe(x)}")
    last = x.type.shape[-1]
    if last is not None and last % pieces:
        raise ShapeError(f"maxout: the last axis of {describe(x)} is not a multiple of {pieces} pieces")
    lead = [d if d is not None else x.shape[i] for i, d in enumerate(x.type.shape[:-1])]
    return T.max(T.reshape(x, lead + [-1, pieces]), axis=-1)


def h_softmax(x, batch_size, n_outputs: int, n_classes: int, n_outputs_per_class: int,
              W1, b1, W2, b2, target=None) -> Variable:
    """Two-level hierarchical softmax (Theano's ``T.nnet.h_softmax``).

    Output ``o`` belongs to class ``o // n_outputs_per_class``; its probability is
    ``softmax(x W1 + b1)[class] * softmax(x W2[class] + b2[class])[o % n_outputs_per_class]``.

    Parameters
    ----------
    x : matrix (batch_size, n_in)
    batch_size : int or integer scalar
    n_outputs : int
        Outputs kept (``n_classes * n_outputs_per_class`` may be larger: the rest are dropped).
    n_classes, n_outputs_per_class : int
    W1 : matrix (n_in, n_classes)
    b1 : vector (n_classes,)
    W2 : tensor3 (n_classes, n_in, n_outputs_per_class)
    b2 : matrix (n_classes, n_outputs_per_class)
    target : integer tensor (batch_size,) or (batch_size, 1), optional
        When given, only each row's target output is computed.

    Returns
    -------
    Variable
        ``(batch_size, n_outputs)`` probabilities, or ``(batch_size,)`` (the target's
        probability per row, as Theano's code returns) when ``target`` is given.
    """
    x, W1, b1, W2, b2 = (T.as_tensor_variable(v) for v in (x, W1, b1, W2, b2))
    if n_classes * n_outputs_per_class < n_outputs:
        raise ShapeError(f"h_softmax: {n_classes} classes of {n_outputs_per_class} outputs cannot hold "
                         f"{n_outputs} outputs")
    class_probs = softmax(T.dot(x, W1) + b1)
    n_in = W2.type.shape[1] if W2.type.shape[1] is not None else W2.shape[1]
    if target is None:
        # every class's second-level logits in one GEMM: x (b, n_in) . W2 as (n_in, C * P)
        w2_flat = T.reshape(W2.dimshuffle(1, 0, 2), (n_in, n_classes * n_outputs_per_class))
        logits = T.dot(x, w2_flat) + T.reshape(b2, (n_classes * n_outputs_per_class,))
        within = softmax(T.reshape(logits, (-1, n_outputs_per_class)))
        probs = T.reshape(within, (batch_size, n_classes, n_outputs_per_class)) * class_probs.dimshuffle(0, 1, "x")
        return T.reshape(probs, (batch_size, n_classes * n_outputs_per_class))[:, :n_outputs]
    target = T.flatten(T.as_tensor_variable(target))
    target_classes = target // n_outputs_per_class
    target_in_class = target % n_outputs_per_class
    rows = T.arange(batch_size)
    # each row's class block of W2 (a gather), then one small product per row
    logits = T.batched_dot(x.dimshuffle(0, "x", 1), W2[target_classes])[:, 0, :] + b2[target_classes]
    within = softmax(logits)
    return class_probs[rows, target_classes] * within[rows, target_in_class]


def _rowwise(op, x) -> Variable:
    x = T.as_tensor_variable(x)
    if x.ndim == 1:
        return op(x.dimshuffle("x", 0))[0]
    return op(x)


def softmax(x) -> Variable:
    """Row-wise softmax ``exp(x - max) / sum(exp(x - max))`` (Theano's ``T.nnet.softmax``).

    Computed stably (the row maximum is subtracted). On the kernel backends it is one row kernel;
    ``categorical_crossentropy(softmax(z), y)`` with integer labels is rewritten to
    :func:`crossentropy_softmax_int`, so its gradient is ``softmax(z) - onehot(y)`` with no log
    of a rounded probability.

    Parameters
    ----------
    x : matrix or vector
        Logits, one row per example. A vector is treated as one row and a vector is returned
        (Theano returned a 1 x n matrix; ``theta.compat``'s ``theano`` shim reproduces that).

    Returns
    -------
    Variable
        The shape and dtype of ``x``.

    Examples
    --------
    >>> p = T.nnet.softmax(T.dot(x, W) + b)
    >>> cost = T.nnet.categorical_crossentropy(p, y).mean()
    """
    return _rowwise(Softmax(), x)


def log_softmax(x) -> Variable:
    """Row-wise ``log(softmax(x))``, computed stably as ``x - max - log(sum(exp(x - max)))``.

    Theano's ``T.nnet.logsoftmax`` (both names work). ``T.log(T.nnet.softmax(x))`` is rewritten
    to this form.

    Parameters
    ----------
    x : matrix or vector
        A vector is one row.

    Returns
    -------
    Variable
        The shape and dtype of ``x``.
    """
    return _rowwise(LogSoftmax(), x)


logsoftmax = log_softmax


def categorical_crossentropy(coding_dist, true_dist) -> Variable:
    """Cross-entropy between predicted distributions and targets, one value per row (Theano's ``T.nnet.categorical_crossentropy``).

    With integer labels: ``-log(coding_dist[i, true_dist[i]])``; with a distribution (one-hot
    or soft targets): ``-sum(true_dist * log(coding_dist), axis=-1)``. Applied to a softmax, the
    integer form is rewritten to the fused, stable :func:`crossentropy_softmax_int`.

    Parameters
    ----------
    coding_dist : matrix
        Predicted probabilities, one row per example (usually a :func:`softmax`).
    true_dist : integer vector or matrix
        Class indices (``T.ivector``/``T.lvector``), or target distributions of the same shape
        as ``coding_dist``.

    Returns
    -------
    Variable
        A vector, one cost per row; take ``.mean()`` for a minibatch cost.

    Examples
    --------
    >>> x, y = T.matrix("x"), T.ivector("y")
    >>> cost = T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(x, W) + b), y).mean()
    """
    p = T.as_tensor_variable(coding_dist)
    t = T.as_tensor_variable(true_dist)
    if is_int(t.dtype):
        return -T.log(p[T.arange(t.shape[0]), t])
    return -T.sum(t * T.log(p), axis=p.ndim - 1)


def crossentropy_softmax_int(logits, labels) -> Variable:
    """The fused, stable ``-log(softmax(logits))[i, labels[i]]``, one value per row.

    What ``categorical_crossentropy(softmax(logits), labels)`` is rewritten to; call it directly
    to skip the rewrite. Computed as ``logsumexp(row) - row[label]``; its gradient is
    ``softmax(logits) - onehot(labels)`` (one row kernel each way on the kernel backends).

    Parameters
    ----------
    logits : matrix
        Unnormalized scores, one row per example.
    labels : integer vector
        The class of each row, in ``[0, n_classes)``.

    Returns
    -------
    Variable
        A vector of costs, in ``logits``' dtype.
    """
    return CrossentropySoftmaxInt()(T.as_tensor_variable(logits), T.as_tensor_variable(labels))


def binary_crossentropy(output, target) -> Variable:
    """Elementwise binary cross-entropy ``-(t log(o) + (1 - t) log(1 - o))`` (Theano's ``T.nnet.binary_crossentropy``).

    Applied to ``sigmoid(z)``, the logs are rewritten to softplus forms (see
    :func:`sigmoid_binary_crossentropy`), so saturated sigmoids do not give ``inf``.

    Parameters
    ----------
    output : tensor
        Predicted probabilities in ``(0, 1)``.
    target : tensor
        Targets in ``[0, 1]``, broadcast against ``output``.

    Returns
    -------
    Variable
        Elementwise costs, the broadcast shape.
    """
    return -(target * T.log(output) + (1 - target) * T.log(1 - output))


def sigmoid_binary_crossentropy(logits, target) -> Variable:
    """``binary_crossentropy(sigmoid(logits), target)``, computed stably from the logits.

    ``target * softplus(-logits) + (1 - target) * softplus(logits)``: finite for any logits.

    Parameters
    ----------
    logits : tensor
    target : tensor
        In ``[0, 1]``, broadcast against ``logits``.

    Returns
    -------
    Variable
        Elementwise costs.
    """
    return target * T.softplus(-logits) + (1 - target) * T.softplus(logits)

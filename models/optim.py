"""Update rules as symbolic update builders: gradients in, ``{shared: new value}`` out.

    updates = adam(cost, params, learning_rate=1e-3)
    step = theta.function([x, y], cost, updates=updates)

Each builder takes a cost (differentiated here) or a list of gradients, the parameters, and its
hyperparameters (numbers, or shared variables to change them between calls), and returns an
``OrderedDict`` for ``theta.function(updates=...)``. The optimizer's state (velocities,
accumulators, the step counter) are shared variables created here: they live where the
parameters live, their updates fuse into the same kernels as the parameters' (the epilogue of
the gradient's GEMM or reduction), and they save, restore and checkpoint like any shared
variable (``state_of(updates)`` lists them).

The rules, with g the gradient and t = 1, 2, ... the step::

    sgd        p -= eps_t g,     eps_t = eps_0 tau / max(t, tau)   (the 1/t schedule; tau=None: eps_0)
    momentum   v = mu v - eps_t g;  p += v
    nesterov   v = mu v - eps_t g;  p += mu v - eps_t g
    adagrad    a += g^2;  p -= eps g / sqrt(a + delta)
    rmsprop    a = rho a + (1 - rho) g^2;  p -= eps g / sqrt(a + delta)
    adam       m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
               p -= eps sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + delta)

``clip_norm`` rescales gradients whose joint L2 norm exceeds a bound (Pascanu et al.), and
``penalty`` gives L1/L2 weight decay terms to add to a cost.
"""
from __future__ import annotations

__all__ = ["gradients", "sgd", "momentum", "nesterov_momentum", "adagrad", "rmsprop", "adam", "clip_norm", "penalty",
           "state_of", "get", "OPTIMIZERS"]

from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

import theta
import theta.tensor as T
from theta.errors import GraphError

Updates = "OrderedDict[theta.compiler.shared.SharedVariable, theta.Variable]"


def gradients(cost_or_grads, params: Sequence) -> list:
    """``theta.grad(cost, params)``, or the given gradients after checking they fit.

    Parameters
    ----------
    cost_or_grads : scalar Variable or list of Variable
        A cost (differentiated here with ``theta.grad``) or the gradients, one per parameter.
    params : list of SharedVariable

    Returns
    -------
    list of Variable
    """
    params = list(params)
    if isinstance(cost_or_grads, (list, tuple)):
        grads = [T.as_tensor_variable(g) for g in cost_or_grads]
        if len(grads) != len(params):
            raise GraphError(f"{len(grads)} gradients for {len(params)} parameters")
        return grads
    return theta.grad(cost_or_grads, params)


def _state(param, name: str, value: float = 0.0):
    """A shared variable shaped like ``param`` holding optimizer state."""
    v = param.get_value(borrow=True)
    return theta.shared(np.full(v.shape, value, dtype=v.dtype), name=f"{param.name or 'param'}.{name}",
                        broadcastable=param.broadcastable)


def _counter(updates: OrderedDict, name: str = "optim.t"):
    """The step counter t (1 on the first call), as int64 shared state updated once per call."""
    t = theta.shared(np.int64(0), name=name)
    updates[t] = t + 1
    return t + 1


def _rate(learning_rate, tau, updates: OrderedDict):
    """eps_t: the learning rate, on the 1/t schedule eps_0 tau / max(t, tau) when tau is given
    (constant for the first tau steps, then decaying as 1/t: Bengio's recommendation)."""
    if tau is None:
        return learning_rate
    if not tau > 0:
        raise GraphError(f"the 1/t schedule needs tau > 0, got {tau!r}")
    t = _counter(updates, "optim.t")
    return learning_rate * (float(tau) / T.maximum(T.cast(t, "float64"), float(tau)))


def _cast(value, like):
    return T.cast(value, like.dtype)


def sgd(cost_or_grads, params: Sequence, learning_rate=0.01, tau=None) -> OrderedDict:
    """Stochastic gradient descent, optionally on the 1/t schedule.

    Parameters
    ----------
    cost_or_grads : scalar Variable or list of Variable
        A cost (differentiated here with ``theta.grad``) or the gradients, one per parameter.
    params : list of SharedVariable
    learning_rate : float or scalar SharedVariable, optional
        A shared variable can be changed between calls.
    tau : int, optional
        The 1/t schedule: the rate is ``learning_rate * tau / max(t, tau)``; None keeps it constant.

    Returns
    -------
    OrderedDict
        ``{shared variable: new value}`` for the parameters and the optimizer's state: pass it as
        ``theta.function(..., updates=...)``.
    """
    updates: OrderedDict = OrderedDict()
    eps = _rate(learning_rate, tau, updates)
    for p, g in zip(params, gradients(cost_or_grads, params)):
        updates[p] = _cast(p - eps * g, p)
    return updates


def momentum(cost_or_grads, params: Sequence, learning_rate=0.01, momentum=0.9, tau=None) -> OrderedDict:
    """Classical momentum (heavy ball).

    Parameters
    ----------
    cost_or_grads : scalar Variable or list of Variable
        A cost (differentiated here with ``theta.grad``) or the gradients, one per parameter.
    params : list of SharedVariable
    learning_rate : float or scalar SharedVariable, optional
        A shared variable can be changed between calls.
    momentum : float, optional
    tau : int, optional
        The 1/t schedule: the rate is ``learning_rate * tau / max(t, tau)``; None keeps it constant.

    Returns
    -------
    OrderedDict
        ``{shared variable: new value}`` for the parameters and the optimizer's state: pass it as
        ``theta.function(..., updates=...)``.
    """
    updates: OrderedDict = OrderedDict()
    eps = _rate(learning_rate, tau, updates)
    for p, g in zip(params, gradients(cost_or_grads, params)):
        v = _state(p, "velocity")
        v_new = _cast(momentum * v - eps * g, p)
        updates[v] = v_new
        updates[p] = _cast(p + v_new, p)
    return updates


def nesterov_momentum(cost_or_grads, params: Sequence, learning_rate=0.01, momentum=0.9, tau=None) -> OrderedDict:
    """Nesterov's accelerated gradient in the form of Sutskever et al. (2013).

    Parameters
    ----------
    cost_or_grads : scalar Variable or list of Variable
        A cost (differentiated here with ``theta.grad``) or the gradients, one per parameter.
    params : list of SharedVariable
    learning_rate : float or scalar SharedVariable, optional
        A shared variable can be changed between calls.
    momentum : float, optional
    tau : int, optional
        The 1/t schedule: the rate is ``learning_rate * tau / max(t, tau)``; None keeps it constant.

    Returns
    -------
    OrderedDict
        ``{shared variable: new value}`` for the parameters and the optimizer's state: pass it as
        ``theta.function(..., updates=...)``.
    """
    updates: OrderedDict = OrderedDict()
    eps = _rate(learning_rate, tau, updates)
    for p, g in zip(params, gradients(cost_or_grads, params)):
        v = _state(p, "velocity")
        v_new = _cast(momentum * v - eps * g, p)
        updates[v] = v_new
        updates[p] = _cast(p + momentum * v_new - eps * g, p)
    return updates


def adagrad(cost_or_grads, params: Sequence, learning_rate=0.01, epsilon=1e-6) -> OrderedDict:
    """AdaGrad (Duchi et al.): per-weight rates shrinking with the summed squared gradients.

    Parameters
    ----------
    cost_or_grads : scalar Variable or list of Variable
        A cost (differentiated here with ``theta.grad``) or the gradients, one per parameter.
    params : list of SharedVariable
    learning_rate : float or scalar SharedVariable, optional
        A shared variable can be changed between calls.
    epsilon : float, optional

    Returns
    -------
    OrderedDict
        ``{shared variable: new value}`` for the parameters and the optimizer's state: pass it as
        ``theta.function(..., updates=...)``.
    """
    updates: OrderedDict = OrderedDict()
    for p, g in zip(params, gradients(cost_or_grads, params)):
        a = _state(p, "sum_sq")
        a_new = _cast(a + g ** 2, p)
        updates[a] = a_new
        updates[p] = _cast(p - learning_rate * g / T.sqrt(a_new + epsilon), p)
    return updates


def rmsprop(cost_or_grads, params: Sequence, learning_rate=0.001, rho=0.9, epsilon=1e-6) -> OrderedDict:
    """RMSProp (Tieleman & Hinton): rates scaled by a running mean of squared gradients.

    Parameters
    ----------
    cost_or_grads : scalar Variable or list of Variable
        A cost (differentiated here with ``theta.grad``) or the gradients, one per parameter.
    params : list of SharedVariable
    learning_rate : float or scalar SharedVariable, optional
        A shared variable can be changed between calls.
    rho : float, optional
        Decay of the running mean.
    epsilon : float, optional

    Returns
    -------
    OrderedDict
        ``{shared variable: new value}`` for the parameters and the optimizer's state: pass it as
        ``theta.function(..., updates=...)``.
    """
    updates: OrderedDict = OrderedDict()
    for p, g in zip(params, gradients(cost_or_grads, params)):
        a = _state(p, "mean_sq")
        a_new = _cast(rho * a + (1 - rho) * g ** 2, p)
        updates[a] = a_new
        updates[p] = _cast(p - learning_rate * g / T.sqrt(a_new + epsilon), p)
    return updates


def adam(cost_or_grads, params: Sequence, learning_rate=0.001, beta1=0.9, beta2=0.999,
         epsilon=1e-8) -> OrderedDict:
    """Adam (Kingma & Ba), with the bias corrections folded into the step size.

    Examples
    --------
    >>> updates = adam(cost, params, learning_rate=1e-3)
    >>> step = theta.function([x, y], cost, updates=updates)

    Parameters
    ----------
    cost_or_grads : scalar Variable or list of Variable
        A cost (differentiated here with ``theta.grad``) or the gradients, one per parameter.
    params : list of SharedVariable
    learning_rate : float or scalar SharedVariable, optional
        A shared variable can be changed between calls.
    beta1, beta2 : float, optional
        Decays of the first and second moment estimates.
    epsilon : float, optional

    Returns
    -------
    OrderedDict
        ``{shared variable: new value}`` for the parameters and the optimizer's state: pass it as
        ``theta.function(..., updates=...)``.
    """
    updates: OrderedDict = OrderedDict()
    grads = gradients(cost_or_grads, params)
    t = T.cast(_counter(updates, "adam.t"), "float64")
    step = learning_rate * T.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    for p, g in zip(params, grads):
        m, v = _state(p, "m"), _state(p, "v")
        m_new = _cast(beta1 * m + (1 - beta1) * g, p)
        v_new = _cast(beta2 * v + (1 - beta2) * g ** 2, p)
        updates[m], updates[v] = m_new, v_new
        updates[p] = _cast(p - _cast(step, p) * m_new / (T.sqrt(v_new) + epsilon), p)
    return updates


def clip_norm(grads: Sequence, max_norm: float, epsilon: float = 1e-7) -> list:
    """The gradients rescaled so that their joint L2 norm is at most ``max_norm``.

    Parameters
    ----------
    grads : list of Variable
    max_norm : float
    epsilon : float, optional

    Returns
    -------
    list of Variable
    """
    grads = [T.as_tensor_variable(g) for g in grads]
    norm = T.sqrt(sum(T.sum(T.cast(g, "float64") ** 2) for g in grads))
    scale = T.minimum(norm, max_norm) / (norm + epsilon)
    return [T.cast(g * scale, g.dtype) for g in grads]


def penalty(params: Sequence, l1: float = 0.0, l2: float = 0.0):
    """l1 * sum|W| + l2 * sum W^2 over ``params`` (pass the weights, not the biases).

    Parameters
    ----------
    params : list of SharedVariable
        The weights.
    l1, l2 : float, optional

    Returns
    -------
    scalar Variable
        To add to the cost.
    """
    terms = []
    for p in params:
        if l1:
            terms.append(l1 * T.sum(T.abs_(p)))
        if l2:
            terms.append(l2 * T.sum(p ** 2))
    return sum(terms) if terms else T.as_tensor_variable(np.float32(0))


def state_of(updates: OrderedDict, params: Sequence) -> list:
    """The shared variables ``updates`` writes besides ``params``: the optimizer's state.

    Parameters
    ----------
    updates : OrderedDict
        As returned by a builder.
    params : list of SharedVariable

    Returns
    -------
    list of SharedVariable
    """
    ids = {id(p) for p in params}
    return [v for v in updates if id(v) not in ids]


OPTIMIZERS: dict[str, Callable] = {"sgd": sgd, "momentum": momentum, "nesterov": nesterov_momentum,
                                   "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}


def get(name: str) -> Callable:
    """The update builder called ``name`` (see ``OPTIMIZERS``).

    Parameters
    ----------
    name : str
        ``'sgd'``, ``'momentum'``, ``'nesterov'``, ``'adagrad'``, ``'rmsprop'``, ``'adam'``.

    Returns
    -------
    callable
    """
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise GraphError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None

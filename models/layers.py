"""Layers of the seeds' models: parameters as shared variables (Glorot init), applied to a
symbolic input for training or for evaluation.

A layer is called as ``layer(x, train)``: dropout masks are drawn and batch statistics used
only when ``train`` is true, so one set of parameters gives both the training graph and the
evaluation graph. Layers that keep running statistics add their updates to ``layer.updates``
when applied for training (pass them to ``theta.function`` with the optimizer's).
"""
from __future__ import annotations

__all__ = ["glorot", "Dense", "BatchNormDense", "Residual", "ConvPool", "Softmax", "apply"]

import os
from collections import OrderedDict

import numpy as np

import theta
import theta.tensor as T
from theta.errors import SizeError
from theta.tensor.shared_randomstreams import RandomStreams

ACTIVATIONS = {"tanh": T.tanh, "sigmoid": T.nnet.sigmoid, "relu": T.nnet.relu, "linear": None}


def glorot(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, gain: float = 1.0,
           dtype: str | None = None, name: str = "a weight") -> np.ndarray:
    """Glorot & Bengio's uniform init, U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))
    (gain 4 for sigmoid units, as in the Deep Learning Tutorials).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    shape : tuple of int
    fan_in, fan_out : int
    gain : float, optional
    dtype : str, optional
        Default floatX.
    name : str, optional
        The weight's name (for the message when it cannot fit in memory).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    SizeError
        The weight (drawn in float64, then cast) needs more bytes than this machine's memory.
    """
    dtype = dtype or theta.config.floatX
    need = int(np.prod(shape, dtype=object)) * (8 + np.dtype(dtype).itemsize)
    if need > _memory_bytes():      # refuse before allocating (or swapping for an hour)
        raise SizeError(f"{name} of shape {'x'.join(map(str, shape))} needs {need / 2 ** 30:.3g} GiB to initialize, "
                        f"more than this machine's memory ({_memory_bytes() / 2 ** 30:.3g} GiB): use fewer units "
                        "(--hidden, n_hidden)")
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, shape).astype(dtype)


def _memory_bytes() -> int:
    """This machine's physical memory (1 TiB, theta's per-tensor limit, where it cannot be told)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2 ** 40


def _zeros(shape, name: str):
    return theta.shared(np.zeros(shape, dtype=theta.config.floatX), name=name)


class Dense:
    """``activation(x W + b)``; ``pieces > 1`` makes it a maxout layer (the max over ``pieces``
    linear units per output); ``dropout`` drops the layer's *input* units with that probability
    during training (inverted dropout: kept units scaled by 1/(1 - p), nothing at evaluation).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    n_in, n_out : int
    activation : {'tanh', 'sigmoid', 'relu', 'linear'}, optional
    pieces : int, optional
        Maxout pieces per output (1: an ordinary layer).
    dropout : float, optional
        Probability of dropping each input unit while training.
    srng : RandomStreams, optional
        Needed when ``dropout > 0``.
    name : str, optional
        Prefix of the parameters' names.
    """

    def __init__(self, rng: np.random.Generator, n_in: int, n_out: int, activation: str = "tanh",
                 pieces: int = 1, dropout: float = 0.0, srng: RandomStreams | None = None,
                 name: str = "dense") -> None:
        if activation not in ACTIVATIONS:
            raise theta.errors.GraphError(f"{name}: unknown activation {activation!r}; choose {', '.join(ACTIVATIONS)}")
        if not 0 <= dropout < 1:
            raise theta.errors.GraphError(f"{name}: dropout must be in [0, 1), got {dropout}")
        gain = 4.0 if activation == "sigmoid" else 1.0
        self.W = theta.shared(glorot(rng, (n_in, n_out * pieces), n_in, n_out, gain, name=f"{name}.W"),
                              name=f"{name}.W")
        self.b = _zeros((n_out * pieces,), f"{name}.b")
        self.params = [self.W, self.b]
        self.activation, self.pieces, self.dropout = activation, pieces, dropout
        self.srng = srng if srng is not None or not dropout else RandomStreams(int(rng.integers(2 ** 31)))
        self.updates: OrderedDict = OrderedDict()

    def __call__(self, x, train: bool = True):
        if train and self.dropout:
            keep = 1.0 - self.dropout
            x = x * self.srng.binomial(size=x.shape, p=keep, dtype=x.dtype) * np.float32(1.0 / keep).astype(x.dtype)
        z = T.dot(x, self.W) + self.b
        if self.pieces > 1:
            return T.nnet.maxout(z, self.pieces)
        fn = ACTIVATIONS[self.activation]
        return z if fn is None else fn(z)


class BatchNormDense:
    """``activation(BN(x W))``: batch statistics in training (their running averages updated),
    the running averages at evaluation (Ioffe & Szegedy).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    n_in, n_out : int
    activation : str, optional
    momentum : float, optional
        Weight of each batch in the running averages.
    name : str, optional
    """

    def __init__(self, rng: np.random.Generator, n_in: int, n_out: int, activation: str = "relu",
                 momentum: float = 0.1, name: str = "bn") -> None:
        self.W = theta.shared(glorot(rng, (n_in, n_out), n_in, n_out, name=f"{name}.W"), name=f"{name}.W")
        self.gamma = theta.shared(np.ones(n_out, dtype=theta.config.floatX), name=f"{name}.gamma")
        self.beta = _zeros((n_out,), f"{name}.beta")
        self.mean = _zeros((n_out,), f"{name}.running_mean")
        self.var = theta.shared(np.ones(n_out, dtype=theta.config.floatX), name=f"{name}.running_var")
        self.params = [self.W, self.gamma, self.beta]
        self.activation, self.momentum = activation, momentum
        self.updates: OrderedDict = OrderedDict()

    def __call__(self, x, train: bool = True):
        z = T.dot(x, self.W)
        if train:
            out, _, _, new_mean, new_var = T.nnet.bn.batch_normalization_train(
                z, self.gamma, self.beta, running_average_factor=self.momentum,
                running_mean=self.mean, running_var=self.var)
            self.updates[self.mean], self.updates[self.var] = new_mean, new_var
        else:
            out = T.nnet.bn.batch_normalization_test(z, self.gamma, self.beta, self.mean, self.var)
        fn = ACTIVATIONS[self.activation]
        return out if fn is None else fn(out)


class Residual:
    """``x + W2 relu(W1 x + b1) + b2`` (He et al.): the identity path carries the signal and its
    gradient through deep stacks.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    width : int
        Input and output width.
    name : str, optional
    """

    def __init__(self, rng: np.random.Generator, width: int, name: str = "res") -> None:
        self.inner = Dense(rng, width, width, "relu", name=f"{name}.1")
        self.outer = Dense(rng, width, width, "linear", name=f"{name}.2")
        self.outer.W.set_value(self.outer.W.get_value() * 0.1)   # start near the identity
        self.params = self.inner.params + self.outer.params
        self.updates: OrderedDict = OrderedDict()

    def __call__(self, x, train: bool = True):
        return T.nnet.relu(x + self.outer(self.inner(x, train), train))


class ConvPool:
    """``pool(relu(conv2d(x, W) + b))`` over (batch, channels, rows, cols): a LeNet stage.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    channels_in, channels_out : int
    size : int, optional
        Square filter size.
    pool : int, optional
        Square max-pool window.
    border_mode : optional
        As for ``T.nnet.conv2d``.
    name : str, optional
    """

    def __init__(self, rng: np.random.Generator, channels_in: int, channels_out: int, size: int = 3,
                 pool: int = 2, border_mode="half", name: str = "conv") -> None:
        fan_in, fan_out = channels_in * size * size, channels_out * size * size // (pool * pool)
        self.W = theta.shared(glorot(rng, (channels_out, channels_in, size, size), fan_in, fan_out, name=f"{name}.W"),
                              name=f"{name}.W")
        self.b = _zeros((channels_out,), f"{name}.b")
        self.params = [self.W, self.b]
        self.pool, self.border_mode = pool, border_mode
        self.updates: OrderedDict = OrderedDict()

    def __call__(self, x, train: bool = True):
        from theta.tensor.signal.pool import pool_2d
        h = T.nnet.relu(T.nnet.conv2d(x, self.W, border_mode=self.border_mode) + self.b.dimshuffle("x", 0, "x", "x"))
        return pool_2d(h, (self.pool, self.pool), ignore_border=True) if self.pool > 1 else h


class Softmax:
    """The output layer: class probabilities ``softmax(x W + b)`` (weights start at zero, as
    the tutorials' logistic regression).

    Parameters
    ----------
    n_in, n_out : int
    dropout : float, optional
        Dropout on the inputs while training.
    srng : RandomStreams, optional
    name : str, optional
    """

    def __init__(self, n_in: int, n_out: int, dropout: float = 0.0, srng: RandomStreams | None = None,
                 name: str = "out") -> None:
        self.W = _zeros((n_in, n_out), f"{name}.W")
        self.b = _zeros((n_out,), f"{name}.b")
        self.params = [self.W, self.b]
        self.dropout, self.srng = dropout, srng
        self.updates: OrderedDict = OrderedDict()

    def __call__(self, x, train: bool = True):
        if train and self.dropout:
            keep = 1.0 - self.dropout
            x = x * self.srng.binomial(size=x.shape, p=keep, dtype=x.dtype) * np.float32(1.0 / keep).astype(x.dtype)
        return T.nnet.softmax(T.dot(x, self.W) + self.b)


def apply(layers: list, x, train: bool):
    """Run ``x`` through ``layers``; returns the output and the layers' updates (running
    statistics) gathered when training.

    Parameters
    ----------
    layers : list
        Layer objects of this module.
    x : Variable
    train : bool
        Training mode (dropout on, batch statistics) or evaluation.

    Returns
    -------
    (Variable, list)
        The output and the updates.
    """
    updates: OrderedDict = OrderedDict()
    for layer in layers:
        x = layer(x, train)
        if train:
            updates.update(layer.updates)
    return x, updates

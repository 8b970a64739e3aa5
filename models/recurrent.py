"""Recurrent networks on the adding problem (Hochreiter & Schmidhuber, 1997).

Each sequence has T steps of two inputs: a value uniform in [0, 1] and a marker that is 1 at
two steps (one in each half) and 0 elsewhere; the target is the sum of the two marked values.
Predicting the mean (1) gives a mean squared error of 1/6; a network that solves the task
carries the first marked value across up to T steps. A plain tanh RNN loses it as T grows
(vanishing gradients, Bengio et al., 1994); an LSTM's cell keeps it (its forget gate starts
open). Both are a ``theta.scan`` over the time steps of a minibatch, trained by Adam on
gradients clipped to a maximal norm (Pascanu et al., 2013).
"""
from __future__ import annotations

__all__ = ["adding_problem", "RNN", "LSTM", "train_adding"]

import numpy as np

import theta
import theta.tensor as T

from . import optim
from .layers import glorot


def adding_problem(n: int, length: int, rng: np.random.Generator, dtype: str = "float32") -> tuple:
    """(inputs (length, n, 2), targets (n,)): ``n`` sequences of the adding problem.

    Parameters
    ----------
    n : int
    length : int
    rng : numpy.random.Generator
    dtype : str, optional

    Returns
    -------
    tuple
    """
    values = rng.uniform(0, 1, (length, n))
    markers = np.zeros((length, n))
    half = max(length // 2, 1)
    first = rng.integers(0, half, n)
    second = rng.integers(half, length, n) if length > 1 else first
    markers[first, np.arange(n)] = 1
    markers[second, np.arange(n)] = 1
    x = np.stack([values, markers], axis=-1).astype(dtype)
    return x, (values * markers).sum(axis=0).astype(dtype)


class RNN:
    """h_t = tanh(x_t W + h_{t-1} U + b); the prediction reads h_T.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    n_in, n_hidden : int
    """

    def __init__(self, rng: np.random.Generator, n_in: int, n_hidden: int) -> None:
        fx = theta.config.floatX
        self.W = theta.shared(glorot(rng, (n_in, n_hidden), n_in, n_hidden), name="rnn.W")
        # an orthogonal recurrent matrix: neither explodes nor vanishes at the start
        q, _ = np.linalg.qr(rng.standard_normal((n_hidden, n_hidden)))
        self.U = theta.shared(q.astype(fx), name="rnn.U")
        self.b = theta.shared(np.zeros(n_hidden, fx), name="rnn.b")
        self.params = [self.W, self.U, self.b]
        self.n_hidden = n_hidden

    def last_state(self, x):
        h0 = T.zeros((x.shape[1], self.n_hidden), dtype=x.dtype)
        hs, _ = theta.scan(lambda xt, h: T.tanh(T.dot(xt, self.W) + T.dot(h, self.U) + self.b),
                           sequences=x, outputs_info=h0, name="rnn")
        return hs[-1]


class LSTM:
    """Gates i, f, o and candidate g from x_t W + h_{t-1} U + b (4 blocks); c_t = f c_{t-1} + i g,
    h_t = o tanh(c_t). The forget gate's bias starts at 1 (Gers et al., 2000).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    n_in, n_hidden : int
    """

    def __init__(self, rng: np.random.Generator, n_in: int, n_hidden: int) -> None:
        fx = theta.config.floatX
        self.W = theta.shared(glorot(rng, (n_in, 4 * n_hidden), n_in, n_hidden), name="lstm.W")
        self.U = theta.shared(np.concatenate([np.linalg.qr(rng.standard_normal((n_hidden, n_hidden)))[0]
                                              for _ in range(4)], axis=1).astype(fx), name="lstm.U")
        b = np.zeros(4 * n_hidden, fx)
        b[n_hidden:2 * n_hidden] = 1.0
        self.b = theta.shared(b, name="lstm.b")
        self.params = [self.W, self.U, self.b]
        self.n_hidden = n_hidden

    def last_state(self, x):
        n = self.n_hidden
        zeros = T.zeros((x.shape[1], n), dtype=x.dtype)

        def step(xt, h, c):
            z = T.dot(xt, self.W) + T.dot(h, self.U) + self.b
            i, f = T.nnet.sigmoid(z[:, :n]), T.nnet.sigmoid(z[:, n:2 * n])
            o, g = T.nnet.sigmoid(z[:, 2 * n:3 * n]), T.tanh(z[:, 3 * n:])
            c_new = f * c + i * g
            return o * T.tanh(c_new), c_new

        (hs, _), _ = theta.scan(step, sequences=x, outputs_info=[zeros, zeros], name="lstm")
        return hs[-1]


CELLS = {"rnn": RNN, "lstm": LSTM}


def train_adding(cell: str = "lstm", length: int = 20, n_hidden: int = 32, steps: int = 400, batch_size: int = 20,
                 lr: float = 0.01, max_norm: float = 1.0, seed: int = 1234, backend: str | None = None) -> dict:
    """Train ``cell`` on fresh minibatches of the adding problem; the test MSE every 50 steps.

    Parameters
    ----------
    cell : {'lstm', 'rnn'}, optional
    length : int, optional
        Sequence length T.
    n_hidden : int, optional
    steps : int, optional
    batch_size : int, optional
    lr : float, optional
        Adam's learning rate.
    max_norm : float, optional
        Gradient-norm clipping.
    seed : int, optional
    backend : str, optional

    Returns
    -------
    dict
    """
    rng = np.random.default_rng(seed)
    net = CELLS[cell](rng, 2, n_hidden)
    fx = theta.config.floatX
    w_out = theta.shared(np.zeros(n_hidden, fx), name="out.w")
    b_out = theta.shared(np.ones((), fx), name="out.b")        # start at the mean target
    params = net.params + [w_out, b_out]
    x, y = T.tensor3("x"), T.vector("y")
    prediction = T.dot(net.last_state(x), w_out) + b_out
    mse = T.mean((prediction - y) ** 2)
    grads = optim.clip_norm(theta.grad(mse, params), max_norm)
    step = theta.function([x, y], mse, updates=optim.adam(grads, params, learning_rate=lr), name=f"{cell}_step",
                          backend=backend)
    evaluate = theta.function([x, y], mse, name=f"{cell}_mse", backend=backend)
    test_x, test_y = adding_problem(500, length, np.random.default_rng(seed + 1), fx)
    history = [{"step": 0, "test_mse": float(evaluate(test_x, test_y))}]
    for k in range(1, steps + 1):
        bx, by = adding_problem(batch_size, length, rng, fx)
        cost = float(step(bx, by))
        if not np.isfinite(cost):
            from .train import TrainingDiverged
            raise TrainingDiverged(f"{cell}: the training cost became {cost} at step {k}; try a lower --lr")
        if k % 50 == 0 or k == steps:
            history.append({"step": k, "cost": cost, "test_mse": float(evaluate(test_x, test_y))})
    return {"cell": cell, "length": length, "history": history, "test_mse": history[-1]["test_mse"]}

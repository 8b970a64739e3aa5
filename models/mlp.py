"""A multilayer perceptron: tanh hidden layers and a softmax regression on top."""
from __future__ import annotations

import numpy as np

import theta
import theta.tensor as T

from .logreg import LogisticRegression


class HiddenLayer:
    def __init__(self, rng: np.random.Generator, input: theta.Variable, n_in: int, n_out: int,
                 activation=T.tanh, dtype: str | None = None, name: str = "h") -> None:
        dtype = dtype or theta.config.floatX
        # Glorot/Bengio uniform init; 4x larger for sigmoid units.
        bound = np.sqrt(6.0 / (n_in + n_out)) * (4 if activation is T.nnet.sigmoid else 1)
        self.W = theta.shared(rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype), name=f"{name}.W")
        self.b = theta.shared(np.zeros((n_out,), dtype=dtype), name=f"{name}.b")
        lin = T.dot(input, self.W) + self.b
        self.output = lin if activation is None else activation(lin)
        self.params = [self.W, self.b]


class MLP:
    def __init__(self, rng: np.random.Generator, input: theta.Variable, n_in: int, n_hidden, n_out: int,
                 activation=T.tanh) -> None:
        sizes = [n_hidden] if isinstance(n_hidden, int) else list(n_hidden)
        self.hidden = []
        layer_in, width = input, n_in
        for k, n_h in enumerate(sizes):
            layer = HiddenLayer(rng, layer_in, width, n_h, activation, name=f"h{k}")
            self.hidden.append(layer)
            layer_in, width = layer.output, n_h
        self.logreg = LogisticRegression(layer_in, width, n_out)
        self.params = [p for h in self.hidden for p in h.params] + self.logreg.params
        self.l2 = sum(T.sum(h.W ** 2) for h in self.hidden) + T.sum(self.logreg.W ** 2)
        self.negative_log_likelihood = self.logreg.negative_log_likelihood
        self.errors = self.logreg.errors
        self.input = input

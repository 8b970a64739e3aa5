"""Softmax (multinomial logistic) regression, as in the Theano tutorial."""
from __future__ import annotations

import numpy as np

import theta
import theta.tensor as T


class LogisticRegression:
    def __init__(self, input: theta.Variable, n_in: int, n_out: int, dtype: str | None = None) -> None:
        dtype = dtype or theta.config.floatX
        self.W = theta.shared(np.zeros((n_in, n_out), dtype=dtype), name="W")
        self.b = theta.shared(np.zeros((n_out,), dtype=dtype), name="b")
        self.p_y_given_x = T.nnet.softmax(T.dot(input, self.W) + self.b)
        self.y_pred = T.argmax(self.p_y_given_x, axis=1)
        self.params = [self.W, self.b]
        self.input = input

    def negative_log_likelihood(self, y: theta.Variable) -> theta.Variable:
        """Mean crossentropy of the labels (the stabilize pass turns it into one fused op)."""
        return -T.mean(T.log(self.p_y_given_x)[T.arange(y.shape[0]), y])

    def errors(self, y: theta.Variable) -> theta.Variable:
        return T.mean(T.neq(self.y_pred, y))

"""Denoising autoencoders (Vincent et al., 2008) and their stacks (SdA).

A denoising autoencoder with tied weights reconstructs its input x from a corrupted copy
(masking noise: each input zeroed with probability ``corruption``):

    h = sigmoid(x~ W + b_hid),   z = sigmoid(h W^T + b_vis),
    cost = mean over rows of the cross-entropy sum_i -(x_i log z_i + (1 - x_i) log(1 - z_i))

computed from the pre-activation (``sigmoid_binary_crossentropy``), so it stays finite. A
stacked denoising autoencoder shares each hidden layer's weights with one autoencoder: the
layers are pretrained one at a time, each on the previous layers' codes, then the whole stack
is fine-tuned with a softmax on top (models/classifiers.py, model ``sda``).
"""
from __future__ import annotations

__all__ = ["DenoisingAutoencoder", "StackedDenoisingAutoencoder", "pretrain", "train_dae", "sda_pretraining_hook"]

import numpy as np

import theta
import theta.tensor as T
from theta.tensor.shared_randomstreams import RandomStreams

from .layers import Dense, glorot


class DenoisingAutoencoder:
    """Tied weights ``W`` (n_visible x n_hidden); ``W``/``bhid`` may be a hidden layer's own.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    srng : RandomStreams
        Draws the masking noise.
    n_visible, n_hidden : int
    W, bhid : SharedVariable, optional
        Share a hidden layer's parameters.
    corruption : float, optional
        Fraction of inputs zeroed.
    name : str, optional
    """

    def __init__(self, rng: np.random.Generator, srng: RandomStreams, n_visible: int, n_hidden: int,
                 W=None, bhid=None, corruption: float = 0.3, name: str = "dA") -> None:
        fx = theta.config.floatX
        self.W = W if W is not None else theta.shared(glorot(rng, (n_visible, n_hidden), n_visible, n_hidden, 4.0),
                                                      name=f"{name}.W")
        self.bhid = bhid if bhid is not None else theta.shared(np.zeros(n_hidden, fx), name=f"{name}.bhid")
        self.bvis = theta.shared(np.zeros(n_visible, fx), name=f"{name}.bvis")
        self.params = [self.W, self.bhid, self.bvis]
        self.srng, self.corruption = srng, corruption

    def corrupt(self, x):
        if not self.corruption:
            return x
        return x * self.srng.binomial(size=x.shape, p=1 - self.corruption, dtype=x.dtype)

    def encode(self, x):
        return T.nnet.sigmoid(T.dot(x, self.W) + self.bhid)

    def decode_logits(self, h):
        return T.dot(h, self.W.T) + self.bvis

    def cost(self, x):
        """The denoising reconstruction cross-entropy of the rows of ``x`` (values in [0, 1])."""
        logits = self.decode_logits(self.encode(self.corrupt(x)))
        return T.mean(T.sum(T.nnet.sigmoid_binary_crossentropy(logits, x), axis=1))

    def reconstruction_error(self, x):
        """Mean squared error of reconstructing the clean rows (a monitor, no noise)."""
        z = T.nnet.sigmoid(self.decode_logits(self.encode(x)))
        return T.mean(T.sum((z - x) ** 2, axis=1))


class StackedDenoisingAutoencoder:
    """Sigmoid hidden layers (models/layers.Dense) and the autoencoders that pretrain them.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    srng : RandomStreams
    n_in : int
    hidden : list of int
    corruption : float, optional
    """

    def __init__(self, rng: np.random.Generator, srng: RandomStreams, n_in: int, hidden: list,
                 corruption: float = 0.2) -> None:
        self.layers, self.autoencoders = [], []
        width = n_in
        for k, n_h in enumerate(hidden):
            layer = Dense(rng, width, n_h, "sigmoid", name=f"h{k}")
            self.layers.append(layer)
            self.autoencoders.append(DenoisingAutoencoder(rng, srng, width, n_h, layer.W, layer.b, corruption,
                                                          name=f"dA{k}"))
            width = n_h

    def pretraining_stages(self, x, lr: float) -> list:
        """[(cost, SGD updates) of autoencoder k on the codes of the layers below it]."""
        from . import optim
        out, h = [], x
        for layer, da in zip(self.layers, self.autoencoders):
            cost = da.cost(h)
            out.append((cost, optim.sgd(cost, da.params, learning_rate=lr)))
            h = layer(h, train=False)
        return out


def pretrain(stages: list, x, data_x: np.ndarray, epochs: int, batch_size: int, backend: str | None,
             seed: int, progress=None) -> list:
    """Greedy layer-wise pretraining: for each (monitored value, updates) in turn, ``epochs`` of
    minibatch steps over the rows of ``data_x``. Returns the monitor's mean per epoch, per layer.

    Parameters
    ----------
    stages : list
        ``(monitored value, updates)`` per layer.
    x : Variable
        The input the stages read.
    data_x : numpy.ndarray
    epochs, batch_size : int
    backend : str or None
    seed : int
    progress : callable, optional

    Returns
    -------
    list
    """
    from ..minibatch import Minibatches
    mb = Minibatches({"x": data_x}, batch_size, shuffle=True, seed=seed, resident=True, backend=backend)
    index = T.lscalar("index")
    curves = []
    for k, (monitor, updates) in enumerate(stages):
        step = theta.function([index], monitor, updates=updates,
                              givens=mb.givens({x: "x"}, index), name=f"pretrain{k}", backend=backend)
        curve = []
        for _ in range(epochs):
            curve.append(float(np.mean([float(step(i)) for i in mb.epoch()])))
            if progress is not None:
                progress(k, curve[-1])
        curves.append(curve)
    return curves


def train_dae(data_x: np.ndarray, n_hidden: int = 64, corruption: float = 0.3, epochs: int = 15,
              batch_size: int = 20, lr: float = 0.1, seed: int = 1234, backend: str | None = None) -> dict:
    """One denoising autoencoder on ``data_x``; the clean reconstruction error per epoch.

    Parameters
    ----------
    data_x : numpy.ndarray
    n_hidden : int, optional
    corruption : float, optional
    epochs, batch_size : int, optional
    lr : float, optional
    seed : int, optional
    backend : str, optional

    Returns
    -------
    dict
    """
    from ..minibatch import Minibatches
    from . import optim
    rng = np.random.default_rng(seed)
    da = DenoisingAutoencoder(rng, RandomStreams(seed), data_x.shape[1], n_hidden, corruption=corruption)
    x, index = T.matrix("x"), T.lscalar("index")
    mb = Minibatches({"x": data_x}, batch_size, shuffle=True, seed=seed, resident=True, backend=backend)
    cost = da.cost(x)
    step = theta.function([index], cost, updates=optim.sgd(cost, da.params, learning_rate=lr),
                          givens=mb.givens({x: "x"}, index), name="dae_step", backend=backend)
    recon = theta.function([x], da.reconstruction_error(x), name="dae_error", backend=backend)
    history = [{"epoch": 0, "reconstruction_error": float(recon(data_x))}]
    for epoch in range(1, epochs + 1):
        costs = [float(step(i)) for i in mb.epoch()]
        history.append({"epoch": epoch, "cost": float(np.mean(costs)), "reconstruction_error": float(recon(data_x))})
    return {"model": da, "history": history}


def sda_pretraining_hook(model, data, cfg, epochs: int = 5, lr: float = 0.1) -> list:
    """Pretrain the SdA behind a Classifier built by ``classifiers.build('sda', ...)``.

    Parameters
    ----------
    model : Classifier
    data : Dataset
    cfg : TrainConfig
    epochs : int, optional
    lr : float, optional

    Returns
    -------
    list
    """
    return pretrain(model.stack.pretraining_stages(model.x, lr), model.x, data.train.x, epochs, cfg.batch_size,
                    cfg.backend, cfg.seed)


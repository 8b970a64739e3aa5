"""Restricted Boltzmann machines trained by contrastive divergence, and deep belief nets.

A binary RBM with weights W, hidden biases c and visible biases b has the free energy

    F(v) = -v.b - sum_j softplus(v W_j + c_j)

CD-k (Hinton, 2002) starts a Gibbs chain at the data's hidden sample and runs k steps (a scan
whose steps draw from the random stream, so each step samples anew); persistent CD (Tieleman,
2008) continues one chain from minibatch to minibatch instead, kept in a shared variable.
The gradient of F(data) - F(chain end), with the chain end held constant, estimates the
log-likelihood's. Progress is monitored by the pseudo-likelihood (one visible bit flipped per
call, cycling through them) with PCD, and by the reconstruction cross-entropy with CD.

A deep belief net (Hinton et al., 2006) stacks RBMs that share their weights with sigmoid
layers: each RBM is trained by CD-1 on the mean activations of the layers below it, then the
stack is fine-tuned as a classifier (models/classifiers.py, model ``dbn``).
"""
from __future__ import annotations

__all__ = ["RBM", "DeepBeliefNet", "dbn_pretraining_hook", "train_rbm"]

from collections import OrderedDict

import numpy as np

import theta
import theta.tensor as T
from theta.tensor.shared_randomstreams import RandomStreams

from .layers import Dense, glorot


class RBM:
    """A binary restricted Boltzmann machine trained by contrastive divergence (CD-k or persistent CD).

    Parameters
    ----------
    rng : numpy.random.Generator
    srng : RandomStreams
        Draws the Gibbs samples.
    n_visible, n_hidden : int
    W, hbias : SharedVariable, optional
        Share a hidden layer's parameters (deep belief nets).
    name : str, optional
    """
    def __init__(self, rng: np.random.Generator, srng: RandomStreams, n_visible: int, n_hidden: int,
                 W=None, hbias=None, name: str = "rbm") -> None:
        fx = theta.config.floatX
        self.W = W if W is not None else theta.shared(glorot(rng, (n_visible, n_hidden), n_visible, n_hidden, 4.0),
                                                      name=f"{name}.W")
        self.hbias = hbias if hbias is not None else theta.shared(np.zeros(n_hidden, fx), name=f"{name}.hbias")
        self.vbias = theta.shared(np.zeros(n_visible, fx), name=f"{name}.vbias")
        self.params = [self.W, self.hbias, self.vbias]
        self.srng, self.n_visible, self.name = srng, n_visible, name

    def free_energy(self, v):
        return -T.dot(v, self.vbias) - T.sum(T.nnet.softplus(T.dot(v, self.W) + self.hbias), axis=1)

    def sample_h(self, v):
        mean = T.nnet.sigmoid(T.dot(v, self.W) + self.hbias)
        return mean, self.srng.binomial(size=mean.shape, p=mean, dtype=mean.dtype)

    def sample_v(self, h):
        pre = T.dot(h, self.W.T) + self.vbias
        mean = T.nnet.sigmoid(pre)
        return pre, mean, self.srng.binomial(size=mean.shape, p=mean, dtype=mean.dtype)

    def gibbs_hvh(self, h):
        pre_v, mean_v, v = self.sample_v(h)
        mean_h, h_new = self.sample_h(v)
        return pre_v, v, h_new

    def cd(self, x, lr: float, k: int = 1, persistent=None) -> tuple:
        """(monitor, updates) of one CD-k step on the rows of ``x`` (PCD-k with ``persistent``,
        a shared matrix of hidden states, one row per minibatch row)."""
        _, h_data = self.sample_h(x)
        start = h_data if persistent is None else persistent
        if k == 1:
            pre_v, v_end, h_end = self.gibbs_hvh(start)
            chain = OrderedDict()
        else:
            (pre_vs, vs, hs), chain = theta.scan(lambda h: self.gibbs_hvh(h), outputs_info=[None, None, start],
                                                 n_steps=k, name=f"{self.name}.gibbs")
            pre_v, v_end, h_end = pre_vs[-1], vs[-1], hs[-1]
        cost = T.mean(self.free_energy(x)) - T.mean(self.free_energy(v_end))
        grads = theta.grad(cost, self.params, consider_constant=[v_end])
        updates = OrderedDict(chain)
        for p, g in zip(self.params, grads):
            updates[p] = T.cast(p - lr * g, p.dtype)
        if persistent is not None:
            updates[persistent] = h_end
            return self.pseudo_likelihood(x, updates), updates
        return self.reconstruction_cost(x, pre_v), updates

    def pseudo_likelihood(self, x, updates: OrderedDict):
        """Stochastic approximation of the pseudo-log-likelihood: n_visible times
        ``log P(x_i | x_-i)`` for one bit i per call (i cycles through the visible units)."""
        bit = theta.shared(np.int64(0), name=f"{self.name}.pl_bit")
        xi = T.round(x)
        xi_flip = T.set_subtensor(xi[:, bit], 1 - xi[:, bit])
        updates[bit] = (bit + 1) % self.n_visible
        return T.mean(self.n_visible * T.log(T.nnet.sigmoid(self.free_energy(xi_flip) - self.free_energy(xi))))

    def reconstruction_cost(self, x, pre_v):
        return T.mean(T.sum(T.nnet.sigmoid_binary_crossentropy(pre_v, x), axis=1))


class DeepBeliefNet:
    """Sigmoid layers (models/layers.Dense) sharing W and hidden biases with RBMs.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    srng : RandomStreams
    n_in : int
    hidden : list of int
    """

    def __init__(self, rng: np.random.Generator, srng: RandomStreams, n_in: int, hidden: list) -> None:
        self.layers, self.rbms = [], []
        width = n_in
        for k, n_h in enumerate(hidden):
            layer = Dense(rng, width, n_h, "sigmoid", name=f"h{k}")
            self.layers.append(layer)
            self.rbms.append(RBM(rng, srng, width, n_h, layer.W, layer.b, name=f"rbm{k}"))
            width = n_h

    def pretraining_stages(self, x, lr: float, k: int = 1) -> list:
        out, h = [], x
        for layer, rbm in zip(self.layers, self.rbms):
            out.append(rbm.cd(h, lr, k))
            h = layer(h, train=False)
        return out


def dbn_pretraining_hook(model, data, cfg, epochs: int = 5, lr: float = 0.05) -> list:
    """CD-1 pretraining of the DBN behind a Classifier built by ``classifiers.build('dbn', ...)``.

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
    from .autoencoders import pretrain
    return pretrain(model.stack.pretraining_stages(model.x, lr), model.x, data.train.x, epochs, cfg.batch_size,
                    cfg.backend, cfg.seed)


def train_rbm(data_x: np.ndarray, n_hidden: int = 64, epochs: int = 10, batch_size: int = 20, lr: float = 0.05,
              k: int = 1, persistent: bool = True, seed: int = 1234, backend: str | None = None) -> dict:
    """An RBM on the rows of ``data_x`` by PCD-k (or CD-k); the monitor's mean per epoch
    (pseudo-log-likelihood with PCD: it rises as the model learns).

    Parameters
    ----------
    data_x : numpy.ndarray
    n_hidden : int, optional
    epochs, batch_size : int, optional
    lr : float, optional
    k : int, optional
        Gibbs steps per update (run as a scan).
    persistent : bool, optional
        PCD (True) or CD.
    seed : int, optional
    backend : str, optional

    Returns
    -------
    dict
    """
    from ..minibatch import Minibatches
    rng = np.random.default_rng(seed)
    rbm = RBM(rng, RandomStreams(seed), data_x.shape[1], n_hidden)
    x, index = T.matrix("x"), T.lscalar("index")
    chain = theta.shared(np.zeros((batch_size, n_hidden), dtype=theta.config.floatX), name="pcd_chain") \
        if persistent else None
    mb = Minibatches({"x": data_x}, batch_size, shuffle=True, seed=seed, resident=True, backend=backend,
                     drop_last=persistent)
    monitor, updates = rbm.cd(x, lr, k, chain)
    step = theta.function([index], monitor, updates=updates, givens=mb.givens({x: "x"}, index), name="rbm_step",
                          backend=backend)
    history = []
    for epoch in range(1, epochs + 1):
        history.append({"epoch": epoch, "monitor": float(np.mean([float(step(i)) for i in mb.epoch()]))})
    return {"model": rbm, "history": history}

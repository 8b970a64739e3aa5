"""The supervised models of the seeds, as stacks of layers (models/layers.py) ending in a
softmax: logistic regression, MLPs (tanh; ReLU and maxout with dropout), a LeNet-style convnet,
an MLP with batch normalization and a residual MLP. Each is built by ``build(name, rng, n_in,
n_classes, image)`` into a ``Classifier``: the symbolic training cost (dropout masks, batch
statistics), the evaluation error (no dropout, running statistics), the parameters and the
layers' own updates."""
from __future__ import annotations

__all__ = ["Classifier", "Spec", "spec", "build"]

import dataclasses
from collections import OrderedDict
from typing import Callable

import numpy as np

import theta
import theta.tensor as T
from theta.errors import GraphError
from theta.tensor.shared_randomstreams import RandomStreams

from .layers import BatchNormDense, ConvPool, Dense, Residual, Softmax, apply


class Classifier:
    """Class probabilities from ``layers`` for the rows of ``x`` (reshaped to ``image`` =
    (channels, rows, cols) first for convolutional stacks), with labels ``y``.

    Parameters
    ----------
    layers : list
        Layers of :mod:`theta.models.layers`, the last a ``Softmax``.
    image : tuple, optional
        ``(channels, rows, cols)`` for convolutional stacks.
    """

    def __init__(self, layers: list, image: tuple | None = None) -> None:
        self.x, self.y = T.matrix("x"), T.ivector("y")
        inp = self.x if image is None else self.x.reshape((self.x.shape[0],) + tuple(image))
        p_train, self.updates = apply(layers, inp, train=True)
        p_eval, _ = apply(layers, inp, train=False)
        rows = T.arange(self.y.shape[0])
        # the stabilize pass turns -log(softmax(z))[rows, y] into one fused crossentropy op
        self.cost = -T.mean(T.log(p_train)[rows, self.y])
        self.prediction = T.argmax(p_eval, axis=1)
        self.errors = T.mean(T.neq(self.prediction, self.y))
        # the training loops count wrong rows (an int64) and divide once: models/record.py
        self.n_wrong = T.sum(T.neq(self.prediction, self.y))
        self.layers = layers
        self.params = [p for layer in layers for p in layer.params]
        self.weights = [p for p in self.params if p.name and p.name.endswith(".W")]


@dataclasses.dataclass(frozen=True)
class Spec:
    """A model of the zoo: how to build its layers, on what data, and the quality it reaches.

    Parameters
    ----------
    name, summary, quality : str
    layers : callable
        ``layers(rng, n_in, n_classes, hidden)``: the model's layers.
    max_test_error : float
        The bar the tests assert.
    image : tuple, optional
    lr : float, optional
    optimizer : str, optional
    epochs : int, optional
    pretrain : callable, optional
        A pretraining hook run before supervised training (SdA, DBN).
    """
    name: str
    summary: str
    layers: Callable            # (rng, n_in, n_classes, hidden, srng) -> list of layers
    quality: str                # the bar stated in the README and asserted by tests
    max_test_error: float       # the bar as a number (test error on digits, default options)
    image: tuple | None = None
    lr: float = 0.1
    optimizer: str = "sgd"
    epochs: int = 40
    pretrain: Callable | None = None   # (model, data, cfg) -> curves: unsupervised pretraining first


def _mlp(act: str, pieces: int = 1, dropout: float = 0.0, depth: int = 1):
    def layers(rng, n_in, n_classes, hidden, srng):
        out, width = [], n_in
        for k in range(depth):
            out.append(Dense(rng, width, hidden, act, pieces=pieces, dropout=dropout if k else dropout / 2,
                             srng=srng, name=f"h{k}"))
            width = hidden
        return out + [Softmax(width, n_classes, dropout=dropout, srng=srng)]
    return layers


def _lenet(rng, n_in, n_classes, hidden, srng):
    # digits are 8x8: two 3x3 'half' convolutions with 2x2 max-pooling leave 2x2 maps
    return [ConvPool(rng, 1, 16, 3, 2, name="conv0"), ConvPool(rng, 16, 32, 3, 2, name="conv1"),
            _Flatten(), Dense(rng, 32 * 2 * 2, hidden, "relu", name="h0"), Softmax(hidden, n_classes)]


def _bn_mlp(rng, n_in, n_classes, hidden, srng):
    return [BatchNormDense(rng, n_in, hidden, "relu", name="bn0"), BatchNormDense(rng, hidden, hidden, "relu", name="bn1"),
            Softmax(hidden, n_classes)]


def _resmlp(rng, n_in, n_classes, hidden, srng):
    return ([Dense(rng, n_in, hidden, "relu", name="in")] + [Residual(rng, hidden, name=f"res{k}") for k in range(4)]
            + [Softmax(hidden, n_classes)])


class _Stack(list):
    """Layers that also carry the unsupervised stack pretraining them (SdA, DBN)."""
    stack = None


def _sda(rng, n_in, n_classes, hidden, srng):
    from .autoencoders import StackedDenoisingAutoencoder
    stack = StackedDenoisingAutoencoder(rng, srng, n_in, [hidden, hidden])
    layers = _Stack(stack.layers + [Softmax(hidden, n_classes)])
    layers.stack = stack
    return layers


def _dbn(rng, n_in, n_classes, hidden, srng):
    from .rbm import DeepBeliefNet
    stack = DeepBeliefNet(rng, srng, n_in, [hidden, hidden])
    layers = _Stack(stack.layers + [Softmax(hidden, n_classes)])
    layers.stack = stack
    return layers


def _pretrain_sda(model, data, cfg):
    from .autoencoders import sda_pretraining_hook
    return sda_pretraining_hook(model, data, cfg)


def _pretrain_dbn(model, data, cfg):
    from .rbm import dbn_pretraining_hook
    return dbn_pretraining_hook(model, data, cfg)


class _Flatten:
    params: list = []
    updates: OrderedDict = OrderedDict()

    def __call__(self, x, train: bool = True):
        return x.flatten(2)


MODELS: dict[str, Spec] = {s.name: s for s in [
    Spec("logreg", "softmax regression", lambda rng, n_in, n_classes, hidden, srng: [Softmax(n_in, n_classes)],
         "test error < 6%", 0.06, lr=0.13),
    Spec("mlp", "MLP, one tanh hidden layer", _mlp("tanh"), "test error < 5%", 0.05),
    Spec("relu-dropout", "MLP, two ReLU layers with dropout", _mlp("relu", dropout=0.3, depth=2),
         "test error < 5%", 0.05, lr=0.02, optimizer="momentum"),
    Spec("maxout", "MLP, maxout layer (3 pieces) with dropout", _mlp("linear", pieces=3, dropout=0.2),
         "test error < 5%", 0.05, lr=0.05, optimizer="momentum"),
    Spec("lenet", "LeNet-style convnet: 2 conv+relu+maxpool stages, a ReLU layer", _lenet,
         "test error < 5%", 0.05, image=(1, 8, 8), lr=0.05, optimizer="momentum", epochs=20),
    Spec("bn-mlp", "MLP with batch normalization, two ReLU layers", _bn_mlp, "test error < 5%", 0.05,
         lr=0.05, optimizer="momentum", epochs=20),
    Spec("resmlp", "residual MLP: 4 residual ReLU blocks", _resmlp, "test error < 5%", 0.05,
         lr=0.02, optimizer="momentum", epochs=20),
    Spec("sda", "stacked denoising autoencoders: pretrained, then fine-tuned", _sda, "test error < 5%", 0.05,
         lr=0.1, optimizer="momentum", epochs=20, pretrain=_pretrain_sda),
    Spec("dbn", "deep belief net: RBMs pretrained by CD-1, then fine-tuned", _dbn, "test error < 5%", 0.05,
         lr=0.1, optimizer="momentum", epochs=20, pretrain=_pretrain_dbn),
]}


def spec(name: str) -> Spec:
    """The :class:`Spec` of the zoo's classifier ``name``.

    Parameters
    ----------
    name : str
        ``'logreg'``, ``'mlp'``, ``'relu-dropout'``, ``'maxout'``, ``'lenet'``, ``'bn-mlp'``,
        ``'resmlp'``, ``'sda'``, ``'dbn'``.

    Returns
    -------
    Spec

    Raises
    ------
    KeyError
        An unknown model.
    """
    try:
        return MODELS[name]
    except KeyError:
        raise GraphError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


def build(name: str, rng: np.random.Generator, n_in: int, n_classes: int, hidden: int = 64,
          seed: int = 1234) -> Classifier:
    """Build the classifier ``name`` with fresh parameters.

    Parameters
    ----------
    name : str
        A model of :func:`spec`.
    rng : numpy.random.Generator
        Draws the initial weights.
    n_in, n_classes : int
    hidden : int, optional
        Hidden width.
    seed : int, optional
        Seed of the model's random streams (dropout, corruption).

    Returns
    -------
    Classifier

    Examples
    --------
    >>> model = build("mlp", np.random.default_rng(0), n_in=64, n_classes=10)
    """
    s = spec(name)
    srng = RandomStreams(seed)
    layers = s.layers(rng, n_in, n_classes, hidden, srng)
    model = Classifier(list(layers), s.image)
    model.stack = getattr(layers, "stack", None)
    return model

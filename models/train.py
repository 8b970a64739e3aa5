"""Minibatch SGD training of the models on an embedded dataset (the `theta train` job).

The classic Theano pattern: the dataset lives in shared variables, and a minibatch is a
symbolic slice of it selected by an integer index through ``givens`` (on a device backend
that is an offset into device memory, not a copy).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

import theta
import theta.tensor as T

from ..runtime.data import Minibatches
from .data import Dataset, load_digits
from .logreg import LogisticRegression
from .mlp import MLP


@dataclasses.dataclass
class TrainConfig:
    model: str = "mlp"            # "logreg" | "mlp"
    epochs: int = 40
    batch_size: int = 20
    learning_rate: float = 0.1
    n_hidden: int = 64
    l2: float = 1e-4
    seed: int = 1234
    backend: str | None = None
    patience: int = 10            # epochs without validation improvement before stopping


@dataclasses.dataclass
class TrainResult:
    model: str
    epochs_run: int
    best_epoch: int
    valid_error: float
    test_error: float
    seconds: float
    history: list


def train(cfg: TrainConfig, data: Dataset | None = None, progress: bool = True) -> TrainResult:
    data = data or load_digits(theta.config.floatX, seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    x, y, index = T.matrix("x"), T.ivector("y"), T.lscalar("index")
    if cfg.model == "logreg":
        model = LogisticRegression(x, data.n_in, data.n_classes)
        cost = model.negative_log_likelihood(y)
    elif cfg.model == "mlp":
        model = MLP(rng, x, data.n_in, cfg.n_hidden, data.n_classes)
        cost = model.negative_log_likelihood(y) + cfg.l2 * model.l2
    else:
        raise ValueError(f"unknown model {cfg.model!r}; choose 'logreg' or 'mlp'")

    bs = cfg.batch_size
    # Datasets live in shared variables (uploaded once on a GPU); a minibatch is a slice selected
    # by the integer `index` through givens. The training set is reshuffled every epoch.
    sets = {name: Minibatches({"x": split.x, "y": split.y}, bs, shuffle=(name == "train"), seed=cfg.seed,
                              resident=True, backend=cfg.backend)
            for name, split in (("train", data.train), ("valid", data.valid), ("test", data.test))}

    grads = theta.grad(cost, model.params)
    updates = [(p, p - cfg.learning_rate * g) for p, g in zip(model.params, grads)]
    train_step = theta.function([index], cost, updates=updates, givens=sets["train"].givens({x: "x", y: "y"}, index),
                                name="train_step", backend=cfg.backend)
    error_fns = {name: theta.function([index], model.errors(y), givens=sets[name].givens({x: "x", y: "y"}, index),
                                      name=f"{name}_errors", backend=cfg.backend)
                 for name in ("valid", "test")}

    def error_rate(name) -> float:
        mb = sets[name]
        wrong = sum(float(error_fns[name](i)) * mb.batch_length(i) for i in mb.epoch())
        return wrong / mb.n

    best = (np.inf, 0, np.inf)  # valid error, epoch, test error at that epoch
    best_params = [p.get_value() for p in model.params]
    history = []
    start = time.perf_counter()
    bar = _progress(cfg.epochs, cfg.model, progress)
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        costs = [float(train_step(i)) for i in sets["train"].epoch()]
        valid = error_rate("valid")
        history.append({"epoch": epoch, "cost": float(np.mean(costs)), "valid_error": valid})
        if valid < best[0]:
            best = (valid, epoch, error_rate("test"))
            best_params = [p.get_value() for p in model.params]
        bar.update(1)
        bar.set_postfix(cost=f"{np.mean(costs):.4f}", valid=f"{100 * valid:.2f}%", best=f"{100 * best[0]:.2f}%")
        if epoch - best[1] >= cfg.patience:
            break
    bar.close()
    for p, v in zip(model.params, best_params):
        p.set_value(v)
    return TrainResult(cfg.model, epoch, best[1], best[0], best[2], time.perf_counter() - start, history)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=f"train {desc}", unit="epoch", disable=not enabled, leave=True)

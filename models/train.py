"""Minibatch training of the zoo's classifiers on an embedded dataset (the `theta train` job).

The classic Theano pattern: the dataset lives in shared variables, and a minibatch is a
symbolic slice of it selected by an integer index through ``givens`` (on a device backend
that is an offset into device memory, not a copy). The update rule is one of models/optim.py;
early stopping keeps the parameters of the best validation epoch (restored at the end).
"""
from __future__ import annotations

__all__ = ["TrainingDiverged", "TrainConfig", "TrainResult", "Setup", "setup", "train", "train_distributed"]

import dataclasses
import math
import time

import numpy as np

import theta
from theta.errors import NanError, ThetaError

from ..minibatch import Minibatches
from . import checkpoint, optim
from .classifiers import build, spec
from .data import Dataset, load_digits
from .paths import check_output_dir
from .record import Record, error_rate


class TrainingDiverged(NanError):
    """The training cost became NaN or infinite."""


@dataclasses.dataclass
class TrainConfig:
    """The options of a training run (``theta train``'s command-line options).

    Parameters
    ----------
    model : str, optional
        A model of the zoo (``theta list``).
    epochs : int, optional
        Default the model's.
    batch_size : int, optional
    learning_rate : float, optional
        Default the model's.
    optimizer : str, optional
        Default the model's (see :func:`theta.models.optim.get`).
    n_hidden : int, optional
    l2 : float, optional
        Weight decay.
    seed : int, optional
    backend : str, optional
    patience : int, optional
        Epochs without a better validation error before stopping early.
    out : str, optional
        Directory for checkpoints.
    resume : bool, optional
        Continue from the checkpoint in ``out``.
    overwrite : bool, optional
    distributed : bool, optional
        Data-parallel training under mpiexec.
    """
    model: str = "mlp"            # a name of models.classifiers.MODELS
    epochs: int | None = None     # None: the model's default
    batch_size: int = 20
    learning_rate: float | None = None   # None: the model's default
    optimizer: str | None = None         # None: the model's default (models.optim.OPTIMIZERS)
    n_hidden: int = 64
    l2: float = 1e-4
    seed: int = 1234
    backend: str | None = None
    patience: int = 10            # epochs without validation improvement before stopping
    out: str | None = None        # a directory for the checkpoint written after every epoch
    resume: bool = False          # continue from the checkpoint in ``out`` if there is one
    overwrite: bool = False       # start over even if ``out`` holds a checkpoint
    distributed: bool = False     # data-parallel over the MPI ranks (train_distributed)

    def identity(self) -> dict:
        """What a checkpoint must agree on to be resumed (not the epoch budget)."""
        keys = ("model", "batch_size", "learning_rate", "optimizer", "n_hidden", "l2", "seed", "backend")
        return {k: getattr(self, k) for k in keys} | {"floatX": theta.config.floatX}


@dataclasses.dataclass
class TrainResult:
    """What a training run reports.

    Parameters
    ----------
    model : str
    epochs_run, best_epoch : int
    valid_error, test_error : float
        Error rates of the best validation epoch's parameters.
    seconds : float
    history : list
        Per-epoch figures (cost, validation error...).
    stopped_early : bool, optional
    backend, floatX : str, optional
    pretraining : list, optional
    state : dict, optional
        The final parameter values.
    """
    model: str
    epochs_run: int
    best_epoch: int
    valid_error: float
    test_error: float
    seconds: float
    history: list
    stopped_early: bool = False
    backend: str = "reference"
    floatX: str = "float32"
    pretraining: list = dataclasses.field(default_factory=list)   # per layer, the cost per epoch
    state: dict = dataclasses.field(default_factory=dict)         # name -> final value of each state variable


@dataclasses.dataclass
class Setup:
    """What a training run compiles: the model, its training cost and the step's updates.

    Parameters
    ----------
    spec : Spec
    model : Classifier
    cost : Variable
    updates : dict
    epochs : int
    lr : float
    optimizer : str
    """
    spec: object
    model: object
    cost: object
    updates: dict
    epochs: int
    lr: float
    optimizer: str


def setup(cfg: TrainConfig, data: Dataset) -> Setup:
    """The model of ``cfg`` with its cost (plus L2) and updates (the update rule's, then the
    layers' running statistics); shared by `theta train` and `theta compile`.

    Parameters
    ----------
    cfg : TrainConfig
    data : Dataset

    Returns
    -------
    Setup
    """
    s = spec(cfg.model)
    lr = cfg.learning_rate if cfg.learning_rate is not None else s.lr
    name = cfg.optimizer or s.optimizer
    model = build(cfg.model, np.random.default_rng(cfg.seed), data.n_in, data.n_classes, cfg.n_hidden, cfg.seed)
    cost = model.cost + optim.penalty(model.weights, l2=cfg.l2) if cfg.l2 else model.cost
    updates = optim.get(name)(cost, model.params, learning_rate=lr)
    updates.update(model.updates)           # running statistics of batch-norm layers
    return Setup(s, model, cost, updates, cfg.epochs or s.epochs, lr, name)


def train(cfg: TrainConfig, data: Dataset | None = None, progress: bool = True) -> TrainResult:
    """Train a classifier of the zoo on the digits with minibatch SGD and early stopping (``theta train``).

    The dataset lives in shared variables and a minibatch is an index (``givens``); each epoch
    reshuffles it in place. The parameters of the best validation epoch are kept; a NaN cost stops
    the run with :class:`TrainingDiverged`. With ``cfg.out`` a checkpoint is written after every
    epoch and ``cfg.resume`` continues from it bitwise.

    Parameters
    ----------
    cfg : TrainConfig
    data : Dataset, optional
        Default :func:`theta.models.data.load_digits`.
    progress : bool, optional
        Print a line per epoch.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingDiverged
        The cost became NaN or infinite.

    Examples
    --------
    >>> result = train(TrainConfig(model="mlp", epochs=5))
    >>> result.test_error
    """
    if cfg.out:     # before any work: a run must not find out after its first epoch
        check_output_dir(cfg.out, "--out")
        if not cfg.resume and not cfg.overwrite and checkpoint.exists(cfg.out):
            raise checkpoint.ArtifactError(f"{cfg.out} already holds a checkpoint: pass --resume to continue that "
                                           "run, or --overwrite to start over")
    data = data or load_digits(theta.config.floatX, seed=cfg.seed)
    run = setup(cfg, data)
    s, model, cost, updates, epochs, lr = run.spec, run.model, run.cost, run.updates, run.epochs, run.lr
    x, y, index = model.x, model.y, theta.tensor.lscalar("index")

    bs = cfg.batch_size
    # Datasets live in shared variables (uploaded once on a GPU); a minibatch is a slice selected
    # by the integer `index` through givens. The training set is reshuffled every epoch.
    sets = {name: Minibatches({"x": split.x, "y": split.y}, bs, shuffle=(name == "train"), seed=cfg.seed,
                              resident=True, backend=cfg.backend)
            for name, split in (("train", data.train), ("valid", data.valid), ("test", data.test))}

    train_step = theta.function([index], cost, updates=updates, givens=sets["train"].givens({x: "x", y: "y"}, index),
                                name="train_step", backend=cfg.backend)
    count_fns = {name: theta.function([index], model.n_wrong, givens=sets[name].givens({x: "x", y: "y"}, index),
                                      name=f"{name}_errors", backend=cfg.backend)
                 for name in ("valid", "test")}
    kept = list(updates)                    # everything a step writes: restored with the best epoch
    # a checkpoint holds every shared variable the step reads or writes but the data itself
    # (parameters, optimizer state, running statistics, random-stream states)
    data_vars = {id(v) for mb in sets.values() for v in mb.shared.values()}
    state_vars = [v for v in train_step.shared if id(v) not in data_vars]
    start = time.perf_counter()
    saved = (checkpoint.load(cfg.out, cfg.identity(), state_vars, kept, sets["train"].n) if cfg.out and cfg.resume
             else None)
    pretraining = s.pretrain(model, data, cfg) if s.pretrain is not None and saved is None else []

    def rate(name) -> float:
        return error_rate((count_fns[name](i) for i in sets[name].epoch()), sets[name].n)

    record, first = Record(cfg.patience, [p.get_value() for p in kept]), 1
    if saved is not None:
        first, pretraining = record.resume(saved["trainer"], saved["best_values"]), saved["trainer"]["pretraining"]
        sets["train"].restore(saved["position"])
    bar = _progress(epochs, cfg.model, progress)
    bar.update(first - 1)
    epoch, stopped = first - 1, False
    for epoch in range(first, epochs + 1):
        costs = []
        for step, i in enumerate(sets["train"].epoch()):
            c = float(train_step(i))
            if not math.isfinite(c):
                bar.close()
                raise TrainingDiverged(
                    f"{cfg.model}: the training cost became {c} at epoch {epoch}, minibatch {step} "
                    f"(learning rate {lr}, optimizer {run.optimizer}); try a lower --lr, or set "
                    "THETA_FLAGS=nan_guard=True to stop at the first op that makes a NaN or Inf")
            costs.append(c)
        valid = rate("valid")
        record.end_epoch(epoch, costs, valid, lambda: rate("test"), lambda: [p.get_value() for p in kept])
        if cfg.out:
            checkpoint.save(cfg.out, cfg.identity(), state_vars, record.best_values, sets["train"].position(),
                            record.trainer(epoch, pretraining))
        bar.update(1)
        bar.set_postfix(cost=f"{np.mean(costs):.4f}", valid=f"{100 * valid:.2f}%", best=f"{100 * record.best[0]:.2f}%")
        if record.stop(epoch):
            stopped = epoch < epochs
            break
    bar.close()
    for p, v in zip(kept, record.best_values):
        p.set_value(v)
    best = record.best
    return TrainResult(cfg.model, epoch, best[1], best[0], best[2], time.perf_counter() - start, record.history,
                       stopped, train_step.options.backend, theta.config.floatX, pretraining,
                       {v.name: v.get_value() for v in state_vars})


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=f"train {desc}", unit="epoch", disable=not enabled, leave=True)


def train_distributed(cfg: TrainConfig, data: Dataset | None = None, progress: bool = True) -> TrainResult:
    """`theta train --distributed` under mpiexec: synchronous data-parallel SGD
    (theta.distributed.DataParallel), each rank computing the gradient of ``batch_size`` rows of
    a global minibatch of ``batch_size * ranks``; errors are counted over shards and summed.

    Parameters
    ----------
    cfg : TrainConfig
    data : Dataset, optional
    progress : bool, optional

    Returns
    -------
    TrainResult
    """
    import theta.distributed as dist
    world = dist.init()
    data = data or load_digits(theta.config.floatX, seed=cfg.seed)
    run = setup(cfg, data)
    if run.model.updates or run.spec.pretrain is not None:
        raise ThetaError(f"{cfg.model} keeps running statistics or pretrains: --distributed trains the other "
                         "classifiers")
    model = run.model
    step = dist.DataParallel([model.x, model.y], run.cost, model.params, optim.get(run.optimizer),
                             learning_rate=run.lr, backend=cfg.backend)
    count = theta.function([model.x, model.y], model.n_wrong, backend=cfg.backend)

    def rate(split) -> float:
        part = slice(world.rank, None, world.size)
        # the all-reduce adds in float64: exact for counts of rows
        return error_rate([round(world.sum(int(count(split.x[part], split.y[part]))))], len(split))

    bs, n = cfg.batch_size * world.size, len(data.train)
    order = np.arange(n)
    record = Record(cfg.patience, [p.get_value() for p in model.params])
    bar = _progress(run.epochs, f"{cfg.model} on {world.size} ranks", progress and world.rank == 0)
    start, epoch, stopped = time.perf_counter(), 0, False
    for epoch in range(1, run.epochs + 1):
        order = order[np.random.default_rng([cfg.seed, epoch - 1]).permutation(n)]
        costs = [step(data.train.x[order[i:i + bs]], data.train.y[order[i:i + bs]]) for i in range(0, n, bs)]
        if not all(math.isfinite(c) for c in costs):
            raise TrainingDiverged(f"{cfg.model}: the training cost became NaN or infinite in epoch {epoch}; "
                                   "try a lower --lr")
        valid = rate(data.valid)
        record.end_epoch(epoch, costs, valid, lambda: rate(data.test), lambda: [p.get_value() for p in model.params])
        bar.update(1)
        if record.stop(epoch):
            stopped = epoch < run.epochs
            break
    bar.close()
    for p, v in zip(model.params, record.best_values):
        p.set_value(v)
    best = record.best
    return TrainResult(cfg.model, epoch, best[1], best[0], best[2], time.perf_counter() - start, record.history,
                       stopped, f"{cfg.backend or theta.config.backend} x {world.size} ranks", theta.config.floatX)

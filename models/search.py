"""Random search over hyperparameters (Bergstra & Bengio, 2012): each trial samples every
hyperparameter independently (learning rates and weight decay log-uniformly, sizes from a
list), trains the classifier, and the best validation error wins. Unlike a grid, N trials try N
distinct values of every hyperparameter, which matters when only a few of them matter."""
from __future__ import annotations

__all__ = ["Trial", "sample", "random_search"]

import dataclasses

import numpy as np

from theta.errors import GraphError

from . import classifiers


@dataclasses.dataclass
class Trial:
    """One trial of a random search.

    Parameters
    ----------
    params : dict
        The sampled hyperparameters.
    valid_error, test_error : float
    epochs_run : int
    seconds : float
    """
    params: dict
    valid_error: float
    test_error: float
    epochs_run: int
    seconds: float


def sample(rng: np.random.Generator, base_lr: float) -> dict:
    """One draw: the learning rate log-uniform over [base/10, base*10], L2 log-uniform over
    [1e-6, 1e-2], the hidden width from (32, 64, 128), the batch size from (10, 20, 50).

    Parameters
    ----------
    rng : numpy.random.Generator
    base_lr : float
        The model's default learning rate.

    Returns
    -------
    dict
    """
    return {"learning_rate": float(np.exp(rng.uniform(np.log(base_lr / 10), np.log(base_lr * 10)))),
            "l2": float(np.exp(rng.uniform(np.log(1e-6), np.log(1e-2)))),
            "n_hidden": int(rng.choice([32, 64, 128])),
            "batch_size": int(rng.choice([10, 20, 50]))}


def random_search(model: str, trials: int, epochs: int | None = None, seed: int = 1234,
                  backend: str | None = None, report=None) -> list[Trial]:
    """``trials`` trainings of ``model`` with sampled hyperparameters, best first.

    Parameters
    ----------
    model : str
    trials : int
    epochs : int, optional
    seed : int, optional
    backend : str, optional
    report : callable, optional
        Called with each finished trial.

    Returns
    -------
    list of Trial
    """
    from .train import TrainConfig, TrainingDiverged, train
    spec = classifiers.spec(model)
    if trials < 1:
        raise GraphError(f"random search needs at least one trial, got {trials}")
    rng = np.random.default_rng(seed)
    done = []
    for k in range(trials):
        params = sample(rng, spec.lr)
        try:
            r = train(TrainConfig(model=model, epochs=epochs, seed=seed + k, backend=backend, **params), progress=False)
            trial = Trial(params, r.valid_error, r.test_error, r.epochs_run, r.seconds)
        except TrainingDiverged:
            trial = Trial(params, float("inf"), float("inf"), 0, 0.0)   # a diverging rate is a bad draw
        done.append(trial)
        if report is not None:
            report(k, trial)
    return sorted(done, key=lambda t: t.valid_error)

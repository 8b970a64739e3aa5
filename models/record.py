"""What every training loop of the zoo shares, so that `theta train`, `theta run JOB` and
`theta train --distributed` report the same figures for the same run: error rates counted
exactly, and the early-stopping record (best validation epoch, earliest of a tie).

An error rate is the number of misclassified rows, added up over the minibatches as integers,
divided once by the number of rows. A mean of per-minibatch rates weighs a short last minibatch
like a full one, and rates rounded in floatX make equal counts compare unequal, so one loop
would keep epoch 4 of a tie and another epoch 3.
"""
from __future__ import annotations

__all__ = ["error_rate", "Record"]

import math
from typing import Callable, Iterable

import numpy as np

from theta.errors import InternalError


def error_rate(counts: Iterable, n: int) -> float:
    """The fraction of ``n`` rows misclassified, from the count of wrong rows in each part.

    Parameters
    ----------
    counts : iterable of int
        Wrong rows per minibatch or shard (integers, or integer scalars a compiled function returns).
    n : int
        Rows in the whole set.

    Returns
    -------
    float
    """
    total = 0
    for c in counts:
        a = np.asarray(c)
        if a.shape != () or a.dtype.kind not in "iub":
            # a rate where a count belongs would be added wrongly, silently
            raise InternalError(f"error_rate counts wrong rows: got {a.dtype} of shape {a.shape}, not an integer")
        total += int(a)
    return total / n


class Record:
    """The early-stopping record of a run: the per-epoch history, the best validation epoch
    (strictly better only, so the earliest of tied epochs is kept) with its test error and the
    values kept from it. Its ``trainer`` dict is what a checkpoint saves and ``resume`` reads.

    Parameters
    ----------
    patience : int
        Epochs without a better validation error before stopping.
    values : list
        The kept values before any epoch (the initial parameters).
    """

    def __init__(self, patience: int, values: list) -> None:
        self.patience = patience
        self.best: tuple = (math.inf, 0, math.inf)   # valid error, epoch, test error at that epoch
        self.best_values = values
        self.history: list = []

    def end_epoch(self, epoch: int, costs: list, valid: float, test: Callable[[], float],
                  values: Callable[[], list]) -> bool:
        """Record epoch ``epoch``; on a better validation error call ``test()`` and ``values()``
        (only then: they cost an evaluation and a copy). Returns whether it was better."""
        self.history.append({"epoch": epoch, "cost": float(np.mean(costs)), "valid_error": valid})
        if valid < self.best[0]:
            self.best = (valid, epoch, test())
            self.best_values = values()
            return True
        return False

    def stop(self, epoch: int) -> bool:
        """Whether ``patience`` epochs have passed since the best one."""
        return epoch - self.best[1] >= self.patience

    def trainer(self, epoch: int, pretraining: list | None = None) -> dict:
        """The loop's state for a checkpoint."""
        return {"epoch": epoch, "best": list(self.best), "history": self.history, "pretraining": pretraining or []}

    def resume(self, trainer: dict, best_values: list) -> int:
        """Continue from a checkpoint's ``trainer`` state; returns the first epoch still to run."""
        self.best, self.history, self.best_values = tuple(trainer["best"]), trainer["history"], best_values
        return trainer["epoch"] + 1

"""Datasets for the models: scikit-learn's digits (1797 8x8 images, shipped inside the package,
so no download), split deterministically into train/validation/test."""
from __future__ import annotations

__all__ = ["Split", "Dataset", "load_digits"]

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Split:
    """One part of a dataset.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, features)`` floatX in [0, 1].
    y : numpy.ndarray
        ``(n,)`` int32 labels.
    """
    x: np.ndarray  # (n, features) floatX in [0, 1]
    y: np.ndarray  # (n,) int32 labels

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset split into train, validation and test parts.

    Parameters
    ----------
    train, valid, test : Split
    n_in : int
        Features per example.
    n_classes : int
    """
    train: Split
    valid: Split
    test: Split
    n_in: int
    n_classes: int


def load_digits(dtype: str = "float32", seed: int = 1234, valid_fraction: float = 1 / 6,
                test_fraction: float = 1 / 6) -> Dataset:
    """Digits scaled to [0, 1], shuffled with ``seed``, split train/valid/test.

    scikit-learn's digits (1797 8x8 images), shipped with scikit-learn: no download.

    Parameters
    ----------
    dtype : str, optional
    seed : int, optional
        The shuffle's seed.
    valid_fraction, test_fraction : float, optional

    Returns
    -------
    Dataset
    """
    from sklearn.datasets import load_digits as _load
    bunch = _load()
    x = (bunch.data / 16.0).astype(dtype)
    y = bunch.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    n_test = int(round(len(y) * test_fraction))
    n_valid = int(round(len(y) * valid_fraction))
    n_train = len(y) - n_valid - n_test
    cut = [n_train, n_train + n_valid]
    return Dataset(Split(x[:cut[0]], y[:cut[0]]), Split(x[cut[0]:cut[1]], y[cut[0]:cut[1]]),
                   Split(x[cut[1]:], y[cut[1]:]), n_in=x.shape[1], n_classes=int(y.max()) + 1)

"""The pictures `theta train` writes: learning curves and first-layer filters (matplotlib's
Agg backend: files only, no display needed)."""
from __future__ import annotations

__all__ = ["learning_curve", "filters"]

import math
import pathlib

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def learning_curve(history: list, path, title: str, x: str = "epoch", left: str = "cost",
                   right: str | None = "valid_error") -> pathlib.Path:
    """``left`` (and ``right``, on a second axis, in %) of ``history``'s entries against ``x``.

    Parameters
    ----------
    history : list of dict
    path : path
    title : str
    x, left : str, optional
        Keys of the entries.
    right : str or None, optional

    Returns
    -------
    pathlib.Path
    """
    plt = _pyplot()
    rows = [h for h in history if left in h]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([h[x] for h in rows], [h[left] for h in rows], color="tab:blue", label=left.replace("_", " "))
    ax.set_xlabel(x)
    ax.set_ylabel(left.replace("_", " "), color="tab:blue")
    if right is not None and any(right in h for h in history):
        twin = ax.twinx()
        rows = [h for h in history if right in h]
        twin.plot([h[x] for h in rows], [100 * h[right] for h in rows], color="tab:red")
        twin.set_ylabel(right.replace("_", " ") + " (%)", color="tab:red")
    ax.set_title(title)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def filters(weights: np.ndarray, path, title: str, image: tuple = (8, 8), limit: int = 64) -> pathlib.Path:
    """The first ``limit`` filters as a grid of images: the columns of a dense layer's (pixels x
    units) matrix, or a conv layer's (filters, channels, rows, cols) first channel.

    Parameters
    ----------
    weights : numpy.ndarray
    path : path
    title : str
    image : tuple, optional
        The shape of one filter's image.
    limit : int, optional

    Returns
    -------
    pathlib.Path
    """
    plt = _pyplot()
    w = np.asarray(weights)
    tiles = w[:limit, 0] if w.ndim == 4 else w.T[:limit].reshape((-1,) + tuple(image))
    n = len(tiles)
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8 + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(tiles[k], cmap="gray", interpolation="nearest")
    fig.suptitle(title, fontsize=9)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

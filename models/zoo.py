"""Every model `theta train` knows: the classifiers (models/classifiers.py, trained by
models/train.py) and the unsupervised and recurrent models, each with its quality bar.

``run(name, options)`` trains one and returns an ``Outcome``: the figures the CLI prints and
the tests assert (the bars are stated in the README and by `theta list`).
"""
from __future__ import annotations

__all__ = ["Outcome", "pictures", "Entry", "entry"]

import dataclasses
import time
from typing import Callable

import theta
from theta.errors import GraphError

from . import classifiers


@dataclasses.dataclass
class Outcome:
    """The result of running one model of the zoo against its bar.

    Parameters
    ----------
    model : str
    figures : dict
        The measured figures (errors, MSE...).
    passed : bool
        Whether the bar was met.
    seconds : float
    note : str, optional
    result : object, optional
        The underlying training result.
    pictures : list, optional
        Paths of the PNGs drawn.
    """
    model: str
    figures: dict            # name -> value, in print order
    passed: bool             # the quality bar
    seconds: float
    note: str = ""
    result: object = None    # the trainer's own result (TrainResult, histories)
    pictures: list = dataclasses.field(default_factory=list)   # PNG files written


def pictures(outcome: Outcome, directory) -> list:
    """Write ``outcome``'s learning curve and first-layer filters as PNGs into ``directory``.

    Parameters
    ----------
    outcome : Outcome
    directory : path

    Returns
    -------
    list of pathlib.Path
    """
    import pathlib
    from . import plots
    d, name, r = pathlib.Path(directory), outcome.model, outcome.result
    out = []
    if isinstance(r, dict):          # unsupervised and recurrent runs: their histories
        key = {"dae": "reconstruction_error", "rbm": "monitor"}.get(name, "test_mse")
        out.append(plots.learning_curve(r["history"], d / f"{name}-curve.png", f"{name}: {key.replace('_', ' ')}",
                                        x="step" if key == "test_mse" else "epoch", left=key, right=None))
        if "model" in r:
            out.append(plots.filters(r["model"].W.get_value(), d / f"{name}-filters.png", f"{name}: filters"))
        return out
    out.append(plots.learning_curve(r.history, d / f"{name}-curve.png", f"{name}: training cost, validation error"))
    first = next((v for k, v in r.state.items() if k.endswith(".W") and (v.ndim == 4 or v.shape[0] == 64)), None)
    if first is not None:
        out.append(plots.filters(first, d / f"{name}-filters.png", f"{name}: first layer's filters"))
    return out


@dataclasses.dataclass(frozen=True)
class Entry:
    """A model ``theta train`` knows: how to run it and the quality bar it must reach.

    Parameters
    ----------
    name, summary, quality, defaults : str
    run : callable
        Trains the model; returns an :class:`Outcome`.
    dataset : str, optional
    """
    name: str
    summary: str
    quality: str
    defaults: str
    run: Callable             # (options: dict) -> Outcome
    dataset: str = "digits (scikit-learn, embedded)"


def _classifier(name: str) -> Entry:
    spec = classifiers.MODELS[name]

    def run(o: dict) -> Outcome:
        from .train import TrainConfig, train, train_distributed
        r = (train_distributed if o.get("distributed") else train)(TrainConfig(model=name, epochs=o.get("epochs"), batch_size=o.get("batch_size", 20),
                              learning_rate=o.get("lr"), optimizer=o.get("optimizer"), n_hidden=o.get("hidden", 64),
                              seed=o.get("seed", 1234), backend=o.get("backend"), out=o.get("out"),
                              resume=o.get("resume", False), overwrite=o.get("overwrite", False),
                              distributed=o.get("distributed", False)),
                  progress=o.get("progress", False))
        note = f"early stop: kept epoch {r.best_epoch} of {r.epochs_run}" if r.stopped_early else ""
        return Outcome(name, {"epochs": r.epochs_run, "best epoch": r.best_epoch,
                              "valid err": f"{100 * r.valid_error:.2f}%", "test err": f"{100 * r.test_error:.2f}%"},
                       r.test_error < spec.max_test_error, r.seconds, note, r)

    return Entry(name, spec.summary, spec.quality, f"{spec.optimizer} lr={spec.lr} {spec.epochs} ep", run)


def _dae(o: dict) -> Outcome:
    from .autoencoders import train_dae
    from .data import load_digits
    start = time.perf_counter()
    r = train_dae(load_digits(theta.config.floatX, seed=o.get("seed", 1234)).train.x, n_hidden=o.get("hidden", 64),
                  epochs=o.get("epochs") or 15, batch_size=o.get("batch_size", 20), lr=o.get("lr") or 0.1,
                  seed=o.get("seed", 1234), backend=o.get("backend"))
    first, last = r["history"][0]["reconstruction_error"], r["history"][-1]["reconstruction_error"]
    return Outcome("dae", {"epochs": len(r["history"]) - 1, "recon err start": f"{first:.3f}",
                           "recon err end": f"{last:.3f}"}, last < 0.25 * first, time.perf_counter() - start, "", r)


def _rbm(o: dict) -> Outcome:
    from .data import load_digits
    from .rbm import train_rbm
    start = time.perf_counter()
    r = train_rbm(load_digits(theta.config.floatX, seed=o.get("seed", 1234)).train.x, n_hidden=o.get("hidden", 64),
                  epochs=o.get("epochs") or 10, batch_size=o.get("batch_size", 20), lr=o.get("lr") or 0.05,
                  seed=o.get("seed", 1234), backend=o.get("backend"))
    first, last = r["history"][0]["monitor"], r["history"][-1]["monitor"]
    return Outcome("rbm", {"epochs": len(r["history"]), "pseudo-LL first epoch": f"{first:.2f}",
                           "pseudo-LL last epoch": f"{last:.2f}"}, last > first + 5, time.perf_counter() - start, "", r)


def _adding(cell: str) -> Callable:
    def run(o: dict) -> Outcome:
        from .recurrent import train_adding
        start = time.perf_counter()
        r = train_adding(cell, length=20, n_hidden=o.get("hidden") or 32, steps=(o.get("epochs") or 6) * 50,
                         batch_size=o.get("batch_size", 20), lr=o.get("lr") or 0.01, seed=o.get("seed", 1234),
                         backend=o.get("backend"))
        return Outcome(cell, {"steps": r["history"][-1]["step"], "length": 20, "test mse": f"{r['test_mse']:.4f}",
                              "predict-the-mean mse": "0.1667"}, r["test_mse"] < 0.05, time.perf_counter() - start,
                       "", r)
    return run


ZOO: dict[str, Entry] = {name: _classifier(name) for name in classifiers.MODELS}
ZOO.update({
    "dae": Entry("dae", "denoising autoencoder, tied weights, masking noise 0.3", "recon error falls to < 25%",
                 "sgd lr=0.1 15 ep", _dae),
    "rbm": Entry("rbm", "RBM trained by persistent CD-1", "pseudo-LL rises by > 5 nats", "pcd lr=0.05 10 ep", _rbm),
    "rnn": Entry("rnn", "tanh RNN on the adding problem (T=20)", "test mse < 0.05 (fails)", "adam lr=0.01 300 steps",
                 _adding("rnn"), "adding problem (generated)"),
    "lstm": Entry("lstm", "LSTM on the adding problem (T=20)", "test mse < 0.05", "adam lr=0.01 300 steps",
                  _adding("lstm"), "adding problem (generated)"),
})


def entry(name: str) -> Entry:
    """The zoo :class:`Entry` called ``name`` (``theta list`` shows them).

    Parameters
    ----------
    name : str

    Returns
    -------
    Entry

    Raises
    ------
    KeyError
        An unknown model.
    """
    try:
        return ZOO[name]
    except KeyError:
        raise GraphError(f"unknown model {name!r}; `theta list` shows the models ({', '.join(ZOO)})") from None

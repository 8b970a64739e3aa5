"""Training checkpoints: one file, written atomically, holding everything a run needs to go on
exactly where it stopped: the values of every shared variable a step writes or draws from
(parameters, optimizer state, batch-norm statistics, random-stream states), the data position
(epochs done and the row order), and the trainer's own state (best epoch, kept parameters,
history). A resumed run on the same backend ends bitwise equal to the uninterrupted one."""
from __future__ import annotations

__all__ = ["save", "exists", "load"]

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from theta.errors import ArtifactError

from .schema import NAT, NUMBER, POSITIVE, TEXT, Field, fail, validate

FILE = "checkpoint.npz"
FORMAT = 1
HINT = "remove it to start over"


def _is_rate(v) -> bool:
    return type(v) in (int, float) and 0 <= v <= 1


_RATE = Field((float,), _is_rate, "an error rate in [0, 1]")
# the meta's fields (the arrays are checked against the model: _check_arrays)
META = {
    "format": Field((int,), lambda v: v == FORMAT, f"{FORMAT} (the checkpoint format this theta reads)"),
    "identity": Field((dict,), keys=Field((str, int, float, bool, type(None)))),
    "names": Field((list,), items=TEXT),
    "epochs_done": NAT,
    "trainer": Field((dict,), fields={
        "epoch": POSITIVE,
        "best": Field((list,), lambda v: len(v) == 3 and _is_rate(v[0]) and type(v[1]) is int and _is_rate(v[2]),
                      "[valid error, epoch, test error]"),
        "history": Field((list,), items=Field((dict,), fields={"epoch": POSITIVE, "cost": NUMBER,
                                                               "valid_error": _RATE})),
        "pretraining": Field((list,), items=Field((list,), items=NUMBER)),
    }),
}


def save(directory, identity: dict, shared: list, best_values: list, data_position: dict, trainer: dict) -> Path:
    """Write the checkpoint; the previous one stays intact until the new one is complete.

    Parameters
    ----------
    directory : path
    identity : dict
        The run's model and options (checked on load).
    shared : list of SharedVariable
        Every shared variable the step writes or draws from.
    best_values : list
        The best validation epoch's parameter values.
    data_position : dict
        The epoch, minibatch and data order.
    trainer : dict
        The loop's own state.

    Returns
    -------
    pathlib.Path
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"s{k}": v.get_value() for k, v in enumerate(shared)}
    arrays.update({f"b{k}": v for k, v in enumerate(best_values)})
    arrays["order"] = np.asarray(data_position["order"], dtype=np.int64)
    meta = {"format": FORMAT, "identity": identity, "names": [v.name for v in shared],
            "epochs_done": int(data_position["epochs_done"]), "trainer": trainer}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".checkpoint-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / FILE)     # atomic: a reader sees the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return directory / FILE


def exists(directory) -> bool:
    """Whether ``directory`` holds a checkpoint.

    Parameters
    ----------
    directory : path

    Returns
    -------
    bool
    """
    return (Path(directory) / FILE).exists()


def load(directory, identity: dict, shared: list, best: list | None = None, rows: int | None = None) -> dict | None:
    """The saved state, after checking it belongs to this run (same model and options) and is
    whole, with the shared variables set to their saved values; None when there is no
    checkpoint yet. Nothing is set unless every check passes.

    Raises
    ------
    ArtifactError
        A checkpoint of another run, or a damaged or edited one (naming the field).

    Parameters
    ----------
    directory : path
    identity : dict
    shared : list of SharedVariable
    best : list of SharedVariable, optional
        The variables whose best-epoch values the checkpoint keeps (checked: as many, same
        shapes and dtypes).
    rows : int, optional
        Rows of the training data (the saved order must be a permutation of them).

    Returns
    -------
    dict or None
    """
    path = Path(directory) / FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except Exception as e:
        raise ArtifactError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); remove it to start over") from None
    file = f"checkpoint {path}"
    validate(meta, META, file, HINT)
    trainer = meta["trainer"]
    if trainer["epoch"] != meta["epochs_done"]:
        raise fail(file, "trainer.epoch", f"is {trainer['epoch']} but field 'epochs_done' is {meta['epochs_done']}",
                   HINT)
    if not 1 <= trainer["best"][1] <= trainer["epoch"]:
        raise fail(file, "trainer.best", f"names epoch {trainer['best'][1]}, not one of the {trainer['epoch']} run",
                   HINT)
    if len(trainer["history"]) != trainer["epoch"]:
        raise fail(file, "trainer.history", f"has {len(trainer['history'])} entries, want one per epoch "
                                            f"({trainer['epoch']})", HINT)
    if meta["identity"] != identity:
        theirs, ours = meta["identity"], identity

        def shown(d: dict, k: str) -> str:
            return repr(d[k]) if k in d else "nothing"
        diff = ", ".join(f"identity.{k}: {shown(theirs, k)} saved, {shown(ours, k)} now"
                         for k in sorted(set(theirs) | set(ours)) if shown(theirs, k) != shown(ours, k))
        raise ArtifactError(f"checkpoint {path} is from another run ({diff}); use another --out or remove it")
    if meta["names"] != [v.name for v in shared]:
        raise fail(file, "names", f"lists other variables ({meta['names']}) than this model's "
                                  f"({[v.name for v in shared]})", HINT)
    _check_arrays(file, arrays, "s", shared, "the saved value of")
    n_best = sum(1 for key in arrays if key[:1] == "b" and key[1:].isdigit())
    if best is not None:
        _check_arrays(file, arrays, "b", best, "the best epoch's value of")
        if n_best != len(best):
            raise fail(file, "b*", f"holds {n_best} best-epoch values, want {len(best)}", HINT)
    order = arrays.get("order")
    if order is None:
        raise fail(file, "order", "is missing (the row order of the training data)", HINT)
    if order.ndim != 1 or order.dtype.kind not in "iu" or (
            rows is not None and (len(order) != rows or not np.array_equal(np.sort(order), np.arange(rows)))):
        raise fail(file, "order", f"({order.dtype} of shape {order.shape}) is not a permutation of the "
                                  f"{rows if rows is not None else 'training'} rows", HINT)
    for k, v in enumerate(shared):
        v.set_value(arrays[f"s{k}"])
    return {"trainer": trainer, "best_values": [arrays[f"b{k}"] for k in range(n_best)],
            "position": {"epochs_done": meta["epochs_done"], "order": order}}


def _check_arrays(file: str, arrays: dict, prefix: str, variables: list, what: str) -> None:
    """Each ``arrays[prefix + k]`` has the shape and dtype of ``variables[k]``'s value."""
    for k, v in enumerate(variables):
        key = f"{prefix}{k}"
        if key not in arrays:
            raise fail(file, key, f"({what} {v.name}) is missing", HINT)
        now, saved = np.asarray(v.get_value()), arrays[key]
        if saved.shape != now.shape or saved.dtype != now.dtype:
            raise fail(file, key, f"({what} {v.name}) is {saved.dtype} of shape {saved.shape}, the model's is "
                                  f"{now.dtype} of shape {now.shape}", HINT)

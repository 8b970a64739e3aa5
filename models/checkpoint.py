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

FILE = "checkpoint.npz"
FORMAT = 1


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


def load(directory, identity: dict, shared: list) -> dict | None:
    """The saved state, after checking it belongs to this run (same model and options), with
    the shared variables set to their saved values; None when there is no checkpoint yet.

    Raises
    ------
    ThetaError
        A checkpoint of another run.

    Parameters
    ----------
    directory : path
    identity : dict
    shared : list of SharedVariable

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
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"checkpoint {path} has format {meta.get('format')}, this theta reads {FORMAT}")
    if meta["identity"] != identity:
        theirs, ours = meta["identity"], identity
        diff = ", ".join(f"{k}: {theirs.get(k)!r} saved, {ours.get(k)!r} now" for k in sorted(set(theirs) | set(ours))
                         if theirs.get(k) != ours.get(k))
        raise ArtifactError(f"checkpoint {path} is from another run ({diff}); use another --out or remove it")
    if meta["names"] != [v.name for v in shared]:
        raise ArtifactError(f"checkpoint {path} holds other variables ({meta['names']}) than this model")
    for k, v in enumerate(shared):
        v.set_value(arrays[f"s{k}"])
    n_best = sum(1 for key in arrays if key.startswith("b"))
    return {"trainer": meta["trainer"], "best_values": [arrays[f"b{k}"] for k in range(n_best)],
            "position": {"epochs_done": meta["epochs_done"], "order": arrays["order"]}}

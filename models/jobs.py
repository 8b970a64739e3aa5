"""Ahead-of-time training jobs: `theta compile MODEL -o JOB` and `theta run JOB [--resume]`.

`compile_job` builds the model as `theta train` does, compiles its training step and its
evaluation on a kernel backend and writes a job directory::

    JOB/job.json          the training loop: model and options, epochs, batch size, patience,
                          the programs and which state they share, theta's version
    JOB/data.npz          the dataset (train/valid/test), the job's data source
    JOB/checksums.json    sha256 of the two files above (compiler/savedir.py)
    JOB/step, JOB/step_last, JOB/eval_valid, JOB/eval_test
                          saved Programs (kernels, cubins/PTX, initial state, their own checksums):
                          the full-minibatch step, the step for a shorter last minibatch, the
                          error on each evaluation set
    JOB/checkpoint.npz    written by `theta run` after every epoch

`run_job` trains from that directory in a fresh process without the compiler: it imports
neither sympy nor jinja2 (a test checks), shuffles and slices the minibatches on the host exactly
as runtime.data.Minibatches does, keeps the programs' shared state in step (the step's parameters
are copied into the short-step and evaluation programs when they run), stops early as `theta
train` does and prints the same figures for the same seed and backend.
"""
from __future__ import annotations

__all__ = ["compile_job", "read_job", "run_job"]

import io
import json
import math
import pathlib
import time

import numpy as np

from theta.errors import ArtifactError, ThetaError

FORMAT = 1
PROGRAMS = ("step", "step_last", "eval_valid", "eval_test")


# ------------------------------------------------------------------------------------ compile

def compile_job(cfg, out, overwrite: bool = False) -> pathlib.Path:
    """Compile the training job of ``cfg`` (a models.train.TrainConfig) into directory ``out``.

    Parameters
    ----------
    cfg : TrainConfig
    out : path
        The job directory to write.
    overwrite : bool, optional
        Replace an existing job.

    Returns
    -------
    pathlib.Path
    """
    import theta
    from theta.compiler import savedir
    from .data import load_digits
    from .train import setup
    out = pathlib.Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ArtifactError(f"{out} exists and is not empty: pass --overwrite to replace it")
    backend = cfg.backend or "emu"
    if backend not in ("emu", "cuda", "auto"):
        raise ThetaError(f"a job runs compiled kernels: --backend must be emu, cuda or auto, not {backend!r}")
    data = load_digits(theta.config.floatX, seed=cfg.seed)
    run = setup(cfg, data)
    if run.spec.pretrain is not None:
        raise ThetaError(f"{cfg.model} pretrains its layers before fine-tuning; jobs cover one training loop "
                         "(train it with `theta train`)")
    model = run.model
    step = theta.function([model.x, model.y], run.cost, updates=run.updates, name="train_step", backend=backend)
    evaluate = theta.function([model.x, model.y], model.errors, name="errors", backend=backend)
    bs, n = cfg.batch_size, len(data.train)
    state = [v for v in step.shared]
    initial = [v.get_value() for v in state]

    manifest = {"format": FORMAT, "theta_version": theta.__version__, "model": cfg.model,
                "config": cfg.identity(), "epochs": run.epochs, "patience": cfg.patience, "batch_size": bs,
                "seed": cfg.seed, "lr": run.lr, "optimizer": run.optimizer, "floatX": theta.config.floatX,
                "backend": backend, "programs": {}}
    # each program is the specialization of its last call: the rows it takes
    lengths = {"step": bs, "step_last": n % bs, "eval_valid": len(data.valid), "eval_test": len(data.test)}
    manifest["programs"] = {k: rows for k, rows in lengths.items() if rows}
    buf = io.BytesIO()
    np.savez(buf, **{f"{split}_{k}": getattr(getattr(data, split), k) for split in ("train", "valid", "test")
                     for k in ("x", "y")})
    savedir.write(out, {"job.json": json.dumps(manifest, indent=1, sort_keys=True).encode(),
                        "data.npz": buf.getvalue()})
    # a step is compiled by calling it, then saved with the initial state put back
    for name in ("step", "step_last"):
        if name in manifest["programs"]:
            rows = manifest["programs"][name]
            step(data.train.x[:rows], data.train.y[:rows])
            for v, value in zip(state, initial):
                v.set_value(value)
            step.save(out / name)
    for split in ("valid", "test"):
        part = getattr(data, split)
        evaluate(part.x, part.y)
        evaluate.save(out / f"eval_{split}")
    return out


# ---------------------------------------------------------------------------------------- run

class _State:
    """A loaded program's state variable, as the checkpoint module sees a shared variable."""

    def __init__(self, fn, name: str) -> None:
        self.fn, self.name = fn, name

    def get_value(self):
        return self.fn.get_value(self.name)

    def set_value(self, value) -> None:
        self.fn.set_value(self.name, value)


def read_job(path) -> tuple[dict, dict]:
    """(manifest, data arrays) of a job directory, checked: checksums, format, theta version.

    Raises
    ------
    ArtifactError
        A changed file, another format or another theta version.

    Parameters
    ----------
    path : path
        A job directory.

    Returns
    -------
    (dict, dict)
    """
    import theta
    from theta.compiler import savedir
    path = pathlib.Path(path)
    if not (path / "job.json").exists():
        raise ArtifactError(f"{path} is not a theta job (no job.json): make one with `theta compile MODEL -o {path}`")
    files = savedir.read(path)
    try:
        manifest = json.loads(files["job.json"])
        with np.load(io.BytesIO(files["data.npz"]), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (KeyError, ValueError, OSError) as e:
        raise ArtifactError(f"{path}: job.json or data.npz is unreadable ({e})") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: job format {manifest.get('format')}, this theta runs format {FORMAT}")
    if manifest.get("theta_version") != theta.__version__:
        raise ArtifactError(f"{path} was compiled by theta {manifest.get('theta_version')}, this is theta "
                            f"{theta.__version__}: compile the job again")
    return manifest, arrays


def run_job(path, resume: bool = False, progress: bool = True, backend: str = "auto") -> dict:
    """Train from the job directory ``path`` (see the module docstring); returns the summary.

    Parameters
    ----------
    path : path
    resume : bool, optional
        Continue from the job's checkpoint.
    progress : bool, optional
    backend : str, optional
        ``'auto'``, ``'emu'`` or ``'cuda'``.

    Returns
    -------
    dict
    """
    import theta
    from . import checkpoint
    path = pathlib.Path(path)
    m, arrays = read_job(path)
    fns = {name: theta.load(path / name, backend=backend) for name in m["programs"]}
    step = fns["step"]
    names = list(step.state)                    # the step's state: parameters, optimizer, streams
    state = [_State(step, name) for name in names]
    identity = m["config"]
    if not resume and checkpoint.exists(path):
        raise ArtifactError(f"{path} holds a checkpoint of an earlier run: pass --resume to continue it")
    x, y = arrays["train_x"], arrays["train_y"]
    n, bs = len(y), m["batch_size"]
    order = np.arange(n)
    best, history, first = (math.inf, 0, math.inf), [], 1
    best_values = [s.get_value() for s in state]
    saved = checkpoint.load(path, identity, state) if resume else None
    if saved is not None:
        t = saved["trainer"]
        best, history, first = tuple(t["best"]), t["history"], t["epoch"] + 1
        best_values, order = saved["best_values"], np.asarray(saved["position"]["order"])

    def sync(src, dst, names) -> None:
        for name in names:
            dst.set_value(name, src.get_value(name))

    def error(split: str) -> float:
        fn = fns[f"eval_{split}"]
        sync(step, fn, list(fn.state))
        return float(fn(arrays[f"{split}_x"], arrays[f"{split}_y"]))

    from tqdm import tqdm
    bar = tqdm(total=m["epochs"], desc=f"run {m['model']}", unit="epoch", disable=not progress, leave=True)
    bar.update(first - 1)
    start, epoch, stopped = time.perf_counter(), first - 1, False
    for epoch in range(first, m["epochs"] + 1):
        # Minibatches' shuffle: the permutation of epoch e (0-based) applied to the current order
        order = order[np.random.default_rng([m["seed"], epoch - 1]).permutation(n)]
        xs, ys = x[order], y[order]
        costs = []
        for i in range(0, n, bs):
            rows = min(bs, n - i)
            fn = step if rows == bs else fns["step_last"]
            if fn is not step:
                sync(step, fn, names)
            c = float(fn(xs[i:i + rows], ys[i:i + rows]))
            if fn is not step:
                sync(fn, step, names)
            if not math.isfinite(c):
                bar.close()
                raise ThetaError(f"{m['model']}: the training cost became {c} at epoch {epoch}, minibatch {i // bs} "
                                 f"(learning rate {m['lr']}, optimizer {m['optimizer']}); try a lower --lr")
            costs.append(c)
        valid = error("valid")
        history.append({"epoch": epoch, "cost": float(np.mean(costs)), "valid_error": valid})
        if valid < best[0]:
            best = (valid, epoch, error("test"))
            best_values = [s.get_value() for s in state]
        checkpoint.save(path, identity, state, best_values, {"epochs_done": epoch, "order": order},
                        {"epoch": epoch, "best": list(best), "history": history, "pretraining": []})
        bar.update(1)
        bar.set_postfix(cost=f"{np.mean(costs):.4f}", valid=f"{100 * valid:.2f}%", best=f"{100 * best[0]:.2f}%")
        if epoch - best[1] >= m["patience"]:
            stopped = epoch < m["epochs"]
            break
    bar.close()
    for s, v in zip(state, best_values):
        s.set_value(v)
    return {"model": m["model"], "epochs_run": epoch, "best_epoch": best[1], "valid_error": best[0],
            "test_error": best[2], "seconds": time.perf_counter() - start, "stopped_early": stopped,
            "backend": m["backend"], "floatX": m["floatX"], "state": {s.name: s.get_value() for s in state}}

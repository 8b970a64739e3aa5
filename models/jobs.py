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
as theta.minibatch.Minibatches does, keeps the programs' shared state in step (the step's parameters
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

from .record import Record, error_rate
from .schema import NAT, POSITIVE, TEXT, Field, fail, validate

FORMAT = 2     # 2: the evaluation programs count wrong rows (format 1 returned rates)
PROGRAMS = ("step", "step_last", "eval_valid", "eval_test")
HINT = "compile the job again"
FLOATX = Field((str,), lambda v: v in ("float32", "float64"), "'float32' or 'float64'")
_OPTIONAL_TEXT = Field((str, type(None)), want="a string or null")
# job.json's fields; how they must agree with each other and with data.npz: _check_job
JOB = {
    "format": Field((int,), lambda v: v == FORMAT, f"{FORMAT} (the job format this theta runs)"),
    "theta_version": TEXT,
    "model": TEXT,
    "config": Field((dict,), fields={     # TrainConfig.identity(): what a checkpoint must agree on
        "model": TEXT, "batch_size": POSITIVE,
        "learning_rate": Field((float, type(None)), lambda v: v is None or 0 < v < math.inf,
                               "a positive number or null"),
        "optimizer": _OPTIONAL_TEXT, "n_hidden": POSITIVE,
        "l2": Field((float,), lambda v: 0 <= v < math.inf, "a number >= 0"),
        "seed": NAT, "backend": _OPTIONAL_TEXT, "floatX": FLOATX}),
    "epochs": POSITIVE,
    "patience": POSITIVE,
    "batch_size": POSITIVE,
    "seed": NAT,
    "lr": Field((float,), lambda v: 0 < v < math.inf, "a positive number"),
    "optimizer": TEXT,
    "floatX": FLOATX,
    "backend": Field((str,), lambda v: v in ("emu", "cuda", "auto"), "'emu', 'cuda' or 'auto'"),
    "programs": Field((dict,), keys=POSITIVE),    # program name -> the rows it was specialized for
}


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
    from .paths import check_output_dir
    out = check_output_dir(out, "-o")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ArtifactError(f"{out} exists and is not empty: pass --overwrite to replace it")
        if not (out / savedir.CHECKSUMS).exists():    # what savedir.write would refuse, after all the work
            raise ArtifactError(f"{out} is not a theta job: --overwrite replaces a job directory, nothing else")
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
    evaluate = theta.function([model.x, model.y], model.n_wrong, name="errors", backend=backend)
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
    for name in ("job.json", "data.npz"):
        if name not in files:
            raise fail(f"{path / savedir.CHECKSUMS}", f"sha256.{name}", f"is missing: the job's {name} is not listed",
                       HINT)
    try:
        manifest = json.loads(files["job.json"])
        with np.load(io.BytesIO(files["data.npz"]), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (KeyError, ValueError, OSError) as e:
        raise ArtifactError(f"{path}: job.json or data.npz is unreadable ({e})") from None
    file = f"{path / 'job.json'}"
    if isinstance(manifest, dict):   # first the two fields that say whether the rest can be read at all
        version = manifest.get("theta_version")
        if type(manifest.get("format")) is int and manifest["format"] != FORMAT:
            raise fail(file, "format", f"is {manifest['format']}, this theta runs job format {FORMAT}", HINT)
        if isinstance(version, str) and version != theta.__version__:
            raise ArtifactError(f"{path} was compiled by theta {version} (field 'theta_version'), this is theta "
                                f"{theta.__version__}: {HINT}")
    validate(manifest, JOB, file, HINT)
    _check_job(path, manifest, arrays)
    return manifest, arrays


def _check_job(path: pathlib.Path, m: dict, arrays: dict) -> None:
    """job.json's fields agree with each other and with the data (whose arrays are checked)."""
    file, data = f"{path / 'job.json'}", f"{path / 'data.npz'}"
    # the options the job was compiled with agree with what it runs (null: the model's default)
    for key, top in (("model", "model"), ("batch_size", "batch_size"), ("seed", "seed"), ("floatX", "floatX"),
                     ("learning_rate", "lr"), ("optimizer", "optimizer"), ("backend", "backend")):
        given = m["config"][key]
        if given != m[top] and (given is not None or key in ("model", "batch_size", "seed", "floatX")):
            raise fail(file, f"config.{key}", f"is {given!r} but field {top!r} is {m[top]!r}", HINT)
    rows = {}
    for split in ("train", "valid", "test"):
        x, y = arrays.get(f"{split}_x"), arrays.get(f"{split}_y")
        if x is None or y is None:
            raise fail(data, f"{split}_x" if x is None else f"{split}_y", "is missing", HINT)
        if x.ndim != 2 or x.dtype != np.dtype(m["floatX"]) or y.ndim != 1 or y.dtype.kind not in "iu" \
                or len(x) != len(y) or not len(y):
            raise fail(data, f"{split}_x", f"and {split}_y are {x.dtype} {x.shape} and {y.dtype} {y.shape}, want "
                                           f"rows of {m['floatX']} and as many integer labels", HINT)
        rows[split] = len(y)
    n, bs = rows["train"], m["batch_size"]
    want = {"step": bs, "step_last": n % bs, "eval_valid": rows["valid"], "eval_test": rows["test"]}
    want = {k: v for k, v in want.items() if v}
    for name in sorted(set(want) | set(m["programs"])):
        if name not in PROGRAMS:
            raise fail(file, f"programs.{name}", f"is not a program of a job ({', '.join(PROGRAMS)})", HINT)
        if name not in m["programs"]:
            raise fail(file, f"programs.{name}", f"is missing (a program for {want[name]} rows)", HINT)
        if m["programs"][name] != want.get(name):
            raise fail(file, f"programs.{name}", f"is {m['programs'][name]} rows, but batch size {bs} and the data "
                                                 f"({rows}) need {want.get(name) or 'no such program'}", HINT)


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
    record, first = Record(m["patience"], [s.get_value() for s in state]), 1
    saved = checkpoint.load(path, identity, state, state, n) if resume else None
    if saved is not None:
        first = record.resume(saved["trainer"], saved["best_values"])
        order = np.asarray(saved["position"]["order"])

    def sync(src, dst, names) -> None:
        for name in names:
            dst.set_value(name, src.get_value(name))

    def error(split: str) -> float:
        fn = fns[f"eval_{split}"]
        sync(step, fn, list(fn.state))
        return error_rate([fn(arrays[f"{split}_x"], arrays[f"{split}_y"])], len(arrays[f"{split}_y"]))

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
        record.end_epoch(epoch, costs, valid, lambda: error("test"), lambda: [s.get_value() for s in state])
        checkpoint.save(path, identity, state, record.best_values, {"epochs_done": epoch, "order": order},
                        record.trainer(epoch))
        bar.update(1)
        bar.set_postfix(cost=f"{np.mean(costs):.4f}", valid=f"{100 * valid:.2f}%", best=f"{100 * record.best[0]:.2f}%")
        if record.stop(epoch):
            stopped = epoch < m["epochs"]
            break
    bar.close()
    for s, v in zip(state, record.best_values):
        s.set_value(v)
    best = record.best
    return {"model": m["model"], "epochs_run": epoch, "best_epoch": best[1], "valid_error": best[0],
            "test_error": best[2], "seconds": time.perf_counter() - start, "stopped_early": stopped,
            "backend": m["backend"], "floatX": m["floatX"], "state": {s.name: s.get_value() for s in state}}

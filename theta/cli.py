"""The `theta` command line: `theta train` trains the zoo's models on the digits data,
`theta list` shows them."""
from __future__ import annotations

import argparse
import sys

from .compiler.errors import ThetaError


def _classifiers() -> dict:
    from theta.models.classifiers import MODELS
    return MODELS


def _zoo() -> dict:
    from theta.models.zoo import ZOO
    return ZOO


def _train(args) -> int:
    import theta
    if args.floatX:
        theta.config.floatX = args.floatX
    names = args.models or ([args.model] if args.model else ["logreg", "mlp"])
    names = ["logreg", "mlp"] if names == ["both"] else names
    unknown = [n for n in names if n not in _zoo()]
    if unknown:
        print(f"theta: error: unknown model {unknown[0]!r}; `theta list` shows the models "
              f"({', '.join(_zoo())})", file=sys.stderr)
        return 2
    options = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
               "hidden": args.hidden, "seed": args.seed, "backend": args.backend, "progress": not args.quiet,
               "resume": args.resume, "overwrite": args.overwrite, "distributed": args.distributed}
    if args.distributed and (args.out or any(n not in _classifiers() for n in names)):
        print("theta: error: --distributed trains the classifiers, without --out", file=sys.stderr)
        return 2
    if (args.resume or args.overwrite) and not args.out:
        print("theta: error: --resume and --overwrite need --out DIR", file=sys.stderr)
        return 2
    if args.out and len(names) > 1:
        print("theta: error: --out takes one model at a time", file=sys.stderr)
        return 2
    if args.out:
        from theta.models.classifiers import MODELS
        if names[0] not in MODELS:
            print(f"theta: error: checkpoints (--out) are written for the classifiers, not {names[0]!r}",
                  file=sys.stderr)
            return 2
        options["out"] = args.out
    # every path is checked before any work: not after the first epoch, not after training
    from theta.models.paths import check_output_dir
    if args.out:
        check_output_dir(args.out, "--out")
    where = None
    if not args.no_plots:
        import pathlib
        import platformdirs
        where = pathlib.Path(args.plots or args.out or pathlib.Path(platformdirs.user_cache_dir("theta")) / "runs")
        check_output_dir(where, "--plots" if args.plots or not args.out else "--out")
    outcomes = [_zoo()[name].run(options) for name in names]
    if args.distributed:
        import theta.distributed as dist
        if dist.rank() != 0:      # one summary, from rank 0
            return 0
    if where is not None:
        from theta.models.zoo import pictures
        for o in outcomes:
            o.pictures = pictures(o, where)
    # one table per kind of figures (classifiers share theirs)
    for keys in dict.fromkeys(tuple(o.figures) for o in outcomes):
        print(f"{'model':14} " + " ".join(f"{k:>{max(len(k), 9)}}" for k in keys) + f" {'time':>7}")
        for o in (o for o in outcomes if tuple(o.figures) == keys):
            print(f"{o.model:14} " + " ".join(f"{str(o.figures[k]):>{max(len(k), 9)}}" for k in keys)
                  + f" {o.seconds:6.1f}s" + ("" if o.passed else "  (below its quality bar)")
                  + (f"  ({o.note})" if o.note else ""))
    from theta.compiler.options import CompileOptions
    backend = CompileOptions.from_config(args.backend).backend
    if args.distributed:
        import theta.distributed as dist
        backend += f" x {dist.size()} MPI ranks"
    print(f"backend {backend}, {theta.config.floatX}")
    for o in outcomes:
        if o.pictures:
            print(f"{o.model}: " + ", ".join(str(p) for p in o.pictures))
    return 0


def _search(args) -> int:
    from theta.models.classifiers import MODELS
    from theta.models.search import random_search
    if args.model not in MODELS:
        print(f"theta: error: random search runs on the classifiers ({', '.join(MODELS)}), not {args.model!r}",
              file=sys.stderr)
        return 2

    def report(k, t):
        if not args.quiet:
            print(f"trial {k + 1:3d}: valid {100 * t.valid_error:6.2f}%  " +
                  " ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                           for key, value in t.params.items()), flush=True)

    trials = random_search(args.model, args.trials, args.epochs, args.seed, args.backend, report)
    best = trials[0]
    print(f"best of {len(trials)} trials for {args.model}: valid error {100 * best.valid_error:.2f}%, "
          f"test error {100 * best.test_error:.2f}% with " +
          ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()))
    return 0


def _config(args, model: str):
    from theta.models.train import TrainConfig
    return TrainConfig(model=model, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                       optimizer=args.optimizer, n_hidden=args.hidden, seed=args.seed, backend=args.backend)


def _compile(args) -> int:
    import theta
    from theta.models.classifiers import MODELS
    from theta.models.jobs import compile_job
    if args.floatX:
        theta.config.floatX = args.floatX
    if args.model not in MODELS:
        print(f"theta: error: jobs are compiled for the classifiers ({', '.join(MODELS)}), not {args.model!r}",
              file=sys.stderr)
        return 2
    out = compile_job(_config(args, args.model), args.output, overwrite=args.overwrite)
    print(f"compiled {args.model} into {out}: run it with `theta run {out}`")
    return 0


def _run(args) -> int:
    from theta.models.jobs import run_job
    r = run_job(args.job, resume=args.resume, progress=not args.quiet)
    keys = ("epochs", "best epoch", "valid err", "test err")
    print(f"{'model':14} " + " ".join(f"{k:>{max(len(k), 9)}}" for k in keys) + f" {'time':>7}")
    figures = (r["epochs_run"], r["best_epoch"], f"{100 * r['valid_error']:.2f}%", f"{100 * r['test_error']:.2f}%")
    note = f"  (early stop: kept epoch {r['best_epoch']} of {r['epochs_run']})" if r["stopped_early"] else ""
    print(f"{r['model']:14} " + " ".join(f"{str(v):>{max(len(k), 9)}}" for k, v in zip(keys, figures))
          + f" {r['seconds']:6.1f}s{note}")
    print(f"backend {r['backend']}, {r['floatX']}")
    return 0


def _list(args) -> int:
    print(f"{'model':14} {'dataset':27} {'defaults':24} {'quality bar':28} description")
    for e in _zoo().values():
        print(f"{e.name:14} {e.dataset.split(' (')[0]:27} {e.defaults:24} {e.quality:28} {e.summary}")
    return 0


def main(argv: list[str] | None = None) -> int:
    import theta
    parser = argparse.ArgumentParser(prog="theta", description="theta: a Theano-style compiler for deep learning")
    parser.add_argument("--version", action="version", version=f"theta {theta.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    t = sub.add_parser("train", help="train models of the zoo on scikit-learn's digits (`theta list`)",
                       formatter_class=fmt)
    t.add_argument("models", nargs="*", metavar="MODEL", help="models to train (default: logreg and mlp)")
    t.add_argument("--model", default=None, help="a model name, or 'both' for logreg and mlp (older spelling)")
    t.add_argument("--epochs", type=int, default=None,
                   help="epochs (default: the model's; for rnn/lstm, units of 50 steps)")
    t.add_argument("--batch-size", type=int, default=20)
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: the model's)")
    t.add_argument("--optimizer", choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"],
                   default=None, help="update rule (default: the model's)")
    t.add_argument("--hidden", type=int, default=64, help="hidden units per layer")
    t.add_argument("--seed", type=int, default=1234)
    t.add_argument("--backend", choices=["reference", "emu", "cuda", "auto"], default=None,
                   help="where to run (default: theta.config.backend)")
    t.add_argument("--floatX", choices=["float32", "float64"], default=None)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--out", default=None, metavar="DIR", help="write a checkpoint there after every epoch")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.add_argument("--overwrite", action="store_true", help="start over even if --out holds a checkpoint")
    t.add_argument("--plots", default=None, metavar="DIR",
                   help="where the PNGs go (default: --out, else the user cache's theta/runs)")
    t.add_argument("--no-plots", action="store_true", help="write no PNGs")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI ranks (run under mpiexec; --batch-size is per rank)")
    t.set_defaults(run=_train)
    s = sub.add_parser("search", help="random search over a classifier's hyperparameters (Bergstra & Bengio)",
                       formatter_class=fmt)
    s.add_argument("model", metavar="MODEL")
    s.add_argument("--trials", type=int, default=10)
    s.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the model's)")
    s.add_argument("--seed", type=int, default=1234)
    s.add_argument("--backend", choices=["reference", "emu", "cuda", "auto"], default=None)
    s.add_argument("--quiet", action="store_true", help="only the best trial")
    s.set_defaults(run=_search)
    c = sub.add_parser("compile", help="compile a classifier's training job into a directory (run it with `theta run`)",
                       formatter_class=fmt)
    c.add_argument("model", metavar="MODEL")
    c.add_argument("-o", "--output", required=True, metavar="JOB", help="the job directory to write")
    for flag, kw in (("--epochs", dict(type=int, default=None)), ("--batch-size", dict(type=int, default=20)),
                     ("--lr", dict(type=float, default=None)), ("--hidden", dict(type=int, default=64)),
                     ("--seed", dict(type=int, default=1234))):
        c.add_argument(flag, **kw)
    c.add_argument("--optimizer", choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"], default=None)
    c.add_argument("--backend", choices=["emu", "cuda", "auto"], default="emu")
    c.add_argument("--floatX", choices=["float32", "float64"], default=None)
    c.add_argument("--overwrite", action="store_true", help="replace an existing job directory")
    c.set_defaults(run=_compile)
    r = sub.add_parser("run", help="train from a compiled job directory (no compiler needed)")
    r.add_argument("job", metavar="JOB")
    r.add_argument("--resume", action="store_true", help="continue from the job's checkpoint")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(run=_run)
    ls = sub.add_parser("list", help="the models with their defaults and quality bars")
    ls.set_defaults(run=_list)
    args = parser.parse_args(argv)
    for name, least in (("epochs", 1), ("batch_size", 1), ("hidden", 1), ("trials", 1), ("seed", 0)):
        value = getattr(args, name, least)
        if value is not None and value < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}")
    if getattr(args, "lr", None) is not None and not args.lr > 0:
        parser.error("--lr must be positive")
    try:
        return args.run(args)
    except ThetaError as e:
        print(f"theta: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("theta: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:     # `theta list | head`: the reader left; say nothing more
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

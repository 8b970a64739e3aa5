"""The `theta` command line: `theta train` trains the zoo's models on the digits data,
`theta list` shows them."""
from __future__ import annotations

import argparse
import sys

from .compiler.errors import ThetaError


def _models() -> dict:
    from theta.models.classifiers import MODELS
    return MODELS


def _train(args) -> int:
    import theta
    from theta.models.train import TrainConfig, train
    if args.floatX:
        theta.config.floatX = args.floatX
    names = args.models or ([args.model] if args.model else ["logreg", "mlp"])
    names = ["logreg", "mlp"] if names == ["both"] else names
    unknown = [n for n in names if n not in _models()]
    if unknown:
        print(f"theta: error: unknown model {unknown[0]!r}; `theta list` shows the models "
              f"({', '.join(_models())})", file=sys.stderr)
        return 2
    results = []
    for name in names:
        cfg = TrainConfig(model=name, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                          optimizer=args.optimizer, n_hidden=args.hidden, seed=args.seed, backend=args.backend)
        results.append(train(cfg, progress=not args.quiet))
    print(f"{'model':14} {'epochs':>6} {'best':>5} {'valid err':>10} {'test err':>9} {'time':>7}")
    for r in results:
        note = f"  (early stop: kept epoch {r.best_epoch})" if r.stopped_early else ""
        print(f"{r.model:14} {r.epochs_run:6d} {r.best_epoch:5d} {100 * r.valid_error:9.2f}% "
              f"{100 * r.test_error:8.2f}% {r.seconds:6.1f}s{note}")
    print(f"backend {results[0].backend}, {results[0].floatX}")
    return 0


def _list(args) -> int:
    print(f"{'model':14} {'defaults':26} {'quality bar (digits)':22} description")
    for s in _models().values():
        defaults = f"{s.optimizer} lr={s.lr} {s.epochs} ep"
        print(f"{s.name:14} {defaults:26} {s.quality:22} {s.summary}")
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
    t.add_argument("--epochs", type=int, default=None, help="epochs (default: the model's)")
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
    t.set_defaults(run=_train)
    ls = sub.add_parser("list", help="the models with their defaults and quality bars")
    ls.set_defaults(run=_list)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "hidden"):
        value = getattr(args, name, 1)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
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


if __name__ == "__main__":
    sys.exit(main())

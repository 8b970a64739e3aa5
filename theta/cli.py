"""The `theta` command line: `theta train` trains the example models on the digits data."""
from __future__ import annotations

import argparse
import sys

from .compiler.errors import ThetaError


def _train(args) -> int:
    import theta
    from theta.models.train import TrainConfig, train
    if args.floatX:
        theta.config.floatX = args.floatX
    models = ["logreg", "mlp"] if args.model == "both" else [args.model]
    results = []
    for name in models:
        cfg = TrainConfig(model=name, epochs=args.epochs, batch_size=args.batch_size,
                          learning_rate=args.lr if args.lr is not None else (0.1 if name == "mlp" else 0.13),
                          n_hidden=args.hidden, seed=args.seed, backend=args.backend)
        results.append(train(cfg, progress=not args.quiet))
    print(f"{'model':8} {'epochs':>6} {'best':>5} {'valid err':>10} {'test err':>9} {'time':>7}")
    for r in results:
        print(f"{r.model:8} {r.epochs_run:6d} {r.best_epoch:5d} {100 * r.valid_error:9.2f}% "
              f"{100 * r.test_error:8.2f}% {r.seconds:6.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="theta", description="theta: a Theano-style compiler for deep learning")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train softmax regression and an MLP on scikit-learn's digits with minibatch SGD")
    t.add_argument("--model", choices=["logreg", "mlp", "both"], default="both")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=20)
    t.add_argument("--lr", type=float, default=None, help="learning rate (default 0.13 logreg, 0.1 mlp)")
    t.add_argument("--hidden", type=int, default=64, help="hidden units of the MLP")
    t.add_argument("--seed", type=int, default=1234)
    t.add_argument("--backend", choices=["reference", "emu", "cuda", "auto"], default=None)
    t.add_argument("--floatX", choices=["float32", "float64"], default=None)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=_train)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "hidden"):
        if getattr(args, name, 1) < 1:
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

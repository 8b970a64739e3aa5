"""python3 -m bench [--all] | <command> [--save] [options]: see bench/README.md."""
from __future__ import annotations

import argparse
import sys
import traceback
from types import ModuleType

from . import compile, distributed, kernels, launch, mlp, sanitize, sparse
from .common import Report, Skip, gpu_unavailable, no_gpu_sentence

BENCHMARKS: dict[str, ModuleType] = {m.NAME: m for m in (launch, mlp, kernels, sanitize, compile, sparse, distributed)}


def parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    main = argparse.ArgumentParser(
        prog="python3 -m bench",
        description="theta's benchmarks: each validates its results, then times them.",
        epilog="On the GPU machine: source .gpu/setup.sh && python3 -m bench --all. Without a GPU every "
               "command but compile says so in one sentence and exits 0.")
    main.add_argument("--all", action="store_true",
                      help="run every benchmark with its defaults, print the markdown summary and write "
                           "bench/results/<date>-<device>.{json,md}")
    commands = main.add_subparsers(dest="command", metavar="command")
    subs = {}
    for name, module in BENCHMARKS.items():
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--save", action="store_true",
                         help="also write bench/results/<date>-<device>-<command>.{json,md} ('cpu' without a GPU)")
        module.add_arguments(sub)
        subs[name] = sub
    return main, subs


def run_one(module: ModuleType, args: argparse.Namespace) -> Report:
    print(f"[bench] {module.NAME} ...", file=sys.stderr, flush=True)
    try:
        return module.run(args)
    except Skip as e:
        return Report(module.NAME, module.HELP, skipped=str(e))
    except Exception:  # a broken benchmark is reported, and the others still run
        return Report(module.NAME, module.HELP, error=traceback.format_exc(limit=6))


def main(argv: list[str] | None = None) -> int:
    parser, subs = parsers()
    args = parser.parse_args(argv)
    if args.all and args.command:
        parser.error("--all runs every benchmark: give it no command")
    if not args.all and not args.command:
        parser.print_help()
        return 0
    names = list(BENCHMARKS) if args.all else [args.command]
    if any(BENCHMARKS[n].NEEDS_GPU for n in names):
        why = gpu_unavailable()
        if why:
            print(no_gpu_sentence("--all" if args.all else args.command, why))
            return 0
    reports = []
    for name in names:
        report = run_one(BENCHMARKS[name], subs[name].parse_args([]) if args.all else args)
        reports.append(report)
        if not args.all:
            print(report.markdown())
    if args.all or args.save:
        from . import record
        env = record.environment()
        js, md, text = record.write(env, reports, record.stem(env, None if args.all else args.command))
        if args.all:
            print(text)
        print(f"wrote {js.relative_to(record.REPO)} and {md.relative_to(record.REPO)}")
    return 1 if any(r.error for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Data-parallel steps over MPI (theta.distributed): for 1, 2 and 4 ranks under mpiexec, the
median time of one synchronous SGD step of an MLP (64-256-256-10, 32 rows per rank) and the
bytes each rank sends per step, for exact, float16 and bfloat16 sharing and local SGD (k=4).
On this machine the ranks share its CPU cores, so the times show the exchange's overhead, not
a speed-up; validation: every rank count ends with the same parameters as one process."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

from .common import REPO, Report, Skip, fmt

NAME = "distributed"
HELP = "data-parallel SGD steps over MPI: step time and bytes exchanged for 1, 2, 4 ranks"
NEEDS_GPU = False
WORKER = "bench.distributed_worker"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ranks", default="1,2,4", help="rank counts to run")
    p.add_argument("--backend", choices=["reference", "emu"], default="reference")
    p.add_argument("--steps", type=int, default=30)


def _mpiexec() -> str:
    path = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError as e:
        raise Skip("mpi4py is not installed (pip install -e '.[mpi]')") from e
    if not os.path.exists(path):
        raise Skip("no mpiexec on this machine (pip install -e '.[mpi]' brings MPICH's)")
    return path


def run(args: argparse.Namespace) -> Report:
    mpiexec = _mpiexec()
    report = Report(NAME, f"{HELP} ({args.backend}, {os.cpu_count()} CPU cores shared by the ranks)",
                    columns=["ranks", "sharing", "step ms (median)", "bytes sent per step per rank", "max |W - W_1|"])
    baseline = None
    for ranks in (int(r) for r in args.ranks.split(",")):
        for sharing in ("exact", "float16", "bfloat16", "local4"):
            if ranks == 1 and sharing != "exact":
                continue
            cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", WORKER, args.backend, sharing, str(args.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
            if out.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if baseline is None:
                baseline = r["W"]
            diff = max(abs(a - b) for a, b in zip(r["W"], baseline))
            if sharing == "exact" and diff > 1e-4:
                raise RuntimeError(f"{ranks} ranks ended {diff} away from one process's parameters")
            report.rows.append([str(ranks), sharing, fmt(r["step_ms"]), str(int(r["bytes"])), f"{diff:.1e}"])
            report.figures[f"{ranks}/{sharing}"] = {"step_ms": r["step_ms"], "bytes_per_step": r["bytes"],
                                                    "max_param_diff": diff}
    report.notes.append("exact: one float32 all-reduce of the packed gradients per step; float16/bfloat16: half "
                        "the bytes, with error feedback; local4: parameters averaged every 4 steps (no gradient "
                        "exchange); max |W - W_1| compares with one process on the same global minibatches")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.distributed", description=__doc__)
    add_arguments(parser)
    print(run(parser.parse_args(argv)).markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""compute-sanitizer over every kernel family: memcheck, racecheck, initcheck, synccheck.

bench/sanitize_target.py runs each family once on the cuda backend and checks it against
the reference backend. It runs once plainly first (it must pass, and that fills the cubin
cache so nvcc does not run under the sanitizer), then once under each tool, each tool's
report in its own log. A tool is clean when its summary counts no errors and the target
still agrees with the reference.

What the tools cannot see: memcheck checks accesses against whole allocations, and theta
carves its temporaries out of one arena (and pycuda's pool reuses blocks), so an overrun
from one temporary into its neighbour is only caught on emu under AddressSanitizer.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import REPO, Report, Skip

NAME = "sanitize"
HELP = "compute-sanitizer memcheck/racecheck/initcheck/synccheck over every kernel family"
NEEDS_GPU = True
TOOLS = ("memcheck", "racecheck", "initcheck", "synccheck")
TARGET = "bench.sanitize_target"   # run as python3 -m, from the repository root
_ERRORS = re.compile(r"ERROR SUMMARY: (\d+) error")
_HAZARDS = re.compile(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tools", type=lambda s: s.split(","), default=list(TOOLS),
                   help=f"comma-separated (default {','.join(TOOLS)})")
    p.add_argument("--timeout", type=int, default=300, help="seconds per tool run (default 300)")


def find_sanitizer() -> str | None:
    """compute-sanitizer on PATH, next to nvcc, or under $CUDA_HOME / /usr/local/cuda."""
    from theta.runtime.nvcc import find_nvcc
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    dirs = [os.path.dirname(p) for p in [find_nvcc()] if p]
    dirs += [os.path.join(h, "bin") for h in (os.environ.get("CUDA_HOME"), "/usr/local/cuda") if h]
    for d in dirs:
        candidate = os.path.join(d, "compute-sanitizer")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def run_command(cmd: list[str], timeout: int) -> subprocess.CompletedProcess:
    """``cmd`` in its own process group, all of which is killed if it outlives ``timeout``
    (the sanitizer's target is its child, which a plain kill would leave running)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_tool(sanitizer: str, tool: str, timeout: int, logdir: Path) -> dict:
    log = logdir / f"{tool}.log"
    cmd = [sanitizer, "--tool", tool, "--target-processes", "application-only", "--print-limit", "100",
           "--log-file", str(log), sys.executable, "-m", TARGET]
    t0 = time.perf_counter()
    try:
        proc = run_command(cmd, timeout)
    except subprocess.TimeoutExpired:
        return {"tool": tool, "status": f"timed out after {timeout} s", "errors": None, "seconds": timeout}
    seconds = time.perf_counter() - t0
    text = log.read_text(errors="replace") if log.exists() else ""
    counts = [int(n) for n in _ERRORS.findall(text)]
    hazards = _HAZARDS.findall(text)
    errors = max(sum(counts), sum(int(h[1]) for h in hazards))  # racecheck may print both summaries
    warnings = sum(int(h[2]) for h in hazards)
    first = [ln.strip("= ").strip() for ln in text.splitlines()
             if re.search(r"Invalid|Error|error:|Hazard|Uninitialized|Race", ln) and "SUMMARY" not in ln][:3]
    if proc.returncode != 0 and not errors:
        status = f"target failed (exit {proc.returncode})"
        first = first or proc.stdout.strip().splitlines()[-3:] + proc.stderr.strip().splitlines()[-3:]
    elif not counts and not hazards:
        status = "no summary in the sanitizer's log"
    else:
        status = "clean" if errors == 0 else f"{errors} errors"
    return {"tool": tool, "status": status, "errors": errors, "warnings": warnings, "exit": proc.returncode,
            "seconds": seconds, "first_findings": first}


def run(args: argparse.Namespace) -> Report:
    sanitizer = find_sanitizer()
    if sanitizer is None:
        raise Skip("compute-sanitizer was not found (PATH, next to nvcc, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    t0 = time.perf_counter()
    plain = run_command([sys.executable, "-m", TARGET], args.timeout)
    plain_seconds = time.perf_counter() - t0
    report = Report(NAME, "compute-sanitizer over every kernel family (bench/sanitize_target.py)",
                    ["tool", "result", "seconds", "first findings"])
    if plain.returncode != 0:
        report.error = "the target fails without a sanitizer:\n" + plain.stdout + plain.stderr
        return report
    results = []
    with tempfile.TemporaryDirectory(prefix="theta-sanitize-") as logdir:
        for tool in args.tools:
            r = run_tool(sanitizer, tool, args.timeout, Path(logdir))
            results.append(r)
            findings = "; ".join(r.get("first_findings", []))[:300].replace("|", "\\|")
            report.rows.append([tool, r["status"], f"{r['seconds']:.0f}", findings])
    report.figures = {"sanitizer": sanitizer, "tools": results, "plain_seconds": plain_seconds,
                      "cases": plain.stdout.strip().splitlines()}
    report.notes = [f"The target ran {len(report.figures['cases']) - 1} cases, all agreeing with the reference "
                    "without a sanitizer; each tool then ran it again.",
                    "memcheck sees whole allocations only: overruns between temporaries inside theta's arena are "
                    "emu + AddressSanitizer's to catch (tests/test_codegen.py)."]
    dirty = [r for r in results if r["status"] != "clean"]
    if dirty:
        report.error = "\n".join(f"{r['tool']}: {r['status']}" for r in dirty)
    return report

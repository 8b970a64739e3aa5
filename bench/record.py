"""The record of a run: where and on what it ran, and the files under bench/results/."""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Sequence

from .common import REPO, RESULTS, Report


def git_commit() -> dict[str, Any]:
    """theta's commit and the files that differ from it (bench/results/ aside)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout
    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=all").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown (not a git checkout)", "changed": []}
    changed = [line[3:] for line in status if not line[3:].startswith("bench/results/")]
    return {"commit": commit, "changed": changed}


def device_facts() -> dict[str, Any] | None:
    """The GPU theta's cuda backend runs on, or None where there is none."""
    from .common import gpu_unavailable
    if gpu_unavailable():
        return None
    import pycuda
    from theta.runtime.cuda import device
    rt = device()
    major, minor = rt.device.compute_capability()
    return {"name": rt.label, "compute_capability": f"{major}.{minor}",
            "memory_mib": rt.device.total_memory() // 2**20,
            "driver": rt.drv.get_driver_version(), "pycuda": pycuda.VERSION_TEXT}


def environment() -> dict[str, Any]:
    import numpy
    facts: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "theta": git_commit(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "cpu": _cpu_name(),
        "device": device_facts(),
    }
    try:
        import torch
        facts["torch"] = torch.__version__
    except Exception:
        facts["torch"] = None
    from theta.runtime.nvcc import find_nvcc, nvcc_version
    facts["nvcc"] = nvcc_version() if find_nvcc() else None
    return facts


def _cpu_name() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def markdown(env: dict[str, Any], reports: Sequence[Report]) -> str:
    dev = env["device"]
    where = (f"{dev['name']} (compute capability {dev['compute_capability']}, {dev['memory_mib']} MiB, "
             f"driver {dev['driver']}, pycuda {dev['pycuda']})" if dev else "none (CPU only)")
    changed = env["theta"]["changed"]
    commit = env["theta"]["commit"]
    if changed:
        commit += f" with uncommitted changes to {', '.join(changed[:6])}" + (" ..." if len(changed) > 6 else "")
    lines = [f"# theta benchmarks, {env['date']}", "",
             f"- device: {where}",
             f"- theta: {commit}",
             f"- Python {env['python']}, NumPy {env['numpy']}, PyTorch {env['torch'] or 'not installed'}, "
             f"nvcc {env['nvcc'] or 'not installed'}; CPU: {env['cpu']}", ""]
    return "\n".join(lines) + "\n" + "\n".join(r.markdown() for r in reports)


def write(env: dict[str, Any], reports: Sequence[Report], stem: str) -> tuple[Path, Path, str]:
    """bench/results/<stem>.json and .md; returns their paths and the markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = markdown(env, reports)
    md, js = RESULTS / f"{stem}.md", RESULTS / f"{stem}.json"
    md.write_text(text)
    js.write_text(json.dumps({"environment": env, "benchmarks": {r.name: r.to_json() for r in reports}},
                             indent=1, default=str) + "\n")
    return js, md, text


def stem(env: dict[str, Any], command: str | None = None) -> str:
    """<date>-<device slug>[-<command>]; the slug is 'cpu' without a GPU."""
    where = slug(env["device"]["name"]) if env["device"] else "cpu"
    return "-".join([env["date"], where] + ([command] if command else []))

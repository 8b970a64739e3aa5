"""Compile cost of the MLP SGD step (bench/mlp.py's graph), stage by stage. Runs on a CPU.

Each run is a fresh Python process with THETA_CACHE_DIR pointing at an empty temporary
directory, so its first compile is what a user's first compile costs: no in-process caches
(sympy printing, templates, elementwise algebra) and no built artifacts on disk. Stages:

- graph: the symbolic model, theta.grad and theta.function (checks, toposort);
- specialize: concrete shapes for the leaves, shape rules re-run (compiler.specialize);
- rewrite: the rewrite passes (compiler.rewrite.optimize);
- fuse: layouts and fusion into kernel groups (compiler.layout, compiler.fuse);
- schedule: the buffer plan (compiler.schedule);
- render: lowering every group to CUDA C through the templates (compiler.lowering);
- g++: the emu build of the Program's source, cold (g++ runs, into an empty cache) and cached
  (the entry found on disk, sha256-checked and loaded); nvcc likewise, for sm_90, where nvcc
  is installed.

Cold figures are medians over ``--runs`` processes; warm ones over the ``--repeat`` further
compiles (of freshly built graphs) in each. Validation: the staged pipeline's kernels are
exactly what compiler.pipeline.build_program makes of the same graph.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .common import REPO, Report, ValidationError, fmt, median

NAME = "compile"
HELP = "compile cost of the MLP step: specialize, rewrite, fuse, render; g++/nvcc cold vs cached (CPU)"
NEEDS_GPU = False
STAGES = ("graph", "specialize", "rewrite", "fuse", "schedule", "render")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=256, help="minibatch size (default 256)")
    p.add_argument("--sizes", default="784,1024,1024,10", help="layer widths (default 784,1024,1024,10)")
    p.add_argument("--repeat", type=int, default=5, help="warm compiles per process (default 5)")
    p.add_argument("--runs", type=int, default=3, help="fresh processes, each one cold compile (default 3)")
    p.add_argument("--arch", default="sm_90", help="nvcc target for the cubin timing (default sm_90)")


@contextmanager
def timed(into: dict, stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    into[stage] = time.perf_counter() - t0


def front_end(batch: int, sizes: tuple[int, ...]) -> tuple[dict, list]:
    """Seconds per stage for one compile of the MLP step, and its kernels."""
    from theta.compiler import specialize as spz
    from theta.compiler.fuse import fuse
    from theta.compiler.layout import layouts
    from theta.compiler.lowering import lower_group
    from theta.compiler.pipeline import build_program
    from theta.compiler.rewrite import optimize
    from theta.compiler.schedule import plan_buffers
    from .mlp import init_weights, theta_step

    weights = init_weights(sizes)
    t: dict[str, float] = {}
    with timed(t, "graph"):
        f, _ = theta_step(weights, 0.1, backend="emu")
    with timed(t, "specialize"):
        leaves = [i.variable for i in f.inputs] + list(f.shared)
        shapes = [(batch, sizes[0]), (batch,)] + [s.value_shape for s in f.shared]
        leaf_map = spz.concrete_leaves(leaves, shapes)
        graph = spz.level1(f._graph, leaf_map)
        if not spz.DynamicPlan(graph).empty:
            raise ValidationError("the MLP step should have no value-dependent shapes")
    concrete = list(leaf_map.values())
    with timed(t, "rewrite"):
        outputs = optimize(graph, f.options.optimizer)
    with timed(t, "fuse"):
        lays = layouts(outputs)
        groups = fuse(outputs, lays)
    with timed(t, "schedule"):
        plan = plan_buffers(groups, lays, concrete, [], [], outputs)
    with timed(t, "render"):
        kernels: list = []
        for g in groups:
            kernels += lower_group(g, f"theta_k{len(kernels)}_{g.family}", plan, lays)
    reference = build_program(outputs, concrete, [])
    if [k.source for k in kernels] != [k.source for k in reference.kernels]:
        raise ValidationError("the staged pipeline's kernels differ from compiler.pipeline.build_program's")
    return t, kernels


def build_times(kernels: list, root: Path, arch: str) -> dict:
    """Seconds of a g++ (emu) and an nvcc (cubin) build of the Program's source: cold (into an
    empty cache), then cached (the entry just made, found, checked and loaded)."""
    from theta.runtime import nvcc
    from theta.runtime.cache import KernelCache
    from theta.runtime.emu_build import EmuModule, KernelSig, Param
    source = "\n".join(k.source for k in kernels)
    sigs = [KernelSig(k.name, tuple(Param(p.name, p.ctype) for p in k.params)) for k in kernels]

    def cold_then_cached(tool: str, build: Callable[[KernelCache], object]) -> tuple[float, float]:
        cache = KernelCache(root / tool)
        seconds, misses = [], []
        for _ in range(2):
            t0 = time.perf_counter()
            build(cache)
            seconds.append(time.perf_counter() - t0)
            misses.append(cache.misses)
        if misses[0] == 0 or misses[1] != misses[0] or cache.hits == 0:
            raise ValidationError(f"{tool}: expected a build, then cache hits only; got {cache!r}")
        return seconds[0], seconds[1]

    out: dict = {"source_lines": source.count("\n") + 1}
    out["gxx_cold"], out["gxx_cached"] = cold_then_cached("emu", lambda c: EmuModule(source, sigs, cache=c))
    if nvcc.find_nvcc() is not None:
        out["nvcc_cold"], out["nvcc_cached"] = cold_then_cached(
            "nvcc", lambda c: nvcc.compile_cubin(source, arch, cache=c))
    return out


def measure(batch: int, sizes: tuple[int, ...], repeat: int, arch: str) -> dict:
    """One run, in a fresh process with an empty THETA_CACHE_DIR (see ``run``)."""
    t0 = time.perf_counter()
    importlib.import_module("theta")
    import_s = time.perf_counter() - t0
    cold, kernels = front_end(batch, sizes)
    warm = [front_end(batch, sizes)[0] for _ in range(repeat)]
    return {"import_theta": import_s, "cold": cold, "warm": warm, "kernels": [k.family for k in kernels],
            "builds": build_times(kernels, Path(os.environ["THETA_CACHE_DIR"]), arch)}


def measure_in_fresh_process(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="theta-bench-cache-") as cache_dir:
        cmd = [sys.executable, "-m", "bench.compile", "--batch", str(args.batch), "--sizes", args.sizes,
               "--repeat", str(args.repeat), "--arch", args.arch]
        proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, THETA_CACHE_DIR=cache_dir),
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the compile measurement failed:\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> dict:
    """Medians: cold stages and builds over the runs, warm stages over every warm compile."""
    warm = [w for r in runs for w in r["warm"]]
    builds = {key: median([r["builds"][key] for r in runs]) for key in runs[0]["builds"]}
    return {"runs": len(runs), "warm_compiles": len(warm), "kernels": runs[0]["kernels"],
            "import_theta_ms": median([r["import_theta"] for r in runs]) * 1e3,
            "cold_ms": {s: median([r["cold"][s] for r in runs]) * 1e3 for s in STAGES},
            "warm_ms": {s: median([w[s] for w in warm]) * 1e3 for s in STAGES},
            "builds_ms": {k: v * 1e3 if k != "source_lines" else v for k, v in builds.items()}}


def run(args: argparse.Namespace) -> Report:
    from theta.runtime.nvcc import find_nvcc, nvcc_version
    m = summarize([measure_in_fresh_process(args) for _ in range(args.runs)])
    sizes = [int(n) for n in args.sizes.split(",")]
    m |= {"batch": args.batch, "sizes": sizes, "nvcc": nvcc_version() if find_nvcc() else None, "arch": args.arch}
    m["total_cold_ms"], m["total_warm_ms"] = sum(m["cold_ms"].values()), sum(m["warm_ms"].values())
    b = m["builds_ms"]
    report = Report(NAME, f"Compile cost of the MLP SGD step (batch {args.batch}, {'-'.join(map(str, sizes))}, "
                          "float32), ms", ["stage", "cold", "warm"])
    report.rows = [[stage, fmt(m["cold_ms"][stage]), fmt(m["warm_ms"][stage])] for stage in STAGES]
    report.rows.append(["**graph to CUDA C, total**", fmt(m["total_cold_ms"]), fmt(m["total_warm_ms"])])
    report.rows.append(["g++ emu build (cold / cached)", fmt(b["gxx_cold"]), fmt(b["gxx_cached"])])
    if "nvcc_cold" in b:
        report.rows.append([f"nvcc cubin {args.arch} (cold / cached)", fmt(b["nvcc_cold"]), fmt(b["nvcc_cached"])])
    report.figures = m
    families = m["kernels"]
    counts = ", ".join(f"{families.count(family)} {family}" for family in dict.fromkeys(families))
    report.notes = [
        f"{len(families)} kernels ({counts}), {b['source_lines']:.0f} lines of CUDA C; "
        f"`import theta` took {fmt(m['import_theta_ms'])} ms.",
        f"Cold: the first compile in a fresh process with an empty THETA_CACHE_DIR, median of {m['runs']} "
        f"processes; warm: median of {m['warm_compiles']} later compiles of freshly built graphs in those "
        "processes. Builds: cold into an empty cache, cached = the entry found on disk, sha256-checked and "
        f"loaded; medians of {m['runs']}.",
        "nvcc " + (m["nvcc"] if m["nvcc"] else "is not installed here, so there is no cubin timing") + ".",
    ]
    return report


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.compile")
    add_arguments(parser)
    args = parser.parse_args(argv)
    sizes = tuple(int(n) for n in args.sizes.split(","))
    print(json.dumps(measure(args.batch, sizes, args.repeat, args.arch)))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))

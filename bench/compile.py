"""Compile cost of the MLP SGD step (bench/mlp.py's graph), stage by stage. Runs on a CPU.

Each run is a fresh Python process with THETA_CACHE_DIR (and TMPDIR) pointing at an empty
temporary directory, so its first compile is what a user's first compile costs: no in-process
caches (sympy printing, templates, elementwise algebra) and no built artifacts on disk. Stages:

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

Then the peers, side by side in the same run: the SGD step of an MLP with D tanh layers (width
``--width``, batch ``--peer-batch``, 10 classes, softmax cross-entropy) for each D in
``--depths``, compiled by theta (emu backend), by JAX's jit and by PyTensor, each where it is
installed (the report says when a peer is missing). Every figure is one fresh process: the
seconds from building the model (after the imports, timed apart) to the first step's loss on
the host. theta cold: an empty THETA_CACHE_DIR (and temporary directory, where jinja2 keeps
compiled templates); warm: the cache that cold run filled. JAX: no persistent compilation
cache (each process compiles, as by default). PyTensor cold: an empty base_compiledir; warm:
the one the cold run filled. Validation: the first step's loss agrees between the peers.
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
    p.add_argument("--depths", default="10,100", help="tanh layers of the peers' MLP (default 10,100)")
    p.add_argument("--width", type=int, default=32, help="width of the peers' MLP (default 32)")
    p.add_argument("--peer-batch", type=int, default=16, help="batch of the peers' MLP (default 16)")
    p.add_argument("--peer-runs", type=int, default=1,
                   help="processes per peer figure (cold, warm, JAX, PyTensor), median (default 1)")
    p.add_argument("--peers", default="theta,jax,pytensor", help="peers to measure (default theta,jax,pytensor)")
    p.add_argument("--peer-timeout", type=float, default=900, help="seconds one peer process may take (default 900)")
    p.add_argument("--no-stages", action="store_true", help="only the peers, not the MLP step's stages")
    p.add_argument("--peer-pythonpath", default="",
                   help="put this in front of PYTHONPATH for the JAX and PyTensor processes (peers installed apart)")
    p.add_argument("--peer", help=argparse.SUPPRESS)    # in a child process: measure this peer once
    p.add_argument("--depth", type=int, help=argparse.SUPPRESS)


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
            kernels += lower_group(g, f"theta_k{len(kernels)}_{g.family}", plan, lays, code=len(kernels) + 1)
    reference = build_program(outputs, concrete, [])
    if [k.source for k in kernels] != [k.source for k in reference.kernels]:
        raise ValidationError("the staged pipeline's kernels differ from compiler.pipeline.build_program's")
    return t, kernels


def build_times(kernels: list, root: Path, arch: str) -> dict:
    """Seconds of a g++ (emu) and an nvcc (cubin) build of the Program's source: cold (into an
    empty cache: the precompiled emu.h and the shared runtime object included), then cached (the
    library just made, found, checked and loaded)."""
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
    # as the emu device builds a Program: one object per distinct kernel, linked (runtime.emu_build)
    pieces = [k.source for k in kernels]
    out["gxx_cold"], out["gxx_cached"] = cold_then_cached(
        "emu", lambda c: EmuModule(source, sigs, cache=c, kernel_sources=pieces))
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
        tmp = Path(cache_dir) / "tmp"   # a private TMPDIR: jinja2's compiled templates start empty too
        tmp.mkdir()
        proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, THETA_CACHE_DIR=cache_dir, TMPDIR=str(tmp)),
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


# -- the peers: one fresh process per figure ------------------------------------------------------

N_CLASSES = 10
LR = 0.1


def peer_data(depth: int, width: int, batch: int) -> tuple:
    """Weights (W0, b0, W1, b1, ...: ``depth`` tanh layers of ``width``, then a softmax layer of
    N_CLASSES), a minibatch x and labels y; the same in every peer's process."""
    import numpy as np
    from .mlp import init_weights
    sizes = (width,) * (depth + 1) + (N_CLASSES,)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, width)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, batch).astype(np.int32)
    return init_weights(sizes), x, y


def compile_theta(weights, x, y) -> float:
    from .mlp import theta_step
    f, _ = theta_step(weights, LR, backend="emu")
    return float(f(x, y))


def compile_jax(weights, x, y) -> float:
    import jax
    import jax.numpy as jnp
    n_layers = len(weights) // 2

    def loss(params, x, y):
        h = x
        for k in range(n_layers):
            h = h @ params[2 * k] + params[2 * k + 1]
            if k < n_layers - 1:
                h = jnp.tanh(h)
        logp = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(params, x, y):
        cost, grads = jax.value_and_grad(loss)(params, x, y)
        return cost, [p - LR * g for p, g in zip(params, grads)]

    cost, params = step([jnp.asarray(w) for w in weights], jnp.asarray(x), jnp.asarray(y))
    jax.block_until_ready(params)
    return float(cost)


def compile_pytensor(weights, x, y) -> float:
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.special import log_softmax
    xs, ys = pt.fmatrix("x"), pt.ivector("y")
    params = [pytensor.shared(w) for w in weights]
    h = xs
    n_layers = len(weights) // 2
    for k in range(n_layers):
        h = pt.dot(h, params[2 * k]) + params[2 * k + 1]
        if k < n_layers - 1:
            h = pt.tanh(h)
    cost = -pt.mean(log_softmax(h, axis=-1)[pt.arange(ys.shape[0]), ys])
    grads = pytensor.grad(cost, params)
    f = pytensor.function([xs, ys], cost, updates=[(p, p - np_float32(LR) * g) for p, g in zip(params, grads)])
    return float(f(x, y))


def np_float32(v: float):
    import numpy as np
    return np.float32(v)


PEERS = {"theta": ("theta", compile_theta), "jax": ("jax", compile_jax), "pytensor": ("pytensor", compile_pytensor)}


def peer_child(peer: str, depth: int, width: int, batch: int) -> dict:
    """In a fresh process: seconds to import the peer, then to compile and run the first step."""
    module, compile_step = PEERS[peer]
    t0 = time.perf_counter()
    mod = importlib.import_module(module)
    import_s = time.perf_counter() - t0
    weights, x, y = peer_data(depth, width, batch)
    t1 = time.perf_counter()
    loss = compile_step(weights, x, y)
    out = {"import_s": import_s, "compile_s": time.perf_counter() - t1, "loss": loss,
           "version": getattr(mod, "__version__", None)}
    if peer == "pytensor":
        out["mode"] = f"mode {mod.config.mode}, linker {mod.config.linker}"
    return out


def _peer_path(peer: str, args: argparse.Namespace) -> dict:
    if peer == "theta" or not args.peer_pythonpath:
        return {}
    return {"PYTHONPATH": os.pathsep.join(filter(None, [args.peer_pythonpath, os.environ.get("PYTHONPATH")]))}


def peer_installed(peer: str, args: argparse.Namespace) -> str | None:
    """None if the peer can be imported here, else why not."""
    if peer == "theta":
        return None
    proc = subprocess.run([sys.executable, "-c", f"import {PEERS[peer][0]}"], capture_output=True, text=True,
                          env=dict(os.environ, **_peer_path(peer, args)))
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return f"{peer} is not installed here ({last})"


def peer_process(peer: str, depth: int, args: argparse.Namespace, env: dict) -> dict:
    cmd = [sys.executable, "-m", "bench.compile", "--peer", peer, "--depth", str(depth), "--width", str(args.width),
           "--peer-batch", str(args.peer_batch)]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, **env, **_peer_path(peer, args)),
                              capture_output=True, text=True,
                              timeout=args.peer_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"took over {args.peer_timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_peers(args: argparse.Namespace) -> dict:
    """{peer: {depth: {case: figures}}}, and why each missing peer is missing."""
    depths = [int(d) for d in args.depths.split(",")]
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    out: dict = {"depths": depths, "width": args.width, "batch": args.peer_batch, "missing": {}, "figures": {}}
    for peer in wanted:
        why = peer_installed(peer, args)
        if why:
            out["missing"][peer] = why
    for depth in depths:
        for peer in wanted:
            if peer in out["missing"]:
                continue
            cases: dict = {}
            for _ in range(args.peer_runs):
                with tempfile.TemporaryDirectory(prefix=f"theta-bench-{peer}-") as tmp:
                    tmp = Path(tmp)
                    if peer == "theta":
                        env = {"THETA_CACHE_DIR": str(tmp / "cache"), "TMPDIR": str(tmp / "tmp")}
                        (tmp / "tmp").mkdir()
                        runs = [("cold", env), ("warm", env)]
                    elif peer == "pytensor":
                        env = {"PYTENSOR_FLAGS": f"base_compiledir={tmp / 'compiledir'},floatX=float32",
                               "NUMBA_CACHE_DIR": str(tmp / "numba")}
                        runs = [("cold", env), ("warm", env)]
                    else:
                        runs = [("jit", {"JAX_PLATFORMS": "cpu"})]
                    for case, env in runs:
                        cases.setdefault(case, []).append(peer_process(peer, depth, args, env))
            out["figures"].setdefault(peer, {})[depth] = {case: _median_run(rs) for case, rs in cases.items()}
            print(f"[bench] compile: {peer} D={depth}: " + ", ".join(
                f"{case} {fig.get('compile_s', float('nan')):.2f} s" if "error" not in fig else f"{case} failed"
                for case, fig in out["figures"][peer][depth].items()), file=sys.stderr, flush=True)
    _validate_losses(out)
    return out


def _median_run(runs: list[dict]) -> dict:
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    return dict(good[0], import_s=median([r["import_s"] for r in good]),
                compile_s=median([r["compile_s"] for r in good]), processes=len(good))


def _validate_losses(out: dict) -> None:
    """Every peer's first-step loss at a depth agrees with theta's (the same model and data)."""
    for depth in out["depths"]:
        losses = {(peer, case): fig["loss"] for peer, by_depth in out["figures"].items()
                  for case, fig in by_depth.get(depth, {}).items() if "loss" in fig}
        if not losses:
            continue
        first = next(iter(losses.values()))
        for who, loss in losses.items():
            if abs(loss - first) > 1e-4 * max(1.0, abs(first)):
                raise ValidationError(f"D={depth}: first-step losses disagree: {losses}")


def peers_report(peers: dict) -> Report:
    fig = peers["figures"]
    th, jx, ptn = fig.get("theta", {}), fig.get("jax", {}), fig.get("pytensor", {})

    def s(f: dict | None, key: str = "compile_s") -> str:
        if f is None:
            return "—"
        return "failed" if "error" in f else fmt(f[key])

    report = Report(NAME + "-peers", f"Compile time of an MLP SGD step, D tanh layers (width {peers['width']}, "
                                     f"batch {peers['batch']}, float32), s: theta vs JAX vs PyTensor",
                    ["D", "theta warm", "theta cold", "JAX jit", "PyTensor warm", "PyTensor cold",
                     "theta warm / JAX", "theta cold / JAX"])
    for d in peers["depths"]:
        t, j, p = th.get(d, {}), jx.get(d, {}), ptn.get(d, {})
        ratio = lambda a, b: fmt(a["compile_s"] / b["compile_s"]) + "×" if a and b and "error" not in a             and "error" not in b else "—"
        report.rows.append([str(d), s(t.get("warm")), s(t.get("cold")), s(j.get("jit")), s(p.get("warm")),
                            s(p.get("cold")), ratio(t.get("warm"), j.get("jit")), ratio(t.get("cold"), j.get("jit"))])
    imports, totals = [], []
    for name, by_depth, case in (("theta", th, "warm"), ("JAX", jx, "jit"), ("PyTensor", ptn, "warm")):
        f = next((v.get(case) for v in by_depth.values() if v.get(case) and "error" not in v.get(case)), None)
        if f:
            imports.append(f"{name} {fmt(f['import_s'])} s")
        for d, v in by_depth.items():
            for c, f in v.items():
                if "error" not in f:
                    totals.append(f"{name} {c} D={d} {fmt(f['import_s'] + f['compile_s'])} s")
    report.figures = peers
    report.notes = [
        "Each figure: one fresh process (the median of --peer-runs), seconds from building the model (after "
        "the imports) to the first step's loss on the host; imports apart: " + (", ".join(imports) or "—") + " "
        "(`import theta` is lazy: theta's figures include importing sympy and jinja2 on first use).",
        "With the imports: " + (", ".join(totals) or "—") + ".",
        "theta: backend emu (g++ builds the kernels), cold = empty THETA_CACHE_DIR and TMPDIR, warm = the cache the "
        "cold run filled; JAX: jit on CPU, no persistent compilation cache; PyTensor: its default mode, cold = empty "
        "base_compiledir (its C and numba caches) and NUMBA_CACHE_DIR, warm = those the cold run filled.",
        "Validated: the first step's loss is the same for every peer and case.",
    ]
    versions = {name: next((f.get("version") for v in by_depth.values() for f in v.values() if f.get("version")), None)
                for name, by_depth in fig.items()}
    mode = next((f["mode"] for v in ptn.values() for f in v.values() if f.get("mode")), None)
    report.notes.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
                        + (f"; PyTensor {mode}." if mode else "."))
    for peer, why in peers["missing"].items():
        report.notes.append(f"Missing peer: {why}.")
    return report


class Sections(Report):
    """Reports shown one after the other (the peers, then the MLP step's stages), one JSON entry."""

    def __init__(self, parts: list[Report]) -> None:
        super().__init__(NAME, " / ".join(p.title for p in parts))
        self.parts = parts
        self.figures = {p.name: p.figures for p in parts}
        self.error = next((p.error for p in parts if p.error), None)

    def markdown(self) -> str:
        return "\n".join(p.markdown() for p in self.parts)

    def to_json(self) -> dict:
        return {"title": self.title, "figures": self.figures, "notes": {p.name: p.notes for p in self.parts},
                "skipped": None, "error": self.error}


def run(args: argparse.Namespace) -> Report:
    parts = []
    if args.peers:
        parts.append(peers_report(measure_peers(args)))
    if not args.no_stages:
        parts.append(run_stages(args))
    return parts[0] if len(parts) == 1 else Sections(parts)


def run_stages(args: argparse.Namespace) -> Report:
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
    if args.peer:
        print(json.dumps(peer_child(args.peer, args.depth, args.width, args.peer_batch)))
        return 0
    sizes = tuple(int(n) for n in args.sizes.split(","))
    print(json.dumps(measure(args.batch, sizes, args.repeat, args.arch)))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))

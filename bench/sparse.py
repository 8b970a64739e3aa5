"""Sparse (CSR) times dense against the dense product of the same matrix, per multiply-add.

``theta.sparse.structured_dot(S, W)`` with S an (m, k) CSR matrix at a given density (1% by
default, a bag-of-words minibatch) and W a dense (k, n) matrix, next to ``T.dot(X, W)`` with X
the same matrix stored dense; and the transposed product a backward pass makes, S^T . G (the
gradient with respect to W) next to ``T.dot(X.T, G)``. A sparse product does nnz * n
multiply-adds, a dense one m * k * n: the figure is time per multiply-add, and the ratio
sparse / dense (above 1: the sparse kernel does each multiply-add slower; the issue asks for
less than 100).

Times are the Program's launches only, with the CSR arrays already bound (binding a scipy
value, O(nnz log nnz) on the host, is reported apart): on emu (the CPU, no GPU needed) the
executor's run, on cuda (where there is a GPU) CUDA-event time of the recorded launches
replayed back-to-back. Every product is checked against scipy/NumPy first.

    python3 -m bench.sparse [--backend emu|cuda|auto] [--m 512 --k 4096 --n 64 --density 0.01]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from .common import Report, check_close, fmt, gpu_unavailable, host_seconds, median

NAME = "sparse"
HELP = "CSR structured_dot vs dense T.dot of the same matrix, time per multiply-add"
NEEDS_GPU = False   # emu without a GPU; cuda where there is one
SIZES = {"emu": dict(m=512, k=4096, n=64), "cuda": dict(m=4096, k=16384, n=256)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["emu", "cuda", "auto"], default="auto",
                   help="auto: cuda where a GPU and pycuda are present, else emu")
    for dim in ("m", "k", "n"):
        p.add_argument(f"--{dim}", type=int, default=None,
                       help=f"{dim} (default {SIZES['emu'][dim]} on emu, {SIZES['cuda'][dim]} on cuda)")
    p.add_argument("--density", type=float, default=0.01, help="fraction of stored entries (default 0.01)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (default 5 on emu, 50 on cuda)")


def _products(backend: str):
    """The sparse input S and the four compiled products: S.W, X.W (dense), S^T.G, X^T.G."""
    import theta
    import theta.sparse as sparse
    import theta.tensor as T
    S, X = sparse.csr_matrix("S", dtype="float32"), T.fmatrix("X")
    W, G = T.fmatrix("W"), T.fmatrix("G")
    y = sparse.structured_dot(S, W)
    # the gradient with respect to W given the output's gradient G: S^T . G, nothing else
    g_w = theta.grad(None, W, known_grads={y: G})
    return S, {"forward": (theta.function([S, W], y, backend=backend),
                        theta.function([X, W], T.dot(X, W), backend=backend)),
            "transposed": (theta.function([S, G], g_w, backend=backend),
                           theta.function([X, G], T.dot(X.T, G), backend=backend))}


def _timer(f, args: tuple, leaves: list, backend: str, repeat: int):
    """Seconds per run of ``f``'s launches for ``args`` (``leaves``: its bound leaf arrays)."""
    spec = f.specialization(*args)
    runner = spec.programs[0]
    if backend == "cuda":
        from theta.runtime.cuda import device
        from theta.runtime.device import DeviceArray
        from .theta_cuda import Launches
        dev_leaves = [DeviceArray.from_host(device(), a) for a in leaves]
        launches = Launches(runner, dev_leaves)
        return median(launches.device_ms(5, repeat)) / 1e3
    return median(host_seconds(lambda: runner.executor.run(leaves, []), 1, repeat))


def run(args: argparse.Namespace) -> Report:
    import scipy.sparse as sp
    from theta.compiler.sparse import csr_arrays
    backend = args.backend
    if backend == "auto":
        backend = "emu" if gpu_unavailable() else "cuda"
    elif backend == "cuda" and gpu_unavailable():
        from .common import Skip
        raise Skip(f"the cuda backend cannot run here: {gpu_unavailable()}")
    m, k, n = (getattr(args, d) or SIZES[backend][d] for d in ("m", "k", "n"))
    repeat = args.repeat or (5 if backend == "emu" else 50)
    rng = np.random.default_rng(0)
    s = sp.random(m, k, density=args.density, format="csr", random_state=rng, dtype="float32")
    x = s.toarray()
    w = rng.standard_normal((k, n)).astype("float32")
    g = rng.standard_normal((m, n)).astype("float32")
    S, fns = _products(backend)
    t0 = time.perf_counter()
    bound = csr_arrays(s, S, "S")
    bind_ms = (time.perf_counter() - t0) * 1e3

    report = Report(NAME, f"{HELP} ({backend}, m={m} k={k} n={n}, density {args.density:g}, nnz={s.nnz})",
                    columns=["product", "sparse ns/MAC", "dense ns/MAC", "sparse / dense per MAC",
                             "sparse ms", "dense ms", "max error"])
    wants = {"forward": (s @ w.astype("float64"), w), "transposed": (s.T @ g.astype("float64"), g)}
    for what, (f_sparse, f_dense) in fns.items():
        want, other = wants[what]
        err = check_close(f"{what} sparse ({backend})", f_sparse(s, other), want, 1e-4)
        err = max(err, check_close(f"{what} dense ({backend})", f_dense(x, other), want, 1e-4))
        t_sparse = _timer(f_sparse, (s, other), bound + [other], backend, repeat)
        t_dense = _timer(f_dense, (x, other), [x, other], backend, repeat)
        per_sparse, per_dense = t_sparse / max(s.nnz * n, 1), t_dense / (m * k * n)
        ratio = per_sparse / per_dense
        report.rows.append([what, fmt(per_sparse * 1e9), fmt(per_dense * 1e9), fmt(ratio),
                            fmt(t_sparse * 1e3), fmt(t_dense * 1e3), f"{err:.1e}"])
        report.figures[what] = {"sparse_s": t_sparse, "dense_s": t_dense, "sparse_ns_per_mac": per_sparse * 1e9,
                                "dense_ns_per_mac": per_dense * 1e9, "ratio_per_mac": ratio,
                                "speedup": t_dense / t_sparse, "max_error": err}
    report.figures.update(backend=backend, m=m, k=k, n=n, density=args.density, nnz=int(s.nnz), bind_ms=bind_ms)
    report.notes.append(f"binding the scipy matrix on the host (canonical CSR + the transpose's CSR): "
                        f"{bind_ms:.2f} ms, "
                        "once per call, not in the times above")
    if backend == "emu":
        report.notes.append("emu runs the CUDA C on the CPU: the dense GEMM's tiles run as fibers with barriers, the "
                            "sparse kernels as plain calls, so the ratio says little about a GPU")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.sparse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    print(run(parser.parse_args(argv)).markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Host launch overhead per kernel on the cuda backend, next to PyTorch's per-op overhead.

The Program is a chain ``h = tanh(h.T) + 1`` of N links on a 32x32 float32 matrix: the
transpose stops elementwise fusion, so it is N tiny kernels whose GPU time is a few
microseconds. Per kernel, for each N:

- call: a whole ``f(x)`` (argument checks, the launches, the synchronize, the 4 KiB result
  copied home), divided by the kernel count;
- executor: ``CudaExecutor.run_values`` alone (buffers, argument packing, launches, synchronize);
- launch: the prepared ``pycuda`` launches replayed back-to-back (the floor of this design);
- gpu: CUDA-event time of one replay, divided by the kernel count.

PyTorch, side by side: N dependent ``h = h + 1`` on a 32x32 tensor then a synchronize (the
same shape of work as one theta call), per op; and its steady-state rate, ops queued without
waiting. The marginal cost of one more kernel is the slope of the call time between the
smallest and largest N.
"""
from __future__ import annotations

import argparse

import numpy as np

from .common import Report, check_close, fmt, host_seconds, median, require_torch
from .theta_cuda import Launches

NAME = "launch"
HELP = "host launch overhead per kernel (theta cuda vs PyTorch)"
NEEDS_GPU = True
SIDE = 32


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chain", type=lambda s: [int(n) for n in s.split(",")], default=[1, 8, 64],
                   help="chain lengths N, comma-separated (default 1,8,64)")
    p.add_argument("--repeat", type=int, default=200, help="timed calls per measurement (default 200)")


def chain_function(n: int):
    import theta
    import theta.tensor as T
    x = T.fmatrix("x")
    h = x
    for _ in range(n):
        h = T.tanh(h.T) + 1
    return theta.function([x], h, backend="cuda")


def chain_reference(x: np.ndarray, n: int) -> np.ndarray:
    h = x.astype(np.float64)
    for _ in range(n):
        h = np.tanh(h.T) + 1
    return h


def measure_theta(n: int, repeat: int) -> dict:
    from theta.runtime.cuda import DeviceArray
    f = chain_function(n)
    x_host = np.random.default_rng(n).standard_normal((SIDE, SIDE)).astype(np.float32)
    x = DeviceArray.from_host(x_host)
    err = check_close(f"chain of {n}", f(x), chain_reference(x_host, n), 1e-5)
    launches = Launches.capture(f, x)
    kernels = launches.n_kernels
    err = max(err, check_close(f"chain of {n} (captured run)", np.asarray(launches.outputs[0]),
                               chain_reference(x_host, n), 1e-5))
    call = median(host_seconds(lambda: f(x), 10, repeat))
    executor, leaves = launches.executor, launches.leaf_values
    run = median(host_seconds(lambda: executor.run_values(leaves, []), 10, repeat))
    launch = launches.host_seconds_per_launch(max(repeat // 4, 10))
    gpu_ms = median(launches.device_ms(10, repeat))
    return {"n": n, "kernels": kernels, "max_error": err,
            "call_us": call * 1e6, "call_us_per_kernel": call * 1e6 / kernels,
            "executor_us_per_kernel": run * 1e6 / kernels,
            "launch_us_per_kernel": launch * 1e6,
            "gpu_us_per_kernel": gpu_ms * 1e3 / kernels}


def measure_torch(n: int, repeat: int) -> dict:
    torch = require_torch()
    x = torch.rand(SIDE, SIDE, device="cuda")

    def ops_then_sync() -> None:
        h = x
        for _ in range(n):
            h = h + 1
        torch.cuda.synchronize()

    t = median(host_seconds(ops_then_sync, 10, repeat))
    return {"n": n, "sync_us_per_op": t * 1e6 / n}


def torch_async_us_per_op(ops: int = 2000) -> float:
    torch = require_torch()
    x = torch.rand(SIDE, SIDE, device="cuda")

    def burst() -> None:
        for _ in range(ops):
            x + 1
        torch.cuda.synchronize()

    return median(host_seconds(burst, 2, 5)) * 1e6 / ops


def run(args: argparse.Namespace) -> Report:
    require_torch()
    ns = sorted(set(args.chain))
    theta_rows = [measure_theta(n, args.repeat) for n in ns]
    torch_rows = [measure_torch(n, args.repeat) for n in ns]
    torch_async = torch_async_us_per_op()
    report = Report(NAME, "Launch overhead per kernel (32x32 float32, µs)",
                    ["N", "kernels", "theta call/kernel", "theta executor/kernel", "theta launch only",
                     "theta GPU/kernel", "torch N ops + sync, per op", "theta call / torch"])
    for t, p in zip(theta_rows, torch_rows):
        report.rows.append([str(t["n"]), str(t["kernels"]), fmt(t["call_us_per_kernel"]),
                            fmt(t["executor_us_per_kernel"]), fmt(t["launch_us_per_kernel"]),
                            fmt(t["gpu_us_per_kernel"]), fmt(p["sync_us_per_op"]),
                            fmt(t["call_us_per_kernel"] / p["sync_us_per_op"])])
    first, last = theta_rows[0], theta_rows[-1]
    slope = None
    if last["kernels"] > first["kernels"]:
        slope = (last["call_us"] - first["call_us"]) / (last["kernels"] - first["kernels"])
    report.figures = {"theta": theta_rows, "torch": torch_rows, "torch_async_us_per_op": torch_async,
                      "theta_marginal_us_per_kernel": slope}
    report.notes = [
        f"theta: one more kernel in a call costs {fmt(slope)} µs (slope of the call time from N={first['n']} "
        f"to N={last['n']}); PyTorch queues a tiny op every {fmt(torch_async)} µs when it does not wait.",
        "call = the whole theta.function call; executor = CudaExecutor.run_values; launch only = prepared "
        "pycuda launches replayed without Python in between; GPU = CUDA events around one replay (where "
        "the host enqueues slower than the GPU runs, that is the launch rate again).",
        "Every chain was checked against NumPy before timing.",
    ]
    return report

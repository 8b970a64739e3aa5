"""Host launch overhead per kernel: theta's executor on a no-op device (any machine), and on the
cuda backend next to PyTorch's per-op overhead (with a GPU).

The Program is a chain ``h = tanh(h.T) + 1`` of N links on a 32x32 float32 matrix: the
transpose stops elementwise fusion, so it is N tiny kernels. Per kernel, for each N:

- host, no-op device (bench/null_device.py: the cuda device's host side without the driver):
  a whole ``f(x)`` call, and the executor's ``run`` alone, divided by the kernel count; the same
  for the 14-kernel MLP SGD step (784-1024-1024-10, batch 256), per step and per kernel;
- with a GPU: call (argument checks, launches, synchronize, the 4 KiB result copied home),
  executor, launch only (the recorded launches replayed back-to-back: the floor of this
  design), gpu (CUDA-event time of one replay);
- PyTorch, side by side: N dependent ``h = h + 1`` on a 32x32 tensor then a synchronize (the
  same shape of work as one theta call), per op; and its steady-state rate.

Every chain is checked against NumPy (on emu without a GPU) before timing.
"""
from __future__ import annotations

import argparse

import numpy as np

from .common import Report, check_close, fmt, host_seconds, median, require_torch
from .theta_cuda import Launches

NAME = "launch"
HELP = "host launch overhead per kernel (theta cuda vs PyTorch)"
NEEDS_GPU = False   # the host rows run anywhere; the GPU rows where there is one
SIDE = 32


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chain", type=lambda s: [int(n) for n in s.split(",")], default=[1, 8, 64],
                   help="chain lengths N, comma-separated (default 1,8,64)")
    p.add_argument("--repeat", type=int, default=200, help="timed calls per measurement (default 200)")


def chain_function(n: int, backend: str = "cuda"):
    import theta
    import theta.tensor as T
    x = T.fmatrix("x")
    h = x
    for _ in range(n):
        h = T.tanh(h.T) + 1
    return theta.function([x], h, backend=backend)


def on_null_device(f, *args):
    """Rebind ``f``'s specialization for ``args`` to a no-op device; returns its runner."""
    from theta.binding import KernelRunner
    from .null_device import NullDevice
    spec = f.specialization(*args)
    spec.program = KernelRunner(spec.program.program, NullDevice())
    return spec.program


def measure_host(n: int, repeat: int) -> dict:
    f = chain_function(n, "emu")
    x = np.random.default_rng(n).standard_normal((SIDE, SIDE)).astype(np.float32)
    err = check_close(f"chain of {n} (emu)", f(x), chain_reference(x, n), 1e-5)
    runner = on_null_device(f, x)
    kernels = len(runner.kernels)
    call = median(host_seconds(lambda: f(x), 20, repeat))
    run = median(host_seconds(lambda: runner.executor.run([x], []), 20, repeat))
    return {"n": n, "kernels": kernels, "max_error": err, "call_us_per_kernel": call * 1e6 / kernels,
            "executor_us_per_kernel": run * 1e6 / kernels, "call_us": call * 1e6}


def measure_host_mlp(repeat: int) -> dict:
    from .mlp import init_weights, theta_step
    f, params = theta_step(init_weights((784, 1024, 1024, 10)), 0.1, backend="emu")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((256, 784)).astype(np.float32), rng.integers(0, 10, 256).astype(np.int32)
    runner = on_null_device(f, x, y)
    kernels = len(runner.kernels)
    call = median(host_seconds(lambda: f(x, y), 20, repeat))
    leaves = [x, y] + list(params)
    run = median(host_seconds(lambda: runner.executor.run(leaves, []), 20, repeat))
    return {"kernels": kernels, "call_us": call * 1e6, "executor_us": run * 1e6,
            "call_us_per_kernel": call * 1e6 / kernels, "executor_us_per_kernel": run * 1e6 / kernels}


def chain_reference(x: np.ndarray, n: int) -> np.ndarray:
    h = x.astype(np.float64)
    for _ in range(n):
        h = np.tanh(h.T) + 1
    return h


def measure_theta(n: int, repeat: int) -> dict:
    from theta.runtime.cuda import device
    from theta.runtime.device import DeviceArray
    f = chain_function(n)
    x_host = np.random.default_rng(n).standard_normal((SIDE, SIDE)).astype(np.float32)
    x = DeviceArray.from_host(device(), x_host)
    err = check_close(f"chain of {n}", f(x), chain_reference(x_host, n), 1e-5)
    launches = Launches.capture(f, x)
    kernels = launches.n_kernels
    err = max(err, check_close(f"chain of {n} (captured run)", np.asarray(launches.outputs[0]),
                               chain_reference(x_host, n), 1e-5))
    call = median(host_seconds(lambda: f(x), 10, repeat))
    executor, leaves = launches.executor, launches.leaf_values
    run = median(host_seconds(lambda: executor.run(leaves, []), 10, repeat))
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
    from .common import Skip, gpu_unavailable
    ns = sorted(set(args.chain))
    host_rows = [measure_host(n, args.repeat) for n in ns]
    mlp = measure_host_mlp(max(args.repeat // 4, 20))
    report = Report(NAME, "Launch overhead per kernel (32x32 float32 chain, µs)",
                    ["N", "kernels", "host call/kernel (no-op device)", "host executor/kernel (no-op device)",
                     "theta call/kernel (GPU)", "theta executor/kernel (GPU)", "theta launch only (GPU)",
                     "theta GPU/kernel", "torch N ops + sync, per op", "theta call / torch"])
    report.figures = {"host_no_op_device": host_rows, "host_mlp_step_no_op_device": mlp}
    why = gpu_unavailable()
    gpu_rows = torch_rows = [None] * len(ns)
    if why is None:
        gpu_rows = [measure_theta(n, args.repeat) for n in ns]
        try:
            torch_rows = [measure_torch(n, args.repeat) for n in ns]
            report.figures["torch"] = torch_rows
            report.figures["torch_async_us_per_op"] = torch_async_us_per_op()
        except Skip as e:
            report.notes.append(f"PyTorch rows skipped: {e}")
        report.figures["theta"] = gpu_rows
    for h, t, p in zip(host_rows, gpu_rows, torch_rows):
        report.rows.append([str(h["n"]), str(h["kernels"]), fmt(h["call_us_per_kernel"]), fmt(h["executor_us_per_kernel"]),
                            fmt(t and t["call_us_per_kernel"]), fmt(t and t["executor_us_per_kernel"]),
                            fmt(t and t["launch_us_per_kernel"]), fmt(t and t["gpu_us_per_kernel"]),
                            fmt(p and p["sync_us_per_op"]),
                            fmt(t and p and t["call_us_per_kernel"] / p["sync_us_per_op"])])
    first, last = host_rows[0], host_rows[-1]
    slope = None
    if last["kernels"] > first["kernels"]:
        slope = (last["call_us"] - first["call_us"]) / (last["kernels"] - first["kernels"])
    report.figures["host_marginal_us_per_kernel"] = slope
    report.notes += [
        f"No-op device (host cost only): one more kernel in a call costs {fmt(slope)} µs (slope of the call time "
        f"from N={first['n']} to N={last['n']}); the {mlp['kernels']}-kernel MLP SGD step costs {fmt(mlp['call_us'])} µs "
        f"per call ({fmt(mlp['call_us_per_kernel'])} µs per kernel), {fmt(mlp['executor_us'])} µs of it in the executor.",
        "The no-op device packs each launch's arguments as the cuda device does and stops before the driver: "
        "add pycuda's _launch_kernel and cuLaunchKernel (about 1.5-2.5 µs on a current server core) for a GPU.",
        "call = the whole theta.function call; executor = Executor.run; launch only = the recorded device launches "
        "replayed without Python in between; GPU = CUDA events around one replay.",
        "GPU columns: " + ("measured." if why is None else f"n/a, no GPU here ({why})."),
        "Every chain was checked against NumPy before timing (on emu for the host rows).",
    ]
    return report

"""Per-family kernel microbenchmarks against the hardware and against PyTorch/cuBLAS.

Memory-bound families are held to the measured device-to-device copy bandwidth (bytes read
plus written, from PyTorch's ``copy_``), the design's target being 90% of it; GEMM to
cuBLAS with TF32 off and to the FP32 (SIMT) peak computed from the SM count and clock.
Each theta kernel is validated against PyTorch on the same device tensors, then timed by
replaying its launches (CUDA events); PyTorch by CUDA events around its call.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable

import numpy as np

from .common import Report, check_close, fmt, median, pct, require_torch, torch_device_ms
from .theta_cuda import Launches, release_memory

NAME = "kernels"
HELP = "elementwise, reductions, softmax, GEMM vs copy bandwidth, FP32 peak and PyTorch/cuBLAS"
NEEDS_GPU = True

# FP32 lanes per SM by compute capability (the SIMT peak's other factor)
FP32_LANES = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128, (9, 0): 128,
              (10, 0): 128, (12, 0): 128}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--elements", type=int, default=64 * 2**20, help="elements per memory-bound tensor (default 64M)")
    p.add_argument("--gemm", type=int, default=4096, help="square GEMM size (default 4096)")
    p.add_argument("--repeat", type=int, default=30, help="timed runs per kernel (default 30)")


@dataclasses.dataclass
class Case:
    """One kernel family: theta's graph, PyTorch's version, and what one run moves or computes."""

    name: str
    shape: str
    inputs: Callable[[], list]                  # device tensors
    theta: Callable[[Any, Any], Any]            # (T, symbolic inputs) -> output
    torch: Callable[..., Any]                   # (*tensors) -> tensor
    bytes: Callable[[list], int] | None = None  # memory-bound: bytes read + written
    flops: int | None = None                    # compute-bound
    tol: float = 1e-5


def cases(elements: int, n: int) -> list[Case]:
    torch = require_torch()
    side = int(np.sqrt(elements))
    rows, cols = elements // 4096, 4096         # reductions: 4096-wide rows
    srows, scols = elements // 1024, 1024       # softmax: 1024-wide rows
    f32 = 4

    def dev(*shape, kind="randn"):
        return getattr(torch, kind)(*shape, device="cuda", dtype=torch.float32)

    return [
        Case("elementwise tanh(x)*y+1", count(elements), lambda: [dev(elements), dev(elements)],
             lambda T, x, y: T.tanh(x) * y + 1, lambda x, y: torch.tanh(x) * y + 1,
             bytes=lambda a: 3 * a[0].numel() * f32),
        Case("row sum", f"{rows}x{cols} -> {rows}", lambda: [dev(rows, cols, kind="rand")],
             lambda T, x: T.sum(x, axis=1), lambda x: x.sum(dim=1),
             bytes=lambda a: (a[0].numel() + a[0].shape[0]) * f32),
        Case("column sum", f"{rows}x{cols} -> {cols}", lambda: [dev(rows, cols, kind="rand")],
             lambda T, x: T.sum(x, axis=0), lambda x: x.sum(dim=0),
             bytes=lambda a: (a[0].numel() + a[0].shape[1]) * f32),
        Case("row max (square)", f"{side}x{side} -> {side}", lambda: [dev(side, side)],
             lambda T, x: T.max(x, axis=1), lambda x: x.amax(dim=1),
             bytes=lambda a: (a[0].numel() + a[0].shape[0]) * f32),
        Case("softmax rows", f"{srows}x{scols}", lambda: [dev(srows, scols) * 3],
             lambda T, x: T.nnet.softmax(x), lambda x: torch.softmax(x, dim=1),
             bytes=lambda a: 2 * a[0].numel() * f32),
        Case("GEMM float32", f"{n}x{n}x{n}", lambda: [dev(n, n), dev(n, n)],
             lambda T, a, b: T.dot(a, b), lambda a, b: torch.matmul(a, b), flops=2 * n**3, tol=1e-4),
    ]


def count(n: int) -> str:
    """64M for 64 * 2**20, 4096 for 4096."""
    return f"{n // 2**20}M" if n >= 2**20 and n % 2**20 == 0 else str(n)


def copy_bandwidth(elements: int, repeat: int) -> float:
    """GB/s of a device-to-device copy, bytes read plus written."""
    torch = require_torch()
    src = torch.randn(elements, device="cuda")
    dst = torch.empty_like(src)
    ms = median(torch_device_ms(lambda: dst.copy_(src), 5, repeat))
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e9


def device_peaks() -> dict[str, float | None]:
    """Theoretical FP32 SIMT TFLOP/s and DRAM GB/s from the device's attributes (None if the
    driver does not report them)."""
    from theta.runtime.cuda import device
    rt = device()
    attr = rt.drv.device_attribute

    def get(name: str) -> int | None:
        try:
            return int(rt.device.get_attribute(getattr(attr, name)))
        except Exception:
            return None

    sms, clock_khz = get("MULTIPROCESSOR_COUNT"), get("CLOCK_RATE")
    lanes = FP32_LANES.get(rt.device.compute_capability())
    mem_khz, bus_bits = get("MEMORY_CLOCK_RATE"), get("GLOBAL_MEMORY_BUS_WIDTH")
    fp32 = sms * lanes * 2 * clock_khz * 1e3 / 1e12 if sms and lanes and clock_khz else None
    dram = 2 * mem_khz * 1e3 * bus_bits / 8 / 1e9 if mem_khz and bus_bits else None
    return {"fp32_tflops": fp32, "dram_gbs": dram, "sms": sms, "clock_mhz": clock_khz / 1e3 if clock_khz else None}


def measure(case: Case, repeat: int) -> dict:
    import theta
    import theta.tensor as T
    inputs = case.inputs()
    symbols = [T.tensor("float32", shape=(None,) * t.dim(), name=f"in{k}") for k, t in enumerate(inputs)]
    f = theta.function(symbols, case.theta(T, *symbols), backend="cuda")
    launches = Launches.capture(f, *inputs)
    want = case.torch(*inputs)
    err = check_close(case.name, np.asarray(launches.outputs[0]), want.cpu().numpy(), case.tol)
    theta_ms = median(launches.device_ms(3, repeat))
    torch_ms = median(torch_device_ms(lambda: case.torch(*inputs), 3, repeat))
    row = {"case": case.name, "shape": case.shape, "max_error": err, "theta_ms": theta_ms, "torch_ms": torch_ms,
           "theta_kernels": [f"{k.family} grid={list(k.grid)} block={list(k.block)}" for k in launches.program.kernels]}
    if case.bytes is not None:
        nbytes = case.bytes(inputs)
        row.update(bytes=nbytes, theta_gbs=nbytes / theta_ms / 1e6, torch_gbs=nbytes / torch_ms / 1e6)
    if case.flops is not None:
        row.update(flops=case.flops, theta_tflops=case.flops / theta_ms / 1e9, torch_tflops=case.flops / torch_ms / 1e9)
    return row


def run(args: argparse.Namespace) -> Report:
    require_torch()
    copy_gbs = copy_bandwidth(args.elements, args.repeat)
    peaks = device_peaks()
    report = Report(NAME, "Kernel families vs the hardware and PyTorch/cuBLAS",
                    ["kernel", "shape", "theta ms", "theta rate", "of the limit", "torch ms", "torch rate",
                     "theta / torch time"])
    results, failed = [], []
    for case in cases(args.elements, args.gemm):
        try:
            row = measure(case, args.repeat)
        except Exception as e:  # one family failing must not hide the others' figures
            failed.append(f"{case.name}: {type(e).__name__}: {e}")
            report.rows.append([case.name, case.shape, "FAILED", "", "", "", "", ""])
            continue
        finally:
            release_memory()
        results.append(row)
        if "theta_gbs" in row:
            rate, torch_rate = f"{fmt(row['theta_gbs'])} GB/s", f"{fmt(row['torch_gbs'])} GB/s"
            row["of_copy_bandwidth"] = row["theta_gbs"] / copy_gbs
            limit = f"{pct(row['of_copy_bandwidth'])} of copy"
        else:
            rate, torch_rate = f"{fmt(row['theta_tflops'])} TFLOP/s", f"{fmt(row['torch_tflops'])} TFLOP/s"
            row["of_fp32_peak"] = row["theta_tflops"] / peaks["fp32_tflops"] if peaks["fp32_tflops"] else None
            limit = f"{pct(row['of_fp32_peak'])} of FP32 peak"
        report.rows.append([case.name, case.shape, fmt(row["theta_ms"]), rate, limit, fmt(row["torch_ms"]),
                            torch_rate, fmt(row["theta_ms"] / row["torch_ms"])])
    report.figures = {"copy_gbs": copy_gbs, "peaks": peaks, "cases": results, "failed": failed}
    report.notes = [
        f"Copy bandwidth (device to device, read + write): {fmt(copy_gbs)} GB/s; DRAM peak from the "
        f"device's clocks: {fmt(peaks['dram_gbs'])} GB/s; FP32 SIMT peak: {fmt(peaks['fp32_tflops'])} TFLOP/s.",
        "GB/s counts each tensor read and written once (what the kernel must move); PyTorch's elementwise "
        "line is three unfused kernels counted with the same bytes.",
        "Every theta result was checked against PyTorch first (TF32 off); medians of the repeats.",
    ]
    if failed:
        report.error = "\n".join(failed)
    return report

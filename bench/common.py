"""What every benchmark shares: the Report it returns, timing, validation, the GPU check.

A benchmark validates before it times: ``check_close`` raises ``ValidationError`` and the
benchmark stops there, with no figures. Nothing here asserts anything about speed.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


class ValidationError(AssertionError):
    """A benchmark's result disagrees with the reference it is checked against."""


class Skip(Exception):
    """A benchmark cannot run here (a missing tool or library); the message says why."""


@dataclasses.dataclass
class Report:
    """One benchmark's outcome: a table for people, ``figures`` (plain numbers) for JSON."""

    name: str
    title: str
    columns: list[str] = dataclasses.field(default_factory=list)
    rows: list[list[str]] = dataclasses.field(default_factory=list)
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None
    error: str | None = None

    def markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.skipped:
            return "\n".join(lines + [f"Skipped: {self.skipped}", ""])
        if self.error:
            lines += ["**FAILED**:", "", "```", self.error.rstrip(), "```", ""]
        if self.rows:
            lines += ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
            lines += ["| " + " | ".join(row) + " |" for row in self.rows]
            lines.append("")
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "figures": self.figures, "notes": self.notes,
                "skipped": self.skipped, "error": self.error}


# -- where we are ----------------------------------------------------------------------------

def gpu_unavailable() -> str | None:
    """Why theta's cuda backend cannot run here (no pycuda, no device), or None if it can."""
    from theta.runtime.backends import cuda_available
    ok, why = cuda_available()
    return None if ok else why


def no_gpu_sentence(what: str, why: str) -> str:
    return (f"No GPU benchmark ran ({what}): {why}, and these benchmarks need an NVIDIA GPU with pycuda "
            "(on the GPU machine: `source .gpu/setup.sh && python3 -m bench --all`; "
            "`python3 -m bench compile` is the one that runs on a CPU).")


def require_torch():
    """PyTorch with CUDA, float32 matmuls in full precision (no TF32), or Skip."""
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install raising at import
        raise Skip(f"PyTorch is not importable ({type(e).__name__}: {e})") from e
    if not torch.cuda.is_available():
        raise Skip("PyTorch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return torch


# -- timing -----------------------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def host_seconds(fn: Callable[[], object], warmup: int, repeat: int) -> list[float]:
    """Wall-clock seconds of each of ``repeat`` calls of ``fn`` after ``warmup`` untimed ones.
    ``fn`` must itself wait for the GPU if the GPU's work is meant to count."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def torch_device_ms(fn: Callable[[], object], warmup: int, repeat: int) -> list[float]:
    """Milliseconds between CUDA events recorded around each call of ``fn`` on PyTorch's stream."""
    import torch
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


# -- validation -------------------------------------------------------------------------------

def check_close(what: str, got, want, tol: float) -> float:
    """The largest |got - want| relative to the largest |want|; ValidationError above ``tol``
    (or on a shape mismatch, or a NaN where the reference has none)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise ValidationError(f"{what}: shape {got.shape}, the reference has {want.shape}")
    if np.isnan(got).any() and not np.isnan(want).any():
        raise ValidationError(f"{what}: {int(np.isnan(got).sum())} NaNs")
    scale = float(np.abs(want).max()) if want.size else 0.0
    err = float(np.abs(got - want).max()) / max(scale, 1e-30) if want.size else 0.0
    if not err <= tol:
        worst = np.unravel_index(int(np.argmax(np.abs(got - want))), want.shape)
        raise ValidationError(f"{what}: max error {err:.3g} of the largest magnitude {scale:.3g} (allowed {tol:g}); "
                              f"worst at {tuple(int(i) for i in worst)}: {got[worst]!r} vs {want[worst]!r}")
    return err


# -- formatting -------------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits (whole numbers from 10**(digits-1) up)."""
    if value is None:
        return "n/a"
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 10 ** (digits - 1):
        return f"{value:.0f}"
    if size >= 1e-3:
        return f"{value:#.{digits}g}"
    return f"{value:.{digits - 1}e}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"

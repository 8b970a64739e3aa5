"""Configuration and compile options.

``config`` holds the user-visible defaults (``theta.config.floatX``, ``theta.config.backend``)
and is the only place environment flags are read (THETA_FLAGS="floatX=float64,backend=emu").
Compilation itself never reads it: ``function`` snapshots it into a frozen ``CompileOptions``
that is passed down the pipeline and whose hash is part of every cache key.
"""
from __future__ import annotations

import dataclasses
import os

from .errors import ThetaError

FLOAT_DTYPES = ("float32", "float64")
BACKENDS = ("reference", "emu", "cuda", "auto")


class Config:
    """Process-wide defaults, settable like ``theta.config.floatX = 'float64'``."""

    _fields = {"floatX": FLOAT_DTYPES, "backend": BACKENDS}

    def __init__(self) -> None:
        self.floatX = "float32"
        self.backend = "reference"
        self.optimizer = "fast_run"   # "fast_run" runs every rewrite pass; "None" only the required ones
        self.emu_asan = False         # emu backend: build kernels with AddressSanitizer (slow; catches OOB)
        self.emu_check = False        # emu backend: checking mode (races, barriers, schedules; slower)
        flags = os.environ.get("THETA_FLAGS", "")
        for item in filter(None, (s.strip() for s in flags.split(","))):
            key, _, value = item.partition("=")
            setattr(self, key.strip(), value.strip())

    def __setattr__(self, key: str, value) -> None:
        allowed = self._fields.get(key)
        if key == "optimizer":
            allowed = ("fast_run", "None")
        elif key in ("emu_asan", "emu_check"):
            if isinstance(value, str):  # from THETA_FLAGS
                value = value.lower() in ("1", "true", "yes")
            allowed = (True, False)
        elif allowed is None:
            raise ThetaError(f"theta.config has no option {key!r}; known options: floatX, backend, optimizer, "
                             "emu_asan, emu_check")
        if value not in allowed:
            raise ThetaError(f"theta.config.{key} must be one of {allowed}, got {value!r}")
        object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        return (f"Config(floatX={self.floatX!r}, backend={self.backend!r}, optimizer={self.optimizer!r}, "
                f"emu_asan={self.emu_asan!r}, emu_check={self.emu_check!r})")


config = Config()


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    """Everything that changes what a compiled function computes or how; hashable (a cache key)."""

    backend: str = "reference"
    optimizer: str = "fast_run"
    floatX: str = "float32"
    emu_asan: bool = False
    emu_check: bool = False

    @classmethod
    def from_config(cls, backend: str | None = None) -> "CompileOptions":
        backend = backend or config.backend
        if backend not in BACKENDS:
            raise ThetaError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        return cls(backend=backend, optimizer=config.optimizer, floatX=config.floatX, emu_asan=config.emu_asan,
                   emu_check=config.emu_check)

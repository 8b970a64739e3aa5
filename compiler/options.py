"""Configuration and compile options.

``config`` holds the user-visible defaults (``theta.config.floatX``, ``theta.config.backend``)
and is the only place environment flags are read (THETA_FLAGS="floatX=float64,backend=emu").
Compilation itself never reads it: ``function`` snapshots it into a frozen ``CompileOptions``
that is passed down the pipeline and whose hash is part of every cache key.
"""
from __future__ import annotations

import dataclasses
import os

from .errors import NotSupportedError, OptionError, ThetaError

FLOAT_DTYPES = ("float32", "float64")
BACKENDS = ("reference", "emu", "cuda", "auto")
OPTIONS = ("floatX", "backend", "optimizer", "mode", "emu_asan", "emu_check", "nan_guard", "debug")


class Config:
    """Process-wide defaults: ``theta.config`` (Theano's ``theano.config``).

    Set in code (``theta.config.floatX = 'float64'``) or from the environment
    (``THETA_FLAGS="floatX=float64,backend=emu"``, read once at import). Options: ``floatX``
    (``'float32'``, the default, or ``'float64'``: the dtype of ``T.matrix()`` and of Python float
    literals), ``backend`` (``'reference'``, ``'emu'``, ``'cuda'``, ``'auto'``), ``optimizer``
    (``'fast_run'``, ``'fast_compile'``, ``'None'``), ``mode`` (the default ``mode=`` of
    ``theta.function``), ``nan_guard``, ``emu_check`` (emu's sanitizer mode), ``emu_asan``
    (AddressSanitizer) and ``debug`` (errors keep theta's internal frames). An unknown option or
    value is an ``OptionError``. Compilation snapshots the config into :class:`CompileOptions`.
    """

    _fields = {"floatX": FLOAT_DTYPES, "backend": BACKENDS}

    def __init__(self) -> None:
        self.floatX = "float32"
        self.backend = "reference"
        self.optimizer = "fast_run"   # "fast_run" runs every rewrite pass; "None" only the required ones
        self.emu_asan = False         # emu backend: build kernels with AddressSanitizer (slow; catches OOB)
        self.emu_check = False        # emu backend: checking mode (races, barriers, schedules; slower)
        self.nan_guard = False        # stop at the first op/kernel producing NaN or Inf (debugging; slower)
        self.mode = None              # theta.function's default mode= (a name or a theta.Mode; compiler/mode.py)
        self.debug = False            # errors keep theta's internal frames and causes (errors.public_entry)
        flags = os.environ.get("THETA_FLAGS", "")
        for item in filter(None, (s.strip() for s in flags.split(","))):
            key, _, value = item.partition("=")
            setattr(self, key.strip(), value.strip())

    def __getattr__(self, key: str):
        # only reached for a name that is not an option: say which ones exist (Theano scripts
        # read options theta does not have, e.g. config.blas.ldflags)
        if key.startswith("__"):        # Python's protocol probes (copy, pickle)
            raise AttributeError(key)
        raise NotSupportedError(f"theta.config has no option {key!r}; known options: {', '.join(OPTIONS)}")

    def __setattr__(self, key: str, value) -> None:
        allowed = self._fields.get(key)
        if key == "optimizer":
            allowed = ("fast_run", "fast_compile", "None")
        elif key == "mode":
            from .mode import get_mode
            if value is not None:
                get_mode(value)   # an OptionError for an unknown name
            object.__setattr__(self, key, value)
            return
        elif key in ("emu_asan", "emu_check", "nan_guard", "debug"):
            if isinstance(value, str):  # from THETA_FLAGS
                value = value.lower() in ("1", "true", "yes")
            allowed = (True, False)
        elif allowed is None:
            raise OptionError(f"theta.config has no option {key!r}; known options: {', '.join(OPTIONS)}")
        if value not in allowed:
            raise OptionError(f"theta.config.{key} must be one of {allowed}, got {value!r}")
        object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        return (f"Config(floatX={self.floatX!r}, backend={self.backend!r}, optimizer={self.optimizer!r}, "
                f"emu_asan={self.emu_asan!r}, emu_check={self.emu_check!r}, nan_guard={self.nan_guard!r})")


config = Config()


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    """Everything that changes what a compiled function computes or how; hashable (part of every cache key).

    Made by :meth:`from_config` from ``theta.config`` and the arguments of ``theta.function``;
    frozen, so a compiled function is not affected by later config changes.

    Parameters
    ----------
    backend : str
        ``'reference'``, ``'emu'``, ``'cuda'`` or ``'auto'``.
    optimizer : str
        ``'fast_run'`` (every rewrite) or fewer (``'fast_compile'``, ``'None'``).
    floatX : str
    emu_asan, emu_check : bool
        emu's AddressSanitizer and checking modes.
    nan_guard : bool
        Check every op's or kernel's float outputs for NaN/Inf.
    debug_mode : bool
        DebugMode: compare every kernel with the reference evaluation of its nodes.
    """

    backend: str = "reference"
    optimizer: str = "fast_run"
    floatX: str = "float32"
    emu_asan: bool = False
    emu_check: bool = False
    # check every op's (reference) or kernel's (emu, cuda) float outputs for NaN/Inf as it runs;
    # changes no kernel source, so it is not part of any kernel's cache key
    nan_guard: bool = False
    # DebugMode (compiler/mode.py): compare every kernel's outputs with the reference evaluation
    # of its nodes (emu, cuda), or every op's result with its type (reference); no source change
    debug_mode: bool = False

    @classmethod
    def from_config(cls, backend: str | None = None, nan_guard: bool | None = None,
                    optimizer: str | None = None, debug_mode: bool = False) -> "CompileOptions":
        backend = backend or config.backend
        if backend not in BACKENDS:
            raise OptionError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        if nan_guard not in (None, True, False):
            raise OptionError(f"nan_guard must be True or False, got {nan_guard!r}")
        return cls(backend=backend, optimizer=optimizer or config.optimizer, floatX=config.floatX,
                   emu_asan=config.emu_asan, emu_check=config.emu_check,
                   nan_guard=config.nan_guard if nan_guard is None else nan_guard, debug_mode=bool(debug_mode))

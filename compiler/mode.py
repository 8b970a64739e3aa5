"""Compilation modes, with Theano's names: ``theta.function(..., mode=...)``.

A mode says which rewrites run (``optimizer``), what runs the result (``linker``) and which
checks run with it. ``mode=`` takes a name or a Mode object:

    FAST_RUN       every rewrite pass (the default)
    FAST_COMPILE   fewer passes: canonicalize (required) and stabilize (numerics); no constant
                   folding, no merge pass
    DebugMode      checks as it runs. On the kernel backends (emu, cuda) every fused kernel's
                   outputs are compared with the reference (NumPy) evaluation of the same group
                   of graph nodes on the same inputs, each value to its own error bound
                   (compiler/tolerance.py); the first kernel that disagrees raises
                   ``DebugModeError`` naming the kernel, the op, the largest error and the
                   generated C line that computes it. On the reference backend every op's
                   result is checked against the type its shape/dtype rule promised.
    NanGuardMode   the NaN guard (``nan_guard=True``): the first op or kernel that makes a NaN
                   or an infinity raises ``NanError`` naming it.

``Mode(linker=..., optimizer=...)`` builds one: ``optimizer`` is 'fast_run' (also Theano's
'default', 'o4'), 'fast_compile' ('merge', 'o1') or None/'None' (only the passes required for
correctness); ``linker`` is one of theta's backends ('reference', 'emu', 'cuda', 'auto') or one
of Theano's linker names ('cvm', 'vm', 'c', 'py', 'c|py', ...), which all mean "the backend the
function was asked for". ``mode.including(...)``/``excluding(...)`` return a copy with the tags
recorded; theta's passes are not selected by tag, so they change nothing.
"""
from __future__ import annotations

import dataclasses

from .errors import OptionError

# optimizer names -> theta's optimizer levels (compiler/rewrite optimize)
OPTIMIZERS = {"fast_run": "fast_run", "default": "fast_run", "o4": "fast_run", "o3": "fast_run",
              "fast_compile": "fast_compile", "merge": "fast_compile", "o1": "fast_compile", "o2": "fast_compile",
              "None": "None", None: "None"}
BACKENDS = ("reference", "emu", "cuda", "auto")
THEANO_LINKERS = ("cvm", "vm", "c", "py", "c|py", "c|py_nogc", "cvm_nogc", "vm_nogc", "c&py")


@dataclasses.dataclass(frozen=True)
class Mode:
    """A compilation mode: ``theta.function(..., mode=Mode(optimizer='fast_compile'))``.

    Parameters
    ----------
    linker : str, optional
        A theta backend ('reference', 'emu', 'cuda', 'auto') to run on, or one of Theano's
        linker names ('cvm', 'py', 'c|py', ...), which keep the function's backend.
    optimizer : str or None, optional
        'fast_run' (every rewrite pass), 'fast_compile' (fewer) or None (only what is required).
    debug : bool, optional
        DebugMode's checks (see ``DebugMode``).
    nan_guard : bool, optional
        NanGuardMode's checks (see ``NanGuardMode``).
    name : str, optional
        The name it prints as.
    included, excluded : tuple of str, optional
        Theano's optimizer tags (``including``/``excluding``): recorded, with no effect.
    """
    linker: str | None = None
    optimizer: str | None = "fast_run"
    debug: bool = False              # DebugMode's checks
    nan_guard: bool = False          # NanGuardMode's checks
    name: str = ""
    included: tuple = ()
    excluded: tuple = ()

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            known = ", ".join(repr(k) for k in OPTIMIZERS)
            raise OptionError(f"Mode: unknown optimizer {self.optimizer!r}; known: {known}")
        if self.linker is not None and self.linker not in BACKENDS + THEANO_LINKERS:
            raise OptionError(f"Mode: unknown linker {self.linker!r}; theta's backends are {', '.join(BACKENDS)} "
                              f"(Theano's linker names {', '.join(THEANO_LINKERS)} keep the function's backend)")

    @property
    def level(self) -> str:
        """theta's optimizer level: 'fast_run', 'fast_compile' or 'None'."""
        return OPTIMIZERS[self.optimizer]

    @property
    def backend(self) -> str | None:
        """The backend the linker names, or None (the function's own)."""
        return self.linker if self.linker in BACKENDS else None

    def including(self, *tags: str) -> "Mode":
        return dataclasses.replace(self, included=self.included + tags)

    def excluding(self, *tags: str) -> "Mode":
        return dataclasses.replace(self, excluded=self.excluded + tags)

    def requiring(self, *tags: str) -> "Mode":
        return self.including(*tags)

    def clone(self, **changes) -> "Mode":
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        if self.name:
            return self.name
        return f"Mode(linker={self.linker!r}, optimizer={self.optimizer!r})"


def DebugMode(optimizer: str | None = "fast_run", linker: str | None = None, **theano_options) -> Mode:
    """Theano's DebugMode, done on theta's kernels.

    Each fused kernel's outputs are checked against the reference evaluation of its nodes
    (``DebugModeError`` names the first kernel and op that disagree); on the reference backend
    each op's result against its type.

    Parameters
    ----------
    optimizer, linker : str, optional
        As for ``Mode``.
    **theano_options
        Theano's DebugMode options (check_py_code, check_isfinite, ...): accepted, unused.

    Returns
    -------
    Mode
    """
    return Mode(linker, optimizer, debug=True, name="DebugMode")


def NanGuardMode(nan_is_error: bool = True, inf_is_error: bool = True, big_is_error: bool = False,
                 optimizer: str | None = "fast_run", linker: str | None = None) -> Mode:
    """Theano's NanGuardMode: stop at the first op or kernel that produces a NaN or an Inf.

    Parameters
    ----------
    nan_is_error, inf_is_error : bool
        Check for NaN/Inf (theta checks both when either is set: ``NanError``).
    big_is_error : bool
        Theano's check for values above 1e10: accepted, not checked by theta.
    optimizer, linker : str, optional
        As for ``Mode``.

    Returns
    -------
    Mode
    """
    return Mode(linker, optimizer, nan_guard=bool(nan_is_error or inf_is_error), name="NanGuardMode")


FAST_RUN = Mode(optimizer="fast_run", name="FAST_RUN")
FAST_COMPILE = Mode(optimizer="fast_compile", name="FAST_COMPILE")
DEBUG_MODE = DebugMode()
NAN_GUARD_MODE = NanGuardMode()

predefined_modes = {"FAST_RUN": FAST_RUN, "FAST_COMPILE": FAST_COMPILE, "DebugMode": DEBUG_MODE,
                    "DEBUG_MODE": DEBUG_MODE, "NanGuardMode": NAN_GUARD_MODE, "Mode": FAST_RUN}
MODES = tuple(predefined_modes)


def get_mode(mode) -> Mode:
    """The Mode for a name or a Mode.

    Parameters
    ----------
    mode : str, Mode or None
        A Mode, one of the names in ``predefined_modes``, or None (theta.config.mode, else
        FAST_RUN); anything else is an OptionError.

    Returns
    -------
    Mode
    """
    if mode is None:
        from .options import config
        mode = getattr(config, "mode", None) or "FAST_RUN"
    if isinstance(mode, Mode):
        return mode
    if isinstance(mode, str) and mode in predefined_modes:
        return predefined_modes[mode]
    raise OptionError(f"unknown mode {mode!r}; known modes: {', '.join(MODES)}, or a theta.Mode(...)")


def get_default_mode() -> Mode:
    """The mode ``theta.function`` uses when given none (theta.config.mode, else FAST_RUN)."""
    return get_mode(None)

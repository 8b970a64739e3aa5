"""Compile CUDA C with g++ against kernels/emu.h and launch its kernels on the CPU.

    mod = EmuModule(source, [KernelSig("axpy", (Param("n", "int"), Param("a", "float"),
                                                Param("x", "const float*"), Param("y", "float*")))])
    mod.launch("axpy", grid=64, block=256, args=[n, 2.0, x, y])   # y is updated in place

The translation unit is rendered from kernels/emu_launch.cpp.j2 (the CUDA source
verbatim, then one `theta_launch_<name>` launcher per kernel), compiled once into the
KernelCache and loaded with ctypes. `EmuModule(..., rendered=tu)` takes a translation unit
rendered earlier (saved with a Program: runtime.artifacts) and compiles it as is, so
running a loaded program needs no jinja2 (imported only when rendering).
How kernels run is described at the top of emu.h.

Arguments: a pointer parameter takes a C-contiguous numpy array (its dtype must match
the pointee: `float*` takes float32, `const double*` float64, `float4*` float32, `void*`
anything; a non-const pointee needs a writable array), None (NULL) or an int address.
The kernel sees the array's data pointer and writes go straight into the array.
A scalar parameter takes a Python or numpy number, range-checked against its C type.

asan=True builds with -fsanitize=address and runs each launch in a child Python with
the ASan runtime preloaded (an ASan library cannot be loaded into a normal process).
Pointer arguments must then be arrays (views are fine, raw addresses are not): their
bytes travel through files into exactly-sized malloc buffers there, one per group of
overlapping arrays (so aliasing is preserved), and written regions are copied back.
An access past a buffer's end hits ASan's redzone and comes back as an EmuLaunchError
carrying ASan's report.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.resources
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .cache import KernelCache, default_cache
from .nvcc import repro_command, source_excerpt

__all__ = ["Param", "KernelSig", "EmuModule", "EmuCompileError", "EmuLaunchError", "render_source", "uses_sync"]

CXX = "g++"
SOURCE_NAME = "kernel.cu"
LAUNCHERS_NAME = "theta_emu_launchers"
TEMPLATE = "emu_launch.cpp.j2"
BASE_FLAGS = ("-std=c++17", "-shared", "-fPIC", "-pthread", "-fvisibility=hidden",
              # CUDA code type-puns freely (float4 loads of float arrays, char smem as float).
              "-fno-strict-aliasing",
              # No FMA contraction: a*b + c rounds twice, as in NumPy and as the _rn intrinsics
              # that the random numbers' series use (kernels/prelude.cuh.j2) promise.
              "-ffp-contract=off")
ASAN_FLAGS = ("-fsanitize=address", "-fno-omit-frame-pointer", "-g")
ASAN_OPTIONS = "detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:detect_stack_use_after_return=0"
ASAN_EXIT_CODE = 86
CHECK_FLAGS = ("-DTHETA_EMU_CHECK", "-g")
_ERRBUF_BYTES = 8192
_MAX_ERROR_LINES = 60


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str  # e.g. "const float*", "float* __restrict__", "int", "long long", "double"


@dataclass(frozen=True)
class KernelSig:
    name: str
    params: tuple[Param, ...]


class EmuCompileError(Exception):
    """g++ rejected the source; the message shows the failing lines and g++'s output."""


class EmuLaunchError(RuntimeError):
    """A launch failed: bad configuration, assert/__trap, deadlock, divergent barrier, ASan report."""


# --------------------------------------------------------------------------- rendering

_SYNC_RE = re.compile(
    r"\b(?:__syncthreads\w*|__syncwarp|__shfl\w*_sync|__ballot_sync|__any_sync|__all_sync"
    r"|__match_\w+_sync|__reduce_\w+_sync)\b"
)
_EXTERN_SHARED_RE = re.compile(
    r"\bextern\s+(?P<pre>(?:volatile\s+)?)__shared__\s+(?P<decl>[^;{}]*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*\[\s*\]\s*;"
)
_ALIGN_RE = re.compile(r"__align__\s*\(\s*\d+\s*\)|__attribute__\s*\(\(.*?\)\)|alignas\s*\([^)]*\)")
_IDENT_RE = re.compile(r"[A-Za-z_]\w*")
_CTYPE_RE = re.compile(r"[A-Za-z_][\w\s*]*")


def uses_sync(source: str) -> bool:
    """Whether `source` names any barrier or warp-synchronous primitive. Without them a
    block's threads can run as plain calls one after another (no fibers). Conservative:
    a mention in a comment counts too, which only costs speed."""
    return _SYNC_RE.search(source) is not None


def _dynamic_shared(source: str) -> list[dict[str, str]]:
    """The `extern __shared__ T name[];` declarations, as {name, elem} (deduplicated)."""
    found: dict[str, str] = {}
    for m in _EXTERN_SHARED_RE.finditer(source):
        elem = " ".join(_ALIGN_RE.sub(" ", m.group("pre") + m.group("decl")).split())
        found.setdefault(m.group("name"), elem)
    return [{"name": name, "elem": elem} for name, elem in found.items()]


@functools.lru_cache(maxsize=None)
def kernels_dir() -> Path:
    """The theta.kernels package directory (emu.h and the templates)."""
    return Path(str(importlib.resources.files("theta.kernels")))


@functools.lru_cache(maxsize=None)
def _environment() -> "jinja2.Environment":
    import jinja2  # only to render: a saved program's translation unit is compiled without it
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(kernels_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _check_signature(kernels: Sequence[KernelSig]) -> None:
    names = [k.name for k in kernels]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate kernel names in {names}")
    for k in kernels:
        if not _IDENT_RE.fullmatch(k.name):
            raise ValueError(f"kernel name {k.name!r} is not a C identifier (template kernels are not supported)")
        for p in k.params:
            if not _IDENT_RE.fullmatch(p.name) or not _CTYPE_RE.fullmatch(p.ctype.strip()):
                raise ValueError(f"bad parameter {p!r} of kernel {k.name}")


def unique_kernels(sources: Sequence[str], kernels: Sequence[KernelSig]) -> tuple[list[int], dict[str, str]]:
    """Kernels whose source and parameters are the same but for the kernel's name (the layers of a
    deep model) need building once: the indices of the first of each kind, and each kernel's name
    -> the name of the first of its kind (whose launcher runs it)."""
    first: dict[tuple, str] = {}
    keep: list[int] = []
    alias: dict[str, str] = {}
    for k, (text, sig) in enumerate(zip(sources, kernels)):
        # the source with its name blanked (no kernel names another, so this is a rename)
        key = (text.replace(sig.name, "\0"), tuple((p.name, p.ctype) for p in sig.params))
        if key not in first:
            first[key] = sig.name
            keep.append(k)
        alias[sig.name] = first[key]
    return keep, alias


def render_source(source: str, kernels: Sequence[KernelSig], *, fibers: bool = True, **parts: bool) -> str:
    """The C++ translation unit for `source` and its launchers (``parts``: see the template)."""
    _check_signature(kernels)
    return _environment().get_template(TEMPLATE).render(
        source=source,
        source_name=SOURCE_NAME,
        launchers_name=LAUNCHERS_NAME,
        kernels=[{"name": k.name, "params": [{"name": p.name, "ctype": p.ctype} for p in k.params]} for k in kernels],
        dynamic_shared=_dynamic_shared(source),
        fibers=fibers,
        **parts,
    )


def render_objects(sources: Sequence[str], kernels: Sequence[KernelSig], *, fibers: bool) -> list[tuple[str, str]]:
    """A library as one translation unit per kernel (each built and cached on its own, so a
    program that differs in one kernel rebuilds that kernel alone) and one with what they share
    (theta_emu_drain/configure): [(translation unit, the kernel source in it)]."""
    units = [(render_source("", [], fibers=fibers, objects=True, runtime=True), "")]
    for text, sig in zip(sources, kernels):
        units.append((render_source(text, [sig], fibers=fibers, objects=True, runtime=False), text))
    return units


# --------------------------------------------------------------------------- compiling

@functools.lru_cache(maxsize=None)
def _compiler_identity() -> str:
    out = subprocess.run([CXX, "--version"], capture_output=True, text=True, check=True).stdout
    machine = subprocess.run([CXX, "-dumpmachine"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0] + " " + machine.strip()


def _headers() -> str:
    """emu.h and what it includes (part of every key: a changed header rebuilds everything)."""
    return "".join((kernels_dir() / name).read_text() for name in ("emu.h", "emu_check.h"))


def _pch_key(flags: tuple[str, ...], cache: KernelCache) -> tuple[str, Path]:
    key = cache.key(kind="emu-pch", flags=" ".join(flags), compiler=_compiler_identity(), headers=_headers())
    return key, cache.path(key, ".gch")


def _precompiled_header(flags: tuple[str, ...], cache: KernelCache) -> Path | None:
    """emu.h precompiled with exactly ``flags`` (g++ -x c++-header), cached like a kernel; None if
    g++ cannot make one. g++ uses it only if the flags of a compile match the ones it was made
    with, and parses emu.h itself otherwise, so a stale or foreign PCH costs time, never results."""
    key, _ = _pch_key(flags, cache)

    def build(out: Path) -> None:
        cmd = [CXX, *flags, "-x", "c++-header", "-I", str(kernels_dir()), "-o", str(out), str(kernels_dir() / "emu.h")]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent)
        if proc.returncode != 0:
            raise EmuCompileError(f"g++ could not precompile emu.h:\n{proc.stderr[-3000:]}")

    try:
        return cache.get_or_build(key, build, ".gch")
    except EmuCompileError:
        return None


def _compile_objects(units: Sequence[tuple[str, str]], flags: tuple[str, ...], cache: KernelCache) -> Path:
    """The library linked from one object per translation unit (``render_objects``): each object
    cached by its own source, built in parallel (a thread per core, each running g++) against the
    precompiled emu.h; the library cached by the objects' keys."""
    identity, headers = _compiler_identity(), _headers()
    keys = [cache.key(kind="emu-object", source=tu, flags=" ".join(flags), compiler=identity, emu_h=headers)
            for tu, _ in units]
    key = cache.key(kind="emu-library", objects=" ".join(keys), flags=" ".join(flags), compiler=identity)

    def build(out: Path) -> None:
        workers = max(1, min(len(units), os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            # the precompiled emu.h: found, or built beside the first objects (which parse emu.h
            # themselves meanwhile) for the objects that start after it and for later builds
            pch = pool.submit(_precompiled_header, flags, cache)
            if _pch_key(flags, cache)[1].exists():
                pch.result()
            objects = list(pool.map(lambda unit, okey: one(unit, okey, pch), units, keys))
        cmd = [CXX, *flags, "-o", str(out), *map(str, objects)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent)
        if proc.returncode != 0:
            raise EmuCompileError(f"g++ could not link the emu module:\n{proc.stderr[-3000:]}")

    def one(unit: tuple[str, str], okey: str, pch_future) -> Path:
        tu, source = unit

        def compile_object(obj: Path) -> None:
            src = obj.with_name("theta_emu.cpp")
            src.write_text(tu)
            include = []
            ready = pch_future.done() and pch_future.exception() is None   # a PCH never fails a build
            pch = pch_future.result() if ready else None
            if pch is not None:   # g++ looks for emu.h.gch in each include directory, first
                (obj.parent / "emu.h.gch").symlink_to(pch)
                include = ["-I", str(obj.parent)]
            cmd = [CXX, *flags, "-c", *include, "-I", str(kernels_dir()), "-o", str(obj), str(src)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=obj.parent)
            if proc.returncode != 0:
                raise EmuCompileError(_compile_error(source, tu, proc.stderr, repro_command(cmd, src, obj, tu)))

        return cache.get_or_build(okey, compile_object, ".o")

    return cache.get_or_build(key, build, ".so")


def _compile(rendered: str, source: str, flags: tuple[str, ...], cache: KernelCache) -> Path:
    header = kernels_dir() / "emu.h"
    key = cache.key(kind="emu-module", source=rendered, flags=" ".join(flags), compiler=_compiler_identity(),
                    emu_h=header.read_text())

    def build(out: Path) -> None:
        src = out.with_name("theta_emu.cpp")
        src.write_text(rendered)
        cmd = [CXX, *flags, "-I", str(kernels_dir()), "-o", str(out), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent)
        if proc.returncode != 0:
            raise EmuCompileError(_compile_error(source, rendered, proc.stderr, repro_command(cmd, src, out, rendered)))

    return cache.get_or_build(key, build, ".so")


def _compile_error(source: str, rendered: str, output: str, repro: str) -> str:
    parts = ["g++ failed to compile the emu module:"]
    files = {SOURCE_NAME: source, LAUNCHERS_NAME: rendered.split(f'#line 1 "{LAUNCHERS_NAME}"\n', 1)[-1]}
    pattern = r"^(%s):(\d+):(?:\d+:)? (?:fatal )?error: .*$" % "|".join(map(re.escape, files))
    if m := re.search(pattern, output, re.MULTILINE):
        parts += [m.group(0), source_excerpt(files[m.group(1)], int(m.group(2)))]
    lines = output.strip().splitlines()
    parts += ["g++ output:", *lines[:_MAX_ERROR_LINES]]
    if len(lines) > _MAX_ERROR_LINES:
        parts.append(f"... ({len(lines) - _MAX_ERROR_LINES} more lines)")
    parts.append(f"repro: {repro}")
    return "\n".join(parts)


# --------------------------------------------------------------------------- reports

_SITE_RE = re.compile(r"\[\[site:(0x[0-9a-f]+|\?)\]\]")


def _symbolize(message: str, library: Path, source: str) -> str:
    """Replace each [[site:0xOFFSET]] by the kernel line at that code offset: "line 57
    (`red[tid] = acc;`)"; addr2line lists the inlining chain innermost first, and the first
    frame in the kernel source (SOURCE_NAME) is the line a person wrote."""
    offsets = sorted({m.group(1) for m in _SITE_RE.finditer(message) if m.group(1) != "?"})
    lines: dict[str, str] = {}
    if offsets:
        try:
            out = subprocess.run(["addr2line", "-e", str(library), "-i", "-a", *offsets],
                                 capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        current = None
        for row in out.splitlines():
            if row.startswith("0x"):
                current = f"0x{int(row, 16):x}"
                continue
            file, _, line = row.rpartition(":")
            if current and current not in lines and file.endswith(SOURCE_NAME) and line.split(" ")[0].isdigit():
                number = int(line.split(" ")[0])
                text = source.splitlines()[number - 1].strip() if 0 < number <= len(source.splitlines()) else ""
                lines[current] = f"line {number} (`{text}`)"

    def name(m: re.Match) -> str:
        return lines.get(m.group(1), "an unknown line" if m.group(1) == "?" else f"code offset {m.group(1)}")

    return _SITE_RE.sub(name, message)


# --------------------------------------------------------------------------- arguments

# C scalar type -> (ctypes type, numpy dtype of arrays a pointer to it takes)
_SCALARS: dict[str, tuple[Any, str]] = {
    "float": (ctypes.c_float, "float32"), "double": (ctypes.c_double, "float64"), "bool": (ctypes.c_bool, "bool"),
    "char": (ctypes.c_byte, "int8"), "signed char": (ctypes.c_byte, "int8"), "unsigned char": (ctypes.c_ubyte, "uint8"),
    "short": (ctypes.c_short, "int16"), "unsigned short": (ctypes.c_ushort, "uint16"),
    "int": (ctypes.c_int, "int32"), "unsigned": (ctypes.c_uint, "uint32"), "unsigned int": (ctypes.c_uint, "uint32"),
    "long": (ctypes.c_long, "int64"), "unsigned long": (ctypes.c_ulong, "uint64"),
    "long long": (ctypes.c_longlong, "int64"), "unsigned long long": (ctypes.c_ulonglong, "uint64"),
    "size_t": (ctypes.c_size_t, "uint64"), "ptrdiff_t": (ctypes.c_ssize_t, "int64"),
    "int8_t": (ctypes.c_int8, "int8"), "uint8_t": (ctypes.c_uint8, "uint8"),
    "int16_t": (ctypes.c_int16, "int16"), "uint16_t": (ctypes.c_uint16, "uint16"),
    "int32_t": (ctypes.c_int32, "int32"), "uint32_t": (ctypes.c_uint32, "uint32"),
    "int64_t": (ctypes.c_int64, "int64"), "uint64_t": (ctypes.c_uint64, "uint64"),
}
_VECTOR_RE = re.compile(r"(u?char|u?short|u?int|u?long|u?longlong|float|double)[1-4]")
_VECTOR_ELEMS = {"char": "int8", "uchar": "uint8", "short": "int16", "ushort": "uint16", "int": "int32",
                 "uint": "uint32", "long": "int64", "ulong": "uint64", "longlong": "int64", "ulonglong": "uint64",
                 "float": "float32", "double": "float64"}
_QUALIFIER_RE = re.compile(r"\b(?:const|volatile|__restrict__|__restrict|restrict)\b")


@dataclass(frozen=True)
class _ArgSpec:
    """How one parameter is passed: a pointer (c_void_p) or a scalar of `ctype`."""
    pointer: bool
    ctype: Any
    dtype: np.dtype | None  # arrays (pointers) / value type (scalars); None: any dtype
    writable: bool  # pointer to non-const


@functools.lru_cache(maxsize=1024)
def _arg_spec(ctype: str) -> _ArgSpec:
    head = ctype.split("*", 1)[0]
    base = " ".join(_QUALIFIER_RE.sub(" ", head).split())
    if "*" in ctype:
        if ctype.count("*") > 1 or base == "void":
            dtype = None
        elif base in _SCALARS:
            dtype = np.dtype(_SCALARS[base][1])
        elif m := _VECTOR_RE.fullmatch(base):
            dtype = np.dtype(_VECTOR_ELEMS[m.group(1)])
        else:
            dtype = None  # a struct or other type: any array
        return _ArgSpec(True, ctypes.c_void_p, dtype, "const" not in head.split())
    if base not in _SCALARS:
        raise TypeError(f"unsupported scalar parameter type {ctype!r}; supported: {', '.join(_SCALARS)}")
    ct, dt = _SCALARS[base]
    return _ArgSpec(False, ct, np.dtype(dt), False)


def _check_array(spec: _ArgSpec, param: Param, a: np.ndarray) -> None:
    if not a.flags.c_contiguous:
        raise ValueError(f"argument {param.name} ({param.ctype}) must be C-contiguous (use np.ascontiguousarray)")
    if spec.dtype is not None and a.dtype != spec.dtype:
        raise TypeError(f"argument {param.name} ({param.ctype}) needs a {spec.dtype} array, got {a.dtype}")
    if spec.writable and not a.flags.writeable:
        raise ValueError(f"argument {param.name} ({param.ctype}) is written by the kernel but the array is read-only")


def _pack(spec: _ArgSpec, param: Param, value: Any) -> Any:
    """The ctypes value the launcher reads for one parameter."""
    if spec.pointer:
        if value is None:
            return ctypes.c_void_p(None)
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], np.ndarray):
            base, byte_offset = value  # a pointer into an array: it may read before it (negative strides)
            _check_array(spec, param, base)
            return ctypes.c_void_p(base.ctypes.data + int(byte_offset))
        if isinstance(value, np.ndarray):
            _check_array(spec, param, value)
            return ctypes.c_void_p(value.ctypes.data)
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return ctypes.c_void_p(int(value))  # a raw address
        raise TypeError(f"argument {param.name} ({param.ctype}) takes a numpy array, None or an address, "
                        f"got {type(value).__name__}")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if spec.dtype.kind == "f":
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
            raise TypeError(f"argument {param.name} ({param.ctype}) takes a real number, got {type(value).__name__}")
        return spec.ctype(float(value))
    if spec.dtype.kind == "b":
        return spec.ctype(bool(value))
    integral_float = isinstance(value, (float, np.floating)) and float(value).is_integer()
    if not isinstance(value, (int, np.integer)) and not integral_float:
        raise TypeError(f"argument {param.name} ({param.ctype}) takes an integer, got {value!r}")
    packed = spec.ctype(int(value))
    if packed.value != int(value):
        raise OverflowError(f"argument {param.name}={value} does not fit {param.ctype}")
    return packed


def _dim3(value: int | Sequence[int], what: str) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in dims):
        raise ValueError(f"{what} must be a positive int or a tuple of 1 to 3 positive ints, got {value!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))  # type: ignore[return-value]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {raw!r}") from None


# --------------------------------------------------------------------------- the module

def _bind(lib: ctypes.CDLL, kernels: Sequence[KernelSig]) -> tuple[Any, dict[str, Any]]:
    lib.theta_emu_drain.restype = None
    lib.theta_emu_drain.argtypes = []
    configure = lib.theta_emu_configure
    configure.restype = None
    configure.argtypes = [ctypes.c_uint, ctypes.c_size_t, ctypes.c_int, ctypes.c_uint, ctypes.c_uint]
    launchers = {}
    for k in kernels:
        fn = getattr(lib, f"theta_launch_{k.name}")
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p,
                                             ctypes.c_size_t]
        launchers[k.name] = fn
    return configure, launchers


def _call(configure: Any, fn: Any, config: tuple[int, ...], grid: tuple[int, int, int],
          block: tuple[int, int, int], shared_bytes: int, values: list[Any]) -> tuple[int, str]:
    argv = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
    errbuf = ctypes.create_string_buffer(_ERRBUF_BYTES)
    configure(*config)  # thread-local in the library; the launch below runs in this same thread
    rc = fn(*grid, *block, shared_bytes, argv, errbuf, len(errbuf))
    return rc, errbuf.value.decode(errors="replace")


class EmuModule:
    """CUDA C compiled for the CPU. See the module docstring for arguments and ASan.

    fibers: None detects from the source (uses_sync); False runs threads as plain calls.
    workers: OS threads per launch (None: $THETA_EMU_THREADS, else the core count).
    stack_kib: per fiber stack (None: $THETA_EMU_STACK_KIB, else 64; 256 with asan).
    exited_threads_arrive: count exited threads as arrived at __syncthreads instead of
    reporting a divergent barrier.
    extra_flags: more g++ flags, e.g. ("-DNDEBUG",) or ("-DTHETA_EMU_UCONTEXT",) for the
    portable (slower) fiber switch.
    rendered: the translation unit render_source made for `source` and `kernels` earlier (a
    saved program's "emu.cpp"); compiled as is instead of rendering (no jinja2).
    kernel_sources: `source` kernel by kernel (its pieces, joined by newlines), when rendering:
    kernels that differ only in their name are then compiled once (``unique_kernels``).
    check: build the checking mode (kernels/emu_check.h, with -g): races, uninitialized shared
    reads, divergent barriers and warp ops, unfenced publication; its reports name kernel lines.
    """

    def __init__(self, source: str, kernels: Sequence[KernelSig], *, asan: bool = False,
                 cache: KernelCache | None = None, opt: str = "-O2", fibers: bool | None = None,
                 workers: int | None = None, stack_kib: int | None = None,
                 exited_threads_arrive: bool = False, extra_flags: Sequence[str] = (),
                 rendered: str | None = None, check: bool = False,
                 kernel_sources: Sequence[str] | None = None) -> None:
        self.source = source
        self.check = check
        self.kernels = {k.name: k for k in kernels}
        self.asan = asan
        self.fibers = uses_sync(source) if fibers is None else fibers
        self.workers = _env_int("THETA_EMU_THREADS", 0) if workers is None else workers
        self.stack_bytes = 1024 * (stack_kib or _env_int("THETA_EMU_STACK_KIB", 256 if asan else 64))
        self.exited_threads_arrive = exited_threads_arrive
        self._specs = {k.name: tuple(_arg_spec(p.ctype) for p in k.params) for k in kernels}
        built, self._alias = list(kernels), {k.name: k.name for k in kernels}
        self.built_source = source   # what g++ compiles (line numbers in reports are its lines)
        units = None
        self._lines: dict[str, str] = {}   # kernel -> the source its library lines count in (else built_source)
        if rendered is None and kernel_sources is not None and len(kernel_sources) == len(built) \
                and "\n".join(kernel_sources) == source:
            _check_signature(built)
            keep, self._alias = unique_kernels(kernel_sources, built)
            built = [built[k] for k in keep]
            self.built_source = "\n".join(kernel_sources[k] for k in keep)
            units = render_objects([kernel_sources[k] for k in keep], built, fibers=self.fibers)
            own = {built_sig.name: kernel_sources[k] for k, built_sig in zip(keep, built)}
            self._lines = {name: own[first] for name, first in self._alias.items()}
        if rendered is None:
            self.rendered = render_source(self.built_source, built, fibers=self.fibers)
        else:
            # rendered earlier from this source (fibers as it was rendered): checked to hold the
            # source verbatim and the kernels' names, so a mismatched file fails here, not in g++
            _check_signature(list(kernels))
            if source not in rendered or any(f"theta_launch_{k.name}(" not in rendered for k in kernels):
                from ..compiler.errors import ArtifactError   # a saved program's emu.cpp that was altered
                raise ArtifactError("the rendered translation unit (emu.cpp) is not this source's: it lacks the "
                                    "source or a launcher of one of the kernels")
            self.rendered = rendered
        self.flags = (*BASE_FLAGS, opt, *(ASAN_FLAGS if asan else ()), *(CHECK_FLAGS if check else ()),
                      *extra_flags)
        if units is not None:
            self.path = _compile_objects(units, self.flags, cache or default_cache())
        else:
            self.path = _compile(self.rendered, self.built_source, self.flags, cache or default_cache())
        self._configure = self._launchers = self._lib = None
        if not asan:  # an ASan library only loads into a process that preloads the ASan runtime
            self._lib = ctypes.CDLL(str(self.path))
            self._configure, launchers = _bind(self._lib, built)
            self._launchers = {name: launchers[first] for name, first in self._alias.items()}

    def _config(self, schedule: int = 0, seed: int = 0) -> tuple[int, ...]:
        return self.workers, self.stack_bytes, int(self.exited_threads_arrive), schedule, seed

    def launch(self, name: str, grid: int | Sequence[int], block: int | Sequence[int], args: Sequence[Any],
               shared_bytes: int = 0, schedule: int = 0, seed: int = 0) -> None:
        """Runs kernel `name` over `grid` x `block`; arrays passed to non-const pointers are updated in place.
        ``schedule``: the order of a block's threads between sync points (0 forward, 1 reverse, 2
        shuffled by ``seed``)."""
        if name not in self.kernels:
            raise KeyError(f"no kernel {name!r} in this module (has {', '.join(self.kernels)})")
        sig = self.kernels[name]
        if len(args) != len(sig.params):
            raise TypeError(f"{name} takes {len(sig.params)} arguments ({', '.join(p.name for p in sig.params)}), "
                            f"got {len(args)}")
        g, b = _dim3(grid, "grid"), _dim3(block, "block")
        if self.asan:
            return self._launch_asan(sig, g, b, args, shared_bytes)
        values = [_pack(spec, p, a) for spec, p, a in zip(self._specs[name], sig.params, args)]
        self._take_stacks()
        rc, message = _call(self._configure, self._launchers[name], self._config(schedule, seed), g, b,
                            shared_bytes, values)
        if rc != 0:
            raise EmuLaunchError(f"{name}<<<{g}, {b}>>>: {self.symbolize(message, name)}")

    def symbolize(self, message: str, kernel: str | None = None) -> str:
        """``message`` with the checking mode's code addresses ([[site:0x...]]) as kernel source
        lines (addr2line over the module's debug information) of ``kernel``'s launch."""
        return _symbolize(message, self.path, self._lines.get(kernel, self.built_source))

    # The module whose fiber-stack pool is warm. Each module keeps its stacks between its own
    # launches (no page faults on fresh stacks every launch); when another module launches, the
    # previous one's stacks are unmapped, so thousands of loaded modules never hold thousands
    # of idle pools.
    _warm: "EmuModule | None" = None
    _warm_lock = threading.Lock()

    def _take_stacks(self) -> None:
        with EmuModule._warm_lock:
            previous = EmuModule._warm
            if previous is self:
                return
            EmuModule._warm = self
        if previous is not None and previous._lib is not None:
            previous._lib.theta_emu_drain()

    def _launch_asan(self, sig: KernelSig, grid: tuple[int, int, int], block: tuple[int, int, int],
                     args: Sequence[Any], shared_bytes: int) -> None:
        with tempfile.TemporaryDirectory(prefix="theta_asan_") as tmp:
            job_args, regions = _asan_job(sig, self._specs[sig.name], args, tmp)
            job = {"library": str(self.path), "kernel": self._alias[sig.name], "params": [p.ctype for p in sig.params],
                   "args": job_args, "regions": [{"size": hi - lo, "writeback": wb} for lo, hi, wb in regions],
                   "grid": grid, "block": block, "shared_bytes": shared_bytes, "config": self._config()}
            with open(os.path.join(tmp, "job.json"), "w") as f:
                json.dump(job, f)
            cmd = [sys.executable, "-c", _ASAN_CHILD, tmp, os.path.dirname(os.path.abspath(__file__))]
            proc = subprocess.run(cmd, env=_asan_env(), capture_output=True, text=True)
            where = f"{sig.name}<<<{grid}, {block}>>> (asan)"
            error_file = os.path.join(tmp, "error.txt")
            if proc.returncode != 0 and os.path.exists(error_file):  # the launch itself failed
                with open(error_file) as f:
                    raise EmuLaunchError(f"{where}: {self.symbolize(f.read(), sig.name)}")
            if proc.returncode != 0:
                kind = "AddressSanitizer report" if proc.returncode == ASAN_EXIT_CODE else f"exit {proc.returncode}"
                raise EmuLaunchError(f"{where} failed ({kind}):\n{_asan_report(proc.stderr)}")
            for g, (lo, hi, writeback) in enumerate(regions):
                if writeback:
                    with open(os.path.join(tmp, f"region{g}.out"), "rb") as f:
                        data = f.read()
                    assert len(data) == hi - lo
                    ctypes.memmove(lo, data, len(data))


def _asan_job(sig: KernelSig, specs: Sequence[_ArgSpec], args: Sequence[Any],
              tmp: str) -> tuple[list[dict[str, Any]], list[tuple[int, int, bool]]]:
    """The arguments of an ASan launch as JSON, and the memory regions they point into.

    Arrays whose bytes overlap (views of one arena, in-place operands) form one region,
    so the kernel sees them aliased as in the caller; each region is saved to
    region<g>.bin and becomes one exactly-sized malloc in the child. Regions: (lo, hi,
    written by the kernel)."""
    job_args: list[dict[str, Any]] = [{} for _ in specs]
    spans = []
    for i, (spec, p, a) in enumerate(zip(specs, sig.params, args)):
        if spec.pointer and a is None:
            job_args[i] = {"null": True}
        elif spec.pointer and isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], np.ndarray):
            # (array, byte offset): the whole array is the region, so accesses before the
            # pointer (negative strides) stay inside it
            base, byte_offset = a
            _check_array(spec, p, base)
            spans.append((base.ctypes.data, base.ctypes.data + base.nbytes, i, spec.writable, int(byte_offset)))
        elif spec.pointer:
            if not isinstance(a, np.ndarray):
                raise TypeError(f"asan launches take arrays (views are fine) for pointer arguments ({p.name} got "
                                f"{type(a).__name__}): an address has no extent to copy into the child process")
            _check_array(spec, p, a)
            spans.append((a.ctypes.data, a.ctypes.data + a.nbytes, i, spec.writable, 0))
        else:
            _pack(spec, p, a)  # type and range errors are raised here, not in the child
            job_args[i] = {"scalar": a.item() if isinstance(a, (np.generic, np.ndarray)) else a}
    regions: list[list[Any]] = []  # [lo, hi, writeback]
    for start, end, i, writable, byte_offset in sorted(spans):
        if regions and start < regions[-1][1]:  # overlaps the previous region: merge
            regions[-1][1] = max(regions[-1][1], end)
            regions[-1][2] |= writable
        else:
            regions.append([start, end, writable])
        job_args[i] = {"region": len(regions) - 1, "offset": start - regions[-1][0] + byte_offset}
    for g, (lo, hi, _) in enumerate(regions):
        with open(os.path.join(tmp, f"region{g}.bin"), "wb") as f:
            f.write(ctypes.string_at(lo, hi - lo))  # every byte lies in one of the arrays
    return job_args, [(lo, hi, wb) for lo, hi, wb in regions]


# --------------------------------------------------------------------------- ASan child

# The child imports only this module and its siblings (cache, nvcc): stub parent packages
# keep `import theta` (sympy, the compiler: seconds under ASan) from running.
_ASAN_CHILD = """
import importlib, sys, types
for name, path in (("theta", []), ("theta.runtime", [sys.argv[2]])):
    sys.modules[name] = types.ModuleType(name)
    sys.modules[name].__path__ = path
sys.exit(importlib.import_module("theta.runtime.emu_build")._asan_child_main(sys.argv[1]))
"""


@functools.lru_cache(maxsize=None)
def asan_runtime() -> str:
    """Path of the ASan runtime g++ links against (it must be preloaded to load an ASan library)."""
    proc = subprocess.run([CXX, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True)
    out = proc.stdout.strip()
    if not os.path.isabs(out) or not os.path.exists(out):
        raise EmuLaunchError(f"{CXX} has no AddressSanitizer runtime (-print-file-name=libasan.so gave {out!r})")
    return os.path.realpath(out)


def _asan_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, [asan_runtime(), env.get("LD_PRELOAD")]))
    env["ASAN_OPTIONS"] = ":".join(filter(None, [ASAN_OPTIONS, env.get("ASAN_OPTIONS")]))  # the user's win
    return env


def _asan_report(stderr: str, limit: int = 12000) -> str:
    start = stderr.find("ERROR: AddressSanitizer")
    report = stderr[stderr.rfind("\n", 0, start) + 1 :] if start >= 0 else stderr
    return report[:limit]


def _asan_child_main(job_dir: str) -> int:
    """Runs one launch described by job_dir/job.json; in a process with ASan preloaded."""
    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    libc = ctypes.CDLL(None)  # its malloc is ASan's, which was preloaded
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    buffers = []
    for g, region in enumerate(job["regions"]):
        with open(os.path.join(job_dir, f"region{g}.bin"), "rb") as f:
            data = f.read()
        buf = libc.malloc(max(len(data), 1))  # exactly sized: one past the end is a redzone
        ctypes.memmove(buf, data, len(data))
        buffers.append(buf)
    sig = KernelSig(job["kernel"], tuple(Param(f"arg{i}", c) for i, c in enumerate(job["params"])))
    values = []
    for p, arg in zip(sig.params, job["args"]):
        if "null" in arg:
            values.append(ctypes.c_void_p(None))
        elif "region" in arg:
            values.append(ctypes.c_void_p(buffers[arg["region"]] + arg["offset"]))
        else:
            values.append(_pack(_arg_spec(p.ctype), p, arg["scalar"]))
    configure, launchers = _bind(ctypes.CDLL(job["library"]), [sig])
    rc, message = _call(configure, launchers[sig.name], tuple(job["config"]), tuple(job["grid"]),
                        tuple(job["block"]), job["shared_bytes"], values)
    if rc != 0:
        with open(os.path.join(job_dir, "error.txt"), "w") as f:
            f.write(message)
        return 3
    for g, (region, buf) in enumerate(zip(job["regions"], buffers)):
        if region["writeback"]:
            with open(os.path.join(job_dir, f"region{g}.out"), "wb") as f:
                f.write(ctypes.string_at(buf, region["size"]))
    return 0

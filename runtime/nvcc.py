"""nvcc driver: compile plain CUDA C to cubins and PTX (cached) and read ptxas' resource usage.

Used by the cuda backend (cubins) and by tests on machines without a GPU (does every
rendered kernel compile for sm_80/sm_90, how many registers, does it spill?).
Sources here are plain CUDA C, never including emu.h.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from .cache import KernelCache, default_cache

__all__ = [
    "NvccError",
    "find_nvcc",
    "nvcc_version",
    "compile_cubin",
    "compile_ptx",
    "resources",
    "launch_problems",
    "parse_ptxas_info",
    "source_excerpt",
    "repro_command",
]

SOURCE_NAME = "kernel.cu"
NVCC_FLAGS = ("-std=c++17", "-lineinfo", "-Xptxas", "-v")
_ARCH_RE = re.compile(r"^sm_\d{2,3}[af]?$")
_VIRTUAL_ARCH_RE = re.compile(r"^compute_\d{2,3}[af]?$")
PTX_FLAGS = ("-std=c++17", "-lineinfo")  # no ptxas runs for -ptx: no -Xptxas -v


class NvccError(RuntimeError):
    """nvcc rejected a source; the message shows the failing lines and nvcc's output."""


def source_excerpt(source: str, line: int, context: int = 3) -> str:
    """Lines `line - context .. line + context` of `source`, numbered, `line` marked >>."""
    lines = source.splitlines()
    lo, hi = max(1, line - context), min(len(lines), line + context)
    width = len(str(hi))
    return "\n".join(
        f"{'>>' if n == line else '  '} {n:>{width}} | {lines[n - 1]}" for n in range(lo, hi + 1)
    )


def repro_command(cmd: list[str], src: Path, out: Path, source: str) -> str:
    """`cmd` as a shell line that still works after the build directory is gone: the
    failing source is kept in a temporary file and the output goes next to it."""
    fd, name = tempfile.mkstemp(prefix="theta_repro_", suffix=src.suffix)
    with os.fdopen(fd, "w") as f:
        f.write(source)
    moved = {str(src): name, str(out): str(Path(name).with_suffix(out.suffix))}
    return " ".join(shlex.quote(moved.get(c, c)) for c in cmd)


def find_nvcc() -> str | None:
    """Path of nvcc: $THETA_NVCC, then PATH, then $CUDA_HOME/bin, /usr/local/cuda/bin."""
    candidates = [os.environ.get("THETA_NVCC"), shutil.which("nvcc")]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            candidates.append(os.path.join(home, "bin", "nvcc"))
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def _require_nvcc() -> str:
    nvcc = find_nvcc()
    if nvcc is None:
        raise NvccError("nvcc not found (looked at $THETA_NVCC, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    return nvcc


@functools.lru_cache(maxsize=None)
def _nvcc_identity(nvcc: str) -> str:
    """The full `nvcc --version` text: part of every cache key."""
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip()


def nvcc_version() -> str:
    """nvcc's version number, e.g. "13.0.88"."""
    text = _nvcc_identity(_require_nvcc())
    m = re.search(r"\bV(\d+\.\d+\.\d+)", text) or re.search(r"release (\d+\.\d+)", text)
    return m.group(1) if m else text.splitlines()[-1]


def _run_nvcc(source: str, arch: str, out: Path) -> str:
    """Compiles `source` to the cubin `out`; returns ptxas' -v report."""
    nvcc = _require_nvcc()
    src = out.with_name(SOURCE_NAME)
    src.write_text(source)
    cmd = [nvcc, "-cubin", f"-arch={arch}", *NVCC_FLAGS, "-o", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise NvccError(_format_error(source, arch, output, repro_command(cmd, src, out, source)))
    return output


def _format_error(source: str, arch: str, output: str, repro: str) -> str:
    parts = [f"nvcc failed to compile for {arch}:"]
    m = re.search(re.escape(SOURCE_NAME) + r"\((\d+)\): (?:error|catastrophic error)[^\n]*", output)
    if m:
        parts += [m.group(0), source_excerpt(source, int(m.group(1)))]
    parts += ["nvcc output:", output]
    parts.append(f"repro: {repro}")
    return "\n".join(parts)


def _check_arch(arch: str) -> None:
    if not _ARCH_RE.match(arch):
        raise ValueError(f"arch must look like 'sm_90' (or sm_90a), got {arch!r}")


def _ensure_entries(source: str, arch: str, cache: KernelCache | None) -> tuple[Path, Path]:
    """The cached cubin and its parsed ptxas report, from one nvcc run when both miss."""
    _check_arch(arch)
    cache = cache or default_cache()
    nvcc = _require_nvcc()
    parts = dict(source=source, arch=arch, flags=" ".join(NVCC_FLAGS), nvcc=_nvcc_identity(nvcc))
    report: list[str] = []  # ptxas output of a build in this call, if any

    def build_cubin(tmp: Path) -> None:
        report.append(_run_nvcc(source, arch, tmp))

    def build_resources(tmp: Path) -> None:
        text = report[0] if report else _run_nvcc(source, arch, tmp.with_name("scratch.cubin"))
        tmp.write_text(json.dumps(parse_ptxas_info(text), indent=1, sort_keys=True))

    cubin = cache.get_or_build(cache.key(kind="cubin", **parts), build_cubin, ".cubin")
    res = cache.get_or_build(cache.key(kind="ptxas-resources", **parts), build_resources, ".json")
    return cubin, res


def compile_cubin(source: str, arch: str = "sm_90", *, cache: KernelCache | None = None) -> bytes:
    """The cubin of `source` for `arch` (nvcc -cubin -arch=<arch> -Xptxas -v), cached."""
    cubin, _ = _ensure_entries(source, arch, cache)
    return cubin.read_bytes()


def compile_ptx(source: str, arch: str = "compute_90", *, cache: KernelCache | None = None) -> bytes:
    """The PTX of `source` for the virtual architecture `arch` (nvcc -ptx -arch=compute_90),
    cached: a driver JIT-compiles it for a GPU no saved cubin matches."""
    if not _VIRTUAL_ARCH_RE.match(arch):
        raise ValueError(f"arch must look like 'compute_90', got {arch!r}")
    cache = cache or default_cache()
    nvcc = _require_nvcc()

    def build(out: Path) -> None:
        src = out.with_name(SOURCE_NAME)
        src.write_text(source)
        cmd = [nvcc, "-ptx", f"-arch={arch}", *PTX_FLAGS, "-o", str(out), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip()
            raise NvccError(_format_error(source, arch, output, repro_command(cmd, src, out, source)))

    key = cache.key(kind="ptx", source=source, arch=arch, flags=" ".join(PTX_FLAGS), nvcc=_nvcc_identity(nvcc))
    return cache.get_or_build(key, build, ".ptx").read_bytes()


# What one block may use on every architecture theta targets (sm_80, sm_90): registers per
# thread, registers per block (the SM's register file), static shared memory.
MAX_REGISTERS_PER_THREAD = 255
MAX_REGISTERS_PER_BLOCK = 65536
MAX_STATIC_SHARED = 48 * 1024


def launch_problems(info: dict, threads: int) -> list[str]:
    """Why a kernel with ptxas ``info`` (one entry of ``resources``) cannot launch ``threads``
    threads per block: too many registers per thread or per block, or too much static shared
    memory ("too many resources requested for launch" on a GPU). Empty when it can."""
    problems = []
    regs = int(info.get("registers", 0))
    if regs > MAX_REGISTERS_PER_THREAD:
        problems.append(f"{regs} registers per thread (at most {MAX_REGISTERS_PER_THREAD})")
    if regs * threads > MAX_REGISTERS_PER_BLOCK:
        problems.append(f"{regs} registers x {threads} threads = {regs * threads} per block "
                        f"(the register file holds {MAX_REGISTERS_PER_BLOCK})")
    shared = int(info.get("shared_bytes", 0))
    if shared > MAX_STATIC_SHARED:
        problems.append(f"{shared} bytes of static shared memory (at most {MAX_STATIC_SHARED})")
    return problems


def resources(source: str, arch: str = "sm_90", *, cache: KernelCache | None = None) -> dict[str, dict[str, int | str]]:
    """Per kernel: registers, spill_stores, spill_loads, stack_frame, shared_bytes (static),
    barriers, mangled (the symbol name), and constant_bytes where ptxas reports it (CUDA 13
    does for sm_80, not for sm_90). Keyed by the kernel's plain name (the mangled name for
    kernels whose symbol is not a simple function name)."""
    _, res = _ensure_entries(source, arch, cache)
    return json.loads(res.read_text())


_ENTRY_RE = re.compile(r"Compiling entry function '([^']+)'")
_PROPS_RE = re.compile(r"Function properties for (\S+)")
_FRAME_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED_FIELDS = {
    "registers": re.compile(r"Used (\d+) registers"),
    "barriers": re.compile(r"used (\d+) barriers"),
    "shared_bytes": re.compile(r"(\d+) bytes smem"),
    "constant_bytes": re.compile(r"(\d+) bytes cmem\[0\]"),
}


def parse_ptxas_info(text: str) -> dict[str, dict[str, int | str]]:
    """Parses `ptxas -v` output into resources() form (kernels only, not device functions)."""
    found: dict[str, dict[str, int | str]] = {}
    entry = props_for = None
    for line in text.splitlines():
        if m := _ENTRY_RE.search(line):
            entry = m.group(1)
            found.setdefault(entry, {"mangled": entry, "registers": 0, "barriers": 0, "shared_bytes": 0,
                                     "stack_frame": 0, "spill_stores": 0, "spill_loads": 0})
        elif m := _PROPS_RE.search(line):
            props_for = m.group(1)
        elif (m := _FRAME_RE.search(line)) and props_for in found:
            found[props_for].update(stack_frame=int(m.group(1)), spill_stores=int(m.group(2)),
                                    spill_loads=int(m.group(3)))
        elif "Used" in line and entry in found:
            for field, regex in _USED_FIELDS.items():
                if m := regex.search(line):
                    found[entry][field] = int(m.group(1))
    return {_plain_name(mangled): info for mangled, info in found.items()}


def _plain_name(symbol: str) -> str:
    """`kernel` for `_Z6kernelPfi` or an extern "C" `kernel`; `ns::kernel` for `_ZN2ns6kernelEPf`.
    Anything fancier (templates, ...) keeps its mangled name."""
    if not symbol.startswith("_Z"):
        return symbol
    rest = symbol[2:]
    nested = rest.startswith("N")
    rest = rest[1:] if nested else rest
    names = []
    while m := re.match(r"(\d+)", rest):
        n = int(m.group(1))
        start = len(m.group(1))
        names.append(rest[start : start + n])
        rest = rest[start + n :]
        if not nested:
            break
    if not names or (nested and not rest.startswith("E")):
        return symbol
    return "::".join(names)

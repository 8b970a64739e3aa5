"""Backend selection: which runtime executes a specialized, rewritten graph."""
from __future__ import annotations

from ..compiler.errors import BackendError
from ..compiler.options import CompileOptions


_cuda_status: "tuple[bool, str] | None" = None


def cuda_available() -> tuple[bool, str]:
    """(usable, reason): a GPU, pycuda and nvcc (kernels are compiled to cubins at load) are all
    needed for the cuda backend. Probed once per process."""
    global _cuda_status
    if _cuda_status is None:
        _cuda_status = _probe_cuda()
    return _cuda_status


def _probe_cuda() -> tuple[bool, str]:
    try:
        import pycuda.driver as drv
    except Exception as e:  # ImportError, or a broken CUDA install raising at import
        return False, f"pycuda is not importable ({type(e).__name__}: {e})"
    try:
        drv.init()
        if drv.Device.count() == 0:
            return False, "no CUDA device is visible"
    except Exception as e:
        return False, f"the CUDA driver failed to initialize ({e})"
    from .nvcc import find_nvcc
    if find_nvcc() is None:
        return False, "nvcc not found (looked at $THETA_NVCC, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)"
    return True, "ok"


def resolve(backend: str) -> str:
    if backend == "auto":
        ok, _ = cuda_available()
        return "cuda" if ok else "reference"
    return backend


def build(outputs, options: CompileOptions, leaves=(), scalars=(), n_outputs: int | None = None):
    """The program running ``outputs`` on the chosen backend. ``leaves`` are the value leaves
    (inputs, shared variables) and ``scalars`` the runtime index scalars, in the order the
    program's I/O signature lists them; the results after the first ``n_outputs`` are update
    values (which a device backend keeps on the device)."""
    backend = resolve(options.backend)
    if backend == "reference":
        from .reference import ReferenceProgram
        return ReferenceProgram(outputs)
    if backend == "emu":
        from .emu import EmuProgram
        return EmuProgram(outputs, leaves, scalars, asan=options.emu_asan)
    if backend == "cuda":
        from .cuda import CudaProgram
        return CudaProgram(outputs, leaves, scalars, n_outputs)
    raise BackendError(f"unknown backend {backend!r}")

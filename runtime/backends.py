"""Backend selection: whether cuda can run here, and the device of each kernel backend."""
from __future__ import annotations

from ..compiler.errors import BackendError


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


def device(backend: str, asan: bool = False):
    """The device a kernel backend runs on (the process's emu device, or the GPU through pycuda)."""
    if backend == "emu":
        from .emu import device as emu_device
        return emu_device(asan)
    if backend == "cuda":
        from .cuda import device as cuda_device
        return cuda_device()
    raise BackendError(f"unknown kernel backend {backend!r} (choose 'emu' or 'cuda')")

"""Backend selection: whether cuda can run here, and the device of each kernel backend."""
from __future__ import annotations

from ..compiler.errors import BackendError


_gpu_status: "tuple[bool, str] | None" = None


def cuda_available(need_nvcc: bool = True) -> tuple[bool, str]:
    """(usable, reason): the cuda backend needs a GPU and pycuda, and nvcc to compile new kernels
    (``need_nvcc=False``: running a saved Program that carries a cubin or PTX for this GPU does
    not). The GPU is probed once per process."""
    global _gpu_status
    if _gpu_status is None:
        _gpu_status = _probe_gpu()
    if not _gpu_status[0] or not need_nvcc:
        return _gpu_status
    from .nvcc import find_nvcc
    if find_nvcc() is None:
        return False, "nvcc not found (looked at $THETA_NVCC, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)"
    return True, "ok"


def _probe_gpu() -> tuple[bool, str]:
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
    return True, "ok"


def resolve(backend: str, need_nvcc: bool = True) -> str:
    """The backend ``auto`` stands for here: cuda where it can run, else reference."""
    if backend == "auto":
        ok, _ = cuda_available(need_nvcc)
        return "cuda" if ok else "reference"
    return backend


def device(backend: str, asan: bool = False, check: bool = False):
    """The device a kernel backend runs on (the process's emu device, or the GPU through pycuda)."""
    if backend == "emu":
        from .emu import device as emu_device
        return emu_device(asan, check)
    if backend == "cuda":
        from .cuda import device as cuda_device
        return cuda_device()
    raise BackendError(f"unknown kernel backend {backend!r} (choose 'emu' or 'cuda')")

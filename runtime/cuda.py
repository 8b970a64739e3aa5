"""The cuda device: the GPU through pycuda (the executor that drives it is runtime/executor.py).

- One process-wide ``CudaDevice``: the device's primary context, a compute stream and a copy
  stream (prefetching, runtime/prefetch.py), a memory pool, and loaded modules by source hash.
- Kernels come from the Program's cubin for this device's architecture when it has one (a
  saved Program carries sm_80/sm_90 cubins and PTX), else from PTX the driver compiles, else
  from nvcc; each is launched through pycuda's lowest-level call with its arguments packed by
  a ``struct.Struct`` built once per kernel.
- Arrays of other libraries (PyTorch, CuPy, Numba) are read in place through
  ``__cuda_array_interface__`` (v3, synchronizing with the stream the producer names).

Contexts. pycuda keeps a context stack per thread and aborts the process when a thread (the
main thread included, at exit) ends with a context still pushed. The device pushes the primary
context once in the thread that creates it and pops it at exit; every call below runs inside
``active()``, which pushes the context only where it is not current. A pooled block freed on a
thread with no context current would abort the process from a destructor, so blocks are freed
inside ``active()`` too. pycuda is imported only when this device is used.
"""
from __future__ import annotations

import atexit
import collections
import hashlib
import struct
import threading

import numpy as np

from ..compiler.errors import BackendError
from .device import interface_pointer, struct_format

class _Active:
    __slots__ = ("dev", "pushed")

    def __init__(self, dev: "CudaDevice") -> None:
        self.dev, self.pushed = dev, False

    def __enter__(self) -> None:
        current = self.dev.drv.Context.get_current()
        if current is None or current != self.dev.context:
            self.dev.context.push()
            self.pushed = True

    def __exit__(self, *exc) -> bool:
        if self.pushed:
            self.dev.drv.Context.pop()
        return False


class _Session:
    """``device.lock`` on cuda: one step at a time (reentrant), with the context current."""

    def __init__(self, dev: "CudaDevice") -> None:
        self.dev, self.rlock, self.local = dev, threading.RLock(), threading.local()

    def __enter__(self) -> None:
        self.rlock.acquire()
        try:
            active = _Active(self.dev)
            active.__enter__()
        except BaseException:
            self.rlock.release()
            raise
        self.local.__dict__.setdefault("stack", []).append(active)

    def __exit__(self, *exc) -> bool:
        try:
            self.local.stack.pop().__exit__()
        finally:
            self.rlock.release()
        return False


class _Block:
    """A pooled allocation, handed back to the pool with the context current (see above)."""

    __slots__ = ("alloc", "dev", "ptr")

    def __init__(self, alloc, dev: "CudaDevice") -> None:
        self.alloc, self.dev, self.ptr = alloc, dev, int(alloc)

    def __int__(self) -> int:
        return self.ptr

    __index__ = __int__

    def __del__(self) -> None:
        alloc, self.alloc = self.alloc, None
        if alloc is None or self.dev.closed:   # after shutdown the pool frees straight to the driver
            return
        try:
            with self.dev.active():
                alloc.free()
            self.dev.stats["free"] += 1
        except Exception:
            pass


class _Status:
    """A device int the kernels write, read back into pinned memory after the launches."""

    def __init__(self, dev: "CudaDevice") -> None:
        self.dev, self.block = dev, dev.alloc(4)
        self.ptr = int(self.block)
        with dev.active():
            self.host = dev.drv.pagelocked_zeros((1,), np.int32)

    def reset(self) -> None:
        self.dev.drv.memset_d32_async(self.ptr, 0, 1, self.dev.stream)

    def read(self) -> int:
        with self.dev.active():
            self.dev.drv.memcpy_dtoh_async(self.host, self.ptr, self.dev.stream)
            self.dev.stream.synchronize()
        self.dev.stats["status_read"] += 1
        return int(self.host[0])


class CudaDevice:
    name = "cuda"
    separate_temps = False
    exports_cuda_array_interface = True

    def __init__(self, ordinal: int = 0) -> None:
        from .backends import cuda_available
        ok, why = cuda_available(need_nvcc=False)   # nvcc is checked when a kernel must be compiled
        if not ok:
            raise BackendError(f"the cuda backend cannot run here: {why}. backend='auto' falls back to "
                               "'reference' (NumPy); 'emu' runs the generated CUDA C on the CPU")
        import pycuda.driver as drv
        from pycuda.tools import DeviceMemoryPool
        self.drv, self.lock, self.closed = drv, _Session(self), False
        self.stats: collections.Counter = collections.Counter()
        self.device = drv.Device(ordinal)
        self.context = self.device.retain_primary_context()
        self.context.push()
        try:
            major, minor = self.device.compute_capability()
            self.arch, self.label = f"sm_{major}{minor}", self.device.name()
            # blocking streams (flags 0): ordered after the legacy default stream that foreign
            # arrays exported with stream 1 were written on
            self.stream, self.copy_stream = drv.Stream(), drv.Stream()
            self.pool = DeviceMemoryPool()
        except BaseException:
            drv.Context.pop()
            raise
        self.modules: dict[str, object] = {}
        self._owner = threading.get_ident()
        # Only the main thread keeps the context pushed between calls; atexit pops it there.
        self._pushed = threading.current_thread() is threading.main_thread()
        if not self._pushed:
            drv.Context.pop()
        atexit.register(self._shutdown)

    def active(self) -> _Active:
        return _Active(self)

    # -- memory ---------------------------------------------------------------------------------
    def alloc(self, nbytes: int) -> _Block:
        try:
            with self.active():
                block = _Block(self.pool.allocate(max(int(nbytes), 1)), self)
        except self.drv.MemoryError as e:
            with self.active():
                free, total = self.drv.mem_get_info()
            raise BackendError(f"out of device memory allocating {nbytes} bytes: {free} of {total} bytes "
                               f"free on {self.label}") from e
        self.stats["alloc"] += 1
        return block

    def upload(self, dst: int, host: np.ndarray) -> None:
        self.stats["upload"] += 1
        with self.active():
            self.drv.memcpy_htod_async(dst, host, self.stream)

    def download(self, host: np.ndarray, src: int) -> None:
        self.stats["download"] += 1
        with self.active():
            self.drv.memcpy_dtoh_async(host, src, self.stream)
            self.stream.synchronize()

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        self.stats["copy"] += 1
        with self.active():
            self.drv.memcpy_dtod_async(dst, src, nbytes, self.stream)

    def status_word(self) -> _Status:
        return _Status(self)

    def synchronize(self) -> None:
        with self.active():
            self.stream.synchronize()

    # -- kernels --------------------------------------------------------------------------------
    def load(self, program) -> list:
        source = "\n".join(k.source for k in program.kernels)
        key = hashlib.sha256(source.encode()).hexdigest()
        with self.active():
            module = self.modules.get(key)
            if module is None:
                module = self.modules[key] = self.drv.module_from_buffer(self._image(program, source))
            handles = []
            for k in program.kernels:
                fn = module.get_function(k.name)
                fmt = struct_format(k.params)
                fn.prepare(fmt)   # for prepared_async_call, where pycuda lacks _launch_kernel
                handles.append((fn, getattr(fn, "_launch_kernel", None), k.grid, k.block,
                                struct.Struct("@" + fmt), int(k.shared_bytes)))
        return handles

    def _image(self, program, source: str) -> bytes:
        """A cubin for this device from the Program, else its PTX (the driver compiles it),
        else nvcc's cubin of the source."""
        artifacts = getattr(program, "artifacts", None) or {}
        if f"{self.arch}.cubin" in artifacts:
            return artifacts[f"{self.arch}.cubin"]
        ptx = sorted(n for n in artifacts if n.startswith("compute_") and n.endswith(".ptx")
                     and n[8:-4].isdigit() and int(n[8:-4]) <= int(self.arch[3:]))
        if ptx:
            return artifacts[ptx[-1]]
        from .nvcc import NvccError, compile_cubin, find_nvcc
        if find_nvcc() is None:
            raise BackendError(f"this program has no cubin or PTX for {self.arch} ({self.label}) and nvcc, which "
                               "would compile one, is not found ($THETA_NVCC, PATH, $CUDA_HOME/bin)")
        try:
            return compile_cubin(source, self.arch)
        except NvccError as e:   # a theta bug, shown with the failing source line
            raise BackendError(f"nvcc could not build this program's kernels for {self.arch}:\n{e}") from e

    def launch(self, handle, args) -> None:
        fn, launch, grid, block, packer, shared = handle
        self.stats["launch"] += 1
        if launch is not None:
            launch(grid, block, packer.pack(*args), shared, self.stream)
        else:
            fn.prepared_async_call(grid, block, self.stream, *args, shared_size=shared)

    # -- the copy stream (runtime/prefetch.py) ---------------------------------------------------
    def pinned(self, nbytes: int) -> np.ndarray:
        with self.active():
            return self.drv.pagelocked_empty((nbytes,), np.uint8)

    def upload_async(self, dst: int, host: np.ndarray) -> None:
        """An upload on the copy stream, overlapping the compute stream's work."""
        self.stats["upload"] += 1
        with self.active():
            self.drv.memcpy_htod_async(dst, host, self.copy_stream)

    def copies_done(self):
        """An event completing after every upload_async issued so far."""
        with self.active():
            event = self.drv.Event(int(self.drv.event_flags.DISABLE_TIMING))
            event.record(self.copy_stream)
        return event

    def order_after(self, event) -> None:
        """Later launches and copies wait for ``event`` (on the device, not the host)."""
        with self.active():
            self.stream.wait_for_event(event)

    def wait(self, event) -> None:
        with self.active():
            event.synchronize()

    def pending_stream(self, event) -> int | None:
        with self.active():
            return None if event.query() else self.copy_stream.handle

    def drain_copies(self) -> None:
        with self.active():
            self.copy_stream.synchronize()

    # -- foreign arrays -------------------------------------------------------------------------
    def foreign_pointer(self, value, spec) -> int | None:
        """The device address of an array of another library (``__cuda_array_interface__``)."""
        iface = getattr(value, "__cuda_array_interface__", None)
        if iface is None:
            return None
        ptr = interface_pointer(iface, spec)
        # v3: synchronize with the producer's stream. Ours follows the legacy default stream (1);
        # any other (the per-thread default stream, 2, or a handle) we wait for through the context.
        stream = iface.get("stream")
        if stream is not None and stream != 1:
            with self.active():
                self.drv.Context.synchronize()
        return ptr

    # -- lifetime -------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """At exit: finish outstanding work, give the pool's blocks back, pop the context."""
        if self.closed:
            return
        self.closed = True
        try:
            with self.active():
                self.drv.Context.synchronize()
                self.pool.stop_holding()   # later frees go straight to the driver
        except Exception:
            pass
        if self._pushed and threading.get_ident() == self._owner:
            try:
                current = self.drv.Context.get_current()
                if current is not None and current == self.context:
                    self.drv.Context.pop()
            except Exception:
                pass


_lock = threading.Lock()
_device: CudaDevice | None = None


def device() -> CudaDevice:
    """The process's cuda device (created on first use)."""
    global _device
    with _lock:
        if _device is None:
            _device = CudaDevice()
        return _device


def free_device_memory() -> int:
    """Bytes allocations can still get: free device memory plus what the pool holds for reuse."""
    dev = device()
    with dev.active():
        free, _ = dev.drv.mem_get_info()
    return int(free) + max(int(dev.pool.managed_bytes) - int(dev.pool.active_bytes), 0)

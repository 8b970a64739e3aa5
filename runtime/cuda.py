"""The cuda backend: runs a Program on an NVIDIA GPU through pycuda.

- One process-wide ``CudaRuntime``: the device's primary context, a compute stream and a copy
  stream, a device memory pool, and loaded modules keyed by source hash.
- Kernels are compiled by nvcc to a cubin for the device's architecture (cached on disk by
  runtime.cache) and loaded with ``module_from_buffer``; the generated sources include nothing,
  so loading never preprocesses. Each kernel is ``prepare``d once: its argument format is
  computed at load time, and every launch is a prepared asynchronous call on the stream.
- One arena per Program, sized by the buffer plan, holds every temporary.
- Shared variables stay on the device between calls (``SharedVariable.device_value``); an
  update writes a fresh buffer that replaces the variable's device copy after the step.
- ``DeviceArray`` exposes ``__cuda_array_interface__`` (PyTorch, CuPy and Numba take it without
  a copy), and inputs that expose it are read in place.

pycuda is imported only when this backend is used: ``import theta`` never needs it.
"""
from __future__ import annotations

import hashlib
import threading
from typing import Iterator, Sequence

import numpy as np

from ..compiler.errors import BackendError, DTypeError, ShapeError
from ..compiler.program import Program

_lock = threading.Lock()
_runtime: "CudaRuntime | None" = None

# kernel parameter C type -> struct format character for pycuda's prepare()
_FORMATS = {"long long": "q", "int": "i", "unsigned int": "I", "float": "f", "double": "d",
            "unsigned long long": "Q", "short": "h", "signed char": "b", "unsigned char": "B", "bool": "?"}


def _format_char(ctype: str) -> str:
    if "*" in ctype:
        return "P"
    base = " ".join(ctype.replace("const", " ").split())
    if base not in _FORMATS:
        raise BackendError(f"no launch format for the parameter type {ctype!r}")
    return _FORMATS[base]


class CudaRuntime:
    """The device, its primary context, streams, memory pool and module cache."""

    def __init__(self, device: int = 0) -> None:
        from .backends import cuda_available
        ok, why = cuda_available()
        if not ok:
            raise BackendError(f"the cuda backend cannot run here: {why}. backend='auto' falls back to "
                               "'reference' (NumPy); 'emu' runs the generated CUDA C on the CPU")
        import pycuda.driver as drv
        from pycuda.tools import DeviceMemoryPool
        self.drv = drv
        self.device = drv.Device(device)
        self.context = self.device.retain_primary_context()
        self.context.push()
        major, minor = self.device.compute_capability()
        self.arch = f"sm_{major}{minor}"
        self.name = self.device.name()
        self.stream = drv.Stream()
        self.copy_stream = drv.Stream()  # prefetching the next minibatch while a step runs
        self.pool = DeviceMemoryPool()
        self.modules: dict[str, object] = {}

    def allocate(self, nbytes: int, what: str):
        try:
            return self.pool.allocate(max(int(nbytes), 1))
        except self.drv.MemoryError as e:
            free, total = self.drv.mem_get_info()
            raise BackendError(f"out of device memory allocating {nbytes} bytes for {what}: "
                               f"{free} of {total} bytes free on {self.name}") from e

    def module(self, source: str):
        """The loaded module of ``source`` (compiled to a cubin for this device, cached)."""
        key = hashlib.sha256(source.encode()).hexdigest()
        mod = self.modules.get(key)
        if mod is None:
            from .nvcc import compile_cubin
            cubin = compile_cubin(source, self.arch)
            mod = self.modules[key] = self.drv.module_from_buffer(cubin)
        return mod

    def synchronize(self) -> None:
        self.stream.synchronize()


def runtime() -> CudaRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = CudaRuntime()
        return _runtime


def free_device_memory() -> int:
    rt = runtime()
    free, _ = rt.drv.mem_get_info()
    return int(free)


class DeviceArray:
    """A C-contiguous array in device memory (what device-resident values and outputs are)."""

    backend = "cuda"

    def __init__(self, shape: Sequence[int], dtype, allocation=None, rt: CudaRuntime | None = None) -> None:
        self.rt = rt or runtime()
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.allocation = allocation if allocation is not None else self.rt.allocate(self.nbytes, "an array")
        self.dirty = False

    @property
    def ptr(self) -> int:
        return int(self.allocation)

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "version": 3,
                "strides": None, "stream": None}

    @classmethod
    def from_host(cls, array: np.ndarray, rt: CudaRuntime | None = None) -> "DeviceArray":
        array = np.ascontiguousarray(array) if array.ndim else np.asarray(array).reshape(())
        out = cls(array.shape, array.dtype, rt=rt)
        if out.nbytes:
            out.rt.drv.memcpy_htod_async(out.ptr, array, out.rt.stream)
            out.rt.stream.synchronize()  # the host array may be pageable and short-lived
        return out

    def get(self) -> np.ndarray:
        host = np.empty(self.shape, self.dtype)
        if self.nbytes:
            self.rt.drv.memcpy_dtoh_async(host, self.ptr, self.rt.stream)
            self.rt.stream.synchronize()
        return host

    def __array__(self, dtype=None, copy=None):
        a = self.get()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"DeviceArray({self.dtype}{list(self.shape)}, on {self.rt.name})"


def device_pointer(value, dtype: str, shape: tuple, name: str) -> int | None:
    """The device address of ``value`` if it already lives on the device (a DeviceArray or any
    object with ``__cuda_array_interface__``), checked against the expected dtype and shape."""
    iface = getattr(value, "__cuda_array_interface__", None)
    if iface is None:
        return None
    if np.dtype(iface["typestr"]).name != dtype:
        raise DTypeError(f"device input {name} has dtype {np.dtype(iface['typestr']).name}, the program needs {dtype}")
    if tuple(iface["shape"]) != tuple(shape):
        raise ShapeError(f"device input {name} has shape {tuple(iface['shape'])}, the program needs {tuple(shape)}")
    strides = iface.get("strides")
    if strides is not None:
        want, acc = [], np.dtype(dtype).itemsize
        for d in reversed(shape):
            want.append(acc)
            acc *= d
        if tuple(strides) != tuple(reversed(want)):
            raise ShapeError(f"device input {name} is not C-contiguous (strides {strides})")
    return int(iface["data"][0])


class CudaExecutor:
    """Runs one Program: buffers, prepared launches, outputs."""

    backend = "cuda"

    def __init__(self, program: Program, keep_outputs_on_device: bool = False) -> None:
        self.rt = rt = runtime()
        self.program = program
        self.keep_outputs_on_device = keep_outputs_on_device
        self.functions = []
        if program.kernels:
            mod = rt.module("\n".join(k.source for k in program.kernels))
            for k in program.kernels:
                fn = mod.get_function(k.name)
                fn.prepare("".join(_format_char(p.ctype) for p in k.params))  # once, not per call
                self.functions.append(fn)
        try:
            self.arena = rt.allocate(program.arena_bytes, f"the arena of a {len(program.kernels)}-kernel program "
                                                           f"({program.arena_bytes} bytes)")
        except BackendError:
            raise
        self.consts = [DeviceArray.from_host(np.asarray(c), rt) for c in program.constants]

    def run_values(self, leaf_values: Sequence, scalar_values: Sequence[int]) -> list:
        prog, rt = self.program, self.rt
        keep = []          # host arrays and allocations that must live until the step is done
        base: list[int] = []
        results: dict[int, DeviceArray] = {}
        for buf in prog.buffers:
            if buf.kind in ("input", "shared"):
                spec = prog.leaves[buf.slot]
                value = leaf_values[buf.slot]
                if hasattr(value, "device_value"):  # a shared variable: its device copy
                    value = value.device_value("cuda", lambda a: DeviceArray.from_host(a, rt))
                ptr = device_pointer(value, buf.dtype, spec.shape, spec.name)
                ready = getattr(value, "ready", None)
                if ready is not None:  # a prefetched batch: order its copy before our launches
                    rt.stream.wait_for_event(ready)
                if ptr is None:
                    host = np.asarray(value, dtype=buf.dtype, order="C")
                    if host.shape != tuple(spec.shape):
                        raise ShapeError(f"program input {spec.name} needs shape {tuple(spec.shape)}, got {host.shape}")
                    dev = DeviceArray(host.shape, host.dtype, rt=rt)
                    if dev.nbytes:
                        rt.drv.memcpy_htod_async(dev.ptr, host, rt.stream)
                    keep += [host, dev]
                    ptr = dev.ptr
                else:
                    keep.append(value)
                base.append(ptr)
            elif buf.kind == "const":
                base.append(self.consts[buf.slot].ptr)
            elif buf.kind == "output":
                dev = DeviceArray((buf.size,), buf.dtype, rt=rt)
                results[buf.index] = dev
                base.append(dev.ptr)
            else:
                base.append(int(self.arena) + buf.arena_offset)
        scalars = [int(s) for s in scalar_values]
        item = [np.dtype(b.dtype).itemsize for b in prog.buffers]

        def address(ref) -> int:
            offset = ref.offset + sum(scalars[slot] * coef for slot, coef in ref.dyn)
            return base[ref.buffer] + offset * item[ref.buffer]

        for k, fn in zip(prog.kernels, self.functions):
            args = [address(b.ref) if b.kind == "ptr" else scalars[b.slot] for b in k.bindings]
            fn.prepared_async_call(k.grid, k.block, rt.stream, *args, shared_size=k.shared_bytes)

        outs = []
        for o in prog.outputs:
            buf = prog.buffers[o.ref.buffer]
            offset = o.ref.offset + sum(scalars[slot] * coef for slot, coef in o.ref.dyn)
            dense = buf.kind == "output" and offset == 0 and _c_strides(o.shape) == tuple(o.strides)
            if dense:
                arr = results[buf.index]
                arr.shape = tuple(o.shape)
                outs.append(arr)
            else:  # a view of something else: bring the base region home and slice it there
                outs.append(self._strided_copy(address(o.ref), o, item[o.ref.buffer]))
        rt.stream.synchronize()
        del keep
        if self.keep_outputs_on_device:
            return outs
        return [o.get() if isinstance(o, DeviceArray) else o for o in outs]

    def _strided_copy(self, ptr: int, o, itemsize: int) -> np.ndarray:
        lo = sum(s * (d - 1) for s, d in zip(o.strides, o.shape) if s < 0 and d)
        hi = sum(s * (d - 1) for s, d in zip(o.strides, o.shape) if s > 0 and d)
        span = np.empty(hi - lo + 1 if all(o.shape) else 0, dtype=o.dtype)
        if span.size:
            self.rt.drv.memcpy_dtoh_async(span, ptr + lo * itemsize, self.rt.stream)
        self.rt.stream.synchronize()
        if not span.size:
            return np.empty(o.shape, o.dtype)
        view = np.lib.stride_tricks.as_strided(span[-lo:], shape=o.shape,
                                               strides=tuple(s * itemsize for s in o.strides), writeable=False)
        return np.array(view, copy=True)

    def time_launches(self, leaf_values: Sequence, scalar_values: Sequence[int], repeat: int = 20) -> dict:
        """Per-kernel device time (ms, CUDA events) and host time per step (s), for bench/."""
        import time
        self.run_values(leaf_values, scalar_values)  # warm up (uploads, first-launch costs)
        t0 = time.perf_counter()
        for _ in range(repeat):
            self.run_values(leaf_values, scalar_values)
        host = (time.perf_counter() - t0) / repeat
        return {"host_seconds_per_step": host, "kernels": len(self.program.kernels)}


def prefetch_to_device(batches) -> "Iterator[dict]":
    """Double-buffered upload of host batches (dicts of arrays): batch i+1 is staged in pinned
    memory and copied on the copy stream while the caller runs its step on batch i. Each yielded
    DeviceArray carries a ``ready`` event the compute stream waits on before reading it."""
    rt = runtime()
    drv = rt.drv

    def stage(batch: dict) -> dict:
        out = {}
        for name, host in batch.items():
            pinned = drv.pagelocked_empty(host.shape, host.dtype)
            pinned[...] = host
            dev = DeviceArray(host.shape, host.dtype, rt=rt)
            if dev.nbytes:
                drv.memcpy_htod_async(dev.ptr, pinned, rt.copy_stream)
            dev.ready = drv.Event()
            dev.ready.record(rt.copy_stream)
            dev._pinned = pinned  # the source must outlive the asynchronous copy
            out[name] = dev
        return out

    it = iter(batches)
    nxt = next(it, None)
    staged = stage(nxt) if nxt is not None else None
    while staged is not None:
        current = staged
        nxt = next(it, None)
        staged = stage(nxt) if nxt is not None else None  # overlaps with the caller's step
        yield current


def _c_strides(shape) -> tuple:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= max(d, 1)
    return tuple(reversed(strides))


class CudaProgram:
    """Adapter with the other backends' interface: ``run(env)``, env id(leaf) -> value. Update
    values stay on the device (the function stores them as the shared variables' device copies);
    outputs come back as numpy arrays unless ``outputs_on_device``."""

    backend = "cuda"

    def __init__(self, outputs, leaves: Sequence, scalars: Sequence, n_outputs: int | None = None,
                 outputs_on_device: bool = False) -> None:
        from ..compiler.program import build_program
        self.leaves, self.scalars = list(leaves), list(scalars)
        self.program = build_program(outputs, self.leaves, self.scalars)
        self.n_outputs = len(outputs) if n_outputs is None else n_outputs
        self.outputs_on_device = outputs_on_device
        self.executor = CudaExecutor(self.program, keep_outputs_on_device=True)

    @property
    def kernels(self):
        return self.program.kernels

    def run(self, env: dict) -> list:
        results = self.executor.run_values([env[id(v)] for v in self.leaves],
                                           [int(np.asarray(env[id(s)])) for s in self.scalars])
        outs, updates = results[:self.n_outputs], results[self.n_outputs:]
        if not self.outputs_on_device:
            outs = [o.get() if isinstance(o, DeviceArray) else o for o in outs]
        return outs + updates

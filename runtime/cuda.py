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

Contexts. pycuda keeps a context stack per thread, and aborts the process when a thread (the
main thread included, at interpreter exit) ends with a context still pushed. The runtime pushes
the primary context once in the thread that creates it and pops it again at exit (``atexit``,
as ``pycuda.autoprimaryctx`` does); every entry point below runs inside ``CudaRuntime.active()``,
which pushes the context for the duration of the call where it is not the current one (another
thread, or a context the user pushed on top).

pycuda is imported only when this backend is used: ``import theta`` never needs it.
"""
from __future__ import annotations

import atexit
import hashlib
import threading
from typing import Iterator, Sequence

import numpy as np

from ..compiler.errors import BackendError, DTypeError, ShapeError
from ..compiler.layout import c_strides
from ..compiler.program import Program, raise_status

_lock = threading.Lock()
_runtime: "CudaRuntime | None" = None

# kernel parameter C type -> struct format character for pycuda's prepare() (pycuda packs the
# arguments with its own copy of the struct module in native mode, so each one is aligned as
# the C compiler aligns kernel parameters)
_FORMATS = {"long long": "q", "int": "i", "unsigned int": "I", "float": "f", "double": "d",
            "unsigned long long": "Q", "short": "h", "unsigned short": "H", "signed char": "b",
            "unsigned char": "B", "bool": "?"}

_STATIC_SHARED_LIMIT = 48 * 1024  # bytes of dynamic shared memory a launch gets without opting in


def _format_char(ctype: str) -> str:
    if "*" in ctype:
        return "P"
    base = " ".join(ctype.replace("const", " ").split())
    if base not in _FORMATS:
        raise BackendError(f"no launch format for the parameter type {ctype!r}")
    return _FORMATS[base]


class _Active:
    """Makes the runtime's context current for a ``with`` block (pushed and popped again only
    where it is not current already)."""

    __slots__ = ("rt", "pushed")

    def __init__(self, rt: "CudaRuntime") -> None:
        self.rt, self.pushed = rt, False

    def __enter__(self) -> "CudaRuntime":
        rt = self.rt
        current = rt.drv.Context.get_current()
        if current is None or current != rt.context:
            rt.context.push()
            self.pushed = True
        return rt

    def __exit__(self, *exc) -> bool:
        if self.pushed:
            self.rt.drv.Context.pop()
        return False


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
        try:
            major, minor = self.device.compute_capability()
            self.arch = f"sm_{major}{minor}"
            self.name = self.device.name()
            # Both streams are blocking streams (flags 0): they order themselves after work on
            # the legacy default stream, which is what a foreign array exported with stream 1
            # relies on. Between the two, events order the copies (see prefetch_to_device).
            self.stream = drv.Stream()
            self.copy_stream = drv.Stream()  # prefetching the next minibatch while a step runs
            self.pool = DeviceMemoryPool()
        except BaseException:
            drv.Context.pop()
            raise
        self.modules: dict[str, object] = {}
        self._no_timing = int(drv.event_flags.DISABLE_TIMING)
        self._owner = threading.get_ident()
        self._closed = False
        # Only the main thread keeps the context pushed between calls (a worker thread that
        # ended with it on its stack would abort the process); atexit pops it there.
        self._pushed = threading.current_thread() is threading.main_thread()
        if not self._pushed:
            drv.Context.pop()
        atexit.register(self._shutdown)

    def active(self) -> _Active:
        """``with rt.active():`` runs the block with this runtime's context current."""
        return _Active(self)

    def event(self, timing: bool = False):
        return self.drv.Event(0 if timing else self._no_timing)

    def allocate(self, nbytes: int, what: str):
        try:
            with self.active():
                return self.pool.allocate(max(int(nbytes), 1))
        except self.drv.MemoryError as e:
            with self.active():
                free, total = self.drv.mem_get_info()
            raise BackendError(f"out of device memory allocating {nbytes} bytes for {what}: "
                               f"{free} of {total} bytes free on {self.name}") from e

    def module(self, source: str):
        """The loaded module of ``source`` (compiled to a cubin for this device, cached)."""
        key = hashlib.sha256(source.encode()).hexdigest()
        mod = self.modules.get(key)
        if mod is None:
            from .nvcc import NvccError, compile_cubin
            try:
                cubin = compile_cubin(source, self.arch)
            except NvccError as e:  # a theta bug, shown with the failing source line
                raise BackendError(f"nvcc could not build this program's kernels for {self.arch}:\n{e}") from e
            with self.active():
                mod = self.modules[key] = self.drv.module_from_buffer(cubin)
        return mod

    def synchronize(self) -> None:
        with self.active():
            self.stream.synchronize()

    def _shutdown(self) -> None:
        """At interpreter exit: finish outstanding work, hand the pool's cached blocks back, and
        pop the context pushed in __init__ (pycuda aborts when a context is left on the stack)."""
        if self._closed:
            return
        self._closed = True
        drv = self.drv
        try:
            with self.active():
                drv.Context.synchronize()
                self.pool.stop_holding()  # frees held blocks; later frees go straight to the driver
        except Exception:
            pass
        if self._pushed and threading.get_ident() == self._owner:
            try:
                current = drv.Context.get_current()
                if current is not None and current == self.context:
                    drv.Context.pop()
            except Exception:
                pass
        try:
            from pycuda.tools import clear_context_caches
            clear_context_caches()
        except Exception:
            pass


def runtime() -> CudaRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = CudaRuntime()
        return _runtime


def free_device_memory() -> int:
    """Bytes that allocations can still get: free device memory plus the blocks the pool holds
    for reuse (the pool releases those before it reports an out-of-memory error)."""
    rt = runtime()
    with rt.active():
        free, _ = rt.drv.mem_get_info()
    held = int(rt.pool.managed_bytes) - int(rt.pool.active_bytes)
    return int(free) + max(held, 0)


class DeviceArray:
    """A C-contiguous array in device memory (what device-resident values and outputs are).

    ``ready``: an event recorded after a write still in flight on another stream (the copy of a
    prefetched batch), or None; readers order themselves after it."""

    backend = "cuda"

    def __init__(self, shape: Sequence[int], dtype, allocation=None, rt: CudaRuntime | None = None) -> None:
        self.rt = rt or runtime()
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.allocation = allocation if allocation is not None else self.rt.allocate(self.nbytes, "an array")
        self.ready = None
        self._ready_stream = None
        self.dirty = False

    @property
    def ptr(self) -> int:
        return int(self.allocation)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _pending(self):
        """The event of a write that may still be running, or None (forgotten once done)."""
        ready, stream = self.ready, self._ready_stream
        if ready is None:
            return None
        with self.rt.active():
            done = ready.query()
        if done:
            self.ready = self._ready_stream = None
            return None
        return ready, stream

    def _order_before(self, stream) -> None:
        """Work enqueued on ``stream`` after this call sees the pending write completed."""
        pending = self._pending()
        if pending is not None:
            with self.rt.active():
                stream.wait_for_event(pending[0])

    def _settle(self) -> None:
        """Wait (on the host) for the pending write, then forget it."""
        ready = self.ready
        if ready is not None:
            with self.rt.active():
                ready.synchronize()
            self.ready = self._ready_stream = None

    @property
    def __cuda_array_interface__(self) -> dict:
        # v3 'stream': None tells the consumer the data may be read right away; while a write on
        # another stream (a prefetch copy) is in flight, that stream is the one to synchronize with.
        pending = self._pending()
        stream = pending[1].handle if pending is not None and pending[1] is not None else None
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr if self.nbytes else 0, False),
                "version": 3, "strides": None, "stream": stream}

    @classmethod
    def from_host(cls, array: np.ndarray, rt: CudaRuntime | None = None) -> "DeviceArray":
        rt = rt or runtime()
        array = np.asarray(array)
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        array = np.ascontiguousarray(array) if array.ndim else array.reshape(())
        with rt.active():
            out = cls(array.shape, array.dtype, rt=rt)
            if out.nbytes:
                rt.drv.memcpy_htod_async(out.ptr, array, rt.stream)
                rt.stream.synchronize()  # the host array may be pageable and short-lived
        return out

    def get(self) -> np.ndarray:
        host = np.empty(self.shape, self.dtype)
        if self.nbytes:
            rt = self.rt
            with rt.active():
                self._order_before(rt.stream)
                rt.drv.memcpy_dtoh_async(host, self.ptr, rt.stream)
                rt.stream.synchronize()
        return host

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a DeviceArray cannot be seen as a NumPy array without a copy")
        a = self.get()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"DeviceArray({self.dtype}{list(self.shape)}, on {self.rt.name})"


def device_pointer(value, dtype: str, shape: tuple, name: str) -> int | None:
    """The device address of ``value`` if it already lives on the device (a DeviceArray or any
    object with ``__cuda_array_interface__``), checked against the expected dtype and shape.
    (Stream synchronization is the caller's: see CudaExecutor's inputs.)"""
    iface = getattr(value, "__cuda_array_interface__", None)
    if iface is None:
        return None
    got = np.dtype(iface["typestr"])
    if got.name != dtype or not got.isnative:
        raise DTypeError(f"device input {name} has dtype {got.str}, the program needs {dtype}")
    if tuple(iface["shape"]) != tuple(shape):
        raise ShapeError(f"device input {name} has shape {tuple(iface['shape'])}, the program needs {tuple(shape)}")
    if iface.get("mask") is not None:
        raise DTypeError(f"device input {name} is a masked array")
    strides = iface.get("strides")
    if strides is not None and all(shape):
        acc = np.dtype(dtype).itemsize
        for d, s in zip(reversed(tuple(shape)), reversed(tuple(strides))):
            if d != 1 and s != acc:  # a dim of length 1 may have any stride
                raise ShapeError(f"device input {name} is not C-contiguous (strides {tuple(strides)})")
            acc *= d
    return int(iface["data"][0] or 0)


def _unwrap(value):
    """The device array inside theta.function's wrapper for device-resident arguments."""
    from ..compiler.function import _DeviceInput
    return value.value if isinstance(value, _DeviceInput) else value


class CudaExecutor:
    """Runs one Program: buffers, prepared launches, outputs."""

    backend = "cuda"

    def __init__(self, program: Program, keep_outputs_on_device: bool = False) -> None:
        self.rt = rt = runtime()
        self.program = program
        self.keep_outputs_on_device = keep_outputs_on_device
        self.functions = []
        # pycuda's launch wants tuples of ints for the grid and the block
        self._shapes = [(tuple(int(g) for g in k.grid), tuple(int(b) for b in k.block)) for k in program.kernels]
        self._lock = threading.Lock()  # one step at a time: the arena is shared between calls
        with rt.active():
            if program.kernels:
                mod = rt.module("\n".join(k.source for k in program.kernels))
                for k in program.kernels:
                    fn = mod.get_function(k.name)
                    fn.prepare("".join(_format_char(p.ctype) for p in k.params))  # once, not per call
                    if k.shared_bytes > _STATIC_SHARED_LIMIT:
                        fn.set_attribute(rt.drv.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES, int(k.shared_bytes))
                    self.functions.append(fn)
            self.arena = rt.allocate(program.arena_bytes, f"the arena of a {len(program.kernels)}-kernel program "
                                                          f"({program.arena_bytes} bytes)")
            self.consts = [DeviceArray.from_host(np.asarray(c), rt) for c in program.constants]
            self.status = rt.allocate(4, "the status word")

    def run_values(self, leaf_values: Sequence, scalar_values: Sequence[int]) -> list:
        return self._run_values(leaf_values, scalar_values)

    def _run_values(self, leaf_values: Sequence, scalar_values: Sequence[int], events: list | None = None) -> list:
        prog, rt = self.program, self.rt
        if len(leaf_values) != len(prog.leaves):
            raise BackendError(f"program takes {len(prog.leaves)} leaf values, got {len(leaf_values)}")
        with self._lock, rt.active():
            keep: list = []  # host arrays and allocations that must live until the step is done
            try:
                outs = self._step(leaf_values, scalar_values, keep, events)
                status = np.zeros(1, dtype=np.int32)
                rt.drv.memcpy_dtoh_async(status, int(self.status), rt.stream)
                rt.stream.synchronize()  # outputs complete, and nothing in flight reads `keep`
                raise_status(prog, int(status[0]))
            except BaseException:
                try:
                    rt.stream.synchronize()  # before `keep` goes back to the pool / is freed
                except Exception:
                    pass
                raise
            finally:
                keep.clear()
        if self.keep_outputs_on_device:
            return outs
        return [o.get() if isinstance(o, DeviceArray) else o for o in outs]

    def _input_pointer(self, value, buf, spec, keep: list) -> int:
        rt = self.rt
        if hasattr(value, "device_value"):  # a shared variable: its device copy
            value = value.device_value("cuda", lambda a: DeviceArray.from_host(a, rt))
        value = _unwrap(value)
        keep.append(value)
        if isinstance(value, DeviceArray):
            ptr = device_pointer(value, buf.dtype, spec.shape, spec.name)
            value._order_before(rt.stream)  # a prefetched batch: its copy before our launches
            return ptr
        ptr = device_pointer(value, buf.dtype, spec.shape, spec.name)
        if ptr is not None:
            # CUDA Array Interface v3: synchronize with the producer's stream. Our stream is a
            # blocking stream, so it already follows the legacy default stream (1); any other
            # stream (the per-thread default stream, 2, or a handle) we cannot name from pycuda:
            # wait for the whole context instead.
            stream = value.__cuda_array_interface__.get("stream")
            if stream is not None and stream != 1:
                rt.drv.Context.synchronize()
            return ptr
        host = np.asarray(value, dtype=buf.dtype, order="C")
        if host.shape != tuple(spec.shape):
            raise ShapeError(f"program input {spec.name} needs shape {tuple(spec.shape)}, got {host.shape}")
        dev = DeviceArray(host.shape, host.dtype, rt=rt)
        if dev.nbytes:
            rt.drv.memcpy_htod_async(dev.ptr, host, rt.stream)
        keep += [host, dev]
        return dev.ptr

    def _step(self, leaf_values: Sequence, scalar_values: Sequence[int], keep: list, events: list | None) -> list:
        prog, rt = self.program, self.rt
        base: list[int] = []
        results: dict[int, object] = {}  # output buffer index -> its allocation
        for buf in prog.buffers:
            if buf.kind in ("input", "shared"):
                spec = prog.leaves[buf.slot]
                base.append(self._input_pointer(leaf_values[buf.slot], buf, spec, keep))
            elif buf.kind == "const":
                base.append(self.consts[buf.slot].ptr)
            elif buf.kind == "output":
                # a fresh buffer every call: outputs already handed out are never overwritten
                alloc = rt.allocate(buf.nbytes, f"output {buf.slot}")
                results[buf.index] = alloc
                keep.append(alloc)  # live until the step is done even if no result is this buffer
                base.append(int(alloc))
            else:
                base.append(int(self.arena) + buf.arena_offset)
        scalars = [int(s) for s in scalar_values]
        item = [np.dtype(b.dtype).itemsize for b in prog.buffers]

        def address(ref) -> int:
            offset = ref.offset + sum(scalars[slot] * coef for slot, coef in ref.dyn)
            return base[ref.buffer] + offset * item[ref.buffer]

        # the status word a kernel reports bad input in: cleared before the launches
        rt.drv.memset_d32_async(int(self.status), 0, 1, rt.stream)

        def arg(b):
            if b.kind == "ptr":
                return address(b.ref)
            return int(self.status) if b.kind == "status" else scalars[b.slot]

        for k, fn, (grid, block) in zip(prog.kernels, self.functions, self._shapes):
            args = [arg(b) for b in k.bindings]
            if events is not None:
                start, end = rt.event(timing=True), rt.event(timing=True)
                start.record(rt.stream)
            fn.prepared_async_call(grid, block, rt.stream, *args, shared_size=int(k.shared_bytes))
            if events is not None:
                end.record(rt.stream)
                events.append((start, end))

        outs = []
        handed: set[int] = set()
        for o in prog.outputs:
            buf = prog.buffers[o.ref.buffer]
            offset = o.ref.offset + sum(scalars[slot] * coef for slot, coef in o.ref.dyn)
            dense = buf.kind == "output" and offset == 0 and c_strides(o.shape) == tuple(o.strides)
            if dense and buf.index not in handed:
                handed.add(buf.index)
                outs.append(DeviceArray(o.shape, o.dtype, allocation=results[buf.index], rt=rt))
            elif dense:
                # Two results are one buffer (equal outputs are one node; an output and an update,
                # or two updates, may be the same expression): each gets its own memory, so a
                # later write to one (or its dirty flag as a shared value) never shows in the other.
                arr = DeviceArray(o.shape, o.dtype, rt=rt)
                if arr.nbytes:
                    rt.drv.memcpy_dtod_async(arr.ptr, int(results[buf.index]), arr.nbytes, rt.stream)
                outs.append(arr)
            else:  # a view of something else: bring the base region home and slice it there
                outs.append(self._strided_copy(address(o.ref), o, item[o.ref.buffer]))
        return outs

    def _strided_copy(self, ptr: int, o, itemsize: int) -> np.ndarray:
        """The view ``o`` (element strides, possibly negative or 0) whose first element is at
        ``ptr``: the span of memory it touches comes home in one copy, then numpy strides it."""
        if not all(o.shape):
            return np.empty(o.shape, o.dtype)
        lo = sum(s * (d - 1) for s, d in zip(o.strides, o.shape) if s < 0)  # elements before ptr
        hi = sum(s * (d - 1) for s, d in zip(o.strides, o.shape) if s > 0)  # elements after ptr
        span = np.empty(hi - lo + 1, dtype=o.dtype)
        self.rt.drv.memcpy_dtoh_async(span, ptr + lo * itemsize, self.rt.stream)
        self.rt.stream.synchronize()
        view = np.lib.stride_tricks.as_strided(span[-lo:], shape=o.shape,
                                               strides=tuple(s * itemsize for s in o.strides), writeable=False)
        return np.array(view, copy=True)

    def time_launches(self, leaf_values: Sequence, scalar_values: Sequence[int], repeat: int = 20) -> dict:
        """Per-kernel device time (ms, CUDA events, median over ``repeat`` steps) and host time
        per step (s), for bench/."""
        import time
        repeat = max(int(repeat), 1)
        self.run_values(leaf_values, scalar_values)  # warm up (uploads, first-launch costs)
        t0 = time.perf_counter()
        for _ in range(repeat):
            self.run_values(leaf_values, scalar_values)
        host = (time.perf_counter() - t0) / repeat
        per_kernel: list[list[float]] = [[] for _ in self.program.kernels]
        for _ in range(repeat):
            events: list = []
            self._run_values(leaf_values, scalar_values, events)  # synchronizes before returning
            with self.rt.active():
                for k, (start, end) in enumerate(events):
                    per_kernel[k].append(end.time_since(start))
        return {"host_seconds_per_step": host, "kernels": len(self.program.kernels),
                "kernel_ms": {k.name: float(np.median(t)) for k, t in zip(self.program.kernels, per_kernel)}}


def prefetch_to_device(batches) -> "Iterator[dict]":
    """Double-buffered upload of host batches (dicts of arrays): batch i+1 is staged in pinned
    memory and copied on the copy stream while the caller runs its step on batch i. Each yielded
    DeviceArray carries a ``ready`` event the compute stream waits on before reading it.

    Two pinned staging buffers per array name are reused round-robin (allocating and freeing
    page-locked memory per batch is slow, and freeing it synchronizes the device); a buffer is
    refilled only after the event of the copy that last read it has completed. A batch's device
    memory is only handed back once its copy is known to be complete."""
    rt = runtime()
    drv = rt.drv
    rings: dict[str, list] = {}  # name -> two slots [pinned uint8 buffer, event of its last copy]
    end_of_data = object()

    def staging(name: str, host: np.ndarray, turn: int) -> tuple[np.ndarray, list]:
        ring = rings.setdefault(name, [None, None])
        slot = ring[turn % 2]
        if slot is not None and slot[1] is not None:
            slot[1].synchronize()  # the copy that last read this buffer is done
        if slot is None or slot[0].nbytes < host.nbytes:
            slot = ring[turn % 2] = [drv.pagelocked_empty((host.nbytes,), np.uint8), None]
        view = slot[0][:host.nbytes].view(host.dtype).reshape(host.shape)
        return view, slot

    def stage(batch: dict, turn: int) -> dict:
        out, used = {}, []
        with rt.active():
            for name, value in batch.items():
                host = np.asarray(value)
                if not host.dtype.isnative:
                    host = host.astype(host.dtype.newbyteorder("="))
                dev = DeviceArray(host.shape, host.dtype, rt=rt)
                if dev.nbytes:
                    pinned, slot = staging(name, host, turn)
                    np.copyto(pinned, host)
                    drv.memcpy_htod_async(dev.ptr, pinned, rt.copy_stream)
                    used.append((dev, slot))
                out[name] = dev
            if used:
                ready = rt.event()
                ready.record(rt.copy_stream)  # after every copy of this batch
                for dev, slot in used:
                    slot[1] = ready
                    dev.ready, dev._ready_stream = ready, rt.copy_stream
        return out

    it = iter(batches)
    staged = None
    try:
        turn = 0
        first = next(it, end_of_data)
        staged = stage(first, turn) if first is not end_of_data else None
        while staged is not None:
            current = staged
            turn += 1
            nxt = next(it, end_of_data)
            staged = stage(nxt, turn) if nxt is not end_of_data else None  # overlaps with the caller's step
            yield current
            # The caller has run its step on `current` (its stream waited for the copy). Wait for
            # the copy here too, so that dropping the batch, used or not, can never hand memory a
            # copy is still writing back to the pool.
            for dev in current.values():
                dev._settle()
            current = None
    finally:
        try:
            with rt.active():
                rt.copy_stream.synchronize()  # no copy may outlive the staging buffers or `staged`
        except Exception:
            pass
        close = getattr(it, "close", None)
        if close is not None:
            close()  # stop the source's producer thread when the consumer stops early


class CudaProgram:
    """Adapter with the other backends' interface: ``run(env)``, env id(leaf) -> value. Update
    values stay on the device (the function stores them as the shared variables' device copies);
    outputs come back as numpy arrays unless ``outputs_on_device``."""

    backend = "cuda"

    def __init__(self, outputs, leaves: Sequence, scalars: Sequence, n_outputs: int | None = None,
                 outputs_on_device: bool = False) -> None:
        from ..compiler.pipeline import build_program
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

"""theta's cuda backend seen from a benchmark.

``Launches.capture(f, *args)`` compiles ``f`` for ``args`` (device arrays: theta's DeviceArray
or PyTorch tensors, read in place), runs its Program once through the CudaExecutor, and records
every kernel launch (the prepared function, grid, block, packed arguments) on the way. The
outputs of that run stay on the device, for validation, and the recorded launches can be
replayed back-to-back: the same kernels on the same buffers, with nothing between them but the
launch calls themselves. That is what the device-time figures measure (CUDA events on theta's
stream).

Replaying is idempotent: a Program never writes its inputs or shared variables (updates go to
fresh output buffers), and every allocation the captured run made is kept alive here, so no
replay writes into memory the pool has handed to someone else.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, ContextManager, Sequence


def active(rt: Any) -> ContextManager:
    """The runtime's context made current for a block (``CudaRuntime.active``, where the
    runtime has one; a runtime that keeps its context pushed needs nothing)."""
    return rt.active() if hasattr(rt, "active") else contextlib.nullcontext()


class _Recorder:
    """Stands in for a prepared pycuda Function during one run and remembers its launches."""

    def __init__(self, fn: Any, sink: list) -> None:
        self.fn, self.sink = fn, sink

    def prepared_async_call(self, grid, block, stream, *args, shared_size: int = 0) -> None:
        self.sink.append((self.fn, grid, block, args, shared_size))
        self.fn.prepared_async_call(grid, block, stream, *args, shared_size=shared_size)


class Launches:
    def __init__(self, executor: Any, leaf_values: Sequence[Any], scalars: Sequence[int] = ()) -> None:
        self.executor = executor
        self.rt = rt = executor.rt
        self.leaf_values = list(leaf_values)   # kept alive: the launches read them
        self.calls: list[tuple] = []
        self.allocations: list[Any] = []       # every buffer the captured run allocated
        real_functions, real_allocate = executor.functions, rt.allocate

        def allocate(nbytes: int, what: str) -> Any:
            block = real_allocate(nbytes, what)
            self.allocations.append(block)
            return block

        executor.functions = [_Recorder(fn, self.calls) for fn in real_functions]
        rt.allocate = allocate
        try:
            self.outputs = executor.run_values(self.leaf_values, list(scalars))
        finally:
            executor.functions = real_functions
            del rt.allocate   # the method again

    @classmethod
    def capture(cls, f: Any, *args: Any) -> "Launches":
        """The launches of ``f(*args)`` (``f`` a theta.function compiled with backend='cuda'),
        run once: ``outputs`` holds the outputs, then the update values, on the device."""
        from theta.runtime.cuda import CudaProgram, DeviceArray
        spec = f.specialization(*args)
        programs = spec.programs
        if len(programs) != 1 or not isinstance(programs[0], CudaProgram):
            raise TypeError("Launches.capture needs a function compiled with backend='cuda' whose shapes "
                            "do not depend on input values")
        shared = [s.device_value("cuda", lambda a: DeviceArray.from_host(a)) for s in f.shared]
        return cls(programs[0].executor, list(args) + shared)

    @property
    def program(self) -> Any:
        return self.executor.program

    @property
    def n_kernels(self) -> int:
        return len(self.calls)

    def _replay(self) -> None:
        stream = self.rt.stream
        for fn, grid, block, args, shared_size in self.calls:
            fn.prepared_async_call(grid, block, stream, *args, shared_size=shared_size)

    def replay(self) -> None:
        with active(self.rt):
            self._replay()

    def device_ms(self, warmup: int, repeat: int) -> list[float]:
        """Milliseconds between CUDA events around each back-to-back replay of all launches."""
        rt = self.rt
        with active(rt):
            for _ in range(warmup):
                self._replay()
            times = []
            for _ in range(repeat):
                start, end = rt.drv.Event(), rt.drv.Event()
                start.record(rt.stream)
                self._replay()
                end.record(rt.stream)
                end.synchronize()
                times.append(end.time_since(start))
        return times

    def host_seconds_per_launch(self, replays: int) -> float:
        """Wall-clock seconds per launch over ``replays`` replays queued without waiting, then
        one synchronize: the launch rate, bounded by whichever of host and GPU is slower."""
        rt = self.rt
        with active(rt):
            self._replay()
            rt.stream.synchronize()
            t0 = time.perf_counter()
            for _ in range(replays):
                self._replay()
            rt.stream.synchronize()
            elapsed = time.perf_counter() - t0
        return elapsed / (replays * max(self.n_kernels, 1))


def release_memory() -> None:
    """Give the device memory that theta's pool and PyTorch's cache hold idle back to the driver."""
    import gc
    gc.collect()
    from theta.runtime.cuda import runtime
    rt = runtime()
    with active(rt):
        rt.pool.free_held()
    try:
        import torch
        torch.cuda.empty_cache()
    except ImportError:
        pass

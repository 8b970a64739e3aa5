"""theta's cuda backend seen from a benchmark.

``Launches.capture(f, *args)`` compiles ``f`` for ``args`` (device arrays: theta's DeviceArray
or PyTorch tensors, read in place), runs its Program once through the executor, and records
every launch the executor hands the device (the kernel handle and its resolved arguments). The
outputs of that run are kept for validation, and the recorded launches can be replayed
back-to-back: the same kernels on the same buffers, with nothing between them but the device's
launch calls. That is what the device-time figures measure (CUDA events on theta's stream).

A replay of a training step updates its shared variables again (updates are written in place),
so the values drift from replay to replay; the work, and so the time, is the same. Every buffer
the captured run used stays alive here, so no replay writes into memory handed to someone else.
"""
from __future__ import annotations

import time
from typing import Any, Sequence


class Launches:
    def __init__(self, runner: Any, leaf_values: Sequence[Any], scalars: Sequence[int] = ()) -> None:
        self.runner = runner
        self.executor = runner.executor
        self.device = device = self.executor.device
        self.leaf_values = list(leaf_values)   # kept alive: the launches read them
        self.calls: list[tuple] = []
        real_launch = device.launch

        def launch(handle, args) -> None:
            self.calls.append((handle, list(args)))
            real_launch(handle, args)

        device.launch = launch
        try:
            self.outputs = self.executor.run(self.leaf_values, list(scalars))
        finally:
            del device.launch   # the method again

    @classmethod
    def capture(cls, f: Any, *args: Any) -> "Launches":
        """The launches of ``f(*args)`` (``f`` a theta.function compiled with backend='cuda'),
        run once: ``outputs`` holds its outputs (the updates are applied to its variables)."""
        spec = f.specialization(*args)
        programs = spec.programs
        if len(programs) != 1 or getattr(programs[0], "backend", None) != "cuda":
            raise TypeError("Launches.capture needs a function compiled with backend='cuda' whose shapes "
                            "do not depend on input values")
        return cls(programs[0], list(args) + list(f.shared))

    @property
    def program(self) -> Any:
        return self.executor.program

    @property
    def n_kernels(self) -> int:
        return len(self.calls)

    def replay(self) -> None:
        launch = self.device.launch
        with self.device.active():
            for handle, args in self.calls:
                launch(handle, args)

    def device_ms(self, warmup: int, repeat: int) -> list[float]:
        """Milliseconds between CUDA events around each back-to-back replay of all launches."""
        dev = self.device
        for _ in range(warmup):
            self.replay()
        times = []
        with dev.active():
            for _ in range(repeat):
                start, end = dev.drv.Event(), dev.drv.Event()
                start.record(dev.stream)
                self.replay()
                end.record(dev.stream)
                end.synchronize()
                times.append(end.time_since(start))
        return times

    def kernel_ms(self, repeat: int) -> dict[str, float]:
        """Median milliseconds of each recorded launch (an event pair around every one)."""
        import statistics
        dev = self.device
        times: list[list[float]] = [[] for _ in self.calls]
        with dev.active():
            for _ in range(repeat):
                events = []
                for handle, args in self.calls:
                    start, end = dev.drv.Event(), dev.drv.Event()
                    start.record(dev.stream)
                    dev.launch(handle, args)
                    end.record(dev.stream)
                    events.append((start, end))
                events[-1][1].synchronize()
                for k, (start, end) in enumerate(events):
                    times[k].append(end.time_since(start))
        names = [k.name for k in self.program.kernels]
        return {name: float(statistics.median(t)) for name, t in zip(names, times)}

    def host_seconds_per_launch(self, replays: int) -> float:
        """Wall-clock seconds per launch over ``replays`` replays queued without waiting, then
        one synchronize: the launch rate, bounded by whichever of host and GPU is slower."""
        dev = self.device
        self.replay()
        dev.synchronize()
        t0 = time.perf_counter()
        for _ in range(replays):
            self.replay()
        dev.synchronize()
        return (time.perf_counter() - t0) / (replays * max(self.n_kernels, 1))


def release_memory() -> None:
    """Give the device memory that theta's pool and PyTorch's cache hold idle back to the driver."""
    import gc
    gc.collect()
    from theta.runtime.cuda import device
    dev = device()
    with dev.active():
        dev.pool.free_held()
    try:
        import torch
        torch.cuda.empty_cache()
    except ImportError:
        pass

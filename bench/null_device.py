"""A device that does nothing: the executor's host cost per launch, measured on any machine.

It implements runtime/device.py's interface the way the cuda device does on the host side
(arguments packed with a ``struct.Struct`` built per kernel at load, one call per launch) but
owns no memory and runs nothing: addresses are made up, copies and launches return at once. A
step run over it costs exactly the executor's own work plus the packing, which is what a GPU
step costs the host before the driver call (pycuda's ``_launch_kernel`` and ``cuLaunchKernel``
add about 1.5-2.5 µs per launch on a current server core; see shared/reviews/cuda-first-run.md).
Results are garbage: validate on emu or cuda first, then time here.
"""
from __future__ import annotations

import collections
import itertools
import struct
import threading

import numpy as np


class _Status:
    ptr = 0x10

    def reset(self) -> None:
        pass

    def read(self) -> int:
        return 0


class NullDevice:
    name = "null"
    separate_temps = False

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stats: collections.Counter = collections.Counter()
        self._next = itertools.count(1 << 32, 1 << 20)

    def alloc(self, nbytes: int) -> int:
        self.stats["alloc"] += 1
        return next(self._next)

    def upload(self, dst: int, host: np.ndarray) -> None:
        self.stats["upload"] += 1

    def download(self, host: np.ndarray, src: int) -> None:
        self.stats["download"] += 1

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        self.stats["copy"] += 1

    def status_word(self) -> _Status:
        return _Status()

    def load(self, program) -> list:
        from theta.runtime.device import struct_format
        return [struct.Struct("@" + struct_format(k.params)) for k in program.kernels]

    def launch(self, handle, args) -> None:
        handle.pack(*args)   # what the cuda device does before the driver call

    def synchronize(self) -> None:
        pass

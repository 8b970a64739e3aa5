"""The emu device: runs a Program's CUDA C on the CPU (the executor is runtime/executor.py).

All kernels of a Program are compiled into one shared library by g++ against kernels/emu.h
(cached on disk by source hash, see runtime.cache) and launched with the Program's grid and
block shapes; a CUDA block's threads really run concurrently up to each barrier. Device memory
is host memory: each allocation is a 256-byte aligned numpy buffer and an address is its host
address, so the executor drives emu exactly as it drives a GPU.

With ``asan=True`` kernels are built with AddressSanitizer and every temporary is its own
allocation, so an access past a buffer's end is caught instead of landing in a neighbour;
pointer arguments are then handed to the launcher as (allocation, offset), found from the
address among the live allocations.

With ``check=True`` (``theta.config.emu_check``) kernels are built in emu's checking mode
(kernels/emu_check.h: shared-memory races and uninitialized reads, divergent barriers and warp
ops, unfenced publication between blocks) and every launch runs three times from the same
memory, its blocks' threads in forward, reverse and shuffled order between sync points: a
kernel whose result depends on the order (a race the shadows do not see, in global memory
say) is reported with the first element that differs.
"""
from __future__ import annotations

import bisect
import collections
import ctypes
import shutil
import threading
import weakref
from typing import Any, Sequence

import numpy as np

from ..compiler.errors import BackendError
from .emu_build import EmuCompileError, EmuLaunchError, EmuModule, KernelSig, Param, _arg_spec

ALIGN = 256

# One lock for every emu device: a step's launches already use every core, and the module whose
# fiber stacks are warm changes hands only between launches (emu_build.EmuModule._take_stacks).
_LOCK = threading.RLock()


class _Block:
    """An aligned allocation; ``int(block)`` is its address. Unregistered when dropped."""

    __slots__ = ("array", "address", "__weakref__")

    def __init__(self, nbytes: int) -> None:
        raw = np.zeros(nbytes + ALIGN, dtype=np.uint8)   # zeroed: no stale bytes from a freed block
        start = (-raw.ctypes.data) % ALIGN
        self.array = raw[start:start + nbytes]
        self.address = raw.ctypes.data + start

    def __int__(self) -> int:
        return self.address

    __index__ = __int__


class EmuDevice:
    """The device interface (runtime/device.py) over host memory and EmuModule launches."""

    SCHEDULES = (0, 1, 2)   # forward, reverse, shuffled (checking mode)

    def __init__(self, asan: bool = False, check: bool = False) -> None:
        # resident copies of shared variables are kept per device name
        self.name = "emu" + ("-asan" if asan else "") + ("-check" if check else "")
        self.asan, self.check = asan, check
        self._launches = 0
        self.separate_temps = asan
        self.lock = _LOCK
        self.stats: collections.Counter = collections.Counter()
        self._live: dict[int, np.ndarray] = {}   # address -> allocation (ASan launches, checks)

    def alloc(self, nbytes: int) -> _Block:
        block = _Block(max(int(nbytes), 1))
        self._live[block.address] = block.array
        weakref.finalize(block, self._release, block.address)
        self.stats["alloc"] += 1
        return block

    def _release(self, address: int) -> None:
        self._live.pop(address, None)
        self.stats["free"] += 1

    def upload(self, dst: int, host: np.ndarray) -> None:
        self.stats["upload"] += 1
        ctypes.memmove(dst, host.ctypes.data, host.nbytes)

    def download(self, host: np.ndarray, src: int) -> None:
        self.stats["download"] += 1
        ctypes.memmove(host.ctypes.data, src, host.nbytes)

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        self.stats["copy"] += 1
        ctypes.memmove(dst, src, nbytes)

    def status_word(self) -> "_Status":
        return _Status(self.alloc(4))

    def load(self, program) -> list:
        from .emu_build import CXX
        if shutil.which(CXX) is None:
            raise BackendError(f"the emu backend compiles kernels with {CXX}, which is not on PATH here; "
                               "install it (Debian: apt-get install g++) or use backend='reference'")
        source = "\n".join(k.source for k in program.kernels)
        sigs = [KernelSig(k.name, tuple(Param(p.name, p.ctype) for p in k.params)) for k in program.kernels]
        try:
            # a saved program carries its rendered translation unit: no jinja2 needed to load it
            saved = (getattr(program, "artifacts", None) or {}).get("emu.cpp")
            module = EmuModule(source, sigs, asan=self.asan, rendered=saved.decode() if saved else None,
                               check=self.check, kernel_sources=[k.source for k in program.kernels])
        except EmuCompileError as e:   # a theta bug, shown with the failing source line
            raise BackendError(f"emu could not build this program's kernels:\n{e}") from e
        # per parameter: False for a scalar, else the dtype its pointer takes (ASan launches)
        return [(module, k, tuple(_pointee(p.ctype) for p in k.params)) for k in program.kernels]

    def launch(self, handle: Any, args: Sequence[int]) -> None:
        module, kernel, pointers = handle
        self.stats["launch"] += 1
        if self.asan:   # the sanitized launch copies each allocation into an exactly sized one
            args = [a if p is False else self._region(a, p) for a, p in zip(args, pointers)]
        try:
            if self.check:
                self._launch_schedules(module, kernel, args, pointers)
            else:
                module.launch(kernel.name, kernel.grid, kernel.block, args, kernel.shared_bytes)
        except EmuLaunchError as e:
            raise BackendError(f"kernel {kernel.name} ({kernel.family}) failed on emu: {e}") from e

    def _launch_schedules(self, module: EmuModule, kernel, args: Sequence, pointers: tuple) -> None:
        """Run the launch once per schedule from the same memory; every run must leave the memory
        the kernel may write (the allocations its non-const pointers point into) the same."""
        writable = {}
        for a, p, param in zip(args, pointers, kernel.params):
            if p is not False and a is not None and "const" not in param.ctype.split("*")[0].split():
                if isinstance(a, tuple):   # (allocation, offset): an ASan launch
                    array = a[0].view(np.uint8)
                elif a:
                    array, _ = self._region(a, None)
                else:
                    continue
                writable[array.ctypes.data] = (array, p)
        regions = list(writable.values())
        before = [array.copy() for array, _ in regions]
        first = None
        self._launches += 1
        # ASan launches run in a child process each: one schedule there (the shadows still check)
        for schedule in self.SCHEDULES[:1] if self.asan else self.SCHEDULES:
            if first is not None:
                for (array, _), saved in zip(regions, before):
                    np.copyto(array, saved)
            module.launch(kernel.name, kernel.grid, kernel.block, args, kernel.shared_bytes,
                          schedule=schedule, seed=self._launches)
            after = [array.copy() for array, _ in regions]
            if first is None:
                first = after
                continue
            for k, ((array, dtype), want, got) in enumerate(zip(regions, first, after)):
                if not np.array_equal(want, got) and not _rounding_only(kernel, dtype, want, got):
                    raise EmuLaunchError(_schedule_report(kernel, schedule, dtype, want, got))

    def _region(self, address: int, dtype) -> tuple:
        """(allocation seen as ``dtype``, byte offset) of an address inside a live allocation."""
        starts = sorted(self._live)
        i = bisect.bisect_right(starts, address) - 1
        if i < 0 or address >= starts[i] + max(self._live[starts[i]].nbytes, 1):
            raise BackendError(f"a kernel argument points at {address:#x}, outside every live emu allocation")
        array = self._live[starts[i]]
        if dtype is not None:
            array = array[:array.nbytes - array.nbytes % dtype.itemsize].view(dtype)
        return array, address - starts[i]

    def synchronize(self) -> None:
        pass   # launches and copies complete before they return

    # the copy stream of runtime/prefetch.py: emu copies are complete when they return
    def pinned(self, nbytes: int) -> np.ndarray:
        return np.empty(nbytes, np.uint8)

    upload_async = upload

    def copies_done(self) -> None:
        return None

    def order_after(self, event) -> None:
        pass

    wait = order_after

    def drain_copies(self) -> None:
        pass


class _Status:
    """A status word in host memory: the kernels write it, the host reads it directly."""

    def __init__(self, block: _Block) -> None:
        self.block, self.ptr = block, block.address
        self.word = block.array.view(np.int32)

    def reset(self) -> None:
        self.word[0] = 0

    def read(self) -> int:
        return int(self.word[0])


_SCHEDULE_NAMES = {1: "in reverse order", 2: "in a shuffled order"}


def _rounding_only(kernel, dtype, want: np.ndarray, got: np.ndarray) -> bool:
    """Float atomics accumulate in whatever order threads come: with cancellation the results
    may differ by far more than an ulp, so float outputs of such kernels are not compared."""
    return dtype is not None and dtype.kind == "f" and "atomicAdd" in kernel.source


def _schedule_report(kernel, schedule: int, dtype, want: np.ndarray, got: np.ndarray) -> str:
    byte = int(np.flatnonzero(want != got)[0])
    item = dtype.itemsize if dtype is not None else 1
    index = byte // item
    if dtype is not None:
        w = want[index * item:(index + 1) * item].view(dtype)[0]
        g = got[index * item:(index + 1) * item].view(dtype)[0]
        values = f"{w!r} with its threads in order, {g!r} with them {_SCHEDULE_NAMES[schedule]}"
    else:
        values = f"byte {byte} differs"
    return (f"the result depends on the order of the threads (a race): element {index} of an output of "
            f"{kernel.name} is {values}")


def _pointee(ctype: str):
    spec = _arg_spec(ctype)
    return spec.dtype if spec.pointer else False


_devices: dict[tuple, EmuDevice] = {}


def device(asan: bool = False, check: bool = False) -> EmuDevice:
    """The process's emu device (plain, with AddressSanitizer, in checking mode)."""
    with _LOCK:
        key = (bool(asan), bool(check))
        if key not in _devices:
            _devices[key] = EmuDevice(*key)
        return _devices[key]

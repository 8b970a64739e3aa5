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

    def __init__(self, asan: bool = False) -> None:
        self.name = "emu-asan" if asan else "emu"   # resident copies are kept per device name
        self.asan = asan
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
            module = EmuModule(source, sigs, asan=self.asan, rendered=saved.decode() if saved else None)
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
            module.launch(kernel.name, kernel.grid, kernel.block, args, kernel.shared_bytes)
        except EmuLaunchError as e:
            raise BackendError(f"kernel {kernel.name} ({kernel.family}) failed on emu: {e}") from e

    def _region(self, address: int, dtype) -> tuple:
        """(allocation seen as ``dtype``, byte offset) of an address inside a live allocation."""
        starts = sorted(self._live)
        i = bisect.bisect_right(starts, address) - 1
        if i < 0 or address > starts[i] + self._live[starts[i]].nbytes:
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


def _pointee(ctype: str):
    spec = _arg_spec(ctype)
    return spec.dtype if spec.pointer else False


_devices: dict[bool, EmuDevice] = {}


def device(asan: bool = False) -> EmuDevice:
    """The process's emu device (one plain, one with AddressSanitizer)."""
    with _LOCK:
        if asan not in _devices:
            _devices[asan] = EmuDevice(asan)
        return _devices[asan]

"""The device interface the executor runs Programs over, and arrays that live on a device.

A device is what differs between running a Program on a GPU (runtime/cuda.py, pycuda) and on
the CPU (runtime/emu.py, the same CUDA C compiled by g++): memory, copies, a fill, loading
kernels and launching them, and an ordering point (``synchronize``). Everything that decides
*what* runs *when* — binding buffers, the arena, launch order, the status word, updates, outputs
— is runtime/executor.py, written once and tested on every machine.

Addresses are plain ints on every device (on emu, host addresses of numpy buffers), so the
executor resolves each kernel argument to an int once and patches only what changes per call.

Every device counts what it does (``stats``): tests assert through it that a training step
allocates nothing after its first call and downloads only the outputs it returns.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Protocol, Sequence

import numpy as np


class Device(Protocol):
    """What the executor needs of a device. ``name`` is the backend name ("emu", "cuda")."""

    name: str
    lock: Any                         # a reentrant lock: one step at a time (with any device context current)
    stats: collections.Counter        # alloc, free, upload, download, copy, fill, launch
    separate_temps: bool              # give every temporary its own allocation (sanitizers)

    def alloc(self, nbytes: int) -> Any:
        """A block of device memory: ``int(block)`` is its address; dropping it frees it."""

    def upload(self, dst: int, host: np.ndarray) -> None:
        """Copy a C-contiguous host array to address ``dst`` (complete before the next launch)."""

    def download(self, host: np.ndarray, src: int) -> None:
        """Copy ``host.nbytes`` bytes from ``src`` into the C-contiguous ``host`` (synchronous)."""

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        """Device-to-device copy, ordered after earlier launches."""

    def status_word(self) -> "StatusWord":
        """A fresh status word: kernels report bad input there (``theta_report``)."""

    def load(self, program) -> Sequence[Any]:
        """Load a Program's kernels; one launch handle per kernel, in program order."""

    def launch(self, handle: Any, args: Sequence[int]) -> None:
        """Launch one kernel (grid, block and argument packing were fixed by ``load``)."""

    def synchronize(self) -> None:
        """Wait until every launch and copy issued so far has completed."""


class StatusWord(Protocol):
    """The int32 a Program's kernels report bad input in: ``ptr`` is passed to them, ``reset``
    clears it before a step's launches, ``read`` returns it once they have completed."""

    ptr: int

    def reset(self) -> None: ...

    def read(self) -> int: ...


class DeviceArray:
    """A C-contiguous array in a device's memory: a shared variable's resident copy, an input
    uploaded once, an output left on the device. ``dirty``: newer than its host copy."""

    def __init__(self, device: Device, shape: Sequence[int], dtype, block: Any = None) -> None:
        self.device = device
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        self.block = block if block is not None else device.alloc(self.nbytes)
        self.dirty = False
        self.ready = None   # the device's event of a copy still writing this array (prefetch)

    @property
    def backend(self) -> str:
        return self.device.name

    @property
    def ptr(self) -> int:
        return int(self.block)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @classmethod
    def from_host(cls, device: Device, array) -> "DeviceArray":
        host = np.asarray(array)
        if not host.dtype.isnative:
            host = host.astype(host.dtype.newbyteorder("="))
        host = np.ascontiguousarray(host) if host.ndim else host.reshape(())
        out = cls(device, host.shape, host.dtype)
        if out.nbytes:
            with device.lock:
                device.upload(out.ptr, host)
        return out

    @property
    def __cuda_array_interface__(self) -> dict:
        if not getattr(self.device, "exports_cuda_array_interface", False):
            raise AttributeError(f"an array on {self.device.name} is not in GPU memory")
        # v3 'stream': None means the data may be read right away; while a prefetch copy is in
        # flight, the stream to synchronize with
        stream = self.device.pending_stream(self.ready) if self.ready is not None else None
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr if self.nbytes else 0, False),
                "version": 3, "strides": None, "stream": stream}

    def get(self) -> np.ndarray:
        """A host copy (waits for the launches that write this array)."""
        host = np.empty(self.shape, self.dtype)
        if self.nbytes:
            with self.device.lock:
                if self.ready is not None:
                    self.device.order_after(self.ready)
                self.device.synchronize()
                self.device.download(host, self.ptr)
        return host

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a DeviceArray cannot be seen as a NumPy array without a copy")
        a = self.get()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"DeviceArray({self.dtype}{list(self.shape)}, on {self.device.name})"


# kernel parameter C type -> struct format character (native mode: aligned as C aligns them)
_FORMATS = {"long long": "q", "int": "i", "unsigned int": "I", "float": "f", "double": "d",
            "unsigned long long": "Q", "short": "h", "unsigned short": "H", "signed char": "b",
            "unsigned char": "B", "bool": "?"}


def struct_format(params) -> str:
    """The ``struct`` format packing a kernel's parameters as the CUDA launch API expects them
    (pointers and scalars at their C alignment; theta's kernels take nothing else)."""
    chars = []
    for p in params:
        base = " ".join(p.ctype.replace("const", " ").split())
        if "*" in p.ctype:
            chars.append("P")
        elif base in _FORMATS:
            chars.append(_FORMATS[base])
        else:
            from ..compiler.errors import BackendError
            raise BackendError(f"no launch format for the parameter type {p.ctype!r}")
    return "".join(chars)


class Resident:
    """A value that stays on a device between calls (a loaded function's state; shared
    variables do the same in compiler/shared.py): uploaded on first use, updated there in place,
    downloaded only when read."""

    def __init__(self, value: np.ndarray) -> None:
        self._host = np.array(value, copy=True)
        self._copies: dict = {}   # device name -> DeviceArray

    def device_value(self, backend: str, upload) -> DeviceArray:
        copy = self._copies.get(backend)
        if copy is None:
            copy = self._copies[backend] = upload(self._host)
        return copy

    def device_written(self, backend: str) -> None:
        copy = self._copies.get(backend)
        if copy is None:   # replaced by set() during the step: the new value wins
            return
        copy.dirty = True
        self._copies = {backend: copy}

    def get(self) -> np.ndarray:
        for copy in self._copies.values():
            if copy.dirty:
                self._host, copy.dirty = copy.get(), False
        return self._host.copy()

    def set(self, value: np.ndarray) -> None:
        self._host, self._copies = np.array(value, copy=True), {}

    @property
    def dtype(self) -> np.dtype:
        return self._host.dtype

    @property
    def shape(self) -> tuple:
        return self._host.shape


def interface_pointer(iface: dict, spec) -> int:
    """The address in a ``__cuda_array_interface__`` dict, checked against the program leaf
    ``spec`` (dtype, shape, C-contiguity; a masked array is refused)."""
    from ..compiler.errors import DTypeError, ShapeError
    got = np.dtype(iface["typestr"])
    if got.name != spec.dtype or not got.isnative:
        raise DTypeError(f"device input {spec.name} has dtype {got.str}, the program needs {spec.dtype}")
    if tuple(iface["shape"]) != tuple(spec.shape):
        raise ShapeError(f"device input {spec.name} has shape {tuple(iface['shape'])}, the program "
                         f"needs {tuple(spec.shape)}")
    if iface.get("mask") is not None:
        raise DTypeError(f"device input {spec.name} is a masked array")
    strides = iface.get("strides")
    if strides is not None and all(spec.shape):
        acc = got.itemsize
        for d, s in zip(reversed(tuple(spec.shape)), reversed(tuple(strides))):
            if d != 1 and s != acc:   # a dim of length 1 may have any stride
                raise ShapeError(f"device input {spec.name} is not C-contiguous (strides {tuple(strides)})")
            acc *= d
    return int(iface["data"][0] or 0)

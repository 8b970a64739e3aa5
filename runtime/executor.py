"""The executor: runs a Program over a Device (runtime/device.py), the same code for every device.

At construction it loads the kernels, allocates everything a step needs once (the arena of
temporaries, constants, output buffers, the status word) and resolves every kernel argument
that cannot change to an address, so a launch only patches what does change between calls:
the addresses of inputs passed by the caller, dynamic offsets (a minibatch start) and runtime
scalars. A call then:

1. binds the leaves: a shared variable's resident copy (uploaded on first use, updated in place
   afterwards), a device array read in place, or a host array uploaded into a staging buffer
   allocated on the first call;
2. launches the kernels in program order;
3. waits, and raises what a kernel reported in the status word (an index out of range) before
   any update shows: kernels that update a shared variable in place are guarded by the status
   word and leave it untouched once an earlier kernel reported (see compiler/schedule.py);
4. reads the outputs back (or leaves them on the device);
5. applies the updates the compiler could not write in place (a read-after-write hazard) as
   device-to-device copies, then marks every updated variable's resident copy as newer than
   its host copy.

After its first call a step allocates no device memory, and it downloads only the outputs it
returns. One step runs at a time per device (``device.lock``): calls from several threads are
serialized, so they give the results of some serial order.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..compiler.errors import BackendError, DTypeError, ShapeError, SizeError
from ..compiler.program import Program, raise_status
from ..compiler.program_check import c_strides
from .device import Device, DeviceArray


class Executor:
    def __init__(self, program: Program, device: Device, relocatable: bool = False) -> None:
        """``relocatable``: a loop's step, whose outputs are written where ``issue_step`` says
        (rows of the outer stacked outputs) instead of into buffers of its own."""
        self.program, self.device = program, device
        self.relocatable = relocatable
        self.n_outputs = len(program.outputs) - program.n_updates
        self._item = [np.dtype(b.dtype).itemsize for b in program.buffers]
        self._leaf_buffer = {b.slot: b.index for b in program.buffers if b.kind in ("input", "shared")}
        with device.lock:
            self.handles = device.load(program) if program.kernels else []
            self._memory: list[Any] = []   # every block this executor owns, alive as long as it is
            try:
                self._fixed = self._allocate_fixed()
            except MemoryError as e:
                if isinstance(e, SizeError):
                    raise
                need = sum(b.nbytes for b in program.buffers if b.kind in ("const", "output")) + program.arena_bytes
                raise SizeError(f"this program needs {need} bytes of device memory for its arena of "
                                f"temporaries ({program.arena_bytes} bytes), constants and outputs; the "
                                f"{device.name} device cannot allocate them ({e})") from e
            uses_status = any(b.kind == "status" for k in program.kernels for b in k.bindings)
            self._status = device.status_word() if uses_status else None
        self._staging: dict[int, DeviceArray] = {}   # leaf slot -> upload buffer for host inputs
        status_ptr = self._status.ptr if self._status is not None else 0
        self._launches = [self._plan_launch(k, h, status_ptr) for k, h in zip(program.kernels, self.handles)]
        self._copies = self._plan_update_copies()
        from .loop import LoopRunner
        with device.lock:
            self._loops = [LoopRunner(loop, program, device) for loop in program.loops]
        self._order = ([("kernel", self._launches[i]) if kind == "kernel" else ("loop", self._loops[i])
                        for kind, i in program.schedule] or [("kernel", plan) for plan in self._launches])
        self._placed = self._plan_relocation() if relocatable else {}
        if program.guard:   # compiled with nan_guard=True: check items around kernels (runtime/nan_guard.py)
            from .nan_guard import guarded_order
            self._order = guarded_order(self, self._order)
        # leaves nothing reads (an index only the minibatch start was computed from) are not bound
        read = {b.ref.buffer for k in program.kernels for b in k.bindings if b.kind == "ptr"}
        read |= {o.ref.buffer for o in program.outputs}
        for loop in program.loops:
            refs = [s[0] for s in loop.seqs] + loop.initial + loop.nonseqs + [r for r, _ in loop.outputs if r]
            read |= {r.buffer for r in refs}
        self._bound = [slot for slot, buf in sorted(self._leaf_buffer.items())
                       if buf in read or slot in program.update_targets]

    # -- construction ---------------------------------------------------------------------------
    def _allocate_fixed(self) -> list:
        """The address of every buffer that is the same on every call (None for leaves)."""
        prog, dev = self.program, self.device
        consts = [DeviceArray.from_host(dev, c) for c in prog.constants]
        self._memory += consts
        arena = None
        if prog.arena_bytes and not dev.separate_temps:
            arena = dev.alloc(prog.arena_bytes)
            self._memory.append(arena)
        fixed: list = []
        for buf in prog.buffers:
            if buf.kind in ("input", "shared"):
                fixed.append(None)
            elif buf.kind == "const":
                fixed.append(consts[buf.slot].ptr)
            elif buf.kind == "temp" and arena is not None:
                fixed.append(int(arena) + buf.arena_offset)
            elif buf.kind == "output" and self.relocatable:
                fixed.append(None)   # a step's output: a row of the outer stacked output, per step
            else:   # an output (read back after the step), or a temporary of its own
                block = dev.alloc(max(buf.nbytes, 1))
                self._memory.append(block)
                fixed.append(int(block))
        return fixed

    def _plan_launch(self, kernel, handle, status_ptr: int) -> tuple:
        """(handle, argument template, patches): the template holds every argument that never
        changes; a patch (position, buffer, byte offset, ((scalar slot, bytes per unit), ...))
        is an address resolved per call, (position, -1, slot, ()) a runtime scalar."""
        args: list = []
        patches: list = []
        for j, b in enumerate(kernel.bindings):
            if b.kind == "status":
                args.append(status_ptr)
            elif b.kind == "scalar":
                args.append(0)
                patches.append((j, -1, b.slot, ()))
            else:
                ref, item = b.ref, self._item[b.ref.buffer]
                dyn = tuple((slot, coef * item) for slot, coef in ref.dyn)
                base = self._fixed[ref.buffer]
                if base is None or dyn:
                    args.append(0)
                    patches.append((j, ref.buffer, ref.offset * item, dyn))
                else:
                    args.append(base + ref.offset * item)
        return handle, args, patches

    def _plan_update_copies(self) -> list:
        """(target leaf buffer, source output spec) for each update not written in place. A
        source that is itself the target of another update (a swap) is read from a snapshot
        taken before any copy, so every update sees the values of before the step."""
        prog = self.program
        copies = []
        self._copy_targets: list[int] = []   # the leaf each copy writes
        self._reshaped: set[int] = set()      # leaves an update gives a new shape
        targets = {self._leaf_buffer[t] for t in prog.update_targets}
        for k, target in enumerate(prog.update_targets):
            spec = prog.outputs[self.n_outputs + k]
            dst = self._leaf_buffer[target]
            if spec.ref.buffer == dst and spec.ref.offset == 0 and not spec.ref.dyn \
                    and tuple(spec.strides) == c_strides(spec.shape):
                continue   # written in place by the compiler (or W := W)
            snapshot = None
            if spec.ref.buffer in targets:   # the whole source buffer, whatever the view reads of it
                snapshot = self.device.alloc(max(prog.buffers[spec.ref.buffer].nbytes, 1))
                self._memory.append(snapshot)
            copies.append((dst, spec, snapshot))
            self._copy_targets.append(target)
            if tuple(spec.shape) != tuple(prog.leaves[target].shape):
                self._reshaped.add(target)
        return copies

    # -- a call ---------------------------------------------------------------------------------
    def run(self, leaves: Sequence, scalars: Sequence[int], outputs_on_device: bool = False,
            with_updates: bool = False) -> list:
        """The function outputs of one step over ``leaves`` (one value per program leaf: a host
        array, a DeviceArray of this device, a foreign device array, or an object with
        ``device_value`` such as a shared variable) and the runtime ``scalars``; then, with
        ``with_updates``, the updated values as host arrays (a bare program's callers)."""
        prog, dev = self.program, self.device
        if len(leaves) != len(prog.leaves):
            raise BackendError(f"program takes {len(prog.leaves)} leaf values, got {len(leaves)}")
        if len(scalars) != len(prog.scalars):
            raise BackendError(f"program takes {len(prog.scalars)} runtime scalars, got {len(scalars)}")
        scalars = [int(s) for s in scalars]
        with dev.lock:
            # everything bound stays referenced until the step is over: a set_value on another
            # thread may drop a variable's resident copy while kernels still write it
            keep: list = []
            base = list(self._fixed)
            for slot in self._bound:
                private = with_updates and slot in prog.update_targets   # never the caller's array
                base[self._leaf_buffer[slot]] = self._bind_leaf(slot, leaves[slot], keep, private)
            for target in self._reshaped:   # all or nothing: refuse before any update is written
                check = getattr(leaves[target], "check_update_shape", None)
                if check is not None:
                    check(tuple(prog.outputs[self.n_outputs + prog.update_targets.index(target)].shape))
            self.reset_status()
            try:
                self._issue(base, scalars)
            except BaseException:
                self._mark_written(leaves)   # kernels may have updated state in place before failing
                raise
            finally:
                dev.synchronize()   # nothing in flight may read `keep` or be left half-done
            self.check_status()   # before any update shows
            outs = [self._output(spec, base, scalars, outputs_on_device) for spec in prog.outputs[:self.n_outputs]]
            self._apply_updates(base, scalars, leaves)
            if self._copies or outputs_on_device:
                dev.synchronize()   # copies complete before the arrays are seen
            if with_updates:
                for target in prog.update_targets:
                    spec = prog.leaves[target]
                    host = np.empty(spec.shape, spec.dtype)
                    if host.nbytes:
                        dev.download(host, base[self._leaf_buffer[target]])
                    outs.append(host)
        return outs

    def _issue(self, base: list, scalars: list) -> None:
        """Queue the launches (and loops) in program order, patching what changes per call."""
        dev = self.device
        for kind, item in self._order:
            if kind == "loop":
                item.issue(self, base, scalars)
                continue
            if kind == "check":   # the NaN guard's, only in a Program compiled with it
                item(base, scalars)
                continue
            handle, args, patches = item
            if patches:
                args = list(args)
                for j, buf, offset, dyn in patches:
                    if buf < 0:
                        args[j] = scalars[offset]
                        continue
                    address = base[buf] + offset
                    for slot, unit in dyn:
                        address += scalars[slot] * unit
                    args[j] = address
            dev.launch(handle, args)

    def reset_status(self) -> None:
        """Clear the status words (this program's and its loops' steps'), once per run."""
        if self._status is not None:
            self._status.reset()
        for loop in self._loops:
            loop.step.reset_status()

    def check_status(self) -> None:
        """Raise what a kernel reported (after the launches completed), nested loops included."""
        if self._status is not None:
            raise_status(self.program, self._status.read())
        for loop in self._loops:
            loop.check_status()

    # -- a loop's step --------------------------------------------------------------------------
    def _plan_relocation(self) -> dict:
        """output index -> its buffer, for the outputs a step writes straight into the outer row
        (the first dense output of each buffer); the others are copied there after the step."""
        placed, taken = {}, set()
        for k, spec in enumerate(self.program.outputs):
            buf = self.program.buffers[spec.ref.buffer]
            if buf.kind == "output" and spec.ref.offset == 0 and not spec.ref.dyn and buf.index not in taken \
                    and tuple(spec.strides) == c_strides(spec.shape) \
                    and math.prod(spec.shape) == buf.size:   # the whole buffer, not a prefix view of it
                placed[k] = buf.index
                taken.add(buf.index)
        return placed

    def issue_step(self, leaf_addresses: Sequence[int], output_addresses: Sequence[int]) -> None:
        """Queue one step of a loop: leaves and outputs at the given device addresses."""
        base = list(self._fixed)
        for slot, address in enumerate(leaf_addresses):
            base[self._leaf_buffer[slot]] = address
        for k, buf in self._placed.items():
            base[buf] = output_addresses[k]
        for buf, value in enumerate(base):   # an output another output's copy reads (rare): a fixed home
            if value is None:
                base[buf] = self._home(buf)
        self._issue(base, [])
        for k, spec in enumerate(self.program.outputs):
            if k in self._placed:
                continue
            nbytes = math.prod(spec.shape) * np.dtype(spec.dtype).itemsize
            address = self._address(spec.ref, base, [])
            if not nbytes or address == output_addresses[k]:
                continue
            if tuple(spec.strides) == c_strides(spec.shape):
                self.device.copy(output_addresses[k], address, nbytes)
            else:
                self.device.upload(output_addresses[k], self._strided(spec, address))

    def _home(self, buf: int) -> int:
        homes = self.__dict__.setdefault("_homes", {})
        if buf not in homes:
            homes[buf] = self.device.alloc(max(self.program.buffers[buf].nbytes, 1))
        return int(homes[buf])

    def address(self, ref, base: list, scalars: list) -> int:
        return self._address(ref, base, scalars)

    def _bind_leaf(self, slot: int, value, keep: list, private: bool = False) -> int:
        """The address the kernels use for leaf ``slot``; ``private``: a copy of the caller's
        value (a leaf the step updates in place, when the caller gets the new value back)."""
        spec, dev = self.program.leaves[slot], self.device
        if hasattr(value, "device_value"):   # a shared variable or loaded state: its resident copy
            value = value.device_value(dev.name, lambda host: DeviceArray.from_host(dev, host))
        value = getattr(value, "wrapped", value)   # theta.function's wrapper of device arguments
        keep.append(value)
        ptr = None
        if isinstance(value, DeviceArray) and value.device is dev:
            _check(spec, value.dtype, value.shape, "device array")
            if value.ready is not None:   # a prefetched batch: its copy before our launches
                dev.order_after(value.ready)
            ptr = value.ptr
        else:
            foreign = getattr(dev, "foreign_pointer", None)
            ptr = foreign(value, spec) if foreign is not None else None
        if ptr is not None and not private:
            return ptr
        if ptr is not None:
            stage = self._stage(slot)
            if stage.nbytes:
                dev.copy(stage.ptr, ptr, stage.nbytes)
            return stage.ptr
        host = np.asarray(value, dtype=spec.dtype, order="C")   # (ascontiguousarray makes 0-d 1-d)
        _check(spec, host.dtype, host.shape, "array")
        stage = self._stage(slot)
        if host.nbytes:
            dev.upload(stage.ptr, host)
            keep.append(host)
        return stage.ptr

    def _stage(self, slot: int) -> DeviceArray:
        """The executor's own buffer for leaf ``slot`` (allocated on first use)."""
        stage = self._staging.get(slot)
        if stage is None:
            spec = self.program.leaves[slot]
            stage = self._staging[slot] = DeviceArray(self.device, spec.shape, spec.dtype)
        return stage

    def _address(self, ref, base: list, scalars: list) -> int:
        return base[ref.buffer] + (ref.offset + sum(scalars[s] * c for s, c in ref.dyn)) * self._item[ref.buffer]

    def _output(self, spec, base: list, scalars: list, on_device: bool):
        """Output ``spec`` as a fresh host array (or a fresh DeviceArray when ``on_device``)."""
        dev, address = self.device, self._address(spec.ref, base, scalars)
        dense = tuple(spec.strides) == c_strides(spec.shape)
        if on_device and dense:
            out = DeviceArray(dev, spec.shape, spec.dtype)
            if out.nbytes:
                dev.copy(out.ptr, address, out.nbytes)
            return out
        if dense:
            host = np.empty(spec.shape, spec.dtype)
            if host.nbytes:
                dev.download(host, address)
            return host
        return self._strided(spec, address)

    def _strided(self, spec, address: int) -> np.ndarray:
        """A view with any strides (negative, 0): the span it touches comes home in one copy."""
        item = np.dtype(spec.dtype).itemsize
        if not all(spec.shape):
            return np.empty(spec.shape, spec.dtype)
        lo = sum(s * (d - 1) for s, d in zip(spec.strides, spec.shape) if s < 0)
        hi = sum(s * (d - 1) for s, d in zip(spec.strides, spec.shape) if s > 0)
        span = np.empty(hi - lo + 1, dtype=spec.dtype)
        self.device.download(span, address + lo * item)
        view = np.lib.stride_tricks.as_strided(span[-lo:], shape=spec.shape,
                                               strides=tuple(s * item for s in spec.strides), writeable=False)
        return np.array(view, copy=True, order="C")

    def _apply_updates(self, base: list, scalars: list, leaves: Sequence) -> None:
        dev, prog = self.device, self.program
        sources = []
        for dst, spec, snapshot in self._copies:
            address = self._address(spec.ref, base, scalars)
            if snapshot is not None:   # read the source's values of before the step
                start = base[spec.ref.buffer]
                dev.copy(int(snapshot), start, prog.buffers[spec.ref.buffer].nbytes)
                address = int(snapshot) + (address - start)
            sources.append(address)
        for (dst, spec, _), address, target in zip(self._copies, sources, self._copy_targets):
            nbytes = math.prod(spec.shape) * np.dtype(spec.dtype).itemsize
            into = base[dst]
            if target in self._reshaped:
                # the update changes the variable's shape (Theano allows it): a new device value,
                # and the next call compiles for the new shape
                fresh = DeviceArray(dev, spec.shape, spec.dtype)
                replace = getattr(leaves[target], "set_device_value", None)
                if replace is None:
                    raise BackendError(f"an update changes the shape of {prog.leaves[target].name} from "
                                       f"{tuple(prog.leaves[target].shape)} to {tuple(spec.shape)}")
                replace(dev.name, fresh)
                into = fresh.ptr
            if not nbytes:
                continue
            if tuple(spec.strides) == c_strides(spec.shape):
                dev.copy(into, address, nbytes)
            else:   # an update that is a strided view (W.T): rare, staged through the host
                dev.upload(into, self._strided(spec, address))
        self._mark_written(leaves, skip=self._reshaped)

    def _mark_written(self, leaves: Sequence, skip: frozenset = frozenset()) -> None:
        """Tell each updated variable its device copy is now newer than its host copy."""
        for target in self.program.update_targets:
            if target in skip:   # given a new device value instead
                continue
            written = getattr(leaves[target], "device_written", None)
            if written is not None:
                written(self.device.name)


def _check(spec, dtype, shape, what: str) -> None:
    if np.dtype(dtype).name != spec.dtype:
        raise DTypeError(f"{what} for {spec.name} has dtype {np.dtype(dtype).name}, the program needs {spec.dtype}")
    if tuple(shape) != tuple(spec.shape):
        raise ShapeError(f"{what} for {spec.name} has shape {tuple(shape)}, the program needs {tuple(spec.shape)}")


"""Double-buffered upload of host minibatches to a device, overlapping the steps that use them.

Batch i+1 is staged in pinned memory and copied on the device's copy stream while the caller
runs its step on batch i. Each yielded DeviceArray carries a ``ready`` event that the compute
stream waits for (on the device) before reading it. On emu, copies complete when issued and the
events are None: the same code runs, without overlap.

Two pinned staging buffers per array name are reused round-robin (allocating and freeing
page-locked memory per batch is slow, and freeing it synchronizes the device); a buffer is
refilled only after the copy that last read it has completed, and a batch's device memory is
only handed back once its copy is known to be complete.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from .device import DeviceArray


def prefetch_to_device(batches: Iterable[dict], device) -> Iterator[dict]:
    rings: dict[str, list] = {}   # name -> two slots [pinned uint8 buffer, event of its last copy]
    end = object()

    def staging(name: str, host: np.ndarray, turn: int) -> tuple[np.ndarray, list]:
        ring = rings.setdefault(name, [None, None])
        slot = ring[turn % 2]
        if slot is not None and slot[1] is not None:
            device.wait(slot[1])   # the copy that last read this buffer is done
        if slot is None or slot[0].nbytes < host.nbytes:
            slot = ring[turn % 2] = [device.pinned(host.nbytes), None]
        return slot[0][:host.nbytes].view(host.dtype).reshape(host.shape), slot

    def stage(batch: dict, turn: int) -> dict:
        out, used = {}, []
        with device.lock:
            for name, value in batch.items():
                host = np.asarray(value)
                if not host.dtype.isnative:
                    host = host.astype(host.dtype.newbyteorder("="))
                dev = DeviceArray(device, host.shape, host.dtype)
                if dev.nbytes:
                    pinned, slot = staging(name, host, turn)
                    np.copyto(pinned, host)
                    device.upload_async(dev.ptr, pinned)
                    used.append((dev, slot))
                out[name] = dev
            if used:
                ready = device.copies_done()   # after every copy of this batch
                for dev, slot in used:
                    slot[1] = dev.ready = ready
        return out

    it = iter(batches)
    try:
        turn = 0
        first = next(it, end)
        staged = stage(first, turn) if first is not end else None
        while staged is not None:
            current = staged
            turn += 1
            nxt = next(it, end)
            staged = stage(nxt, turn) if nxt is not end else None   # overlaps the caller's step
            yield current
            # The caller ran its step on `current`; wait for its copy here too, so that dropping
            # the batch, used or not, never hands memory a copy still writes back to the pool.
            for dev in current.values():
                if dev.ready is not None:
                    device.wait(dev.ready)
                    dev.ready = None
    finally:
        try:
            device.drain_copies()   # no copy may outlive the staging buffers
        except Exception:
            pass
        close = getattr(it, "close", None)
        if close is not None:
            close()   # stop the source's producer thread when the consumer stops early

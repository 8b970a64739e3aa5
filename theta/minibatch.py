"""Minibatching.

``Minibatches`` holds a dataset (a dict of arrays with a common first dimension) in one of two
ways, with the same iteration protocol on every backend:

- *resident* (the dataset fits in device memory): the arrays live in shared variables, so on
  the cuda backend they are uploaded once; a minibatch is a symbolic slice
  ``data[i*bs:(i+1)*bs]`` given to a compiled function through ``givens`` (Theano's pattern),
  which the compiler turns into a pointer offset: no copy. ``epoch()`` shuffles the rows in
  place with a theta function (a gather on the device) and yields batch indices.
- *streamed* (it does not fit): ``epoch()`` yields host batches (a dict of arrays); a
  background thread assembles the next batch while the current step runs (on the cuda
  backend the copy goes through pinned buffers on a second stream, see runtime.prefetch).

Shuffles are reproducible: epoch e of seed s always visits the same order, and every example
appears exactly once per epoch (a smaller last batch unless ``drop_last``).
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator, Mapping

import numpy as np

from .compiler.errors import InputError, ShapeError


class Minibatches:
    def __init__(self, arrays: Mapping[str, np.ndarray], batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, resident: bool | str = "auto", backend: str | None = None,
                 prefetch: int = 2) -> None:
        if not arrays:
            raise InputError("Minibatches needs at least one array")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        lengths = {k: len(v) for k, v in self.arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ShapeError(f"Minibatches: arrays have different lengths: {lengths}")
        self.n = next(iter(lengths.values()))
        if self.n == 0:
            raise ShapeError("Minibatches: the dataset is empty")
        self.batch_size = int(batch_size)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.backend = backend
        self.prefetch = prefetch
        self.epochs_done = 0
        self.order = np.arange(self.n)   # row k of the (shuffled) data is example order[k]
        self.resident = self._fits() if resident == "auto" else bool(resident)
        self.shared = {}
        if self.resident:
            import theta
            self.shared = {k: theta.shared(v, name=k) for k, v in self.arrays.items()}
            self._permute = None

    # -- sizes -------------------------------------------------------------------------------
    @property
    def n_batches(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batch_length(self, i: int) -> int:
        return min(self.batch_size, self.n - i * self.batch_size)

    def _fits(self) -> bool:
        from .runtime.backends import resolve
        if resolve(self.backend or _config_backend()) != "cuda":
            return True
        from .runtime.cuda import free_device_memory
        need = sum(a.nbytes for a in self.arrays.values())
        return need <= 0.5 * free_device_memory()

    # -- resident mode ----------------------------------------------------------------------------
    def givens(self, variables: Mapping, index):
        """``{var: shared[name][index*bs:(index+1)*bs]}`` for theta.function(givens=...);
        ``variables`` maps symbolic variables to array names."""
        if not self.resident:
            raise InputError("givens= needs a resident dataset; this one is streamed: pass batches as inputs")
        bs = self.batch_size
        out = {}
        for var, name in variables.items():
            if name not in self.shared:
                raise InputError(f"no array named {name!r}; known: {', '.join(self.shared)}")
            out[var] = self.shared[name][index * bs:(index + 1) * bs]
        return out

    def _shuffle_resident(self, perm: np.ndarray) -> None:
        if self._permute is None:
            import theta
            import theta.tensor as T
            p = T.lvector("perm")
            self._permute = theta.function([p], [], updates=[(s, s[p]) for s in self.shared.values()],
                                           backend=self.backend, name="shuffle")
        self._permute(perm)

    # -- position (checkpoints) -------------------------------------------------------------------
    def position(self) -> dict:
        """Where the iteration stands: epochs done and the current order of the rows."""
        return {"epochs_done": self.epochs_done, "order": self.order.copy()}

    def restore(self, position: Mapping) -> None:
        """Continue from ``position()`` of an earlier run over the same arrays (a resident
        dataset's shared copies are put back in that order)."""
        order = np.asarray(position["order"], dtype=np.int64)
        if order.shape != (self.n,) or not np.array_equal(np.sort(order), np.arange(self.n)):
            raise InputError(f"Minibatches.restore: the saved order is not a permutation of {self.n} rows")
        self.epochs_done, self.order = int(position["epochs_done"]), order
        for name, var in self.shared.items():
            var.set_value(self.arrays[name][order])

    # -- iteration -------------------------------------------------------------------------------
    def permutation(self, epoch: int) -> np.ndarray:
        """The row permutation applied at the start of ``epoch`` (reproducible)."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def epoch(self) -> Iterator:
        """One pass over the data: batch indices (resident) or dicts of host arrays (streamed)."""
        epoch = self.epochs_done
        self.epochs_done += 1
        if self.shuffle:
            perm = self.permutation(epoch)
            self.order = self.order[perm]
            if self.resident:
                self._shuffle_resident(perm)
        if self.resident:
            return iter(range(self.n_batches))
        host_batches = self._stream(self.order.copy())
        from .runtime.backends import resolve
        if resolve(self.backend or _config_backend()) == "cuda":
            from .cuda import device
            from .prefetch import prefetch_to_device
            return prefetch_to_device(host_batches, device())
        return host_batches

    def __iter__(self) -> Iterator:
        return self.epoch()

    def _stream(self, order: np.ndarray) -> Iterator[dict]:
        """Host batches, assembled by a background thread ``prefetch`` batches ahead."""
        q: "queue.Queue" = queue.Queue(maxsize=max(1, self.prefetch))
        stop = threading.Event()
        done = object()

        def put(item) -> bool:
            # Every hand-over (batches, the end marker, an error) waits on a full queue only
            # while the consumer is still there: once it stops early, nothing will ever take
            # the item, and a plain blocking put would leave this thread stuck for good.
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for i in range(self.n_batches):
                    rows = order[i * self.batch_size:i * self.batch_size + self.batch_length(i)]
                    batch = {k: np.take(v, rows, axis=0) for k, v in self.arrays.items()}
                    if not put(batch):
                        return
                put(done)
            except BaseException as e:  # surface errors in the consumer, never hang it
                put(e)

        worker = threading.Thread(target=produce, name="theta-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            # Free the queue so a put blocked on it returns now (not at its next poll); the
            # producer then sees ``stop`` and ends after at most the batch it is assembling.
            while True:
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
            worker.join()


def _config_backend() -> str:
    from .compiler.options import config
    return config.backend

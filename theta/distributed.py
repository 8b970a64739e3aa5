"""Data-parallel training over MPI (mpi4py): ``theta.distributed``::

    import theta.distributed as dist
    world = dist.init()                       # a world of one without mpiexec (or without mpi4py)
    step = dist.DataParallel([x, y], cost, params, optim.sgd, learning_rate=0.1)
    for xb, yb in batches:                    # the same global minibatch on every rank
        step(xb, yb)                          # each rank takes its rows, gradients are averaged

Every rank compiles the same step. It computes the gradient of its shard of the minibatch,
packed by the step's own kernels into one contiguous vector per dtype (a concatenation of the
flattened gradients: one all-reduce per step, not one per parameter), the vectors are averaged
across ranks, and a second compiled function unpacks them (views) and applies the update rule.
N ranks with batch b therefore follow one process with batch N*b, up to float summation order.
Parameters start equal (broadcast from rank 0); random streams are decorrelated per rank.

Low-resolution sharing (Seide et al., 2014; the seeds' "sharing only where needed"): with
``sharing='float16'`` or ``'bfloat16'`` the gradient is rounded before the exchange and the
rounding error is fed back into the next step's gradient (error feedback), halving the bytes;
``local_every=k`` skips the gradient exchange and averages the parameters every k steps
(local SGD). ``bytes_exchanged`` counts what this rank sent.

On the cuda backend the packed gradients stay in device memory. When the MPI library is
CUDA-aware (``MPI.Query_cuda_support()``), the device buffers go to the all-reduce directly
through ``__cuda_array_interface__``; otherwise they are staged through pinned host memory.
Which one is used is said once, on rank 0. On reference and emu the exchange uses host arrays.

Collectives are non-blocking calls polled against a timeout, so a rank that died makes the
others raise ``DistributedError`` instead of hanging.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from .compiler.errors import ThetaError

__all__ = ["init", "rank", "size", "World", "DataParallel", "DistributedError", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 120.0


class DistributedError(ThetaError, RuntimeError):
    """A collective call failed or timed out (another rank died or hangs)."""


class World:
    """The ranks of this job: MPI's ``COMM_WORLD``, or a world of one.

    Every collective (``allreduce``, ``allgather``, ``broadcast``, ``sum``) is non-blocking
    underneath and waits at most ``timeout`` seconds, so a rank that dies makes the others raise
    :class:`DistributedError` instead of hanging.

    Parameters
    ----------
    comm : mpi4py communicator, optional
        None: a world of one (rank 0 of 1).
    timeout : float, optional
        Seconds each collective may take (default 120).
    """

    def __init__(self, comm=None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.comm, self.timeout = comm, timeout
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1

    def _wait(self, request, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not request.Test():
            if time.monotonic() > deadline:
                raise DistributedError(f"rank {self.rank}/{self.size}: {what} did not complete within "
                                       f"{self.timeout:.0f} s: another rank died or stopped calling it")
            time.sleep(0.0005)

    def allreduce(self, buf: np.ndarray) -> np.ndarray:
        """Sum of ``buf`` over the ranks, in place."""
        if self.size == 1:
            return buf
        from mpi4py import MPI
        self._wait(self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM), "an all-reduce")
        return buf

    def allgather(self, buf: np.ndarray) -> np.ndarray:
        """``(size, *buf.shape)``: every rank's ``buf``."""
        out = np.empty((self.size,) + buf.shape, dtype=buf.dtype)
        if self.size == 1:
            out[0] = buf
            return out
        self._wait(self.comm.Iallgather(buf, out), "an all-gather")
        return out

    def broadcast(self, buf: np.ndarray) -> np.ndarray:
        if self.size > 1:
            self._wait(self.comm.Ibcast(buf, root=0), "a broadcast")
        return buf

    def sum(self, value: float) -> float:
        return float(self.allreduce(np.array([value], dtype=np.float64))[0])


_world: World | None = None


def init(timeout: float = DEFAULT_TIMEOUT) -> World:
    """The world of this process, made once: MPI's under ``mpiexec``/``srun`` with mpi4py installed, else a world of one.

    So one script runs both ways. Later calls return the same world.

    Parameters
    ----------
    timeout : float, optional
        Seconds each collective may take before :class:`DistributedError` (default 120).

    Returns
    -------
    World
    """
    global _world
    if _world is None:
        comm = None
        try:
            from mpi4py import MPI
            if MPI.COMM_WORLD.Get_size() > 1:
                comm = MPI.COMM_WORLD
        except ImportError:
            comm = None
        _world = World(comm, timeout)
    return _world


def mpi_cuda_aware() -> bool:
    """Can this MPI library read and write GPU memory (CUDA-aware)? MPI 4.1's query, through
    mpi4py; False where the library cannot say."""
    try:
        from mpi4py import MPI
        return bool(MPI.Query_cuda_support())
    except Exception:   # older mpi4py or MPI: no query, so assume host memory only
        return False


_said: set = set()


def _say_once(world: World, message: str) -> None:
    if world.rank == 0 and message not in _said:
        _said.add(message)
        import sys
        print(f"theta.distributed: {message}", file=sys.stderr, flush=True)


def rank() -> int:
    """This process's rank (0 without MPI).

    Returns
    -------
    int
    """
    return init().rank


def size() -> int:
    """The number of ranks (1 without MPI).

    Returns
    -------
    int
    """
    return init().size


# --------------------------------------------------------------------------- low resolution

def _round(x: np.ndarray, sharing: str) -> np.ndarray:
    """``x`` (float32/64) rounded to the exchange precision, as the 16-bit payload."""
    if sharing == "float16":
        return x.astype(np.float16)
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    # round to nearest even on the 16 bits that stay (NaN/Inf pass through their top bits)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def _widen(payload: np.ndarray, sharing: str, dtype) -> np.ndarray:
    if sharing == "float16":
        return payload.astype(dtype)
    return (payload.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(dtype)


# ------------------------------------------------------------------------------- the step

class DataParallel:
    """A data-parallel training step: gradients averaged over the ranks, the same update everywhere.

    Call ``step(*inputs)`` with the *global* minibatch on every rank: each rank takes rows
    ``rank::size`` of every input with a leading batch axis, computes the gradient of its shard
    (packed by the step's own kernels into one vector per dtype), the vectors are averaged with
    one all-reduce per dtype per step, and a second compiled function applies the update rule to
    the average. N ranks with batch b follow one process with batch N*b. The call returns the cost
    averaged over the ranks. Parameters start as rank 0's; random streams are decorrelated per rank.

    Parameters
    ----------
    inputs : list of Variable
        The step's symbolic inputs (as for :func:`theta.function`).
    cost : scalar Variable
    params : list of SharedVariable
    rule : callable
        An update builder of :mod:`theta.models.optim` (``optim.sgd``, ``optim.adam``...),
        called with the averaged gradients.
    backend : str, optional
    sharing : {'exact', 'float16', 'bfloat16'}, optional
        How gradients travel: exactly, or rounded to half precision with error feedback (half
        the bytes of float32).
    local_every : int, optional
        Local SGD: every rank updates on its own gradient and parameters are averaged every
        ``local_every`` steps.
    world : World, optional
        Default :func:`init`'s.
    **rule_kw
        The rule's hyperparameters (``learning_rate=0.1``...).

    Raises
    ------
    ThetaError
        An unknown ``sharing`` or a bad ``local_every``.
    DistributedError
        A collective failed or timed out.

    Examples
    --------
    >>> import theta.distributed as dist
    >>> from theta.models import optim
    >>> step = dist.DataParallel([x, y], cost, params, optim.sgd, learning_rate=0.1)
    >>> for xb, yb in batches:
    ...     step(xb, yb)
    """

    def __init__(self, inputs: Sequence, cost, params: Sequence, rule: Callable, *, backend: str | None = None,
                 sharing: str = "exact", local_every: int | None = None, world: World | None = None,
                 cuda_aware: bool | None = None, **rule_kw) -> None:
        import theta
        import theta.tensor as T
        if sharing not in ("exact", "float16", "bfloat16"):
            raise ThetaError(f"sharing must be 'exact', 'float16' or 'bfloat16', not {sharing!r}")
        if local_every is not None and (not isinstance(local_every, int) or local_every < 1):
            raise ThetaError(f"local_every must be a positive number of steps, got {local_every!r}")
        self.world = world or init()
        self.params, self.sharing, self.local_every = list(params), sharing, local_every
        self.steps, self.bytes_exchanged = 0, 0
        grads = theta.grad(cost, self.params)
        # one packed vector per dtype, written by the gradient kernels themselves
        self.dtypes = sorted({p.dtype for p in self.params})
        packed = [T.concatenate([g.flatten() for g, p in zip(grads, self.params) if p.dtype == dt]) for dt in self.dtypes]
        from .runtime.backends import resolve
        on_gpu = resolve(backend or theta.config.backend) == "cuda" and self.world.size > 1
        # how the packed gradients reach MPI: host arrays, device buffers, or pinned staging
        self.transport = "host"
        if on_gpu:
            aware = mpi_cuda_aware() if cuda_aware is None else bool(cuda_aware)
            self.transport = "device" if aware and sharing == "exact" else "pinned"
            _say_once(self.world, "MPI is CUDA-aware: gradients go to the all-reduce from device memory"
                      if self.transport == "device" else
                      "MPI is not CUDA-aware (or the sharing is low-resolution): gradients are staged "
                      "through pinned host memory")
        self._grads = theta.function(list(inputs), [cost] + packed, backend=backend, name="dp_gradients",
                                     outputs_on_device=on_gpu)
        self._pinned: dict = {}
        # the update, from the summed vectors (averaged here, in the update's own kernels): each
        # parameter's gradient is a reshaped slice
        vectors = [T.vector(f"grad_{dt}", dtype=dt) for dt in self.dtypes]
        offsets = {dt: 0 for dt in self.dtypes}
        pieces = []
        for p in self.params:
            shape = p.get_value(borrow=True).shape
            n = int(np.prod(shape))
            v = vectors[self.dtypes.index(p.dtype)]
            piece = v[offsets[p.dtype]:offsets[p.dtype] + n].reshape(shape)
            pieces.append(piece / np.asarray(self.world.size, dtype=p.dtype) if self.world.size > 1 else piece)
            offsets[p.dtype] += n
        self._apply = theta.function(vectors, [], updates=rule(pieces, self.params, **rule_kw), backend=backend,
                                     name="dp_update")
        self._residual = [np.zeros(offsets[dt], dtype=dt) for dt in self.dtypes]
        self._sync_start()

    def _sync_start(self) -> None:
        """The same parameters everywhere (rank 0's), and random streams of their own per rank."""
        for p in self.params:
            p.set_value(self.world.broadcast(np.ascontiguousarray(p.get_value())))
        for v in self._grads.shared:
            if getattr(v, "default_update", None) is not None and v.name == "rng_state":
                state = v.get_value()
                key = (int(state[0]) + 0x632BE59BD9B4E019 * self.world.rank) % 2 ** 64
                state[0] = key - 2 ** 64 if key >= 2 ** 63 else key
                v.set_value(state)

    def _host(self, vec, k: int) -> np.ndarray:
        """The k-th packed gradient as a host array (a device one staged through pinned memory)."""
        if isinstance(vec, np.ndarray):
            return np.array(vec)
        staged = self._pinned.get(k)
        if staged is None:
            staged = self._pinned[k] = vec.device.pinned(vec.nbytes).view(vec.dtype)[:vec.size]
        with vec.device.lock:
            vec.device.synchronize()
            vec.device.download(staged, vec.ptr)
        return staged

    def _exchange(self, vec, k: int):
        """The sum over the ranks of ``vec`` (the k-th packed gradient), at the sharing's precision;
        the update divides it by the number of ranks."""
        w = self.world
        if w.size == 1:
            return vec                       # a world of one exchanges nothing
        if self.sharing == "exact" and self.transport == "device":
            self.bytes_exchanged += vec.nbytes
            with vec.device.lock:            # the gradient kernels are done before MPI reads
                vec.device.synchronize()
            return w.allreduce(vec)          # a device buffer, through __cuda_array_interface__
        vec = self._host(vec, k)
        if self.sharing == "exact":
            self.bytes_exchanged += vec.nbytes
            return w.allreduce(vec)
        corrected = vec + self._residual[k]
        payload = _round(corrected, self.sharing)
        self._residual[k] = corrected - _widen(payload, self.sharing, vec.dtype)   # error feedback
        self.bytes_exchanged += payload.nbytes
        everyone = w.allgather(payload)
        return np.sum([_widen(row, self.sharing, vec.dtype) for row in everyone], axis=0)

    def __call__(self, *batch):
        w = self.world
        shard = [np.asarray(b)[w.rank::w.size] if np.ndim(b) else b for b in batch]
        cost, *vectors = self._grads(*shard)
        cost = float(np.asarray(cost))
        self.steps += 1
        if self.local_every is None:
            vectors = [self._exchange(v, k) for k, v in enumerate(vectors)]
        elif w.size > 1:                     # local SGD: each rank's own gradient, scaled back up
            vectors = [self._host(v, k) * w.size for k, v in enumerate(vectors)]
        self._apply(*vectors)
        if self.local_every is not None and self.steps % self.local_every == 0:
            for p in self.params:        # local SGD: average the parameters every k steps
                value = np.ascontiguousarray(p.get_value())
                self.bytes_exchanged += value.nbytes if w.size > 1 else 0
                p.set_value(w.allreduce(value) / w.size)
        return w.sum(float(cost)) / w.size

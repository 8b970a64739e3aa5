"""The minibatch iterator: every example once per epoch, reproducible shuffles, partial batches,
the same protocol resident (givens slices of shared data) and streamed (host batches)."""
import threading
import time

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.errors import InputError, ShapeError
from theta.minibatch import Minibatches

N = 23


def data():
    return {"x": np.arange(N * 3, dtype="float32").reshape(N, 3), "y": np.arange(N, dtype="int32")}


def resident_epoch(mb, fn):
    return np.concatenate([fn(i) for i in mb.epoch()] or [np.zeros(0, "int32")])


@pytest.fixture(params=["reference", "emu"])
def backend(request):
    return request.param


@pytest.mark.parametrize("bs", [1, 5, 23, 30])
@pytest.mark.parametrize("drop_last", [False, True])
def test_resident_each_example_once_per_epoch(bs, drop_last, backend):
    mb = Minibatches(data(), bs, seed=3, drop_last=drop_last, resident=True, backend=backend)
    i, y = T.lscalar("i"), T.ivector("y")
    f = theta.function([i], y, givens=mb.givens({y: "y"}, i), backend=backend)
    for _ in range(3):
        seen = resident_epoch(mb, f)
        if drop_last:
            assert len(seen) == (N // bs) * bs and len(set(seen.tolist())) == len(seen)
        else:
            assert sorted(seen.tolist()) == list(range(N))


def test_rows_stay_aligned_across_arrays_after_shuffles(backend):
    mb = Minibatches(data(), 4, seed=0, resident=True, backend=backend)
    i, x, y = T.lscalar("i"), T.fmatrix("x"), T.ivector("y")
    f = theta.function([i], [x, y], givens=mb.givens({x: "x", y: "y"}, i), backend=backend)
    for _ in range(2):
        for k in mb.epoch():
            xb, yb = f(k)
            np.testing.assert_array_equal(xb[:, 0], yb * 3)


def test_shuffles_are_reproducible_and_differ_between_epochs():
    a = Minibatches(data(), 5, seed=7, resident=False)
    b = Minibatches(data(), 5, seed=7, resident=False)
    ea1 = np.concatenate([bt["y"] for bt in a.epoch()])
    ea2 = np.concatenate([bt["y"] for bt in a.epoch()])
    eb1 = np.concatenate([bt["y"] for bt in b.epoch()])
    np.testing.assert_array_equal(ea1, eb1)
    assert not np.array_equal(ea1, ea2)
    assert not np.array_equal(ea1, np.arange(N))


def test_resident_and_streamed_visit_the_same_order(backend):
    r = Minibatches(data(), 6, seed=11, resident=True, backend=backend)
    s = Minibatches(data(), 6, seed=11, resident=False, backend=backend)
    i, y = T.lscalar("i"), T.ivector("y")
    f = theta.function([i], y, givens=r.givens({y: "y"}, i), backend=backend)
    for _ in range(2):
        np.testing.assert_array_equal(resident_epoch(r, f), np.concatenate([b["y"] for b in s.epoch()]))


def test_last_partial_batch_and_lengths():
    mb = Minibatches(data(), 10, shuffle=False, resident=False)
    sizes = [len(b["y"]) for b in mb.epoch()]
    assert sizes == [10, 10, 3] and mb.n_batches == 3 and mb.batch_length(2) == 3
    mb = Minibatches(data(), 10, shuffle=False, drop_last=True, resident=False)
    assert [len(b["y"]) for b in mb.epoch()] == [10, 10]


def test_unshuffled_resident_batches_compile_once_per_batch_length(backend):
    mb = Minibatches(data(), 5, shuffle=False, resident=True, backend=backend)
    i, y = T.lscalar("i"), T.ivector("y")
    f = theta.function([i], y, givens=mb.givens({y: "y"}, i), backend=backend)
    out = resident_epoch(mb, f)
    np.testing.assert_array_equal(out, np.arange(N))
    (spec,) = f._specs.values()
    assert len(spec._variants) == 2   # full batches share one program; the partial one has its own


class _FailsAfter:
    """An array whose rows can be taken ``ok`` times, then the read fails (a disk gone, say)."""

    def __init__(self, array: np.ndarray, ok: int) -> None:
        self.array, self.ok, self.shape, self.dtype = array, ok, array.shape, array.dtype

    def __len__(self) -> int:
        return len(self.array)

    def take(self, rows, axis=0, **kw):
        self.ok -= 1
        if self.ok < 0:
            raise OSError("the dataset's file went away")
        return self.array.take(rows, axis=axis)


def test_streamed_errors_reach_the_consumer_and_early_exit_is_clean():
    # an error in the producer thread is raised in the consumer, after the batches before it
    mb = Minibatches(data(), 4, resident=False, shuffle=False)
    before = set(threading.enumerate())
    mb.arrays["x"] = _FailsAfter(mb.arrays["x"], ok=2)
    it = mb.epoch()
    np.testing.assert_array_equal(next(it)["x"], data()["x"][:4])
    np.testing.assert_array_equal(next(it)["x"], data()["x"][4:8])
    with pytest.raises(OSError, match="went away"):
        next(it)
    for worker in _new_prefetch_threads(before):
        worker.join(timeout=30)
        assert not worker.is_alive()
    # closing an epoch after its first batch stops the prefetch thread without hanging
    mb = Minibatches(data(), 4, resident=False)
    it = mb.epoch()
    first = next(it)
    assert first["x"].shape == (4, 3) and first["y"].shape == (4,)
    (worker,) = _new_prefetch_threads(before)
    it.close()
    worker.join(timeout=30)
    assert not worker.is_alive()


def _new_prefetch_threads(before: set) -> list:
    return [t for t in threading.enumerate() if t not in before and t.name == "theta-prefetch"]


def test_closing_a_streamed_epoch_early_ends_its_producer_thread():
    # 3 batches, 2 prefetched: while the consumer holds the first, the producer queues the other
    # two and then waits to hand over the end of the epoch, which nobody will ever take
    mb = Minibatches(data(), 10, resident=False, prefetch=2)
    before = set(threading.enumerate())
    it = mb.epoch()
    next(it)
    (worker,) = _new_prefetch_threads(before)
    q = it.gi_frame.f_locals["q"]
    deadline = time.monotonic() + 30
    while not q.full() and time.monotonic() < deadline:   # reach that state (nothing timed)
        time.sleep(0.01)
    it.close()
    worker.join(timeout=30)
    assert not worker.is_alive()


def test_breaking_out_of_a_streamed_epoch_ends_its_producer_thread():
    mb = Minibatches(data(), 4, resident=False, prefetch=1)
    before = set(threading.enumerate())
    seen, workers = 0, []
    for batch in mb.epoch():     # the generator is dropped (and so closed) at the break
        workers += _new_prefetch_threads(before) if not seen else []
        seen += 1
        if seen == 2:
            break
    assert len(workers) == 1     # the producer was there while the loop ran
    workers[0].join(timeout=30)
    assert not workers[0].is_alive()


def test_bad_input():
    with pytest.raises(ShapeError):
        Minibatches({"x": np.zeros((3, 2)), "y": np.zeros(4)}, 2)
    with pytest.raises(InputError):
        Minibatches({"x": np.zeros((3, 2))}, 0)
    with pytest.raises(InputError):
        Minibatches({}, 2)
    with pytest.raises(InputError):
        Minibatches({"x": np.zeros((3, 2))}, 2, resident=False).givens({}, T.lscalar())


def test_import_theta_never_needs_pycuda():
    import subprocess
    import sys
    code = "import sys, theta, theta.tensor; import theta.runtime.cuda, theta.minibatch; assert 'pycuda' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

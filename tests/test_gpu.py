"""The cuda backend against the reference, on a real GPU (``pytest -m gpu``).

Skipped with the reason where pycuda or a GPU is missing. The same graphs the emu tests use,
compiled for the device, plus what only a GPU run shows: device-resident shared variables,
zero-copy device inputs/outputs, and a training step.
"""
import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.runtime.backends import cuda_available

ok, why = cuda_available()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not ok, reason=f"needs an NVIDIA GPU and pycuda: {why}")]

rng = np.random.default_rng(0)


def both(inputs, outputs, args, **kw):
    kw.setdefault("on_unused_input", "ignore")   # the argmax/softmax graphs read only x
    f_ref = theta.function(inputs, outputs, backend="reference", **kw)
    f_gpu = theta.function(inputs, outputs, backend="cuda", **kw)
    want, got = f_ref(*args), f_gpu(*args)
    return want, got, f_gpu


def close(a, b, tol=1e-4):
    for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_allclose(y, x, rtol=tol, atol=tol)


GRAPHS = {
    "elemwise": lambda x, y: [T.tanh(x) * 2 + y, T.nnet.sigmoid(x * y) - 1],
    "reduce": lambda x, y: [T.sum(T.exp(x), axis=1), T.max(x, axis=0), T.mean(x * y)],
    "argmax": lambda x, y: [T.argmax(x, axis=1)],
    "gemm": lambda x, y: [T.dot(x, y.T), T.tanh(T.dot(x.T, y) + 1)],
    "softmax": lambda x, y: [T.nnet.softmax(x), T.nnet.log_softmax(x * 3)],
    "index": lambda x, y: [x[np.array([0, 2, 2, 1])], T.inc_subtensor(x[np.array([1, 1])], y[:2])],
    "concat": lambda x, y: [T.concatenate([x, y], axis=0), T.stack([x, y], axis=1)],
}


@pytest.mark.parametrize("family", sorted(GRAPHS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_family_matches_reference(family, dtype):
    x, y = T.matrix(dtype=dtype), T.matrix(dtype=dtype)
    xv, yv = (rng.standard_normal((37, 53)).astype(dtype) for _ in range(2))
    want, got, _ = both([x, y], GRAPHS[family](x, y), [xv, yv])
    close(want, got, 1e-4 if dtype == "float32" else 1e-10)


def test_mlp_training_step_matches_reference():
    from theta.models.train import TrainConfig, train
    res_ref = train(TrainConfig(model="mlp", epochs=2, backend="reference"), progress=False)
    res_gpu = train(TrainConfig(model="mlp", epochs=2, backend="cuda"), progress=False)
    np.testing.assert_allclose(res_gpu.history[-1]["cost"], res_ref.history[-1]["cost"], rtol=1e-3)


def test_shared_variables_stay_on_device_and_sync_lazily():
    W = theta.shared(np.ones((64, 32), "float32"), name="W")
    x = T.fmatrix("x")
    f = theta.function([x], T.sum(T.dot(x, W)), updates=[(W, W * 0.5)], backend="cuda")
    xv = np.ones((8, 64), "float32")
    for _ in range(3):
        f(xv)
    assert W._device["cuda"].dirty          # the update lives on the device ...
    np.testing.assert_allclose(W.get_value(), 0.125)  # ... and comes home when asked


def test_device_arrays_in_and_out():
    from theta.runtime.cuda import device
    from theta.runtime.device import DeviceArray
    x = T.fvector("x")
    f = theta.function([x], x * 2, backend="cuda")
    dev = DeviceArray.from_host(device(), np.arange(5, dtype="float32"))
    assert "data" in dev.__cuda_array_interface__
    np.testing.assert_allclose(f(dev), np.arange(5) * 2)


def test_saved_program_runs_on_gpu_from_its_cubin_without_nvcc(tmp_path, monkeypatch):
    from theta.runtime import nvcc
    from theta.runtime.cuda import device
    W = theta.shared(np.ones((4, 3), "float32"), name="W")
    x = T.fmatrix("x")
    f = theta.function([x], T.dot(x, W).sum(), updates=[(W, W + 1)], backend="cuda")
    xv = np.ones((2, 4), "float32")
    f(xv)
    f.save(tmp_path / "prog")
    device().modules.clear()   # load from the saved artifacts, not the module f loaded

    def no_nvcc(*args, **kwargs):
        raise AssertionError("nvcc must not be needed to load a program saved with its cubins")
    monkeypatch.setattr(nvcc, "find_nvcc", lambda: None)
    monkeypatch.setattr(nvcc, "compile_cubin", no_nvcc)
    g = theta.load(tmp_path / "prog", backend="cuda")
    assert float(g(xv)) == pytest.approx(float(f(xv)))
    np.testing.assert_allclose(g.get_value("W"), W.get_value())


def test_calls_from_four_threads_agree_with_serial_calls(agree_across_threads):
    x = T.dmatrix("x")
    f = theta.function([x], [T.tanh(T.dot(x, x.T)).sum(axis=1), T.nnet.softmax(x * 3)], backend="cuda")
    agree_across_threads(f, [rng.standard_normal((33, 17)) for _ in range(16)])


def test_a_training_step_allocates_nothing_after_its_first_call_and_downloads_only_its_output():
    from theta.runtime.cuda import device
    data = theta.shared(rng.standard_normal((96, 12)).astype("float32"), name="data")
    labels = theta.shared(rng.integers(0, 5, 96).astype("int32"), name="labels")
    i = T.lscalar("i")
    x, y = T.fmatrix("x"), T.ivector("y")
    W = theta.shared(np.zeros((12, 5), "float32"), name="W")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(x, W)), y).mean()
    f = theta.function([i], cost, updates=[(W, W - 0.1 * theta.grad(cost, W))], backend="cuda",
                       givens={x: data[i * 32:(i + 1) * 32], y: labels[i * 32:(i + 1) * 32]})
    f(0)
    dev = device()
    before = dict(dev.stats)
    f(1)
    f(2)
    delta = {k: dev.stats[k] - before.get(k, 0) for k in dev.stats}
    assert delta.get("alloc", 0) == 0 and delta.get("upload", 0) == 0, delta
    assert delta.get("download", 0) == 2, delta   # the cost of each step


def test_scan_rnn_and_its_gradient():
    x, h0 = T.dmatrix("x"), T.dvector("h0")
    W = theta.shared(rng.standard_normal((8, 8)) * 0.3, name="W")
    H, _ = theta.scan(lambda xt, h: T.tanh(xt + T.dot(h, W)), sequences=x, outputs_info=h0)
    cost = (H[-1] ** 2).sum() + H.sum()
    want, got, _ = both([x, h0], [H] + theta.grad(cost, [x, h0, W]), [rng.standard_normal((12, 8)), rng.standard_normal(8)])
    close(want, got, 1e-10)


def test_random_draws_are_the_reference_bits_and_dropout_trains():
    from theta.tensor.shared_randomstreams import RandomStreams
    srng = RandomStreams(99)
    n = T.lscalar("n")
    outs = [srng.uniform((n, 37)), srng.uniform((300,), dtype="float64"), srng.normal((1030,)),
            srng.normal((5, 5), dtype="float64"), srng.binomial((64, 33), p=0.3, dtype="float32")]
    got = theta.function([n], outs, backend="cuda")
    first = got(9)
    srng.seed(99)
    want = theta.function([n], outs, backend="reference")(9)
    for k, (a, b) in enumerate(zip(want, first)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"draw {k}: cuda differs from the reference bits"
    # a dropout step: the masks drawn in the forward and backward kernels agree with the reference
    x = T.matrix("x")
    w0 = rng.standard_normal((8, 4)).astype("float32")
    W = theta.shared(w0)
    h = T.nnet.relu(T.dot(x, W)) * srng.binomial(size=(5, 4), p=0.5, dtype="float32")
    cost = h.sum()
    step = [(W, W - 0.1 * theta.grad(cost, W))]
    xv = rng.random((5, 8)).astype("float32")
    results = []
    for backend in ("cuda", "reference"):
        srng.seed(1)
        W.set_value(w0)
        loss = theta.function([x], cost, updates=step, backend=backend)(xv)
        results.append((loss, W.get_value()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-6)

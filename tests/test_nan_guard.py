"""The NaN guard (issue 11, item 3): ``theta.function(..., nan_guard=True)`` stops at the first op
(reference) or kernel (emu) that produces a NaN or Inf, naming the op, the user's line and the
ranges of its inputs; a value that was already NaN/Inf is reported as an input; off, nothing is
checked; ``theta train`` stops when its cost stops being a number."""
import os
import subprocess
import sys

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.errors import NanError, ThetaError

HERE = os.path.basename(__file__)
BACKENDS = ["reference", "emu"]


@pytest.fixture(autouse=True)
def _restore_nan_guard():
    saved = theta.config.nan_guard
    yield
    theta.config.nan_guard = saved


def _line_of(marker: str) -> int:
    """The line of this file holding ``marker`` (the messages must name the user's line)."""
    with open(__file__) as fh:
        return next(n for n, line in enumerate(fh, 1) if marker in line and "_line_of" not in line)


@pytest.mark.parametrize("backend", BACKENDS)
def test_names_the_op_its_line_and_its_inputs_ranges(backend):
    x = T.fvector("x")
    y = T.log(x) * 2 + 1          # LOG-LINE
    f = theta.function([x], y.sum(), backend=backend, nan_guard=True)
    assert np.isclose(f(np.array([1, 2], "float32")), 2 + 2 * np.log(2))
    with pytest.raises(NanError) as info:
        f(np.array([1, -2, 3], "float32"))
    msg = str(info.value)
    assert isinstance(info.value, ThetaError) and isinstance(info.value, FloatingPointError)
    assert "log produced NaN (1 of 3 values)" in msg, msg
    assert f"{HERE}:{_line_of('LOG-LINE')}" in msg, msg
    assert "'x' float32[3]" in msg and "min -2, max 3" in msg, msg
    if backend == "emu":
        assert "inside kernel theta_k" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_inf_from_overflow_is_caught_too(backend):
    x = T.fvector("x")
    f = theta.function([x], T.exp(x) + 1, backend=backend, nan_guard=True)
    with pytest.raises(NanError, match=r"exp produced Inf \(1 of 2 values\)"):
        f(np.array([0, 100], "float32"))   # exp(100) overflows float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_input_or_shared_value_already_nan_is_reported_as_such(backend):
    x = T.fvector("x")
    W = theta.shared(np.ones(3, "float32"), name="W")
    f = theta.function([x], T.log(x * W).sum(), backend=backend, nan_guard=True)
    with pytest.raises(NanError, match=r"input 'x' float32\[3\].* contains NaN \(1 of 3 values\) before any op"):
        f(np.array([1, np.nan, 2], "float32"))
    W.set_value(np.array([1, np.inf, 1], "float32"))
    with pytest.raises(NanError, match=r"shared variable 'W' float32\[3\].* contains Inf"):
        f(np.array([1, 1, 2], "float32"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_off_by_default_and_free(backend):
    x = T.fvector("x")
    f = theta.function([x], T.log(x), backend=backend)
    with np.errstate(invalid="ignore"):
        assert np.isnan(f(np.array([-1], "float32"))).all()
    if backend == "emu":
        program = f.program
        assert program.guard is None
        assert all(kind != "check" for kind, _ in f.specialization(np.ones(1, "float32")).program.executor._order)


def test_config_flag_and_theano_mode_name():
    x = T.fvector("x")
    theta.config.nan_guard = True
    with pytest.raises(NanError):
        theta.function([x], T.sqrt(x))(np.array([-1], "float32"))
    theta.config.nan_guard = False
    with pytest.raises(NanError):
        theta.function([x], T.sqrt(x), mode="NanGuardMode")(np.array([-1], "float32"))
    with pytest.raises(ThetaError):
        theta.config.nan_guard = 2


def test_flag_from_the_environment():
    code = "import theta; print(theta.config.nan_guard)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "THETA_FLAGS": "nan_guard=True"})
    assert out.stdout.strip() == "True", out.stderr


def test_integer_results_are_not_checked():
    i = T.ivector("i")
    f = theta.function([i], (i * 2).sum(), backend="emu", nan_guard=True)
    assert f(np.array([1, 2], "int32")) == 6


def _sgd_step(backend: str, lr: float, guard: bool):
    rng = np.random.default_rng(0)
    x, y = T.matrix("x"), T.ivector("y")
    W1 = theta.shared((rng.standard_normal((6, 8)) * 0.3).astype("float32"), name="W1")
    b1 = theta.shared(np.zeros(8, "float32"), name="b1")
    W2 = theta.shared((rng.standard_normal((8, 3)) * 0.3).astype("float32"), name="W2")
    h = T.tanh(T.dot(x, W1) + b1)
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(h, W2)), y).mean()
    params = [W1, b1, W2]
    grads = theta.grad(cost, params)
    step = theta.function([x, y], cost, updates=[(p, p - lr * g) for p, g in zip(params, grads)],  # UPDATE-LINE
                          backend=backend, nan_guard=guard)
    data = (rng.standard_normal((5, 6)).astype("float32"), np.array([0, 1, 2, 1, 0], "int32"))
    return step, data, params


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_healthy_training_step_runs_the_same_guarded(backend):
    results = []
    for guard in (False, True):
        step, data, params = _sgd_step(backend, 0.5, guard)
        costs = [float(step(*data)) for _ in range(3)]
        results.append((costs, [p.get_value() for p in params]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_step_stops_at_the_update(backend):
    step, data, _ = _sgd_step(backend, np.inf, True)
    with pytest.raises(NanError) as info:
        step(*data)
    msg = str(info.value)
    assert "produced" in msg and f"{HERE}:{_line_of('UPDATE-LINE')}" in msg, msg
    assert "the constant inf" in msg, msg


def test_a_kernel_inside_a_scan_step_is_checked():
    h0 = T.fvector("h0")
    H, _ = theta.scan(lambda h: h * 1e10, outputs_info=h0, n_steps=6)   # SCAN-LINE
    f = theta.function([h0], H[-1], backend="emu", nan_guard=True)
    with pytest.raises(NanError) as info:
        f(np.ones(2, "float32"))   # 1e40 overflows float32 at the 4th step
    assert "produced Inf" in str(info.value) and f"{HERE}:{_line_of('SCAN-LINE')}" in str(info.value)


def test_theta_train_stops_when_the_cost_is_not_a_number():
    out = subprocess.run([sys.executable, "-m", "theta", "train", "--model", "logreg", "--lr", "inf", "--epochs", "2",
                          "--quiet"], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    # (models/train.py's message; the minibatch counting is its own)
    assert "cost became nan at epoch 1" in out.stderr and "lower --lr" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_pickled_function_keeps_its_guard():
    import pickle
    x = T.fvector("x")
    f = pickle.loads(pickle.dumps(theta.function([x], T.log(x), nan_guard=True)))
    with pytest.raises(NanError):
        f(np.array([-1], "float32"))


@pytest.mark.gpu
def test_the_cuda_backend_is_guarded_too():
    """The executor's checks over the cuda device (run by pytest -m gpu on a GPU, and on every
    machine through the pycuda stand-in by the test below)."""
    from theta.runtime.backends import cuda_available
    ok, why = cuda_available()
    if not ok:
        pytest.skip(f"needs an NVIDIA GPU and pycuda: {why}")
    x = T.fvector("x")
    f = theta.function([x], (T.log(x) * 2).sum(), backend="cuda", nan_guard=True)   # CUDA-LINE
    assert np.isclose(f(np.array([1, 2], "float32")), 2 * np.log(2))
    with pytest.raises(NanError, match=rf"(?s)log produced NaN.*{HERE}:{_line_of('CUDA-LINE')}"):
        f(np.array([1, -2], "float32"))
    with pytest.raises(NanError, match="input 'x'"):
        f(np.array([np.inf, 2], "float32"))
    step, data, _ = _sgd_step("cuda", np.inf, True)
    with pytest.raises(NanError, match="the constant inf"):
        step(*data)


@pytest.mark.slow
def test_the_cuda_backend_is_guarded_too_on_the_pycuda_standin(gpu_tests_on_standin):
    """Not a GPU test: the test above in a subprocess over tests/standin's pycuda (kernels run by
    emu), so the cuda device's status word and its NaN guard are checked on every machine."""
    gpu_tests_on_standin(f"{__file__}::test_the_cuda_backend_is_guarded_too")

"""Shared fixtures for the op tests.

Every test gets theta.config restored afterwards, so a test may set ``theta.config.floatX``
(directly or through the ``float64`` fixture) without leaking it into the next one.

The helpers are fixtures rather than an importable module so that test files stay plain
pytest modules:

    run(fn, *arrays, static=False)   compile ``fn`` over inputs typed like ``arrays`` and call it
                                      (cross-checked against evaluating the unrewritten graph)
    vgrad(fn, *arrays, **kw)          theta.gradient.verify_grad in float64 with a seeded rng
    static_grad(fn, *arrays)          theta.grad of sum(fn(*xs) * proj) with inputs declared of
                                      the arrays' exact (static) shapes, checked against central
                                      finite differences over every coordinate
"""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.gradient import verify_grad
from theta.runtime.reference import evaluate


@pytest.fixture(autouse=True)
def _restore_config():
    c = theta.config
    saved = (c.floatX, c.backend, c.optimizer, c.emu_asan, c.emu_check)
    yield
    c.floatX, c.backend, c.optimizer, c.emu_asan, c.emu_check = saved


@pytest.fixture
def agree_across_threads():
    """``check(f, inputs)``: calling ``f`` on each input from 4 threads at once gives exactly what
    calling it on each input in turn gives."""
    import threading

    def check(f, inputs, threads: int = 4) -> None:
        serial = [f(a) for a in inputs]
        got: dict = {}

        def worker(k: int) -> None:
            for j in range(k, len(inputs), threads):
                got[j] = f(inputs[j])

        workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        for j, want in enumerate(serial):
            for a, b in zip(want, got[j]):
                np.testing.assert_array_equal(b, a)
    return check


@pytest.fixture
def emu_check():
    """emu's checking mode for this test (kernels/emu_check.h): races, uninitialized shared
    reads, divergent barriers and warp ops, unfenced publication, and every launch run in
    three thread orders. The kernel-family and random-graph tests use it throughout
    (``pytestmark = pytest.mark.usefixtures("emu_check")``)."""
    theta.config.emu_check = True
    return True


@pytest.fixture
def float64():
    """theta.config.floatX = 'float64' for this test (restored afterwards)."""
    theta.config.floatX = "float64"
    return "float64"


@pytest.fixture
def float32():
    """theta.config.floatX = 'float32' for this test (restored afterwards)."""
    theta.config.floatX = "float32"
    return "float32"


@pytest.fixture
def rng(request):
    # one seed per test id: reproducible, and independent of test order
    seed = sum(map(ord, request.node.nodeid)) * 7919
    return np.random.default_rng(seed)


def _symbols(arrays, static: bool):
    return [T.tensor(a.dtype.name, shape=a.shape if static else (None,) * a.ndim, name=f"in{i}")
            for i, a in enumerate(arrays)]


@pytest.fixture(params=["reference", "emu"])
def backend(request):
    """Each op test runs on the NumPy reference and on emu (the generated CUDA C on the CPU)."""
    return request.param


@pytest.fixture(params=["reference", "emu"])
def on_backend(request):
    """The test's theta.function calls compile for the reference backend, then (a second run)
    for emu: theta.config.backend is set for the test (restored afterwards). For the function,
    grad, rewrite, pickle and error tests, which call theta.function without a backend."""
    theta.config.backend = request.param
    return request.param


def oracle_function(inputs, outputs, **kw):
    """The oracle: the reference backend on the *unrewritten* graph (optimizer 'None': only the
    passes needed to run), so a wrong rewrite cannot cancel out of a comparison."""
    from fuzz import oracle_function as oracle
    return oracle(inputs, outputs, **kw)


# emu vs the graph evaluated op by op: kernels accumulate and fuse differently from NumPy
EMU_RTOL = {"float32": 1e-4, "float64": 1e-9}


@pytest.fixture
def run(backend):
    def run_(fn, *arrays, static: bool = False):
        arrays = [np.asarray(a) for a in arrays]
        xs = _symbols(arrays, static)
        outs = fn(*xs)
        f = theta.function(xs, outs, on_unused_input="ignore", backend=backend)
        result = f(*arrays)
        # The compiled function (specialized and rewritten, run on ``backend``) must agree with
        # each op's own perform on the graph as built, which runtime.reference.evaluate runs as is.
        single = not isinstance(outs, (list, tuple))
        raw = evaluate([T.as_tensor_variable(o) for o in ([outs] if single else outs)], dict(zip(xs, arrays)))
        for got, ref in zip([result] if single else result, raw):
            assert got.dtype == ref.dtype and got.shape == ref.shape, (got.dtype, ref.dtype, got.shape, ref.shape)
            rtol = 1e-6 if backend == "reference" else EMU_RTOL.get(got.dtype.name, 0)
            np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol if got.dtype.kind == "f" else 0,
                                       err_msg=f"compiled function ({backend}) and graph evaluation differ")
        return result
    return run_


def check_rop(fn, arrays, rng, eps: float = 1e-6) -> None:
    """The R-op of ``fn`` (theta.gradient.Rop: the Jacobian times a direction) against a central
    finite difference along a random direction, input by input (as verify_grad does), float64."""
    from theta.gradient import Rop
    xs = _symbols(arrays, static=False)
    out = T.as_tensor_variable(fn(*xs))
    if not out.dtype.startswith("float"):
        return
    f = theta.function(xs, out, on_unused_input="ignore")
    for k, a in enumerate(arrays):
        if a.dtype.kind != "f":
            continue
        v = T.tensor("float64", shape=(None,) * a.ndim, name="v")
        d = rng.standard_normal(a.shape)
        jvp = theta.function(xs + [v], Rop(out, xs[k], v), on_unused_input="ignore")(*arrays, d)
        plus, minus = list(arrays), list(arrays)
        plus[k], minus[k] = a + eps * d, a - eps * d
        numeric = (np.asarray(f(*plus), dtype="float64") - np.asarray(f(*minus), dtype="float64")) / (2 * eps)
        np.testing.assert_allclose(jvp, numeric, rtol=1e-5, atol=1e-6,
                                   err_msg=f"R-op along input {k} against finite differences")


@pytest.fixture
def vgrad(rng, backend):
    """On the reference backend: verify_grad (finite differences) in float64, and the R-op
    against finite differences too. On emu: the gradient kernels must agree with the
    gradients of the same random projection evaluated on the unrewritten graph (the oracle)."""
    def vgrad_(fn, *arrays, **kw):
        arrays = [np.asarray(a, dtype="float64") for a in arrays]
        if backend == "reference":
            verify_grad(fn, arrays, rng=rng, **kw)
            check_rop(fn, arrays, rng)
            return
        xs = _symbols(arrays, static=False)
        out = T.as_tensor_variable(fn(*xs))
        proj = rng.random(evaluate([out], dict(zip(xs, arrays)))[0].shape) + 0.5
        grads = theta.grad(T.sum(out * proj), xs, disconnected_inputs="ignore")
        want = oracle_function(xs, grads)(*arrays)      # the unrewritten graph on the reference backend
        got = theta.function(xs, grads, on_unused_input="ignore", backend="emu")(*arrays)
        for i, (w, g) in enumerate(zip(want, got)):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9, err_msg=f"emu gradient of input {i}")
    return vgrad_


def numeric_grad(f, arrays, i, eps=1e-6):
    """Central finite differences of the scalar f(*arrays) w.r.t. every entry of arrays[i]."""
    g = np.zeros(arrays[i].shape, dtype="float64")
    for idx in np.ndindex(*arrays[i].shape):
        plus = [a.copy() for a in arrays]
        minus = [a.copy() for a in arrays]
        plus[i][idx] += eps
        minus[i][idx] -= eps
        g[idx] = (float(f(*plus)) - float(f(*minus))) / (2 * eps)
    return g


@pytest.fixture
def static_grad(rng):
    def static_grad_(fn, *arrays, rtol=1e-5, atol=1e-6):
        arrays = [np.asarray(a, dtype="float64") for a in arrays]
        xs = _symbols(arrays, static=True)
        out = fn(*xs)
        proj = T.as_tensor_variable(rng.random(out.type.shape) + 0.5)
        cost = T.sum(out * proj)
        f_cost = theta.function(xs, cost)
        grads = theta.function(xs, theta.grad(cost, xs), on_unused_input="ignore")(*arrays)
        for i, (a, g) in enumerate(zip(arrays, grads)):
            assert g.shape == a.shape, f"gradient {i} has shape {g.shape}, input has {a.shape}"
            np.testing.assert_allclose(g, numeric_grad(f_cost, arrays, i), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {i}")
        return grads
    return static_grad_


# The pycuda stand-in (tests/standin: a strict fake of pycuda's driver whose kernels run through
# emu) is part of the tests, so the cuda device's code runs on every machine and every checkout.
STANDIN = __import__("pathlib").Path(__file__).resolve().with_name("standin")


@pytest.fixture
def standin_env():
    """The environment of a subprocess that imports tests/standin's pycuda instead of the real
    one (its sitecustomize routes theta's cubins to the fake driver). The fake loads the cubins
    nvcc builds, so it needs nvcc (not a GPU)."""
    import os
    from theta.runtime.nvcc import find_nvcc
    if find_nvcc() is None:
        pytest.skip("the pycuda stand-in loads the cubins nvcc builds: nvcc not found")
    assert (STANDIN / "pycuda" / "driver.py").is_file() and (STANDIN / "sitecustomize.py").is_file()
    path = os.pathsep.join(filter(None, [str(STANDIN), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, THETA_FAKE_CUDA="1", PYTHONPATH=path)


@pytest.fixture
def gpu_tests_on_standin(standin_env):
    """``run(*targets)``: runs the ``gpu``-marked tests ``targets`` (pytest node ids or files) in a
    subprocess over the pycuda stand-in and checks that every one ran and passed (none skipped,
    none deselected): a gpu test that skips there tests nothing."""
    import re
    import subprocess
    import sys

    def run(*targets: str, timeout: int = 1200) -> str:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rs",
                               *targets], cwd=STANDIN.parents[1], env=standin_env, capture_output=True, text=True,
                              timeout=timeout)
        tail = proc.stdout[-6000:] + proc.stderr[-3000:]
        assert proc.returncode == 0, tail
        summary = proc.stdout.strip().splitlines()[-1]
        assert re.search(r"\b\d+ passed\b", summary), tail
        assert not re.search(r"skipped|deselected|xfail|xpass|error", summary), tail
        return proc.stdout
    return run


# A `theta` command line whose second checkpoint write never happens: the process SIGKILLs itself
# at that point, so a run killed "after its first checkpoint" can never finish before the kill.
_DIE_AT_SECOND_CHECKPOINT = r"""
import os, runpy, signal, sys
from theta.models import checkpoint
real, saved = checkpoint.save, []
def save(*args, **kwargs):
    if saved:
        os.kill(os.getpid(), signal.SIGKILL)
    saved.append(real(*args, **kwargs))
    return saved[-1]
checkpoint.save = save
sys.argv[0] = "theta"
runpy.run_module("theta", run_name="__main__", alter_sys=True)
"""


@pytest.fixture
def killed_after_first_checkpoint():
    """``kill(args, directory) -> trainer``: runs ``theta *args`` (which writes a checkpoint into
    ``directory`` after every epoch), SIGKILLs it at a random moment after its first checkpoint
    and before its second (the child kills itself at the second write if the random moment has
    not come yet: deterministic, whatever the machine's speed), checks that it died of SIGKILL,
    and returns the checkpoint's trainer state (its ``epoch`` is 1)."""
    import json
    import os
    import random
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    def kill(args: list, directory) -> dict:
        log = tempfile.TemporaryFile()     # (not a pipe, which nobody reads while it runs)
        proc = subprocess.Popen([sys.executable, "-c", _DIE_AT_SECOND_CHECKPOINT, *args],
                                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 300
        while not (directory / "checkpoint.npz").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(random.uniform(0, 0.5))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        log.seek(0)
        err = log.read().decode(errors="replace")
        assert proc.returncode == -signal.SIGKILL, f"not killed (rc {proc.returncode}): {err[-3000:]}"
        with np.load(directory / "checkpoint.npz") as z:
            meta = json.loads(z["meta"].tobytes().decode())
        assert meta["trainer"]["epoch"] == 1, meta["trainer"]
        return meta["trainer"]
    return kill

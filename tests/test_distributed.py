"""theta.distributed on MPI: tests run the worker (tests/mpi/worker.py) under ``mpiexec -n 2``
and ``-n 3`` with a hard timeout. N ranks with batch b follow one process with batch N*b;
half-precision sharing with error feedback reaches the exact run's test error within a point;
local SGD exchanges fewer bytes; a rank that dies makes the others stop with a clear error."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the [mpi] extra (pip install -e '.[mpi]') is not installed")
MPIEXEC = shutil.which("mpiexec") or shutil.which("mpirun") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
pytestmark = [pytest.mark.mpi, pytest.mark.skipif(not os.path.exists(MPIEXEC), reason="no mpiexec")]
WORKER = os.path.join(os.path.dirname(__file__), "mpi", "worker.py")


def _run(ranks: int, backend="reference", sharing="exact", steps=20, batch=24, local_every=0, die=-1,
         timeout=240, cuda_aware="auto", env=None) -> subprocess.CompletedProcess:
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, WORKER, backend, sharing, str(steps), str(batch),
           str(local_every), str(die), cuda_aware]
    if ranks == 1:
        cmd = cmd[3:]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _result(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["reference", "emu"])
@pytest.mark.parametrize("ranks", [2, 3])
def test_n_ranks_follow_one_process_with_n_times_the_batch(ranks, backend):
    per_rank = 8
    many = _result(_run(ranks, backend, batch=per_rank * ranks))
    one = _result(_run(1, backend, batch=per_rank * ranks))
    assert many["size"] == ranks and one["size"] == 1
    np.testing.assert_allclose(many["W"], one["W"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(many["costs"], one["costs"], rtol=1e-9)


def test_half_precision_sharing_and_local_sgd():
    exact = _result(_run(2, steps=60))
    for sharing in ("float16", "bfloat16"):
        low = _result(_run(2, sharing=sharing, steps=60))
        assert abs(low["test_error"] - exact["test_error"]) <= 0.01, (sharing, low["test_error"], exact["test_error"])
        assert low["bytes"] == exact["bytes"] / 4          # float64 gradients sent as 16 bits
    local = _result(_run(2, steps=60, local_every=4))
    assert local["bytes"] < exact["bytes"] and local["test_error"] < 0.2


def test_a_rank_that_dies_stops_the_others_with_a_clear_error():
    proc = _run(2, die=1, timeout=120)
    assert proc.returncode != 0
    assert "DistributedError" in proc.stderr and "did not complete" in proc.stderr


def test_theta_train_distributed_prints_one_summary():
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "theta", "train", "logreg", "--distributed", "--epochs", "3",
           "--quiet", "--no-plots"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("logreg ") == 1 and "2 MPI ranks" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("aware", ["1", "0"], ids=["device-buffers", "pinned-staging"])
def test_cuda_gradients_reach_mpi_from_device_memory_or_through_pinned_staging(aware, standin_env):
    """Not a GPU test: the cuda backend's code under the pycuda stand-in (tests/standin, whose
    device pointers are host memory, so MPI can read them either way). It checks the two
    transports' plumbing and that each says which it uses; only a GPU and a CUDA-aware MPI show
    the real thing."""
    proc = _run(2, "cuda", batch=16, cuda_aware=aware, env=standin_env, timeout=600)
    gpu = _result(proc)
    assert gpu["transport"] == ("device" if aware == "1" else "pinned")
    assert ("CUDA-aware: gradients go to the all-reduce from device memory" in proc.stderr) == (aware == "1")
    one = _result(_run(1, "reference", batch=16))
    np.testing.assert_allclose(gpu["W"], one["W"], rtol=1e-9, atol=1e-12)

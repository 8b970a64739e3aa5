"""The cuda device's own code, run in CI without a GPU through the review's pycuda stand-in.

NOT a GPU test: ../shared/reviews/cuda-harness/fake-pycuda is a strict fake of pycuda's driver
API (context rules per thread, pointer and size checks on every copy and launch, pool blocks
poisoned when freed) whose kernels run through emu. It runs tests/test_gpu.py in a subprocess
with the fake on the path, so runtime/cuda.py's calls, argument packing, status word, in-place
updates and context handling are exercised on every machine. Only a real GPU run (``pytest -m
gpu`` on an NVIDIA machine) shows what the driver and the hardware do.
"""
import os
import pathlib
import subprocess
import sys

import pytest

from theta.runtime.nvcc import find_nvcc

HARNESS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "reviews" / "cuda-harness" / "fake-pycuda"


@pytest.mark.slow
@pytest.mark.skipif(not HARNESS.is_dir(), reason=f"the pycuda stand-in is not at {HARNESS}")
@pytest.mark.skipif(find_nvcc() is None, reason="the stand-in loads cubins that nvcc builds")
def test_gpu_tests_pass_on_the_pycuda_standin():
    env = dict(os.environ, THETA_FAKE_CUDA="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(HARNESS), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                           str(pathlib.Path(__file__).with_name("test_gpu.py"))],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]

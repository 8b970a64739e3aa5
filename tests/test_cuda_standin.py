"""The cuda device's own code, run in CI without a GPU through theta's pycuda stand-in.

NOT a GPU test: tests/standin/pycuda is a strict fake of pycuda's driver API (context rules per
thread, pointer and size checks on every copy and launch, pool blocks poisoned when freed) whose
kernels run through emu. It runs tests/test_gpu.py in a subprocess with the fake on the path
(the ``gpu_tests_on_standin`` fixture, tests/conftest.py), so runtime/cuda.py's calls, argument
packing, status word, in-place updates and context handling are exercised on every machine. Only
a real GPU run (``pytest -m gpu`` on an NVIDIA machine) shows what the driver and the hardware do.
"""
import pathlib

import pytest


@pytest.mark.slow
def test_gpu_tests_pass_on_the_pycuda_standin(gpu_tests_on_standin):
    gpu_tests_on_standin(str(pathlib.Path(__file__).with_name("test_gpu.py")))   # all ran, none skipped

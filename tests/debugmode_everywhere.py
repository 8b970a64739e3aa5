"""A pytest plugin: every theta.function of a test session compiled in DebugMode.

    cd tests && python -m pytest -p debugmode_everywhere -k emu test_ops_elemwise.py test_emu_gemm.py ...

Any DebugModeError is then a false alarm of DebugMode's tolerance (compiler/tolerance.py) or a
kernel bug. At the end it prints the largest error seen in units of its error bound (DebugMode
raises beyond tolerance.SAFETY of them), with the test and the kernel's ops, so a change to a
rule can be judged by how close correct kernels come to it.
"""
from __future__ import annotations

import inspect

import numpy as np

from theta.compiler import options, tolerance
from theta.runtime import debug_mode

_from_config = options.CompileOptions.from_config.__func__
_compare = debug_mode.compare
_worst: list = []
_test = [""]


def _debug_from_config(cls, backend=None, nan_guard=None, optimizer=None, debug_mode=False):
    return _from_config(cls, backend, nan_guard, optimizer, True)


def _measuring_compare(got, want, bound):
    if got.dtype.kind in "fc" and got.size:
        with np.errstate(all="ignore"):
            err = np.abs(got.astype(np.complex128) - want.astype(np.complex128))
            units = np.where(np.isfinite(err), err / np.maximum(tolerance.allowed(bound, got.dtype) / tolerance.SAFETY,
                                                                1e-300), 0.0)
        guard = inspect.currentframe().f_back.f_locals.get("guard")
        ops = [str(n.op) for n in guard.nodes][:6] if guard is not None else []
        _worst.append((float(units.max()), str(got.dtype), got.shape, _test[0], ops))
    return _compare(got, want, bound)


def pytest_configure(config):
    options.CompileOptions.from_config = classmethod(_debug_from_config)
    debug_mode.compare = _measuring_compare


def pytest_runtest_setup(item):
    _test[0] = item.nodeid


def pytest_terminal_summary(terminalreporter):
    _worst.sort(key=lambda w: -w[0])
    terminalreporter.write_line(f"DebugMode everywhere: {len(_worst)} kernel outputs compared; the largest "
                                "errors in units of their bound:")
    for units, dtype, shape, test, ops in _worst[:10]:
        terminalreporter.write_line(f"  {units:.3g}  {dtype}{list(shape)}  {test}  {ops}")

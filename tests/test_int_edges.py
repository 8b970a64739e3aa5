"""Integer edge values in the kernels (issue 29 item 8): no input value may crash a kernel, and
every integer op gives NumPy's answer at MIN, MAX, -1 and 0, on emu and (the same C) on a GPU.

C leaves these undefined where NumPy defines them: MIN // -1 and MIN % -1 (a SIGFPE on x86),
signed overflow of +, -, * and negation (g++ folds ``x + 1 > x`` to true), mixed signed and
unsigned operands (C computes int32 - uint32 in unsigned, NumPy in int64), and float to
integer conversion of NaN, inf or an out-of-range value (where NumPy's own result depends on
the CPU and the array's length, so theta defines it: NaN is 0, the rest saturates).

The operator sweep runs in a child process (tests/int_edges_probe.py), so a kernel that traps
fails its test instead of killing pytest.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.runtime.nvcc import find_nvcc, resources

PROBE = Path(__file__).with_name("int_edges_probe.py")


def run_child(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", code] if code else [sys.executable, str(PROBE), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def assert_clean_exit(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode < 0:
        pytest.fail(f"{what}: the process was killed by signal {-proc.returncode} (a kernel trapped)\n{proc.stderr[-3000:]}")
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


def test_int_min_div_minus_one_does_not_kill_the_process():
    """The issue's example: INT_MIN // -1 and INT64_MIN % -1 on emu wrap as NumPy does
    (MIN // -1 == MIN, x % -1 == 0) instead of raising SIGFPE."""
    code = """if True:
        import numpy as np, theta, theta.tensor as T
        for dt in ("int32", "int64"):
            x, y = T.vector("x", dtype=dt), T.vector("y", dtype=dt)
            lo = np.iinfo(dt).min
            xv, yv = np.array([lo, lo, 5, -5], dt), np.array([-1, -1, -1, -1], dt)
            q, r = theta.function([x, y], [x // y, x % y], backend="emu")(xv, yv)
            assert q.tolist() == [lo, lo, -5, 5], (dt, q)
            assert r.tolist() == [0, 0, 0, 0], (dt, r)
        print("ok")
    """
    proc = run_child(code=code)
    assert_clean_exit(proc, "INT_MIN // -1 on emu")
    assert "ok" in proc.stdout


@pytest.mark.parametrize("dtypes", [
    ("int8", "int8"), ("int16", "int16"), ("int32", "int32"), ("int64", "int64"),
    ("uint8", "uint8"), ("uint16", "uint16"), ("uint32", "uint32"), ("uint64", "uint64"),
    ("int32", "uint32"), ("int64", "uint64"), ("uint8", "int16"), ("int8", "uint64"),
], ids="-".join)
def test_every_integer_op_at_the_edges(dtypes):
    """Every pair of edge values through //, %, +, -, *, negation, abs, sqr, maximum, minimum,
    comparisons, a fused switch, a reduction and every cast: emu bit for bit the reference,
    and the reference NumPy's."""
    assert_clean_exit(run_child(*dtypes), f"integer ops on {dtypes}")


FLOAT_EDGES = [np.nan, np.inf, -np.inf, 1e30, -1e30, 2.0 ** 63, -(2.0 ** 63), 2.0 ** 64, 2.0 ** 32, 2.0 ** 31,
               -(2.0 ** 31), -(2.0 ** 31) - 1, 300.5, 255.5, 256.0, 127.9, -128.9, -129.0, -0.5, -1.5, 0.0, 42.7]
INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def saturated(values, dtype: str) -> list:
    """What theta defines float -> integer to be, written out with Python integers."""
    info = np.iinfo(dtype)
    out = []
    for v in values:
        if v != v:
            out.append(0)
        elif v in (np.inf, -np.inf):
            out.append(info.max if v > 0 else info.min)
        else:
            out.append(min(max(int(v), info.min), info.max))     # int() truncates toward zero
    return out


@pytest.mark.parametrize("fdtype", ["float32", "float64"])
def test_float_to_int_casts_are_defined(backend, fdtype):
    """NaN, +-inf and out-of-range floats cast to every integer dtype: NaN is 0, the rest
    saturates, truncation toward zero in range; the same on the reference and emu, both as
    T.cast and as a float expression stored in an integer output."""
    values = np.array(FLOAT_EDGES, dtype=fdtype)
    x = T.vector("x", dtype=fdtype)
    outs = [T.cast(x, d) for d in INTS] + [T.cast(x * 1.0, "int32") + 0]
    got = theta.function([x], outs, backend=backend)(values)
    for d, g in zip(INTS + ["int32 (fused)"], got):
        want = saturated(values.astype("float64"), d.split()[0])
        assert g.tolist() == want, f"{fdtype} -> {d} on {backend}: {g.tolist()} != {want}"


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc not found: install the CUDA toolkit or set THETA_NVCC")
def test_the_integer_kernels_compile_with_nvcc():
    """The same C on a GPU: the prelude's integer helpers (wrapping arithmetic, the guarded
    division, theta_cast) compile with nvcc in elementwise and reduction kernels."""
    a, b = T.tensor("int32", shape=(4, 1), name="a"), T.tensor("uint32", shape=(1, 3), name="b")
    x = T.vector("x", dtype="float32")
    f = theta.function([a, b, x], [a // b, a % b, -a, abs(a), a * b + 1, T.max(a // b, axis=0),
                                    T.cast(a, "int8")] + [T.cast(x, d) for d in INTS + ["bool"]], backend="emu")
    kernels = f.specialization(np.zeros((4, 1), "int32"), np.ones((1, 3), "uint32"),
                               np.zeros(3, "float32")).program.kernels
    info = resources("\n".join(k.source for k in kernels), "sm_80")
    assert all(k.name in info for k in kernels), (sorted(info), [k.name for k in kernels])

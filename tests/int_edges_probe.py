"""Child process of tests/test_int_edges.py: every integer elementwise op over every pair of a
dtype's edge values (MIN, MIN + 1, -1, 0, 1, MAX - 1, MAX ...), on emu against the reference
backend, bit for bit, and the main operators against NumPy itself.

It runs in a subprocess because the bug class it hunts kills the interpreter (a SIGFPE from
INT_MIN // -1): the parent sees a signal in the return code and fails the test instead.

    python tests/int_edges_probe.py DTYPE_A DTYPE_B
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

import theta
import theta.tensor as T

INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def edges(dtype: str) -> np.ndarray:
    """The values where integer arithmetic overflows, traps or changes sign, and a few ordinary ones."""
    info = np.iinfo(dtype)
    small = [-7, -2, -1, 0, 1, 2, 7] if info.min < 0 else [0, 1, 2, 7]
    return np.array(sorted({info.min, info.min + 1, *small, info.max - 1, info.max}), dtype=dtype)


def ops(a, b) -> dict:
    out = {"a // b": a // b, "a % b": a % b, "a + b": a + b, "a - b": a - b, "a * b": a * b,
           "-a": -a, "abs(a)": abs(a), "sqr(a)": T.sqr(a), "maximum": T.maximum(a, b), "minimum": T.minimum(a, b),
           "a < b": T.lt(a, b), "a == b": T.eq(a, b), "a + 1 > a": T.gt(a + 1, a),
           "fused": T.switch(T.lt(a * b, 0), a // b, a % b), "sgn(a)": T.sgn(a),
           "sum": T.sum(a * b, axis=1), "max": T.max(a // b, axis=0), "min": T.min(a - b, axis=1),
           "argmax": T.argmax(a * b, axis=0)}
    for d in INTS + ["bool", "float32", "float64"]:
        out[f"cast {d}"] = T.cast(a, d)
    return out


# the operators whose NumPy counterpart is the same call on the arrays (NumPy as a third witness)
NUMPY = {"a // b": np.floor_divide, "a % b": np.remainder, "a + b": np.add, "a - b": np.subtract,
         "a * b": np.multiply, "-a": lambda a, b: np.negative(a), "abs(a)": lambda a, b: np.abs(a)}


def main(da: str, db: str) -> None:
    warnings.simplefilter("ignore")          # NumPy warns about the zero divisors and overflows
    theta.config.emu_check = False           # no races to look for: the values are the point
    av, bv = edges(da)[:, None], edges(db)[None, :]
    a, b = T.tensor(da, shape=av.shape, name="a"), T.tensor(db, shape=bv.shape, name="b")
    table = ops(a, b)
    names = list(table)
    outs = [table[n] for n in names]
    want = theta.function([a, b], outs, backend="reference")(av, bv)
    got = theta.function([a, b], outs, backend="emu")(av, bv)
    for name, g, w in zip(names, got, want):
        what = f"{name} with a: {da}, b: {db}"
        assert g.dtype == w.dtype and g.shape == w.shape, f"{what}: emu {g.dtype}{g.shape}, reference {w.dtype}{w.shape}"
        np.testing.assert_array_equal(g, w, err_msg=f"{what}: emu and the reference differ")
        if name in NUMPY and da == db:
            np.testing.assert_array_equal(w, NUMPY[name](av, bv), err_msg=f"{what}: the reference is not NumPy")
    print("ok", da, db, len(names))


if __name__ == "__main__":
    main(*sys.argv[1:3])

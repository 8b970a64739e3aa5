"""Random draws: counter-based numbers (Philox4x32-10) that every backend draws bit for bit.

A ``RandomDraw`` node is one tensor of independent uniform (0, 1) or standard normal numbers.
Its only data input is a random state, an int64 shared variable ``[key, counter]`` owned by a
``RandomStreams`` (compiler/random.py), advanced by one after every call of a compiled
function (a default update). Element ``i`` of the draw whose ``stream`` is ``s`` is computed
from Philox4x32-10 with

    key     = state[0] + s * 0x9E3779B97F4A7C15   (mod 2**64; two 32-bit words, low first)
    counter = (i mod 2**32, i >> 32, state[1] mod 2**32, state[1] >> 32)

so a number depends only on (seed, stream, call, element): nothing is stored between elements,
any thread computes any element, and a draw is an elementwise op that fuses into the kernel
that consumes it (a dropout mask is computed where it is applied, never written on its own).

Bits to numbers, exactly the same way in NumPy (below) and C (kernels/prelude.cuh.j2):

- float32 uniform: (2 * (w0 >> 9) + 1) * 2**-24, an odd multiple of 2**-24 in (0, 1);
- float64 uniform: (2 * k + 1) * 2**-53 with k the 52 bits w0 << 20 | w1 >> 12;
- normal: Box-Muller in float64 from two float64 uniforms (w0, w1) and (w2, w3),
  sqrt(-2 log u1) cos(2 pi u2), rounded once to the dtype. log and cos are evaluated by fixed
  polynomials in +, -, *, / and sqrt only (all correctly rounded in IEEE arithmetic, and
  spelled as __dmul_rn & co. in C so that nvcc never contracts them into FMAs), so the
  normals are bit-identical across NumPy, g++ and the GPU, not just close.

- permutation (int64): row ``r`` of a draw of shape (..., n) is a permutation of range(n) by a
  swap-or-not shuffle (Hoang, Morris and Rogaway, CRYPTO 2012): element j starts at x = j and
  each round t picks K_t in [0, n) (Philox at counter (0xFFFFFFFF, r, call), the draw's key
  stepped by (t + 1) * ROUND_STEP) and replaces x by its partner K_t - x (mod n) when the
  Philox bit of max(x, partner) (counter (max, r, call), same key) is set. Each round pairs
  the elements, so the result is a permutation; SWAP_ROUNDS_PER_BIT * ceil(log2 n) +
  SWAP_ROUNDS_EXTRA rounds make it indistinguishable from a uniform one. O(log n) work per
  element and no sort, so it fuses like the other draws and permutation(30000) costs 30000
  elements, not an n x n comparison. n < 2**32 - 1.

Everything else (low/high scaling, Bernoulli masks ``u < p``, categorical draws) is ordinary
graph algebra on top, built by compiler/random.py.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import DTypeError, ShapeError, describe
from ..graph import Op, Variable
from ..types import TensorType
from .args import Arg, fold, renumber, resolve

GOLDEN = 0x9E3779B97F4A7C15     # the key step between streams (2**64 / golden ratio, odd)
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
DISTS = ("uniform", "normal", "permutation")
ROUND_STEP = 0xD1B54A32D192ED03   # key step between swap-or-not rounds (odd, unrelated to GOLDEN)
SWAP_ROUNDS_PER_BIT, SWAP_ROUNDS_EXTRA = 6, 6
MAX_PERMUTATION = 2 ** 32 - 2    # the largest n: 0xFFFFFFFF is the counter of the round keys


@dataclasses.dataclass(frozen=True)
class RandomDraw(Op):
    """``dist`` numbers of ``dtype`` and ``shape`` (ints, or Args: symbolic sizes fixed when the
    function is specialized) from the state ``inputs[0]`` and stream ``stream``."""
    dist: str
    dtype: str
    shape: tuple
    stream: int
    replica: int = 0   # copies of one draw (the same numbers) for kernels that each recompute it
    family = "elemwise"

    def make_type(self, state: Variable, *sizes: Variable) -> TensorType:
        if state.dtype != "int64" or state.ndim != 1 or state.type.shape[0] not in (None, 2):
            raise DTypeError(f"a random draw needs an int64 state [key, counter] of shape (2,), got {describe(state)}")
        allowed = ("int64",) if self.dist == "permutation" else ("float32", "float64")
        if self.dist not in DISTS or self.dtype not in allowed:
            raise DTypeError(f"random draw: no {self.dist} numbers of dtype {self.dtype}")
        if self.dist == "permutation" and not self.shape:
            raise ShapeError("random draw: a permutation needs an axis to permute")
        if self.dist == "permutation" and isinstance(self.shape[-1], int) and self.shape[-1] > MAX_PERMUTATION:
            raise ShapeError(f"random permutation: n = {self.shape[-1]} is more than the {MAX_PERMUTATION} supported")
        for d in self.shape:
            if isinstance(d, int) and d < 0:
                raise ShapeError(f"random draw: a negative size {self.shape}")
        return TensorType(self.dtype, tuple(None if isinstance(d, Arg) else d for d in self.shape))

    def perform(self, state: np.ndarray, *sizes) -> np.ndarray:
        shape = tuple(resolve(d, (state,) + sizes) for d in self.shape)
        if any(d < 0 for d in shape):
            raise ShapeError(f"random draw: a negative size {shape}")
        return draw(self.dist, self.dtype, shape, np.asarray(state), self.stream)

    def grad(self, inputs, output, gout):
        return [None] * len(inputs)    # numbers do not depend smoothly on the state

    def rebuild(self, inputs, ctx) -> Variable:
        shape = tuple(fold(d, inputs) for d in self.shape)
        shape, inputs = renumber(shape, inputs, 1)
        return dataclasses.replace(self, shape=shape)(*inputs)

    def __str__(self) -> str:
        return f"Random{{{self.dist},{self.dtype},stream={self.stream}}}"


# --------------------------------------------------------------------------------- NumPy side

def philox4x32(counter: list, key: tuple) -> list:
    """Philox4x32-10 (Salmon et al., SC'11) on arrays of counters: four uint64 arrays holding
    32-bit words, and a key of two 32-bit ints; returns four such arrays."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for r in range(10):
        if r:
            k0 = (k0 + np.uint64(_W0)) & _MASK32
            k1 = (k1 + np.uint64(_W1)) & _MASK32
        p0 = np.uint64(_M0) * c0
        p1 = np.uint64(_M1) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _MASK32)
    return [c0, c1, c2, c3]


def stream_key(state_key: int, stream: int) -> tuple:
    k = (int(state_key) + stream * GOLDEN) % 2 ** 64
    return k & 0xFFFFFFFF, k >> 32


def words(state: np.ndarray, stream: int, n: int) -> list:
    """The four Philox words of elements 0..n-1 of a draw."""
    i = np.arange(n, dtype=np.uint64)
    call = int(state[1]) % 2 ** 64
    lo, hi = np.uint64(call & 0xFFFFFFFF), np.uint64(call >> 32)
    return philox4x32([i & _MASK32, i >> np.uint64(32), np.full(n, lo), np.full(n, hi)],
                      stream_key(int(state[0]), stream))


def uniform32(w0: np.ndarray) -> np.ndarray:
    return ((w0 >> np.uint64(9)) * np.uint64(2) + np.uint64(1)).astype(np.float32) * np.float32(2.0 ** -24)


def uniform64(w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    k = (w0 << np.uint64(20)) | (w1 >> np.uint64(12))
    return (k * np.uint64(2) + np.uint64(1)).astype(np.float64) * 2.0 ** -53


# Series coefficients, shared with the C side through ``c_constants`` (one definition).
LOG_TERMS = [1.0 / (2 * k + 1) for k in range(12)]                 # 2 atanh(s)/(2 s) in s**2
COS_TERMS = [(-1.0) ** k / math.factorial(2 * k) for k in range(12)]   # cos(x) in x**2
LN2 = math.log(2.0)
TWO_PI = 2.0 * math.pi
SQRT_HALF = math.sqrt(0.5)


def _log01(u: np.ndarray) -> np.ndarray:
    """log(u) for u in (0, 1], in a fixed sequence of correctly rounded float64 operations."""
    m, e = np.frexp(u)                         # u = m * 2**e, m in [0.5, 1): exact
    small = m < SQRT_HALF
    m = np.where(small, m * 2.0, m)            # m in [sqrt(1/2), sqrt(2)): exact
    e = np.where(small, e - 1, e).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = np.full_like(s, LOG_TERMS[-1])
    for c in reversed(LOG_TERMS[:-1]):
        p = p * s2 + c
    return e * LN2 + (s + s) * p


def _cos2pi(t: np.ndarray) -> np.ndarray:
    """cos(2 pi t) for t in [0, 1), by symmetry down to [0, pi/2] and a fixed series."""
    a = np.abs(t - 0.5)                        # cos(2 pi t) = -cos(2 pi a), a in [0, 0.5]: exact
    far = a > 0.25
    a = np.where(far, 0.5 - a, a)              # cos(2 pi a) = -cos(2 pi (0.5 - a)): exact
    x = a * TWO_PI
    x2 = x * x
    p = np.full_like(x, COS_TERMS[-1])
    for c in reversed(COS_TERMS[:-1]):
        p = p * x2 + c
    return np.where(far, p, -p)


def normal64(w: list) -> np.ndarray:
    u1, u2 = uniform64(w[0], w[1]), uniform64(w[2], w[3])
    return np.sqrt(_log01(u1) * -2.0) * _cos2pi(u2)


def swap_rounds(n: int) -> int:
    """Rounds of the swap-or-not shuffle of range(n)."""
    return 0 if n <= 1 else SWAP_ROUNDS_PER_BIT * (int(n) - 1).bit_length() + SWAP_ROUNDS_EXTRA


def permutation(shape: tuple, state: np.ndarray, stream: int) -> np.ndarray:
    """Rows of random permutations (see the module's docstring; kernels/prelude.cuh.j2's
    theta_rand_permutation is the same computation, element by element)."""
    total, n = math.prod(shape), shape[-1]
    if n > MAX_PERMUTATION:
        raise ShapeError(f"random permutation: n = {n} is more than the {MAX_PERMUTATION} supported")
    if total == 0:
        return np.zeros(shape, dtype=np.int64)
    rows = total // n
    x = np.tile(np.arange(n, dtype=np.uint64), rows)
    row_of = np.repeat(np.arange(rows, dtype=np.uint64) & _MASK32, n)
    call = int(state[1]) % 2 ** 64
    lo, hi = np.uint64(call & 0xFFFFFFFF), np.uint64(call >> 32)
    base = (int(state[0]) + stream * GOLDEN) % 2 ** 64
    un = np.uint64(n)
    for t in range(swap_rounds(n)):
        k = (base + (t + 1) * ROUND_STEP) % 2 ** 64
        key = (k & 0xFFFFFFFF, k >> 32)
        r = np.arange(rows, dtype=np.uint64) & _MASK32
        w = philox4x32([np.full(rows, 0xFFFFFFFF, dtype=np.uint64), r, np.full(rows, lo), np.full(rows, hi)], key)
        pick = (((w[0] << np.uint64(32)) | w[1]) % un)[np.repeat(np.arange(rows), n)]
        partner = (pick + un - x) % un
        top = np.maximum(x, partner)
        bit = philox4x32([top, row_of, np.full(total, lo), np.full(total, hi)], key)[0] & np.uint64(1)
        x = np.where(bit == np.uint64(1), partner, x)
    return x.astype(np.int64).reshape(shape)


def draw(dist: str, dtype: str, shape: tuple, state: np.ndarray, stream: int) -> np.ndarray:
    if dist == "permutation":
        return permutation(shape, state, stream)
    n = math.prod(shape)
    w = words(state, stream, n)
    if dist == "uniform":
        out = uniform32(w[0]) if dtype == "float32" else uniform64(w[0], w[1])
    else:
        out = normal64(w).astype(dtype)
    return out.reshape(shape)


def c_constants() -> dict:
    """The series and constants for kernels/prelude.cuh.j2, printed exactly (repr round-trips)."""
    return {"log_terms": [repr(c) for c in LOG_TERMS], "cos_terms": [repr(c) for c in COS_TERMS],
            "ln2": repr(LN2), "two_pi": repr(TWO_PI), "sqrt_half": repr(SQRT_HALF),
            "round_step": f"{ROUND_STEP:#x}ULL", "swap_per_bit": SWAP_ROUNDS_PER_BIT,
            "swap_extra": SWAP_ROUNDS_EXTRA}

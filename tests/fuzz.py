"""Fuzzing every kernel family: random graphs on emu against the oracle.

A fuzzed program is a list of Python source lines that build a theta graph with static shapes
(``v3 = T.dot(v1, x2.T)``), input values for its leaves, and the names of its outputs. The lines
are executed to build the graph, and the same lines are what a reproducer under
tests/regressions/ contains, so a failing graph is written out exactly as it was built.

The oracle is the reference backend run on the *unrewritten* graph (``optimizer='None'``: only
the passes needed to run at all), so a wrong rewrite is caught rather than shared by both sides.
The kernel backend (emu, the generated CUDA C on the CPU) runs the fully rewritten, fused graph.
Values and gradients (of a random projection of the float outputs) must agree: exactly for
integers and for random draws (the same Philox bits on every backend), to a tolerance for floats
(float32 sums in another order), with NaN and +-inf in the same places.

Coverage: float32, float64, every integer dtype (with the edge values MIN, MAX, -1 and 0, where
C traps or leaves the result undefined: no input value may crash a kernel) and mixed graphs; sizes at vector, block and tile
boundaries (1, 3, 4, 5, 31-33, 255-257, 1024+); views (transposes, stepped and reversed slices,
broadcasts, reshapes); elementwise ops including special values (0, +-inf, NaN); reductions;
dot/GEMM; softmax, log-softmax and crossentropies; gather and scatter (advanced indexing,
inc_subtensor / set_subtensor with repeated indices); concatenate; scan; conv2d; pool_2d; and
random draws. Each drawn example compiles a *group* of independent programs into one function
(an emu build costs g++ seconds).

CI runs a fixed budget through tests/test_fuzz.py (derandomized). Longer runs:

    python -m tests.fuzz --seed 7 --minutes 30 [--theme conv] [--out tests/regressions]

write every failing group (shrunk by hypothesis) as tests/regressions/test_fuzz_<...>.py with
its inputs in a .npz beside it; the suite then runs it.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import theta
import theta.tensor as T
from theta.errors import ThetaError
from theta.tensor.shared_randomstreams import RandomStreams
from theta.tensor.signal.pool import pool_2d

# sizes that cross emu's and CUDA's vector widths (4), warps (32), blocks (256) and tiles
EDGE = [1, 3, 4, 5, 31, 32, 33, 255, 256, 257, 1024, 1025]
SMALL = [1, 2, 3, 4, 5, 8]
MAX_ELEMS = 1 << 14      # per 2-D tensor: the checking mode runs every launch three times
MAX_VECTOR = 4099

TOL = {"float16": 1e-2, "float32": 2e-3, "float64": 1e-8}
INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
# the integer theme draws mostly the dtypes models use
INT_CHOICE = ["int32", "int64", "int32", "int64"] + INT_DTYPES


def int_edges(dtype: str) -> np.ndarray:
    """The values where integer arithmetic overflows or traps in C: MIN // -1 (SIGFPE on x86),
    -MIN, MAX + 1, x % 0 ..."""
    info = np.iinfo(dtype)
    return np.array(sorted({info.min, info.min + 1, info.max, info.max - 1, 0, 1} | ({-1} if info.min else set())),
                    dtype=dtype)

NAMESPACE = {"np": np, "theta": theta, "T": T, "pool_2d": pool_2d, "RandomStreams": RandomStreams}

# themes: which op families a program draws from. "mixed" draws from all of them
THEMES = ["elemwise", "special", "integer", "reduce", "dot", "softmax", "index", "concat", "scan", "conv",
          "random", "mixed"]


# ------------------------------------------------------------------------------------ programs

class Program:
    """Source lines building a graph, input values, outputs (and which of them must match bit
    for bit), and whether gradients are checked."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: list[str] = []
        self.inputs: list[str] = []
        self.values: dict[str, np.ndarray] = {}
        self.outputs: list[str] = []
        self.exact: list[str] = []
        self.grad = True
        self.ns: dict = dict(NAMESPACE)

    def var(self, name):
        return self.ns[name]


class Builder:
    """Draws one program. ``draw(strategy)`` is hypothesis's ``data.draw``; every structural
    choice goes through it (so hypothesis can shrink a failing program), the input values come
    from a NumPy generator seeded by one drawn integer."""

    def __init__(self, draw, prefix: str, theme: str) -> None:
        self.draw = draw
        self.theme = theme
        self.p = Program(prefix)
        self.rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
        self.special = theme == "special"
        self.p.grad = theme not in ("special", "integer")
        self.fdtype = draw(st.sampled_from(["float64", "float32"]))
        self.pool: list[str] = []
        self.k = 0
        self.srng = None

    # --- helpers
    def choice(self, seq):
        seq = list(seq)
        return self.draw(st.sampled_from(seq)) if seq else None

    def name(self, kind="v") -> str:
        self.k += 1
        return f"{self.p.prefix}{kind}{self.k}"

    def emit(self, expr: str, add: bool = True, kind: str = "v"):
        """Append ``name = expr`` and build it; a typed refusal (ThetaError) drops the line."""
        name = self.name(kind)
        line = f"{name} = {expr}"
        try:
            exec(line, self.p.ns)
        except ThetaError:
            return None
        self.p.lines.append(line)
        if add:
            self.pool.append(name)
        return name

    def input(self, dtype: str, shape: tuple, kind: str = "normal", high: int = 0, add: bool = True) -> str:
        name = self.name("x")
        line = f"{name} = T.tensor({dtype!r}, shape={tuple(shape)!r}, name={name!r})"
        exec(line, self.p.ns)
        self.p.lines.append(line)
        self.p.inputs.append(name)
        self.p.values[name] = self.value(dtype, shape, kind, high)
        if add:
            self.pool.append(name)
        return name

    def value(self, dtype, shape, kind, high):
        rng = self.rng
        if kind == "index":
            return rng.integers(0, high, size=shape).astype(dtype)
        if kind == "unique_index":     # without repeats (at most ``high`` of them)
            return rng.permutation(high)[:shape[0]].astype(dtype)
        if dtype.startswith(("int", "uint")):
            low = -20 if dtype.startswith("int") else 0
            v = rng.integers(low, 21, size=shape).astype(dtype)
            if self.theme == "integer" and v.size:     # 40% of the entries at the edges
                mask = rng.random(shape) < 0.4
                v = np.where(mask, rng.choice(int_edges(dtype), size=shape), v).astype(dtype)
            return v
        v = rng.standard_normal(shape)
        if kind == "positive":
            v = np.abs(v) + 0.5
        if self.special and v.size:
            mask = rng.random(shape) < 0.25
            specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e-30])
            v = np.where(mask, rng.choice(specials, size=shape), v)
        return v.astype(dtype)

    def t(self, name):
        return self.p.ns[name]

    def floats(self, ndim=None, min_rows=1):
        return [n for n in self.pool if self.t(n).dtype.startswith("float") and (ndim is None or self.t(n).ndim in ndim)
                and (not self.t(n).ndim or self.t(n).type.shape[0] >= min_rows)]

    def ints(self, ndim=None):
        return [n for n in self.pool if self.t(n).dtype.startswith(("int", "uint"))
                and (ndim is None or self.t(n).ndim in ndim)]

    def dim(self, limit=MAX_ELEMS, sizes=None):
        sizes = [s for s in (sizes or EDGE) if s <= limit] or [1]
        return self.choice(sizes)

    def shape2(self):
        """A matrix shape; one of its sides may cross a large boundary, the product stays small."""
        sizes = SMALL if self.theme in ("scan",) else EDGE
        r = self.dim(sizes=sizes)
        c = self.dim(limit=max(1, MAX_ELEMS // r), sizes=sizes)
        return (r, c)

    # --- program
    def build(self) -> Program:
        dt = self.fdtype
        shape_kind = self.choice(["matrix", "vector", "tensor3"])
        if self.theme == "integer":
            self.input(self.choice(INT_CHOICE), self.shape2())
            self.input(self.choice(INT_CHOICE), self.shape2() if self.draw(st.booleans()) else (1,))
        elif self.theme == "conv":
            f_conv(self)
            if not self.pool:        # the drawn geometry was refused (a filter larger than its image)
                self.input(dt, self.shape2())
        elif shape_kind == "vector" and self.theme not in ("softmax", "scan"):
            self.input(dt, (self.choice(EDGE + [2049, MAX_VECTOR]),))
        elif shape_kind == "tensor3" and self.theme not in ("softmax", "scan", "dot"):
            self.input(dt, (self.choice(SMALL), self.choice(SMALL), self.choice(EDGE[:9])))
        else:
            self.input(dt, self.shape2())
        families = FAMILIES[self.theme]
        for _ in range(self.draw(st.integers(1, 6))):
            family = self.choice(families)
            FAMILY_FNS[family](self)
        produced = [n for n in self.pool if n not in self.p.inputs]
        if not produced and not self.p.outputs:
            produced = [self.emit(f"{self.pool[0]} * 2")]
        keep = self.draw(st.sampled_from(["all", "last"]))
        chosen = produced if keep == "all" else produced[-1:]
        self.p.outputs = list(dict.fromkeys([n for n in self.p.outputs + chosen if n is not None]))
        self.p.exact = [n for n in self.p.exact if n in self.p.outputs]
        return self.p


# ------------------------------------------------------------------------------------ families

UNARY_SAFE = {
    "tanh": "T.tanh({a})", "sigmoid": "T.nnet.sigmoid({a})", "softplus": "T.nnet.softplus({a})", "neg": "-{a}",
    "sqr": "T.sqr({a})", "abs": "abs({a})", "exp": "T.exp(T.clip({a}, -5, 5))", "log1p_sqr": "T.log(1 + {a} * {a})",
    "relu": "T.nnet.relu({a})", "sin": "T.sin({a})", "erf": "T.erf({a})", "sqrt_abs": "T.sqrt(abs({a}) + 0.25)",
    "elu": "T.nnet.elu({a})", "softsign": "T.nnet.softsign({a})", "leaky": "T.nnet.relu({a}, 0.1)",
    "inv": "1.0 / (T.sqr({a}) + 1.0)", "cast": "T.cast({a}, {other!r})",
}
UNARY_SPECIAL = {   # domain errors and overflow allowed: NaN and inf must land in the same places
    "exp": "T.exp({a})", "log": "T.log({a})", "sqrt": "T.sqrt({a})", "inv": "1.0 / {a}", "tanh": "T.tanh({a})",
    "sigmoid": "T.nnet.sigmoid({a})", "softplus": "T.nnet.softplus({a})", "abs": "abs({a})", "sgn": "T.sgn({a})",
    "floor": "T.floor({a})", "relu": "T.nnet.relu({a})", "log1p": "T.log1p({a})" if hasattr(T, "log1p") else "T.log(1 + {a})",
    "neg": "-{a}", "sqr": "T.sqr({a})",
}
BINARY_SAFE = {
    "add": "{a} + {b}", "sub": "{a} - {b}", "mul": "{a} * {b}", "maximum": "T.maximum({a}, {b})",
    "minimum": "T.minimum({a}, {b})", "switch": "T.switch(T.gt({a}, {b}), {a}, 2 * {b})",
    "div": "{a} / (T.sqr({b}) + 0.5)", "pow": "T.pow(abs({a}) + 0.5, T.clip({b}, -2, 2))",
}
BINARY_SPECIAL = {
    "add": "{a} + {b}", "sub": "{a} - {b}", "mul": "{a} * {b}", "div": "{a} / {b}", "maximum": "T.maximum({a}, {b})",
    "minimum": "T.minimum({a}, {b})", "switch": "T.switch(T.lt({a}, {b}), {a}, {b})", "pow": "T.pow({a}, {b})",
}
BINARY_INT = {
    "add": "{a} + {b}", "sub": "{a} - {b}", "mul": "{a} * {b}", "maximum": "T.maximum({a}, {b})",
    "minimum": "T.minimum({a}, {b})", "int_div": "{a} // (abs({b}) + 1)", "mod": "{a} % (abs({b}) + 1)",
    "int_div_neg": "{a} // -(abs({b}) + 1)", "mod_neg": "{a} % -(abs({b}) + 1)",
    "int_div_any": "{a} // {b}", "mod_any": "{a} % {b}", "neg_mul": "-({a} * {b})",
    "lt_sum": "T.lt({a} + {b}, {a})",
    "switch": "T.switch(T.ge({a}, {b}), {a}, {b})", "lt": "T.lt({a}, {b})", "eq": "T.eq({a}, {b})",
    "and": "T.and_(T.gt({a}, 0), T.lt({b}, 3))",
}


def _broadcastable(sa, sb) -> bool:
    sa, sb = (1,) * (len(sb) - len(sa)) + tuple(sa), (1,) * (len(sa) - len(sb)) + tuple(sb)
    return all(x == y or x == 1 or y == 1 for x, y in zip(sa, sb))


def _partner(b: Builder, a: str, dtype_ok) -> str:
    """An operand broadcastable against ``a``: one from the pool, or a new input shaped like a
    row, a column or a scalar of ``a``."""
    sa = b.t(a).type.shape
    pool = [n for n in b.pool if dtype_ok(b.t(n).dtype) and _broadcastable(sa, b.t(n).type.shape)]
    how = b.choice(["pool", "pool", "new"]) if pool else "new"
    if how == "pool":
        return b.choice(pool)
    shape = b.choice([sa, sa[1:], tuple(1 if i == 0 else s for i, s in enumerate(sa)),
                      tuple(1 if i == len(sa) - 1 else s for i, s in enumerate(sa)), ()])
    dtype = b.t(a).dtype if dtype_ok(b.t(a).dtype) else b.fdtype
    return b.input(dtype, shape)


def f_unary(b: Builder):
    a = b.choice(b.floats())
    if a is None:
        return
    table = UNARY_SPECIAL if b.special else UNARY_SAFE
    op = b.choice(sorted(table))
    other = "float64" if b.t(a).dtype == "float32" else "float32"
    b.emit(table[op].format(a=a, other=other))


def f_binary(b: Builder):
    a = b.choice(b.floats())
    if a is None:
        return
    c = _partner(b, a, lambda d: d.startswith("float") or (not b.special and d.startswith("int")))
    table = BINARY_SPECIAL if b.special else BINARY_SAFE
    op = b.choice(sorted(table))
    x, y = (a, c) if b.draw(st.booleans()) else (c, a)
    if op in ("div", "pow") and b.t(y).dtype.startswith("int"):
        x, y = y, x
    b.emit(table[op].format(a=x, b=y))


def f_int(b: Builder):
    a = b.choice(b.ints())
    if a is None:
        a = b.input(b.choice(INT_CHOICE), b.t(b.pool[0]).type.shape)
    kind = b.choice(["binary", "binary", "unary", "reduce", "to_float"])
    if kind == "binary":
        c = _partner(b, a, lambda d: d.startswith(("int", "uint")))
        op = b.choice(sorted(BINARY_INT))
        b.emit(BINARY_INT[op].format(a=a, b=c))
    elif kind == "unary":
        b.emit(b.choice([f"-{a}", f"abs({a})", f"T.sqr({a})", f"T.cast({a}, 'int32')", f"T.cast({a}, 'int64')",
                         f"T.cast({a}, 'int8')", f"T.cast({a}, 'uint32')",
                         f"T.clip({a}, {-3 if b.t(a).dtype.startswith('int') else 0}, 7)",
                         # float -> int of NaN, +-inf and out-of-range values (theta_cast)
                         f"T.cast(T.log(T.cast({a}, 'float64')), 'int64')",
                         f"T.cast(T.cast({a}, 'float32') * 1e10, 'int32')"]))
    elif kind == "reduce" and b.t(a).ndim:
        axis = b.choice([None] + list(range(b.t(a).ndim)))
        op = b.choice(["T.sum", "T.max", "T.min", "T.argmax", "T.prod" if int(np.prod(b.t(a).type.shape)) <= 8 else "T.sum"])
        b.emit(f"{op}({a}, axis={axis})")
    elif kind == "to_float":
        b.emit(f"T.cast({a}, {b.fdtype!r}) * 0.5")


def f_view(b: Builder):
    a = b.choice(b.pool)
    if a is None:
        return
    shape = b.t(a).type.shape
    nd = len(shape)
    options = []
    if nd >= 2:
        options += [f"{a}.T", f"{a}[:, ::2]", f"{a}[::-1, 1:]", f"{a}.dimshuffle(1, 0{', 2' if nd == 3 else ''})"
                    if nd <= 3 else f"{a}.T"]
    if nd >= 1:
        options += [f"{a}[::2]", f"{a}[1::3]" if shape[0] > 1 else f"{a}[::1]", f"{a}[::-1]",
                    f"{a}[1:-1]" if shape[0] > 2 else f"{a}[:]", f"{a}.dimshuffle('x', {', '.join(map(str, range(nd)))})",
                    f"{a}.flatten()"]
    if nd == 1:
        options += [f"{a}.dimshuffle(0, 'x')"]
    if nd == 2 and shape[0] * shape[1] % 2 == 0:
        options += [f"{a}.reshape(({shape[0] * shape[1] // 2}, 2))"]
    if nd == 0:
        options += [f"{a} + T.zeros((3,), dtype={b.t(a).dtype!r})"]
    v = b.emit(b.choice(options))
    if v is not None and b.draw(st.booleans()):      # a view feeds an elementwise consumer
        if b.t(v).dtype.startswith("float"):
            b.emit(f"T.tanh({v}) + {v}" if not b.special else f"{v} * 2")


def f_reduce(b: Builder):
    a = b.choice([n for n in b.floats() if b.t(n).ndim])
    if a is None:
        return
    nd = b.t(a).ndim
    axis = b.choice([None] + list(range(nd)) + ([(0, 1)] if nd >= 2 else []) + ([-1] if nd >= 2 else []))
    op = b.choice(["T.sum", "T.mean", "T.max", "T.min", "T.prod_small", "T.argmax", "var"])
    keep = b.draw(st.booleans())
    if op == "T.prod_small":
        if int(np.prod(b.t(a).type.shape)) > 64:
            op = "T.sum"
        else:
            b.emit(f"T.prod(T.tanh({a}) + 1.0, axis={axis!r}, keepdims={keep})")
            return
    if op == "T.argmax":
        if isinstance(axis, tuple):
            axis = None
        v = b.emit(f"T.argmax({a}, axis={axis!r})", add=False)
        if v is not None:
            b.p.outputs.append(v)      # an integer output; ties are unlikely with random inputs
            b.pool.append(v)
        return
    if op == "var":
        b.emit(f"T.var({a}, axis={axis!r}, keepdims={keep})")
        return
    b.emit(f"{op}({a}, axis={axis!r}, keepdims={keep})")


def f_dot(b: Builder):
    a = b.choice([n for n in b.floats((1, 2))])
    if a is None:
        a = b.input(b.fdtype, b.shape2())
    sa = b.t(a).type.shape
    k = sa[-1]
    n = b.dim(limit=max(1, MAX_ELEMS // max(k, sa[0])))
    form = b.choice(["plain", "wT", "aT", "vec"])
    if form == "plain":
        w = b.input(b.fdtype, (k, n))
        v = b.emit(f"T.dot({a}, {w})")
    elif form == "wT":
        w = b.input(b.fdtype, (n, k))
        v = b.emit(f"T.dot({a}, {w}.T)")
    elif form == "aT" and len(sa) == 2:
        w = b.input(b.fdtype, (sa[0], n))
        v = b.emit(f"T.dot({a}.T, {w})")
    else:
        w = b.input(b.fdtype, (k,))
        v = b.emit(f"T.dot({a}, {w})")
    if v is not None and b.draw(st.booleans()):       # a GEMM epilogue: bias and activation
        bias = b.input(b.fdtype, b.t(v).type.shape[-1:])
        b.emit(f"T.tanh({v} + {bias})")


def f_softmax(b: Builder):
    a = b.choice([n for n in b.floats((2,))])
    if a is None:
        a = b.input(b.fdtype, b.shape2())
    r, c = b.t(a).type.shape
    if b.draw(st.booleans()):     # a fused elementwise producer
        row = b.input(b.fdtype, (1, c))
        a = b.emit(f"T.tanh({a}) * 3 + {row}") or a
    tail = b.choice(["softmax", "log_softmax", "log_of_softmax", "xent", "xent_indexed", "xent_onehot", "bxent"])
    if tail == "softmax":
        b.emit(f"T.nnet.softmax({a})")
    elif tail == "log_softmax":
        b.emit(f"T.nnet.log_softmax({a})")
    elif tail == "log_of_softmax":
        b.emit(f"T.log(T.nnet.softmax({a}))")
    elif tail in ("xent", "xent_indexed"):
        y = b.input(b.choice(["int32", "int64"]), (r,), kind="index", high=c, add=False)
        if tail == "xent":
            b.emit(f"T.nnet.categorical_crossentropy(T.nnet.softmax({a}), {y})")
        else:
            b.emit(f"-T.log(T.nnet.softmax({a}))[T.arange({r}), {y}]")
    elif tail == "xent_onehot":
        t = b.input(b.fdtype, (r, c), add=False)
        b.emit(f"T.nnet.categorical_crossentropy(T.nnet.softmax({a}), T.nnet.softmax({t}))")
    else:
        t = b.input(b.fdtype, (r, c), add=False)
        b.emit(f"T.nnet.binary_crossentropy(T.nnet.sigmoid({a}), T.nnet.sigmoid({t}))")


def f_index(b: Builder):
    a = b.choice([n for n in b.pool if b.t(n).ndim and b.t(n).type.shape[0] >= 1])
    if a is None:
        return
    shape = b.t(a).type.shape
    n = shape[0]
    m = b.choice([1, 3, 4, 5, 33, 257])
    i = b.input(b.choice(["int64", "int32"]), (m,), kind="index", high=n, add=False)    # repeats likely
    how = b.choice(["gather", "gather_col", "gather_pair", "inc", "set", "inc_slice", "inc_view_value"])
    is_float = b.t(a).dtype.startswith("float")
    if how == "gather":
        b.emit(f"{a}[{i}]")
    elif how == "gather_col" and len(shape) == 2:
        j = b.input("int64", (m,), kind="index", high=shape[1], add=False)
        b.emit(f"{a}[:, {j}]")
    elif how == "gather_pair" and len(shape) == 2:
        j = b.input("int64", (m,), kind="index", high=shape[1], add=False)
        b.emit(f"{a}[{i}, {j}]")
    elif how in ("inc", "set"):
        if how == "set":
            # unique indices: with repeats, set_subtensor's gradient with respect to the value is
            # ambiguous (the forward, last write wins, is tested in tests/regressions/)
            m = min(m, n)
            i = b.input(b.choice(["int64", "int32"]), (m,), kind="unique_index", high=n, add=False)
        val = b.input(b.t(a).dtype, (m,) + shape[1:], add=False)
        fn = "T.inc_subtensor" if how == "inc" else "T.set_subtensor"
        inner = f"T.tanh({a})" if is_float and not b.special else a
        b.emit(f"{fn}({inner}[{i}], {val})")
    elif how == "inc_slice" and n >= 2:
        sl = b.choice(["1::2", "::-1", ":-1", "::3"])
        size = len(range(n)[slice(*[int(p) if p else None for p in sl.split(":")])])
        val = b.input(b.t(a).dtype, (size,) + shape[1:], add=False)
        b.emit(f"T.inc_subtensor({a}[{sl}], {val})")
    elif how == "inc_view_value" and len(shape) == 2:
        # the value is a transposed view
        val = b.input(b.t(a).dtype, (shape[1], m), add=False)
        b.emit(f"T.inc_subtensor({a}[{i}], {val}.T)")
    else:
        b.emit(f"{a}[{i}]")


def f_concat(b: Builder):
    a = b.choice([n for n in b.pool if b.t(n).ndim])
    if a is None:
        return
    shape = b.t(a).type.shape
    axis = b.choice(range(len(shape)))
    extra = b.choice([1, 3, 32, 257])
    other = tuple(extra if i == axis else s for i, s in enumerate(shape))
    c = b.input(b.t(a).dtype, other, add=False)
    parts = [a, c] if b.draw(st.booleans()) else [c, a, c]
    if shape[axis] > 1 and b.draw(st.booleans()):
        sl = ", ".join([":"] * axis + ["::2"])
        parts.append(f"{a}[{sl}]")
    b.emit(f"T.concatenate([{', '.join(parts)}], axis={axis})")


def f_scan(b: Builder):
    a = b.choice([n for n in b.floats((2,))])
    if a is None:
        a = b.input(b.fdtype, (b.choice([1, 3, 5, 8]), b.choice([1, 3, 4, 33])))
    r, c = b.t(a).type.shape
    h0 = b.input(b.fdtype, (c,), add=False)
    w = b.input(b.fdtype, (c, c), add=False)
    step = b.choice(["rnn", "cumsum", "gated", "two_taps"])
    back = b.draw(st.booleans())
    if step == "rnn":
        v = b.emit(f"theta.scan(lambda r, h, w: T.tanh(r + T.dot(h, w)), sequences={a}, outputs_info={h0}, "
                   f"non_sequences={w}, go_backwards={back})[0]")
    elif step == "cumsum":
        v = b.emit(f"theta.scan(lambda r, h: h + r * 0.5, sequences={a}, outputs_info={h0}, go_backwards={back})[0]")
    elif step == "gated":
        v = b.emit(f"theta.scan(lambda r, h: T.nnet.sigmoid(r) * h + (1 - T.nnet.sigmoid(r)) * T.tanh(r), "
                   f"sequences={a}, outputs_info={h0})[0]")
    else:
        if r < 3:
            return
        v = b.emit(f"theta.scan(lambda r0, r1, h: T.tanh(r1 - r0 * h), sequences=dict(input={a}, taps=[-1, 0]), "
                   f"outputs_info={h0})[0]")
    if v is not None and b.draw(st.booleans()):
        b.emit(f"T.sum({v}[-1] ** 2)" if b.draw(st.booleans()) else f"{v}.mean(axis=0)")


def f_conv(b: Builder):
    batch, ch, oc = b.choice([1, 2, 3]), b.choice([1, 2, 3]), b.choice([1, 2, 4])
    h, w = b.choice([1, 3, 5, 8, 31, 33]), b.choice([1, 4, 5, 9, 32])
    kh, kw = b.choice([1, 2, 3, 5]), b.choice([1, 2, 3])
    border = b.choice(["'valid'", "'full'", "'half'", "(1, 2)"])
    stride = b.choice([(1, 1), (2, 2), (1, 3)])
    dil = b.choice([(1, 1), (2, 1)])
    x = b.input(b.fdtype, (batch, ch, h, w), add=False)
    f = b.input(b.fdtype, (oc, ch, kh, kw), add=False)
    what = b.choice(["conv", "conv_pool", "pool", "conv_bias_relu"])
    src = x
    if what != "pool":
        src = b.emit(f"T.nnet.conv2d({x}, {f}, border_mode={border}, subsample={stride}, "
                     f"filter_flip={b.draw(st.booleans())}, filter_dilation={dil})", add=False)
        if src is None:
            return
        b.p.outputs.append(src)
        if what == "conv_bias_relu":
            bias = b.input(b.fdtype, (b.t(src).type.shape[1],), add=False)
            src = b.emit(f"T.nnet.relu({src} + {bias}.dimshuffle('x', 0, 'x', 'x'))", add=False) or src
            b.p.outputs.append(src)
    if what in ("conv_pool", "pool"):
        ws = (b.choice([1, 2, 3]), b.choice([1, 2, 3]))
        ignore = b.draw(st.booleans())
        stride_p = b.choice([None, (1, 1), (2, 1), (3, 2)])
        pad = b.choice([(0, 0), (1, 0), (1, 1)]) if ignore and ws[0] > 1 and ws[1] > 1 else (0, 0)
        mode = b.choice(["max", "sum", "average_inc_pad", "average_exc_pad"])
        p = b.emit(f"pool_2d({src}, ws={ws}, ignore_border={ignore}, stride={stride_p}, pad={pad}, mode={mode!r})",
                   add=False)
        if p is not None:
            b.p.outputs.append(p)
            src = p
    if src is not x:
        b.pool.append(b.emit(f"{src}.flatten(2)", add=False) or src)
    b.pool = [n for n in b.pool if n is not None]


def f_random(b: Builder):
    if b.srng is None:
        seed = b.draw(st.integers(0, 10 ** 6))
        line = f"{b.p.prefix}srng = RandomStreams(seed={seed})"
        exec(line, b.p.ns)
        b.p.lines.append(line)
        b.srng = f"{b.p.prefix}srng"
    target = b.choice(b.floats())
    shape = b.t(target).type.shape if target is not None else (b.choice(EDGE),)
    dist = b.choice(["uniform", "normal", "binomial", "uniform64", "random_integers"])
    s = b.srng
    expr = {"uniform": f"{s}.uniform({shape!r}, low=-1, high=2, dtype={b.fdtype!r})",
            "normal": f"{s}.normal({shape!r}, avg=0.5, std=2.0, dtype={b.fdtype!r})",
            "binomial": f"{s}.binomial({shape!r}, p=0.3, dtype={b.fdtype!r})",
            "uniform64": f"{s}.uniform({shape!r}, dtype='float64')",
            "random_integers": f"{s}.random_integers({shape!r}, low=-3, high=4)"}[dist]
    d = b.emit(expr, add=False)
    if d is None:
        return
    b.p.outputs.append(d)
    b.p.exact.append(d)
    if target is not None and dist != "random_integers":       # dropout-like use, fused into a consumer
        b.emit(f"{target} * {d}")


FAMILY_FNS = {"unary": f_unary, "binary": f_binary, "int": f_int, "view": f_view, "reduce": f_reduce, "dot": f_dot,
              "softmax": f_softmax, "index": f_index, "concat": f_concat, "scan": f_scan, "conv": f_conv,
              "random": f_random}
_BASE = ["unary", "binary", "view"]
FAMILIES = {
    "elemwise": _BASE + ["unary", "binary"],
    "special": ["unary", "binary", "unary", "binary", "view", "reduce", "concat", "index"],
    "integer": ["int", "int", "int", "view", "index", "concat"],
    "reduce": _BASE + ["reduce", "reduce"],
    "dot": _BASE + ["dot", "dot", "reduce"],
    "softmax": _BASE + ["softmax", "softmax", "dot"],
    "index": _BASE + ["index", "index", "reduce"],
    "concat": _BASE + ["concat", "concat"],
    "scan": _BASE + ["scan", "scan"],
    "conv": ["conv", "conv", "unary", "binary", "reduce"],
    "random": _BASE + ["random", "random"],
    "mixed": _BASE + sorted(set(FAMILY_FNS) - {"int"}),
}


def draw_group(draw, theme: str, max_programs: int = 3) -> list[Program]:
    """Independent programs compiled together into one function."""
    n = draw(st.integers(1, max_programs))
    return [Builder(draw, f"g{k}_", theme).build() for k in range(n)]


# ------------------------------------------------------------------------------------ checking

@contextlib.contextmanager
def unrewritten():
    """Compile with only the passes needed to run (the oracle's setting)."""
    saved = theta.config.optimizer
    theta.config.optimizer = "None"
    try:
        yield
    finally:
        theta.config.optimizer = saved


def oracle_function(args, results, **kw):
    """The reference backend on the unrewritten graph."""
    with unrewritten():
        return theta.function(args, results, backend="reference", on_unused_input="ignore", **kw)


def assert_agree(got, want, what: str, exact: bool = False) -> None:
    """Same dtype and shape; integers (and ``exact`` results) equal bit for bit; floats equal to a
    tolerance scaled by the result's magnitude, with NaN and +-inf in the same places."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: emu gives {got.dtype}{got.shape}, the oracle {want.dtype}{want.shape}"
    if exact or got.dtype.kind not in "fc":
        np.testing.assert_array_equal(got, want, err_msg=f"{what}: not bit-identical")
        return
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    bad = nan_g != nan_w
    assert not bad.any(), f"{what}: NaN on one side only at {np.argwhere(bad)[:5].tolist()} " \
                          f"(emu {got[bad][:5]}, oracle {want[bad][:5]})"
    inf_g, inf_w = np.isinf(got), np.isinf(want)
    bad = (inf_g != inf_w) | (inf_g & inf_w & (got != want))
    assert not bad.any(), f"{what}: infinities differ at {np.argwhere(bad)[:5].tolist()} " \
                          f"(emu {got[bad][:5]}, oracle {want[bad][:5]})"
    fin = ~(nan_w | inf_w)
    if not fin.any():
        return
    tol = TOL[got.dtype.name]
    scale = max(1.0, float(np.max(np.abs(want[fin]))))
    np.testing.assert_allclose(got[fin].astype("float64"), want[fin].astype("float64"), rtol=tol, atol=tol * scale,
                               err_msg=f"{what}: emu and the oracle differ")


def check(inputs, outputs, values, *, grad: bool = True, exact=(), seed: int = 0) -> None:
    """``outputs`` of ``inputs`` at ``values`` (and, with ``grad``, the gradients of a random
    projection of the float outputs w.r.t. the float inputs) agree on emu and on the oracle."""
    inputs, outputs = list(inputs), list(outputs)
    exact_ids = {id(e) for e in exact}
    results, labels, exacts = list(outputs), [f"output {i}" for i in range(len(outputs))], \
        [id(o) in exact_ids for o in outputs]
    floats = [o for o in outputs if o.dtype.startswith("float")]
    wrt = [x for x in inputs if x.dtype.startswith("float")]
    if grad and floats and wrt:
        rng = np.random.default_rng(seed)
        cost = sum(T.sum(o * (rng.random(o.type.shape) + 0.5).astype(o.dtype)) for o in floats)
        grads = theta.grad(cost, wrt, disconnected_inputs="ignore")
        results += grads
        labels += [f"gradient w.r.t. {x.name}" for x in wrt]
        exacts += [False] * len(grads)
    want = oracle_function(inputs, results, no_default_updates=True)(*values)
    got = theta.function(inputs, results, backend="emu", on_unused_input="ignore", no_default_updates=True)(*values)
    got = got if isinstance(got, (list, tuple)) else [got]
    want = want if isinstance(want, (list, tuple)) else [want]
    for label, ex, g, w in zip(labels, exacts, got, want):
        assert_agree(g, w, label, exact=ex)


def group_args(programs: list[Program]):
    inputs = [p.var(n) for p in programs for n in p.inputs]
    values = [p.values[n] for p in programs for n in p.inputs]
    outputs = [p.var(n) for p in programs for n in p.outputs]
    exact = [p.var(n) for p in programs for n in p.exact]
    return inputs, outputs, values, exact, all(p.grad for p in programs)


def check_group(programs: list[Program], seed: int = 0) -> None:
    inputs, outputs, values, exact, grad = group_args(programs)
    check(inputs, outputs, values, grad=grad, exact=exact, seed=seed)


# ------------------------------------------------------------------------------------ reproducers

def load_values(test_file: str, names: list[str]) -> list[np.ndarray]:
    """The input arrays of a reproducer, from the .npz beside it."""
    with np.load(Path(test_file).with_suffix(".npz"), allow_pickle=False) as z:
        return [z[n] for n in names]


def write_reproducer(programs: list[Program], error: BaseException, out_dir: Path, note: str, seed: int = 0) -> Path:
    """tests/regressions/test_fuzz_<hash>.py (+ .npz): the group's lines, its inputs and the check."""
    body = "\n".join(line for p in programs for line in p.lines)
    inputs, _, _, _, grad = group_args(programs)
    digest = hashlib.sha1(body.encode()).hexdigest()[:10]
    stem = f"test_fuzz_{digest}"
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / f"{stem}.npz", **{n: p.values[n] for p in programs for n in p.inputs})
    names = [n for p in programs for n in p.inputs]
    outs = [n for p in programs for n in p.outputs]
    exact = [n for p in programs for n in p.exact]
    message = str(error).strip().splitlines()
    message = "\n".join(message[:6])
    src = f'''"""Found by the fuzzer ({note}, {datetime.date.today()}).

{textwrap.indent(message, "    ").strip()}
"""
import numpy as np

import theta
import theta.tensor as T
from theta.tensor.shared_randomstreams import RandomStreams
from theta.tensor.signal.pool import pool_2d

from fuzz import check, load_values


def {stem}():
{textwrap.indent(body, "    ")}
    inputs = [{", ".join(names)}]
    check(inputs, [{", ".join(outs)}], load_values(__file__, {names!r}), grad={grad}, exact=[{", ".join(exact)}],
          seed={seed})
'''
    path = out_dir / f"{stem}.py"
    path.write_text(src)
    return path


# ------------------------------------------------------------------------------------ running

SETTINGS = dict(deadline=None, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def fuzz_once(data, theme: str, max_programs: int = 3, record: dict | None = None) -> None:
    """One example: draw a group of programs and check it (the body of every fuzz test)."""
    if theme == "any":
        theme = data.draw(st.sampled_from(THEMES))
    programs = draw_group(data.draw, theme, max_programs)
    seed = data.draw(st.integers(0, 1000))
    try:
        check_group(programs, seed)
    except Exception as e:
        if record is not None:      # the last failure hypothesis sees is the shrunk one
            record["programs"], record["error"], record["seed"] = programs, e, seed
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--theme", default="any", choices=THEMES + ["any"])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "regressions"))
    ap.add_argument("--no-check-mode", action="store_true", help="emu without its checking mode (faster)")
    ap.add_argument("--no-shrink", action="store_true", help="write the failing group as drawn (shrinking compiles "
                                                              "many variants: minutes)")
    args = ap.parse_args(argv)
    theta.config.emu_check = not args.no_check_mode
    deadline = time.monotonic() + 60 * args.minutes
    examples, failures, round_ = 0, [], 0
    while time.monotonic() < deadline:
        record: dict = {}
        counter = {"n": 0}

        phases = [Phase.generate] if args.no_shrink else [Phase.generate, Phase.shrink]

        @settings(max_examples=10, phases=phases, **SETTINGS)
        @given(st.data())
        def run(data):
            counter["n"] += 1
            fuzz_once(data, args.theme, record=record)

        run = __import__("hypothesis").seed(args.seed * 100003 + round_)(run)
        round_ += 1
        try:
            run()
        except Exception as e:     # noqa: BLE001 - every failure becomes a reproducer
            if "programs" not in record:
                print(f"round {round_}: failed before a group was drawn: {e!r}", file=sys.stderr)
                failures.append(None)
                continue
            note = f"python -m tests.fuzz --seed {args.seed} --theme {args.theme}, " \
                   f"round {round_}"
            path = write_reproducer(record["programs"], record["error"], Path(args.out), note, record["seed"])
            failures.append(path)
            print(f"FAIL: {type(record['error']).__name__}: {str(record['error']).splitlines()[0][:200]}\n"
                  f"  reproducer: {path}", flush=True)
        examples += counter["n"]
        print(f"round {round_}: {examples} examples, {len(failures)} failures, "
              f"{max(0.0, deadline - time.monotonic()) / 60:.1f} min left", flush=True)
    print(f"{examples} examples in {round_} rounds; {len(failures)} failing groups written to {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

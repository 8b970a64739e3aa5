"""How far a kernel's value may lie from the reference's: each op's error bound (DebugMode).

DebugMode (runtime/debug_mode.py) re-runs a kernel group's nodes with NumPy and compares every
output the kernels wrote. Both sides round: the kernel fuses ops, keeps intermediates in
registers, sums in another order and calls another libm. So each value gets an absolute error
bound ``B`` (float64, the value's shape), built node by node along the group as the value
is, from the dtype's precision and the op's own rule:

- a value the kernel read from memory is exact on both sides: ``B = 0``;
- an op maps the bounds of its inputs to the bound of its result (what the inputs' errors can
  do to it) and adds its own rounding. Each op says how, as ``op.error_bound(args, bounds,
  out)`` (elementwise: per scalar op of its expression; Reduce, Dot, the softmax family: see
  their modules); ops that do not are covered by their family's rule below (``FAMILY_RULES``);
- the own rounding of an op is relative to what it computes from: for sums and dots to the
  sum of the |terms| (``growth(n) * eps`` of it: the kernel sums in another order), elsewhere
  to the value (a few ulps, more for transcendental functions); the only absolute floor is the
  dtype's smallest normal number, for results near zero (a kernel may flush denormals).

A kernel value is wrong when it is further than ``SAFETY * B`` from the reference's. The rules
are upper bounds of what correct code can do, so SAFETY is small: an error a hundred times
the bound is always reported (in float32, a 0.1% error in an exp or softmax output is some
thousand times its bound).

The rules are first-order: a rule perturbs each input by its bound plus a few ulps of itself
(the "backward error" of a correct implementation) and measures how far the result moves.
That keeps cancellation honest (``a - b`` is as exact as ``|a| + |b|``), lets comparisons and
``floor`` be uncertain only where an input is near the threshold, and needs no derivative.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

#: a kernel value further than SAFETY times its bound from the reference's is wrong
SAFETY = 8.0
#: ulps of backward and forward error a correctly rounded operation (+ - * /, casts) may have,
#: counting both sides' rounding
ULPS_BASIC = 2.0
#: ... and a libm function (exp, log, tanh, pow, erf...: CUDA's are within 1-4 ulps, NumPy's
#: SIMD float32 ones within 1-4)
ULPS_LIBM = 4.0
#: relative error of a float literal of an expression: sympy keeps 15 significant digits, and
#: the reference's printer (lambdify) writes them so, where the kernel's writes the binary value
LITERAL = 5e-15


def eps(dtype) -> float:
    """The machine epsilon of a float or complex dtype; 0 for integers and bool (exact)."""
    dt = np.dtype(dtype)
    return float(np.finfo(dt).eps) if dt.kind in "fc" else 0.0


def tiny(dtype) -> float:
    """The smallest normal number of a float dtype (the absolute floor near zero); 0 otherwise."""
    dt = np.dtype(dtype)
    return float(np.finfo(dt).tiny) if dt.kind in "fc" else 0.0


def growth(n) -> np.ndarray:
    """The error of a sum of ``n`` terms in units of eps times the sum of their |terms|.

    The worst case is n (every rounding the same way, one long sequential chain); kernels sum in
    short per-thread chains combined in trees, and rounding errors are not all of one sign
    (Higham & Mary's probabilistic bound grows as sqrt(n)), so 2 sqrt(n) + log2(n) + 2 is
    reached only by pathological inputs, yet stays tight enough to see a wrong term."""
    n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    return 2.0 * np.sqrt(n) + np.log2(n) + 2.0


def _f64(a) -> np.ndarray:
    """A value as float64 (complex128 for complex; integers and bool kept: exact)."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return a.astype(np.float64)
    if a.dtype.kind == "c":
        return a.astype(np.complex128)
    return a


def _diffable(a) -> np.ndarray:
    """A value as float64 or complex128, to subtract (bool and integer results included)."""
    a = np.asarray(a)
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)


def _signs(a) -> tuple:
    return (1, -1, 1j, -1j) if np.iscomplexobj(a) else (1, -1)


def perturbed(f: Callable, args: Sequence, deltas: Sequence) -> np.ndarray:
    """sum_i max_s |f(..., args[i] + s * deltas[i], ...) - f(args)|: how far ``f`` moves when
    each input moves by up to its delta (None: the input is exact). Results are float64; a
    perturbation ``f`` rejects (an index out of range, a shape it does not take) counts nothing,
    one whose result is NaN where f's is not counts as unbounded."""
    base = np.asarray(f(*args))
    total = np.zeros(base.shape)
    for i, d in enumerate(deltas):
        if d is None or not np.any(d):
            continue
        worst = np.zeros(base.shape)
        for s in _signs(args[i]):
            moved = list(args)
            moved[i] = (_f64(args[i]) + s * d).astype(np.asarray(args[i]).dtype, copy=False)
            try:
                with np.errstate(all="ignore"):
                    out = np.asarray(f(*moved))
            except Exception:   # noqa: BLE001 (a perturbation the op cannot take says nothing)
                continue
            if out.shape != base.shape:
                continue
            with np.errstate(all="ignore"):
                diff = np.abs(_diffable(out) - _diffable(base))
            diff = np.where(np.isnan(diff) & ~np.isnan(_diffable(base).real), np.inf, diff)
            worst = np.fmax(worst, diff)
        total = total + worst
    return total


def backward(args: Sequence, bounds: Sequence, e: float, ulps: float) -> list:
    """Each input's perturbation: its bound plus ``ulps`` * ``e`` of itself (None when exact)."""
    deltas = []
    for a, b in zip(args, bounds):
        if np.asarray(a).dtype.kind not in "fc":
            deltas.append(b if np.any(b) else None)
            continue
        d = np.asarray(b, dtype=np.float64) + ulps * e * np.abs(_f64(a))
        deltas.append(d if np.any(d) else None)
    return deltas


# -- the rules of the families whose ops do not state one -------------------------------------

def generic(op, args: Sequence, bounds: Sequence, out: np.ndarray, ulps: float = ULPS_BASIC) -> np.ndarray:
    """Any op: its perform moved by its inputs' perturbations, plus ``ulps`` of its result.
    Exact for data movement (views, gathers, concatenation), linear for scatters and average
    pools (perturbations of one sign add up to the sum of |terms|), and honest for max pools and
    their gradients (a near tie is uncertain)."""
    e = max([eps(np.asarray(out).dtype)] + [eps(np.asarray(a).dtype) for a in args])
    moved = perturbed(op.perform, args, backward(args, bounds, e, ulps))
    return moved + ulps * e * np.abs(_diffable(out))


def bilinear(op, args: Sequence, bounds: Sequence, out: np.ndarray) -> np.ndarray:
    """An op linear in each of its two float inputs a and b, summing products (dot, batched dot,
    convolutions and their gradients, sparse products): with f(|a|, |b|) the sum of the |terms|
    and f(1, 1) their number, B = f(|a|, Bb) + f(Ba, |b|) + growth(n) eps f(|a|, |b|) + eps |out|."""
    # the two operands: the float inputs (a sparse product's others are index arrays), or
    # the first two (a dot of integers by floats)
    pos = [k for k, a in enumerate(args) if np.asarray(a).dtype.kind in "fc"]
    pos = pos if len(pos) == 2 else [0, 1]
    if len(args) < 2:
        return generic(op, args, bounds, out)
    i, j = pos
    f = op.perform

    def at(x, y):
        moved = list(args)
        moved[i], moved[j] = x, y
        return _diffable(f(*moved)).real

    a, b = np.abs(_f64(args[i])).astype(np.float64), np.abs(_f64(args[j])).astype(np.float64)
    e = eps(np.asarray(out).dtype) or max(eps(np.asarray(args[i]).dtype), eps(np.asarray(args[j]).dtype))
    terms = at(a, b)
    bound = growth(at(np.ones_like(a), np.ones_like(b))) * e * terms + ULPS_BASIC * e * np.abs(_diffable(out))
    if np.any(bounds[j]):
        bound = bound + at(a, np.broadcast_to(np.asarray(bounds[j], dtype=np.float64), b.shape))
    if np.any(bounds[i]):
        bound = bound + at(np.broadcast_to(np.asarray(bounds[i], dtype=np.float64), a.shape), b)
    return bound


def random_draw(op, args: Sequence, bounds: Sequence, out: np.ndarray) -> np.ndarray:
    """A random draw (compiler/ops/random.py): the same bits on both sides, turned into numbers
    by libm (Box-Muller's log, sqrt and cos): a few ulps of the draw's scale, since cos(2 pi u)
    near its zeros is only absolutely accurate."""
    e = eps(np.asarray(out).dtype)
    scale = float(np.max(np.abs(out))) if np.size(out) else 0.0
    return ULPS_LIBM * e * (np.abs(_diffable(out)) + scale)


#: the rule of each family whose ops do not define ``error_bound`` (by op class name first:
#: random draws are of the elemwise family but not Elemwise)
OP_RULES = {"RandomDraw": random_draw}
FAMILY_RULES = {"gemm": bilinear, "conv": bilinear, "sparse": bilinear}


def node_bound(node, args: Sequence, bounds: Sequence, out: np.ndarray) -> np.ndarray:
    """The error bound of ``node``'s value ``out``, computed by the reference from ``args``
    whose bounds are ``bounds``."""
    own = getattr(node.op, "error_bound", None)
    rule = OP_RULES.get(type(node.op).__name__) or FAMILY_RULES.get(node.op.family, generic)
    try:
        bound = own(args, bounds, out) if own is not None else rule(node.op, args, bounds, out)
    except (ValueError, IndexError, TypeError):
        # an op's rule that does not foresee these operands (a broadcast, an odd layout) must
        # not stop the user's program: the generic rule takes any operands perform takes
        bound = generic(node.op, args, bounds, out)
    bound = np.asarray(bound, dtype=np.float64)
    return np.broadcast_to(bound, np.shape(out)) if bound.shape != np.shape(out) else bound


def kernel_bounds(nodes: Sequence, env: dict) -> dict:
    """id(node) -> the error bound of each of ``nodes`` (a kernel group, in order), whose values
    and inputs' values ``env`` holds (id -> value, as nan_guard.rerun returns it). The group's
    inputs were read from memory, the same on both sides: their bounds are 0."""
    bounds: dict = {}
    for node in nodes:
        args = [env[id(i)] if id(i) in env else i.data for i in node.inputs]
        ins = [bounds.get(id(i), np.zeros(np.shape(a))) for i, a in zip(node.inputs, args)]
        bounds[id(node)] = node_bound(node, args, ins, env[id(node)])
    return bounds


def allowed(bound: np.ndarray, dtype) -> np.ndarray:
    """The largest error a kernel value of ``dtype`` with error bound ``bound`` may have."""
    return SAFETY * np.asarray(bound, dtype=np.float64) + tiny(dtype)


# -- elementwise expressions: the rule, applied to each scalar op of the expression -----------

def expression_bound(expr, args: Sequence, bounds: Sequence, out_dtype: str, head_fn: Callable) -> np.ndarray:
    """The error bound of an elementwise expression (sympy, over x0..x{n-1}) evaluated on
    ``args`` with bounds ``bounds``: each scalar operation of the tree, innermost first, moves
    by its operands' perturbations (their bounds plus a few ulps of them) and adds a few ulps
    of its own result, in the precision it computes in (a cast's dtype, else its operands').
    ``head_fn(head, n)`` is the NumPy function of the one-level expression ``head`` over the
    symbols y0..y{n-1}. Then the result's rounding to ``out_dtype``."""
    import sympy as sp
    leaves = {f"x{k}": (_f64(a), np.asarray(b, dtype=np.float64), eps(np.asarray(a).dtype))
              for k, (a, b) in enumerate(zip(args, bounds))}

    def walk(e):
        if e.is_Symbol:
            return leaves[e.name]
        if not e.free_symbols:   # a literal (or an expression of literals)
            value = complex(e) if not e.is_real else float(e)
            exact = e.is_Rational or not np.isfinite(value)   # an infinity is written exactly
            return np.asarray(value), np.asarray(0.0 if exact else LITERAL * abs(value)), 0.0
        kids = [walk(a) for a in e.args]
        # operands that are values: the symbols' subexpressions, and float literals (the two
        # sides may spell them differently); integers and rationals stay in the operation
        live = [k for k, a in enumerate(e.args) if a.free_symbols or (a.is_number and not a.is_Rational)]
        ys = sp.symbols(f"y0:{len(live)}", real=True)
        head = e.func(*[ys[live.index(k)] if k in live else a for k, a in enumerate(e.args)], evaluate=False)
        fn = head_fn(head, len(live))
        values = [kids[k][0] for k in live]
        ulps = ULPS_BASIC if isinstance(e, (sp.Add, sp.Mul)) or _is_cast(e) else ULPS_LIBM
        e_here = eps(e.func.dtype) if _is_cast(e) else max(kids[k][2] for k in live)
        with np.errstate(all="ignore"):
            value = _f64(fn(*values))
            bound = perturbed(fn, values, backward(values, [kids[k][1] for k in live], e_here, ulps))
            bound = bound + ulps * e_here * np.abs(_diffable(value))
        return value, bound, e_here

    value, bound, _ = walk(expr)
    shape = np.broadcast_shapes(*(np.shape(a) for a in args)) if args else np.shape(value)
    bound = np.broadcast_to(bound, shape) + eps(out_dtype) * np.abs(_diffable(np.broadcast_to(value, shape)))
    return np.where(np.isnan(bound), np.inf, bound)


def _is_cast(e) -> bool:
    return type(e).__name__.startswith("cast_") and hasattr(type(e), "dtype")


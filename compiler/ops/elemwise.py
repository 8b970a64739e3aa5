"""Elementwise ops: one Op whose semantics is a sympy expression over its inputs' scalars.

``Elemwise(expr, dtype, nin)`` applies ``expr`` (over symbols x0..x{nin-1}) to NumPy-broadcast
inputs of equal rank and casts the result to ``dtype``. Its gradient with respect to input i
is another Elemwise, ``gz * d(expr)/d(xi)``, from ``sympy.diff``, summed back to the input's
shape where the input was broadcast. Fusing elementwise nodes (compiler.rewrite) is
substitution of one expression into another; the kernel body is the expression printed as C.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import sympy as sp

from ..errors import ShapeError, describe
from ..graph import Op, Variable
from ..types import TensorType, broadcast_shapes, is_float
from .. import tolerance
from . import scalar


@dataclasses.dataclass(frozen=True)
class Elemwise(Op):
    expr: sp.Expr
    dtype: str
    nin: int
    name: str | None = dataclasses.field(default=None, compare=False)
    family = "elemwise"

    @property
    def is_ordering(self) -> bool:
        """An order comparison (< <= > >=): its result has no truth value (Variable.__bool__)."""
        return isinstance(self.expr, (scalar.lt, scalar.le, scalar.gt, scalar.ge))

    def make_type(self, *inputs: Variable) -> TensorType:
        if len(inputs) != self.nin:
            raise ShapeError(f"{self} expects {self.nin} inputs, got {len(inputs)}")
        ndims = {i.ndim for i in inputs}
        if len(ndims) != 1:
            raise ShapeError(f"{self}: inputs of different rank (align them with dimshuffle): "
                             + ", ".join(describe(i) for i in inputs))
        shape = broadcast_shapes([i.type.shape for i in inputs],
                                 lambda: ", ".join(describe(i) for i in inputs))
        return TensorType(self.dtype, shape)

    def perform(self, *values: np.ndarray) -> np.ndarray:
        out = _numpy_fn(self.expr, self.nin)(*values)
        shape = np.broadcast_shapes(*(np.shape(v) for v in values))
        out = np.asarray(out)
        if out.shape != shape:
            out = np.broadcast_to(out, shape)
        return scalar.cast_array(out, self.dtype)

    def error_bound(self, args, bounds, out) -> np.ndarray:
        """DebugMode's bound (compiler/tolerance.py): a few ulps per scalar op of the expression,
        in the precision each computes in; the kernel may fuse, reorder and simplify them."""
        return tolerance.expression_bound(self.expr, args, bounds, self.dtype, _head_fn)

    def grad(self, inputs, output, gout):
        xs = scalar.symbols(self.nin + 2)
        gz, y = xs[self.nin], xs[self.nin + 1]
        grads = []
        for i, x in enumerate(inputs):
            if not is_float(x.dtype):
                grads.append(None)
                continue
            d = sp.diff(self.expr, xs[i])
            if d == 0:
                grads.append(None)
                continue
            if is_float(self.dtype) and not self.expr.is_Symbol:
                # Write the derivative in terms of the output where it appears (tanh' = 1 - y**2,
                # sigmoid' = y*(1 - y), exp' = y): the backward pass then reads the activation
                # that is stored anyway, and the pre-activation need not be kept.
                d = d.xreplace({self.expr: y})
            g = make(d * gz, list(inputs) + [gout, output], x.dtype, name=f"d{self}/dx{i}")
            grads.append(sum_to(g, x))
        return grads

    def __str__(self) -> str:
        return self.name or f"Elemwise{{{self.expr}}}"


def _lambdify(expr: sp.Expr, syms):
    """``expr`` as a NumPy function of ``syms``: scalar ops from scalar.NUMPY, casts by dtype."""
    namespace = dict(scalar.NUMPY)
    for f in expr.atoms(sp.Function):
        dtype = getattr(type(f), "dtype", None)
        if dtype is not None:
            namespace[type(f).__name__] = scalar.numpy_cast(dtype)
    return sp.lambdify(syms, scalar.as_ieee(expr), modules=[namespace, "numpy"])


@functools.lru_cache(maxsize=4096)
def _numpy_fn(expr: sp.Expr, nin: int):
    return _lambdify(expr, scalar.symbols(nin))


@functools.lru_cache(maxsize=4096)
def _head_fn(head: sp.Expr, n: int):
    """The NumPy function of one scalar operation ``head`` over y0..y{n-1} (error bounds)."""
    return _lambdify(head, sp.symbols(f"y0:{n}", real=True))


def make(expr: sp.Expr, inputs: list, dtype: str, name: str | None = None) -> Variable:
    """Apply ``expr`` (over x0..x{len(inputs)-1}) to ``inputs``, dropping unused inputs.

    The output keeps the broadcast shape of the inputs it uses; callers make sure an input
    carrying the full shape (like the output gradient) is among them.
    """
    xs = scalar.symbols(len(inputs))
    used = [i for i, s in enumerate(xs) if expr.has(s)]
    if not inputs:
        raise ShapeError(f"elementwise expression {expr} has no inputs")
    if not used:
        # sympy folded the expression to a constant (0 * x, x ** 0 with a weak literal): keep
        # the inputs, they still give the result its broadcast shape (and the gradient, zero,
        # stays connected, as in Theano).
        used = list(range(len(inputs)))
    if len(used) != len(inputs):
        expr = expr.xreplace({xs[old]: scalar.symbols(len(used))[new] for new, old in enumerate(used)})
        inputs = [inputs[i] for i in used]
    # The same Variable passed twice becomes one input (x*x -> x0**2).
    unique: list = []
    remap = {}
    for pos, var in enumerate(inputs):
        idx = next((k for k, u in enumerate(unique) if u is var), None)
        if idx is None:
            idx = len(unique)
            unique.append(var)
        remap[scalar.symbols(len(inputs))[pos]] = scalar.symbols(len(inputs))[idx]
    if len(unique) != len(inputs):
        expr = expr.xreplace(remap)
    return Elemwise(expr, dtype, len(unique), name)(*unique)


@dataclasses.dataclass(frozen=True)
class SumTo(Op):
    """Sum a broadcast gradient back to the shape of ``like`` (NumPy broadcasting, reversed).

    Which axes to sum is decided once shapes are concrete (a dim declared unknown may be 1 at
    run time); the canonicalize pass then replaces this op by a plain sum or by nothing.
    """
    family = "reduce"

    def make_type(self, g: Variable, like: Variable) -> TensorType:
        return TensorType(g.dtype, like.type.shape)

    def perform(self, g: np.ndarray, like: np.ndarray) -> np.ndarray:
        return sum_to_shape(g, np.shape(like))

    def grad(self, inputs, output, gout):
        g, like = inputs
        from .shape import broadcast_like
        return [broadcast_like(gout, g), None]


def sum_to_shape(g: np.ndarray, shape: tuple) -> np.ndarray:
    axes = tuple(a for a, (gs, s) in enumerate(zip(g.shape, shape)) if s == 1 and gs != 1)
    if axes:
        g = np.sum(g, axis=axes, keepdims=True, dtype=np.float64 if g.dtype.kind == "f" else None).astype(g.dtype)
    return g


def sum_to(g: Variable, like: Variable) -> Variable:
    """``g`` summed over the axes along which ``like`` was broadcast to reach ``g``'s shape."""
    if g.type.shape == like.type.shape and like.type.is_concrete:
        return g
    return SumTo()(g, like)

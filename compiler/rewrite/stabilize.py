"""stabilize: rewrite numerically fragile forms into stable ones.

Elementwise rules work on sympy expressions (bottom-up, each rule ``expr -> expr | None``):
    log(1 + x)        -> log1p(x)
    exp(x) - 1        -> expm1(x)
    1 - sigmoid(x)    -> sigmoid(-x)
    1 / (1 + exp(-x)) -> sigmoid(x)
    log(sigmoid(x))   -> -softplus(-x)       (so log(1 - sigmoid(x)) -> -softplus(x))
    log1p(exp(x))     -> softplus(x)         (so log(1 + exp(x)) -> softplus(x))
To see patterns that span several elementwise nodes, a node's elementwise producers are
inlined into a trial expression; the trial is kept only when a rule fired on it.
Graph rules: log(softmax(x)) -> log_softmax(x), and
-log_softmax(x)[arange(n), y] -> crossentropy_softmax_int(x, y).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..graph import Variable
from ..ops import scalar as S
from ..ops.args import Adv, Arg
from ..ops.elemwise import Elemwise, make
from ..ops.index import Subtensor
from ..ops.nnet import CrossentropySoftmaxInt, LogSoftmax, Softmax
from ..ops.shape import Arange, Shape

ONE = sp.Integer(1)


def _split_one(add: sp.Expr):
    """For an Add containing the term 1: the sum of the other terms, else None."""
    if isinstance(add, sp.Add) and ONE in add.args:
        return add - 1
    return None


def r_log1p(e):
    if isinstance(e, sp.log):
        rest = _split_one(e.args[0])
        if rest is not None:
            return S.log1p(rest)
    return None


def r_expm1(e):
    if isinstance(e, sp.Add) and -ONE in e.args:
        for t in e.args:
            if isinstance(t, sp.exp):
                return S.expm1(t.args[0]) + (e - t + 1)
    return None


def r_one_minus_sigmoid(e):
    if isinstance(e, sp.Add) and ONE in e.args:
        for t in e.args:
            if isinstance(t, sp.Mul) and t.args[0] == -1 and len(t.args) == 2 and isinstance(t.args[1], S.sigmoid):
                return S.sigmoid(-t.args[1].args[0]) + (e - 1 - t)
    return None


def r_sigmoid_form(e):
    if isinstance(e, sp.Pow) and e.exp == -1:
        rest = _split_one(e.base)
        if isinstance(rest, sp.exp):
            return S.sigmoid(-rest.args[0])
    return None


def r_log_sigmoid(e):
    if isinstance(e, sp.log) and isinstance(e.args[0], S.sigmoid):
        return -S.softplus(-e.args[0].args[0])
    return None


def r_log1p_exp(e):
    if isinstance(e, S.log1p) and isinstance(e.args[0], sp.exp):
        return S.softplus(e.args[0].args[0])
    if isinstance(e, S.log1p) and isinstance(e.args[0], sp.Mul) and e.args[0].args[0] == -1 \
            and len(e.args[0].args) == 2 and isinstance(e.args[0].args[1], S.sigmoid):
        return -S.softplus(e.args[0].args[1].args[0])  # log1p(-sigmoid(x))
    return None


EXPR_RULES = [r_sigmoid_form, r_one_minus_sigmoid, r_log_sigmoid, r_log1p, r_log1p_exp, r_expm1]


def stabilize_expr(expr: sp.Expr) -> tuple[sp.Expr, bool]:
    """Apply EXPR_RULES bottom-up; returns (expression, whether any rule fired)."""
    fired = False

    def walk(e):
        nonlocal fired
        if e.args:
            new_args = tuple(walk(a) for a in e.args)
            if new_args != e.args:
                e = e.func(*new_args)
        for _ in range(16):
            for rule in EXPR_RULES:
                new = rule(e)
                if new is not None and new != e:
                    fired = True
                    e = walk(new) if new.args else new
                    break
            else:
                break
        return e

    return walk(expr), fired


INLINE_DEPTH = 3


def _inline(node: Variable, depth: int):
    """(expr, inputs) of ``node`` with elementwise producers substituted up to ``depth``."""
    inputs: list[Variable] = []

    def sym_for(var: Variable):
        for k, v in enumerate(inputs):
            if v is var:
                return sp.Symbol(f"y{k}", real=True)
        inputs.append(var)
        return sp.Symbol(f"y{len(inputs) - 1}", real=True)

    def expr_of(var: Variable, d: int):
        if d > 0 and isinstance(var.op, Elemwise) and var.ndim == node.ndim:
            subs = {x: expr_of(i, d - 1) for x, i in zip(S.symbols(var.op.nin), var.inputs)}
            return var.op.expr.xreplace(subs)
        return sym_for(var)

    expr = expr_of(node, depth + 1)
    canon = {sp.Symbol(f"y{k}", real=True): S.symbols(len(inputs))[k] for k in range(len(inputs))}
    return expr.xreplace(canon), inputs


def stabilize_elemwise(node: Variable):
    if not isinstance(node.op, Elemwise):
        return None
    expr, fired = stabilize_expr(node.op.expr)
    if fired:
        return make(expr, list(node.inputs), node.dtype, name=node.op.name)
    trial, inputs = _inline(node, INLINE_DEPTH)
    if trial == node.op.expr:
        return None
    expr, fired = stabilize_expr(trial)
    if fired:
        return make(expr, inputs, node.dtype, name=node.op.name)
    return None


def log_softmax(node: Variable):
    """log(softmax(x)) (or of an indexed softmax) inside an elementwise expression -> log_softmax."""
    if not isinstance(node.op, Elemwise):
        return None
    xs = S.symbols(node.op.nin)
    for i, inp in enumerate(node.inputs):
        if not node.op.expr.has(sp.log(xs[i])):
            continue
        if isinstance(inp.op, Softmax):
            ls = LogSoftmax()(inp.inputs[0])
        elif isinstance(inp.op, Subtensor) and isinstance(inp.inputs[0].op, Softmax):
            # log commutes with indexing: log(softmax(x)[i, y]) = log_softmax(x)[i, y]
            ls = Subtensor(inp.op.entries)(LogSoftmax()(inp.inputs[0].inputs[0]), *inp.inputs[1:])
        else:
            continue
        new_sym = S.symbols(node.op.nin + 1)[node.op.nin]
        expr = node.op.expr.xreplace({sp.log(xs[i]): new_sym})
        return make(expr, list(node.inputs) + [ls], node.dtype, name=node.op.name)
    return None


def _is_row_arange(r: Variable, x: Variable, y: Variable) -> bool:
    if r.is_constant:
        # constant_fold (which runs first) turns a small arange of a known length into a literal
        n = r.data.shape[0] if r.data.ndim == 1 else None
        return n is not None and n in (x.type.shape[0], y.type.shape[0]) and \
            np.array_equal(r.data, np.arange(n))
    if not isinstance(r.op, Arange) or r.op.start != 0 or r.op.step != 1:
        return False
    stop = r.op.stop
    if isinstance(stop, int):
        return stop == x.type.shape[0] or stop == y.type.shape[0]
    if isinstance(stop, Arg):
        s = r.inputs[stop.k]
        if isinstance(s.op, Subtensor) and s.op.entries == (0,) and isinstance(s.inputs[0].op, Shape):
            return s.inputs[0].inputs[0] in (x, y) or s.inputs[0].inputs[0].inputs[:1] == (x,)
    return False


def crossentropy_softmax(node: Variable):
    """log_softmax(x)[arange(n), y] -> -crossentropy_softmax_int(x, y)."""
    if not isinstance(node.op, Subtensor) or node.op.entries != (Adv(1), Adv(2)):
        return None
    ls, r, y = node.inputs
    if not isinstance(ls.op, LogSoftmax) or y.ndim != 1 or not y.dtype.startswith(("int", "uint")):
        return None
    x = ls.inputs[0]
    if not _is_row_arange(r, x, y):
        return None
    ce = CrossentropySoftmaxInt()(x, y)
    return make(-S.symbols(1)[0], [ce], node.dtype, name="neg")


RULES = [stabilize_elemwise, log_softmax, crossentropy_softmax]

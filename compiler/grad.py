"""Reverse-mode symbolic differentiation: theta.grad builds more graph.

The cost is first run through the stabilize pass, so gradients are taken of the stable forms
(the gradient of -log(softmax(x))[arange(n), y] is softmax minus one-hot, that of
log(1 - sigmoid(x)) is -sigmoid(x), never 0/0). Each op supplies its vector-Jacobian product;
contributions to a variable used several times are summed.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from .errors import DisconnectedInputError, GraphError, describe, public_entry
from .graph import Op, Variable, rebuild, toposort, user_stacklevel
from .types import TensorType, is_float


@dataclasses.dataclass(frozen=True)
class DisconnectedGrad(Op):
    """The op behind :func:`disconnected_grad`: identity forward, no gradient back."""
    family = "view"
    connected = False  # does the gradient machinery see a path through this node?

    def make_type(self, x: Variable) -> TensorType:
        return x.type

    def perform(self, x: np.ndarray) -> np.ndarray:
        return x

    def grad(self, inputs, output, gout):
        return [None]


@dataclasses.dataclass(frozen=True)
class ZeroGrad(DisconnectedGrad):
    """The op behind :func:`zero_grad`: identity forward, a zero gradient back."""
    connected = True

    def grad(self, inputs, output, gout):
        from .tensor.basic import zeros_like
        return [zeros_like(inputs[0]) if is_float(inputs[0].dtype) else None]


def disconnected_grad(x) -> Variable:
    """``x`` in the forward pass, with no gradient flowing back through it (Theano's ``disconnected_grad``).

    Parameters
    ----------
    x : tensor-like

    Returns
    -------
    Variable
        Equal to ``x``; variables reached only through it count as disconnected.
    """
    from .tensor.basic import as_tensor_variable
    return DisconnectedGrad()(as_tensor_variable(x))


def zero_grad(x) -> Variable:
    """``x`` in the forward pass, with a zero gradient (Theano's ``zero_grad``).

    Unlike :func:`disconnected_grad`, the variables behind it still count as connected to the
    cost (their gradient is zero, not an error).

    Parameters
    ----------
    x : tensor-like

    Returns
    -------
    Variable
    """
    from .tensor.basic import as_tensor_variable
    return ZeroGrad()(as_tensor_variable(x))


@public_entry
def grad(cost: Variable | None, wrt, consider_constant: Sequence[Variable] | None = None,
         known_grads: dict | None = None, disconnected_inputs: str = "raise",
         return_disconnected: str = "zero"):
    """Symbolic gradient of a scalar cost with respect to variables (Theano's ``theano.grad``).

    Reverse-mode differentiation of the graph: each op's gradient is symbolic (elementwise ops
    through ``sympy.diff``), so the result is itself a graph you can compile, differentiate again
    or print. The cost is first rewritten to its numerically stable forms (softmax-crossentropy,
    softplus, log1p...), so gradients are those of the stable forms.

    Parameters
    ----------
    cost : scalar Variable or None
        A float scalar. None is allowed with ``known_grads``.
    wrt : Variable or list of Variable
        Shared variables, inputs or intermediate variables.
    consider_constant : list of Variable, optional
        Variables treated as constants (no gradient flows through them).
    known_grads : dict, optional
        ``{variable: its gradient}`` to start from (Theano's, for gradients computed elsewhere).
    disconnected_inputs : {'raise', 'warn', 'ignore'}, optional
        What to do when the cost does not depend on a ``wrt`` variable.
    return_disconnected : {'zero', 'None', 'Disconnected'}, optional
        What such a variable's gradient is (zeros by default).

    Returns
    -------
    Variable or list of Variable
        One gradient per ``wrt``, each of its variable's shape and dtype; a list when ``wrt``
        is a list.

    Raises
    ------
    GraphError
        A non-scalar or integer cost, a ``wrt`` that is not symbolic.
    DisconnectedInputError
        ``disconnected_inputs='raise'`` and the cost does not depend on a ``wrt``.

    Examples
    --------
    >>> gW, gb = theta.grad(cost, [W, b])
    >>> updates = [(W, W - 0.1 * gW), (b, b - 0.1 * gb)]
    """
    from .options import config
    from .rewrite import stabilize_graph
    from .tensor.basic import as_tensor_variable, cast, ones_like, zeros_like
    single = isinstance(wrt, Variable)
    wrt_list = [wrt] if single else list(wrt)
    for w in wrt_list:
        if not isinstance(w, Variable):
            raise GraphError(f"theta.grad: wrt must be symbolic variables, got {w!r}")
    if disconnected_inputs not in ("raise", "warn", "ignore"):
        raise ValueError("disconnected_inputs must be 'raise', 'warn' or 'ignore'")
    seeds: dict[int, list] = {}
    roots: list[Variable] = []
    if cost is not None:
        cost = as_tensor_variable(cost)
        if cost.ndim != 0:
            raise GraphError(f"theta.grad: the cost must be a scalar, got {describe(cost)}")
        if not is_float(cost.dtype):
            raise GraphError(f"theta.grad: the cost must be a float, got {describe(cost)}")
        if all(w.is_leaf for w in wrt_list) and not known_grads:
            # Stabilizing rebuilds the graph (and may inline the listed nodes away), so stopping
            # at them by identity would miss them: mark them with DisconnectedGrad. (A leaf has
            # nothing above it to stop, and keeps its own gradient, as in Theano.)
            blocked = {v: disconnected_grad(v) for v in consider_constant or () if not v.is_leaf}
            if blocked:
                (cost,) = rebuild([cost], blocked)
            (cost,) = stabilize_graph([cost])
        seeds.setdefault(id(cost), []).append(ones_like(cost))
        roots.append(cost)
    for var, g in (known_grads or {}).items():
        g = as_tensor_variable(g)
        seeds.setdefault(id(var), []).append(g)
        roots.append(var)
    if not roots:
        raise GraphError("theta.grad needs a cost or known_grads")

    order = toposort(roots)
    stop = {id(v) for v in (consider_constant or [])}
    wrt_ids = {id(w) for w in wrt_list}
    # Only nodes on a path to some wrt need gradients.
    reaches: set[int] = set()
    # A DisconnectedGrad node connects nothing (as in Theano, where its connection pattern is
    # False): an input reached only through one is disconnected, not given a zero gradient.
    for node in order:
        if id(node) in wrt_ids or (id(node) not in stop and getattr(node.op, "connected", True)
                                   and any(id(i) in reaches for i in node.inputs)):
            reaches.add(id(node))

    grads = dict(seeds)
    totals: dict[int, Variable] = {}
    for node in reversed(order):
        contribs = grads.get(id(node))
        if not contribs or id(node) not in reaches:
            continue
        total = contribs[0]
        for c in contribs[1:]:
            total = total + c
        if total.dtype != node.dtype and is_float(node.dtype):
            total = cast(total, node.dtype)
        totals[id(node)] = total
        if node.is_leaf or id(node) in stop:
            continue
        in_grads = node.op.grad(list(node.inputs), node, total)
        if len(in_grads) != len(node.inputs):
            raise GraphError(f"{node.op}.grad returned {len(in_grads)} gradients for {len(node.inputs)} inputs")
        for inp, g in zip(node.inputs, in_grads):
            if g is None or id(inp) not in reaches:
                continue
            if g.type.ndim != inp.ndim:
                raise GraphError(f"{node.op}.grad gave a gradient of rank {g.ndim} for {describe(inp)}")
            grads.setdefault(id(inp), []).append(g)

    out = []
    for w in wrt_list:
        g = totals.get(id(w))
        if g is None:
            connected = id(w) in reaches and any(id(r) in reaches for r in roots)
            if not connected:
                msg = (f"theta.grad: the cost does not depend on {describe(w)} "
                       "(pass disconnected_inputs='ignore' or 'warn' to get zeros)")
                if disconnected_inputs == "raise":
                    raise DisconnectedInputError(msg)
                if disconnected_inputs == "warn":
                    import warnings
                    warnings.warn(msg, stacklevel=user_stacklevel())
                if return_disconnected == "None":
                    out.append(None)
                    continue
            # Theano: an integer input's gradient is zeros of floatX (never a silent float64)
            g = zeros_like(w, dtype=w.dtype if is_float(w.dtype) else config.floatX)
        out.append(g)
    return out[0] if single else out

"""Pickling graphs and compiled functions without recursion: a graph is stored as a flat list
of nodes in topological order, each an op plus the indices of its inputs. Loading re-applies
the ops, so hash-consing and the shape rules run again."""
from __future__ import annotations

from typing import Sequence

from .graph import Variable, apply, constant, toposort
from .shared import SharedVariable


def dump_graph(outputs: Sequence[Variable], leaves: Sequence[Variable] = ()) -> dict:
    order = toposort(list(leaves) + list(outputs))
    index = {id(v): i for i, v in enumerate(order)}
    nodes = []
    for v in order:
        if isinstance(v, SharedVariable):
            nodes.append(("shared", v))
        elif v.is_constant:
            nodes.append(("const", v.data, v.dtype))
        elif v.is_leaf:
            nodes.append(("leaf", v.type, v.name, v.trace))
        else:
            nodes.append(("apply", v.op, [index[id(i)] for i in v.inputs]))
    return {"nodes": nodes, "outputs": [index[id(o)] for o in outputs],
            "leaves": [index[id(v)] for v in leaves]}


def load_graph(state: dict) -> tuple[list[Variable], list[Variable]]:
    built: list[Variable] = []
    for node in state["nodes"]:
        kind = node[0]
        if kind == "shared":
            built.append(node[1])
        elif kind == "const":
            built.append(constant(node[1], node[2]))
        elif kind == "leaf":
            leaf = Variable(node[1], name=node[2])
            if len(node) > 3:
                leaf.trace = node[3]  # errors keep pointing at the line that declared the input
            built.append(leaf)
        else:
            built.append(apply(node[1], [built[i] for i in node[2]]))
    return [built[i] for i in state["outputs"]], [built[i] for i in state["leaves"]]


def dump_function(fn) -> dict:
    outs = fn._graph
    leaves = [i.variable for i in fn.inputs] + list(fn.shared)
    return {
        "graph": dump_graph(outs, leaves),
        "inputs": [(i.value, i.name) for i in fn.inputs],
        "n_outputs": len(fn._outputs),
        "single": fn._single,
        "n_updates": len(fn._updates),
        "update_targets": [fn.shared.index(v) for v, _ in fn._updates],
        "name": fn.name,
        "backend": fn.options.backend,
        "allow_input_downcast": fn.allow_input_downcast,
        "nan_guard": fn.options.nan_guard,
        "optimizer": fn.options.optimizer,
        "debug_mode": fn.options.debug_mode,
    }


def load_function(state: dict):
    from .function import Function, In
    graph, leaves = load_graph(state["graph"])
    n_in = len(state["inputs"])
    inputs = [In(v, value=val, name=name) for v, (val, name) in zip(leaves[:n_in], state["inputs"])]
    shared = leaves[n_in:]
    n_out = state["n_outputs"]
    outputs = graph[:n_out]
    updates = [(shared[t], e) for t, e in zip(state["update_targets"], graph[n_out:])]
    return Function(inputs, outputs[0] if state["single"] else outputs, updates, name=state["name"],
                    on_unused_input="ignore", backend=state["backend"],
                    allow_input_downcast=state["allow_input_downcast"], nan_guard=state.get("nan_guard"),
                    optimizer=state.get("optimizer"), debug_mode=bool(state.get("debug_mode", False)))

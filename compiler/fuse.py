"""Fusion: partition a specialized, rewritten graph into kernel groups.

Every compute node starts in a group of its own; view nodes (dimshuffle, basic slicing,
broadcasting allocs, reshapes of contiguous data) get no kernel: consumers read their source
through strides. Groups then merge along edges, as long as no cycle appears between groups:

- elementwise -> elementwise of the same shape: one kernel (a producer of smaller, broadcast
  shape used by that consumer alone is recomputed per element rather than materialized);
- elementwise -> reduction over the producer's shape (used by nothing else): the reduction's
  prologue, computed while reading;
- reduction / dot / row-softmax -> elementwise over its output shape: the epilogue (bias add,
  activation, the SGD update of a gradient), computed before writing; elementwise producers
  that only the epilogue reads join it too.
"""
from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools

from .graph import Variable, clients, toposort
from .layout import is_view
from .ops.args import Adv
from .ops.blas import BatchedDot, Dot
from .ops.conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from .ops.index import Subtensor
from .ops.nnet import CrossentropySoftmaxInt, CrossentropySoftmaxIntGrad, LogSoftmax, Softmax, SoftmaxGrad
from .ops.pool import AveragePoolGrad, MaxPoolGrad, MaxPoolGradGrad, Pool
from .ops.elemwise import Elemwise
from .ops.random import RandomDraw
from .ops.reduce import ArgReduce, Reduce


def family(node: Variable) -> str:
    """The kernel family of a node: its op's ``family``, except that basic indexing is a view
    and only advanced (integer tensor) indexing needs a gather kernel."""
    op = node.op
    if isinstance(op, Subtensor):
        return "gather" if any(isinstance(e, Adv) for e in op.entries) else "view"
    return op.family


@dataclasses.dataclass(eq=False)
class Group:
    family: str
    main: Variable | None = None                  # the reduce/gemm/softmax/... node (None: elementwise)
    prologue: list = dataclasses.field(default_factory=list)   # elementwise nodes feeding main
    body: list = dataclasses.field(default_factory=list)       # elementwise nodes (elemwise groups)
    epilogue: list = dataclasses.field(default_factory=list)   # elementwise nodes after main
    outputs: list = dataclasses.field(default_factory=list)    # nodes written to memory
    inputs: list = dataclasses.field(default_factory=list)     # values read from memory

    @property
    def nodes(self) -> list:
        return self.prologue + ([self.main] if self.main is not None else []) + self.body + self.epilogue

    @property
    def shape(self) -> tuple:
        """The iteration shape of an elementwise group / epilogue."""
        if self.body:
            return self.body[-1].type.shape
        return self.main.type.shape

    def __repr__(self) -> str:
        return f"Group({self.family}, {[str(n.op) for n in self.nodes]})"


def fuse(outputs: list[Variable], lays: dict) -> list[Group]:
    """Kernel groups of the graph of ``outputs`` in a valid execution order (``lays`` from
    compiler.layout.layouts: which values are views)."""
    order = toposort(outputs)
    pos = {id(v): k for k, v in enumerate(order)}   # each node's place in the execution order
    group_of: dict[int, Group] = {}
    groups: list[Group] = []
    for v in order:
        if v.is_leaf or is_view(v, lays):
            continue
        fam = family(v)
        if fam in ("view", "elemwise"):   # a view that needs a copy (strided reshape) is elementwise
            g = Group("elemwise", body=[v])
        else:
            g = Group(fam, main=v)
        groups.append(g)
        group_of[id(v)] = g
    _one_group_per_loop(groups, group_of)

    users = clients(order)
    # results the caller reads: the outputs, and what output views read
    out_ids = {id(o) for o in outputs} | {id(lays[id(o)].base) for o in outputs}

    def source_groups(v: Variable) -> set:
        """The groups whose results ``v`` reads (directly or through views)."""
        found, stack = set(), [v]
        while stack:
            x = stack.pop()
            g = group_of.get(id(x))
            if g is not None:
                found.add(id(g))
            elif not x.is_leaf:
                stack.extend(x.inputs)
        return found

    def reader_groups(n: Variable) -> set:
        """Groups reading ``n`` (directly or through views)."""
        found, stack = set(), list(users.get(id(n), []))
        while stack:
            u = stack.pop()
            g = group_of.get(id(u))
            if g is not None:
                found.add(id(g))
            else:
                stack.extend(users.get(id(u), []))
        return found

    def only_read_by(p: Group, c: Group) -> bool:
        """Nothing but ``c`` (and ``p`` itself) needs ``p``'s results."""
        return all(id(n) not in out_ids and reader_groups(n) <= {id(p), id(c)} for n in p.nodes)

    # The group graph, kept up to date as groups merge (built once, never recomputed): ``dep[g]``
    # the groups whose results g reads, ``rdr[g]`` the groups reading g's, and ``label`` a
    # topological numbering (a group's label is above those of the groups it reads) that bounds
    # the searches for paths: a group labelled above c's label cannot reach c.
    dep = {id(g): set().union(*(source_groups(i) for n in g.nodes for i in n.inputs)) - {id(g)} for g in groups}
    rdr: dict[int, set] = {id(g): set() for g in groups}
    for gid, ds in dep.items():
        for d in ds:
            rdr[d].add(gid)
    label = {id(g): k for k, g in enumerate(groups)}   # creation order is topological
    if any(label[d] >= label[gid] for gid, ds in dep.items() for d in ds):
        raise AssertionError("fusion: kernel groups are not in a topological order")

    def indirect_path(p: Group, c: Group) -> set | None:
        """Is there a path p -> X -> ... -> c through some other group X (merging would cycle)?
        None if there is; else the groups labelled below c that p reaches (for ``relabel``)."""
        limit = label[id(c)]
        stack = [gid for gid in rdr[id(p)] if gid != id(c)]
        seen: set = set()
        while stack:
            gid = stack.pop()
            if gid == id(c):
                return None
            if gid in seen or label[gid] > limit:
                continue
            seen.add(gid)
            stack.extend(rdr[gid])
        return seen

    def relabel(p: Group, c: Group, keep: Group, below_c: set) -> None:
        """The labels once p and c (p labelled below c) are one group ``keep``: among the labels
        from p's to c's, the groups c reads (directly or not) take the lowest, then the merged
        group, then the groups reading p take the highest; others keep theirs (Pearce and
        Kelly's dynamic topological order, applied to an edge contraction)."""
        lo = label[id(p)]
        stack = [gid for gid in dep[id(c)] if gid != id(p)]
        above_p: set = set()
        while stack:
            gid = stack.pop()
            if gid in above_p or label[gid] < lo:
                continue
            above_p.add(gid)
            stack.extend(dep[gid])
        before = sorted(above_p, key=label.__getitem__)
        after = sorted(below_c, key=label.__getitem__)
        pool = sorted([label[gid] for gid in before + after] + [label[id(p)], label[id(c)]])
        del label[id(p)], label[id(c)]
        for gid, lab in zip(before, pool):
            label[gid] = lab
        label[id(keep)] = pool[len(before)]
        for gid, lab in zip(after, pool[len(before) + 2:]):
            label[gid] = lab

    def join_edges(keep: Group, gone: Group) -> None:
        k, g = id(keep), id(gone)
        gone_dep, gone_rdr = dep.pop(g), rdr.pop(g)
        for x in gone_dep:
            rdr[x].discard(g)
            rdr[x].add(k)
        for r in gone_rdr:
            dep[r].discard(g)
            dep[r].add(k)
        dep[k] = (dep[k] | gone_dep) - {k, g}
        rdr[k] = (rdr[k] | gone_rdr) - {k, g}

    def merge_kind(p: Group, c: Group, via: Variable) -> str | None:
        if p.family == "elemwise" and c.family == "elemwise":
            if p.shape == c.shape and via.type.shape == c.shape:
                return "body"
            # a smaller producer (it broadcasts into c) is recomputed per element, if c alone reads it
            return "body" if only_read_by(p, c) else None
        if p.family == "elemwise" and c.family == "reduce" and isinstance(c.main.op, (Reduce, ArgReduce)) \
                and not c.prologue and via is c.main.inputs[0] and p.shape == via.type.shape and only_read_by(p, c):
            return "prologue"
        if c.family == "elemwise" and p.family in ("reduce", "gemm", "softmax", "conv", "pool") \
                and isinstance(p.main.op, EPILOGUE_HOSTS) and c.shape == p.main.type.shape \
                and via.type.shape == c.shape:
            return "epilogue"
        # an elementwise producer that only the epilogue reads (dot(x, W) + x*3): computed there too
        if p.family == "elemwise" and c.family in ("reduce", "gemm", "softmax", "conv", "pool") and c.epilogue \
                and any(via is i for n in c.epilogue for i in n.inputs) \
                and p.shape == c.main.type.shape and only_read_by(p, c):
            return "epilogue_input"
        return None

    def reads_own_result(p: Group, c: Group) -> bool:
        """Would the merged group read one of its own results through a view (z + z.T)? A kernel
        cannot: other threads' elements are not written yet when it reads them."""
        members = {id(n) for n in p.nodes + c.nodes}
        return any(id(i) not in members and id(lays[id(i)].base) in members
                   for n in p.nodes + c.nodes for i in n.inputs)

    def too_many_params(p: Group, c: Group) -> bool:
        """Would the merged kernel pass more pointers than CUDA's parameter space holds?"""
        members = {id(n) for n in p.nodes + c.nodes}
        reads = {id(i) for n in p.nodes + c.nodes for i in n.inputs if id(i) not in members}
        return len(reads) + len(p.nodes) + len(c.nodes) > MAX_KERNEL_POINTERS

    def merge_first(c: Group) -> tuple | None:
        """Merge along the first edge into ``c`` (its members in order, their inputs in order)
        that may merge: (the group that stays, the one that goes), or None if no edge may."""
        for n in c.nodes:
            for via in n.inputs:
                p = group_of.get(id(via))
                if p is None or p is c:
                    continue
                kind = merge_kind(p, c, via)
                if kind is None or not _draws_fit(p, c, kind) or reads_own_result(p, c) \
                        or too_many_params(p, c):
                    continue
                keep, gone, parts = _merged(p, c, kind, pos)
                if not _phases_ok(keep, *parts):
                    continue
                below_c = indirect_path(p, c)   # last: the costliest test
                if below_c is None:
                    continue
                relabel(p, c, keep, below_c)
                join_edges(keep, gone)
                keep.prologue, keep.body, keep.epilogue = parts
                for m in gone.nodes:
                    group_of[id(m)] = keep
                return keep, gone
        return None

    # Merge along the first edge that may merge (consumers in group order, each one's members
    # and their inputs in order), again and again until none may. A merge changes only what
    # involves the merged group: contracting an edge keeps every path between other groups, so
    # an edge between two others that may not merge still may not. So after a merge the scan
    # goes on where it was, after looking again at the merged group and at the groups reading it
    # (the same merges, in the same order, as rescanning every group after every merge).
    by_rank: list = list(groups)
    rank = {id(g): k for k, g in enumerate(groups)}
    pointer = 0                      # groups ranked below it have no edge that may merge ...
    recheck: list[int] = []          # ... but these (a heap of ranks)
    queued: set = set()
    while True:
        if recheck and recheck[0] < pointer:
            r = heapq.heappop(recheck)
            queued.discard(r)
        elif pointer < len(by_rank):
            r, pointer = pointer, pointer + 1
        else:
            break
        c = by_rank[r]
        if c is None:
            continue
        merged = merge_first(c)
        if merged is None:
            continue
        keep, gone = merged
        by_rank[rank[id(gone)]] = None
        for gid in [id(keep), *rdr[id(keep)]]:
            k = rank[gid]
            if k < pointer and k not in queued:
                heapq.heappush(recheck, k)
                queued.add(k)
    groups = [g for g in by_rank if g is not None]

    for g in groups:
        members = {id(n) for n in g.nodes}
        g.outputs = [n for n in g.nodes if id(n) in out_ids or reader_groups(n) - {id(g)}]
        g.inputs = list({id(i): i for n in g.nodes for i in n.inputs if id(i) not in members}.values())
    return _order_groups(groups, dep)


# Kernel parameters live in a 4 KB constant bank before CUDA 12.1 (about 32 KB since, on Volta
# and newer). Staying under 4 KB keeps every generated source portable: a group that would pass
# more pointers (inputs plus, at worst, every node written) is split instead. 8 bytes a pointer,
# with room left for the scalars some kernels take.
MAX_KERNEL_POINTERS = 480

# Ops whose kernels can apply elementwise code to their results before writing them.
EPILOGUE_HOSTS = (Reduce, Dot, BatchedDot, Softmax, LogSoftmax, SoftmaxGrad, CrossentropySoftmaxInt,
                  CrossentropySoftmaxIntGrad, Conv2d, Conv2dGradInputs, Conv2dGradWeights,
                  Pool, MaxPoolGrad, MaxPoolGradGrad, AveragePoolGrad)


def _draws_fit(p: Group, c: Group, kind: str) -> bool:
    """A random draw computes element i from its flat index i, so it may only sit where the
    kernel's elements are the draw's own: the body of an elementwise kernel over its shape, or
    the epilogue of a kernel whose result has its shape; never recomputed per element of a
    larger broadcast, nor in a reduction's prologue (whose loop runs over the input)."""
    draws = [n for n in p.nodes + c.nodes if isinstance(n.op, RandomDraw)]
    if not draws:
        return True
    if kind == "body":
        return all(d.type.shape == c.shape for d in draws)
    if kind in ("epilogue", "epilogue_input"):
        host = p if kind == "epilogue" else c
        return host.family in DRAW_EPILOGUE_FAMILIES and all(d.type.shape == host.main.type.shape for d in draws)
    return False


# Families whose lowering names the flat index of an epilogue element (``names['flat']``).
DRAW_EPILOGUE_FAMILIES = ("gemm", "reduce", "softmax")


def replicate_draws(outputs: list[Variable]) -> list[Variable]:
    """Give every kernel its own copy of the random numbers it reads.

    A draw and the elementwise code over it alone (a dropout mask ``u < p``) are recomputed
    where they are used rather than stored: a node outside that random code that reads it
    gets a private replica of the chain (``RandomDraw.replica`` differs, the numbers do not),
    which fusion then puts into that node's kernel. So the forward pass and the backward pass
    of a dropout layer each compute the mask, and no mask ever goes through memory."""
    order = toposort(outputs)
    if not any(isinstance(n.op, RandomDraw) for n in order):
        return list(outputs)
    random: set = set()

    def free(v: Variable) -> bool:   # read as is by a replica: a leaf, or a view of leaves
        return v.is_leaf or (v.op.family == "view" and all(free(i) for i in v.inputs))

    for n in order:
        if isinstance(n.op, RandomDraw) or (
                isinstance(n.op, Elemwise) and any(id(i) in random for i in n.inputs)
                and all(id(i) in random or free(i) for i in n.inputs)):
            random.add(id(n))
    users = clients(order)
    as_output = collections.Counter(id(o) for o in outputs)
    readers = {id(n): len(users.get(id(n), [])) + as_output[id(n)] for n in order}
    memo: dict = {}
    replicas = itertools.count(1)

    def private(r: Variable) -> Variable:
        k = next(replicas)
        copy: dict = {}
        for n in toposort([r]):
            if id(n) not in random:
                continue
            ins = [copy.get(id(i), memo.get(id(i), i)) for i in n.inputs]
            op = dataclasses.replace(n.op, replica=k) if isinstance(n.op, RandomDraw) else n.op
            copy[id(n)] = op(*ins)
        return copy[id(r)]

    for n in order:
        if n.is_leaf:
            memo[id(n)] = n
            continue
        mine: dict = {}
        ins = []
        for i in n.inputs:
            if id(n) not in random and id(i) in random and readers[id(i)] > 1:
                if id(i) not in mine:
                    mine[id(i)] = private(i)
                ins.append(mine[id(i)])
            else:
                ins.append(memo[id(i)])
        memo[id(n)] = n if all(a is b for a, b in zip(ins, n.inputs)) else n.op.rebuild(ins, None)
    return [memo[id(o)] for o in outputs]


def _one_group_per_loop(groups: list, group_of: dict) -> None:
    """The output nodes of one scan (one node per output, same loop) run as one loop: the first
    node's group takes the others into its body."""
    first: dict = {}
    for g in list(groups):
        if g.family != "scan":
            continue
        key = (g.main.op.at(0), g.main.inputs)
        if key not in first:
            first[key] = g
            continue
        keep = first[key]
        keep.body.append(g.main)
        group_of[id(g.main)] = keep
        groups.remove(g)


def _merged(p: Group, c: Group, kind: str, pos: dict) -> tuple:
    """The group that stays after merging ``p`` into ``c`` (or ``c`` into ``p``), the one that
    goes, and the stayer's new (prologue, body, epilogue)."""
    if kind == "body":
        return c, p, (c.prologue, _in_order(pos, p.body + c.body), c.epilogue)
    if kind == "prologue":
        return c, p, (_in_order(pos, p.body), c.body, c.epilogue)
    if kind == "epilogue_input":
        return c, p, (c.prologue, c.body, _in_order(pos, p.body + c.epilogue))
    return p, c, (p.prologue, p.body, _in_order(pos, p.epilogue + c.body))


def _phases_ok(g: Group, prologue: list, body: list, epilogue: list) -> bool:
    """Can one kernel compute these members in its phase order (prologue, main, epilogue; or the
    body)? A member may read another member only from its own phase (computed earlier in the same
    per-element code) or, for the epilogue, main's value; main reads members of the prologue
    alone. Anything else would need the value from memory, and a value computed inside a kernel
    is never written before the kernel needs it (main would read an epilogue value: issue 15)."""
    phase = {id(n): "prologue" for n in prologue}
    phase.update({id(n): "body" for n in body})
    phase.update({id(n): "epilogue" for n in epilogue})
    if g.main is not None:
        phase[id(g.main)] = "main"
    readable = {"prologue": {"prologue"}, "body": {"body"}, "main": {"prologue"},
                "epilogue": {"main", "epilogue"}}
    members = prologue + body + epilogue + ([g.main] if g.main is not None else [])
    for n in members:
        for i in n.inputs:
            if id(i) in phase and phase[id(i)] not in readable[phase[id(n)]]:
                return False
    return True


def _in_order(pos: dict, nodes: list) -> list:
    """``nodes`` (distinct) in execution order (``pos``: id(node) -> its place)."""
    return sorted(nodes, key=lambda n: pos[id(n)])


def _order_groups(groups: list[Group], dep: dict) -> list[Group]:
    """Groups in waves: first those reading no group, then those reading only the first wave,
    and so on; within a wave in the order of ``groups``. (A group's wave is one more than the
    highest wave among the groups it reads.)"""
    wave: dict[int, int] = {}
    pending = {id(g): len(dep[id(g)]) for g in groups}
    readers: dict[int, list] = {}
    for g in groups:
        for d in dep[id(g)]:
            readers.setdefault(d, []).append(id(g))
    ready = [id(g) for g in groups if not dep[id(g)]]
    while ready:
        gid = ready.pop()
        wave[gid] = max((wave[d] + 1 for d in dep[gid]), default=0)
        for r in readers.get(gid, []):
            pending[r] -= 1
            if pending[r] == 0:
                ready.append(r)
    if len(wave) < len(groups):
        raise AssertionError("fusion made a cycle between kernel groups: "
                             + ", ".join(repr(g) for g in groups if id(g) not in wave))
    place = {id(g): k for k, g in enumerate(groups)}
    return sorted(groups, key=lambda g: (wave[id(g)], place[id(g)]))

"""Lowering of the indexing families: gather (advanced indexing), scatter (set/inc_subtensor)
and concat, to kernels/gather.cu.j2, kernels/scatter.cu.j2 and kernels/copy.cu.j2.

All three are one thread per element of an iteration shape (grid-stride loop): the thread
decomposes its flat index into coordinates and computes the offsets it reads and writes
through strides, so any layout (transposed, sliced, broadcast views) is read in place.

Indexing follows NumPy (compiler/ops/index.py). The *region* of ``x[entries]`` is the shape
``index_type`` gives; a region element maps to an element of ``x`` by

    offset = static part (ints, static slice starts)
           + runtime part (Arg points and DSlice starts: int64 scalars, or 0-d tensors)
           + sum over region dims of coordinate * stride (slices, trailing axes)
           + sum over advanced entries of index_k[broadcast coords] * stride of its axis.

Out-of-range advanced indices (the reference raises IndexingError) cannot be reported from a
kernel yet (no error channel in a Program), so they are made harmless, as JAX does on
accelerators: a gather clamps the index into the axis (reads the edge element), a scatter
drops that update. Neither ever touches memory outside its buffers.

``set_subtensor`` with duplicate advanced indices stores one of the duplicated values (which
one is unspecified, as in CUDA's/Theano's GPU ops; NumPy keeps the last); ``inc_subtensor``
accumulates every duplicate with atomics, like ``np.add.at``, in an unspecified order.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..codegen import Kernel, KernelBuilder
from ..cprint import CTYPES
from ..fuse import Group
from ..graph import Variable
from ..layout import Layout
from ..ops.args import Adv, Arg, DSlice, Slice
from ..ops.index import IncSubtensor, Subtensor, index_type as op_index_type
from ..ops.shape import Concatenate
from .common import BLOCK, grid_for, loop_index_type, size

_SIGNED = {"int8", "int16", "int32", "int64"}


@dataclasses.dataclass
class _Region:
    """How each element of the region ``x[entries]`` maps to an element of ``x``; every
    field is template context (see gather.cu.j2)."""
    dims: list            # the region's shape
    offset: int           # static element offset
    runtime: list         # [{param, deref, stride, n, point}]: runtime terms of the offset
    strides: list         # per region dim: stride in x (0 for the broadcast index dims)
    advs: list            # [{param, ctype, signed, n, stride, strides}]: advanced index reads
    extent: int           # bound on every |offset| computed (picks 32/64-bit indexing)


def _check_single(group: Group) -> None:
    # fuse.py never merges elementwise code into these families; if it starts to, the
    # lowerer must learn prologues/epilogues first rather than silently drop them.
    if group.prologue or group.body or group.epilogue:
        raise NotImplementedError(f"the {group.family} lowering takes no fused elementwise code ({group})")


def _runtime_term(kb: KernelBuilder, var: Variable, stride: int, n: int, point: bool) -> dict:
    """A runtime index scalar: a kernel scalar parameter when ``var`` is a runtime scalar leaf
    (level-2 specialization made it so: its value is normalized on the host), else read
    through a pointer from a materialized 0-d tensor (normalized in the kernel)."""
    if id(var) in kb.plan.scalar_slot:
        return {"param": kb.scalar(var), "deref": False, "stride": stride, "n": n, "point": point}
    return {"param": kb.pointer(var), "deref": True, "stride": stride, "n": n, "point": point}


def _extent(shape, strides) -> int:
    return sum(abs(s) * max(d - 1, 0) for d, s in zip(shape, strides)) + 1


def _region(kb: KernelBuilder, x: Variable, x_strides: tuple, entries: tuple, inputs: tuple) -> _Region:
    """The region of ``x[entries]`` (``inputs`` are the op's inputs, which Args/Advs index) for
    an ``x`` read or written through ``x_strides``; mirrors ops.index.index_type."""
    xshape = x.type.shape
    has_adv = any(isinstance(e, Adv) for e in entries)
    offset, runtime, dims, strides = 0, [], [], []
    adv_entries, adv_pos = [], []
    for axis, e in enumerate(entries):
        n, st = xshape[axis], x_strides[axis]
        if isinstance(e, (int, np.integer)):
            offset += (int(e) % n) * st if n else 0
            if has_adv:
                adv_pos.append(axis)
        elif isinstance(e, Arg):
            runtime.append(_runtime_term(kb, inputs[e.k], st, n, True))
            if has_adv:
                adv_pos.append(axis)
        elif isinstance(e, Adv):
            adv_entries.append((e, n, st))
            adv_pos.append(axis)
        elif isinstance(e, DSlice):
            runtime.append(_runtime_term(kb, inputs[e.k], st, n, False))
            dims.append(e.length)
            strides.append(st * e.step)
        elif isinstance(e, Slice):
            if any(isinstance(v, Arg) for v in (e.start, e.stop, e.step)):
                raise NotImplementedError(f"slice {e} still has runtime bounds after specialization")
            start, stop, step = slice(e.start, e.stop, e.step).indices(n)
            length = len(range(start, stop, step))
            offset += start * st if length else 0
            dims.append(length)
            strides.append(st * step)
        else:
            raise NotImplementedError(f"unsupported index entry {e!r}")
    dims += list(xshape[len(entries):])
    strides += list(x_strides[len(entries):])
    advs, extent = [], _extent(xshape, x_strides) + abs(offset)
    if has_adv:
        idx_shapes = [inputs[e.k].type.shape for e, _, _ in adv_entries]
        nb = max(len(s) for s in idx_shapes)
        bshape = []
        for d in range(nb):    # NumPy broadcasting: the non-1 size if any (0 included), else 1
            sizes = [s[len(s) - nb + d] for s in idx_shapes if len(s) - nb + d >= 0]
            bshape.append(next((k for k in sizes if k != 1), 1))
        adjacent = adv_pos == list(range(adv_pos[0], adv_pos[0] + len(adv_pos)))
        at = sum(1 for e in entries[:adv_pos[0]] if isinstance(e, (Slice, DSlice))) if adjacent else 0
        dims = dims[:at] + bshape + dims[at:]
        strides = strides[:at] + [0] * nb + strides[at:]
        for e, n, st in adv_entries:
            idx = inputs[e.k]
            lay = kb.layout(idx)
            lead = nb - idx.ndim
            per_dim = [0] * len(dims)
            for d in range(idx.ndim):
                if not (lay.shape[d] == 1 and bshape[lead + d] != 1):
                    per_dim[at + lead + d] = lay.strides[d]
            extent = max(extent, _extent(lay.shape, lay.strides))
            advs.append({"param": kb.pointer(idx), "ctype": CTYPES[idx.dtype], "signed": idx.dtype in _SIGNED,
                         "n": n, "stride": st, "strides": per_dim})
    return _Region(dims, offset, runtime, strides, advs, extent)


def lower_gather(group: Group, kb: KernelBuilder) -> list[Kernel]:
    """``x[entries]`` with advanced indices: one thread per output element."""
    _check_single(group)
    node = group.main
    assert isinstance(node.op, Subtensor), node
    x = node.inputs[0]
    xlay = kb.layout(x)
    region = _region(kb, x, xlay.strides, node.op.entries, node.inputs)
    assert tuple(region.dims) == tuple(node.type.shape) == \
        op_index_type(x, node.op.entries, node.inputs), (region.dims, node.type.shape)
    n = size(node.type.shape)
    if n == 0:
        return []
    empty_source = size(x.type.shape) == 0   # only reachable with out-of-range indices
    src = kb.pointer(x) if not empty_source else None
    out = kb.pointer(node, write=True, prefix="out")
    if region.advs or any(r["deref"] and r["point"] for r in region.runtime):
        kb.status()
    return [kb.kernel("gather.cu.j2", grid_for(n), BLOCK, n=n, index_t=loop_index_type(n, region.extent),
                      ctype=CTYPES[node.dtype], out=out, src=src, empty_source=empty_source,
                      dims=region.dims, offset=region.offset, runtime=region.runtime,
                      strides=region.strides, advs=region.advs)]


def _copy_kernel(kb: KernelBuilder, out_var: Variable, pieces: list[tuple[Variable, int]], axis: int) -> Kernel:
    """Copy ``pieces`` [(value, start along axis)] into ``out_var`` (materialized): one thread per
    output element, each reading the piece that covers its coordinate along ``axis``."""
    shape = tuple(out_var.type.shape)
    n = size(shape)
    ctx, extent = [], n
    for var, start in pieces:
        lay: Layout = kb.layout(var)
        # a size-1 dim may carry any stride: read it as 0 (its coordinate is always 0 anyway)
        strides = [0 if d == 1 else s for d, s in zip(lay.shape, lay.strides)]
        ctx.append({"param": kb.pointer(var), "start": start, "stop": start + var.type.shape[axis],
                    "strides": strides, "contiguous": lay.contiguous and tuple(lay.shape) == shape})
        extent = max(extent, _extent(lay.shape, lay.strides))
    itemsize = np.dtype(out_var.dtype).itemsize
    # one dense source of the output's shape: a plain memcpy, done 16 bytes at a time
    vec = len(ctx) == 1 and ctx[0]["contiguous"] and n * itemsize >= 16 and 16 % itemsize == 0
    # coordinates some offset reads, or that choose the piece: the others are not computed
    used = [d != 1 and (any(p["strides"][k] != 0 for p in ctx) or (k == axis and len(ctx) > 1))
            for k, d in enumerate(shape)]
    out = kb.pointer(out_var, write=True, prefix="out")
    return kb.kernel("copy.cu.j2", grid_for(n), BLOCK, n=n, index_t=loop_index_type(n, extent),
                     ctype=CTYPES[out_var.dtype], out=out, dims=list(shape), axis=axis, pieces=ctx, used=used,
                     vec=vec, per_vec=16 // itemsize, fill=len(ctx) == 1 and not any(ctx[0]["strides"]))


def lower_concat(group: Group, kb: KernelBuilder) -> list[Kernel]:
    """``concatenate(xs, axis)``: one kernel; each thread copies one output element from the
    input covering its coordinate along the axis."""
    _check_single(group)
    node = group.main
    assert isinstance(node.op, Concatenate), node
    axis = node.op.axis
    if size(node.type.shape) == 0:
        return []
    pieces, start = [], 0
    for x in node.inputs:
        if x.type.shape[axis] > 0:      # empty inputs cover no coordinate
            pieces.append((x, start))
        start += x.type.shape[axis]
    return [_copy_kernel(kb, node, pieces, axis)]


def lower_scatter(group: Group, kb: KernelBuilder) -> list[Kernel]:
    """``x`` with ``x[entries]`` set to / incremented by ``y``: a copy of ``x`` into the output,
    then an update kernel with one thread per region element (atomic adds where advanced
    indices may repeat)."""
    _check_single(group)
    node = group.main
    op = node.op
    assert isinstance(op, IncSubtensor), node
    x, y = node.inputs[0], node.inputs[1]
    if size(node.type.shape) == 0:
        return []
    # The copy gets its own builder: parameters are per kernel; distinct names for the module.
    copy_kb = KernelBuilder(f"{kb.name}_copy", kb.family, kb.plan, kb.lays)
    kernels = [_copy_kernel(copy_kb, node, [(x, 0)], 0)]
    out_lay = kb.layout(node)
    region = _region(kb, x, out_lay.strides, op.entries, node.inputs)
    assert tuple(region.dims) == op_index_type(x, op.entries, node.inputs), (region.dims, op.entries)
    m = size(region.dims)
    if m == 0:
        return kernels
    # y broadcasts into the region from the right (size-1 dims and missing leading dims repeat)
    ylay = kb.layout(y)
    lead = len(region.dims) - y.ndim
    y_strides = [0] * lead + [0 if (d == 1 and r != 1) else s
                              for d, s, r in zip(ylay.shape, ylay.strides, region.dims[lead:])]
    has_adv = bool(region.advs)
    if op.set_instead_of_inc:
        mode = "set"
    else:
        mode = "atomic_add" if has_adv else "add"
    out = kb.pointer(node, write=True, prefix="out")
    yparam = kb.pointer(y)
    if region.advs or any(r["deref"] and r["point"] for r in region.runtime):
        kb.status()
    # dims along which advanced indices vary: where set mode's repeated indices can collide
    index_dims = [k for k in range(len(region.dims)) if any(a["strides"][k] != 0 for a in region.advs)]
    positions = size([region.dims[k] for k in index_dims])
    kernels.append(kb.kernel("scatter.cu.j2", grid_for(m), BLOCK, n=m, index_dims=index_dims, positions=positions,
                             index_t=loop_index_type(m, region.extent, _extent(ylay.shape, ylay.strides)),
                             ctype=CTYPES[node.dtype], out=out, y=yparam,
                             y_strides=y_strides, mode=mode, dtype=node.dtype,
                             dims=region.dims, offset=region.offset, runtime=region.runtime,
                             strides=region.strides, advs=region.advs))
    return kernels


"""Indexing: basic slicing, integer and advanced (integer tensor) indexing, and the
``set_subtensor``/``inc_subtensor`` updates, which also serve as indexing's gradient
(duplicate advanced indices scatter-*add*, like Theano's AdvancedIncSubtensor).

An index is a tuple of entries, one per indexed axis: an int or ``Arg`` (pick one element,
dropping the axis), a ``Slice`` (bounds ints, None or Args), a ``DSlice`` (a specialized
slice with a runtime start), or an ``Adv`` (an integer tensor input). Mixed advanced indexing
follows NumPy: the broadcast index dims replace the advanced axes if those are adjacent and
go first otherwise.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import IndexingError, ShapeError, describe
from ..graph import Op, Variable, constant
from ..types import TensorType, is_float, is_int
from .args import Adv, Arg, DSlice, Slice, fold, renumber, resolve


def _is_point(e) -> bool:  # an entry that picks one element (drops its axis)
    return isinstance(e, (int, Arg))


def index_type(x: Variable, entries: tuple, inputs: tuple) -> tuple:
    """The result shape of indexing ``x`` with ``entries`` (dims may be None)."""
    if len(entries) > x.ndim:
        raise IndexingError(f"too many indices ({len(entries)}) for {describe(x)}")
    has_adv = any(isinstance(e, Adv) for e in entries)
    out, adv_shapes, adv_pos = [], [], []
    for axis, e in enumerate(entries):
        n = x.type.shape[axis]
        if isinstance(e, int):
            if n is not None and not -n <= e < n:
                raise IndexingError(f"index {e} is out of bounds for axis {axis} of {describe(x)}")
            if has_adv:
                adv_pos.append(axis)
        elif isinstance(e, Arg):
            if has_adv:
                adv_pos.append(axis)
        elif isinstance(e, Adv):
            idx = inputs[e.k]
            adv_shapes.append(idx.type.shape)
            adv_pos.append(axis)
        elif isinstance(e, DSlice):
            out.append(e.length)
        elif isinstance(e, Slice):
            if n is not None and all(isinstance(v, (int, type(None))) for v in (e.start, e.stop, e.step)):
                if e.step == 0:
                    raise IndexingError("slice step cannot be zero")
                out.append(len(range(*slice(e.start, e.stop, e.step).indices(n))))
            else:
                out.append(None)
        else:
            raise IndexingError(f"unsupported index entry {e!r}")
    out += list(x.type.shape[len(entries):])
    if has_adv:
        bshape = _broadcast_index_shapes(adv_shapes, x)
        adjacent = adv_pos == list(range(adv_pos[0], adv_pos[0] + len(adv_pos)))
        # position of the broadcast dims: after the slices that come before the first advanced entry
        at = sum(1 for e in entries[:adv_pos[0]] if isinstance(e, (Slice, DSlice))) if adjacent else 0
        out = out[:at] + list(bshape) + out[at:]
    return tuple(out)


def _broadcast_index_shapes(shapes, x) -> tuple:
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        known = {d for d in dims if d not in (1, None)}
        if len(known) > 1:
            raise IndexingError(f"advanced indices of {describe(x)} do not broadcast together: {shapes}")
        out.append(known.pop() if known else (None if None in dims else 1))
    return tuple(out)


def numpy_index(entries: tuple, values: tuple) -> tuple:
    idx = []
    for e in entries:
        if isinstance(e, Adv):
            idx.append(np.asarray(values[e.k]))
        elif isinstance(e, DSlice):
            start = int(np.asarray(values[e.k]))
            stop = start + e.length * e.step
            idx.append(slice(start, stop if stop >= 0 else None, e.step))
        else:
            idx.append(resolve(e, values))
    return tuple(idx)


def _rebuild_entries(entries, inputs, keep_first, ctx):
    entries = tuple(fold(e, inputs) for e in entries)
    if ctx is not None:
        entries, inputs = ctx.specialize_index(entries, list(inputs), keep_first)
    return renumber(entries, inputs, keep_first)


def _check_index_dtypes(entries, inputs):
    for e in entries:
        if isinstance(e, (Adv, Arg)) and not is_int(inputs[e.k].dtype):
            raise IndexingError(f"index {describe(inputs[e.k])} must be an integer tensor")


@dataclasses.dataclass(frozen=True)
class Subtensor(Op):
    entries: tuple
    family = "gather"

    def make_type(self, x: Variable, *args: Variable) -> TensorType:
        _check_index_dtypes(self.entries, (x,) + args)
        return TensorType(x.dtype, index_type(x, self.entries, (x,) + args))

    def perform(self, x: np.ndarray, *args) -> np.ndarray:
        try:
            return np.asarray(x[numpy_index(self.entries, (x,) + args)])
        except IndexError as e:
            raise IndexingError(f"indexing an array of shape {x.shape} with {self}: {e}") from e

    def grad(self, inputs, output, gout):
        x = inputs[0]
        if not is_float(x.dtype):
            return [None] * len(inputs)
        from ..tensor.basic import zeros_like
        entries = tuple(_shift(e, 1) for e in self.entries)
        gx = IncSubtensor(entries, False)(zeros_like(x), gout, *inputs[1:])
        return [gx] + [None] * (len(inputs) - 1)

    def rebuild(self, inputs, ctx):
        entries, inputs = _rebuild_entries(self.entries, inputs, 1, ctx)
        if inputs[0].is_constant and all(i.is_constant for i in inputs[1:]) and inputs[0].data.size <= 64:
            return constant(self.perform(*(i.data for i in inputs)))
        return Subtensor(entries)(*inputs)

    def __str__(self) -> str:
        return f"Subtensor{{{', '.join(map(str, self.entries))}}}"


def _shift(e, by: int):
    if isinstance(e, (Arg, Adv)):
        return type(e)(e.k + by)
    if isinstance(e, DSlice):
        return DSlice(e.k + by, e.length, e.step)
    if isinstance(e, Slice):
        return Slice(*(_shift(v, by) for v in (e.start, e.stop, e.step)))
    return e


@dataclasses.dataclass(frozen=True)
class IncSubtensor(Op):
    """x with x[idx] incremented by (or set to) y; Args/Advs index into (x, y, *args)."""
    entries: tuple
    set_instead_of_inc: bool
    family = "scatter"

    def make_type(self, x: Variable, y: Variable, *args: Variable) -> TensorType:
        inputs = (x, y) + args
        _check_index_dtypes(self.entries, inputs)
        target = index_type(x, self.entries, inputs)
        if y.ndim > len(target):
            raise ShapeError(f"{'set' if self.set_instead_of_inc else 'inc'}_subtensor: {describe(y)} has more "
                             f"dims than the indexed region {target}")
        for yd, td in zip(y.type.shape[::-1], target[::-1]):
            if yd not in (1, None) and td is not None and yd != td:
                raise ShapeError(f"{'set' if self.set_instead_of_inc else 'inc'}_subtensor: {describe(y)} "
                                 f"does not broadcast to the indexed region {target}")
        return x.type

    def perform(self, x: np.ndarray, y: np.ndarray, *args) -> np.ndarray:
        out = np.array(x, copy=True)
        idx = numpy_index(self.entries, (x, y) + args)
        y = np.asarray(y).astype(out.dtype, copy=False)
        try:
            if self.set_instead_of_inc:
                out[idx] = y
            elif any(isinstance(e, Adv) for e in self.entries):
                np.add.at(out, idx, y)  # duplicates accumulate
            else:
                out[idx] += y
        except IndexError as e:
            raise IndexingError(f"indexing an array of shape {x.shape} with {self}: {e}") from e
        except ValueError as e:
            raise ShapeError(f"{self}: a value of shape {y.shape} does not fit the region: {e}") from e
        return out

    def grad(self, inputs, output, gout):
        x, y, *args = inputs
        gx = None
        if is_float(x.dtype):
            if self.set_instead_of_inc:
                from ..tensor.basic import zeros_like
                gx = IncSubtensor(self.entries, True)(gout, zeros_like(y), *args)
            else:
                gx = gout
        gy = None
        if is_float(y.dtype):
            from .elemwise import sum_to
            from .reduce import reduce_sum
            picked = Subtensor(tuple(_shift(e, -1) for e in self.entries))(gout, *args)
            lead = picked.ndim - y.ndim
            if lead:
                picked = reduce_sum(picked, tuple(range(lead)))
            gy = sum_to(picked, y)
        return [gx, gy] + [None] * len(args)

    def rebuild(self, inputs, ctx):
        entries, inputs = _rebuild_entries(self.entries, inputs, 2, ctx)
        return IncSubtensor(entries, self.set_instead_of_inc)(*inputs)

    def __str__(self) -> str:
        kind = "Set" if self.set_instead_of_inc else "Inc"
        return f"{kind}Subtensor{{{', '.join(map(str, self.entries))}}}"


def parse_index(x: Variable, key, first_arg: int) -> tuple[tuple, list]:
    """Convert a Python index (ints, slices, Ellipsis, symbolic scalars, integer tensors, lists)
    into (entries, extra inputs); Args/Advs count from ``first_arg``."""
    from ..tensor.basic import as_tensor_variable
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        pos = [i for i, k in enumerate(key) if k is Ellipsis]
        if len(pos) > 1:
            raise IndexingError("an index can only have a single ellipsis")
        fill = x.ndim - (len(key) - 1)
        key = key[:pos[0]] + (slice(None),) * fill + key[pos[0] + 1:]
    if any(k is None for k in key):
        raise IndexingError("np.newaxis in an index is not supported; use x.dimshuffle(...)")
    args: list = []

    def scalar_arg(v):
        if v is None or isinstance(v, (int, np.integer)):
            return None if v is None else int(v)
        var = as_tensor_variable(v)
        if var.ndim != 0 or not is_int(var.dtype):
            raise IndexingError(f"slice bounds must be integer scalars, got {describe(var)}")
        if var.is_constant:
            return int(var.data)
        args.append(var)
        return Arg(first_arg + len(args) - 1)

    entries = []
    for k in key:
        if isinstance(k, slice):
            entries.append(Slice(scalar_arg(k.start), scalar_arg(k.stop), scalar_arg(k.step)))
        elif isinstance(k, (int, np.integer)):
            entries.append(int(k))
        elif isinstance(k, bool):
            raise IndexingError("boolean indices are not supported; use T.switch")
        else:
            var = as_tensor_variable(k) if not isinstance(k, (list, np.ndarray)) else constant(np.asarray(k))
            if var.dtype == "bool":
                raise IndexingError(f"boolean mask indexing is not supported ({describe(var)}); use T.switch")
            if not is_int(var.dtype):
                raise IndexingError(f"index {describe(var)} must be an integer tensor")
            if var.ndim == 0:
                entries.append(scalar_arg(var))
            else:
                args.append(var)
                entries.append(Adv(first_arg + len(args) - 1))
    return tuple(entries), args


def subtensor(x: Variable, key) -> Variable:
    entries, args = parse_index(x, key, 1)
    if all(isinstance(e, Slice) and e == Slice() for e in entries):
        return x
    return Subtensor(entries)(x, *args)


def inc_subtensor(target: Variable, y, set_instead_of_inc: bool = False) -> Variable:
    """Theano's ``inc_subtensor(x[idx], y)`` / ``set_subtensor``: ``target`` must be an
    indexing expression; returns the whole tensor with the region updated."""
    from ..tensor.basic import as_tensor_variable, cast
    if target.op is None or not isinstance(target.op, Subtensor):
        raise IndexingError(f"set_subtensor/inc_subtensor needs an indexed tensor like x[i:j], got {target!r}")
    x, *args = target.inputs
    y = as_tensor_variable(y)
    if y.dtype != x.dtype:
        y = cast(y, x.dtype)
    entries = tuple(_shift(e, 1) for e in target.op.entries)
    return IncSubtensor(entries, set_instead_of_inc)(x, y, *args)

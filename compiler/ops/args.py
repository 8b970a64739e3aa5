"""Op parameters that may be given by runtime scalars.

Some op parameters (a reshape's dims, a slice's bounds, an index) can be symbolic integer
scalars. Such a parameter is stored as ``Arg(k)``: "the value of the op's k-th input". When a
function is specialized, arguments whose values follow from the input shapes have become
constants and are folded into the op's parameters; the rest (a minibatch index) stay runtime
inputs. ``Slice`` is a hashable slice whose bounds may be ints, None or Args.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Arg:
    k: int  # index into the op's inputs

    def __str__(self) -> str:
        return f"${self.k}"


@dataclasses.dataclass(frozen=True)
class Adv:
    """An advanced (integer tensor) index: the op's k-th input."""
    k: int

    def __str__(self) -> str:
        return f"[${self.k}]"


@dataclasses.dataclass(frozen=True)
class DSlice:
    """A slice of static ``length`` whose (normalized, in-range) start is the op's k-th input:
    what a slice with runtime bounds becomes once the function is specialized."""
    k: int
    length: int
    step: int = 1

    def __str__(self) -> str:
        return f"${self.k}:+{self.length}" + (f":{self.step}" if self.step != 1 else "")


@dataclasses.dataclass(frozen=True)
class Slice:
    start: "int | None | Arg" = None
    stop: "int | None | Arg" = None
    step: "int | None | Arg" = None

    def __str__(self) -> str:
        s = lambda v: "" if v is None else str(v)  # noqa: E731
        return f"{s(self.start)}:{s(self.stop)}" + (f":{self.step}" if self.step is not None else "")


def is_static(entry) -> bool:
    """True when ``entry`` (an int, None, Arg or Slice) holds no Arg."""
    if isinstance(entry, (Arg, DSlice)):
        return False
    if isinstance(entry, Slice):
        return not any(isinstance(v, Arg) for v in (entry.start, entry.stop, entry.step))
    return True


def resolve(entry, values):
    """Replace Args in ``entry`` by Python ints taken from ``values`` (the op's input values)."""
    if isinstance(entry, Arg):
        return int(np.asarray(values[entry.k]))
    if isinstance(entry, Slice):
        return slice(resolve(entry.start, values), resolve(entry.stop, values), resolve(entry.step, values))
    return entry


def fold(entry, inputs):
    """Replace Args whose inputs are constants by their values (for rebuilds)."""
    if isinstance(entry, Arg) and inputs[entry.k].is_constant:
        return int(inputs[entry.k].data)
    if isinstance(entry, Slice):
        return Slice(*(fold(v, inputs) for v in (entry.start, entry.stop, entry.step)))
    return entry


def arg_inputs(entries) -> set:
    """Indices of inputs referenced by Args in ``entries``."""
    used = set()
    for e in entries:
        if isinstance(e, (Arg, Adv, DSlice)):
            used.add(e.k)
        elif isinstance(e, Slice):
            used.update(v.k for v in (e.start, e.stop, e.step) if isinstance(v, Arg))
    return used


def renumber(entries, inputs, keep_first: int):
    """Drop inputs no Arg refers to any more (after folding); returns (entries, inputs)."""
    used = sorted(arg_inputs(entries))
    mapping = {old: keep_first + new for new, old in enumerate(used)}

    def ren(v):
        if isinstance(v, (Arg, Adv)):
            return type(v)(mapping[v.k])
        if isinstance(v, DSlice):
            return DSlice(mapping[v.k], v.length, v.step)
        if isinstance(v, Slice):
            return Slice(*(ren(x) for x in (v.start, v.stop, v.step)))
        return v

    return tuple(ren(e) for e in entries), list(inputs[:keep_first]) + [inputs[k] for k in used]

"""Checking the value passed for a compiled input: one rule for theta.function and theta.load.

A numpy array must already have the input's dtype, or cast to it safely (float32 into a
float64 input); a narrowing cast (float64 into float32) is a DTypeError unless the function
allows input downcasts. Python numbers and lists are converted, refusing integers out of the
dtype's range and non-integer values for integer inputs. A device array (anything with
``__cuda_array_interface__``: theta's, PyTorch's, CuPy's) is checked from its interface and
passed on as is, never copied to the host here.

Imports numpy only: a loaded program checks its inputs without the compiler's graph or sympy.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import DTypeError, InputError, ShapeError


class DeviceInput:
    """A device-resident argument: its shape (for a specialization key), the object itself for a
    device backend (which reads it through ``__cuda_array_interface__``), a host copy for the
    others (``np.asarray`` downloads it)."""

    def __init__(self, value: Any, shape: tuple) -> None:
        self.value, self.shape = value, shape

    @property
    def wrapped(self) -> Any:  # what a device executor reads in place
        return self.value

    @property
    def __cuda_array_interface__(self) -> dict:
        return self.value.__cuda_array_interface__

    def __array__(self, dtype=None, copy=None):  # host backends: download it
        a = np.asarray(self.value.get() if hasattr(self.value, "get") else self.value)
        return a if dtype is None else a.astype(dtype)


def convert_input(value: Any, dtype: str, shape: Sequence[int | None], where: str, *,
                  allow_downcast: bool = False, shape_note: str = "") -> np.ndarray | DeviceInput:
    """``value`` as an array of ``dtype`` and a shape matching ``shape`` (None: any length),
    or a DTypeError/ShapeError whose message starts with ``where`` (which input of what) and
    ends with ``shape_note`` for shape errors."""
    ndim = len(shape)
    note = f" {shape_note}" if shape_note else ""
    iface = getattr(value, "__cuda_array_interface__", None)
    if iface is not None and not isinstance(value, np.ndarray):
        got_dtype, got_shape = np.dtype(iface["typestr"]).name, tuple(iface["shape"])
        if got_dtype != dtype:
            raise DTypeError(f"{where} got a device array of dtype {got_dtype}")
        if len(got_shape) != ndim or any(d is not None and d != s for d, s in zip(shape, got_shape)):
            raise ShapeError(f"{where} got a device array of shape {got_shape}{note}")
        return value if isinstance(value, DeviceInput) else DeviceInput(value, got_shape)
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        if arr.dtype.name != dtype:
            ok = np.can_cast(arr.dtype, dtype, "safe") or (allow_downcast and np.can_cast(arr.dtype, dtype, "same_kind"))
            if not ok:
                raise DTypeError(f"{where} got a {arr.dtype} array; pass {dtype} "
                                 "(or compile with allow_input_downcast=True)")
            arr = arr.astype(dtype)
    else:
        try:
            raw = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise DTypeError(f"{where} got {type(value).__name__} that is not an array: {e}") from e
        if raw.dtype.kind not in "biuf":
            raise DTypeError(f"{where} got {raw.dtype} data")
        with np.errstate(over="ignore", invalid="ignore"):
            arr = raw.astype(dtype)
        if raw.dtype.kind == "f" and arr.dtype.kind in "iub" and not np.array_equal(arr, raw):
            raise DTypeError(f"{where} got non-integer values for an integer input")
        if raw.dtype.kind in "iub" and arr.dtype.kind in "iub" and not np.array_equal(arr, raw):
            # a Python int that does not fit (2**40 into int32) must not silently wrap around
            raise DTypeError(f"{where} got a value out of the range of {dtype}")
    if arr.ndim != ndim:
        raise ShapeError(f"{where} got an array of rank {arr.ndim} (shape {arr.shape}){note}")
    for axis, (d, s) in enumerate(zip(shape, arr.shape)):
        if d is not None and d != s:
            raise ShapeError(f"{where} got shape {arr.shape}; axis {axis} must have length {d}{note}")
    return arr


# an input the call did not pass (its default, if any, is used instead)
MISSING = object()


def place_arguments(args: tuple, kwargs: dict, names: dict[str, int], n_inputs: int, what: str) -> list:
    """The call's arguments in input order, as Python binds them: positions first, then keywords
    by input name; a slot no argument filled holds ``MISSING``. One rule for theta.function and a
    loaded function, so the two accept the same calls."""
    if len(args) > n_inputs:
        raise InputError(f"{what} takes {n_inputs} inputs, got {len(args)}")
    slots: list[Any] = list(args) + [MISSING] * (n_inputs - len(args))
    for key, value in kwargs.items():
        pos = names.get(key)
        if pos is None:
            known = ", ".join(sorted(names)) or "none"
            raise InputError(f"{what} got an unknown keyword argument {key!r} (inputs: {known})")
        if slots[pos] is not MISSING:
            raise InputError(f"{what} got input {key!r} twice")
        slots[pos] = value
    return slots

"""Shared variables: graph leaves that own a value living across function calls (on the
device, for device backends). ``updates`` of theta.function write them in place after each call."""
from __future__ import annotations

import numpy as np

from .errors import DTypeError, ShapeError, describe
from .graph import Variable
from .types import TensorType, check_dtype


class SharedVariable(Variable):
    """A variable with a persistent value, shared between functions (Theano's ``SharedVariable``).

    Created by :func:`shared`. Its value lives on the host and, once a kernel backend has run
    with it, on that device; ``get_value`` and ``set_value`` copy it in and out. Functions read
    it without it being an input and change it through ``updates``. Pickles with its value.

    Parameters
    ----------
    value : array-like
        The initial value (copied; its dtype and rank are the variable's).
    name : str, optional
    broadcastable : sequence of bool, optional
        Axes of length 1 that broadcast (Theano's flags).
    """
    __slots__ = ("_value", "_device", "__dict__")

    def __init__(self, value, name: str | None = None, broadcastable=None) -> None:
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not isinstance(value, (np.ndarray, np.generic)):
            from .options import config
            arr = arr.astype(config.floatX)  # Python floats/lists become floatX, like constants
        dtype = check_dtype(arr.dtype)
        shape = tuple(None for _ in arr.shape)
        if broadcastable is not None:
            if len(broadcastable) != arr.ndim:
                raise ShapeError(f"broadcastable {broadcastable} has the wrong rank for a value of shape {arr.shape}")
            shape = tuple(1 if b else None for b in broadcastable)
        super().__init__(TensorType(dtype, shape), name=name)
        self._value = np.array(arr, copy=True)
        self._device = {}  # backend -> device copy (kept coherent by the backends)

    def get_value(self, borrow: bool = False, return_internal_type: bool = False) -> np.ndarray:
        """The current value, as a NumPy array.

        Parameters
        ----------
        borrow : bool, optional
            Theano's flag; a copy is returned unless ``borrow=True`` (then do not modify it).
        return_internal_type : bool, optional
            Accepted for Theano compatibility.

        Returns
        -------
        numpy.ndarray
        """
        self._sync_from_device()
        return self._value if borrow else self._value.copy()

    def set_value(self, value, borrow: bool = False) -> None:
        """Replace the value (same dtype and rank; a new shape is allowed and respecializes).

        Parameters
        ----------
        value : array-like
        borrow : bool, optional
            Accepted for Theano compatibility; the value is copied in.

        Raises
        ------
        DTypeError, ShapeError
            A value of another dtype or rank.
        """
        arr = self.filter_value(value)
        self._value = arr if borrow else np.array(arr, copy=True)
        self._device.clear()

    # -- device copies (kept by device backends; the host copy is refreshed lazily) ---------------
    def device_value(self, backend: str, upload):
        """This variable's copy on ``backend``'s device, made with ``upload(host_array)`` the
        first time (or after ``set_value``)."""
        copy = self._device.get(backend)
        if copy is None:
            copy = self._device[backend] = upload(self._value)
            copy.dirty = False
        return copy

    def set_device_value(self, backend: str, value) -> None:
        """Store a new device-resident value (an update computed on the device): the host copy
        is stale until ``get_value`` downloads it, and other devices' copies are dropped."""
        shape = tuple(value.shape)
        self.check_update_shape(shape)
        self._device = {backend: value}
        value.dirty = True
        self._device_shape = shape

    def check_update_shape(self, shape: tuple) -> None:
        """ShapeError unless this variable can take a value of ``shape`` (its rank, and 1 along
        its broadcastable dims): checked before a step runs, so no update is half applied."""
        if len(shape) != self.ndim or any(d == 1 and s != 1 for d, s in zip(self.type.shape, shape)):
            raise ShapeError(f"device update of {describe(self)} with shape {tuple(shape)}")

    def device_written(self, backend: str) -> None:
        """A device backend updated this variable's copy on ``backend`` in place: the host copy
        is stale until ``get_value`` downloads it, and other devices' copies are dropped."""
        copy = self._device.get(backend)
        if copy is None:   # a set_value on another thread replaced it during the step: it wins
            return
        copy.dirty = True
        self._device = {backend: copy}

    def _sync_from_device(self) -> None:
        for backend_copy in self._device.values():
            if getattr(backend_copy, "dirty", False):
                self._value = backend_copy.get()
                backend_copy.dirty = False

    @property
    def value_shape(self) -> tuple:
        """The current value's shape, without downloading a device-resident value."""
        for backend_copy in self._device.values():
            if getattr(backend_copy, "dirty", False):
                return tuple(backend_copy.shape)
        return self._value.shape

    def filter_value(self, value) -> np.ndarray:
        """``value`` as an array this variable can hold (its dtype, rank and broadcastable
        dims), or a DTypeError/ShapeError; nothing is stored."""
        arr = np.asarray(value)
        if arr.dtype.name != self.dtype and isinstance(value, (np.ndarray, np.generic)) \
                and not np.can_cast(arr.dtype, self.dtype, "safe"):
            # Theano's rule: an array is stored only if no precision is lost (Python numbers and
            # lists are converted, as they carry no dtype of their own)
            raise DTypeError(f"set_value of {describe(self)} with a {arr.dtype} array would lose precision; "
                             f"pass {self.dtype} (value.astype('{self.dtype}'))")
        if arr.dtype.name != self.dtype:
            if not np.can_cast(arr.dtype, self.dtype, "same_kind") or arr.ndim != self.ndim:
                raise DTypeError(f"set_value of {describe(self)} with a {arr.dtype} array")
            arr = arr.astype(self.dtype)
        if arr.ndim != self.ndim:
            raise ShapeError(f"set_value of {describe(self)} with an array of shape {arr.shape}")
        for d, s in zip(self.type.shape, arr.shape):
            if d == 1 and s != 1:
                raise ShapeError(f"set_value of {describe(self)}: dim declared broadcastable (1) got {s}")
        return arr

    # Pickling: the value travels, not the graph identity (a new leaf on load).
    def __reduce__(self):
        return (_rebuild_shared, (self.get_value(), self.name, self.type.broadcastable))

    def __repr__(self) -> str:
        return self.name or f"<shared {self.type}>"


def _rebuild_shared(value, name, broadcastable):
    return SharedVariable(value, name=name, broadcastable=broadcastable)


def shared(value, name: str | None = None, borrow: bool = False, broadcastable=None, strict: bool = False,
           **kwargs) -> SharedVariable:
    """A shared variable holding ``value`` (Theano's ``theano.shared``).

    Parameters
    ----------
    value : array-like or number
        The initial value; its dtype is kept (use ``np.float32`` arrays for float32 models).
    name : str, optional
        Shown in errors and printing; ``theta.load``'s ``get_value(name)`` uses it.
    borrow : bool, optional
        Accepted for Theano compatibility: the value is always copied in, so the caller's array
        is never aliased.
    broadcastable : sequence of bool, optional
        Theano's flags for axes of length 1.
    strict : bool, optional
        Accepted for Theano compatibility.
    **kwargs
        Theano's other keywords, ignored.

    Returns
    -------
    SharedVariable

    Raises
    ------
    DTypeError
        ``value`` is a symbolic Variable, or has a dtype theta does not support.

    Examples
    --------
    >>> W = theta.shared(np.zeros((784, 10), dtype="float32"), name="W")
    >>> W.get_value().shape
    (784, 10)
    """
    if isinstance(value, Variable):
        raise DTypeError(f"theta.shared needs a value, got the symbolic variable {value!r}")
    return SharedVariable(value, name=name, broadcastable=broadcastable)

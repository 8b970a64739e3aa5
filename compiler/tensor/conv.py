"""T.nnet.conv2d: Theano's 2-D convolution API over the ops of compiler/ops/conv.py."""
from __future__ import annotations

import numbers

from ..errors import DTypeError, ShapeError, describe
from ..graph import Variable
from ..ops.conv import BORDER_MODES, Conv2d
from ..types import is_float
from . import basic as T


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip: bool = True, filter_dilation=(1, 1)) -> Variable:
    """Convolve a batch of images with a bank of filters (Theano's ``T.nnet.conv2d``).

    input: (batch, channels, rows, cols); filters: (out channels, channels, krows, kcols);
    result: (batch, out channels, out rows, out cols) with
    out = (in + 2*pad - dilation*(k-1) - 1) // stride + 1.

    border_mode: 'valid' (no padding), 'full' (pad dilation*(k-1)), 'half' (pad
    dilation*(k//2): same size for odd k at stride 1), an int or a pair (pad rows, pad cols).
    filter_flip=True is a true convolution (the filter's taps reversed, Theano's default);
    False is cross-correlation. input_shape/filter_shape (4 ints or None each) are checked
    against the tensors' shapes, when the graph is built and again when it is called.
    """
    x, w = T.as_tensor_variable(input), T.as_tensor_variable(filters)
    for v, what in ((x, "input"), (w, "filters")):
        if v.ndim != 4:
            raise ShapeError(f"conv2d: the {what} must be 4-D (batch, channels, rows, cols for the input; "
                             f"out channels, channels, rows, cols for the filters), got {describe(v)}")
        if not is_float(v.dtype):
            raise DTypeError(f"conv2d: the {what} must be float32 or float64, got {describe(v)}")
    op = Conv2d(border_mode=_border_mode(border_mode), subsample=_pair("subsample", subsample, 1),
                filter_flip=bool(filter_flip), filter_dilation=_pair("filter_dilation", filter_dilation, 1),
                input_shape=_declared("input_shape", input_shape), filter_shape=_declared("filter_shape", filter_shape))
    return op(x, w)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _pair(name: str, value, least: int) -> tuple:
    """Two ints >= ``least`` (an int means the same for rows and cols)."""
    pair = (value, value) if _is_int(value) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(_is_int(v) and v >= least for v in pair):
        raise ShapeError(f"conv2d: {name} must be two ints >= {least} (rows, cols), got {value!r}")
    return (int(pair[0]), int(pair[1]))


def _border_mode(mode):
    if isinstance(mode, str):
        if mode not in BORDER_MODES:
            raise ShapeError(f"conv2d: border_mode must be one of {BORDER_MODES}, an int or a pair of ints, "
                             f"got {mode!r}")
        return mode
    pads = _pair("border_mode", mode, 0)
    return "valid" if pads == (0, 0) else pads


def _declared(name: str, shape) -> tuple:
    if shape is None:
        return (None,) * 4
    if not isinstance(shape, (tuple, list)) or len(shape) != 4 \
            or not all(d is None or (_is_int(d) and d >= 0) for d in shape):
        raise ShapeError(f"conv2d: {name} must be 4 ints (or None where unknown), got {shape!r}")
    return tuple(None if d is None else int(d) for d in shape)

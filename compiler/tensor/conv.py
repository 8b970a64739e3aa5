"""T.nnet.conv2d: Theano's 2-D convolution API over the ops of compiler/ops/conv.py."""
from __future__ import annotations

import numbers
import warnings

from ..errors import DTypeError, OptionError, ShapeError, describe
from ..graph import Variable, user_stacklevel
from ..ops.conv import BORDER_MODES, Conv2d
from ..types import is_float
from . import basic as T


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip: bool = True, image_shape=None, filter_dilation=(1, 1)) -> Variable:
    """Convolve a batch of images with a bank of filters (Theano's ``T.nnet.conv2d``).

    Shapes: ``input`` is ``(batch, channels, rows, cols)``, ``filters`` is ``(out_channels,
    channels, krows, kcols)``, the result ``(batch, out_channels, out_rows, out_cols)`` with
    ``out = (in + 2 * pad - dilation * (k - 1) - 1) // stride + 1`` per spatial axis. On the
    kernel backends it is an implicit GEMM (no im2col buffer) that absorbs a following bias add
    and activation; its input and filter gradients are implicit GEMMs too.

    Parameters
    ----------
    input : tensor4
        Float32 or float64.
    filters : tensor4
        Same dtype family; ``channels`` must match the input's.
    input_shape, filter_shape : tuple of 4 int or None, optional
        Theano's shape hints. Checked against the tensors' static shapes when the graph is
        built and against the values when it is called.
    border_mode : {'valid', 'full', 'half'} or int or (int, int), optional
        ``'valid'`` (default): no padding; ``'full'``: pad ``dilation * (k - 1)``; ``'half'``:
        pad ``(dilation * (k - 1) + 1) // 2``, half the dilated filter (as Theano; the same size
        for odd ``k`` at stride 1); an int or a pair:
        explicit zero padding of rows and columns.
    subsample : (int, int), optional
        The stride (default ``(1, 1)``).
    filter_flip : bool, optional
        True (default, as Theano) is a true convolution: the filters' taps are reversed. False
        is cross-correlation (what most other frameworks call convolution).
    image_shape : tuple of 4 int or None, optional
        Theano's older name of ``input_shape`` (``theano.tensor.nnet.conv.conv2d``), accepted
        as Theano accepts it: with a DeprecationWarning, and not together with ``input_shape``.
    filter_dilation : (int, int), optional
        Spacing between filter taps (default ``(1, 1)``).

    Returns
    -------
    Variable
        The promoted float dtype of ``input`` and ``filters``.

    Raises
    ------
    OptionError
        Both ``input_shape`` and its old name ``image_shape``.
    ShapeError
        Tensors that are not 4-D, mismatched channels, a bad border mode, stride or dilation, or
        shape hints that disagree with the tensors.
    DTypeError
        Integer inputs or filters.

    Examples
    --------
    >>> x = T.tensor4("x")
    >>> W = theta.shared(np.random.randn(20, 1, 5, 5).astype("float32") * 0.1)
    >>> h = T.nnet.relu(T.nnet.conv2d(x, W, border_mode="half"))
    """
    if image_shape is not None:   # Theano's deprecated name, in the same place as Theano's signature
        if input_shape is not None:
            raise OptionError(f"conv2d: give input_shape or its old name image_shape, not both "
                              f"(input_shape={input_shape!r}, image_shape={image_shape!r})")
        warnings.warn("conv2d: image_shape is Theano's deprecated name of input_shape", DeprecationWarning,
                      stacklevel=user_stacklevel())
        input_shape = image_shape
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

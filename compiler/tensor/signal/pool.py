"""``theta.tensor.signal.pool``: Theano's 2-D pooling API over the ops of compiler/ops/pool.py."""
from __future__ import annotations

import numbers

from ...errors import ShapeError, describe
from ...graph import Variable, user_line
from ...ops.pool import MODES, MaxPoolGrad, AveragePoolGrad, Pool, PoolArgumentError
from .. import basic as T

__all__ = ["pool_2d", "max_pool_2d_same_size", "Pool", "MaxPoolGrad", "AveragePoolGrad"]


def _pair(what: str, value, x: Variable) -> tuple:
    """Two Python ints, or a ShapeError naming the input and the caller's line."""
    try:
        pair = tuple(value)
    except TypeError:
        pair = None
    if pair is None or len(pair) != 2 or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                                                for d in pair):
        raise ShapeError(f"pool_2d of {describe(x)}: {what} must be a pair of integers, got {value!r}"
                         f"{_at()}")
    return tuple(int(d) for d in pair)


def _at() -> str:
    line = user_line()
    return f" (pool_2d called at {line})" if line else ""


def pool_2d(input, ws=None, ignore_border: bool = True, stride=None, pad=(0, 0), mode: str = "max",
            ds=None, st=None, padding=None) -> Variable:
    """Pool each window of the last two axes of ``input`` (Theano's ``pool_2d``).

    Parameters
    ----------
    input : tensor of rank >= 2
        Leading axes are a batch; the last two are rows and columns.
    ws : pair of int
        Window size (rows, cols). ``ds`` is Theano's older name for it.
    ignore_border : bool, optional
        True (default): only whole windows; a (5, 5) input with ws=(2, 2) gives (2, 2).
        False: a partial window at the end of an axis too, giving (3, 3).
    stride : pair of int, optional
        Distance between windows; defaults to ``ws`` (no overlap). ``st`` is the older name.
    pad : pair of int, optional
        Zeros added on both sides of rows and columns (``padding``, the older name); each must
        be smaller than the window, and nonzero padding needs ``ignore_border=True``.
    mode : {'max', 'sum', 'average_inc_pad', 'average_exc_pad'}
        ``max`` and ``sum`` ignore the padding; ``average_inc_pad`` counts padded zeros in
        each window's size, ``average_exc_pad`` does not.

    Returns
    -------
    Variable
        Same rank and dtype as ``input``, the last two axes pooled.

    Raises
    ------
    ShapeError
        A window or stride not positive, padding not smaller than the window, or (with
        ignore_border=True) a window larger than the padded input.
    PoolArgumentError
        An unknown ``mode`` (a ValueError, like the ShapeError).
    """
    x = T.as_tensor_variable(input)
    ws = ds if ws is None else ws
    stride = st if stride is None else stride
    pad = padding if padding is not None else pad
    if ws is None:
        raise ShapeError(f"pool_2d of {describe(x)}: the window size ws is required{_at()}")
    if x.ndim < 2:
        raise ShapeError(f"pool_2d needs a tensor of rank >= 2, got {describe(x)}{_at()}")
    if mode not in MODES:
        raise PoolArgumentError(f"pool_2d of {describe(x)}: mode must be one of {', '.join(MODES)}; "
                                f"got {mode!r}{_at()}")
    ws = _pair("ws", ws, x)
    stride = ws if stride is None else _pair("stride", stride, x)
    pad = _pair("pad", pad, x)
    if min(ws) < 1 or min(stride) < 1:
        raise ShapeError(f"pool_2d of {describe(x)}: window {ws} and stride {stride} must be positive{_at()}")
    if min(pad) < 0 or any(p >= w for p, w in zip(pad, ws)):
        raise ShapeError(f"pool_2d of {describe(x)}: padding {pad} must be >= 0 and smaller than the "
                         f"window {ws}{_at()}")
    if pad != (0, 0) and not ignore_border:
        raise ShapeError(f"pool_2d of {describe(x)}: padding {pad} needs ignore_border=True{_at()}")
    op = Pool(ws, stride, pad, bool(ignore_border), mode=mode)
    try:
        return op(x)
    except ShapeError as e:
        raise ShapeError(f"{e}{_at()}") from None


def max_pool_2d_same_size(input, patch_size) -> Variable:
    """Zero every element that is not the max of its (non-overlapping) ``patch_size`` window.

    Parameters
    ----------
    input : tensor of rank >= 2
    patch_size : pair of int

    Returns
    -------
    Variable
        Same shape as ``input``.
    """
    x = T.as_tensor_variable(input)
    ws = _pair("patch_size", patch_size, x)
    out = pool_2d(x, ws, ignore_border=True)
    return MaxPoolGrad(ws, ws, (0, 0), True)(x, out, out)

"""2-D convolution (Theano's AbstractConv2d family): the forward op and its two gradients.

The three ops are one contraction seen from three sides. With x zero-padded by (ph, pw) on
each side (xp), stride s, dilation d, and the effective filter w' (w with its taps reversed
when ``filter_flip``, i.e. a true convolution; w itself for cross-correlation):

    Conv2d             y[n,k,oy,ox] = sum_{c,ky,kx} xp[n,c, oy*s+ky*d, ox*s+kx*d] w'[k,c,ky,kx]
    Conv2dGradInputs   gx: each gy[n,k,oy,ox] w'[k,c,ky,kx] added back at xp[n,c, oy*s+ky*d, ...],
                       the padding cropped (the adjoint of x -> y)
    Conv2dGradWeights  gw'[k,c,ky,kx] = sum_{n,oy,ox} gy[n,k,oy,ox] xp[n,c, oy*s+ky*d, ...]

Each is linear in each of its two tensors, so each one's gradient is made of the other two:
that is what gives second order and the R-op for free.

The gradient ops cannot infer the size they produce (with a stride several input sizes give
one output size, and 'half'/'full' padding depends on the filter size), so they carry it as
``shape``: two ints, or Args naming scalar inputs (x.shape[2] while x's shape is unknown),
which specialization folds to ints (compiler/ops/args.py).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DTypeError, ShapeError, describe
from ..graph import Op, Variable
from ..types import TensorType, is_float, upcast
from .args import Arg, fold, renumber, resolve

BORDER_MODES = ("valid", "full", "half")


# -- geometry (shared by the shape rules, perform and the lowering) ---------------------------

def padding(border_mode, axis: int, k: int | None, dil: int) -> int | None:
    """Zero padding on each side along spatial ``axis`` (0: rows, 1: cols); None while the
    filter size ``k`` it depends on is unknown. As Theano's: 'full' pads the dilated extent
    ``dil * (k - 1) + 1`` less one, 'half' half of it rounded down (not ``dil * (k // 2)``, which
    differs for an even ``k`` dilated)."""
    if isinstance(border_mode, tuple):
        return border_mode[axis]
    if border_mode == "valid":
        return 0
    if k is None:
        return None
    extent = dil * (k - 1) + 1
    return extent - 1 if border_mode == "full" else extent // 2


def out_size(n: int | None, k: int | None, pad: int | None, stride: int, dil: int) -> int | None:
    """Theano's output length: (n + 2*pad - dil*(k-1) - 1) // stride + 1 (None if unknown)."""
    if n is None or k is None or pad is None:
        return None
    return (n + 2 * pad - dil * (k - 1) - 1) // stride + 1


@dataclasses.dataclass(frozen=True)
class _ConvOp(Op):
    """Parameters every op of the family shares (normalized by compiler/tensor/conv.py)."""
    border_mode: object          # 'valid' | 'full' | 'half' | (ph, pw)
    subsample: tuple             # (sh, sw)
    filter_flip: bool
    filter_dilation: tuple       # (dh, dw)
    family = "conv"

    def pads(self, kh: int | None, kw: int | None) -> tuple:
        return (padding(self.border_mode, 0, kh, self.filter_dilation[0]),
                padding(self.border_mode, 1, kw, self.filter_dilation[1]))

    def out_hw(self, hw: tuple, khw: tuple) -> tuple:
        pads = self.pads(*khw)
        return tuple(out_size(hw[a], khw[a], pads[a], self.subsample[a], self.filter_dilation[a]) for a in (0, 1))

    def params(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(_ConvOp)}

    def check_geometry(self, xshape: tuple, wshape: tuple, xname: str, wname: str) -> tuple:
        """(oh, ow) for input and filter shapes (dims may be None), or a ShapeError naming both
        when the channels disagree or the filter does not fit in the padded input."""
        c, wc = xshape[1], wshape[1]
        if c is not None and wc is not None and c != wc:
            raise ShapeError(f"conv2d: the input has {c} channels but the filters expect {wc}: "
                             f"input {xname}, filters {wname}")
        ohw = self.out_hw(xshape[2:], wshape[2:])
        if any(o is not None and o < 1 for o in ohw):
            pads = self.pads(*wshape[2:])
            raise ShapeError(f"conv2d: the filters (dilated extent "
                             f"{tuple(d * (k - 1) + 1 for d, k in zip(self.filter_dilation, wshape[2:]))}) "
                             f"do not fit in the input padded by {pads} (border_mode={self.border_mode!r}): "
                             f"input {xname}, filters {wname}")
        return ohw


def _taps(w: np.ndarray, flip: bool) -> np.ndarray:
    """The effective filter w' of the module docstring (its own inverse)."""
    return w[:, :, ::-1, ::-1] if flip else w


def _window(xp: np.ndarray, op: _ConvOp, ky: int, kx: int, ohw: tuple) -> tuple:
    """The slice of the padded input that filter tap (ky, kx) meets at every output position."""
    (sh, sw), (dh, dw) = op.subsample, op.filter_dilation
    return (slice(None), slice(None), slice(ky * dh, ky * dh + sh * (ohw[0] - 1) + 1, sh),
            slice(kx * dw, kx * dw + sw * (ohw[1] - 1) + 1, sw))


def _check_4d_float(op: Op, *vs: Variable) -> None:
    for v in vs:
        if v.ndim != 4:
            raise ShapeError(f"{op}: needs a 4-D tensor (batch, channels, rows, cols), got {describe(v)}")
        if not is_float(v.dtype):
            raise DTypeError(f"{op}: needs a float tensor, got {describe(v)}")


# -- the ops ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Conv2d(_ConvOp):
    """y = conv2d(x, w): x (batch, channels, rows, cols), w (out channels, channels, krows, kcols).
    ``input_shape``/``filter_shape`` are the user's declared shapes (None entries: not declared),
    checked against the static shapes here, so also against the call's shapes when specialized."""
    input_shape: tuple = (None,) * 4
    filter_shape: tuple = (None,) * 4

    def make_type(self, x: Variable, w: Variable) -> TensorType:
        _check_4d_float(self, x, w)
        self.check_declared(x.type.shape, w.type.shape, describe(x), describe(w))
        xs = tuple(s if s is not None else d for s, d in zip(x.type.shape, self.input_shape))
        ws = tuple(s if s is not None else d for s, d in zip(w.type.shape, self.filter_shape))
        oh, ow = self.check_geometry(xs, ws, describe(x), describe(w))
        return TensorType(upcast(x.dtype, w.dtype), (xs[0], ws[0], oh, ow))

    def perform(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        self.check_declared(x.shape, w.shape, f"of shape {x.shape}", f"of shape {w.shape}")
        ohw = self.check_geometry(x.shape, w.shape, f"of shape {x.shape}", f"of shape {w.shape}")
        dtype = upcast(x.dtype.name, w.dtype.name)
        xp = np.pad(x.astype(dtype), ((0, 0), (0, 0)) + tuple((p, p) for p in self.pads(*w.shape[2:])))
        wt = _taps(w.astype(dtype), self.filter_flip)
        y = np.zeros((x.shape[0], w.shape[0]) + ohw, dtype)
        for ky in range(w.shape[2]):
            for kx in range(w.shape[3]):
                y += np.einsum("nchw,kc->nkhw", xp[_window(xp, self, ky, kx, ohw)], wt[:, :, ky, kx])
        return y

    def check_declared(self, xshape: tuple, wshape: tuple, xname: str, wname: str) -> None:
        for declared, shape, name, what in ((self.input_shape, xshape, xname, "input_shape"),
                                            (self.filter_shape, wshape, wname, "filter_shape")):
            if any(d is not None and s is not None and d != s for d, s in zip(declared, shape)):
                raise ShapeError(f"conv2d: {what}={declared} was declared but the tensor is {name}")

    def grad(self, inputs, output, gout):
        x, w = inputs
        return [grad_inputs(self, gout, w, x), grad_weights(self, x, gout, w)]

    def __str__(self) -> str:
        return f"Conv2d{{{_params_str(self)}}}"


@dataclasses.dataclass(frozen=True)
class Conv2dGradInputs(_ConvOp):
    """gx = Conv2dGradInputs(gy, w, *scalars): the gradient of conv2d with respect to its input,
    of spatial size ``shape`` (ints or Args)."""
    shape: tuple = (None, None)

    def make_type(self, gy: Variable, w: Variable, *args: Variable) -> TensorType:
        _check_4d_float(self, gy, w)
        hw = tuple(None if isinstance(d, Arg) else d for d in self.shape)
        _check_grad_output(self, (gy.type.shape[0], w.type.shape[1]) + hw, w.type.shape, gy.type.shape,
                           describe(gy), describe(w))
        return TensorType(upcast(gy.dtype, w.dtype), (gy.type.shape[0], w.type.shape[1]) + hw)

    def perform(self, gy: np.ndarray, w: np.ndarray, *args) -> np.ndarray:
        h, wd = (resolve(d, (gy, w) + args) for d in self.shape)
        (ph, pw), ohw = self.pads(*w.shape[2:]), gy.shape[2:]
        _check_grad_output(self, (gy.shape[0], w.shape[1], h, wd), w.shape, gy.shape, f"{gy.shape}", f"{w.shape}")
        dtype = upcast(gy.dtype.name, w.dtype.name)
        wt = _taps(w.astype(dtype), self.filter_flip)
        gxp = np.zeros((gy.shape[0], w.shape[1], h + 2 * ph, wd + 2 * pw), dtype)
        for ky in range(w.shape[2]):
            for kx in range(w.shape[3]):
                gxp[_window(gxp, self, ky, kx, ohw)] += np.einsum("nkhw,kc->nchw", gy.astype(dtype), wt[:, :, ky, kx])
        return np.ascontiguousarray(gxp[:, :, ph:ph + h, pw:pw + wd])

    def grad(self, inputs, output, gout):
        gy, w = inputs[:2]
        # <gx(gy, w), g> = <gy, conv(g, w)>: linear in each of gy and w
        g_gy = Conv2d(**self.params())(gout, w)
        g_w = grad_weights(self, gout, gy, w)
        return [g_gy, g_w] + [None] * (len(inputs) - 2)

    def rebuild(self, inputs, ctx):
        return _rebuild_sized(self, inputs)

    def __str__(self) -> str:
        return f"Conv2dGradInputs{{{_params_str(self)}, shape={_dims_str(self.shape)}}}"


@dataclasses.dataclass(frozen=True)
class Conv2dGradWeights(_ConvOp):
    """gw = Conv2dGradWeights(x, gy, *scalars): the gradient of conv2d with respect to its
    filters, of filter size ``shape`` (ints or Args)."""
    shape: tuple = (None, None)

    def make_type(self, x: Variable, gy: Variable, *args: Variable) -> TensorType:
        _check_4d_float(self, x, gy)
        khw = tuple(None if isinstance(d, Arg) else d for d in self.shape)
        wshape = (gy.type.shape[1], x.type.shape[1]) + khw
        _check_grad_output(self, x.type.shape, wshape, gy.type.shape, describe(x), describe(gy))
        return TensorType(upcast(x.dtype, gy.dtype), wshape)

    def perform(self, x: np.ndarray, gy: np.ndarray, *args) -> np.ndarray:
        kh, kw = (resolve(d, (x, gy) + args) for d in self.shape)
        wshape = (gy.shape[1], x.shape[1], kh, kw)
        _check_grad_output(self, x.shape, wshape, gy.shape, f"{x.shape}", f"{gy.shape}")
        dtype = upcast(x.dtype.name, gy.dtype.name)
        xp = np.pad(x.astype(dtype), ((0, 0), (0, 0)) + tuple((p, p) for p in self.pads(kh, kw)))
        gwt = np.zeros(wshape, dtype)
        for ky in range(kh):
            for kx in range(kw):
                gwt[:, :, ky, kx] = np.einsum("nchw,nkhw->kc", xp[_window(xp, self, ky, kx, gy.shape[2:])],
                                              gy.astype(dtype))
        return np.ascontiguousarray(_taps(gwt, self.filter_flip))

    def grad(self, inputs, output, gout):
        x, gy = inputs[:2]
        # <gw(x, gy), g> = <conv(x, g), gy>: linear in each of x and gy
        g_x = grad_inputs(self, gy, gout, x)
        g_gy = Conv2d(**self.params())(x, gout)
        return [g_x, g_gy] + [None] * (len(inputs) - 2)

    def rebuild(self, inputs, ctx):
        return _rebuild_sized(self, inputs)

    def __str__(self) -> str:
        return f"Conv2dGradWeights{{{_params_str(self)}, shape={_dims_str(self.shape)}}}"


# -- helpers ----------------------------------------------------------------------------------

def _check_grad_output(op: _ConvOp, xshape: tuple, wshape: tuple, yshape: tuple, a: str, b: str) -> None:
    """The forward geometry of (x, w) must give gy's spatial shape (where all are known)."""
    ohw = op.check_geometry(xshape, wshape, a, b)
    for axis, (o, g) in enumerate(zip(ohw, yshape[2:])):
        if o is not None and g is not None and o != g:
            raise ShapeError(f"{op}: an input of {xshape[2:]} and filters of {wshape[2:]} give outputs of "
                             f"{ohw}, but the output gradient has {tuple(yshape[2:])} ({a}, {b})")
    if wshape[0] is not None and yshape[1] is not None and wshape[0] != yshape[1]:
        raise ShapeError(f"{op}: {wshape[0]} filters but an output gradient of {yshape[1]} channels ({a}, {b})")


def _spatial(var: Variable) -> tuple[tuple, list]:
    """``var``'s rows and cols as op parameters: ints where static, else Args counting from 2
    (after the op's two tensor inputs) and the scalar inputs they name."""
    entries, args = [], []
    for axis in (2, 3):
        if var.type.shape[axis] is not None:
            entries.append(var.type.shape[axis])
        else:
            args.append(var.shape[axis])
            entries.append(Arg(1 + len(args)))
    return tuple(entries), args


def grad_inputs(op: _ConvOp, gy: Variable, w: Variable, like: Variable) -> Variable:
    """The gradient with respect to the input ``like`` (whose spatial size it takes)."""
    shape, args = _spatial(like)
    return Conv2dGradInputs(**op.params(), shape=shape)(gy, w, *args)


def grad_weights(op: _ConvOp, x: Variable, gy: Variable, like: Variable) -> Variable:
    """The gradient with respect to the filters ``like`` (whose filter size it takes)."""
    shape, args = _spatial(like)
    return Conv2dGradWeights(**op.params(), shape=shape)(x, gy, *args)


def _rebuild_sized(op, inputs) -> Variable:
    shape = tuple(fold(d, inputs) for d in op.shape)
    shape, inputs = renumber(shape, inputs, 2)
    return dataclasses.replace(op, shape=shape)(*inputs)


def _params_str(op: _ConvOp) -> str:
    flip = "conv" if op.filter_flip else "corr"
    return f"{op.border_mode}, s={op.subsample}, d={op.filter_dilation}, {flip}"


def _dims_str(dims: tuple) -> str:
    return "(" + ", ".join(map(str, dims)) + ")"

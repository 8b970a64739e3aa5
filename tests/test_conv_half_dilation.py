"""conv2d's padding and output size follow Theano for every border mode, filter size and dilation
(issue 19 item 2): 'half' pads by the *dilated* filter size // 2, ``((k - 1) * d + 1) // 2``, which
differs from ``(k // 2) * d`` for an even ``k`` with ``d > 1``.

The oracle here is written out in the test: a direct NumPy summation over padded, dilated
windows (plain loops over output positions and taps), with its own padding rule, so it shares
nothing with compiler/ops/conv.py. Each backend compiles one function with every case as an
output (an emu build costs g++ seconds).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import theta
import theta.tensor as T

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)


def theano_pad(border_mode, axis: int, k: int, d: int) -> int:
    """Theano's zero padding per side (theano.tensor.nnet.abstract_conv.get_conv_output_shape)."""
    if border_mode == "valid":
        return 0
    if border_mode == "full":
        return (k - 1) * d
    if border_mode == "half":
        return ((k - 1) * d + 1) // 2
    if isinstance(border_mode, int):
        return border_mode
    return border_mode[axis]


def direct_conv(x, w, border_mode, stride, dilation, flip) -> np.ndarray:
    """y[n,k,oy,ox] = sum_{c,ky,kx} xp[n,c, oy*sh + ky*dh, ox*sw + kx*dw] * w'[k,c,ky,kx]."""
    x, w = x.astype("float64"), w.astype("float64")
    kh, kw = w.shape[2:]
    ph, pw = (theano_pad(border_mode, a, k, d) for a, k, d in ((0, kh, dilation[0]), (1, kw, dilation[1])))
    if flip:
        w = w[:, :, ::-1, ::-1]
    xp = np.zeros(x.shape[:2] + (x.shape[2] + 2 * ph, x.shape[3] + 2 * pw))
    xp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
    (sh, sw), (dh, dw) = stride, dilation
    oh = (xp.shape[2] - (dh * (kh - 1) + 1)) // sh + 1
    ow = (xp.shape[3] - (dw * (kw - 1) + 1)) // sw + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    patch = xp[:, :, oy * sh + ky * dh, ox * sw + kx * dw]           # (n, c)
                    y[:, :, oy, ox] += patch @ w[:, :, ky, kx].T                     # (n, k)
    return y


BORDERS = ["valid", "full", "half", 1, (2, 1)]
STRIDES = [(1, 1), (2, 3)]
DILATIONS = [(1, 1), (2, 3)]
# odd x odd and even x even filters (and an odd x even one below), each with every border
# mode, stride and dilation; the flip alternates so every border mode sees both
FILTERS = [(3, 2, 3, 3), (3, 2, 2, 4)]
CASES = [(fs, bm, s, d, k % 2 == 0)
         for k, (fs, bm, s, d) in enumerate(itertools.product(FILTERS, BORDERS, STRIDES, DILATIONS))]
XSHAPE = (2, 2, 9, 11)


def test_theano_example_shapes():
    """The issue's example: 1x2x5x4 input, 3x2x2x3 filters, dilation (2, 1), 'half' is 1x3x5x4 in
    Theano (and (2, 2) with an even width: 2x2x3x2 filters give 1x2x5x4)."""
    x = T.dtensor4("x", shape=(1, 2, 5, 4))
    y = T.nnet.conv2d(x, T.dtensor4("w", shape=(3, 2, 2, 3)), border_mode="half", filter_dilation=(2, 1))
    assert y.type.shape == (1, 3, 5, 4)
    y2 = T.nnet.conv2d(x, T.dtensor4("w2", shape=(2, 2, 3, 2)), border_mode="half", filter_dilation=(2, 2))
    assert y2.type.shape == (1, 2, 5, 4)


@pytest.mark.parametrize("dtype", ["float64"])
def test_forward_against_direct_sum(backend, dtype, rng):
    x = T.tensor4("x", dtype=dtype)
    ws = {fs: T.tensor4(f"w{fs[2]}{fs[3]}", dtype=dtype) for fs in FILTERS}
    xv = rng.standard_normal(XSHAPE).astype(dtype)
    wvs = {fs: rng.standard_normal(fs).astype(dtype) for fs in FILTERS}
    outs = [T.nnet.conv2d(x, ws[fs], border_mode=bm, subsample=s, filter_dilation=d, filter_flip=flip)
            for fs, bm, s, d, flip in CASES]
    got = theta.function([x] + list(ws.values()), outs, backend=backend)(xv, *wvs.values())
    for out, g, (fs, bm, s, d, flip) in zip(outs, got, CASES):
        want = direct_conv(xv, wvs[fs], bm, s, d, flip)
        case = f"filters {fs}, border_mode={bm!r}, stride {s}, dilation {d}, flip={flip}"
        assert g.shape == want.shape, f"{case}: {g.shape} against Theano's {want.shape}"
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-10, err_msg=case)


def test_declared_shapes_follow_theano(float64):
    """With static shapes and the Theano shape hints declared, the graph's output type is
    Theano's, and each gradient's type is its input's shape (the gradient ops' own checks of
    the forward geometry pass); a declared input shape the call contradicts is still caught."""
    for fs, bm, s, d, flip in CASES:
        x, w = T.dtensor4("x", shape=XSHAPE), T.dtensor4("w", shape=fs)
        y = T.nnet.conv2d(x, w, input_shape=XSHAPE, filter_shape=fs, border_mode=bm, subsample=s,
                          filter_dilation=d, filter_flip=flip)
        want = direct_conv(np.zeros(XSHAPE), np.zeros(fs), bm, s, d, flip).shape
        assert y.type.shape == want, (fs, bm, s, d, y.type.shape, want)
        gx, gw = theta.grad(T.sum(y), [x, w])
        assert gx.type.shape == XSHAPE and gw.type.shape == fs


def _concat(x, w, cases):
    return T.concatenate([T.flatten(T.nnet.conv2d(x, w, border_mode=bm, subsample=s, filter_dilation=d,
                                                   filter_flip=flip)) for bm, s, d, flip in cases])


@pytest.mark.parametrize("fs", [(2, 2, 2, 4), (2, 2, 3, 2)], ids=lambda fs: f"k{fs[2]}x{fs[3]}")
def test_gradients(vgrad, rng, fs):
    """Both gradients over every border mode, stride and dilation, for an even and a mixed
    filter size (odd sizes: tests/test_conv.py): finite differences and the R-op on the
    reference backend, emu's gradient kernels against the reference's."""
    cases = [(bm, s, d, k % 2 == 0) for k, (bm, s, d) in enumerate(itertools.product(BORDERS, STRIDES, DILATIONS))]
    xv, wv = rng.standard_normal((1, 2, 7, 11)), rng.standard_normal(fs)
    vgrad(lambda x, w: _concat(x, w, cases), xv, wv)


def test_gradients_against_direct_sum(float64, rng):
    """The gradients through the reference backend against central differences of the test's
    own direct sum (not theta's forward), for even dilated filters in 'half' mode."""
    xv, wv = rng.standard_normal((1, 2, 5, 4)), rng.standard_normal((3, 2, 2, 3))
    proj = rng.standard_normal(direct_conv(xv, wv, "half", (1, 1), (2, 1), True).shape)
    x, w = T.dtensor4("x"), T.dtensor4("w")
    cost = T.sum(T.nnet.conv2d(x, w, border_mode="half", filter_dilation=(2, 1)) * proj)
    gx, gw = theta.function([x, w], theta.grad(cost, [x, w]), backend="reference")(xv, wv)
    eps = 1e-6
    for got, arr, which in ((gx, xv, 0), (gw, wv, 1)):
        numeric = np.zeros(arr.shape)
        for idx in np.ndindex(*arr.shape):
            args = [[xv.copy(), wv.copy()] for _ in range(2)]
            args[0][which][idx] += eps
            args[1][which][idx] -= eps
            numeric[idx] = (np.sum(direct_conv(*args[0], "half", (1, 1), (2, 1), True) * proj)
                            - np.sum(direct_conv(*args[1], "half", (1, 1), (2, 1), True) * proj)) / (2 * eps)
        np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-7, err_msg=f"gradient {which}")

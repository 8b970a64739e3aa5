"""T.nnet.conv2d (compiler/ops/conv.py, kernels/conv.cu.j2): forward against a plain SciPy
reference for every border mode, stride, dilation and flip on odd sizes, float32 and float64,
on the reference backend and on emu (checking mode); gradients (verify_grad, the R-op, second
order); the typed errors; epilogue fusion; nvcc on every kernel variant.

Each test compiles few functions with many outputs: an emu build costs g++ seconds.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from scipy.signal import correlate

import theta
import theta.tensor as T
from theta.compiler.lowering import conv as conv_lowering
from theta.runtime.nvcc import find_nvcc, launch_problems, resources

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

BORDERS = ["valid", "full", "half", (1, 2)]
STRIDES = [(1, 1), (2, 2), (2, 1)]
DILATIONS = [(1, 1), (2, 2)]
# every (border, stride, dilation); the flip alternates, so each border mode sees both
CASES = [(bm, s, d, k % 2 == 0) for k, (bm, s, d) in enumerate(itertools.product(BORDERS, STRIDES, DILATIONS))]
# (input shape, filter shape): batch 3 / 3 channels and batch 1 / 1 channel, odd sizes
SHAPES = [((3, 3, 7, 5), (2, 3, 3, 2)), ((1, 1, 7, 5), (3, 1, 3, 2))]
TOL = {"float32": 1e-4, "float64": 1e-10}


def reference_conv(x, w, border_mode, stride, dilation, flip) -> np.ndarray:
    """Direct definition: zero-pad, correlate each channel with the dilated filter (reversed for
    a true convolution) at stride 1 with SciPy, sum over channels, then subsample."""
    x, w = x.astype("float64"), w.astype("float64")
    kh, kw = w.shape[2:]
    if border_mode == "valid":
        pads = (0, 0)
    elif border_mode == "full":
        pads = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    elif border_mode == "half":
        pads = ((dilation[0] * (kh - 1) + 1) // 2, (dilation[1] * (kw - 1) + 1) // 2)   # Theano's
    else:
        pads = border_mode
    if flip:
        w = w[:, :, ::-1, ::-1]
    wd = np.zeros(w.shape[:2] + (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1))
    wd[:, :, ::dilation[0], ::dilation[1]] = w
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0],) * 2, (pads[1],) * 2))
    out = np.array([[sum(correlate(xp[n, c], wd[k, c], mode="valid") for c in range(x.shape[1]))
                     for k in range(w.shape[0])] for n in range(x.shape[0])])
    return out[:, :, ::stride[0], ::stride[1]]


def _close(got, want, dtype, what) -> None:
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(got.astype("float64") - want))) / scale
    assert err < TOL[dtype], f"{what}: relative error {err:.3g}"


def _program(f, *arrays):
    return f.specialization(*arrays).program


# -- forward -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_every_mode(backend, dtype, rng):
    xs, ws, outs, want = [], [], [], []
    arrays = []
    for xshape, wshape in SHAPES:
        x, w = T.tensor4(dtype=dtype), T.tensor4(dtype=dtype)
        xv, wv = rng.standard_normal(xshape).astype(dtype), rng.standard_normal(wshape).astype(dtype)
        xs.append(x), ws.append(w), arrays.extend([xv, wv])
        for bm, s, d, flip in CASES:
            outs.append(T.nnet.conv2d(x, w, border_mode=bm, subsample=s, filter_dilation=d, filter_flip=flip))
            want.append(reference_conv(xv, wv, bm, s, d, flip))
    f = theta.function([v for pair in zip(xs, ws) for v in pair], outs, backend=backend)
    got = f(*arrays)
    for k, (g, r) in enumerate(zip(got, want)):
        assert g.dtype == dtype
        _close(g, r, dtype, f"output {k}: {CASES[k % len(CASES)]} on {SHAPES[k // len(CASES)]}")
    if backend == "emu":
        assert len(_program(f, *arrays).kernels) == len(outs)


def test_forward_views_and_mixed_dtypes(backend, rng):
    """Operands read through strides (a channels-last input dimshuffled, a sliced filter bank),
    a float32 input with float64 filters (the result is float64), an int border and stride."""
    x, w, wd = T.tensor4(), T.tensor4(), T.dtensor4()
    xv = rng.standard_normal((2, 6, 5, 3)).astype("float32")        # (batch, rows, cols, channels)
    wv = rng.standard_normal((5, 3, 2, 3)).astype("float32")
    wdv = rng.standard_normal((2, 3, 3, 3))
    xn = x.dimshuffle(0, 3, 1, 2)
    outs = [T.nnet.conv2d(xn, w[::2, :, ::-1, 1:], border_mode=1, subsample=2),
            T.nnet.conv2d(xn, wd, border_mode="half", filter_flip=False),
            T.nnet.conv2d(xn[:0], w, border_mode="full")]                 # an empty batch
    f = theta.function([x, w, wd], outs, backend=backend)
    got = f(xv, wv, wdv)
    xnv = xv.transpose(0, 3, 1, 2)
    _close(got[0], reference_conv(xnv, wv[::2, :, ::-1, 1:], (1, 1), (2, 2), (1, 1), True), "float32", "views")
    assert got[1].dtype == "float64"
    _close(got[1], reference_conv(xnv, wdv, "half", (1, 1), (1, 1), False), "float64", "mixed")
    assert got[2].shape == (0, 5, 7, 7)


# -- gradients ---------------------------------------------------------------------------------

def _all_modes(x, w, cases=CASES):
    """Every case's output, flattened and concatenated: one graph (and one compile) for all."""
    return T.concatenate([T.flatten(T.nnet.conv2d(x, w, border_mode=bm, subsample=s, filter_dilation=d,
                                                   filter_flip=flip)) for bm, s, d, flip in cases])


def test_grad_every_mode(vgrad, rng):
    """verify_grad and the R-op (reference), emu gradients against the reference's, for the
    input and the filters over every border mode, stride, dilation and flip."""
    xv, wv = rng.standard_normal((2, 3, 7, 5)), rng.standard_normal((2, 3, 3, 2))
    vgrad(_all_modes, xv, wv)


def test_second_order(vgrad, rng):
    """The gradient ops' own gradients: the gradient of a gradient (as Hessian-vector products
    and double backprop need) against finite differences / the reference."""
    xv, wv = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 2, 3))
    cases = [("valid", (1, 1), (1, 1), True), ((1, 2), (2, 1), (2, 1), False), ("half", (2, 2), (1, 2), True)]

    def grads(x, w):
        cost = T.sum(T.tanh(_all_modes(x, w, cases)) ** 2)
        gx, gw = theta.grad(cost, [x, w])
        return T.concatenate([T.flatten(gx), T.flatten(gw)])
    vgrad(grads, xv, wv)


def test_hessian_vector_product(float64, rng):
    x, w, v = T.dtensor4("x"), T.dtensor4("w"), T.dtensor4("v")
    xv, wv, vv = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal((3, 2, 3, 2))
    cost = T.sum(T.tanh(T.nnet.conv2d(x, w, border_mode="half", subsample=(2, 1))) ** 2)
    hv = theta.function([x, w, v], theta.gradient.hessian_vector_product(cost, w, v))(xv, wv, vv)
    g = theta.function([x, w], theta.grad(cost, w))
    eps = 1e-6
    numeric = (g(xv, wv + eps * vv) - g(xv, wv - eps * vv)) / (2 * eps)
    np.testing.assert_allclose(hv, numeric, rtol=1e-5, atol=1e-7)


# -- fusion ------------------------------------------------------------------------------------

def test_conv_bias_relu_is_one_kernel(rng):
    x, w, b = T.tensor4("x"), T.tensor4("w"), T.vector("b")
    y = T.nnet.relu(T.nnet.conv2d(x, w, border_mode="half") + b.dimshuffle("x", 0, "x", "x"))
    arrays = [rng.standard_normal(s).astype("float32") for s in [(3, 3, 9, 7), (5, 3, 3, 3), (5,)]]
    f = theta.function([x, w, b], y, backend="emu")
    want = np.maximum(reference_conv(*arrays[:2], "half", (1, 1), (1, 1), True) + arrays[2][None, :, None, None], 0)
    _close(f(*arrays), want, "float32", "conv + bias + relu")
    kernels = _program(f, *arrays).kernels
    assert len(kernels) == 1 and kernels[0].family == "conv"


# The count stated in the README: a LeNet layer, conv + bias + relu + 2x2 max-pool, is 2 kernels:
# the implicit-GEMM convolution with bias and relu in its epilogue, then the pool (no im2col).
CONV_POOL_LAYER_KERNELS = 2


def test_conv_pool_relu_layer_is_two_kernels(rng):
    from theta.tensor.signal.pool import pool_2d
    x, w, b = T.tensor4("x"), T.tensor4("w"), T.vector("b")
    y = pool_2d(T.nnet.relu(T.nnet.conv2d(x, w) + b.dimshuffle("x", 0, "x", "x")), (2, 2), ignore_border=True)
    arrays = [rng.standard_normal(s).astype("float32") for s in [(2, 1, 12, 12), (6, 1, 5, 5), (6,)]]
    f = theta.function([x, w, b], y, backend="emu")
    conv = np.maximum(reference_conv(*arrays[:2], "valid", (1, 1), (1, 1), True) + arrays[2][None, :, None, None], 0)
    want = conv.reshape(2, 6, 4, 2, 4, 2).max(axis=(3, 5))
    _close(f(*arrays), want, "float32", "conv + bias + relu + pool")
    kernels = _program(f, *arrays).kernels
    assert [k.family for k in kernels] == ["conv", "pool"]
    assert len(kernels) == CONV_POOL_LAYER_KERNELS


def test_sgd_step_of_a_conv_layer(rng):
    """One SGD step of conv + bias + relu with a squared loss: the filters' update is the
    epilogue of the filters' gradient kernel."""
    xv, w0, b0 = (rng.standard_normal(s).astype("float32") for s in [(2, 3, 6, 5), (4, 3, 3, 2), (4,)])
    W, B = theta.shared(w0.copy(), name="W"), theta.shared(b0.copy(), name="B")
    x = T.tensor4("x")
    y = T.nnet.relu(T.nnet.conv2d(x, W, border_mode=(1, 0), subsample=(2, 1)) + B.dimshuffle("x", 0, "x", "x"))
    cost = T.sum(y ** 2)
    gW, gB = theta.grad(cost, [W, B])
    f = theta.function([x], cost, updates=[(W, W - 0.01 * gW), (B, B - 0.01 * gB)], backend="emu")
    ref_W, ref_B = theta.shared(w0.copy()), theta.shared(b0.copy())
    ry = T.nnet.relu(T.nnet.conv2d(x, ref_W, border_mode=(1, 0), subsample=(2, 1)) + ref_B.dimshuffle("x", 0, "x", "x"))
    rc = T.sum(ry ** 2)
    rgW, rgB = theta.grad(rc, [ref_W, ref_B])
    ref = theta.function([x], rc, updates=[(ref_W, ref_W - 0.01 * rgW), (ref_B, ref_B - 0.01 * rgB)])
    for _ in range(2):
        _close(np.asarray(f(xv)), np.asarray(ref(xv), dtype="float64"), "float32", "cost")
    _close(W.get_value(), ref_W.get_value().astype("float64"), "float32", "W after two steps")
    _close(B.get_value(), ref_B.get_value().astype("float64"), "float32", "B after two steps")
    kernels = _program(f, xv).kernels
    conv = [k for k in kernels if k.family == "conv"]
    assert len(conv) == 2, [k.name for k in kernels]   # forward (+ epilogue), filters' gradient + update
    assert sum(p.name.startswith("out") for p in conv[1].params) >= 1


# -- errors ------------------------------------------------------------------------------------

def test_errors_when_building(float64):
    x, w = T.dtensor4("x"), T.dtensor4("w")
    xs, ws = T.dtensor4("xs", shape=(2, 3, 5, 5)), T.dtensor4("ws", shape=(4, 2, 3, 3))
    with pytest.raises(theta.errors.ShapeError, match=r"3 channels.*expect 2.*'xs'.*'ws'.*test_conv.py"):
        T.nnet.conv2d(xs, ws)
    big = T.dtensor4("big", shape=(4, 3, 6, 2))
    with pytest.raises(theta.errors.ShapeError, match=r"do not fit.*'xs' float64\[2, 3, 5, 5\].*'big'"):
        T.nnet.conv2d(xs, big)
    T.nnet.conv2d(xs, big, border_mode="half")   # padded, it fits
    with pytest.raises(theta.errors.ShapeError, match="do not fit"):
        T.nnet.conv2d(xs, T.dtensor4(shape=(4, 3, 3, 3)), filter_dilation=3)
    with pytest.raises(theta.errors.ShapeError, match=r"input_shape=\(2, 3, 6, 5\).*'xs'"):
        T.nnet.conv2d(xs, w, input_shape=(2, 3, 6, 5))
    with pytest.raises(theta.errors.ShapeError, match=r"channels"):
        T.nnet.conv2d(x, w, input_shape=(None, 3, None, None), filter_shape=(None, 2, None, None))
    with pytest.raises(theta.errors.ShapeError, match="4-D.*'m'"):
        T.nnet.conv2d(T.dmatrix("m"), w)
    with pytest.raises(theta.errors.ShapeError, match="4-D"):
        T.nnet.conv2d(x, T.dtensor3())
    with pytest.raises(theta.errors.DTypeError, match="float"):
        T.nnet.conv2d(T.itensor4("i"), w)
    for bad in ["same", -1, (1, 2, 3), (1.5, 1), True]:
        with pytest.raises(theta.errors.ShapeError, match="border_mode"):
            T.nnet.conv2d(x, w, border_mode=bad)
    for bad in [0, (1,), (2, 0), (1.0, 1)]:
        with pytest.raises(theta.errors.ShapeError, match="subsample"):
            T.nnet.conv2d(x, w, subsample=bad)
        with pytest.raises(theta.errors.ShapeError, match="filter_dilation"):
            T.nnet.conv2d(x, w, filter_dilation=bad)
    with pytest.raises(theta.errors.ShapeError, match="input_shape"):
        T.nnet.conv2d(x, w, input_shape=(1, 2, 3))


@pytest.mark.parametrize("backend_name", ["reference", "emu"])
def test_errors_at_call_time(float64, backend_name):
    """Shapes only known when called: the shape rules run again on the call's shapes."""
    x, w = T.dtensor4("x"), T.dtensor4("w")
    y = T.nnet.conv2d(x, w, input_shape=(None, 3, 5, 5))
    f = theta.function([x, w], y, backend=backend_name)
    with pytest.raises(ValueError, match=r"channels.*'x'.*'w'.*test_conv.py"):
        f(np.zeros((1, 3, 5, 5)), np.zeros((2, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"do not fit.*'x'.*'w'"):
        f(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 6, 3)))
    with pytest.raises(ValueError, match=r"input_shape=\(None, 3, 5, 5\).*'x'"):
        f(np.zeros((1, 3, 6, 5)), np.zeros((2, 3, 3, 3)))


# -- kernel variants and nvcc ------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _coverage_kernels() -> tuple:
    """Every kernel variant, checked on emu against the reference: the three modes in float32
    and float64, the three tile shapes, an epilogue, several tiles per dim, and a grid of one
    block per dim (the grid-stride loops over tiles)."""
    theta.config.emu_check = True
    rng = np.random.default_rng(0)
    outs, ins, arrays = [], [], []
    for dtype, (xshape, wshape) in [("float32", ((2, 3, 9, 9), (70, 3, 3, 3))),   # 64 x 64 tiles, 3 x 2 of them
                                    ("float64", ((1, 4, 6, 5), (8, 4, 2, 3))),    # 128 x 16 (fwd/gi), 32 x 64 (gw)
                                    ("float32", ((3, 2, 5, 7), (20, 2, 3, 1)))]:
        x, w, b = T.tensor4(dtype=dtype), T.tensor4(dtype=dtype), T.vector(dtype=dtype)
        y = T.nnet.conv2d(x, w, border_mode="half", subsample=(2, 1), filter_dilation=(1, 2))
        outs += [T.tanh(y + b.dimshuffle("x", 0, "x", "x"))] + theta.grad(T.sum(y ** 2), [x, w])
        ins += [x, w, b]
        arrays += [rng.standard_normal(s).astype(dtype) for s in (xshape, wshape, wshape[:1])]
    f = theta.function(ins, outs, backend="emu")
    old = conv_lowering.MAX_GRID
    conv_lowering.MAX_GRID = 1
    try:
        got = f(*arrays)
        kernels = _program(f, *arrays).kernels
    finally:
        conv_lowering.MAX_GRID = old
    want = theta.function(ins, outs, backend="reference")(*arrays)
    for k, (g, r) in enumerate(zip(got, want)):
        _close(g, r.astype("float64"), r.dtype.name, f"coverage output {k}")
    return tuple(k for k in kernels if k.family == "conv")


def test_coverage_variants():
    sources = [k.source for k in _coverage_kernels()]
    for mode in ("fwd", "gi", "gw"):
        assert sum(f"({mode}:" in s for s in sources) == 3, mode
    for tile in ("TM = 2, TN = 8", "TM = 4, TN = 2", "TM = 1, TN = 8"):
        assert any(tile in s for s in sources), tile
    assert all(k.grid[:2] == (1, 1) for k in _coverage_kernels())


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc not found: install the CUDA toolkit or set THETA_NVCC")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_with_nvcc(arch):
    kernels = _coverage_kernels()
    info = resources("\n".join(k.source for k in kernels), arch)
    for k in kernels:
        assert k.name in info, k.name
        assert info[k.name]["spill_stores"] == 0, (k.name, info[k.name])
        assert not launch_problems(info[k.name], k.block[0] * k.block[1] * k.block[2]), (k.name, info[k.name])

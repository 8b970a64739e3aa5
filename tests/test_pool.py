"""theta.tensor.signal.pool.pool_2d: every mode against a NumPy reference written out here
(Theano's semantics: output sizes with and without ignore_border, padding, default stride,
inputs of rank 2 to 5), gradients and the gradients' own gradients (verify_grad, the R-op),
the kernels on emu in checking mode (many cases in one function: one compile), the fused
relu epilogue, and typed errors for bad windows, strides, padding and modes.
"""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.tensor.signal import pool
from theta.tensor.signal.pool import pool_2d

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")
# (ws, stride, pad, ignore_border) over a 5 x 7 image
GEOMETRIES = [((2, 2), None, (0, 0), True), ((3, 2), (1, 2), (0, 0), True), ((3, 3), (2, 2), (1, 2), True),
              ((2, 3), None, (0, 0), False), ((3, 2), (2, 1), (0, 0), False), ((2, 2), (3, 3), (1, 1), True),
              ((5, 7), None, (0, 0), True), ((4, 4), (3, 5), (0, 0), False)]


def np_out_size(n, ws, st, pad, ignore_border):
    """Theano's Pool.out_shape for one axis."""
    n = n + 2 * pad
    if ignore_border:
        return n // st if ws == st else max(0, (n - ws) // st + 1)
    return (n - 1) // st + 1 if st >= ws else max(0, (n - 1 - ws) // st + 1) + 1


def np_pool(x, ws, stride, pad, ignore_border, mode):
    """Direct windows over the last two axes (Theano's Pool.perform, vectorized over batch)."""
    st = stride or ws
    H, W = x.shape[-2:]
    nr, nc = (np_out_size(n, w, s, p, ignore_border) for n, w, s, p in zip((H, W), ws, st, pad))
    out = np.zeros(x.shape[:-2] + (nr, nc), dtype=x.dtype)
    for r in range(nr):
        for c in range(nc):
            pr0, pc0 = r * st[0], c * st[1]
            pr1, pc1 = min(pr0 + ws[0], H + 2 * pad[0]), min(pc0 + ws[1], W + 2 * pad[1])
            r0, r1 = max(pr0 - pad[0], 0), min(pr1 - pad[0], H)
            c0, c1 = max(pc0 - pad[1], 0), min(pc1 - pad[1], W)
            win = x[..., r0:r1, c0:c1].astype("float64")
            if mode == "max":
                v = win.max(axis=(-2, -1))
            elif mode == "sum":
                v = win.sum(axis=(-2, -1))
            elif mode == "average_inc_pad":
                v = win.sum(axis=(-2, -1)) / ((pr1 - pr0) * (pc1 - pc0))
            else:
                v = win.sum(axis=(-2, -1)) / ((r1 - r0) * (c1 - c0))
            out[..., r, c] = v
    return out


def all_cases(v):
    return [pool_2d(v, ws, ignore_border=ib, stride=st, pad=pad, mode=mode)
            for ws, st, pad, ib in GEOMETRIES for mode in MODES]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pool_forward(run, rng, dtype):
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    got = run(all_cases, x)
    tol = 1e-12 if dtype == "float64" else 1e-5
    k = 0
    for ws, st, pad, ib in GEOMETRIES:
        for mode in MODES:
            want = np_pool(x, ws, st, pad, ib, mode)
            assert got[k].shape == want.shape and got[k].dtype == dtype, (ws, st, pad, ib, mode)
            np.testing.assert_allclose(got[k], want, rtol=tol, atol=tol, err_msg=f"{(ws, st, pad, ib, mode)}")
            k += 1


def test_pool_output_sizes(float64):
    """Theano's sizes: ignore_border drops partial windows; stride defaults to ws."""
    x = T.dmatrix("x", shape=(5, 5))
    assert pool_2d(x, (2, 2), ignore_border=True).type.shape == (2, 2)
    assert pool_2d(x, (2, 2), ignore_border=False).type.shape == (3, 3)
    assert pool_2d(x, (3, 3), ignore_border=False, stride=(1, 1)).type.shape == (3, 3)
    assert pool_2d(x, (3, 3), ignore_border=True, stride=(2, 2), pad=(1, 1)).type.shape == (3, 3)
    assert pool_2d(x, (2, 2), ignore_border=False, stride=(3, 3)).type.shape == (2, 2)
    # Theano's older keyword names
    assert pool_2d(x, ds=(2, 2), st=(1, 1), padding=(1, 1)).type.shape == (6, 6)


@pytest.mark.parametrize("shape", [(5, 7), (3, 5, 7), (2, 1, 2, 5, 7)], ids=["rank2", "rank3", "rank5"])
def test_pool_ranks(run, rng, shape):
    x = rng.standard_normal(shape)
    got = run(lambda v: [pool_2d(v, (2, 3), mode="max"), pool_2d(v, (3, 2), stride=(1, 1), mode="average_exc_pad",
                                                              pad=(1, 1))], x)
    np.testing.assert_allclose(got[0], np_pool(x, (2, 3), None, (0, 0), True, "max"), rtol=1e-12)
    np.testing.assert_allclose(got[1], np_pool(x, (3, 2), (1, 1), (1, 1), True, "average_exc_pad"), rtol=1e-12)


def test_pool_strided_input(run, rng):
    """A transposed or sliced input is read through its strides."""
    x = rng.standard_normal((2, 7, 6))
    got = run(lambda v: [pool_2d(v.dimshuffle(0, 2, 1), (2, 2), mode="sum"),
                         pool_2d(v[:, 1:, ::2], (3, 2), stride=(2, 1), mode="max", ignore_border=False)], x)
    np.testing.assert_allclose(got[0], np_pool(x.transpose(0, 2, 1), (2, 2), None, (0, 0), True, "sum"), rtol=1e-12)
    np.testing.assert_allclose(got[1], np_pool(x[:, 1:, ::2], (3, 2), (2, 1), (0, 0), False, "max"), rtol=1e-12)


def test_pool_grad(vgrad, rng):
    """Gradients of every mode and geometry (continuous inputs: no ties in a max window)."""
    x = rng.standard_normal((1, 2, 5, 7))
    vgrad(lambda v: T.concatenate([T.flatten(o) for o in all_cases(v)]), x)


def test_pool_second_order(vgrad, rng):
    """The gradient ops' own gradients (MaxPoolGradGrad, and a pooling for AveragePoolGrad):
    the gradient of a cost built from a pooling gradient."""
    x = rng.standard_normal((1, 2, 5, 6))

    def grad_of_pool(v):
        outs = [pool_2d(v, (3, 2), stride=(2, 1), pad=(1, 0), mode=m) for m in MODES]
        outs += [pool_2d(v, (2, 3), ignore_border=False, mode=m) for m in ("max", "average_inc_pad")]
        w = T.as_tensor_variable(np.linspace(0.5, 1.5, 6))
        return theta.grad(sum(w[k] * T.sum(T.sqr(o) * T.tanh(v).sum()) for k, o in enumerate(outs)), v)
    vgrad(grad_of_pool, x)


def test_max_pool_grad_ties(float64):
    """Theano's MaxPoolGrad: every element equal to its window's max gets the gradient."""
    x = T.dmatrix("x")
    xv = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, -1.0], [2.0, 2.0, 2.0]])
    g = theta.grad(T.sum(pool_2d(x, (2, 2), ignore_border=False) * np.array([[1.0, 10.0], [100.0, 1000.0]])), x)
    for backend in ("reference", "emu"):
        got = theta.function([x], g, backend=backend)(xv)
        np.testing.assert_array_equal(got, [[1, 1, 10], [0, 1, 0], [100, 100, 1000]])


def test_max_pool_2d_same_size(run, rng):
    x = rng.standard_normal((2, 4, 6))
    got = run(lambda v: pool.max_pool_2d_same_size(v, (2, 3)), x)
    blocks = x.reshape(2, 2, 2, 2, 3).max(axis=(2, 4), keepdims=True)
    want = np.where(x.reshape(2, 2, 2, 2, 3) == blocks, x.reshape(2, 2, 2, 2, 3), 0).reshape(x.shape)
    np.testing.assert_array_equal(got, want)


def test_maxpool_relu_fuses(float64, rng):
    """relu after max pooling is the pooling kernel's epilogue; its gradient too (the relu'
    multiplies the pooling gradient's input, and the pool grad kernel writes the result)."""
    x = T.dtensor4("x")
    y = T.nnet.relu(pool_2d(x, (2, 2)))
    gx = theta.grad(T.sum(y * y), x)
    xv = rng.standard_normal((2, 3, 6, 4))
    f = theta.function([x], y, backend="emu")
    np.testing.assert_allclose(f(xv), np.maximum(np_pool(xv, (2, 2), None, (0, 0), True, "max"), 0), rtol=1e-12)
    assert [k.family for k in f.kernels] == ["pool"]
    fg = theta.function([x], [y, gx], backend="emu")
    for got, want in zip(fg(xv), theta.function([x], [y, gx])(xv)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert [k.family for k in fg.kernels] == ["pool", "pool"]


def test_pool_integer_max_and_sum(run):
    x = np.arange(24, dtype="int32").reshape(2, 3, 4) * np.array([1, -1, 1, -1], dtype="int32")
    got = run(lambda v: [pool_2d(v, (2, 2), mode="max"), pool_2d(v, (2, 2), mode="sum", ignore_border=False)], x)
    assert got[0].dtype == "int32"
    np.testing.assert_array_equal(got[0], np_pool(x, (2, 2), None, (0, 0), True, "max"))
    np.testing.assert_array_equal(got[1], np_pool(x, (2, 2), None, (0, 0), False, "sum"))


# --------------------------------------------------------------------------------------------
# bad input


def test_pool_errors(float64):
    x = T.dtensor4("images", shape=(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"no 5x2 window fits in 'images' float64\[2, 3, 4, 4\]") as e:
        pool_2d(x, (5, 2))
    assert "test_pool.py" in str(e.value)          # the user's line
    assert isinstance(e.value, theta.errors.ShapeError)
    pool_2d(x, (5, 2), ignore_border=False)         # a partial window is fine without ignore_border
    pool_2d(x, (5, 2), pad=(1, 0))                  # and fits once padded
    with pytest.raises(theta.errors.ShapeError, match="smaller than the window"):
        pool_2d(x, (2, 2), pad=(2, 0))
    with pytest.raises(theta.errors.ShapeError, match="needs ignore_border=True"):
        pool_2d(x, (2, 2), pad=(1, 1), ignore_border=False)
    for ws, st in (((0, 2), None), ((2, -1), None), ((2, 2), (0, 1))):
        with pytest.raises(theta.errors.ShapeError, match="positive"):
            pool_2d(x, ws, stride=st)
    with pytest.raises(theta.errors.ShapeError, match="pair of integers"):
        pool_2d(x, (2, 2.5))
    with pytest.raises(ValueError, match="mode must be one of") as e:
        pool_2d(x, (2, 2), mode="average")
    assert isinstance(e.value, theta.errors.ThetaError) and "images" in str(e.value)
    with pytest.raises(theta.errors.ShapeError, match="rank >= 2"):
        pool_2d(T.dvector("v"), (2, 2))
    with pytest.raises(TypeError, match="float"):
        pool_2d(T.imatrix("i"), (2, 2), mode="average_exc_pad")


def test_pool_error_at_specialization(float64):
    """With unknown dims the window is checked once the shapes are known: a ShapeError naming
    the pooled variable and where the pooling was written."""
    x = T.dtensor4("images")
    f = theta.function([x], pool_2d(x, (3, 3)))
    with pytest.raises(ValueError, match=r"no 3x3 window fits in 'images'") as e:
        f(np.zeros((1, 1, 2, 8)))
    assert "test_pool.py" in str(e.value)


# --------------------------------------------------------------------------------------------
# nvcc


@pytest.mark.skipif(__import__("theta.runtime.nvcc", fromlist=["find_nvcc"]).find_nvcc() is None,
                    reason="nvcc not found on PATH: install the CUDA toolkit, or set THETA_NVCC / CUDA_HOME")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles(arch, float32):
    """Every pool kernel kind (each mode forward and backward, MaxPoolGradGrad, an epilogue,
    float32 / float64 / int32) compiles for the GPU within a block's resources (built without
    g++: the reference specialization's graph lowered by build_program)."""
    from theta.compiler.pipeline import build_program
    from theta.runtime.nvcc import launch_problems, resources
    x, d, i = T.tensor4("x"), T.dtensor3("d"), T.imatrix("i")
    outs = [T.nnet.relu(pool_2d(x, (2, 2)))] + all_cases(d) + [pool_2d(i, (2, 2), mode="sum")]
    outs.append(theta.grad(T.sum(sum(T.sum(o * o) for o in all_cases(d))), d))
    outs.append(theta.grad(T.sum(theta.grad(T.sum(T.sqr(pool_2d(d, (2, 2)))), d) ** 2), d))
    args = [np.zeros((2, 3, 8, 8), "float32"), np.zeros((3, 5, 7)), np.zeros((4, 6), "int32")]
    spec = theta.function([x, d, i], outs, backend="reference").specialization(*args)
    prog = build_program(spec.outputs, spec.concrete, [])
    kinds = {k.source.split("\n")[0].split(": ")[1].split(",")[0] for k in prog.kernels if k.family == "pool"}
    assert {"forward maxsel", "backward max", "backward average_exc_pad", "forward average_inc_pad"} <= kinds
    source = "\n".join(k.source for k in prog.kernels)
    info = resources(source, arch)
    for k in prog.kernels:
        assert not launch_problems(info[k.name], k.block[0] * k.block[1] * k.block[2]), (k.name, info[k.name])

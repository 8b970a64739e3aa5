"""Shape and indexing ops: reshape/flatten/dimshuffle/transpose, concatenate/stack,
alloc/zeros_like/ones_like/fill, arange, basic slicing, integer and advanced indexing, and
set_subtensor/inc_subtensor; forward against NumPy, gradients in float64."""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.gradient import verify_grad


def _x(rng, shape=(2, 3, 4)):
    return rng.standard_normal(shape)


# --------------------------------------------------------------------------------------------
# reshape / flatten

RESHAPES = [(6, 4), (-1,), (4, -1), (2, -1, 2), (24,), (1, 24), (2, 3, 4, 1), (-1, 1)]


@pytest.mark.parametrize("static", [False, True], ids=["unknown_dims", "static_dims"])
@pytest.mark.parametrize("shape", RESHAPES, ids=[str(s) for s in RESHAPES])
def test_reshape_forward(run, rng, shape, static):
    x = _x(rng)
    out = run(lambda v: T.reshape(v, shape), x, static=static)
    np.testing.assert_array_equal(out, x.reshape(shape))
    np.testing.assert_array_equal(run(lambda v: v.reshape(shape), x, static=static), x.reshape(shape))


@pytest.mark.parametrize("shape", [(6, 4), (-1,), (4, -1)], ids=["6_4", "-1", "4_-1"])
def test_reshape_grad(vgrad, rng, shape):
    vgrad(lambda v: T.reshape(v, shape) ** 2, _x(rng))


def test_reshape_with_symbolic_shape_dims(run, vgrad, rng):
    x = _x(rng)
    f = lambda v: v.reshape((v.shape[0], -1))  # noqa: E731
    np.testing.assert_array_equal(run(f, x), x.reshape(2, -1))
    np.testing.assert_array_equal(run(lambda v: v.reshape((v.shape[0] * v.shape[1], v.shape[2])), x), x.reshape(6, 4))
    np.testing.assert_array_equal(run(lambda v: T.reshape(v, (v.shape[2], v.shape[1], v.shape[0])), x),
                                  x.reshape(4, 3, 2))
    np.testing.assert_array_equal(run(lambda v: v.reshape(v.shape), x), x)
    np.testing.assert_array_equal(run(lambda v: v.reshape(v.shape[1], -1), x), x.reshape(3, -1))
    vgrad(lambda v: v.reshape((v.shape[0], -1)) ** 2, x)
    vgrad(lambda v: v.reshape((v.shape[0] * v.shape[1], v.shape[2])) ** 2, x)


def test_reshape_with_runtime_scalar_dim(float64, rng):
    x = T.dvector("x")
    n = T.lscalar("n")
    f = theta.function([x, n], x.reshape((n, -1)))
    xv = _x(rng, (12,))
    np.testing.assert_array_equal(f(xv, 3), xv.reshape(3, 4))
    np.testing.assert_array_equal(f(xv, 4), xv.reshape(4, 3))
    g = theta.function([x, n], theta.grad(T.sum(x.reshape((n, -1))[0] ** 2), x))(xv, 3)
    expected = np.zeros(12)
    expected[:4] = 2 * xv[:4]
    np.testing.assert_allclose(g, expected)


def test_reshape_ndim_and_errors(float64):
    x = T.dmatrix("x")
    assert T.reshape(x, (-1,), ndim=1).ndim == 1
    with pytest.raises(ValueError):
        T.reshape(x, (-1,), ndim=2)
    with pytest.raises(ValueError):
        T.reshape(x, (-1, -1))
    xs = T.dmatrix("x", shape=(2, 3))
    with pytest.raises(ValueError):
        xs.reshape((4, 2))
    f = theta.function([x], x.reshape((4, -1)))
    with pytest.raises(ValueError):
        f(np.zeros((2, 3)))


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_flatten(run, vgrad, rng, ndim):
    x = _x(rng)
    expected = x.reshape(x.shape[:ndim - 1] + (-1,))
    for static in (False, True):
        out = run(lambda v: T.flatten(v, ndim), x, static=static)
        assert out.shape == expected.shape
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(run(lambda v: v.flatten(ndim), x), expected)
    vgrad(lambda v: T.flatten(v, ndim) ** 2, x)


def test_flatten_default_and_outdim(run, rng):
    x = _x(rng)
    np.testing.assert_array_equal(run(lambda v: v.flatten(), x), x.ravel())
    np.testing.assert_array_equal(run(lambda v: T.flatten(v, outdim=2), x), x.reshape(2, 12))
    with pytest.raises(ValueError):
        T.flatten(T.dmatrix(), 3)


# --------------------------------------------------------------------------------------------
# dimshuffle / transpose

DIMSHUFFLES = [(1, 0, 2), (2, 1, 0), ("x", 0, 1, 2), (0, "x", 1, 2), (2, "x", 0, "x", 1)]


@pytest.mark.parametrize("order", DIMSHUFFLES, ids=["_".join(map(str, o)) for o in DIMSHUFFLES])
def test_dimshuffle(run, vgrad, rng, order):
    x = _x(rng)
    axes = [a for a in order if a != "x"]
    expected = np.transpose(x, axes).reshape([1 if a == "x" else x.shape[a] for a in order])
    out = run(lambda v: v.dimshuffle(*order), x)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(run(lambda v: T.dimshuffle(v, order), x), expected)
    vgrad(lambda v: v.dimshuffle(*order) * T.as_tensor_variable(np.arange(expected.size, dtype="float64")
                                                                  .reshape(expected.shape)), x)


def test_dimshuffle_drops_broadcastable_dims(float64, rng):
    r = T.drow("r")  # (1, n)
    f = theta.function([r], r.dimshuffle(1))
    rv = _x(rng, (1, 5))
    out = f(rv)
    assert out.shape == (5,)
    np.testing.assert_array_equal(out, rv[0])
    t = T.tensor("float64", shape=(None, 1, None), name="t")
    tv = _x(rng, (2, 1, 3))
    out = theta.function([t], t.dimshuffle(2, 0))(tv)
    np.testing.assert_array_equal(out, tv[:, 0, :].T)
    # the gradient comes back with the dropped axis restored
    g = theta.function([t], theta.grad(T.sum(t.dimshuffle(2, 0) * np.arange(6.0).reshape(3, 2)), t))(tv)
    assert g.shape == (2, 1, 3)
    np.testing.assert_array_equal(g[:, 0, :], np.arange(6.0).reshape(3, 2).T)
    c = T.dcol("c")
    gc = theta.function([c], theta.grad(T.sum(c.dimshuffle(0) ** 2), c))(np.array([[1.0], [2.0]]))
    np.testing.assert_array_equal(gc, [[2.0], [4.0]])


def test_dimshuffle_errors():
    x = T.dmatrix("x")
    with pytest.raises(ValueError, match="length 1"):
        x.dimshuffle(1)  # axis 0 is not known to be broadcastable
    with pytest.raises(ValueError):
        x.dimshuffle(0, 0)
    with pytest.raises(ValueError):
        x.dimshuffle(0, 2)


def test_transpose(run, vgrad, rng):
    m = _x(rng, (3, 4))
    np.testing.assert_array_equal(run(lambda v: v.T, m), m.T)
    x = _x(rng)
    np.testing.assert_array_equal(run(lambda v: v.T, x), x.T)
    np.testing.assert_array_equal(run(lambda v: v.transpose(2, 0, 1), x), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(run(lambda v: T.transpose(v, (1, 0, 2)), x), x.transpose(1, 0, 2))
    np.testing.assert_array_equal(run(lambda v: v.T, np.arange(3.0)), np.arange(3.0))
    vgrad(lambda v: v.T * T.as_tensor_variable(np.arange(12.0).reshape(4, 3)), m)
    vgrad(lambda v: v.transpose(2, 0, 1) ** 2, x)


# --------------------------------------------------------------------------------------------
# concatenate / stack


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(run, vgrad, static_grad, rng, axis):
    shapes = {0: [(2, 3), (1, 3), (4, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 1), (2, 3), (2, 2)]}[axis]
    arrays = [_x(rng, s) for s in shapes]
    f = lambda *vs: T.concatenate(vs, axis=axis)  # noqa: E731
    np.testing.assert_array_equal(run(f, *arrays), np.concatenate(arrays, axis=axis))
    np.testing.assert_array_equal(run(f, *arrays, static=True), np.concatenate(arrays, axis=axis))
    vgrad(lambda *vs: f(*vs) ** 2, *arrays)
    static_grad(lambda *vs: f(*vs) ** 2, *arrays)


def test_concatenate_with_length_one_pieces_grad(vgrad, rng):
    """A row appended with dimshuffle('x', 0) after a block of unknown length: its gradient
    slice must still be known to have length 1 so the dimshuffle gradient can drop the axis."""
    m, v = _x(rng, (2, 3)), _x(rng, (3,))
    vgrad(lambda a, b: T.concatenate([a, b.dimshuffle("x", 0)]) ** 2, m, v)
    vgrad(lambda a, b: T.concatenate([b.dimshuffle(0, "x"), a.T, b.dimshuffle(0, "x")], axis=1) ** 2, m, v)


def test_concatenate_mixed_dtypes_and_shape_errors(run):
    a = np.array([1, 2], dtype="int32")
    b = np.array([0.5], dtype="float32")
    out = run(lambda x, y: T.concatenate([x, y]), a, b)
    assert out.dtype == "float32"
    np.testing.assert_array_equal(out, [1.0, 2.0, 0.5])
    with pytest.raises(ValueError):
        T.concatenate([T.dmatrix(shape=(2, 3)), T.dmatrix(shape=(2, 4))], axis=0)
    with pytest.raises(ValueError):
        T.concatenate([T.dmatrix(), T.dvector()])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(run, vgrad, rng, axis):
    arrays = [_x(rng, (2, 3)) for _ in range(3)]
    f = lambda *vs: T.stack(vs, axis=axis)  # noqa: E731
    out = run(f, *arrays)
    np.testing.assert_array_equal(out, np.stack(arrays, axis=axis))
    vgrad(lambda *vs: f(*vs) ** 2, *arrays)


def test_stack_scalars(float64):
    a, b = T.dscalar("a"), T.dscalar("b")
    f = theta.function([a, b], T.stack([a, b, a * b]))
    np.testing.assert_array_equal(f(2.0, 3.0), [2.0, 3.0, 6.0])
    g = theta.function([a, b], theta.grad(T.sum(T.stack([a, b, a * b]) ** 2), [a, b]))(2.0, 3.0)
    np.testing.assert_allclose(g, [2 * 2.0 + 2 * 6.0 * 3.0, 2 * 3.0 + 2 * 6.0 * 2.0])


# --------------------------------------------------------------------------------------------
# alloc / zeros_like / ones_like / fill / zeros / ones


def test_alloc_forward(float64, rng):
    s, v = T.dscalar("s"), T.dvector("v")
    f = theta.function([s, v], [T.alloc(s, 2, 3), T.alloc(v, 2, 4), T.alloc(v, 3, 1, 4), T.alloc(1.5, 2)])
    a, b, c, d = f(2.0, np.arange(4.0))
    np.testing.assert_array_equal(a, np.full((2, 3), 2.0))
    np.testing.assert_array_equal(b, np.tile(np.arange(4.0), (2, 1)))
    np.testing.assert_array_equal(c, np.broadcast_to(np.arange(4.0), (3, 1, 4)))
    np.testing.assert_array_equal(d, [1.5, 1.5])


def test_alloc_with_symbolic_dims(float64, rng):
    x, v = T.dmatrix("x"), T.dvector("v")
    n = T.lscalar("n")
    f = theta.function([x, v, n], [T.alloc(v, x.shape[0], v.shape[0]), T.alloc(0.0, n, x.shape[1])])
    xv = _x(rng, (3, 2))
    a, b = f(xv, np.arange(5.0), 4)
    np.testing.assert_array_equal(a, np.tile(np.arange(5.0), (3, 1)))
    np.testing.assert_array_equal(b, np.zeros((4, 2)))


def test_alloc_grad(vgrad, rng):
    vgrad(lambda s: T.alloc(s, 3, 4) * T.as_tensor_variable(np.arange(12.0).reshape(3, 4)), np.array(1.5))
    vgrad(lambda v: T.alloc(v, 3, 4) ** 2, _x(rng, (4,)))
    vgrad(lambda v: T.alloc(v, 2, 3, 4) ** 2, _x(rng, (3, 1)))
    x = T.dvector("x")
    g = theta.function([x], theta.grad(T.sum(T.alloc(x, 3, 2)), x))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [3.0, 3.0])


def test_zeros_ones_like_and_fill(run, rng):
    x = _x(rng, (2, 3)).astype("float32")
    z, o = run(lambda v: [T.zeros_like(v), T.ones_like(v)], x)
    assert z.dtype == o.dtype == "float32"
    np.testing.assert_array_equal(z, np.zeros((2, 3)))
    np.testing.assert_array_equal(o, np.ones((2, 3)))
    zi = run(lambda v: T.zeros_like(v, dtype="int32"), x)
    assert zi.dtype == "int32" and zi.shape == (2, 3)
    np.testing.assert_array_equal(run(lambda v: v.ones_like(), x), np.ones((2, 3)))
    filled = run(lambda v: T.fill(v, 7.0), x)
    assert filled.dtype == "float32"
    np.testing.assert_array_equal(filled, np.full((2, 3), 7.0))
    np.testing.assert_array_equal(run(lambda v, w: T.fill(v, w), x, np.float32(2.5)), np.full((2, 3), 2.5))


def test_zeros_like_ones_like_grads(vgrad, rng, float64):
    x = _x(rng, (2, 3))
    vgrad(lambda v: T.ones_like(v) * v ** 2 + T.zeros_like(v), x)
    xv = T.dmatrix("x")
    # fill's value gets the gradient summed over the model's shape; the model gets none
    s = T.dscalar("s")
    gs = theta.function([xv, s], theta.grad(T.sum(T.fill(xv, s)), s))(x, 2.0)
    assert float(gs) == 6.0


def test_zeros_ones(float64):
    n = T.lscalar("n")
    f = theta.function([n], [T.zeros((n, 2)), T.ones((3,), dtype="int8"), T.zeros(2)])
    z, o, z2 = f(3)
    assert z.dtype == "float64" and z.shape == (3, 2) and not z.any()
    assert o.dtype == "int8"
    np.testing.assert_array_equal(o, [1, 1, 1])
    np.testing.assert_array_equal(z2, [0.0, 0.0])


# --------------------------------------------------------------------------------------------
# arange

ARANGES = [(5,), (2, 10), (2, 10, 3), (10, 0, -2), (-3, 3), (5, 5), (0, -5, -1)]


@pytest.mark.parametrize("args", ARANGES, ids=["_".join(map(str, a)) for a in ARANGES])
def test_arange_constant(args):
    f = theta.function([], T.arange(*args))
    out = f()
    assert out.dtype == "int64"
    np.testing.assert_array_equal(out, np.arange(*args))


def test_arange_symbolic_and_dtype(float64):
    n, m = T.lscalar("n"), T.lscalar("m")
    f = theta.function([n, m], [T.arange(n), T.arange(m, n, 2), T.arange(n, dtype="float64"), T.arange(n, m, -1)])
    a, b, c, d = f(6, 1)
    np.testing.assert_array_equal(a, np.arange(6))
    np.testing.assert_array_equal(b, np.arange(1, 6, 2))
    assert c.dtype == "float64"
    np.testing.assert_array_equal(c, np.arange(6.0))
    np.testing.assert_array_equal(d, np.arange(6, 1, -1))
    np.testing.assert_array_equal(f(3, 0)[0], np.arange(3))  # another size, another specialization
    x = T.dmatrix("x")
    out = theta.function([x], T.arange(x.shape[0]) * 2)(np.zeros((4, 2)))
    np.testing.assert_array_equal(out, [0, 2, 4, 6])
    with pytest.raises(ValueError):
        T.arange(0, 5, 0)


# --------------------------------------------------------------------------------------------
# basic slicing

SLICES = {
    "1:3": lambda v: v[1:3],
    "::-1": lambda v: v[::-1],
    "-3:-1": lambda v: v[-3:-1],
    "::2,1:": lambda v: v[::2, 1:],
    "-1": lambda v: v[-1],
    "-2,::-1": lambda v: v[-2, ::-1],
    "...,0": lambda v: v[..., 0],
    ":,::-2": lambda v: v[:, ::-2],
    "3:0:-1": lambda v: v[3:0:-1],
    "-1:-4:-2": lambda v: v[-1:-4:-2],
    "1,2,-1": lambda v: v[1, 2, -1],
    ":,-1,1:3": lambda v: v[:, -1, 1:3],
    "5:": lambda v: v[5:],
    ":100": lambda v: v[:100],
    "empty": lambda v: v[2:1],
}


@pytest.mark.parametrize("static", [False, True], ids=["unknown_dims", "static_dims"])
@pytest.mark.parametrize("name", list(SLICES))
def test_slicing_forward(run, rng, name, static):
    x = _x(rng, (4, 3, 5))
    fn = SLICES[name]
    out = run(fn, x, static=static)
    expected = fn(x)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("name", [n for n in SLICES if n != "empty"])
def test_slicing_grad(vgrad, rng, name):
    x = _x(rng, (4, 3, 5))
    fn = SLICES[name]
    vgrad(lambda v: fn(v) ** 2, x)


def test_slicing_grad_exact(float64, rng):
    x = T.dmatrix("x")
    xv = _x(rng, (4, 3))
    g = theta.function([x], theta.grad(T.sum(x[::-2, 1:] * 3.0), x))(xv)
    expected = np.zeros_like(xv)
    expected[::-2, 1:] = 3.0
    np.testing.assert_array_equal(g, expected)


def test_slice_with_symbolic_bounds(float64, rng):
    x = T.dmatrix("x")
    i, j = T.lscalar("i"), T.lscalar("j")
    f = theta.function([x, i, j], [x[i:j], x[i:], x[:, -j:], x[i * 2:(i + 1) * 2]])
    xv = _x(rng, (6, 4))
    for iv, jv in ((1, 3), (0, 2), (-3, -1), (2, 6)):
        outs = f(xv, iv, jv)
        for out, expected in zip(outs, [xv[iv:jv], xv[iv:], xv[:, -jv:], xv[iv * 2:(iv + 1) * 2]]):
            np.testing.assert_array_equal(out, expected)
    g = theta.function([x, i, j], theta.grad(T.sum(x[i:j] ** 2), x))(xv, 1, 3)
    expected = np.zeros_like(xv)
    expected[1:3] = 2 * xv[1:3]
    np.testing.assert_allclose(g, expected)


def test_slice_with_symbolic_bounds_and_negative_step(float64, rng):
    x = T.dvector("x")
    i, j = T.lscalar("i"), T.lscalar("j")
    f = theta.function([x, i, j], [x[j:i:-1], x[j::-1], x[i::-2]])
    xv = _x(rng, (6,))
    for iv, jv in ((0, 4), (1, 5), (-6, -1), (2, 2)):
        for out, expected in zip(f(xv, iv, jv), [xv[jv:iv:-1], xv[jv::-1], xv[iv::-2]]):
            np.testing.assert_array_equal(out, expected)
    w = np.arange(1.0, 7.0)
    for iv, jv in ((0, 4), (-6, -1)):
        cost = T.sum(x[j:i:-1] * w[:len(xv[jv:iv:-1])]) + T.sum(T.inc_subtensor(x[j::-1], 1.0) ** 2)
        g = theta.function([x, i, j], theta.grad(cost, x))(xv, iv, jv)
        expected = np.zeros(6)
        expected[jv:iv:-1] += w[:len(xv[jv:iv:-1])]
        bumped = xv.copy()
        bumped[jv::-1] += 1.0
        expected += 2 * bumped
        np.testing.assert_allclose(g, expected)


# --------------------------------------------------------------------------------------------
# integer indexing with a symbolic scalar


def test_index_with_symbolic_scalar(float64, rng):
    x = T.dmatrix("x")
    i = T.lscalar("i")
    f = theta.function([x, i], [x[i], x[:, i], x[i, i + 1]])
    xv = _x(rng, (4, 5))
    for iv in (0, 2, -1, -4, 3):
        a, b, c = f(xv, iv)
        np.testing.assert_array_equal(a, xv[iv])
        np.testing.assert_array_equal(b, xv[:, iv])
        assert float(c) == xv[iv, iv + 1]
    with pytest.raises(IndexError):
        f(xv, 4)
    with pytest.raises(IndexError):
        f(xv, -5)
    for iv in (1, -1):
        g = theta.function([x, i], theta.grad(T.sum(x[i] ** 2) + x[i, 0], x))(xv, iv)
        expected = np.zeros_like(xv)
        expected[iv] = 2 * xv[iv]
        expected[iv, 0] += 1
        np.testing.assert_allclose(g, expected)


def test_index_with_int32_scalar_and_constant_index(run, rng):
    xv = _x(rng, (4, 5))
    x, i = T.dmatrix("x"), T.iscalar("i")
    np.testing.assert_array_equal(theta.function([x, i], x[i])(xv, 2), xv[2])
    np.testing.assert_array_equal(run(lambda v: v[np.int64(1)], xv), xv[1])
    np.testing.assert_array_equal(run(lambda v: v[[0, 3, 0]], xv), xv[[0, 3, 0]])  # a Python list
    np.testing.assert_array_equal(run(lambda v: v.shape, xv), [4, 5])
    with pytest.raises(IndexError):
        T.dmatrix(shape=(4, 5))[4]
    with pytest.raises(IndexError):
        x[T.dscalar()]  # a float index


# --------------------------------------------------------------------------------------------
# advanced indexing


def test_embedding_lookup_with_repeated_indices(float64, rng):
    emb = T.dmatrix("emb")
    idx = T.lvector("idx")
    ev = _x(rng, (5, 3))
    iv = np.array([1, 3, 1, 1, 0, 3])
    out = theta.function([emb, idx], emb[idx])(ev, iv)
    np.testing.assert_array_equal(out, ev[iv])
    w = _x(rng, (6, 3))
    g = theta.function([emb, idx], theta.grad(T.sum(emb[idx] * w), emb))(ev, iv)
    expected = np.zeros_like(ev)
    np.add.at(expected, iv, w)  # duplicates accumulate
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    assert not np.allclose(g, 0)


def test_advanced_index_grad_verify(vgrad, rng):
    iv = np.array([2, 0, 2, 2])
    vgrad(lambda e: e[iv] ** 2, _x(rng, (3, 4)))
    vgrad(lambda e: e[np.array([[0, 1], [1, 1]])] ** 2, _x(rng, (3, 4)))
    vgrad(lambda e: e[:, iv] ** 2, _x(rng, (2, 3)))
    vgrad(lambda e: e[iv, np.array([0, 1, 1, 0])] ** 2, _x(rng, (3, 2)))


ADVANCED = {
    "rows": lambda v, i: v[i],
    "cols": lambda v, i: v[:, i],
    "rows_then_slice": lambda v, i: v[i, 1:],
    "slice_then_index": lambda v, i: v[1:, i % 2],
    "pairs": lambda v, i: v[i, i % 2],
    "matrix_index": lambda v, i: v[i.reshape((2, 3))],
    "negative": lambda v, i: v[-1 - i],
    "3d_middle": lambda v, i: v.reshape((3, 2, 2))[:, i % 2, :],
    "3d_nonadjacent": lambda v, i: v.reshape((3, 2, 2))[i, :, i % 2],
}


@pytest.mark.parametrize("name", list(ADVANCED))
def test_advanced_indexing_forward(float64, rng, name):
    fn = ADVANCED[name]
    xv = _x(rng, (3, 4))
    iv = np.array([2, 0, 2, 1, 0, 2])
    x, i = T.dmatrix("x"), T.lvector("i")
    out = theta.function([x, i], fn(x, i))(xv, iv)
    expected = fn(xv, iv)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    # gradient: scatter-add of the output gradient, checked against np.add.at through a probe
    w = _x(rng, expected.shape)
    g = theta.function([x, i], theta.grad(T.sum(fn(x, i) * w), x))(xv, iv)
    expected_g = np.zeros_like(xv)
    flat_index = fn(np.arange(xv.size).reshape(xv.shape), iv)
    np.add.at(expected_g.reshape(-1), flat_index.reshape(-1), w.reshape(-1))
    np.testing.assert_allclose(g, expected_g, rtol=1e-12)


def test_advanced_index_errors(float64):
    x = T.dmatrix("x")
    with pytest.raises(IndexError):
        x[T.dvector()]
    with pytest.raises(IndexError):
        x[T.dvector() > 0]
    f = theta.function([x, (i := T.lvector("i"))], x[i])
    with pytest.raises(IndexError):
        f(np.zeros((3, 2)), np.array([0, 3]))


def test_log_prob_of_labels(float64, rng):
    """log(p)[T.arange(y.shape[0]), y]: the negative log-likelihood idiom."""
    p, y = T.dmatrix("p"), T.lvector("y")
    pv = rng.uniform(0.1, 1.0, (5, 4))
    pv /= pv.sum(axis=1, keepdims=True)
    yv = np.array([3, 0, 0, 2, 3])
    nll = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    f = theta.function([p, y], [T.log(p)[T.arange(y.shape[0]), y], nll, theta.grad(nll, p)])
    picked, loss, g = f(pv, yv)
    np.testing.assert_allclose(picked, np.log(pv[np.arange(5), yv]), rtol=1e-12)
    np.testing.assert_allclose(loss, -np.mean(np.log(pv[np.arange(5), yv])), rtol=1e-12)
    expected = np.zeros_like(pv)
    expected[np.arange(5), yv] = -1.0 / (5 * pv[np.arange(5), yv])
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    verify_grad(lambda q: T.log(q)[T.arange(q.shape[0]), yv], [pv], rng=rng)


# --------------------------------------------------------------------------------------------
# set_subtensor / inc_subtensor

UPDATES = {
    "slice": (lambda v: v[1:3], (2, 4)),
    "neg_step": (lambda v: v[::-2], (2, 4)),
    "column": (lambda v: v[:, -1], (3,)),
    "point": (lambda v: v[2, 1], ()),
    "broadcast_row": (lambda v: v[1:], (1, 4)),
    "broadcast_lower_rank": (lambda v: v[:2, 1:3], (2,)),
    "adv_rows": (lambda v: v[np.array([0, 2])], (2, 4)),
    "adv_pairs": (lambda v: v[np.array([0, 2, 1]), np.array([3, 0, 0])], (3,)),
}


@pytest.mark.parametrize("kind", ["set", "inc"])
@pytest.mark.parametrize("name", list(UPDATES))
def test_set_inc_subtensor_forward(run, rng, name, kind):
    region, yshape = UPDATES[name]
    xv, yv = _x(rng, (3, 4)), _x(rng, yshape)
    tfn = T.set_subtensor if kind == "set" else T.inc_subtensor
    out = run(lambda x, y: tfn(region(x), y), xv, yv)
    np.testing.assert_allclose(out, _numpy_update(xv, name, yv, add=kind == "inc"), rtol=1e-12)


def _numpy_update(xv, name, yv, add):
    out = xv.copy()
    idx = {
        "slice": np.s_[1:3], "neg_step": np.s_[::-2], "column": np.s_[:, -1], "point": np.s_[2, 1],
        "broadcast_row": np.s_[1:], "broadcast_lower_rank": np.s_[:2, 1:3],
        "adv_rows": (np.array([0, 2]),), "adv_pairs": (np.array([0, 2, 1]), np.array([3, 0, 0])),
    }[name]
    if add:
        np.add.at(out, idx, np.broadcast_to(yv, out[idx].shape))
    else:
        out[idx] = yv
    return out


@pytest.mark.parametrize("kind", ["set", "inc"])
@pytest.mark.parametrize("name", list(UPDATES))
def test_set_inc_subtensor_grad(vgrad, rng, name, kind):
    region, yshape = UPDATES[name]
    tfn = T.set_subtensor if kind == "set" else T.inc_subtensor
    vgrad(lambda x, y: tfn(region(x), y) ** 2, _x(rng, (3, 4)), _x(rng, yshape))


def test_inc_subtensor_repeated_indices_accumulate(float64, rng):
    x, y, i = T.dvector("x"), T.dvector("y"), T.lvector("i")
    iv = np.array([1, 1, 3, 1])
    xv, yv = np.zeros(5), np.array([1.0, 2.0, 4.0, 8.0])
    out = theta.function([x, y, i], T.inc_subtensor(x[i], y))(xv, yv, iv)
    np.testing.assert_array_equal(out, [0.0, 11.0, 0.0, 4.0, 0.0])
    # gradient w.r.t. y gathers (every duplicate sees the same upstream value)
    w = np.arange(5.0)
    gx, gy = theta.function([x, y, i], theta.grad(T.sum(T.inc_subtensor(x[i], y) * w), [x, y]))(xv, yv, iv)
    np.testing.assert_array_equal(gx, w)
    np.testing.assert_array_equal(gy, w[iv])


@pytest.mark.parametrize("kind", ["set", "inc"])
def test_set_inc_subtensor_symbolic_advanced_index_broadcast_value(float64, kind):
    x, y, i = T.dmatrix("x"), T.drow("y"), T.lvector("i")
    tfn = T.set_subtensor if kind == "set" else T.inc_subtensor
    out = tfn(x[i], y)
    w = np.arange(12.0).reshape(4, 3)
    gx, gy = theta.grad(T.sum(out * w), [x, y])
    xv, yv, iv = np.ones((4, 3)), np.array([[1.0, 2.0, 3.0]]), np.array([2, 0])
    o, gxv, gyv = theta.function([x, y, i], [out, gx, gy])(xv, yv, iv)
    expected = xv.copy()
    expected[iv] = yv if kind == "set" else expected[iv] + yv
    np.testing.assert_array_equal(o, expected)
    expected_gx = w.copy()
    if kind == "set":
        expected_gx[iv] = 0.0
    np.testing.assert_array_equal(gxv, expected_gx)
    np.testing.assert_array_equal(gyv, w[iv].sum(axis=0, keepdims=True))


def test_set_subtensor_grad_exact(float64, rng):
    x, y = T.dmatrix("x"), T.dvector("y")
    xv, yv = _x(rng, (3, 4)), _x(rng, (4,))
    w = _x(rng, (3, 4))
    gx, gy = theta.function([x, y], theta.grad(T.sum(T.set_subtensor(x[1], y) * w), [x, y]))(xv, yv)
    expected_gx = w.copy()
    expected_gx[1] = 0.0  # the overwritten row does not reach the output
    np.testing.assert_array_equal(gx, expected_gx)
    np.testing.assert_array_equal(gy, w[1])


def test_set_inc_subtensor_with_symbolic_index(float64, rng):
    x, i = T.dmatrix("x"), T.lscalar("i")
    f = theta.function([x, i], [T.set_subtensor(x[i], 0.0), T.inc_subtensor(x[i:, 0], 1.0)])
    xv = _x(rng, (3, 2))
    a, b = f(xv, 1)
    ea, eb = xv.copy(), xv.copy()
    ea[1] = 0.0
    eb[1:, 0] += 1.0
    np.testing.assert_array_equal(a, ea)
    np.testing.assert_array_equal(b, eb)


def test_set_inc_subtensor_errors_and_dtype(run):
    x = T.dmatrix("x", shape=(3, 4))
    with pytest.raises(IndexError):
        T.set_subtensor(x, 0.0)  # not an indexed tensor
    with pytest.raises(ValueError):
        T.set_subtensor(x[1:3], T.dmatrix(shape=(3, 4)))
    out = run(lambda v, y: T.inc_subtensor(v[0], y), np.zeros((2, 2), "float32"), np.array([1, 2], "int32"))
    assert out.dtype == "float32"
    np.testing.assert_array_equal(out, [[1, 2], [0, 0]])


def test_indexing_float32_keeps_dtype(run, rng):
    xv = _x(rng, (3, 4)).astype("float32")
    for fn in (lambda v: v[1:], lambda v: v[np.array([0, 0])], lambda v: T.set_subtensor(v[0], 1.0)):
        assert run(fn, xv).dtype == "float32"

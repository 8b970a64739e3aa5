"""Matrix products (dot for every vector/matrix combination, @, outer, batched_dot) and the
neural-network ops (softmax, log_softmax, the crossentropies); forward against NumPy,
gradients in float64, dtypes, and numerical stability at extreme logits."""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler.ops.nnet import CrossentropySoftmaxIntGrad, SoftmaxGrad

# --------------------------------------------------------------------------------------------
# dot

DOT_SHAPES = {"vv": ((4,), (4,)), "vm": ((4,), (4, 3)), "mv": ((2, 4), (4,)), "mm": ((2, 4), (4, 3)),
              "mm_inner1": ((3, 1), (1, 2)), "mm_col_row": ((5, 1), (1, 5))}


@pytest.mark.parametrize("static", [False, True], ids=["unknown_dims", "static_dims"])
@pytest.mark.parametrize("combo", list(DOT_SHAPES))
def test_dot_forward(run, rng, combo, static):
    a, b = (rng.standard_normal(s) for s in DOT_SHAPES[combo])
    out = run(T.dot, a, b, static=static)
    expected = np.dot(a, b)
    assert out.shape == expected.shape
    assert out.dtype == "float64"
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(run(lambda x, y: x @ y, a, b, static=static), expected, rtol=1e-12)
    np.testing.assert_allclose(run(lambda x, y: x.dot(y), a, b, static=static), expected, rtol=1e-12)


@pytest.mark.parametrize("combo", list(DOT_SHAPES))
def test_dot_grad(vgrad, static_grad, rng, combo):
    a, b = (rng.standard_normal(s) for s in DOT_SHAPES[combo])
    vgrad(T.dot, a, b)
    static_grad(T.dot, a, b)


def test_dot_grad_same_input_twice(vgrad, rng):
    m = rng.standard_normal((3, 3))
    vgrad(lambda x: T.dot(x, x), m)
    vgrad(lambda x: T.dot(x.T, x), m)
    v = rng.standard_normal(4)
    vgrad(lambda x: T.dot(x, x), v)


def test_dot_dtypes(run):
    f32 = np.ones((2, 3), "float32")
    assert run(T.dot, f32, np.ones((3, 2), "float32")).dtype == "float32"
    assert run(T.dot, f32, np.ones(3, "float64")).dtype == "float64"
    out = run(T.dot, np.array([[1, 2], [3, 4]], "int32"), np.array([5, 6], "int32"))
    assert out.dtype == "int32"
    np.testing.assert_array_equal(out, [17, 39])
    # an integer operand with a float32 one stays float32
    out = run(T.dot, np.array([[1, 2]], "int64"), np.array([[0.5], [0.25]], "float32"))
    assert out.dtype == "float32"
    np.testing.assert_allclose(out, [[1.0]])


def test_dot_int_and_float_grad(float64, rng):
    x, i = T.dmatrix("x"), T.lmatrix("i")
    iv = np.array([[1, 2], [3, 4]])
    g = theta.function([x, i], theta.grad(T.sum(T.dot(i, x)), x))(rng.standard_normal((2, 3)), iv)
    np.testing.assert_allclose(g, np.dot(iv.T, np.ones((2, 3))))


def test_dot_shape_errors(float64):
    with pytest.raises(ValueError, match="inner"):
        T.dot(T.dmatrix(shape=(2, 3)), T.dmatrix(shape=(4, 2)))
    with pytest.raises(ValueError):
        T.dot(T.dtensor3(), T.dmatrix())
    x, y = T.dmatrix("x"), T.dmatrix("y")
    f = theta.function([x, y], T.dot(x, y))
    with pytest.raises(ValueError):
        f(np.zeros((2, 3)), np.zeros((4, 2)))


def test_outer(run, vgrad, static_grad, rng):
    a, b = rng.standard_normal(3), rng.standard_normal(4)
    np.testing.assert_allclose(run(T.outer, a, b), np.outer(a, b), rtol=1e-12)
    vgrad(T.outer, a, b)
    static_grad(T.outer, a, b)
    with pytest.raises(ValueError):
        T.outer(T.dmatrix(), T.dvector())


@pytest.mark.parametrize("shapes", [((3, 2, 4), (3, 4, 5)), ((1, 1, 3), (1, 3, 1)), ((2, 3, 1), (2, 1, 2))],
                         ids=["general", "single", "inner1"])
def test_batched_dot(run, vgrad, static_grad, rng, shapes):
    a, b = (rng.standard_normal(s) for s in shapes)
    out = run(T.batched_dot, a, b)
    assert out.shape == np.matmul(a, b).shape
    np.testing.assert_allclose(out, np.einsum("bij,bjk->bik", a, b), rtol=1e-12)
    vgrad(T.batched_dot, a, b)
    static_grad(T.batched_dot, a, b)


def test_batched_dot_dtype_and_errors(run):
    out = run(T.batched_dot, np.ones((2, 2, 3), "float32"), np.ones((2, 3, 1), "float32"))
    assert out.dtype == "float32"
    np.testing.assert_array_equal(out, np.full((2, 2, 1), 3.0))
    with pytest.raises(ValueError):
        T.batched_dot(T.dmatrix(), T.dtensor3())
    with pytest.raises(ValueError):
        T.batched_dot(T.dtensor3(shape=(2, 3, 4)), T.dtensor3(shape=(3, 4, 5)))


# --------------------------------------------------------------------------------------------
# softmax / log_softmax


def _np_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _np_log_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,tfn,npfn", [("softmax", T.nnet.softmax, _np_softmax),
                                           ("log_softmax", T.nnet.log_softmax, _np_log_softmax)],
                         ids=["softmax", "log_softmax"])
def test_softmax_forward(run, rng, name, tfn, npfn, dtype):
    x = (rng.standard_normal((4, 5)) * 3).astype(dtype)
    out = run(tfn, x)
    assert out.dtype == dtype
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(out, npfn(x.astype("float64")), rtol=tol, atol=tol)
    v = x[0]
    out = run(tfn, v)  # a vector is one row
    assert out.shape == (5,)
    np.testing.assert_allclose(out, npfn(v.astype("float64")), rtol=tol, atol=tol)


def test_softmax_extreme_logits_are_stable(float64):
    x = T.dmatrix("x")
    xv = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4], [0.0, 0.0, 710.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        sm, lsm = theta.function([x], [T.nnet.softmax(x), T.nnet.log_softmax(x)])(xv)
    np.testing.assert_allclose(sm, _np_softmax(xv), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(lsm, _np_log_softmax(xv), rtol=1e-12)
    np.testing.assert_allclose(sm.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("name,tfn", [("softmax", T.nnet.softmax), ("log_softmax", T.nnet.log_softmax)],
                         ids=["softmax", "log_softmax"])
def test_softmax_grad(vgrad, static_grad, rng, name, tfn):
    x = rng.standard_normal((3, 4))
    vgrad(tfn, x)
    vgrad(tfn, x[0])
    vgrad(lambda v: tfn(v * 20.0), x)  # peaked rows
    static_grad(tfn, x)
    # softmax of a broadcast sum: the bias gradient sums over rows
    vgrad(lambda v, b: tfn(v + b), x, rng.standard_normal((1, 4)))


def test_softmax_second_order(vgrad, rng):
    """SoftmaxGrad is itself differentiable (Hessian-vector products, double backprop)."""
    vgrad(lambda gz, sm: SoftmaxGrad()(gz, sm), rng.standard_normal((3, 4)), _np_softmax(rng.standard_normal((3, 4))))
    w = rng.standard_normal((3, 4))
    vgrad(lambda v: theta.grad(T.sum(T.nnet.softmax(v) * w), v), rng.standard_normal((3, 4)))
    vgrad(lambda v: theta.grad(T.sum(T.nnet.log_softmax(v) * w), v), rng.standard_normal((3, 4)))


def test_softmax_rejects_bad_inputs():
    with pytest.raises(ValueError):
        T.nnet.softmax(T.dtensor3())
    with pytest.raises(ValueError):
        T.nnet.softmax(T.imatrix())


# --------------------------------------------------------------------------------------------
# crossentropies


def _probs(rng, n, k):
    p = rng.uniform(0.1, 1.0, (n, k))
    return p / p.sum(axis=1, keepdims=True)


def test_categorical_crossentropy_int_labels(vgrad, rng, float64):
    p, yv = _probs(rng, 5, 4), np.array([0, 3, 3, 1, 2])
    p_, y_ = T.dmatrix("p"), T.lvector("y")
    out = theta.function([p_, y_], T.nnet.categorical_crossentropy(p_, y_))(p, yv)
    np.testing.assert_allclose(out, -np.log(p[np.arange(5), yv]), rtol=1e-12)
    vgrad(lambda q: T.nnet.categorical_crossentropy(q, yv), p)
    g = theta.function([p_, y_], theta.grad(T.sum(T.nnet.categorical_crossentropy(p_, y_)), p_))(p, yv)
    expected = np.zeros_like(p)
    expected[np.arange(5), yv] = -1.0 / p[np.arange(5), yv]
    np.testing.assert_allclose(g, expected, rtol=1e-12)


def test_categorical_crossentropy_one_hot(run, vgrad, rng):
    p = _probs(rng, 5, 4)
    t = np.eye(4)[[0, 3, 3, 1, 2]]
    out = run(T.nnet.categorical_crossentropy, p, t)
    np.testing.assert_allclose(out, -np.sum(t * np.log(p), axis=1), rtol=1e-12)
    soft = _probs(rng, 5, 4)  # soft targets are allowed too
    np.testing.assert_allclose(run(T.nnet.categorical_crossentropy, p, soft), -np.sum(soft * np.log(p), axis=1),
                               rtol=1e-12)
    vgrad(T.nnet.categorical_crossentropy, p, soft)


@pytest.mark.parametrize("labels", ["int", "one_hot"])
def test_softmax_crossentropy_grad_is_softmax_minus_onehot(float64, rng, labels):
    x = T.dmatrix("x")
    xv = rng.standard_normal((4, 3)) * 2
    yv = np.array([2, 0, 1, 2])
    y = T.lvector("y") if labels == "int" else T.dmatrix("y")
    yval = yv if labels == "int" else np.eye(3)[yv]
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(x), y))
    loss, g = theta.function([x, y], [cost, theta.grad(cost, x)])(xv, yval)
    np.testing.assert_allclose(loss, -np.mean(_np_log_softmax(xv)[np.arange(4), yv]), rtol=1e-12)
    np.testing.assert_allclose(g, (_np_softmax(xv) - np.eye(3)[yv]) / 4, rtol=1e-10, atol=1e-15)


def test_softmax_crossentropy_int_labels_stable_at_extreme_logits(float64):
    x, y = T.dmatrix("x"), T.lvector("y")
    xv = np.array([[1000.0, 0.0, -1000.0], [0.0, 800.0, 0.0]])
    yv = np.array([2, 0])
    cost = T.sum(T.nnet.categorical_crossentropy(T.nnet.softmax(x), y))
    loss, g = theta.function([x, y], [cost, theta.grad(cost, x)])(xv, yv)
    np.testing.assert_allclose(loss, 2000.0 + 800.0, rtol=1e-12)
    np.testing.assert_allclose(g, _np_softmax(xv) - np.eye(3)[yv], atol=1e-12)


def test_crossentropy_softmax_int(vgrad, static_grad, rng, float64):
    xv = rng.standard_normal((5, 4)) * 3
    yv = np.array([0, 3, 3, 1, 2])
    x, y = T.dmatrix("x"), T.lvector("y")
    out = theta.function([x, y], T.nnet.crossentropy_softmax_int(x, y))(xv, yv)
    np.testing.assert_allclose(out, -_np_log_softmax(xv)[np.arange(5), yv], rtol=1e-12)
    vgrad(lambda v: T.nnet.crossentropy_softmax_int(v, yv), xv)
    static_grad(lambda v: T.nnet.crossentropy_softmax_int(v, T.as_tensor_variable(yv)), xv)
    out = theta.function([x, y], T.nnet.crossentropy_softmax_int(x, y))(np.array([[1e4, -1e4]]), np.array([1]))
    np.testing.assert_allclose(out, [2e4], rtol=1e-12)


def test_crossentropy_softmax_int_dtypes_and_errors(float64):
    x32, y = T.fmatrix("x"), T.ivector("y")
    f = theta.function([x32, y], T.nnet.crossentropy_softmax_int(x32, y))
    out = f(np.zeros((2, 3), "float32"), np.array([0, 2], "int32"))
    assert out.dtype == "float32"
    np.testing.assert_allclose(out, [np.log(3)] * 2, rtol=1e-6)
    with pytest.raises(IndexError):
        f(np.zeros((2, 3), "float32"), np.array([0, 3], "int32"))
    with pytest.raises(IndexError):
        f(np.zeros((2, 3), "float32"), np.array([-1, 0], "int32"))
    with pytest.raises(ValueError):
        f(np.zeros((2, 3), "float32"), np.array([0, 1, 2], "int32"))
    with pytest.raises(ValueError):
        T.nnet.crossentropy_softmax_int(T.dmatrix(), T.dvector())
    with pytest.raises(ValueError):
        T.nnet.crossentropy_softmax_int(T.dmatrix(shape=(2, 3)), T.lvector(shape=(3,)))


def test_crossentropy_softmax_int_second_order(vgrad, rng):
    """The gradient op is differentiable in both gz and x, also where gz has zeros (a masked
    loss): the op is linear in gz, so its derivative there is softmax - onehot, not 0."""
    yv = np.array([1, 0, 2])
    xv = rng.standard_normal((3, 3))
    gz = np.array([0.0, 1.5, -0.7])
    y = T.as_tensor_variable(yv)
    vgrad(lambda g, v: CrossentropySoftmaxIntGrad()(g, v, y), gz, xv)
    vgrad(lambda g, v: CrossentropySoftmaxIntGrad()(g, v, y), gz + 1.0, xv)
    w = rng.standard_normal(3)
    vgrad(lambda v: theta.grad(T.sum(T.nnet.crossentropy_softmax_int(v, y) * w), v), xv)


def test_binary_crossentropy(run, vgrad, rng):
    out_v = rng.uniform(0.05, 0.95, (4, 3))
    target = (rng.random((4, 3)) > 0.5).astype("float64")
    expected = -(target * np.log(out_v) + (1 - target) * np.log(1 - out_v))
    np.testing.assert_allclose(run(T.nnet.binary_crossentropy, out_v, target), expected, rtol=1e-12)
    soft = rng.random((4, 3))
    vgrad(T.nnet.binary_crossentropy, out_v, soft)
    vgrad(lambda o: T.nnet.binary_crossentropy(o, T.as_tensor_variable(target)), out_v)


def test_binary_crossentropy_of_sigmoid(float64, rng):
    x, t = T.dvector("x"), T.dvector("t")
    xv, tv = rng.standard_normal(5) * 3, (rng.random(5) > 0.5).astype("float64")
    cost = T.sum(T.nnet.binary_crossentropy(T.nnet.sigmoid(x), t))
    loss, g = theta.function([x, t], [cost, theta.grad(cost, x)])(xv, tv)
    s = 1 / (1 + np.exp(-xv))
    np.testing.assert_allclose(loss, np.sum(-(tv * np.log(s) + (1 - tv) * np.log(1 - s))), rtol=1e-12)
    np.testing.assert_allclose(g, s - tv, rtol=1e-10)


def test_sigmoid_binary_crossentropy(run, vgrad, rng):
    logits = rng.standard_normal((4, 3)) * 3
    target = rng.random((4, 3))
    expected = target * np.logaddexp(0, -logits) + (1 - target) * np.logaddexp(0, logits)
    np.testing.assert_allclose(run(T.nnet.sigmoid_binary_crossentropy, logits, target), expected, rtol=1e-12)
    vgrad(T.nnet.sigmoid_binary_crossentropy, logits, target)
    big = np.array([[800.0, -800.0]])
    np.testing.assert_allclose(run(T.nnet.sigmoid_binary_crossentropy, big, np.array([[0.0, 1.0]])),
                               [[800.0, 800.0]], rtol=1e-12)


def test_nnet_float32_stays_float32(run, rng):
    x = rng.standard_normal((3, 4)).astype("float32")
    y = np.array([0, 1, 3], "int32")
    assert run(T.nnet.softmax, x).dtype == "float32"
    assert run(T.nnet.log_softmax, x).dtype == "float32"
    assert run(lambda v, w: T.nnet.categorical_crossentropy(T.nnet.softmax(v), w), x, y).dtype == "float32"
    assert run(lambda v: T.nnet.binary_crossentropy(T.nnet.sigmoid(v), 1.0), x).dtype == "float32"
    xs = T.fmatrix("x")
    g = theta.function([xs], theta.grad(T.sum(T.nnet.softmax(xs)[:, 0]), xs))(x)
    assert g.dtype == "float32"

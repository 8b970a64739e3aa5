"""theta.grad and theta.gradient: the API's semantics, higher-order gradients, and the
numerically sensitive gradients theta promises to get right (stabilized before differentiating)."""
import warnings

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler.errors import DisconnectedInputError, GraphError, ThetaError


def f32(a):
    return np.asarray(a, dtype="float32")


# ---------------------------------------------------------------------------------------------
# the calling convention


def test_single_wrt_gives_single_gradient_list_gives_list():
    x = T.vector("x")
    y = T.vector("y")
    cost = T.sum(x * y)
    g = theta.grad(cost, x)
    assert isinstance(g, theta.Variable)
    gs = theta.grad(cost, [x, y])
    assert isinstance(gs, list) and len(gs) == 2
    gs1 = theta.grad(cost, [x])
    assert isinstance(gs1, list) and len(gs1) == 1
    gx, gy = theta.function([x, y], gs)(f32([1, 2]), f32([3, 4]))
    np.testing.assert_allclose(gx, [3, 4])
    np.testing.assert_allclose(gy, [1, 2])
    assert gx.dtype == np.float32


def test_tuple_wrt_gives_list():
    x = T.vector("x")
    y = T.vector("y")
    gs = theta.grad(T.sum(x * y), (x, y))
    assert isinstance(gs, (list, tuple)) and len(gs) == 2


def test_T_grad_is_theta_grad():
    assert T.grad is theta.grad
    x = T.scalar("x")
    assert float(theta.function([x], T.grad(x ** 3, x))(2.0)) == pytest.approx(12.0)


def test_gradient_of_shared_variable():
    W = theta.shared(f32([[1, 2], [3, 4]]), name="W")
    x = T.vector("x")
    cost = T.sum(T.dot(x, W) ** 2)
    g = theta.function([x], theta.grad(cost, W))(f32([1, 1]))
    xv = np.ones(2)
    np.testing.assert_allclose(g, np.outer(xv, 2 * (xv @ W.get_value())), rtol=1e-6)


def test_gradient_with_respect_to_intermediate():
    x = T.vector("x")
    h = x * 2
    cost = T.sum(h ** 2)
    gh, gx = theta.grad(cost, [h, x])
    a, b = theta.function([x], [gh, gx])(f32([1, 3]))
    np.testing.assert_allclose(a, [4, 12])
    np.testing.assert_allclose(b, [8, 24])


def test_cost_must_be_scalar():
    x = T.vector("x")
    with pytest.raises(GraphError):
        theta.grad(x * 2, x)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_consider_constant():
    x = T.vector("x")
    c = x ** 2
    cost = T.sum(x * c)
    g_all = theta.grad(cost, x)
    g_const = theta.grad(cost, x, consider_constant=[c])
    xv = f32([1, 2, 3])
    a, b = theta.function([x], [g_all, g_const])(xv)
    np.testing.assert_allclose(a, 3 * xv ** 2)
    np.testing.assert_allclose(b, xv ** 2)  # d(x * c)/dx with c held constant


def test_consider_constant_of_a_product_term():
    x = T.scalar("x")
    y = T.scalar("y")
    z = x * y
    cost = z * x + y
    gx, gy = theta.grad(cost, [x, y], consider_constant=[z])
    a, b = theta.function([x, y], [gx, gy])(2.0, 3.0)
    assert float(a) == pytest.approx(6.0)   # z
    assert float(b) == pytest.approx(1.0)   # only through "+ y"


def test_consider_constant_variable_keeps_its_own_gradient():
    # Theano: consider_constant stops backpropagation *through* a variable, not into it
    x = T.vector("x")
    h = T.exp(x)
    cost = T.sum(h * 3)
    gh = theta.grad(cost, h, consider_constant=[h])
    gx = theta.grad(cost, x, consider_constant=[x])
    a, b = theta.function([x], [gh, gx])(f32([0, 1]))
    np.testing.assert_allclose(a, [3, 3])
    np.testing.assert_allclose(b, 3 * np.exp([0, 1]), rtol=1e-6)


def test_known_grads_without_cost():
    x = T.vector("x")
    y = 3 * x + 1
    gy = T.vector("gy")
    gx = theta.grad(None, x, known_grads={y: gy})
    out = theta.function([x, gy], gx, on_unused_input="ignore")(f32([1, 2]), f32([10, 20]))
    np.testing.assert_allclose(out, [30, 60])


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_known_grads_with_cost_adds_up():
    x = T.vector("x")
    h = x ** 2
    cost = T.sum(x)
    gx = theta.grad(cost, x, known_grads={h: T.ones_like(h)})
    out = theta.function([x], gx)(f32([1, 2]))
    np.testing.assert_allclose(out, [3, 5])  # 1 + 2x


def test_disconnected_inputs_raise_warn_ignore():
    x = T.vector("x")
    y = T.vector("y")
    cost = T.sum(x ** 2)
    with pytest.raises(DisconnectedInputError) as info:
        theta.grad(cost, [x, y])
    assert isinstance(info.value, ThetaError) and isinstance(info.value, ValueError)
    assert "'y'" in str(info.value)
    # raise is the default, and an explicit one
    with pytest.raises(DisconnectedInputError):
        theta.grad(cost, y, disconnected_inputs="raise")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        gx, gy = theta.grad(cost, [x, y], disconnected_inputs="warn")
    assert any("'y'" in str(w.message) for w in rec)
    assert all(w.filename.endswith("test_grad.py") for w in rec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gx2, gy2 = theta.grad(cost, [x, y], disconnected_inputs="ignore")
    f = theta.function([x, y], [gx, gy, gx2, gy2])
    a, b, c, d = f(f32([1, 2]), f32([5, 5, 5]))
    np.testing.assert_allclose(a, [2, 4])
    np.testing.assert_allclose(b, [0, 0, 0])
    np.testing.assert_allclose(c, [2, 4])
    np.testing.assert_allclose(d, [0, 0, 0])
    assert b.dtype == np.float32


def test_disconnected_inputs_bad_mode():
    x = T.vector("x")
    with pytest.raises(ValueError):
        theta.grad(T.sum(x), x, disconnected_inputs="yes")


def test_integer_path_gives_zero_gradient():
    # Theano: argmax is connected to x but has a zero gradient (no DisconnectedInputError)
    x = T.vector("x")
    cost = T.sum(T.cast(T.argmax(x), "float32")) + T.sum(T.floor(x))
    g = theta.function([x], theta.grad(cost, x))(f32([0.5, 2.5, 1.0]))
    np.testing.assert_array_equal(g, [0, 0, 0])
    assert g.dtype == np.float32


def test_disconnected_grad_blocks_gradient():
    x = T.vector("x")
    cost = T.sum(x * theta.gradient.disconnected_grad(x ** 2))
    g = theta.function([x], theta.grad(cost, x))(f32([1, 2, 3]))
    np.testing.assert_allclose(g, [1, 4, 9])
    # forward value unchanged
    v = theta.function([x], cost)(f32([1, 2, 3]))
    assert float(v) == pytest.approx(36.0)


def test_disconnected_grad_only_path_is_disconnected():
    x = T.vector("x")
    cost = T.sum(theta.gradient.disconnected_grad(x) * 2)
    with pytest.raises(DisconnectedInputError):
        theta.grad(cost, x)
    g = theta.grad(cost, x, disconnected_inputs="ignore")
    np.testing.assert_allclose(theta.function([x], g)(f32([1, 2])), [0, 0])


# ---------------------------------------------------------------------------------------------
# higher order


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_second_derivative_of_scalar():
    x = T.dscalar("x")
    y = x ** 3 + T.sin(x)
    d1 = theta.grad(y, x)
    d2 = theta.grad(d1, x)
    d3 = theta.grad(d2, x)
    f = theta.function([x], [d1, d2, d3])
    a, b, c = f(0.7)
    assert float(a) == pytest.approx(3 * 0.49 + np.cos(0.7))
    assert float(b) == pytest.approx(6 * 0.7 - np.sin(0.7))
    assert float(c) == pytest.approx(6 - np.cos(0.7))


def _mlp():
    x = T.dmatrix("x")
    y = T.lvector("y")
    W1 = T.dmatrix("W1")
    b1 = T.dvector("b1")
    W2 = T.dmatrix("W2")
    h = T.tanh(T.dot(x, W1) + b1)
    p = T.nnet.softmax(T.dot(h, W2))
    cost = T.mean(T.nnet.categorical_crossentropy(p, y)) + 0.01 * T.sum(W1 ** 2)
    return [x, y], [W1, b1, W2], cost


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_hessian_vector_product_of_mlp_matches_finite_differences():
    rng = np.random.default_rng(0)
    data, params, cost = _mlp()
    grads = theta.grad(cost, params)
    vs = [T.dmatrix("v1"), T.dvector("vb"), T.dmatrix("v2")]
    gv = sum(T.sum(g * v) for g, v in zip(grads, vs))
    hv = theta.grad(gv, params)
    f_hv = theta.function(data + params + vs, hv)
    f_g = theta.function(data + params, grads)
    X = rng.standard_normal((5, 3))
    Y = rng.integers(0, 2, 5)
    P = [rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal((4, 2))]
    D = [rng.standard_normal(p.shape) for p in P]
    got = f_hv(X, Y, *P, *D)
    eps = 1e-5
    plus = f_g(X, Y, *[p + eps * d for p, d in zip(P, D)])
    minus = f_g(X, Y, *[p - eps * d for p, d in zip(P, D)])
    for g, a, b in zip(got, plus, minus):
        np.testing.assert_allclose(g, (a - b) / (2 * eps), rtol=1e-5, atol=1e-7)
    assert max(np.abs(g).max() for g in got) > 1e-2  # not trivially zero


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_gradient_of_gradient_norm():
    # grad(sum(grad(c, W)**2), W) (a gradient penalty) against finite differences
    rng = np.random.default_rng(1)
    x = T.dvector("x")
    W = T.dmatrix("W")
    c = T.sum(T.nnet.sigmoid(T.dot(W, x)))
    pen = T.sum(theta.grad(c, W) ** 2)
    f = theta.function([W, x], [pen, theta.grad(pen, W)])
    Wv = rng.standard_normal((2, 3))
    xv = rng.standard_normal(3)
    _, g = f(Wv, xv)
    num = np.zeros_like(Wv)
    eps = 1e-6
    for idx in np.ndindex(*Wv.shape):
        d = np.zeros_like(Wv)
        d[idx] = eps
        num[idx] = (float(f(Wv + d, xv)[0]) - float(f(Wv - d, xv)[0])) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_jacobian():
    x = T.dvector("x", shape=(3,))
    y = x ** 2 + T.sum(x)
    J = theta.gradient.jacobian(y, x)
    out = theta.function([x], J)(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(out, np.diag([2.0, 4.0, 6.0]) + 1)
    assert T.jacobian is theta.gradient.jacobian


def test_jacobian_list_of_wrt():
    x = T.dvector("x", shape=(2,))
    a = T.dscalar("a")
    Jx, Ja = theta.gradient.jacobian(a * x ** 2, [x, a])
    jx, ja = theta.function([x, a], [Jx, Ja])(np.array([1.0, 2.0]), 3.0)
    np.testing.assert_allclose(jx, np.diag([6.0, 12.0]))
    np.testing.assert_allclose(ja, [1.0, 4.0])


def test_jacobian_of_unknown_length_is_a_loop():
    # one scan step per row: the length may be known only when the function is called
    x = T.dvector("x")
    J = theta.function([x], theta.gradient.jacobian(x ** 2, x))
    np.testing.assert_allclose(J(np.array([1.0, 2.0, 3.0, 4.0])), np.diag([2.0, 4.0, 6.0, 8.0]))
    with pytest.raises(GraphError, match="vector"):
        theta.gradient.jacobian(T.dmatrix("m"), x)


def test_verify_grad_accepts_a_correct_gradient():
    theta.gradient.verify_grad(lambda a: T.tanh(a) * a, [np.array([0.3, -1.2, 2.0])])


# ---------------------------------------------------------------------------------------------
# numerically sensitive cases (acceptance criteria)


def test_softplus_matches_log1p_exp():
    x = T.dvector("x")
    f = theta.function([x], T.nnet.softplus(x))
    xv = np.array([-40.0, -17.5, 17.5, 40.0])
    np.testing.assert_allclose(f(xv), np.log1p(np.exp(xv)), rtol=1e-14)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_softplus_of_log_one_plus_exp_form_does_not_overflow():
    x = T.dvector("x")
    f = theta.function([x], T.log(1 + T.exp(x)))
    with np.errstate(over="ignore"):
        out = f(np.array([-40.0, 0.0, 800.0]))
    np.testing.assert_allclose(out, [np.log1p(np.exp(-40.0)), np.log(2.0), 800.0], rtol=1e-12)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradient_of_log_one_minus_sigmoid(dtype):
    x = T.vector("x", dtype=dtype)
    cost = T.sum(T.log(1 - T.nnet.sigmoid(x)))
    f = theta.function([x], [cost, theta.grad(cost, x)])
    c, g = f(np.array([-100.0, 0.0, 100.0], dtype))
    assert g.dtype == dtype and not np.isnan(g).any() and np.isfinite(c)
    want = np.array([-3.7200759760208356e-44, -0.5, -1.0])  # -sigmoid(x)
    if dtype == "float64":
        np.testing.assert_allclose(g, want, rtol=1e-12)
    else:
        np.testing.assert_allclose(g[1:], want[1:], rtol=1e-6)
        assert -1e-40 < g[0] <= 0  # a float32 subnormal, not NaN and not -1
    assert float(c) == pytest.approx(-100 - np.log(2.0), rel=1e-6)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_log_softmax_stays_finite(dtype):
    m = T.matrix("m", dtype=dtype)
    f = theta.function([m], [T.log(T.nnet.softmax(m)), theta.grad(T.sum(T.log(T.nnet.softmax(m))[:, 2]), m)])
    rows = np.array([[999.0, 990.0, -10.0], [0.0, 0.0, 0.0]], dtype)
    out, g = f(rows)
    assert np.isfinite(out).all() and np.isfinite(g).all()
    ref = rows.astype("float64") - rows.max(1, keepdims=True)
    ref = ref - np.log(np.exp(ref).sum(1, keepdims=True))
    np.testing.assert_allclose(out, ref, rtol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_crossentropy_softmax_gradient_with_huge_logits(dtype):
    z = T.matrix("z", dtype=dtype)
    y = T.lvector("y")
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(z), y))
    f = theta.function([z, y], [cost, theta.grad(cost, z)])
    zv = np.array([[1e4, -1e4, 0.0], [0.0, 5e3, -5e3], [1.0, 2.0, 3.0]], dtype)
    yv = np.array([1, 2, 2])
    c, g = f(zv, yv)
    assert np.isfinite(c) and np.isfinite(g).all()
    z64 = zv.astype("float64")
    ls = z64 - z64.max(1, keepdims=True)
    ls = ls - np.log(np.exp(ls).sum(1, keepdims=True))
    assert float(c) == pytest.approx(-ls[np.arange(3), yv].mean(), rel=1e-5)
    want = np.exp(ls)
    want[np.arange(3), yv] -= 1
    np.testing.assert_allclose(g, want / 3, rtol=1e-5, atol=1e-7)


def test_gradient_with_respect_to_integer_input_is_floatX_zeros():
    k = T.iscalar("k")
    v = T.fvector("v")
    g = theta.grad(T.sum(v * k), k)
    assert g.dtype == "float32"
    assert float(theta.function([v, k], g, on_unused_input="ignore")(f32([1, 2]), 3)) == 0.0


def test_return_disconnected_none():
    x = T.vector("x")
    y = T.vector("y")
    gx, gy = theta.grad(T.sum(x ** 2), [x, y], disconnected_inputs="ignore", return_disconnected="None")
    assert gy is None
    np.testing.assert_allclose(theta.function([x], gx)(f32([1, -2])), [2, -4])


def _check_zero_grad(zero_grad):
    x = T.vector("x")
    cost = T.sum(zero_grad(x) * 2) + T.sum(x * zero_grad(x ** 2))
    g = theta.grad(cost, x)  # connected: zeros through zero_grad, no DisconnectedInputError
    v, gv = theta.function([x], [cost, g])(f32([1, 2]))
    assert float(v) == pytest.approx(6 + 9)
    np.testing.assert_allclose(gv, [1, 4])
    only = theta.grad(T.sum(zero_grad(x)), x)
    np.testing.assert_array_equal(theta.function([x], only)(f32([1, 2])), [0, 0])


def test_zero_grad_op():
    from theta.compiler.grad import zero_grad
    _check_zero_grad(zero_grad)


def test_theta_gradient_zero_grad_is_connected():
    _check_zero_grad(theta.gradient.zero_grad)

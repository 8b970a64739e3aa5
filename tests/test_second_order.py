"""Second order: Lop, Rop (for every op with a gradient), Hessian-vector products, Hessians
through scan, and the seeds' uses: the largest Hessian eigenvalue of an MLP's loss by the power
method, and a saddle-free Newton step."""
import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.gradient import Lop, Rop, hessian, hessian_vector_product

rng = np.random.default_rng(3)


def numeric_jvp(f, xs, vs, eps=1e-6):
    plus = f(*[x + eps * v for x, v in zip(xs, vs)])
    minus = f(*[x - eps * v for x, v in zip(xs, vs)])
    return (np.asarray(plus) - np.asarray(minus)) / (2 * eps)


EXPRESSIONS = {
    "tanh_dot": lambda x, W: T.tanh(T.dot(x, W)),
    "softmax": lambda x, W: T.nnet.softmax(T.dot(x, W)),
    "log_softmax_sum": lambda x, W: T.log(T.nnet.softmax(x * 2 + T.dot(x, W))).sum(axis=1),
    "reductions": lambda x, W: T.concatenate([T.max(x, axis=1), T.mean(W * W, axis=0)]),
    "indexing": lambda x, W: (x[:, ::-1] * W[0])[np.array([1, 0, 1])],
    "sigmoid_softplus": lambda x, W: T.nnet.sigmoid(x) * T.nnet.softplus(T.dot(x, W) - 1),
}


@pytest.mark.parametrize("backend", ["reference", "emu"])
@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_rop_matches_finite_differences(name, backend):
    X, Wv = rng.standard_normal((3, 4)), rng.standard_normal((4, 4))
    vX, vW = rng.standard_normal((3, 4)), rng.standard_normal((4, 4))
    x, W, ex, eW = T.dmatrix("x"), T.dmatrix("W"), T.dmatrix("vx"), T.dmatrix("vW")
    out = EXPRESSIONS[name](x, W)
    jvp = theta.function([x, W, ex, eW], Rop(out, [x, W], [ex, eW]), on_unused_input="ignore",
                         backend=backend)(X, Wv, vX, vW)
    f = theta.function([x, W], out)
    np.testing.assert_allclose(jvp, numeric_jvp(f, [X, Wv], [vX, vW]), rtol=1e-6, atol=1e-8)


def test_lop_is_the_transpose_of_rop():
    X, Wv = rng.standard_normal((3, 4)), rng.standard_normal((4, 4))
    u, v = rng.standard_normal((3, 4)), rng.standard_normal((4, 4))
    x, W, eu, ev = T.dmatrix("x"), T.dmatrix("W"), T.dmatrix("u"), T.dmatrix("v")
    out = T.tanh(T.dot(x, W))
    f = theta.function([x, W, eu, ev], [Lop(out, W, eu), Rop(out, W, ev)])
    lop, rop = f(X, Wv, u, v)
    assert np.sum(lop * v) == pytest.approx(np.sum(u * rop), rel=1e-10)   # <u, J v> = <J^T u, v>


def mlp_loss(theta_vec, X, Y, n_in=3, n_hid=4):
    W1 = theta_vec[:n_in * n_hid].reshape((n_in, n_hid))
    w2 = theta_vec[n_in * n_hid:]
    return T.mean((T.dot(T.tanh(T.dot(X, W1)), w2) - Y) ** 2)


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_hessian_vector_products_and_the_hessian_agree_with_finite_differences(backend):
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    p0, v0 = rng.standard_normal(16) * 0.5, rng.standard_normal(16)
    p, v = T.dvector("p"), T.dvector("v")
    loss = mlp_loss(p, T.constant(X), T.constant(Y))
    hv = theta.function([p, v], hessian_vector_product(loss, p, v), backend=backend)(p0, v0)
    H = theta.function([p], hessian(loss, p))(p0)
    g = theta.function([p], theta.grad(loss, p))
    np.testing.assert_allclose(hv, numeric_jvp(g, [p0], [v0]), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(H @ v0, hv, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(H, H.T, atol=1e-12)


def test_largest_hessian_eigenvalue_by_the_power_method():
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    p0 = rng.standard_normal(16) * 0.5
    p, v = T.dvector("p"), T.dvector("v")
    loss = mlp_loss(p, T.constant(X), T.constant(Y))
    hvp = theta.function([p, v], hessian_vector_product(loss, p, v))
    w = rng.standard_normal(16)
    for _ in range(500):
        w = hvp(p0, w)
        lam = np.linalg.norm(w)
        w = w / lam
    rayleigh = float(w @ hvp(p0, w))
    eigs = np.linalg.eigvalsh(theta.function([p], hessian(loss, p))(p0))
    assert abs(rayleigh) == pytest.approx(np.max(np.abs(eigs)), rel=1e-6)


def test_one_saddle_free_newton_step_on_a_saddle():
    """f(x, y) = x^2 - y^2 + x y: a saddle. Saddle-free Newton replaces the Hessian's
    eigenvalues by their absolute values, so the step descends along both directions."""
    z = T.dvector("z")
    f = z[0] ** 2 - z[1] ** 2 + z[0] * z[1]
    grad_hess = theta.function([z], [theta.grad(f, z), hessian(f, z)])
    z0 = np.array([0.3, 0.2])
    g, H = grad_hess(z0)
    lam, Q = np.linalg.eigh(H)
    step = -Q @ np.diag(1 / np.abs(lam)) @ Q.T @ g
    want_H = np.array([[2.0, 1.0], [1.0, -2.0]])
    np.testing.assert_allclose(H, want_H)
    np.testing.assert_allclose(g, want_H @ z0)
    z1 = z0 + step
    value = theta.function([z], f)
    assert value(z1) < value(z0)                       # Newton would climb to the saddle point instead
    newton = z0 - np.linalg.solve(H, g)
    np.testing.assert_allclose(newton, 0, atol=1e-12)

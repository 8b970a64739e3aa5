"""T.nnet's nonlinearities (relu with a scalar or tensor slope, elu, selu, hard_sigmoid,
ultra_fast_sigmoid, softsign), maxout and the two-level hierarchical softmax: forward against
NumPy written out here, gradients (verify_grad and the R-op on the reference, the gradient
kernels against the reference on emu), and how few kernels a maxout layer compiles to.

Many activations go into one function (one emu compile) by stacking them.
"""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def np_ultra_fast_sigmoid(x):
    """Theano's UltraFastScalarSigmoid.st_impl, vectorized."""
    h = 0.5 * x
    a = np.abs(h)
    t = np.where(a < 1.7, 1.5 * a / (1 + a),
                 np.where(a < 3, 0.935409070603099 + 0.0458812946797165 * (a - 1.7), 0.99505475368673))
    return 0.5 * (np.where(h >= 0, t, -t) + 1.0)


ACTIVATIONS = {
    "relu": (lambda x: T.nnet.relu(x), lambda x: np.maximum(x, 0)),
    "leaky_relu": (lambda x: T.nnet.relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    "elu": (lambda x: T.nnet.elu(x), lambda x: np.where(x > 0, x, np.expm1(x))),
    "elu_alpha": (lambda x: T.nnet.elu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    "selu": (T.nnet.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x))),
    "hard_sigmoid": (T.nnet.hard_sigmoid, lambda x: np.clip(0.2 * x + 0.5, 0, 1)),
    "ultra_fast_sigmoid": (T.nnet.ultra_fast_sigmoid, np_ultra_fast_sigmoid),
    "softsign": (T.nnet.softsign, lambda x: x / (1 + np.abs(x))),
    "softplus": (T.nnet.softplus, lambda x: np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)),
}
KINKS = np.array([0.0, 2.5, -2.5, 3.4, -3.4, 6.0, -6.0])   # relu, hard_sigmoid, ultra_fast_sigmoid


def away_from_kinks(rng, shape, lo=-8.0, hi=8.0):
    """Uniform values at least 0.05 from every kink (finite differences straddle none)."""
    x = rng.uniform(lo, hi, shape)
    near = np.abs(x[..., None] - KINKS).min(-1) < 0.05
    return np.where(near, x + 0.1, x)


def stacked(x):
    return T.stack([fn(x) for fn, _ in ACTIVATIONS.values()])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_activations_forward(run, rng, dtype):
    x = away_from_kinks(rng, (3, 50)).astype(dtype)
    x[0, :4] = [0.0, 2.5, -3.4, 6.0]          # the kinks themselves: values at the boundaries
    out = run(stacked, x)
    assert out.dtype == dtype
    tol = 1e-12 if dtype == "float64" else 2e-6
    for k, (name, (_, ref)) in enumerate(ACTIVATIONS.items()):
        np.testing.assert_allclose(out[k], ref(x.astype("float64")), rtol=tol, atol=tol, err_msg=name)


def test_activations_grad(vgrad, rng):
    vgrad(stacked, away_from_kinks(rng, (2, 40)))


def test_activation_integer_input_is_float(float64):
    i = T.lvector("i")
    f = theta.function([i], [T.nnet.hard_sigmoid(i), T.nnet.softsign(i), T.nnet.selu(i)])
    hs, ss, se = f(np.array([-3, 0, 1]))
    assert hs.dtype == ss.dtype == se.dtype == "float64"
    np.testing.assert_allclose(hs, [0, 0.5, 0.7])
    np.testing.assert_allclose(ss, [-0.75, 0, 0.5])


def test_ultra_fast_sigmoid_close_to_sigmoid(float64):
    x = T.dvector("x")
    grid = np.linspace(-20, 20, 4001)
    got = theta.function([x], T.nnet.ultra_fast_sigmoid(x))(grid)
    assert np.abs(got - 1 / (1 + np.exp(-grid))).max() < 0.03
    np.testing.assert_allclose(got, np_ultra_fast_sigmoid(grid), rtol=0, atol=1e-15)
    # the gradient is finite everywhere, including where a mirrored branch would divide by 0
    g = theta.function([x], theta.grad(T.sum(T.nnet.ultra_fast_sigmoid(x)), x))(np.array([0.0, 2.0, -2.0, 7.0]))
    np.testing.assert_allclose(g, [0.375, 0.09375, 0.09375, 0.0], rtol=1e-12)


def test_relu_tensor_alpha(run, vgrad, rng):
    x = away_from_kinks(rng, (4, 5))
    alpha = rng.uniform(0.05, 0.3, 5)
    out = run(lambda v, a: T.nnet.relu(v, a), x, alpha)
    np.testing.assert_allclose(out, np.where(x > 0, x, alpha * x), rtol=1e-12)
    vgrad(lambda v, a: T.nnet.relu(v, a) + T.nnet.elu(v, a), x, alpha)
    # a numpy array and a symbolic scalar slope work too
    np.testing.assert_allclose(run(lambda v: T.nnet.relu(v, alpha), x), np.where(x > 0, x, alpha * x), rtol=1e-12)
    s = T.dscalar("s")
    v = T.dmatrix("v")
    got = theta.function([v, s], T.nnet.relu(v, s))(x, 0.2)
    np.testing.assert_allclose(got, np.where(x > 0, x, 0.2 * x), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# maxout


def np_maxout(x, pieces):
    return x.reshape(x.shape[:-1] + (-1, pieces)).max(-1)


def test_maxout_forward_and_grad(run, vgrad, rng):
    x = rng.standard_normal((4, 12))   # continuous values: no ties, the max is differentiable
    out = run(lambda v: [T.nnet.maxout(v, 3), T.nnet.maxout(v, 4), T.nnet.maxout(v, 1)], x)
    for got, p in zip(out, (3, 4, 1)):
        np.testing.assert_allclose(got, np_maxout(x, p), rtol=1e-12)
    t3 = rng.standard_normal((2, 3, 6))
    np.testing.assert_allclose(run(lambda v: T.nnet.maxout(v, 2), t3), np_maxout(t3, 2), rtol=1e-12)
    vgrad(lambda v: T.nnet.maxout(v, 3), x)


def test_maxout_bad_pieces(float64):
    with pytest.raises(ValueError, match="multiple of 5"):
        T.nnet.maxout(T.dmatrix("h", shape=(2, 12)), 5)
    with pytest.raises(ValueError, match="positive integer"):
        T.nnet.maxout(T.dmatrix("h"), 0)
    h = T.dmatrix("h")
    f = theta.function([h], T.nnet.maxout(h, 5))
    with pytest.raises(ValueError):
        f(np.zeros((2, 12)))


def test_maxout_layer_fuses(float64, rng):
    """dot + bias + maxout (+ relu) is a GEMM with the bias in its epilogue and one reduction
    (the reshape is a view; the relu runs in the reduction's epilogue); its gradient is right."""
    x, W, b = T.dmatrix("x"), T.dmatrix("W"), T.dvector("b")
    h = T.nnet.maxout(T.dot(x, W) + b, 3)
    out = T.nnet.relu(h)
    cost = T.sum(out * np.linspace(0.5, 1.5, 4))
    grads = theta.grad(cost, [x, W, b])
    xv, Wv, bv = rng.standard_normal((5, 4)), rng.standard_normal((4, 12)), rng.standard_normal(12)
    f = theta.function([x, W, b], [out] + grads, backend="emu")
    got = f(xv, Wv, bv)
    want = theta.function([x, W, b], [out] + grads, backend="reference")(xv, Wv, bv)
    np.testing.assert_allclose(got[0], np.maximum(np_maxout(xv @ Wv + bv, 3), 0), rtol=1e-12)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    fwd = theta.function([x, W, b], out, backend="emu")
    fwd(xv, Wv, bv)
    assert [k.family for k in fwd.kernels] == ["gemm", "reduce"]


# --------------------------------------------------------------------------------------------
# hierarchical softmax


def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_h_softmax(x, n_outputs, W1, b1, W2, b2):
    cls = np_softmax(x @ W1 + b1)                                   # (b, C)
    within = np_softmax(np.einsum("bi,cip->bcp", x, W2) + b2)       # (b, C, P)
    return (cls[:, :, None] * within).reshape(len(x), -1)[:, :n_outputs]


H_SIZES = dict(n_in=4, n_classes=3, per_class=4, n_outputs=10, batch=5)


def h_params(rng):
    s = H_SIZES
    return (rng.standard_normal((s["batch"], s["n_in"])), rng.standard_normal((s["n_in"], s["n_classes"])),
            rng.standard_normal(s["n_classes"]), rng.standard_normal((s["n_classes"], s["n_in"], s["per_class"])),
            rng.standard_normal((s["n_classes"], s["per_class"])))


def h_all(x, W1, b1, W2, b2):
    s = H_SIZES
    return T.nnet.h_softmax(x, x.shape[0], s["n_outputs"], s["n_classes"], s["per_class"], W1, b1, W2, b2)


def test_h_softmax(run, vgrad, rng):
    s = H_SIZES
    params = h_params(rng)
    target = np.array([0, 9, 4, 7, 3])
    want = np_h_softmax(params[0], s["n_outputs"], *params[1:])

    def both(x, W1, b1, W2, b2):
        tg = T.nnet.h_softmax(x, x.shape[0], s["n_outputs"], s["n_classes"], s["per_class"], W1, b1, W2, b2,
                              target=T.as_tensor_variable(target.reshape(-1, 1)))
        return [h_all(x, W1, b1, W2, b2), tg]
    full, tg = run(both, *params)
    assert full.shape == (s["batch"], s["n_outputs"]) and tg.shape == (s["batch"],)
    np.testing.assert_allclose(full, want, rtol=1e-12)
    np.testing.assert_allclose(tg, want[np.arange(s["batch"]), target], rtol=1e-12)
    # the rows sum to one when no output is dropped
    np.testing.assert_allclose(np_h_softmax(params[0], 12, *params[1:]).sum(1), 1.0)
    vgrad(lambda *ps: both(*ps)[0] + both(*ps)[1].dimshuffle(0, "x"), *params)


def test_h_softmax_too_few_outputs():
    with pytest.raises(ValueError, match="cannot hold"):
        T.nnet.h_softmax(T.dmatrix(), 2, 13, 3, 4, T.dmatrix(), T.dvector(), T.dtensor3(), T.dmatrix())

"""Theano idioms, written from Theano's documentation (the tutorial: baby steps, more examples,
scan, random numbers, the logistic regression example), run unchanged through ``import theano``
after ``theta.compat.install_theano()``, on the reference backend and on emu."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import theta
from theta.compat import install_theano, uninstall_theano


@pytest.fixture(params=["reference", "emu"])
def theano(request):
    install_theano()
    module = importlib.import_module("theano")
    old = theta.config.backend
    theta.config.backend = request.param
    yield module
    theta.config.backend = old
    uninstall_theano()


def test_baby_steps_adding_two_scalars_and_matrices(theano):
    import theano.tensor as T
    from theano import function
    x, y = T.dscalar("x"), T.dscalar("y")
    z = x + y
    f = function([x, y], z)
    assert f(2, 3) == 5.0
    np.testing.assert_allclose(z.eval({x: 16.3, y: 12.1}), 28.4)
    x, y = T.dmatrix("x"), T.dmatrix("y")
    f = function([x, y], x + y)
    np.testing.assert_array_equal(f([[1, 2], [3, 4]], [[10, 20], [30, 40]]), [[11, 22], [33, 44]])


def test_logistic_function_and_multiple_outputs(theano):
    import theano.tensor as T
    x = T.dmatrix("x")
    s = 1 / (1 + T.exp(-x))
    logistic = theano.function([x], s)
    np.testing.assert_allclose(logistic([[0, 1], [-1, -2]]), [[0.5, 0.73105858], [0.26894142, 0.11920292]])
    a, b = T.dmatrices("a", "b")
    diff = a - b
    f = theano.function([a, b], [diff, abs(diff), diff ** 2])
    d, ad, d2 = f([[1, 1], [1, 1]], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(d, [[1, 0], [-1, -2]])
    np.testing.assert_array_equal(ad, [[1, 0], [1, 2]])
    np.testing.assert_array_equal(d2, [[1, 0], [1, 4]])


def test_default_values_and_shared_accumulator(theano):
    import theano.tensor as T
    from theano import In, function, shared
    x, y = T.dscalars("x", "y")
    f = function([x, In(y, value=1)], x + y)
    assert f(33) == 34.0 and f(33, 2) == 35.0
    state = shared(0)
    inc = T.iscalar("inc")
    accumulator = function([inc], state, updates=[(state, state + inc)])
    assert accumulator(1) == 0 and accumulator(300) == 1 and state.get_value() == 301
    state.set_value(-1)
    accumulator(3)
    assert state.get_value() == 2


def test_givens_and_gradients(theano):
    import theano.tensor as T
    from theano import function, shared
    state = shared(0)
    inc = T.iscalar("inc")
    fn_of_state = state * 2 + inc
    foo = T.scalar(dtype=state.dtype)
    skip_shared = function([inc, foo], fn_of_state, givens=[(state, foo)])
    assert skip_shared(1, 3) == 7 and state.get_value() == 0
    x = T.dscalar("x")
    gy = T.grad(x ** 2, x)
    f = theano.function([x], gy)
    assert f(4) == 8.0 and f(94.2) == pytest.approx(188.4)
    x = T.dmatrix("x")
    s = T.sum(1 / (1 + T.exp(-x)))
    dlogistic = theano.function([x], T.grad(s, x))
    np.testing.assert_allclose(dlogistic([[0, 1], [-1, -2]]), [[0.25, 0.19661193], [0.19661193, 0.10499359]])


def test_random_streams_from_the_tutorial(theano):
    from theano.tensor.shared_randomstreams import RandomStreams
    from theano import function
    srng = RandomStreams(seed=234)
    rv_u = srng.uniform((2, 2))
    rv_n = srng.normal((2, 2))
    f = function([], rv_u)
    g = function([], rv_n, no_default_updates=True)
    nearly_zeros = function([], rv_u + rv_u - 2 * rv_u)
    u1, u2 = f(), f()
    assert u1.shape == (2, 2) and ((0 <= u1) & (u1 < 1)).all() and not np.array_equal(u1, u2)
    np.testing.assert_array_equal(g(), g())
    np.testing.assert_allclose(nearly_zeros(), np.zeros((2, 2)), atol=1e-6)
    from theano.sandbox.rng_mrg import MRG_RandomStreams
    mrg = MRG_RandomStreams(seed=1)
    draw = function([], mrg.binomial(size=(200, 50), p=0.3))
    a, b = draw(), draw()
    assert a.shape == (200, 50) and a.dtype == np.int64                  # Theano's default dtype
    assert set(np.unique(np.concatenate([a, b])).tolist()) == {0, 1}
    # rates within 5 standard deviations (a false alarm about once in 3.5 million runs): the
    # mean of 10,000 draws near p, and two successive calls (the stream advances) differing
    # where independent draws do, in 2 p (1 - p) of the places
    n, p = a.size, 0.3
    for m in (a.mean(), b.mean()):
        assert abs(m - p) < 5 * np.sqrt(p * (1 - p) / n), m
    q = 2 * p * (1 - p)
    assert abs((a != b).mean() - q) < 5 * np.sqrt(q * (1 - q) / n), (a != b).mean()


def test_scan_power_and_polynomial(theano):
    import theano.tensor as T
    k = T.iscalar("k")
    A = T.vector("A")
    result, updates = theano.scan(fn=lambda prior_result, A: prior_result * A, outputs_info=T.ones_like(A),
                                  non_sequences=A, n_steps=k)
    power = theano.function([A, k], result[-1], updates=updates)
    np.testing.assert_allclose(power(np.arange(10, dtype=theano.config.floatX), 2), np.arange(10) ** 2)
    coefficients = T.vector("coefficients")
    x = T.scalar("x")
    components, _ = theano.scan(fn=lambda c, power, free_variable: c * (free_variable ** power),
                                outputs_info=None, sequences=[coefficients, T.arange(10)], non_sequences=x)
    poly = theano.function([coefficients, x], components.sum())
    assert poly(np.asarray([1, 0, 2], dtype=theano.config.floatX), 3) == pytest.approx(19.0)


def test_logistic_regression_example(theano):
    import theano.tensor as T
    rng = np.random.default_rng(0)
    N, feats = 40, 10
    D = (rng.standard_normal((N, feats)), rng.integers(0, 2, N))
    x, y = T.dmatrix("x"), T.dvector("y")
    w = theano.shared(rng.standard_normal(feats), name="w")
    b = theano.shared(0., name="b")
    p_1 = 1 / (1 + T.exp(-T.dot(x, w) - b))
    prediction = p_1 > 0.5
    xent = -y * T.log(p_1) - (1 - y) * T.log(1 - p_1)
    cost = xent.mean() + 0.01 * (w ** 2).sum()
    gw, gb = T.grad(cost, [w, b])
    train = theano.function(inputs=[x, y], outputs=[prediction, xent], updates=((w, w - 0.1 * gw), (b, b - 0.1 * gb)))
    predict = theano.function(inputs=[x], outputs=prediction)
    w_np, b_np = w.get_value(), 0.0
    for _ in range(50):
        train(D[0], D[1])
        p = 1 / (1 + np.exp(-(D[0] @ w_np) - b_np))          # the same steps in NumPy
        g = p - D[1]
        w_np, b_np = w_np - 0.1 * (D[0].T @ g / N + 0.02 * w_np), b_np - 0.1 * g.mean()
    np.testing.assert_allclose(w.get_value(), w_np, rtol=1e-7, atol=1e-9)   # theta stabilizes the xent
    np.testing.assert_array_equal(predict(D[0]), (1 / (1 + np.exp(-(D[0] @ w_np) - b_np))) > 0.5)


def test_theano_quirks_and_unsupported_names(theano):
    import theano.tensor as T
    v = T.dvector("v")
    sm = T.nnet.softmax(v)
    assert sm.ndim == 2                              # Theano: a vector's softmax is a 1 x n matrix
    np.testing.assert_allclose(theano.function([v], sm)([0.0, 0.0]), [[0.5, 0.5]])
    assert theano.config.floatX in ("float32", "float64")
    with pytest.raises(AttributeError, match="theta does not support theano.tensor.extra_ops.bincount"):
        import theano.tensor.extra_ops as extra
        extra.bincount
    with pytest.raises(ImportError, match="theta does not support theano.gpuarray"):
        importlib.import_module("theano.gpuarray")
    from theano.tensor.signal.pool import pool_2d
    from theano.tensor.nnet import conv2d, bn   # noqa: F401
    x = T.dtensor4("x")
    out = theano.function([x], pool_2d(x, (2, 2), ignore_border=True))(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(out, [[[[5, 7], [13, 15]]]])


def test_config_device_picks_the_backend():
    install_theano()
    try:
        import theano
        old = theta.config.backend
        theano.config.device = "cpu"
        assert theta.config.backend == "reference" and theano.config.device == "cpu"
        theano.config.device = "cuda"
        assert theta.config.backend == "cuda"
        theta.config.backend = old
        with pytest.raises(ValueError, match="device"):
            theano.config.device = "opencl0:0"
    finally:
        uninstall_theano()

"""The rewrite pipeline as a user sees it: hash-consing, constant folding, shape folding after
specialization, the stabilizations, and optimizer='None'."""
import numpy as np
import pytest
import sympy as sp

import theta
import theta.tensor as T
from theta.compiler.graph import toposort
from theta.compiler.ops.nnet import CrossentropySoftmaxInt, LogSoftmax
from theta.compiler.ops.scalar import expm1, log1p


def _compiled_outputs(f):
    """The rewritten output graph of a function called once with one shape signature."""
    (spec,) = f._specs.values()
    if spec.plan.empty:
        return spec.outputs
    (variant,) = spec._variants.values()
    return variant[2]


def _ops(outputs):
    return [n.op for n in toposort(outputs) if n.op is not None]


@pytest.fixture
def optimizer_none():
    old = theta.config.optimizer
    theta.config.optimizer = "None"
    yield
    theta.config.optimizer = old


# ---------------------------------------------------------------------------------------------
# hash-consing and merging


def test_hash_consing():
    x = T.matrix("x")
    y = T.matrix("y")
    assert T.exp(x) is T.exp(x)
    assert (x + y) is (x + y)
    assert T.dot(x, y).sum(axis=0) is T.dot(x, y).sum(axis=0)
    assert T.exp(x) is not T.exp(y)
    assert T.as_tensor_variable(np.float32(2.5)) is T.as_tensor_variable(np.float32(2.5))


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_equal_outputs_are_one_node_after_compilation():
    x = T.matrix("x")
    f = theta.function([x], [T.dot(x, x.T), T.dot(x, x.T) + 0])
    a, b = f(np.ones((2, 3), "float32"))
    np.testing.assert_array_equal(a, b)
    outs = _compiled_outputs(f)
    assert outs[0] is outs[1]
    assert sum(1 for op in _ops(outs) if type(op).__name__ == "Dot") == 1


# ---------------------------------------------------------------------------------------------
# constant folding


def test_constant_arithmetic_folds_at_construction():
    c = T.as_tensor_variable(2.0) * 3 + 1
    assert c.is_constant and float(c.data) == 7.0
    v = T.exp(T.as_tensor_variable(np.zeros(3, "float32")))
    assert v.is_constant
    np.testing.assert_array_equal(v.data, [1, 1, 1])


def test_shape_folds_to_a_constant_after_specialization():
    x = T.matrix("x")
    f = theta.function([x], [x.shape[0], x.shape[0] * x.shape[1] + 1])
    a, b = f(np.ones((3, 4), "float32"))
    assert int(a) == 3 and int(b) == 13
    assert a.dtype == np.int64
    outs = _compiled_outputs(f)
    assert all(o.is_constant for o in outs)
    assert _ops(outs) == []  # no node is left to run
    # a new shape: a new specialization with its own constants
    a, b = f(np.ones((5, 2), "float32"))
    assert int(a) == 5 and int(b) == 11


def test_shape_derived_arange_folds():
    x = T.matrix("x")
    f = theta.function([x], T.arange(x.shape[0]) * 2)
    np.testing.assert_array_equal(f(np.ones((3, 2), "float32")), [0, 2, 4])
    (out,) = _compiled_outputs(f)
    assert out.is_constant


def test_shape_used_in_arithmetic_is_inlined():
    x = T.matrix("x")
    f = theta.function([x], x / x.shape[1])
    np.testing.assert_allclose(f(np.full((2, 4), 2.0, "float32")), 0.5)
    (out,) = _compiled_outputs(f)
    assert not any(type(op).__name__ == "Shape" for op in _ops([out]))


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_folded_constant_output_is_writable_copy():
    x = T.matrix("x")
    f = theta.function([x], T.arange(x.shape[0]))
    a = f(np.ones((3, 1), "float32"))
    a[0] = 10  # not the read-only constant buffer
    np.testing.assert_array_equal(f(np.ones((3, 1), "float32")), [0, 1, 2])


# ---------------------------------------------------------------------------------------------
# stabilize


def _exprs(outputs):
    return [op.expr for op in _ops(outputs) if hasattr(op, "expr")]


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_log1p_and_expm1_rewrites_fire():
    x = T.dvector("x")
    f = theta.function([x], [T.log(1 + x), T.exp(x) - 1, T.log(x + 1) * 2])
    a, b, c = f(np.array([1e-10, 0.5]))
    np.testing.assert_allclose(a, np.log1p([1e-10, 0.5]), rtol=1e-14)
    np.testing.assert_allclose(b, np.expm1([1e-10, 0.5]), rtol=1e-14)
    np.testing.assert_allclose(c, 2 * np.log1p([1e-10, 0.5]), rtol=1e-14)
    exprs = _exprs(_compiled_outputs(f))
    assert any(e.has(log1p) for e in exprs) and any(e.has(expm1) for e in exprs)
    assert not any(e.has(sp.log) or e.has(sp.exp) for e in exprs)


def test_log1p_across_nodes():
    # 1 + x and the log are separate nodes (the sum is also an output): the log still becomes log1p
    x = T.dvector("x")
    s = 1 + x
    f = theta.function([x], T.log(s))
    assert float(f(np.array([1e-12]))[0]) == pytest.approx(1e-12, rel=1e-10)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
@pytest.mark.parametrize("n", [2, 5000])  # small: the row arange is folded to a literal; large: it is not
def test_crossentropy_softmax_int_node_in_rewritten_cost(n):
    z = T.matrix("z")
    y = T.lvector("y")
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(z), y))
    f = theta.function([z, y], cost)
    zv = np.random.default_rng(0).standard_normal((n, 3)).astype("float32")
    yv = np.arange(n) % 3
    c = f(zv, yv)
    ls = zv - np.log(np.exp(zv).sum(1, keepdims=True))
    assert float(c) == pytest.approx(-ls[np.arange(n), yv].mean(), rel=1e-5)
    ops = _ops(_compiled_outputs(f))
    assert any(isinstance(op, CrossentropySoftmaxInt) for op in ops)
    assert not any(type(op).__name__ == "Softmax" for op in ops)


def test_log_softmax_rewrite():
    z = T.matrix("z")
    f = theta.function([z], T.log(T.nnet.softmax(z)))
    out = f(np.array([[999.0, 990.0, -10.0]], "float32"))
    assert np.isfinite(out).all()
    assert any(isinstance(op, LogSoftmax) for op in _ops(_compiled_outputs(f)))


def test_log_one_minus_sigmoid_becomes_softplus():
    x = T.dvector("x")
    f = theta.function([x], T.log(1 - T.nnet.sigmoid(x)))
    np.testing.assert_allclose(f(np.array([-800.0, 0.0, 800.0])), [0.0, -np.log(2), -800.0], atol=1e-300)


# ---------------------------------------------------------------------------------------------
# optimizer='None'


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_optimizer_none_still_runs_correctly(optimizer_none):
    rng = np.random.default_rng(0)
    x = T.dmatrix("x")
    y = T.lvector("y")
    W = theta.shared(rng.standard_normal((3, 4)), name="W")
    p = T.nnet.softmax(T.dot(x, W) * x.shape[1])
    cost = T.mean(T.nnet.categorical_crossentropy(p, y)) + T.sum(T.log(1 + W ** 2))
    g = theta.grad(cost, W)
    f = theta.function([x, y], [cost, g, T.exp(x) - 1], updates=[(W, W - 0.1 * g)])
    assert f.options.optimizer == "None"
    xv = rng.standard_normal((5, 3))
    yv = np.array([0, 1, 2, 3, 0])
    W0 = W.get_value()
    c, gv, e = f(xv, yv)
    theta.config.optimizer = "fast_run"
    W.set_value(W0)
    f2 = theta.function([x, y], [cost, g, T.exp(x) - 1], updates=[(W, W - 0.1 * g)])
    c2, gv2, e2 = f2(xv, yv)
    np.testing.assert_allclose(c, c2, rtol=1e-12)
    np.testing.assert_allclose(gv, gv2, rtol=1e-10)
    np.testing.assert_allclose(e, e2, rtol=1e-10)
    # the unoptimized graph really was not rewritten (no log1p/expm1)
    theta.config.optimizer = "None"
    h = theta.function([x], [T.log(1 + x), T.exp(x) - 1])
    h(np.abs(xv))
    exprs = _exprs(_compiled_outputs(h))
    assert not any(ex.has(log1p) or ex.has(expm1) for ex in exprs)


def test_optimizer_none_minibatch_givens(optimizer_none):
    data = theta.shared(np.arange(10, dtype="float64").reshape(5, 2), name="data")
    i = T.lscalar("i")
    x = T.dmatrix("x")
    f = theta.function([i], x.sum(), givens={x: data[i * 2:(i + 1) * 2]})
    assert [float(f(k)) for k in range(3)] == [6.0, 22.0, 17.0]


def test_config_optimizer_rejects_unknown():
    with pytest.raises(theta.ThetaError):
        theta.config.optimizer = "fast_compile_typo"

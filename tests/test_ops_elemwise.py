"""Elementwise ops: forward against NumPy, gradients against finite differences (float64),
broadcasting, the Python operators on variables, and the dtype rules."""
from __future__ import annotations

import math

import numpy as np
import pytest

import theta
import theta.tensor as T

# --------------------------------------------------------------------------------------------
# input domains: where each function is defined and (for gradients) smooth


def _domain(rng, kind, shape):
    if kind == "any":
        return rng.standard_normal(shape)
    if kind == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if kind == "gt-1":
        return rng.uniform(-0.8, 2.0, shape)
    if kind == "nonzero":  # away from 0, where abs/relu/sgn/1/x have their kink or pole
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)
    if kind == "offgrid":  # away from integers and half-integers (floor/ceil/round jump there)
        return rng.integers(-3, 3, shape) + rng.choice([0.1, 0.3, 0.7, 0.9], shape) + rng.uniform(-0.05, 0.05, shape)
    if kind == "ties":  # small integers as floats: comparisons see equal values
        return rng.integers(-2, 3, shape).astype("float64")
    raise AssertionError(kind)


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


_np_erf = np.vectorize(math.erf, otypes=["float64"])

# name, theta function, numpy reference, domain, gradient: "yes" | "zero" (piecewise constant)
UNARY = [
    ("neg", T.neg, np.negative, "any", "yes"),
    ("abs", T.abs_, np.abs, "nonzero", "yes"),
    ("exp", T.exp, np.exp, "any", "yes"),
    ("log", T.log, np.log, "pos", "yes"),
    ("log1p", T.log1p, np.log1p, "gt-1", "yes"),
    ("expm1", T.expm1, np.expm1, "any", "yes"),
    ("tanh", T.tanh, np.tanh, "any", "yes"),
    ("sqrt", T.sqrt, np.sqrt, "pos", "yes"),
    ("sqr", T.sqr, np.square, "any", "yes"),
    ("sigmoid", T.sigmoid, _np_sigmoid, "any", "yes"),
    ("softplus", T.softplus, lambda x: np.logaddexp(0, x), "any", "yes"),
    ("relu", T.nnet.relu, lambda x: np.maximum(x, 0), "nonzero", "yes"),
    ("leaky_relu", lambda x: T.nnet.relu(x, alpha=0.1), lambda x: np.where(x > 0, x, 0.1 * x), "nonzero", "yes"),
    ("elu", T.nnet.elu, lambda x: np.where(x > 0, x, np.expm1(x)), "nonzero", "yes"),
    ("elu_alpha", lambda x: T.nnet.elu(x, alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), "nonzero", "yes"),
    ("sin", T.sin, np.sin, "any", "yes"),
    ("cos", T.cos, np.cos, "any", "yes"),
    ("erf", T.erf, _np_erf, "any", "yes"),
    ("inv", T.inv, np.reciprocal, "nonzero", "yes"),
    ("log2", T.log2, np.log2, "pos", "yes"),
    ("log10", T.log10, np.log10, "pos", "yes"),
    ("sgn", T.sgn, np.sign, "nonzero", "zero"),
    ("round", T.round, np.round, "offgrid", "zero"),
    ("round_away", lambda x: T.round(x, "half_away_from_zero"), lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
     "offgrid", "zero"),
    ("floor", T.floor, np.floor, "offgrid", "zero"),
    ("ceil", T.ceil, np.ceil, "offgrid", "zero"),
]
UNARY_IDS = [u[0] for u in UNARY]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,tfn,npfn,domain,_g", UNARY, ids=UNARY_IDS)
def test_unary_forward(run, rng, name, tfn, npfn, domain, _g, dtype):
    x = _domain(rng, domain, (3, 4)).astype(dtype)
    out = run(tfn, x)
    assert out.dtype == dtype  # float32 in -> float32 out
    assert out.shape == x.shape
    expected = npfn(x.astype("float64"))
    tol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name,tfn,npfn,domain,grad", UNARY, ids=UNARY_IDS)
def test_unary_grad(vgrad, rng, name, tfn, npfn, domain, grad):
    x = _domain(rng, domain, (3, 4))
    vgrad(tfn, x)


@pytest.mark.parametrize("name,tfn,npfn,domain,grad", [u for u in UNARY if u[4] == "zero"],
                         ids=[u[0] for u in UNARY if u[4] == "zero"])
def test_piecewise_constant_grad_is_zero(float64, rng, name, tfn, npfn, domain, grad):
    x = T.dmatrix("x")
    # d/dx sum(f(x) * x) = f(x) when f' = 0
    xv = _domain(rng, domain, (2, 3))
    g = theta.function([x], theta.grad(T.sum(tfn(x) * x), x))(xv)
    np.testing.assert_allclose(g, npfn(xv), atol=1e-12)


def test_unary_known_values(float64):
    x = T.dvector("x")
    vals = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.0])
    f = theta.function([x], [T.round(x), T.round(x, "half_away_from_zero"), T.floor(x), T.ceil(x), T.sgn(x)])
    r_even, r_away, fl, ce, sg = f(vals)
    np.testing.assert_array_equal(r_even, [0, 2, 2, -0.0, -2, -2, 0])
    np.testing.assert_array_equal(r_away, [1, 2, 3, -1, -2, -3, 0])
    np.testing.assert_array_equal(fl, [0, 1, 2, -1, -2, -3, 0])
    np.testing.assert_array_equal(ce, [1, 2, 3, -0.0, -1, -2, 0])
    np.testing.assert_array_equal(sg, [1, 1, 1, -1, -1, -1, 0])
    with pytest.raises(ValueError):
        T.round(x, "banker")


def test_sigmoid_softplus_stable_at_extremes(float64):
    x = T.dvector("x")
    vals = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s, sp_ = theta.function([x], [T.sigmoid(x), T.softplus(x)])(vals)
    np.testing.assert_allclose(s, [0.0, _np_sigmoid(-40.0), 0.5, _np_sigmoid(40.0), 1.0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(sp_, np.logaddexp(0, vals), rtol=1e-12, atol=0)


def test_log1p_expm1_accurate_for_tiny_inputs(float64):
    x = T.dvector("x")
    vals = np.array([1e-20, -1e-18, 1e-10])
    a, b = theta.function([x], [T.log1p(x), T.expm1(x)])(vals)
    np.testing.assert_allclose(a, np.log1p(vals), rtol=1e-14)
    np.testing.assert_allclose(b, np.expm1(vals), rtol=1e-14)


# --------------------------------------------------------------------------------------------
# binary and ternary functions

BINARY = [
    ("add", T.add, np.add, ("any", "any"), "yes"),
    ("sub", T.sub, np.subtract, ("any", "any"), "yes"),
    ("mul", T.mul, np.multiply, ("any", "any"), "yes"),
    ("true_div", T.true_div, np.true_divide, ("any", "nonzero"), "yes"),
    ("int_div", T.int_div, np.floor_divide, ("any", "nonzero"), "zero"),
    ("mod", T.mod, np.mod, ("any", "nonzero"), "yes"),
    ("pow", T.pow, np.power, ("pos", "any"), "yes"),
    ("maximum", T.maximum, np.maximum, ("any", "any"), "yes"),
    ("minimum", T.minimum, np.minimum, ("any", "any"), "yes"),
]
BINARY_IDS = [b[0] for b in BINARY]

COMPARISONS = [
    ("eq", T.eq, np.equal), ("neq", T.neq, np.not_equal), ("lt", T.lt, np.less),
    ("gt", T.gt, np.greater), ("le", T.le, np.less_equal), ("ge", T.ge, np.greater_equal),
]
LOGICAL = [("and_", T.and_, np.logical_and), ("or_", T.or_, np.logical_or), ("xor", T.xor, np.logical_xor)]

BROADCAST_PAIRS = [((3, 5), (3, 5)), ((3, 5), (1, 5)), ((3, 5), (3, 1)), ((1, 5), (3, 1))]
PAIR_IDS = ["same", "row", "col", "outer"]


@pytest.mark.parametrize("static", [False, True], ids=["unknown_dims", "static_dims"])
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("name,tfn,npfn,domains,_g", BINARY, ids=BINARY_IDS)
def test_binary_forward(run, rng, name, tfn, npfn, domains, _g, shapes, static):
    a = _domain(rng, domains[0], shapes[0])
    b = _domain(rng, domains[1], shapes[1])
    out = run(tfn, a, b, static=static)
    assert out.dtype == "float64"
    np.testing.assert_allclose(out, npfn(a, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,tfn,npfn,domains,_g", BINARY, ids=BINARY_IDS)
def test_binary_forward_float32(run, rng, name, tfn, npfn, domains, _g):
    a = _domain(rng, domains[0], (3, 5)).astype("float32")
    b = _domain(rng, domains[1], (1, 5)).astype("float32")
    out = run(tfn, a, b)
    assert out.dtype == "float32"
    np.testing.assert_allclose(out, npfn(a.astype("float64"), b.astype("float64")), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("name,tfn,npfn,domains,_g", BINARY, ids=BINARY_IDS)
def test_binary_grad(vgrad, rng, name, tfn, npfn, domains, _g, shapes):
    a = _domain(rng, domains[0], shapes[0])
    b = _domain(rng, domains[1], shapes[1])
    if name in ("maximum", "minimum"):
        b = b + 0.05 * np.sign(b - a + 1e-3)  # keep clear of ties, where the gradient jumps
    vgrad(tfn, a, b)


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS[1:], ids=PAIR_IDS[1:])
@pytest.mark.parametrize("name,tfn,npfn,domains,_g", [b for b in BINARY if b[4] == "yes"],
                         ids=[b[0] for b in BINARY if b[4] == "yes"])
def test_binary_grad_declared_broadcastable(static_grad, rng, name, tfn, npfn, domains, _g, shapes):
    """Inputs declared with their exact shapes (a (1, 5) input is a T.row): the gradient of the
    broadcast input must be summed back to its declared shape."""
    a = _domain(rng, domains[0], shapes[0])
    b = _domain(rng, domains[1], shapes[1])
    if name in ("maximum", "minimum"):
        b = b + 0.05 * np.sign(b - a + 1e-3)
    static_grad(tfn, a, b)


def _mul4(a, b, c, d):
    return a * b * c * d


@pytest.mark.parametrize("static", [False, True], ids=["unknown_dims", "static_dims"])
def test_four_way_broadcast_forward(run, rng, static):
    arrays = [rng.standard_normal(s) for s in [(2, 3), (1, 3), (2, 1), (1, 1)]]
    out = run(_mul4, *arrays, static=static)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, arrays[0] * arrays[1] * arrays[2] * arrays[3], rtol=1e-12)
    # T.mul with four operands is one n-ary node
    np.testing.assert_allclose(run(T.mul, *arrays, static=static), out, rtol=1e-12)


def test_four_way_broadcast_grad(vgrad, static_grad, rng):
    arrays = [rng.standard_normal(s) for s in [(2, 3), (1, 3), (2, 1), (1, 1)]]
    vgrad(_mul4, *arrays)
    vgrad(T.mul, *arrays)
    grads = static_grad(_mul4, *arrays)
    assert [g.shape for g in grads] == [(2, 3), (1, 3), (2, 1), (1, 1)]


def test_broadcast_grad_against_numpy(float64):
    """The exact sums: d/db sum(a * b) for b of shape (1, 5) is a summed over rows."""
    a, b = T.dmatrix("a"), T.drow("b")
    av = np.arange(15.0).reshape(3, 5)
    bv = np.arange(5.0).reshape(1, 5) + 1
    ga, gb = theta.function([a, b], theta.grad(T.sum(a * b), [a, b]))(av, bv)
    np.testing.assert_allclose(ga, np.broadcast_to(bv, (3, 5)))
    np.testing.assert_allclose(gb, av.sum(axis=0, keepdims=True))
    c = T.dcol("c")
    gc = theta.function([a, c], theta.grad(T.sum(a + c), c))(av, np.ones((3, 1)))
    np.testing.assert_allclose(gc, np.full((3, 1), 5.0))


def test_broadcast_grad_of_unevaluated_graph(float64):
    """The gradient graph before any rewrite (SumTo decides its axes from the runtime shapes)
    evaluated op by op, for inputs whose broadcast dims are only known at run time."""
    from theta.runtime.reference import evaluate
    a, b = T.dmatrix("a"), T.dmatrix("b")
    ga, gb = theta.grad(T.sum(a * b), [a, b])
    av, bv = np.arange(15.0).reshape(3, 5), np.arange(5.0).reshape(1, 5) + 1
    ra, rb = evaluate([ga, gb], {a: av, b: bv})
    np.testing.assert_allclose(ra, np.broadcast_to(bv, (3, 5)))
    np.testing.assert_allclose(rb, av.sum(axis=0, keepdims=True))
    ra, rb = evaluate([ga, gb], {a: av, b: bv.reshape(5, 1)[:3]})
    np.testing.assert_allclose(rb, (av * 1).sum(axis=1, keepdims=True))


def test_one_function_many_broadcast_patterns(float64, rng):
    """A gradient compiled once with unknown dims, called with different broadcast patterns:
    each shape signature gets its own specialization, with the right axes summed."""
    a, b = T.dmatrix("a"), T.dmatrix("b")
    f = theta.function([a, b], theta.grad(T.sum(a * b * 2.0), [a, b]))
    for sa, sb in [((3, 5), (1, 5)), ((3, 5), (3, 1)), ((3, 5), (3, 5)), ((1, 5), (3, 1)), ((1, 1), (2, 3))]:
        av, bv = rng.standard_normal(sa), rng.standard_normal(sb)
        ga, gb = f(av, bv)
        full = np.broadcast_shapes(sa, sb)
        np.testing.assert_allclose(ga, 2 * np.broadcast_to(bv, full).sum(
            axis=tuple(k for k in range(2) if sa[k] == 1 and full[k] != 1), keepdims=True), rtol=1e-12)
        np.testing.assert_allclose(gb, 2 * np.broadcast_to(av, full).sum(
            axis=tuple(k for k in range(2) if sb[k] == 1 and full[k] != 1), keepdims=True), rtol=1e-12)


def test_lower_rank_operand_is_left_padded(run, vgrad, rng):
    """(3, 5) + (5,) and matrix * scalar broadcast like NumPy."""
    a, v, s = rng.standard_normal((3, 5)), rng.standard_normal(5), np.float64(1.7)
    np.testing.assert_allclose(run(T.add, a, v), a + v, rtol=1e-12)
    np.testing.assert_allclose(run(T.mul, a, s), a * s, rtol=1e-12)
    vgrad(T.add, a, v)
    vgrad(T.mul, a, s)
    vgrad(lambda x, y: x * y, v, a)


def test_broadcast_mismatch_raises(float64):
    x = T.dmatrix("x", shape=(3, 5))
    y = T.dmatrix("y", shape=(4, 5))
    with pytest.raises(ValueError, match="broadcast"):
        x + y
    u, w = T.dmatrix("u"), T.dmatrix("w")
    f = theta.function([u, w], u + w)
    with pytest.raises(ValueError):
        f(np.zeros((3, 5)), np.zeros((4, 5)))


@pytest.mark.parametrize("name,tfn,npfn", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparison_forward(run, rng, name, tfn, npfn):
    a = _domain(rng, "ties", (3, 5))
    b = _domain(rng, "ties", (1, 5))
    out = run(tfn, a, b)
    assert out.dtype == "bool"
    np.testing.assert_array_equal(out, npfn(a, b))
    # against a Python number and with integer inputs
    np.testing.assert_array_equal(run(lambda x: tfn(x, 0), a), npfn(a, 0))
    ai = a.astype("int32")
    out = run(tfn, ai, b.astype("int64"))
    assert out.dtype == "bool"
    np.testing.assert_array_equal(out, npfn(ai, b))


@pytest.mark.parametrize("name,tfn,npfn", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparison_has_no_gradient(float64, name, tfn, npfn):
    x = T.dvector("x")
    g = theta.function([x], theta.grad(T.sum(T.cast(tfn(x, 0.0), "float64") + 0 * x), x))(np.array([-1.0, 0.5]))
    np.testing.assert_array_equal(g, [0.0, 0.0])


@pytest.mark.parametrize("name,tfn,npfn", LOGICAL, ids=[c[0] for c in LOGICAL])
def test_logical_forward(run, rng, name, tfn, npfn):
    a = rng.random((3, 4)) > 0.5
    b = rng.random((1, 4)) > 0.5
    out = run(tfn, a, b)
    assert out.dtype == "bool"
    np.testing.assert_array_equal(out, npfn(a, b))
    # nonzero numbers count as true
    x = rng.integers(-1, 2, (3, 4)).astype("int32")
    np.testing.assert_array_equal(run(tfn, x, b), npfn(x, b))


def test_invert(run, rng):
    a = rng.random((3, 4)) > 0.5
    out = run(T.invert, a)
    assert out.dtype == "bool"
    np.testing.assert_array_equal(out, ~a)


def test_clip_forward_and_grad(run, vgrad, rng):
    x = rng.standard_normal((4, 5)) * 2
    np.testing.assert_allclose(run(lambda v: T.clip(v, -1.0, 0.5), x), np.clip(x, -1.0, 0.5))
    lo, hi = -np.abs(rng.standard_normal((1, 5))), np.abs(rng.standard_normal((4, 1)))
    np.testing.assert_allclose(run(T.clip, x, lo, hi), np.clip(x, lo, hi), rtol=1e-12)
    # keep clear of the bounds, where the gradient jumps
    xg = np.where(np.abs(x + 1.0) < 0.05, x + 0.2, x)
    xg = np.where(np.abs(xg - 0.5) < 0.05, xg + 0.2, xg)
    vgrad(lambda v: T.clip(v, -1.0, 0.5), xg)
    vgrad(T.clip, xg, lo - 0.01, hi + 0.01)


def test_clip_grad_at_bounds_passes_through(float64):
    """Theano's convention: at a bound the gradient w.r.t. x is 1 (the tie goes to x)."""
    x = T.dvector("x")
    g = theta.function([x], theta.grad(T.sum(T.clip(x, -1.0, 1.0)), x))(np.array([-1.0, 1.0, 0.0, -2.0, 2.0]))
    np.testing.assert_array_equal(g, [1.0, 1.0, 1.0, 0.0, 0.0])


def test_maximum_minimum_grad_at_ties_goes_to_one_side(float64):
    x, y = T.dvector("x"), T.dvector("y")
    for op in (T.maximum, T.minimum):
        gx, gy = theta.function([x, y], theta.grad(T.sum(op(x, y)), [x, y]))(np.array([1.0, 2.0]), np.array([1.0, 3.0]))
        np.testing.assert_array_equal(gx + gy, [1.0, 1.0])  # never counted twice, never lost


@pytest.mark.parametrize("cond_dtype", ["bool", "float64", "int32"])
def test_switch_forward(run, rng, cond_dtype):
    c = rng.integers(0, 2, (3, 4)).astype(cond_dtype)
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((1, 4))
    out = run(T.switch, c, a, b)
    assert out.dtype == "float64"
    np.testing.assert_array_equal(out, np.where(c != 0, a, b))
    np.testing.assert_array_equal(run(lambda cc, aa: T.switch(cc, aa, 0), c, a), np.where(c != 0, a, 0))


def test_switch_grad(vgrad, static_grad, rng):
    c = (rng.random((3, 4)) > 0.5).astype("float64")
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((1, 4))
    vgrad(lambda aa, bb: T.switch(T.as_tensor_variable(c), aa, bb), a, b)
    # the condition itself is piecewise constant
    vgrad(T.switch, c, a, b)
    cv = T.as_tensor_variable(c > 0)
    static_grad(lambda aa, bb: T.switch(cv, aa * aa, bb), a, b)


def test_switch_grad_exact(float64):
    c = T.bvector("c")
    a, b = T.dvector("a"), T.dvector("b")
    ga, gb = theta.function([c, a, b], theta.grad(T.sum(T.switch(c, a, b) * 3.0), [a, b]))(
        np.array([1, 0, 1], "int8"), np.ones(3), np.ones(3))
    np.testing.assert_array_equal(ga, [3.0, 0.0, 3.0])
    np.testing.assert_array_equal(gb, [0.0, 3.0, 0.0])


def test_expressions_that_fold_to_constants_keep_their_shape(run, float64):
    """sympy folds 0 * x and x ** 0 to numbers; the result is still an array shaped like x and
    its gradient is zero, not an error (a zero weight-decay coefficient must just work)."""
    xv = np.arange(6.0).reshape(2, 3)
    for fn, value in ((lambda v: 0 * v, 0.0), (lambda v: v * 0.0, 0.0), (lambda v: v ** 0, 1.0),
                      (lambda v: T.mul(v, v.T.T, 0), 0.0)):
        out = run(fn, xv)
        assert out.shape == (2, 3) and out.dtype == "float64"
        np.testing.assert_array_equal(out, np.full((2, 3), value))
    x = T.dmatrix("x")
    g = theta.function([x], theta.grad(T.sum(x) + 0.0 * T.sum(x ** 2), x))(xv)
    np.testing.assert_array_equal(g, np.ones((2, 3)))
    g = theta.function([x], theta.grad(T.sum(0 * x), x))(xv)
    np.testing.assert_array_equal(g, np.zeros((2, 3)))


def test_integer_division_and_mod_follow_python(run):
    a = np.array([7, -7, 7, -7, 0], dtype="int64")
    b = np.array([2, 2, -2, -2, 3], dtype="int64")
    q, r = run(lambda x, y: T.int_div(x, y), a, b), run(T.mod, a, b)
    assert q.dtype == "int64" and r.dtype == "int64"
    np.testing.assert_array_equal(q, [3, -4, -4, 3, 0])
    np.testing.assert_array_equal(r, [1, 1, -1, -1, 0])
    np.testing.assert_array_equal(q * b + r, a)
    fa = a.astype("float64") + 0.5
    np.testing.assert_array_equal(run(T.int_div, fa, b.astype("float64")), np.floor_divide(fa, b))
    np.testing.assert_array_equal(run(T.mod, fa, b.astype("float64")), np.mod(fa, b))


def test_pow_integer_exponents_of_negative_bases(run, vgrad, rng):
    x = rng.standard_normal((3, 4))
    for k in (2, 3, -1, 0.5):
        base = np.abs(x) + 0.1 if k == 0.5 else x
        np.testing.assert_allclose(run(lambda v: v ** k, base), base ** k, rtol=1e-12)
    vgrad(lambda v: v ** 3, x)
    vgrad(lambda v: v ** -2, np.abs(x) + 0.3)
    vgrad(lambda v: 2.0 ** v, x)


@pytest.mark.parametrize("src,dst", [("float64", "int32"), ("float64", "float32"), ("float32", "float64"),
                                     ("int64", "int8"), ("int32", "float64"), ("bool", "int64"),
                                     ("float64", "bool"), ("int64", "uint8")])
def test_cast_forward(run, rng, src, dst):
    x = (rng.standard_normal((3, 4)) * 50).astype(src) if src != "bool" else rng.random((3, 4)) > 0.5
    out = run(lambda v: T.cast(v, dst), x)
    assert out.dtype == dst
    np.testing.assert_array_equal(out, x.astype(dst))
    assert run(lambda v: v.astype(dst), x).dtype == dst


def test_cast_grad(float64, rng):
    x = T.dmatrix("x")
    xv = rng.standard_normal((3, 4))
    # float -> float casts pass the gradient through (cast back to the input's dtype)
    g = theta.function([x], theta.grad(T.sum(T.cast(x, "float32") * 3), x))(xv)
    assert g.dtype == "float64"
    np.testing.assert_array_equal(g, np.full_like(xv, 3.0))
    # through an integer cast nothing flows
    g = theta.function([x], theta.grad(T.sum(T.cast(T.cast(x, "int32"), "float64")) + T.sum(x), x))(xv)
    np.testing.assert_array_equal(g, np.ones_like(xv))


# --------------------------------------------------------------------------------------------
# the Python operators on variables (the same lambda runs on NumPy arrays and on variables)

OPERATORS = [
    ("add", lambda x, y: x + y), ("radd", lambda x, y: 2.5 + y), ("sub", lambda x, y: x - y),
    ("rsub", lambda x, y: 1.0 - x), ("mul", lambda x, y: x * y), ("rmul", lambda x, y: 3 * x),
    ("truediv", lambda x, y: x / y), ("rtruediv", lambda x, y: 2.0 / y),
    ("floordiv", lambda x, y: x // y), ("rfloordiv", lambda x, y: 5 // y),
    ("mod", lambda x, y: x % y), ("rmod", lambda x, y: 5.5 % y),
    ("pow", lambda x, y: abs(x) ** y), ("pow_int", lambda x, y: x ** 2), ("rpow", lambda x, y: 2 ** x),
    ("neg", lambda x, y: -x), ("abs", lambda x, y: abs(x)),
    ("lt", lambda x, y: x < y), ("le", lambda x, y: x <= y), ("gt", lambda x, y: x > y),
    ("ge", lambda x, y: x >= y), ("gt_scalar", lambda x, y: x > 0), ("rlt_scalar", lambda x, y: 0 < x),
    ("and", lambda x, y: (x > 0) & (y > 0)), ("or", lambda x, y: (x > 0) | (y > 0)),
    ("xor", lambda x, y: (x > 0) ^ (y > 0)), ("invert", lambda x, y: ~(x > 0)),
    ("mixed", lambda x, y: (x * 2 - y / 3) ** 2 + abs(-x)),
]


@pytest.mark.parametrize("name,fn", OPERATORS, ids=[o[0] for o in OPERATORS])
def test_operator(run, rng, name, fn):
    a = _domain(rng, "ties", (3, 4)) + _domain(rng, "any", (3, 4)) * 0.1
    b = _domain(rng, "nonzero", (1, 4))
    out = run(fn, a, b)
    expected = fn(a, b)
    assert out.dtype == expected.dtype
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


INT_OPERATORS = [o for o in OPERATORS if o[0] in ("floordiv", "rfloordiv", "mod", "mul", "sub", "rmul", "neg", "abs",
                                                  "pow_int", "lt", "gt_scalar", "and", "invert")]


@pytest.mark.parametrize("name,fn", INT_OPERATORS, ids=[o[0] for o in INT_OPERATORS])
def test_operator_on_integers(run, rng, name, fn):
    a = rng.integers(-9, 10, (3, 4)).astype("int32")
    b = rng.choice([-3, -2, 2, 3], (1, 4)).astype("int32")
    out = run(fn, a, b)
    expected = fn(a, b)
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype)
    np.testing.assert_array_equal(out, expected)


def test_numpy_operands_on_the_left(run, rng):
    """ndarray (op) variable must build a graph, not an object array of Variables."""
    a = rng.standard_normal((3, 4))
    w = rng.standard_normal((1, 4))
    for fn in (lambda x: w + x, lambda x: w - x, lambda x: w * x, lambda x: w / x, lambda x: w < x,
               lambda x: np.float64(2.0) ** x, lambda x: np.int64(3) * x):
        out = run(fn, a)
        assert isinstance(out, np.ndarray) and out.dtype != object
        np.testing.assert_allclose(out, fn(a), rtol=1e-12)
    x = T.dmatrix("x")
    assert isinstance(w + x, theta.Variable)
    with pytest.raises(TypeError):
        np.exp(x)


def test_variable_equality_is_identity():
    x = T.dvector("x")
    assert (x == x) is True
    assert (x == T.dvector("x")) is False
    with pytest.raises(ValueError):
        bool(x > 0)


# --------------------------------------------------------------------------------------------
# dtype rules


@pytest.mark.parametrize("int_dtype", ["int8", "int32", "int64", "uint8"])
def test_int_plus_float32_stays_float32(run, int_dtype):
    i = np.array([1, 2, 3], dtype=int_dtype)
    f = np.array([0.5, 0.25, 0.125], dtype="float32")
    for fn in (T.add, T.mul, T.sub, lambda a, b: b / a):
        out = run(fn, i, f)
        assert out.dtype == "float32"
    np.testing.assert_allclose(run(T.add, i, f), i + f)


def test_float32_with_float64_gives_float64(run):
    out = run(T.add, np.ones(2, "float32"), np.ones(2, "float64"))
    assert out.dtype == "float64"


@pytest.mark.parametrize("floatX", ["float32", "float64"])
def test_python_numbers_are_weak(floatX):
    theta.config.floatX = floatX
    f32, i8, i32 = T.fvector(), T.bvector(), T.ivector()
    assert (f32 + 1.5).dtype == "float32"
    assert (f32 * 2).dtype == "float32"
    assert (i8 + 1).dtype == "int8"
    assert (i32 * 2).dtype == "int32"
    assert (i32 + 1.5).dtype == floatX
    assert (i32 / 2).dtype == floatX
    assert T.exp(i32).dtype == floatX
    assert T.sqrt(i8).dtype == floatX
    assert (i32 // 2).dtype == "int32"
    assert abs(i8).dtype == "int8"


def test_int_true_div_and_float_functions_of_ints(run, float64):
    a = np.array([1, 2, 7], dtype="int32")
    b = np.array([2, 4, 2], dtype="int32")
    out = run(T.true_div, a, b)
    assert out.dtype == "float64"
    np.testing.assert_allclose(out, [0.5, 0.5, 3.5])
    out = run(T.exp, a)
    assert out.dtype == "float64"
    np.testing.assert_allclose(out, np.exp(a))


@pytest.mark.parametrize("fn", [T.eq, T.neq, T.lt, T.gt, T.le, T.ge, T.and_, T.or_, T.xor],
                         ids=lambda f: f.__name__)
def test_comparisons_and_logic_give_bool(fn):
    for a, b in ((T.fvector(), T.fvector()), (T.ivector(), T.dvector()), (T.fvector(), 1.0)):
        assert fn(a, b).dtype == "bool"
    assert T.invert(T.bvector()).dtype == "bool"


def test_integer_ops_keep_integer_dtype(run):
    a = np.array([100, 27], dtype="int8")
    assert run(T.add, a, a).dtype == "int8"  # like NumPy: wraps, it does not widen
    np.testing.assert_array_equal(run(T.add, a, a), (a + a))
    b = np.array([3, 4], dtype="int16")
    out = run(T.mul, a, b)
    assert out.dtype == "int16"
    np.testing.assert_array_equal(out, a.astype("int16") * b)


def test_unknown_dtype_rejected():
    with pytest.raises(TypeError):
        T.tensor("complex64", shape=(None,))
    with pytest.raises(TypeError):
        T.cast(T.fvector(), "float16")

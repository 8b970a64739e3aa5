"""Reductions: sum/mean/max/min/prod over every kind of axis argument, argmax/argmin,
var/std; forward against NumPy, gradients against finite differences (float64), and the
accumulation dtype contract."""
from __future__ import annotations

import numpy as np
import pytest

import theta
import theta.tensor as T

AXES = [None, 0, 1, -1, 2, (0, 2), (1, 2), (0, 1, 2), (), (-1, 0)]
AXES_IDS = ["None", "0", "1", "-1", "2", "0_2", "1_2", "all", "empty", "-1_0"]

REDUCTIONS = [
    ("sum", T.sum, np.sum),
    ("mean", T.mean, np.mean),
    ("max", T.max, np.max),
    ("min", T.min, np.min),
    ("prod", T.prod, np.prod),
]
RED_IDS = [r[0] for r in REDUCTIONS]


def _np_reduce(npfn, x, axis, keepdims):
    if axis == ():
        return x.copy()  # NumPy reduces nothing over an empty axis tuple too
    return npfn(x, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
@pytest.mark.parametrize("axis", AXES, ids=AXES_IDS)
@pytest.mark.parametrize("name,tfn,npfn", REDUCTIONS, ids=RED_IDS)
def test_reduce_forward(run, rng, name, tfn, npfn, axis, keepdims):
    x = rng.uniform(0.5, 1.5, (2, 3, 4)) * rng.choice([-1, 1], (2, 3, 4))
    out = run(lambda v: tfn(v, axis=axis, keepdims=keepdims), x)
    expected = _np_reduce(npfn, x, axis, keepdims)
    assert out.shape == np.shape(expected)
    assert out.dtype == "float64"
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("name,tfn,npfn", REDUCTIONS, ids=RED_IDS)
def test_reduce_methods(run, rng, name, tfn, npfn):
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(run(lambda v: getattr(v, name)(axis=1), x), npfn(x, axis=1), rtol=1e-12)
    np.testing.assert_allclose(run(lambda v: getattr(v, name)(), x), npfn(x), rtol=1e-12)


@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), ()], ids=["None", "0", "-1", "0_2", "empty"])
@pytest.mark.parametrize("name,tfn,npfn", REDUCTIONS, ids=RED_IDS)
def test_reduce_grad(vgrad, rng, name, tfn, npfn, axis, keepdims):
    # distinct magnitudes away from 0: max/min have a unique winner, prod is well scaled
    x = rng.permutation(np.linspace(0.5, 1.5, 24)).reshape(2, 3, 4) * rng.choice([-1, 1], (2, 3, 4))
    vgrad(lambda v: tfn(v, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("shape", [(1, 5), (3, 1), (1, 1)], ids=["row", "col", "1x1"])
@pytest.mark.parametrize("name,tfn,npfn", REDUCTIONS, ids=RED_IDS)
def test_reduce_grad_over_length_one_axes(static_grad, rng, name, tfn, npfn, shape):
    """Inputs declared broadcastable (T.row, T.col): reducing over the length-1 axis."""
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)
    static_grad(lambda v: tfn(v, axis=0), x)
    static_grad(lambda v: tfn(v, axis=1, keepdims=True), x)
    static_grad(lambda v: tfn(v), x)


def test_reduce_of_broadcast_input_grad(vgrad, static_grad, rng):
    """A reduction over a broadcast sum: the gradient must come back summed to (1, 5)."""
    a, b = rng.standard_normal((3, 5)), rng.standard_normal((1, 5))
    vgrad(lambda x, y: T.sum(T.exp(x + y), axis=0), a, b)
    vgrad(lambda x, y: T.max(x * y, axis=1), a, b)
    static_grad(lambda x, y: T.mean(x * y, axis=1, keepdims=True), a, b)


# --------------------------------------------------------------------------------------------
# prod: the gradient must stay exact (no 0/0) when the input has zeros


def _np_prod_grad(x, axis):
    """d prod(x, axis) / dx by brute force: the product of the other elements."""
    g = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        y = x.copy()
        y[idx] = 1.0
        g[idx] = np.prod(y, axis=axis, keepdims=True)[tuple(0 if (axis is None or a in np.atleast_1d(axis)) else i
                                                             for a, i in enumerate(idx))]
    return g


PROD_ZERO_CASES = {
    "no_zero": [[1.5, -2.0, 3.0], [0.5, 4.0, -1.0]],
    "one_zero": [[1.5, 0.0, 3.0], [0.5, 4.0, -1.0]],
    "two_zeros_same_row": [[0.0, 0.0, 3.0], [0.5, 4.0, -1.0]],
    "zeros_in_each_row": [[0.0, 2.0, 3.0], [0.5, 0.0, 0.0]],
    "all_zero": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
}


@pytest.mark.parametrize("axis", [None, 0, 1], ids=["None", "0", "1"])
@pytest.mark.parametrize("case", list(PROD_ZERO_CASES), ids=list(PROD_ZERO_CASES))
def test_prod_grad_with_zeros(float64, case, axis):
    xv = np.array(PROD_ZERO_CASES[case])
    x = T.dmatrix("x")
    g = theta.function([x], theta.grad(T.sum(T.prod(x, axis=axis)), x))(xv)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, _np_prod_grad(xv, axis), rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", ["one_zero", "two_zeros_same_row", "zeros_in_each_row"])
def test_prod_verify_grad_with_zeros(vgrad, case):
    # prod is multilinear, so finite differences are exact-ish even at zeros
    xv = np.array(PROD_ZERO_CASES[case])
    vgrad(lambda v: T.prod(v, axis=1), xv)
    vgrad(lambda v: T.prod(v), xv)
    vgrad(lambda v: T.prod(v * v + v, axis=0), xv)


def test_prod_forward_with_zeros(run):
    xv = np.array(PROD_ZERO_CASES["one_zero"])
    np.testing.assert_array_equal(run(lambda v: T.prod(v, axis=1), xv), [0.0, -2.0])


# --------------------------------------------------------------------------------------------
# argmax / argmin


@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, 2], ids=["None", "0", "1", "-1", "2"])
@pytest.mark.parametrize("name,tfn,npfn", [("argmax", T.argmax, np.argmax), ("argmin", T.argmin, np.argmin)],
                         ids=["argmax", "argmin"])
def test_argreduce_forward(run, rng, name, tfn, npfn, axis, keepdims):
    x = rng.standard_normal((2, 3, 4))
    out = run(lambda v: tfn(v, axis=axis, keepdims=keepdims), x)
    expected = npfn(x, axis=axis, keepdims=keepdims)
    assert out.dtype == "int64"
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


def test_argmax_ties_pick_first_and_methods(run):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]])
    np.testing.assert_array_equal(run(lambda v: v.argmax(axis=1), x), [1, 0])
    np.testing.assert_array_equal(run(lambda v: v.argmin(axis=1), x), [0, 2])
    assert int(run(lambda v: v.argmax(), x)) == 1
    xi = np.array([[5, 1, 7]], dtype="int32")
    np.testing.assert_array_equal(run(lambda v: T.argmax(v, axis=1), xi), [2])


def test_argmax_has_no_gradient(float64):
    x = T.dvector("x")
    cost = T.sum(T.cast(T.argmax(x), "float64") * x)
    g = theta.function([x], theta.grad(cost, x))(np.array([1.0, 5.0, 2.0]))
    np.testing.assert_array_equal(g, [1.0, 1.0, 1.0])  # only the explicit x factor


def test_reduce_bad_axis_raises():
    x = T.dmatrix()
    with pytest.raises(ValueError):
        T.sum(x, axis=2)
    with pytest.raises(ValueError):
        T.max(x, axis=(0, 0))
    with pytest.raises(ValueError):
        T.argmax(x, axis=-3)


# --------------------------------------------------------------------------------------------
# var / std


@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2)], ids=["None", "0", "1", "0_2"])
def test_var_std_forward(run, rng, axis, keepdims):
    x = rng.standard_normal((2, 3, 4)) * 3 + 1
    v, s = run(lambda t: [T.var(t, axis=axis, keepdims=keepdims), T.std(t, axis=axis, keepdims=keepdims)], x)
    np.testing.assert_allclose(v, np.var(x, axis=axis, keepdims=keepdims), rtol=1e-12)
    np.testing.assert_allclose(s, np.std(x, axis=axis, keepdims=keepdims), rtol=1e-12)
    np.testing.assert_allclose(run(lambda t: t.var(axis=axis), x), np.var(x, axis=axis), rtol=1e-12)
    np.testing.assert_allclose(run(lambda t: t.std(axis=axis), x), np.std(x, axis=axis), rtol=1e-12)


@pytest.mark.parametrize("axis", [None, 0, 1, -1], ids=["None", "0", "1", "-1"])
def test_var_std_grad(vgrad, rng, axis):
    x = rng.standard_normal((3, 4))
    vgrad(lambda t: T.var(t, axis=axis), x)
    vgrad(lambda t: T.std(t, axis=axis), x)


def test_var_float32_dtype(run, rng):
    x = rng.standard_normal((3, 4)).astype("float32")
    out = run(lambda t: T.var(t, axis=0), x)
    assert out.dtype == "float32"
    np.testing.assert_allclose(out, np.var(x.astype("float64"), axis=0), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# dtypes and accumulation


@pytest.mark.parametrize("name,tfn,npfn", [r for r in REDUCTIONS if r[0] != "prod"], ids=RED_IDS[:-1])
def test_float32_in_float32_out(run, rng, name, tfn, npfn):
    x = rng.standard_normal((3, 4)).astype("float32")
    for axis in (None, 1):
        out = run(lambda v: tfn(v, axis=axis), x)
        assert out.dtype == "float32"
        np.testing.assert_allclose(out, npfn(x.astype("float64"), axis=axis), rtol=1e-5, atol=1e-6)


def test_float32_prod_dtype(run):
    x = np.array([[1.5, 2.0], [0.5, 4.0]], dtype="float32")
    out = run(lambda v: T.prod(v, axis=0), x)
    assert out.dtype == "float32"
    np.testing.assert_array_equal(out, [0.75, 8.0])


def test_float32_mean_accumulates_in_float64(run):
    x = np.array([1e8, 1.0, -1e8], dtype="float32")
    out = run(T.mean, x)
    assert out.dtype == "float32"
    np.testing.assert_allclose(out, 1.0 / 3.0, rtol=1e-6)
    out = run(T.sum, x)
    assert out.dtype == "float32"
    assert float(out) == 1.0
    # also along an axis
    out = run(lambda v: T.mean(v, axis=1), x.reshape(1, 3))
    np.testing.assert_allclose(out, [1.0 / 3.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint8", "bool"])
def test_integer_sum_does_not_overflow(run, dtype):
    if dtype == "bool":
        x = np.ones(300, dtype="bool")
        expected = 300
    else:
        x = np.full(300, 100, dtype=dtype)
        expected = 30000
    out = run(T.sum, x)
    assert out.dtype in ("int64", "uint64")
    assert int(out) == expected
    out = run(lambda v: T.sum(v.reshape((3, 100)), axis=1), x)
    np.testing.assert_array_equal(out, [expected // 3] * 3)


def test_int8_prod_and_mean(run, float64):
    x = np.array([[100, 100, 2]], dtype="int8")
    out = run(lambda v: T.prod(v, axis=1), x)
    assert out.dtype == "int64"
    np.testing.assert_array_equal(out, [20000])
    out = run(T.mean, x)
    assert out.dtype == "float64"  # mean of integers is floatX
    np.testing.assert_allclose(out, 202 / 3)


def test_int_mean_is_floatX(run):
    x = np.array([1, 2], dtype="int32")
    out = run(T.mean, x)
    assert out.dtype == theta.config.floatX == "float32"
    assert float(out) == 1.5


def test_int_max_keeps_dtype(run):
    x = np.array([[-5, 3], [7, 1]], dtype="int16")
    for fn, npfn in ((T.max, np.max), (T.min, np.min)):
        out = run(lambda v: fn(v, axis=0), x)
        assert out.dtype == "int16"
        np.testing.assert_array_equal(out, npfn(x, axis=0))


def test_sum_dtype_argument(run):
    x = np.array([1.5, 2.25], dtype="float32")
    out = run(lambda v: T.sum(v, dtype="float64"), x)
    assert out.dtype == "float64"
    assert float(out) == 3.75


def test_reduce_over_empty_axis(run):
    x = np.zeros((0, 3))
    np.testing.assert_array_equal(run(lambda v: T.sum(v, axis=0), x), np.zeros(3))
    np.testing.assert_array_equal(run(lambda v: T.prod(v, axis=0), x), np.ones(3))
    with pytest.raises(ValueError):
        run(lambda v: T.max(v, axis=0), x)

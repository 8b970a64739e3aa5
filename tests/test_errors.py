"""Errors a user meets: each is a ThetaError and the builtin a NumPy user expects, raised before
any work is done, with a message naming the variable, its type and the user's line."""
import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler.errors import (DisconnectedInputError, DTypeError, GraphError, IndexingError, InputError,
                                   ShapeError, ThetaError)

HERE = "test_errors.py"


def test_hierarchy():
    assert issubclass(ShapeError, ThetaError) and issubclass(ShapeError, ValueError)
    assert issubclass(DTypeError, ThetaError) and issubclass(DTypeError, TypeError)
    assert issubclass(InputError, ThetaError) and issubclass(InputError, TypeError)
    assert issubclass(IndexingError, ThetaError) and issubclass(IndexingError, IndexError)
    assert issubclass(DisconnectedInputError, GraphError) and issubclass(GraphError, ValueError)
    assert theta.ThetaError is ThetaError
    assert theta.errors.ShapeError is ShapeError


def _counting_fn():
    """A function with an update, so a call that did any work would be visible."""
    x = T.matrix("x_in")
    counter = theta.shared(np.float32(0), name="counter")
    f = theta.function([x], x.sum(), updates=[(counter, counter + 1)], name="step")
    return f, counter


def _assert_not_run(counter):
    assert float(counter.get_value()) == 0.0


def test_wrong_rank_fails_before_any_work():
    f, counter = _counting_fn()
    with pytest.raises(ShapeError) as info:
        f(np.ones(3, "float32"))
    assert isinstance(info.value, ValueError) and isinstance(info.value, ThetaError)
    msg = str(info.value)
    assert "'x_in'" in msg and "float32" in msg and "(3,)" in msg and HERE in msg and "step" in msg
    _assert_not_run(counter)
    f(np.ones((2, 2), "float32"))
    assert float(counter.get_value()) == 1.0


def test_wrong_static_shape():
    x = T.matrix("x3", shape=(None, 3))
    f = theta.function([x], x * 2)
    with pytest.raises(ShapeError) as info:
        f(np.ones((2, 4), "float32"))
    msg = str(info.value)
    assert "'x3'" in msg and "(2, 4)" in msg and "3" in msg and HERE in msg


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_wrong_dtype_fails_before_any_work():
    f, counter = _counting_fn()
    for bad in (np.ones((2, 2), "float64"), np.ones((2, 2), "int64")):
        with pytest.raises(DTypeError) as info:
            f(bad)
        assert isinstance(info.value, TypeError)
        msg = str(info.value)
        assert "'x_in'" in msg and "float32" in msg and str(bad.dtype) in msg and HERE in msg
    with pytest.raises(DTypeError):
        f("not numbers")
    with pytest.raises(DTypeError):
        f([[1.0, 2.0], [3.0]])  # ragged
    _assert_not_run(counter)


def test_float64_to_float32_needs_allow_input_downcast():
    x = T.fvector("xf")
    f = theta.function([x], x * 2)
    with pytest.raises(DTypeError, match="allow_input_downcast"):
        f(np.array([1.0, 2.0]))
    g = theta.function([x], x * 2, allow_input_downcast=True)
    out = g(np.array([1.0, 2.0]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [2, 4])
    # widening is always fine
    xd = T.dvector("xd")
    assert theta.function([xd], xd * 2)(np.ones(2, "float32")).dtype == np.float64


def test_python_values_for_integer_inputs():
    i = T.iscalar("i32")
    f = theta.function([i], i * 2)
    assert int(f(3)) == 6 and int(f(3.0)) == 6
    with pytest.raises(DTypeError, match="'i32'"):
        f(2.5)
    with pytest.raises(DTypeError, match="'i32'"):
        f(2 ** 40)  # would wrap around in int32
    with pytest.raises(DTypeError):
        f(np.int64(3))  # an int64 array is not silently narrowed


def test_unknown_keyword_fails_before_any_work():
    f, counter = _counting_fn()
    with pytest.raises(InputError) as info:
        f(np.ones((2, 2), "float32"), y=3)
    assert isinstance(info.value, TypeError)
    assert "'y'" in str(info.value) and "x_in" in str(info.value)
    _assert_not_run(counter)


def test_missing_input_fails_before_any_work():
    f, counter = _counting_fn()
    with pytest.raises(InputError) as info:
        f()
    msg = str(info.value)
    assert "'x_in'" in msg and HERE in msg
    _assert_not_run(counter)


def test_too_many_and_duplicate_arguments():
    f, counter = _counting_fn()
    with pytest.raises(InputError):
        f(np.ones((2, 2), "float32"), np.ones((2, 2), "float32"))
    with pytest.raises(InputError):
        f(np.ones((2, 2), "float32"), x_in=np.ones((2, 2), "float32"))
    _assert_not_run(counter)


def test_symbolic_value_as_argument():
    f, counter = _counting_fn()
    with pytest.raises(InputError):
        f(T.matrix("sym"))
    _assert_not_run(counter)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_shape_mismatch_at_call_time_names_both_operands_and_the_line():
    x = T.matrix("xa")
    decl = f"{HERE}:{_lineno() - 1}"
    y = T.matrix("yb")
    counter = theta.shared(np.float32(0), name="counter")
    s = x + y  # the line the error should point at
    line = f"{HERE}:{_lineno() - 1}"
    f = theta.function([x, y], s, updates=[(counter, counter + 1)])
    with pytest.raises(ShapeError) as info:
        f(np.ones((2, 3), "float32"), np.ones((3, 2), "float32"))
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "'xa'" in msg and "'yb'" in msg and "[2, 3]" in msg and "[3, 2]" in msg
    assert line in msg and f"'xa' float32[2, 3] (created at {decl}" in msg.replace("tests/", "")
    _assert_not_run(counter)
    # a shape that broadcasts is fine (NumPy semantics)
    out = f(np.ones((2, 3), "float32"), np.ones((1, 3), "float32"))
    assert out.shape == (2, 3)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_dot_shape_mismatch_at_call_time():
    a = T.matrix("a")
    b = T.matrix("b")
    f = theta.function([a, b], T.dot(a, b))
    with pytest.raises(ShapeError) as info:
        f(np.ones((2, 3), "float32"), np.ones((2, 3), "float32"))
    assert "'a'" in str(info.value) and "'b'" in str(info.value)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_index_out_of_range_fails_before_updates():
    v = T.vector("vec")
    i = T.lscalar("i")
    counter = theta.shared(np.float32(0), name="counter")
    f = theta.function([v, i], v[i], updates=[(counter, counter + 1)])
    with pytest.raises(IndexingError) as info:
        f(np.ones(4, "float32"), 4)
    assert "'vec'" in str(info.value) and HERE in str(info.value)
    _assert_not_run(counter)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_crossentropy_label_out_of_range_fails_before_updates():
    z = T.matrix("z")
    y = T.lvector("y")
    counter = theta.shared(np.float32(0), name="counter")
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(z), y))
    f = theta.function([z, y], cost, updates=[(counter, counter + 1)])
    with pytest.raises(IndexError):
        f(np.zeros((2, 3), "float32"), np.array([0, 3]))
    _assert_not_run(counter)


def test_graph_errors_at_compile_time():
    x = T.vector("x")
    v = T.vector("v_missing")
    with pytest.raises(GraphError, match="v_missing"):
        theta.function([x], x + v)
    with pytest.raises(InputError):
        theta.function(x, x)  # inputs must be a list
    W = theta.shared(np.zeros(2, "float32"), name="W")
    with pytest.raises(InputError):
        theta.function([W], W * 2)
    with pytest.raises(ShapeError):
        theta.function([x], x, updates=[(W, T.matrix("m"))], on_unused_input="ignore")
    with pytest.raises(InputError):
        theta.function([x], x, bogus_option=1)


def test_update_with_wrong_dtype_kind():
    W = theta.shared(np.zeros(2, "int64"), name="Wi")
    x = T.fvector("x")
    with pytest.raises(DTypeError, match="Wi"):
        theta.function([x], [], updates=[(W, W + x)])


def test_symbolic_truth_value_is_an_error():
    x = T.scalar("x")
    with pytest.raises(ThetaError):
        if x > 0:
            pass


# ---------------------------------------------------------------------------------------------
# dtype: a float32 graph stays float32


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_float32_graph_never_becomes_float64():
    x = T.fmatrix("x")
    v = T.fvector("v")
    i = T.lvector("i")
    k = T.iscalar("k")
    exprs = [x * 2.5, x + 1, x / 2, 2 / x, x / k, v * i, v / i.shape[0], i * 0.5, i / 2, T.sqrt(i), T.mean(i),
             T.exp(k), x.mean(), x.sum(), x ** 2, x ** 0.5, T.dot(x, v), T.switch(v > 0, v, 0.0),
             T.clip(v, 0, 1.5), T.maximum(v, 0.5), T.nnet.softmax(x), T.nnet.sigmoid(v), x.std(), x * k,
             T.mean(x) * i, v - v.mean(), x + np.float64(1.5), T.arange(k) * 0.5,
             theta.grad(T.sum(x * x.shape[0] * 0.1), x), v * (v > 0), T.nnet.softplus(v)]
    for e in exprs:
        assert e.dtype == "float32", e
    f = theta.function([x, v, i, k], exprs, on_unused_input="ignore")
    outs = f(np.ones((3, 3), "float32"), np.ones(3, "float32"), np.arange(1, 4), 3)
    for e, o in zip(exprs, outs):
        assert o.dtype == np.float32, e


def test_float64_stays_float64():
    x = T.dvector("x")
    f = theta.function([x], [x * 2.5, T.mean(x), T.nnet.sigmoid(x)])
    assert all(o.dtype == np.float64 for o in f(np.ones(3)))


def _lineno():
    import inspect
    return inspect.currentframe().f_back.f_lineno

"""theta.function: the calling convention and its Theano semantics (not per-op math)."""
import warnings

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler.errors import GraphError, IndexingError, ThetaError


def f32(a):
    return np.asarray(a, dtype="float32")


# ---------------------------------------------------------------------------------------------
# outputs


def test_single_output_is_an_array():
    x = T.vector("x")
    f = theta.function([x], x * 2)
    out = f(f32([1, 2, 3]))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [2, 4, 6])


def test_list_of_outputs_is_a_list():
    x = T.vector("x")
    f = theta.function([x], [x * 2, x.sum()])
    out = f(f32([1, 2, 3]))
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_allclose(out[0], [2, 4, 6])
    np.testing.assert_allclose(out[1], 6)


def test_one_element_list_of_outputs_is_a_list():
    x = T.vector("x")
    out = theta.function([x], [x + 1])(f32([1]))
    assert isinstance(out, list) and len(out) == 1


def test_no_outputs_returns_empty_list_and_runs_updates():
    x = T.scalar("x")
    acc = theta.shared(np.float32(0), name="acc")
    f = theta.function([x], None, updates=[(acc, acc + x)])
    assert f(1.5) == []
    f(2.0)
    assert acc.get_value() == pytest.approx(3.5)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_same_output_twice():
    x = T.vector("x")
    y = x * 3
    a, b = theta.function([x], [y, y])(f32([1, 2]))
    np.testing.assert_allclose(a, [3, 6])
    np.testing.assert_allclose(b, [3, 6])
    a[0] = 100  # the two outputs are distinct arrays
    assert b[0] == 3


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_output_can_be_an_input_or_a_constant():
    x = T.vector("x")
    f = theta.function([x], [x, T.as_tensor_variable(3.0)])
    xv = f32([1, 2])
    out_x, out_c = f(xv)
    np.testing.assert_array_equal(out_x, xv)
    assert float(out_c) == 3.0


# ---------------------------------------------------------------------------------------------
# updates


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
@pytest.mark.parametrize("as_dict", [True, False])
def test_updates_applied_after_outputs(as_dict):
    x = T.vector("x")
    W = theta.shared(f32([1, 2, 3]), name="W")
    out = (W * x).sum()
    upd = W - 0.5 * x
    f = theta.function([x], [out, W * 1], updates={W: upd} if as_dict else [(W, upd)])
    xv = f32([1, 1, 1])
    o, w_seen = f(xv)
    # the outputs see the value of W from before the call
    assert float(o) == pytest.approx(6.0)
    np.testing.assert_allclose(w_seen, [1, 2, 3])
    np.testing.assert_allclose(W.get_value(), [0.5, 1.5, 2.5])
    o, _ = f(xv)
    assert float(o) == pytest.approx(4.5)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_updates_read_old_values_of_each_other():
    a = theta.shared(f32([1.0]), name="a")
    b = theta.shared(f32([2.0]), name="b")
    swap = theta.function([], [], updates=[(a, b), (b, a)])
    swap()
    np.testing.assert_array_equal(a.get_value(), [2.0])
    np.testing.assert_array_equal(b.get_value(), [1.0])
    swap()
    np.testing.assert_array_equal(a.get_value(), [1.0])
    np.testing.assert_array_equal(b.get_value(), [2.0])


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_update_that_is_another_shared_value_does_not_alias_it():
    a = theta.shared(f32([1.0, 2.0]), name="a")
    b = theta.shared(f32([5.0, 6.0]), name="b")
    theta.function([], [], updates=[(a, b)])()
    np.testing.assert_array_equal(a.get_value(), [5.0, 6.0])
    b.set_value(f32([0, 0]))
    # a holds its own copy: writing b does not show through
    np.testing.assert_array_equal(a.get_value(), [5.0, 6.0])
    a.get_value(borrow=True)[0] = 42
    np.testing.assert_array_equal(b.get_value(), [0, 0])


def test_update_with_python_float_keeps_shared_dtype():
    W = theta.shared(f32([1, 2]), name="W")
    theta.function([], [], updates=[(W, W * 0.5)])()
    assert W.get_value().dtype == np.float32
    np.testing.assert_allclose(W.get_value(), [0.5, 1.0])


def test_update_of_non_shared_is_an_error():
    x = T.vector("x")
    with pytest.raises(GraphError):
        theta.function([x], x, updates=[(x, x + 1)])


# ---------------------------------------------------------------------------------------------
# givens: minibatches as symbolic slices of a shared dataset


def _minibatch_fn(n_rows=10, bs=4):
    data_v = np.arange(n_rows * 3, dtype="float32").reshape(n_rows, 3)
    labels_v = (np.arange(n_rows) % 3).astype("int64")
    data = theta.shared(data_v, name="data")
    labels = theta.shared(labels_v, name="labels")
    i = T.lscalar("i")
    x = T.matrix("x")
    y = T.lvector("y")
    out = [x.sum(axis=1), y * 2, x.shape[0]]
    f = theta.function([i], out, givens={x: data[i * bs:(i + 1) * bs], y: labels[i * bs:(i + 1) * bs]})
    return f, data_v, labels_v


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_givens_minibatches_including_partial_last_batch():
    bs = 4
    f, data_v, labels_v = _minibatch_fn(10, bs)
    n_batches = -(-10 // bs)
    for k in range(n_batches):
        rows, ys, n = f(k)
        want = data_v[k * bs:(k + 1) * bs]
        np.testing.assert_allclose(rows, want.sum(axis=1))
        np.testing.assert_array_equal(ys, labels_v[k * bs:(k + 1) * bs] * 2)
        assert int(n) == len(want)
    assert int(f(n_batches - 1)[2]) == 2


def test_givens_batches_of_equal_size_share_one_specialization():
    f, data_v, _ = _minibatch_fn(10, 4)
    f(0)
    f(1)
    assert len(f._specs) == 1
    (spec,) = f._specs.values()
    assert len(spec._variants) == 1  # both full batches run the same compiled program
    f(2)  # the partial batch: one more variant, still one shape signature
    assert len(f._specs) == 1
    assert len(spec._variants) == 2
    f(0)
    f(1)
    f(2)
    assert len(spec._variants) == 2
    # and the results after the cache hits are still the right rows
    np.testing.assert_allclose(f(1)[0], data_v[4:8].sum(axis=1))


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_givens_with_training_update():
    data_v = np.random.default_rng(0).standard_normal((6, 2)).astype("float32")
    data = theta.shared(data_v, name="data")
    w = theta.shared(f32([0.0, 0.0]), name="w")
    i = T.lscalar("i")
    x = T.matrix("x")
    cost = T.sum(T.dot(x, w) - 1.0) ** 2
    gw = theta.grad(cost, w)
    f = theta.function([i], cost, updates=[(w, w - 0.01 * gw)], givens={x: data[i * 3:(i + 1) * 3]})
    w0 = w.get_value()
    c = f(1)
    xb = data_v[3:6]
    assert float(c) == pytest.approx(float(np.sum(xb @ w0 - 1.0) ** 2), rel=1e-5)
    g_np = 2 * np.sum(xb @ w0 - 1.0) * xb.sum(axis=0)
    np.testing.assert_allclose(w.get_value(), w0 - 0.01 * g_np, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# inputs: defaults, keywords, Python values


def test_in_default_value_and_keywords():
    a = T.scalar("a")
    b = T.scalar("b")
    f = theta.function([a, theta.In(b, value=2.0)], a * 10 + b)
    assert float(f(3.0)) == pytest.approx(32.0)
    assert float(f(3.0, 4.0)) == pytest.approx(34.0)
    assert float(f(3.0, b=5.0)) == pytest.approx(35.0)
    assert float(f(b=1.0, a=2.0)) == pytest.approx(21.0)
    assert float(f(a=2.0)) == pytest.approx(22.0)


def test_in_with_explicit_name():
    a = T.scalar("a")
    f = theta.function([theta.In(a, name="alpha", value=1.0)], a * 2)
    assert float(f(alpha=3.0)) == pytest.approx(6.0)
    assert float(f()) == pytest.approx(2.0)


def test_default_value_is_not_shared_state():
    x = T.vector("x")
    default = f32([1, 2])
    f = theta.function([theta.In(x, value=default)], x + 1)
    np.testing.assert_allclose(f(), [2, 3])
    np.testing.assert_allclose(f(f32([5, 5])), [6, 6])
    np.testing.assert_allclose(f(), [2, 3])


def test_python_scalars_and_lists_are_accepted():
    s = T.scalar("s")
    n = T.iscalar("n")
    v = T.vector("v")
    m = T.matrix("m")
    f = theta.function([s, n, v, m], [s * n + v.sum(), m.sum(axis=0)])
    a, b = f(2, 3, [1, 2, 3], [[1, 2], [3, 4]])
    assert float(a) == pytest.approx(12.0)
    np.testing.assert_allclose(b, [4, 6])
    assert a.dtype == np.float32 and b.dtype == np.float32
    a, _ = f(0.5, 4, (1.0,), [[0.0]])
    assert float(a) == pytest.approx(3.0)


@pytest.mark.parametrize("mode", ["raise", "warn", "ignore"])
def test_on_unused_input(mode):
    x = T.vector("x")
    unused = T.vector("unused")
    if mode == "raise":
        with pytest.raises(ThetaError, match="unused"):
            theta.function([x, unused], x * 2)
        with pytest.raises(ValueError):  # Theano's UnusedInputError is a ValueError-like error
            theta.function([x, unused], x * 2, on_unused_input="raise")
        return
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        f = theta.function([x, unused], x * 2, on_unused_input=mode)
    hits = [w for w in rec if "unused" in str(w.message)]
    assert len(hits) == (1 if mode == "warn" else 0)
    if hits:  # the warning points at the user's line, not inside theta
        assert hits[0].filename.endswith("test_function.py")
    np.testing.assert_allclose(f(f32([1, 2]), f32([7])), [2, 4])


def test_on_unused_input_rejects_unknown_mode():
    x = T.vector("x")
    y = T.vector("y")
    with pytest.raises(ValueError):
        theta.function([x, y], x, on_unused_input="sometimes")


def test_one_specialization_per_shape_signature():
    x = T.matrix("x")
    f = theta.function([x], x.sum(axis=0))
    f(np.ones((2, 3), "float32"))
    f(np.ones((2, 3), "float32") * 2)
    assert len(f._specs) == 1
    out = f(np.ones((4, 5), "float32"))
    assert len(f._specs) == 2
    assert out.shape == (5,)
    np.testing.assert_allclose(out, 4)
    f(np.ones((2, 3), "float32"))
    assert len(f._specs) == 2


def test_shared_value_shape_change_gets_a_new_specialization():
    W = theta.shared(np.ones((2, 2), "float32"), name="W")
    f = theta.function([], W.sum())
    assert float(f()) == 4
    W.set_value(np.ones((3, 3), "float32"))
    assert float(f()) == 9
    assert len(f._specs) == 2


# ---------------------------------------------------------------------------------------------
# aliasing


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_outputs_do_not_alias_inputs():
    x = T.vector("x")
    m = T.matrix("m")
    f = theta.function([x, m], [x, m.T, m[0], x.reshape((2, 2))])
    xv = f32([1, 2, 3, 4])
    mv = f32([[1, 2], [3, 4]])
    outs = f(xv, mv)
    for o in outs:
        assert not np.shares_memory(o, xv) and not np.shares_memory(o, mv)
        o[...] = -1
    np.testing.assert_array_equal(xv, [1, 2, 3, 4])
    np.testing.assert_array_equal(mv, [[1, 2], [3, 4]])


def test_outputs_do_not_alias_shared_values():
    W = theta.shared(f32([[1, 2], [3, 4]]), name="W")
    f = theta.function([], [W, W.T, W[1]])
    for o in f():
        assert not np.shares_memory(o, W.get_value(borrow=True))
        o[...] = 0
    np.testing.assert_array_equal(W.get_value(), [[1, 2], [3, 4]])


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_output_of_updated_shared_is_the_old_value_and_not_aliased():
    W = theta.shared(f32([1, 2]), name="W")
    f = theta.function([], W, updates=[(W, W + 1)])
    old = f()
    np.testing.assert_array_equal(old, [1, 2])
    np.testing.assert_array_equal(W.get_value(), [2, 3])
    old[0] = 99
    np.testing.assert_array_equal(W.get_value(), [2, 3])


def test_repeated_calls_return_fresh_arrays():
    x = T.vector("x")
    f = theta.function([x], x + 1)
    a = f(f32([1, 2]))
    b = f(f32([1, 2]))
    assert not np.shares_memory(a, b)


# ---------------------------------------------------------------------------------------------
# shared variables


def test_shared_get_value_borrow_and_set_value():
    v = f32([1, 2, 3])
    s = theta.shared(v, name="s")
    v[0] = 100  # the constructor copied
    assert s.get_value()[0] == 1
    copy = s.get_value()
    copy[1] = 50
    assert s.get_value()[1] == 2
    internal = s.get_value(borrow=True)
    assert internal is s.get_value(borrow=True)
    new = f32([7, 8, 9])
    s.set_value(new)
    new[0] = 0
    assert s.get_value()[0] == 7  # set_value copied
    mine = f32([4, 5, 6])
    s.set_value(mine, borrow=True)
    assert s.get_value(borrow=True) is mine


def test_shared_set_value_keeps_dtype_and_checks_rank_and_kind():
    s = theta.shared(f32([1, 2]), name="s")
    s.set_value(np.array([3, 4], "int16"))  # a safe cast
    assert s.get_value().dtype == np.float32
    np.testing.assert_array_equal(s.get_value(), [3, 4])
    with pytest.raises(ValueError, match="'s'"):
        s.set_value(np.zeros((2, 2), "float32"))
    n = theta.shared(np.array([1, 2], "int64"), name="n")
    with pytest.raises(TypeError, match="'n'"):
        n.set_value(np.array([1.5, 2.5]))
    np.testing.assert_array_equal(n.get_value(), [1, 2])


def test_shared_python_float_is_floatX():
    s = theta.shared(1.5, name="s")
    assert s.dtype == theta.config.floatX
    assert theta.shared(np.float64(1.5)).dtype == "float64"


def test_function_sees_set_value():
    s = theta.shared(f32([1, 2]), name="s")
    f = theta.function([], s * 2)
    np.testing.assert_allclose(f(), [2, 4])
    s.set_value(f32([5, 6]))
    np.testing.assert_allclose(f(), [10, 12])


# ---------------------------------------------------------------------------------------------
# symbolic scalar index


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_symbolic_index_positive_and_negative():
    v = T.vector("v")
    i = T.lscalar("i")
    f = theta.function([v, i], v[i])
    vals = f32([10, 11, 12, 13, 14])
    for k in range(-5, 5):
        assert float(f(vals, k)) == vals[k]


def test_symbolic_index_on_matrix_rows_and_columns():
    m = T.matrix("m")
    i = T.lscalar("i")
    j = T.lscalar("j")
    f = theta.function([m, i, j], [m[i], m[:, j], m[i, j]])
    mv = np.arange(12, dtype="float32").reshape(3, 4)
    r, c, e = f(mv, -1, 2)
    np.testing.assert_array_equal(r, mv[-1])
    np.testing.assert_array_equal(c, mv[:, 2])
    assert float(e) == mv[-1, 2]


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
@pytest.mark.parametrize("bad", [5, -6, 100])
def test_symbolic_index_out_of_range(bad):
    v = T.vector("v")
    i = T.lscalar("i")
    f = theta.function([v, i], v[i])
    with pytest.raises(IndexingError) as info:
        f(f32([1, 2, 3, 4, 5]), bad)
    assert isinstance(info.value, IndexError)
    msg = str(info.value)
    assert str(bad) in msg and "'v'" in msg and "test_function.py" in msg


def test_symbolic_index_out_of_range_after_a_good_call():
    v = T.vector("v")
    i = T.lscalar("i")
    f = theta.function([v, i], v[i])
    assert float(f(f32([1, 2, 3]), 1)) == 2
    with pytest.raises(IndexingError):
        f(f32([1, 2, 3]), 3)
    assert float(f(f32([1, 2, 3]), -3)) == 1


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_update_equal_to_an_output_does_not_alias_it():
    W = theta.shared(f32([1, 2]), name="W")
    f = theta.function([], W + 1, updates=[(W, W + 1)])  # one hash-consed node, two destinations
    out = f()
    np.testing.assert_array_equal(out, [2, 3])
    np.testing.assert_array_equal(W.get_value(), [2, 3])
    out[0] = 99
    np.testing.assert_array_equal(W.get_value(), [2, 3])


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_update_to_an_input_value_does_not_alias_the_users_array():
    W = theta.shared(f32([0, 0]), name="W")
    x = T.vector("x")
    f = theta.function([x], [], updates=[(W, x)])
    xv = f32([1, 2])
    f(xv)
    xv[0] = 50
    np.testing.assert_array_equal(W.get_value(), [1, 2])


def test_updates_are_all_or_nothing(on_backend):
    a = theta.shared(f32([0, 0]), name="a")
    r = theta.shared(np.zeros((1, 4), "float32"), name="r", broadcastable=(True, False))
    m = T.matrix("m")
    f = theta.function([m], [], updates=[(a, a + 1), (r, r + m)])
    with pytest.raises(ValueError, match="'r'"):
        f(np.ones((2, 4), "float32"))  # r cannot take 2 rows: a must not be updated either
    np.testing.assert_array_equal(a.get_value(), [0, 0])
    f(np.ones((1, 4), "float32"))
    np.testing.assert_array_equal(a.get_value(), [1, 1])
    np.testing.assert_array_equal(r.get_value(), np.ones((1, 4)))


def test_givens_with_an_expression_of_another_input():
    x = T.vector("x")
    y = T.vector("y")
    f = theta.function([y], (x ** 2).sum(), givens=[(x, y * 2)])
    assert float(f(f32([1, 2]))) == pytest.approx(20.0)


def test_givens_type_mismatch_is_an_error():
    x = T.vector("x")
    m = T.matrix("m")
    with pytest.raises(GraphError):
        theta.function([m], x * 2, givens={x: m})


def test_debugprint_prints_and_returns_a_tree(capsys):
    x = T.matrix("x")
    W = theta.shared(np.ones((2, 2), "float32"), name="W")
    e = T.exp(T.dot(x, W))
    expr = e + e.sum()
    text = theta.printing.debugprint(expr)
    assert capsys.readouterr().out == text
    lines = text.splitlines()
    assert lines[0].startswith("add") and "float32" in lines[0]
    assert any(line.startswith(" |exp") for line in lines)
    assert any(line.startswith(" | | |x") for line in lines) and any(" |W" in line for line in lines)
    assert sum("(shown above)" in line for line in lines) == 1  # the shared exp is printed once
    # to a string only
    quiet = theta.printing.debugprint([expr, x.sum()], file="str", print_type=False)
    assert capsys.readouterr().out == ""
    assert "float32" not in quiet and "Sum" in quiet
    # a compiled function prints its specialized graphs, with concrete shapes
    f = theta.function([x], expr)
    f(np.ones((3, 2), "float32"))
    compiled = theta.printing.debugprint(f, file="str")
    assert "float32[3,2]" in compiled and "specialization" in compiled
    import io
    buf = io.StringIO()
    theta.printing.debugprint(expr, file=buf)
    assert buf.getvalue() == text

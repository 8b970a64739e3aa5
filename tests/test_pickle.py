"""Pickling shared variables and compiled functions (Theano's pickle.dump(f) idiom)."""
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler.errors import DTypeError, ShapeError


def _logreg():
    rng = np.random.default_rng(0)
    x = T.matrix("x")
    y = T.lvector("y")
    W = theta.shared(np.zeros((3, 2), "float32"), name="W")
    b = theta.shared(np.zeros(2, "float32"), name="b")
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(x, W) + b), y))
    gW, gb = theta.grad(cost, [W, b])
    train = theta.function([x, y], cost, updates=[(W, W - 0.5 * gW), (b, b - 0.5 * gb)], name="train")
    X = rng.standard_normal((6, 3)).astype("float32")
    Y = np.array([0, 1, 1, 0, 1, 0])
    return train, W, b, X, Y


def test_shared_variable_roundtrip():
    W = theta.shared(np.arange(6, dtype="float32").reshape(2, 3), name="W")
    W2 = pickle.loads(pickle.dumps(W))
    assert W2 is not W
    assert W2.name == "W" and W2.dtype == "float32" and W2.ndim == 2
    np.testing.assert_array_equal(W2.get_value(), W.get_value())
    W2.set_value(np.zeros((2, 3), "float32"))
    assert W.get_value()[1, 2] == 5  # independent copies
    # broadcastable pattern survives
    r = theta.shared(np.zeros((1, 4), "float64"), name="r", broadcastable=(True, False))
    r2 = pickle.loads(pickle.dumps(r))
    assert r2.broadcastable == (True, False) and r2.dtype == "float64"
    with pytest.raises(ShapeError):
        r2.set_value(np.zeros((2, 4)))


def test_shared_value_after_updates_is_pickled():
    acc = theta.shared(np.float64(0.0), name="acc")
    f = theta.function([], [], updates=[(acc, acc + 1)])
    f()
    f()
    assert float(pickle.loads(pickle.dumps(acc)).get_value()) == 2.0


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_compiled_function_roundtrip_computes_and_updates():
    train, W, b, X, Y = _logreg()
    c0 = train(X, Y)  # train a step first: the pickle must carry the current values
    state = pickle.dumps(train)
    W_before, b_before = W.get_value(), b.get_value()
    train2 = pickle.loads(state)
    assert train2.name == "train"
    # both continue from the same state and compute the same results
    c1 = train(X, Y)
    c1b = train2(X, Y)
    assert float(c1b) == pytest.approx(float(c1), rel=1e-6)
    assert float(c1) < float(c0)
    # the loaded function updates its own (unpickled) shared variables, not the originals
    W2, b2 = train2.shared
    assert W2 is not W and W2.name == "W"
    np.testing.assert_allclose(W2.get_value(), W.get_value(), rtol=1e-6)
    train2(X, Y)
    assert not np.allclose(W2.get_value(), W.get_value())
    train(X, Y)
    np.testing.assert_allclose(W2.get_value(), W.get_value(), rtol=1e-5)
    assert not np.allclose(W_before, W.get_value()) and not np.allclose(b_before, b.get_value())


def test_function_pickled_with_its_shared_variables_keeps_identity():
    train, W, b, X, Y = _logreg()
    train2, W2, b2 = pickle.loads(pickle.dumps((train, W, b)))
    assert W2 in train2.shared and b2 in train2.shared
    before = W2.get_value()
    train2(X, Y)
    assert not np.allclose(W2.get_value(), before)  # the W2 the user got back is the one updated


def test_pickled_function_keeps_defaults_keywords_and_checks():
    x = T.fvector("x")
    decl = f"test_pickle.py:{sys._getframe().f_lineno - 1}"
    s = T.fscalar("s")
    f = theta.function([x, theta.In(s, value=2.0)], x * s, allow_input_downcast=False)
    g = pickle.loads(pickle.dumps(f))
    np.testing.assert_allclose(g(np.ones(2, "float32")), [2, 2])
    np.testing.assert_allclose(g(x=np.ones(2, "float32"), s=3.0), [3, 3])
    with pytest.raises(DTypeError) as info:
        g(np.ones(2))  # float64 into float32 still refused
    assert "'x'" in str(info.value) and decl in str(info.value)  # still the line that declared x
    single = pickle.loads(pickle.dumps(theta.function([x], x + 1)))
    assert isinstance(single(np.ones(1, "float32")), np.ndarray)
    listed = pickle.loads(pickle.dumps(theta.function([x], [x + 1])))
    assert isinstance(listed(np.ones(1, "float32")), list)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_function_with_casts_roundtrip():
    x = T.fmatrix("x")
    i = T.lvector("i")
    out = [T.cast(x, "int32") * 2 + T.cast(x.sum(), "float64"), T.cast(i, "float32") / 2, (x > 0).astype("int8")]
    f = theta.function([x, i], out)
    xv = np.array([[1.7, -2.2], [0.5, 3.0]], "float32")
    iv = np.array([1, 3])
    want = f(xv, iv)
    got = pickle.loads(pickle.dumps(f))(xv, iv)
    for w, g in zip(want, got):
        assert w.dtype == g.dtype
        np.testing.assert_array_equal(w, g)


@pytest.mark.usefixtures("on_backend")   # reference and emu (tests/conftest.py)
def test_minibatch_function_roundtrip():
    data = theta.shared(np.arange(20, dtype="float32").reshape(10, 2), name="data")
    i = T.lscalar("i")
    x = T.matrix("x")
    f = theta.function([i], x.sum(axis=1), givens={x: data[i * 4:(i + 1) * 4]})
    g = pickle.loads(pickle.dumps(f))
    for k in range(3):
        np.testing.assert_array_equal(f(k), g(k))


_CHILD = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    with open(sys.argv[1], "rb") as fh:
        f, W = pickle.load(fh)
    outs = f(np.array([[1.5, -2.5]], "float32"), np.array([1]))
    np.savez(sys.argv[2], *outs, W=W.get_value())
""")


def test_function_loads_in_a_fresh_process(tmp_path):
    # a new interpreter has none of the cast_* sympy classes or interned nodes of this one
    x = T.fmatrix("x")
    y = T.lvector("y")
    W = theta.shared(np.float32([1.0, 2.0]), name="W")
    outs = [T.cast(T.cast(x, "int16") * W, "float64"), T.nnet.sigmoid(x) + T.nnet.softplus(x),
            T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(x), y))]
    f = theta.function([x, y], outs, updates=[(W, W + 1)])
    path = tmp_path / "f.pkl"
    path.write_bytes(pickle.dumps((f, W)))
    want = f(np.array([[1.5, -2.5]], "float32"), np.array([1]))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = np.load(tmp_path / "out.npz")
    for k, w in enumerate(want):
        g = got[f"arr_{k}"]
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-6)
    np.testing.assert_array_equal(got["W"], [2.0, 3.0])  # the loaded W was updated

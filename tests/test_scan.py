"""theta.scan on the reference and emu backends: values against NumPy loops, gradients
(backpropagation through time, itself a scan) against finite differences, Theano's
shorthands, the step's kernels built once for every length, and bad input."""
import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.errors import BackendError, GraphError, ShapeError
from theta.gradient import verify_grad

rng = np.random.default_rng(0)


@pytest.fixture(autouse=True, params=["reference", "emu"])
def backend(request):
    """Every test runs with each backend as theta.config.backend (restored by conftest)."""
    theta.config.backend = request.param
    return request.param


def rnn_numpy(X, W, h0, backwards=False):
    h, out = h0, []
    for t in (range(len(X) - 1, -1, -1) if backwards else range(len(X))):
        h = np.tanh(X[t] + h @ W)
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("backwards", [False, True])
def test_rnn_values_and_gradients(backwards):
    X, W, h0 = rng.standard_normal((5, 3)), rng.standard_normal((3, 3)) * 0.5, rng.standard_normal(3)

    def rnn(x, w, h):
        H, updates = theta.scan(lambda xt, hp, w: T.tanh(xt + T.dot(hp, w)), sequences=x, outputs_info=h,
                                non_sequences=w, go_backwards=backwards)
        assert not updates
        return H

    x, w, h = T.dmatrix("x"), T.dmatrix("w"), T.dvector("h")
    got = theta.function([x, w, h], rnn(x, w, h))(X, W, h0)
    np.testing.assert_allclose(got, rnn_numpy(X, W, h0, backwards), rtol=1e-12)
    verify_grad(lambda x, w, h: rnn(x, w, h)[-1] * rnn(x, w, h).sum(), [X, W, h0])


def test_two_states_a_plain_output_and_a_shared_weight_read_by_closure():
    U = theta.shared(rng.standard_normal((2, 2)) * 0.3, name="U")
    X = rng.standard_normal((4, 2))

    def step(xt, a, b):
        a2 = T.tanh(T.dot(a, U) + xt)
        b2 = b + a2 * xt
        return a2, b2, (a2 * b2).sum()

    x = T.dmatrix("x")
    (A, B, S), _ = theta.scan(step, sequences=x, outputs_info=[T.zeros((2,), "float64"), T.ones((2,), "float64"), None])
    f = theta.function([x], [A, B, S])
    a, b, want = np.zeros(2), np.ones(2), []
    for t in range(4):
        a = np.tanh(a @ U.get_value() + X[t])
        b = b + a * X[t]
        want.append((a, b, (a * b).sum()))
    for got, w in zip(f(X), zip(*want)):
        np.testing.assert_allclose(got, np.array(w), rtol=1e-12)
    # the gradient reaches the weight the step read without it being a non-sequence
    gU = theta.function([x], theta.grad(S.sum() + B[-1].sum(), U))(X)
    eps, num = 1e-6, np.zeros((2, 2))
    f_cost = theta.function([x], S.sum() + B[-1].sum())
    U0 = U.get_value()
    for i in np.ndindex(2, 2):
        for sign in (1, -1):
            Up = U0.copy()
            Up[i] += sign * eps
            U.set_value(Up)
            num[i] += sign * float(f_cost(X)) / (2 * eps)
    U.set_value(U0)
    np.testing.assert_allclose(gU, num, rtol=1e-6, atol=1e-8)


def test_sgd_on_a_scan_rnn_trains():
    W = theta.shared(rng.standard_normal((3, 3)) * 0.1, name="W")
    x, y = T.dmatrix("x"), T.dvector("y")
    H, _ = theta.scan(lambda xt, hp: T.tanh(xt + T.dot(hp, W)), sequences=x, outputs_info=T.zeros((3,), "float64"))
    cost = ((H[-1] - y) ** 2).sum()
    train = theta.function([x, y], cost, updates=[(W, W - 0.2 * theta.grad(cost, W))])
    X, Y = rng.standard_normal((6, 3)) * 0.5, np.array([0.3, -0.2, 0.1])
    costs = [float(train(X, Y)) for _ in range(30)]
    assert costs[-1] < 0.5 * costs[0]


def test_map_reduce_foldl_foldr_and_symbolic_n_steps():
    v = T.dvector("v")
    squares, _ = theta.map(lambda a: a * a, v)
    total, _ = theta.reduce(lambda a, acc: acc + a, v, T.constant(0.0, dtype="float64"))
    left, _ = theta.foldl(lambda a, acc: acc * 2 + a, v, T.constant(0.0, dtype="float64"))
    right, _ = theta.foldr(lambda a, acc: acc * 2 + a, v, T.constant(0.0, dtype="float64"))
    n = T.lscalar("n")
    first_n, _ = theta.scan(lambda a, acc: acc + a, sequences=v, outputs_info=T.constant(0.0, dtype="float64"),
                            n_steps=n)
    f = theta.function([v, n], [squares, total, left, right, first_n])
    V = np.array([1.0, 2.0, 3.0, 4.0])
    sq, tot, lf, rt, fn = f(V, 3)
    np.testing.assert_allclose(sq, V ** 2)
    assert tot == 10 and lf == ((1 * 2 + 2) * 2 + 3) * 2 + 4 and rt == ((4 * 2 + 3) * 2 + 2) * 2 + 1
    np.testing.assert_allclose(fn, [1, 3, 6])


def test_sequences_of_different_lengths_run_for_the_shortest():
    a, b = T.dvector("a"), T.dvector("b")
    s, _ = theta.scan(lambda x, y: x * y, sequences=[a, b])
    np.testing.assert_allclose(theta.function([a, b], s)(np.arange(5.0), np.arange(3.0) + 1), [0, 2, 6])


def test_bad_input_is_a_typed_error():
    x, h = T.dmatrix("x"), T.dvector("h")
    with pytest.raises(ShapeError, match="scan.*ranks differ"):
        theta.scan(lambda xt, hp: T.outer(xt, hp), sequences=x, outputs_info=h)
    with pytest.raises(GraphError, match="n_steps must be a non-negative integer"):
        theta.scan(lambda hp: hp * 2, outputs_info=h, n_steps=-1)
    with pytest.raises(GraphError, match="n_steps is needed"):
        theta.scan(lambda hp: hp * 2, outputs_info=h)
    until_scan, _ = theta.scan(lambda xt, hp: (xt + hp, theta.scan_module.until(hp.sum() > 1)), sequences=x,
                               outputs_info=h)
    f = theta.function([x, h], until_scan, backend="emu")
    with pytest.raises(BackendError, match="until.*backend='reference'"):
        f(np.ones((2, 3)), np.ones(3))


def test_nested_scans_values_and_gradients():
    X = rng.standard_normal((3, 4))

    def outer(x):
        def row(r, acc):
            inner, _ = theta.scan(lambda a, s: T.tanh(s + a), sequences=r, outputs_info=acc)
            return inner[-1]
        out, _ = theta.scan(row, sequences=x, outputs_info=T.constant(0.0, dtype="float64"))
        return out

    x = T.dmatrix("x")
    got = theta.function([x], outer(x))(X)
    s, want = 0.0, []
    for r in X:
        for a in r:
            s = np.tanh(s + a)
        want.append(s)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    verify_grad(lambda x: outer(x).sum(), [X])


def lstm_adding_problem(steps: int = 20, hidden: int = 8, seq: int = 6, seed: int = 0):
    """An LSTM on the adding problem (sum of the two marked numbers of a sequence), SGD with
    gradient-norm clipping; returns the costs."""
    r = np.random.default_rng(seed)
    params = {n: theta.shared(r.standard_normal(s) * 0.3, name=n) for n, s in
              [("Wx", (2, 4 * hidden)), ("Wh", (hidden, 4 * hidden)), ("b", (4 * hidden,)), ("Wo", (hidden,))]}
    x, y = T.dtensor3("x"), T.dvector("y")   # (time, batch, 2), (batch,)

    def step(xt, h, c):
        z = T.dot(xt, params["Wx"]) + T.dot(h, params["Wh"]) + params["b"]
        i, f, o = (T.nnet.sigmoid(z[:, k * hidden:(k + 1) * hidden]) for k in range(3))
        g = T.tanh(z[:, 3 * hidden:])
        c2 = f * c + i * g
        return o * T.tanh(c2), c2

    zeros = T.zeros((x.shape[1], hidden), "float64")
    (H, _), _ = theta.scan(step, sequences=x, outputs_info=[zeros, zeros])
    cost = T.mean((T.dot(H[-1], params["Wo"]) - y) ** 2)
    grads = theta.grad(cost, list(params.values()))
    norm = T.sqrt(sum((g ** 2).sum() for g in grads))
    scale = T.minimum(1.0, 5.0 / norm)
    train = theta.function([x, y], cost, updates=[(p, p - 0.5 * scale * g) for p, g in zip(params.values(), grads)])
    values = r.random((seq, 32))
    marks = np.zeros((seq, 32))
    for b in range(32):
        marks[r.choice(seq, 2, replace=False), b] = 1
    X = np.stack([values, marks], axis=-1)
    Y = (values * marks).sum(axis=0)
    return [float(train(X, Y)) for _ in range(steps)]


def test_an_lstm_learns_the_adding_problem():
    costs = lstm_adding_problem()
    assert costs[-1] < 0.5 * costs[0], costs


def test_sequence_taps_and_output_taps():
    X = rng.standard_normal(7)
    x = T.dvector("x")
    # a centred difference over taps [-1, 0, 1]: len - 2 steps
    d, _ = theta.scan(lambda prev, cur, nxt: nxt - 2 * cur + prev, sequences=dict(input=x, taps=[-1, 0, 1]))
    np.testing.assert_allclose(theta.function([x], d)(X), X[2:] - 2 * X[1:-1] + X[:-2])
    verify_grad(lambda x: theta.scan(lambda p, c, n: T.tanh(n * c - p), sequences=dict(input=x, taps=[-1, 0, 1]))[0],
                [X])
    # Fibonacci-like recurrence over output taps [-2, -1]
    init = T.dvector("init")
    fib, _ = theta.scan(lambda a, b: a + 0.5 * b, outputs_info=dict(initial=init, taps=[-2, -1]), n_steps=6)
    got = theta.function([init], fib)(np.array([1.0, 2.0]))
    seq = [1.0, 2.0]
    for _ in range(6):
        seq.append(seq[-2] + 0.5 * seq[-1])
    np.testing.assert_allclose(got, seq[2:])
    verify_grad(lambda i: theta.scan(lambda a, b: T.tanh(a - b * 0.7), outputs_info=dict(initial=i, taps=[-2, -1]),
                                     n_steps=5)[0], [np.array([0.3, -0.4])])


def unrolled_rnn(x, W, h0, n, cut=None):
    """The same RNN written as an unrolled graph; the gradient stops at step ``cut``."""
    h, hs = h0, []
    for t in range(n):
        if cut is not None and t == cut:
            h = theta.gradient.disconnected_grad(h)
        h = T.tanh(x[t] + T.dot(h, W))
        hs.append(h)
    return T.stack(hs)


@pytest.mark.parametrize("k", [-1, 1, 3, 10])
def test_truncated_backpropagation_through_time(k):
    """Against the unrolled loop (with the gradient cut k steps from the end; -1: not cut)."""
    X, Wv, h0v = rng.standard_normal((6, 3)), rng.standard_normal((3, 3)) * 0.5, rng.standard_normal(3)
    x, W, h0 = T.dmatrix("x"), T.dmatrix("W"), T.dvector("h0")
    H, _ = theta.scan(lambda xt, h, W: T.tanh(xt + T.dot(h, W)), sequences=x, outputs_info=h0, non_sequences=W,
                      truncate_gradient=k)
    cost = H[-1].sum()
    got = theta.function([x, W, h0], theta.grad(cost, [x, W, h0]))(X, Wv, h0v)
    ref_cost = unrolled_rnn(x, W, h0, 6, cut=6 - k if 0 < k < 6 else None)[-1].sum()
    want = theta.function([x, W, h0], theta.grad(ref_cost, [x, W, h0], disconnected_inputs="ignore"))(X, Wv, h0v)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_until_stops_the_loop_and_the_gradient_follows_the_steps_run(backend):
    x = T.dvector("x")
    total, _ = theta.scan(lambda v, acc: (acc + v * v, theta.scan_module.until(acc + v * v > 3.0)),
                          sequences=x, outputs_info=T.constant(0.0, dtype="float64"))
    if backend != "reference":   # a loop whose length depends on the data runs on the reference only
        with pytest.raises(BackendError, match=r"stops on a condition \(until\).*only backend='reference'"):
            theta.function([x], total)(np.ones(3))
        return
    X = np.array([1.0, 0.5, 1.5, 2.0, 4.0])
    got = theta.function([x], total)(X)
    np.testing.assert_allclose(got, np.cumsum(X * X)[:3])   # 1, 1.25, 3.5: stops after the third step
    g = theta.function([x], theta.grad(total[-1], x))(X)
    np.testing.assert_allclose(g, [2.0, 1.0, 3.0, 0.0, 0.0])


def test_errors_name_the_step_function():
    h = T.dvector("h")

    def my_step(hp):
        return T.outer(hp, hp)

    with pytest.raises(ShapeError, match=r"my_step at .*test_scan.py:\d+"):
        theta.scan(my_step, outputs_info=h, n_steps=3)
    with pytest.raises(GraphError, match="until needs a scalar condition"):
        theta.scan(lambda hp: (hp * 2, theta.scan_module.until(hp > 0)), outputs_info=h, n_steps=3)
    with pytest.raises(GraphError, match="n_steps must be a non-negative integer"):
        theta.scan(lambda hp: hp * 2, outputs_info=h, n_steps=2.5)
    short = T.tensor("float64", shape=(2, 3), name="short")
    with pytest.raises(ShapeError, match=r"taps \[-1, 0, 1\] need a sequence of at least 3 rows"):
        theta.scan(lambda a, b, c: a + b + c, sequences=dict(input=short, taps=[-1, 0, 1]))


@pytest.mark.parametrize("backend", ["emu"], indirect=True)   # (kernels are built for the kernel backends)
def test_new_lengths_reuse_the_steps_built_kernels(backend):
    from theta.runtime.cache import default_cache
    W = theta.shared(rng.standard_normal((4, 4)) * 0.3, name="W")
    x = T.dmatrix("x")
    H, _ = theta.scan(lambda xt, hp: T.tanh(xt + T.dot(hp, W)), sequences=x,
                      outputs_info=T.zeros((4,), "float64"))
    f = theta.function([x], H[-1])
    cache = default_cache()
    f(rng.standard_normal((10, 4)))
    step = f.program.loops[0].step
    built = []
    for n in (11, 12):
        before = cache.misses
        f(rng.standard_normal((n, 4)))
        assert f.program.loops[0].n_steps == n
        assert [k.source for k in f.program.loops[0].step.kernels] == [k.source for k in step.kernels]
        built.append(cache.misses - before)
    # each new length builds its outer program at most (one module), never the step's again
    assert all(b <= 1 for b in built), built


@pytest.mark.parametrize("backend", ["emu"], indirect=True)   # (it compares emu with the reference itself)
def test_the_lstm_follows_the_same_trajectory_on_emu_and_reference(backend):
    on_emu = lstm_adding_problem(steps=8)
    theta.config.backend = "reference"
    on_reference = lstm_adding_problem(steps=8)
    np.testing.assert_allclose(on_emu, on_reference, rtol=1e-9)


@pytest.mark.parametrize("backend", ["emu"], indirect=True)   # (a saved Program holds kernels)
def test_a_saved_training_step_with_a_loop_runs_after_loading(backend, tmp_path):
    import json
    from theta.errors import ArtifactError
    W = theta.shared(rng.standard_normal((3, 3)) * 0.4, name="W")
    x = T.dmatrix("x")
    H, _ = theta.scan(lambda xt, h: T.tanh(xt + T.dot(h, W)), sequences=x, outputs_info=T.zeros((3,), "float64"))
    cost = (H[-1] ** 2).sum()
    f = theta.function([x], cost, updates=[(W, W - 0.1 * theta.grad(cost, W))])
    X = rng.standard_normal((5, 3))
    f(X)
    f.save(tmp_path / "step")
    g = theta.load(tmp_path / "step", backend="emu")
    for _ in range(3):
        assert float(g(X)) == pytest.approx(float(f(X)), rel=1e-12)
    np.testing.assert_allclose(g.get_value("W"), W.get_value(), rtol=1e-12)
    # the loops are in the checked manifest: a schedule that skips one is refused
    doc = json.loads((tmp_path / "step" / "manifest.json").read_text())
    assert doc["loops"] and doc["schedule"]
    doc["schedule"] = doc["schedule"][:-1]
    from theta.compiler import manifest
    with pytest.raises(ArtifactError, match="schedule"):
        manifest.decode(doc, {n.name: n.read_bytes() for n in (tmp_path / "step").iterdir()}, "step",
                        theta.compiler.program.Program._decode)


def test_review_cases_of_the_loop_lowering():
    """Found in review: a step output that is a prefix view of another, an error inside an inner
    loop reported at an early outer step, n_steps beyond a sequence, Theano's go_backwards."""
    X, w = rng.standard_normal((16, 2)), rng.standard_normal((3, 2))
    x, s, W = T.dmatrix("x"), T.dvector("s"), T.dmatrix("W")

    def step(xt, sp, W):
        z = T.tanh(T.dot(W, sp + xt))
        return z[:2], z
    (S, Z), _ = theta.scan(step, sequences=x, outputs_info=[s, None], non_sequences=W)
    got = theta.function([x, s, W], [T.exp(S) * 2, T.exp(Z) * 3])(X, np.zeros(2), w)
    h, want_s, want_z = np.zeros(2), [], []
    for t in range(16):
        z = np.tanh(w @ (h + X[t]))
        h = z[:2]
        want_s.append(np.exp(h) * 2)
        want_z.append(np.exp(z) * 3)
    np.testing.assert_allclose(got[0], want_s, rtol=1e-12)
    np.testing.assert_allclose(got[1], want_z, rtol=1e-12)

    v = T.dvector("v")
    A, _ = theta.scan(lambda a: a * 1, sequences=v, n_steps=3, go_backwards=True)
    B, _ = theta.scan(lambda a, b: a * 10 + b, sequences=[v, v[2:]], go_backwards=True)
    a, b = theta.function([v], [A, B])(np.arange(5.0))
    np.testing.assert_allclose(a, [4, 3, 2])      # Theano: reverse each sequence, then truncate
    np.testing.assert_allclose(b, [44, 33, 22])
    verify_grad(lambda v: theta.scan(lambda a, b: T.tanh(a * b), sequences=[v, v[2:]], go_backwards=True)[0], [X[:, 0]])

    h = T.dvector("h")
    too_many, _ = theta.scan(lambda xt, hp: hp + xt, sequences=x, outputs_info=h, n_steps=100)
    with pytest.raises(ShapeError, match="(fewer than|shorter than).*100 steps"):
        theta.function([x, h], too_many)(X, np.zeros(2))


def test_an_index_error_inside_an_inner_loop_is_raised():
    """The inner loop's status word is cleared once per call, not at every outer step."""
    I, p, y = T.imatrix("I"), T.dvector("p"), T.dvector("y")

    def outer(r, hp):
        inner, _ = theta.scan(lambda yy, s, r: s + yy * p[r].sum(), sequences=y, outputs_info=hp, non_sequences=r)
        return inner[-1]

    B, _ = theta.scan(outer, sequences=I, outputs_info=T.constant(0.0, dtype="float64"))
    f = theta.function([I, p, y], B)
    good = f(np.array([[0, 3], [1, 2]], "int32"), np.arange(4.0), np.ones(3))
    np.testing.assert_allclose(good, [9.0, 18.0])
    with pytest.raises(theta.errors.IndexingError):
        f(np.array([[0, 9], [1, 2]], "int32"), np.arange(4.0), np.ones(3))   # bad only at outer step 0


@pytest.mark.parametrize("backend", ["emu"], indirect=True)   # (a saved Program holds kernels)
def test_a_saved_program_refuses_a_length_it_was_not_compiled_for(backend, tmp_path):
    h, n = T.dvector("h"), T.lscalar("n")
    H, _ = theta.scan(lambda hp: hp * 2, outputs_info=h, n_steps=n)
    f = theta.function([h, n], H)
    np.testing.assert_allclose(f(np.ones(2), 3), [[2, 2], [4, 4], [8, 8]])
    f.save(tmp_path / "f")
    g = theta.load(tmp_path / "f", backend="emu")
    np.testing.assert_allclose(g(np.ones(2), 3), [[2, 2], [4, 4], [8, 8]])
    with pytest.raises(theta.errors.InputError, match="compiled for 3"):
        g(np.ones(2), 4)


def test_malformed_sequences_and_outputs_info_are_typed_errors():
    x, h = T.dmatrix("x"), T.dvector("h")
    with pytest.raises(GraphError, match="'input' entry"):
        theta.scan(lambda a: a, sequences=dict(taps=[0]))
    with pytest.raises(GraphError, match="'initial' entry"):
        theta.scan(lambda a, b: a + b, sequences=x, outputs_info=dict(taps=[-1]))
    with pytest.raises(GraphError, match="output taps must be negative"):
        theta.scan(lambda a, b: a + b, sequences=x, outputs_info=dict(initial=h, taps=[1]))
    with pytest.raises(GraphError, match="truncate_gradient"):
        theta.scan(lambda a, b: a + b, sequences=x, outputs_info=h, truncate_gradient=0)
